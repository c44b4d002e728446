/*
 * fuzz_mime.c - libFuzzer target for the message builder (adapters/mime.c).
 * The first input byte picks what is tried on the rest:
 *   0: kn_mime_header("Subject", input) then kn_mime_header_decode must
 *      give the input back (valid UTF-8 without CR/LF/NUL); every line of
 *      the header ends with CRLF and is at most 76 octets before it;
 *   1: kn_mime_build with From, To, Subject and body taken from the input
 *      (split at NUL bytes): never a bare CR or LF, every header line at
 *      most 76 octets, and no CR/LF from the input starting a line of the
 *      header (a folded line starts with a space or a tab);
 *   2: kn_addr_check / kn_addr_quote / kn_addr_is_dot_atom /
 *      kn_mime_split_mailbox / kn_mime_header_decode / kn_base64_decode on
 *      the raw input: never crash.
 */
#include "adapters/mime.h"
#include "common/utf8.h"
#include "model/address.h"
#include "model/message.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_quiet();
    return 0;
}

/*
 * A header line longer than 76 octets is allowed only when it cannot be
 * folded: one token (a long address) after the field name or the fold's
 * white space, and within RFC 5322's hard limit of 998 octets.
 */
static int unbreakable(const char *l, size_t n)
{
    size_t i = 0;
    if (n > 998)
        return 0;
    if (l[0] == ' ' || l[0] == '\t') {
        i = 1;
    } else {
        const char *c = memchr(l, ':', n);
        if (c == NULL)
            return 0;
        i = (size_t)(c - l) + 1;
        if (i < n && l[i] == ' ')
            i++;
    }
    return memchr(l + i, ' ', n - i) == NULL &&
           memchr(l + i, '\t', n - i) == NULL;
}

/*
 * Check CRLF discipline and line lengths of a[0..n); returns the offset of
 * the end of the header block (the empty line), or n if there is none.
 * In the header, every line but the first of a field must be a fold.
 */
static size_t check_lines(const char *a, size_t n, size_t max_hdr,
                          size_t max_body)
{
    size_t start = 0, hdr_end = n;
    int in_hdr = 1;
    for (size_t i = 0; i < n; i++) {
        if (a[i] == '\n')
            FZ_CHECK(0, "bare LF at %zu", i);
        if (a[i] != '\r')
            continue;
        FZ_CHECK(i + 1 < n && a[i + 1] == '\n', "bare CR at %zu", i);
        FZ_CHECK(i - start <= (in_hdr ? max_hdr : max_body) ||
                     (in_hdr && unbreakable(a + start, i - start)),
                 "line of %zu octets at %zu", i - start, start);
        if (in_hdr && i == start) {
            in_hdr = 0;
            hdr_end = i;
        } else if (in_hdr) {
            /* a header line is "Name: ..." or a fold */
            FZ_CHECK(a[start] == ' ' || a[start] == '\t' ||
                         memchr(a + start, ':', i - start) != NULL,
                     "header line without a name at %zu: %.*s", start,
                     (int)(i - start), a + start);
        }
        i++;
        start = i + 1;
    }
    return hdr_end;
}

static void header_roundtrip(const char *v, size_t n)
{
    char *h, *dec = NULL;
    const char *val;
    size_t hl;

    if (strlen(v) != n || !kn_utf8_valid(v, n) || !kn_header_safe(v, n))
        return;
    h = kn_mime_header("Subject", v);
    hl = strlen(h);
    FZ_CHECK(hl >= 2 && memcmp(h + hl - 2, "\r\n", 2) == 0,
             "header does not end with CRLF");
    check_lines(h, hl, 76, 76);
    FZ_CHECK(memcmp(h, "Subject:", 8) == 0, "name lost");
    val = h + 8;
    if (val[0] == '\r' && val[1] == '\n')
        val += 2;
    if (*val == ' ')
        val++;
    FZ_CHECK(kn_mime_header_decode(val, &dec) == 0,
             "own header does not decode: %s", h);
    FZ_CHECK(strcmp(dec, v) == 0, "round trip: [%s] -> %s -> [%s]", v, h,
             dec);
    free(dec);
    free(h);
}

static void build(const uint8_t *data, size_t n)
{
    char *from = fz_take(&data, &n, 0);
    char *to = fz_take(&data, &n, 0);
    char *subject = fz_take(&data, &n, 0);
    char *body = fz_str(data, n);
    struct kn_mime_msg m = {
        .from = from,
        .to = to,
        .subject = subject,
        .body = body,
        .message_id = "<kn.0123456789abcdef.0123@example.jp>",
        .date_ms = 1790000000000LL,
        .urgent = (int)(n & 1),
    };
    char *out = NULL;
    size_t len = 0;

    if (kn_mime_build(&m, &out, &len) == 0) {
        FZ_CHECK(out != NULL && strlen(out) == len, "length mismatch");
        FZ_CHECK(check_lines(out, len, 76, 76) < len, "no header end");
    }
    free(out);
    free(from);
    free(to);
    free(subject);
    free(body);
}

static void addresses(const char *s, size_t n)
{
    const char *why = NULL;
    char *q, *name = NULL, *addr = NULL, *dec = NULL;
    unsigned char *raw = NULL;

    if (kn_addr_check(s, &why) == 0) {
        q = kn_addr_quote(s);
        FZ_CHECK(q != NULL && kn_header_safe(q, strlen(q)),
                 "quoted address unsafe");
        free(q);
    } else {
        FZ_CHECK(why != NULL, "rejected without a reason");
    }
    (void)kn_addr_is_dot_atom(s);
    if (kn_mime_split_mailbox(s, &name, &addr) == 0) {
        free(name);
        free(addr);
    }
    if (kn_mime_header_decode(s, &dec) == 0)
        free(dec);
    if (kn_base64_decode(s, n, &raw) >= 0)
        free(raw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s;

    if (size < 1)
        return 0;
    switch (data[0] % 3) {
    case 0:
        s = fz_str(data + 1, size - 1);
        header_roundtrip(s, size - 1);
        free(s);
        break;
    case 1:
        build(data + 1, size - 1);
        break;
    default:
        s = fz_str(data + 1, size - 1);
        addresses(s, strlen(s));
        free(s);
        break;
    }
    return 0;
}
