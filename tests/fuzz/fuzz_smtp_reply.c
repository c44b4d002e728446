/*
 * fuzz_smtp_reply.c - libFuzzer target for the SMTP client's reply parser
 * and session (adapters/smtp_client.c): the input is what a hostile relay
 * sends.  The first byte picks the chunk size (1..64) the rest is fed in,
 * the second the session's setup (PIPELINING sent by us or not, STARTTLS
 * and AUTH required or not).
 *   - kn_smtp_parse: every reply has a code 200-599 and a text without
 *     control characters, at most KN_SMTP_TEXT_MAX long; used never goes
 *     past the chunk; fed in chunks or whole, the same codes come out;
 *   - a session fed the bytes never crashes, never calls anything after
 *     fail, and never writes a bare LF or a message's content before 354.
 */
#include "adapters/smtp_client.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_quiet();
    return 0;
}

/* Parse data in chunks of `step`; the codes of the replies into codes. */
static size_t parse_codes(const uint8_t *data, size_t n, size_t step,
                          int *codes, size_t max, int *err)
{
    struct kn_smtp_parser p;
    struct kn_smtp_reply r;
    const char *why;
    size_t off = 0, got = 0;
    kn_smtp_parser_init(&p);
    *err = 0;
    while (off < n) {
        size_t len = n - off < step ? n - off : step, used;
        int rc = kn_smtp_parse(&p, (const char *)data + off, len, &used, &r,
                               &why);
        if (rc < 0) {
            *err = 1;
            break;
        }
        FZ_CHECK(used <= len, "used %zu of %zu", used, len);
        off += used;
        if (rc == 1) {
            FZ_CHECK(r.code >= 200 && r.code <= 599, "code %d", r.code);
            FZ_CHECK(strlen(r.text) <= KN_SMTP_TEXT_MAX, "text too long");
            for (const char *t = r.text; *t; t++)
                FZ_CHECK((unsigned char)*t >= 0x20 && *t != 0x7f,
                         "control character in the text");
            if (got < max)
                codes[got] = r.code;
            got++;
        } else {
            FZ_CHECK(used == len, "0 but not all consumed");
        }
    }
    return got;
}

struct fz_sess {
    struct kn_smtp_session *s;
    int dead, sends, data_ok;
    const struct kn_smtp_msg *msg;
};

static void f_write(void *ctx, const char *buf, size_t len)
{
    struct fz_sess *f = ctx;
    FZ_CHECK(!f->dead, "write after fail");
    for (size_t i = 0; i < len; i++)
        if (buf[i] == '\n')
            FZ_CHECK(i > 0 && buf[i - 1] == '\r', "bare LF written");
    if (len == f->msg->len && memcmp(buf, f->msg->data, len) == 0)
        FZ_CHECK(f->data_ok, "content without 354");
}

static void f_starttls(void *ctx)
{
    struct fz_sess *f = ctx;
    kn_smtp_tls_done(f->s);
}

static void f_ready(void *ctx)
{
    struct fz_sess *f = ctx;
    FZ_CHECK(!f->dead, "ready after fail");
    if (f->sends++ < 8)
        kn_smtp_send(f->s, f->msg);
}

static void f_result(void *ctx, int code, const char *text,
                     enum kn_smtp_stage stage)
{
    struct fz_sess *f = ctx;
    FZ_CHECK(!f->dead, "result after fail");
    FZ_CHECK(code >= 200 && code <= 599, "result code %d", code);
}

static void f_fail(void *ctx, int code, const char *why)
{
    struct fz_sess *f = ctx;
    FZ_CHECK(!f->dead, "fail twice");
    f->dead = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct kn_smtp_cbs cbs = {f_write, f_starttls, f_ready,
                                           f_result, f_fail};
    static const struct kn_smtp_msg msg = {"from@example.jp", "to@example.jp",
                                           "Subject: x\r\n\r\nbody\r\n.\r\n",
                                           23};
    struct kn_smtp_conf conf = {"client.example.jp", NULL, NULL, 0};
    struct fz_sess f = {0};
    int codes1[64], codes2[64], e1, e2, local;
    size_t step, n1, n2;
    if (size < 2)
        return 0;
    step = 1 + data[0] % 64;
    local = (data[1] & 4) != 0; /* a relay on loopback: AUTH in clear */
    if (data[1] & 1)
        conf.starttls = 1;
    if (data[1] & 2) {
        conf.username = "user";
        conf.password = "secret";
    }
    data += 2;
    size -= 2;

    n1 = parse_codes(data, size, step, codes1, 64, &e1);
    n2 = parse_codes(data, size, size ? size : 1, codes2, 64, &e2);
    FZ_CHECK(e1 == e2, "chunked %d whole %d", e1, e2);
    FZ_CHECK(n1 == n2, "chunked %zu replies, whole %zu", n1, n2);
    for (size_t i = 0; i < n1 && i < 64; i++)
        FZ_CHECK(codes1[i] == codes2[i], "reply %zu differs", i);

    f.msg = &msg;
    f.s = kn_smtp_session_new(&conf, &cbs, &f);
    if (local)
        kn_smtp_set_local(f.s);
    for (size_t off = 0; off < size && !f.dead; off += step) {
        size_t len = size - off < step ? size - off : step;
        /* The content may go only after a 354 reply ends this chunk's
         * last complete line: approximate by allowing it once any 354
         * was seen. */
        if (memmem(data, off + len, "354", 3) != NULL)
            f.data_ok = 1;
        kn_smtp_input(f.s, (const char *)data + off, len);
    }
    kn_smtp_session_free(f.s);
    return 0;
}
