/*
 * test_smtp_client.c - unit tests for adapters/smtp_client.c: the reply
 * parser (multi-line replies, EHLO keywords, replies split anywhere,
 * protocol errors), dot-stuffing (CRLF only, 998 octets), and the session
 * state machine driven by scripted server bytes: lock-step and PIPELINING
 * transactions, refused MAIL / RCPT / DATA ending cleanly with RSET before
 * the next, STARTTLS never pipelined and bytes after its 220 refused, AUTH
 * PLAIN with its initial response and AUTH LOGIN, 421 anywhere.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "adapters/smtp_client.h"
#include "common/kn.h"

/* ---- parser ---- */

static int parse_all(const char *in, struct kn_smtp_reply *r, size_t *used)
{
    struct kn_smtp_parser p;
    const char *why = NULL;
    kn_smtp_parser_init(&p);
    return kn_smtp_parse(&p, in, strlen(in), used, r, &why);
}

static void test_parse_simple(void **st)
{
    struct kn_smtp_reply r;
    size_t used;
    assert_int_equal(parse_all("250 2.0.0 Ok\r\nrest", &r, &used), 1);
    assert_int_equal(r.code, 250);
    assert_string_equal(r.text, "2.0.0 Ok");
    assert_int_equal(used, 14);
    assert_int_equal(parse_all("354\r\n", &r, &used), 1);
    assert_int_equal(r.code, 354);
    assert_string_equal(r.text, "");
    /* A bare LF ends a line too (taken, as Postfix's client does). */
    assert_int_equal(parse_all("221 bye\n", &r, &used), 1);
    assert_int_equal(r.code, 221);
}

static void test_parse_ehlo_caps(void **st)
{
    struct kn_smtp_reply r;
    size_t used;
    const char *ehlo = "250-relay.example.jp Hello\r\n"
                       "250-PIPELINING\r\n"
                       "250-SIZE 10240000\r\n"
                       "250-auth login plain\r\n"
                       "250-STARTTLS\r\n"
                       "250 8BITMIME\r\n";
    assert_int_equal(parse_all(ehlo, &r, &used), 1);
    assert_int_equal(r.nlines, 6);
    assert_int_equal(r.caps, KN_SMTP_CAP_PIPELINING | KN_SMTP_CAP_STARTTLS |
                                 KN_SMTP_CAP_AUTH_LOGIN |
                                 KN_SMTP_CAP_AUTH_PLAIN);
    assert_string_equal(r.text, "relay.example.jp Hello");
    /* The greeting line is a host name, never a keyword; AUTH=LOGIN. */
    assert_int_equal(
        parse_all("250-PIPELINING\r\n250 AUTH=LOGIN\r\n", &r, &used), 1);
    assert_int_equal(r.caps, KN_SMTP_CAP_AUTH_LOGIN);
    assert_int_equal(parse_all("250-x\r\n250 PIPELININGX\r\n", &r, &used), 1);
    assert_int_equal(r.caps, 0);
}

/* Fed one byte at a time, the same reply comes out. */
static void test_parse_split(void **st)
{
    const char *in = "250-a\r\n250-PIPELINING\r\n250 b\r\n451 4.3.0 x\r\n";
    struct kn_smtp_parser p;
    struct kn_smtp_reply r;
    const char *why;
    size_t used, n = strlen(in);
    int got = 0, codes[2];
    kn_smtp_parser_init(&p);
    for (size_t i = 0; i < n; i++) {
        int rc = kn_smtp_parse(&p, in + i, 1, &used, &r, &why);
        assert_true(rc >= 0);
        assert_int_equal(used, 1);
        if (rc == 1)
            codes[got++] = r.code;
    }
    assert_int_equal(got, 2);
    assert_int_equal(codes[0], 250);
    assert_int_equal(codes[1], 451);
}

static void test_parse_errors(void **st)
{
    static const char *bad[] = {
        "hello\r\n",  "25\r\n",    "250x\r\n",           "650 no\r\n",
        "150 no\r\n", "2a0 x\r\n", "250-a\r\n251 b\r\n", /* codes differ */
    };
    struct kn_smtp_reply r;
    size_t used;
    char *big;
    struct kn_smtp_parser p;
    const char *why = NULL;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(parse_all(bad[i], &r, &used), -1);
    /* A NUL inside a line */
    kn_smtp_parser_init(&p);
    assert_int_equal(kn_smtp_parse(&p, "250 a\0b\r\n", 9, &used, &r, &why), -1);
    assert_non_null(why);
    /* A line longer than the limit, even without its end yet */
    big = kn_xmalloc(KN_SMTP_LINE_MAX + 10);
    memset(big, 'a', KN_SMTP_LINE_MAX + 9);
    memcpy(big, "250 ", 4);
    big[KN_SMTP_LINE_MAX + 9] = '\0';
    assert_int_equal(parse_all(big, &r, &used), -1);
    free(big);
    /* Too many lines */
    {
        size_t n = (KN_SMTP_LINES_MAX + 1) * 7 + 8;
        char *many = kn_xmalloc(n), *q = many;
        for (int i = 0; i <= KN_SMTP_LINES_MAX; i++) {
            memcpy(q, "250-a\r\n", 7);
            q += 7;
        }
        strcpy(q, "250 b\r\n");
        assert_int_equal(parse_all(many, &r, &used), -1);
        free(many);
    }
}

/* ---- dot-stuffing ---- */

static void stuff_eq(const char *in, const char *want)
{
    char *out;
    size_t len;
    assert_int_equal(kn_smtp_dot_stuff(in, strlen(in), &out, &len), 0);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(out, want, len);
    free(out);
}

static void test_dot_stuff(void **st)
{
    char *out, *line;
    size_t len;
    stuff_eq("a\r\nb\r\n", "a\r\nb\r\n.\r\n");
    stuff_eq(".\r\n..x\r\n", "..\r\n...x\r\n.\r\n");
    stuff_eq("a\r\n.", "a\r\n..\r\n.\r\n");
    /* Never a bare LF or CR on the wire (SMTP smuggling) */
    stuff_eq("a\n.\nb\rc", "a\r\n..\r\nb\r\nc\r\n.\r\n");
    stuff_eq("\r\n.\r\n", "\r\n..\r\n.\r\n");
    stuff_eq("", ".\r\n");
    /* 998 octets is the limit, the stuffed dot counted */
    line = kn_xmalloc(1001);
    memset(line, 'x', 998);
    line[998] = '\0';
    assert_int_equal(kn_smtp_dot_stuff(line, 998, &out, &len), 0);
    free(out);
    line[998] = 'x';
    assert_int_equal(kn_smtp_dot_stuff(line, 999, &out, &len), -1);
    assert_null(out);
    line[0] = '.';
    assert_int_equal(kn_smtp_dot_stuff(line, 998, &out, &len), -1);
    free(line);
    assert_int_equal(kn_smtp_dot_stuff("a\0b", 3, &out, &len), -1);
}

/* ---- session ---- */

struct rec {
    char out[8192]; /* everything written */
    size_t nout;
    int starttls, ready, results, failed;
    int code, fail_code;
    enum kn_smtp_stage stage;
    char text[256], why[256];
    struct kn_smtp_session *s;
    const struct kn_smtp_msg *next; /* sent on ready */
};

static void r_write(void *ctx, const char *buf, size_t len)
{
    struct rec *r = ctx;
    assert_true(r->nout + len < sizeof(r->out));
    memcpy(r->out + r->nout, buf, len);
    r->nout += len;
    r->out[r->nout] = '\0';
}

static void r_starttls(void *ctx)
{
    ((struct rec *)ctx)->starttls++;
}

static void r_ready(void *ctx)
{
    struct rec *r = ctx;
    r->ready++;
    if (r->next != NULL) {
        const struct kn_smtp_msg *m = r->next;
        r->next = NULL;
        kn_smtp_send(r->s, m);
    }
}

static void r_result(void *ctx, int code, const char *text,
                     enum kn_smtp_stage stage)
{
    struct rec *r = ctx;
    r->results++;
    r->code = code;
    r->stage = stage;
    snprintf(r->text, sizeof(r->text), "%s", text);
}

static void r_fail(void *ctx, int code, const char *why)
{
    struct rec *r = ctx;
    r->failed++;
    r->fail_code = code;
    snprintf(r->why, sizeof(r->why), "%s", why);
}

static const struct kn_smtp_cbs cbs = {r_write, r_starttls, r_ready, r_result,
                                       r_fail};

static struct kn_smtp_msg msg1 = {"from@example.jp", "to@example.jp",
                                  "body\r\n.\r\n", 9};

static void feed(struct rec *r, const char *in)
{
    kn_smtp_input(r->s, in, strlen(in));
}

/* Take what was written since the last call. */
static char *written(struct rec *r)
{
    static char buf[8192];
    memcpy(buf, r->out, r->nout + 1);
    r->nout = 0;
    r->out[0] = '\0';
    return buf;
}

static void start(struct rec *r, const struct kn_smtp_conf *conf,
                  const char *ehlo)
{
    memset(r, 0, sizeof(*r));
    r->s = kn_smtp_session_new(conf, &cbs, r);
    feed(r, "220 relay ESMTP\r\n");
    assert_string_equal(written(r), "EHLO client.example.jp\r\n");
    feed(r, ehlo);
}

/* start() for a relay on this host (the glue saw a loopback address). */
static void start_local(struct rec *r, const struct kn_smtp_conf *conf,
                        const char *ehlo)
{
    memset(r, 0, sizeof(*r));
    r->s = kn_smtp_session_new(conf, &cbs, r);
    kn_smtp_set_local(r->s);
    feed(r, "220 relay ESMTP\r\n");
    assert_string_equal(written(r), "EHLO client.example.jp\r\n");
    feed(r, ehlo);
}

static const struct kn_smtp_conf plain_conf = {"client.example.jp", NULL, NULL,
                                               0};

static void test_lockstep(void **st)
{
    struct rec r;
    start(&r, &plain_conf, "250-relay\r\n250 SIZE 100\r\n");
    assert_int_equal(r.ready, 1);
    assert_int_equal(kn_smtp_waiting(r.s), KN_SMTP_WAIT_NONE);
    kn_smtp_send(r.s, &msg1);
    /* One command at a time without PIPELINING */
    assert_string_equal(written(&r), "MAIL FROM:<from@example.jp>\r\n");
    assert_int_equal(kn_smtp_answered(r.s), 0);
    assert_int_equal(kn_smtp_waiting(r.s), KN_SMTP_WAIT_MAIL);
    feed(&r, "250 ok\r\n");
    assert_int_equal(kn_smtp_answered(r.s), 1);
    assert_string_equal(written(&r), "RCPT TO:<to@example.jp>\r\n");
    assert_int_equal(kn_smtp_waiting(r.s), KN_SMTP_WAIT_RCPT);
    feed(&r, "250 ok\r\n");
    assert_string_equal(written(&r), "DATA\r\n");
    assert_int_equal(kn_smtp_waiting(r.s), KN_SMTP_WAIT_DATA_INIT);
    feed(&r, "354 go\r\n");
    assert_string_equal(written(&r), "body\r\n.\r\n");
    assert_int_equal(kn_smtp_waiting(r.s), KN_SMTP_WAIT_DATA_DONE);
    feed(&r, "250 2.0.0 queued\r\n");
    assert_int_equal(r.results, 1);
    assert_int_equal(r.code, 250);
    assert_int_equal(r.ready, 2);
    /* A refused RCPT ends the transaction: no DATA; RSET before the
     * next one. */
    kn_smtp_send(r.s, &msg1);
    assert_string_equal(written(&r), "RSET\r\n");
    feed(&r, "250 reset\r\n");
    assert_string_equal(written(&r), "MAIL FROM:<from@example.jp>\r\n");
    feed(&r, "250 ok\r\n");
    written(&r);
    feed(&r, "550 5.1.1 <to@example.jp> unknown\r\n");
    assert_string_equal(written(&r), "");
    assert_int_equal(r.results, 2);
    assert_int_equal(r.code, 550);
    assert_int_equal(r.stage, KN_SMTP_STAGE_RCPT);
    assert_string_equal(r.text, "5.1.1 <to@example.jp> unknown");
    assert_int_equal(r.ready, 3);
    kn_smtp_quit(r.s);
    assert_string_equal(written(&r), "QUIT\r\n");
    feed(&r, "221 bye\r\n");
    assert_int_equal(r.failed, 1);
    assert_int_equal(r.fail_code, 0);
    kn_smtp_session_free(r.s);
}

static void test_pipelining(void **st)
{
    struct rec r;
    start(&r, &plain_conf, "250-relay\r\n250 PIPELINING\r\n");
    kn_smtp_send(r.s, &msg1);
    /* MAIL, RCPT and DATA in one write; the content only after 354 */
    assert_string_equal(written(&r), "MAIL FROM:<from@example.jp>\r\n"
                                     "RCPT TO:<to@example.jp>\r\n"
                                     "DATA\r\n");
    feed(&r, "250 ok\r\n250 ok\r\n");
    assert_string_equal(written(&r), "");
    feed(&r, "354 go\r\n");
    assert_string_equal(written(&r), "body\r\n.\r\n");
    /* The next message is sent from inside ready, with RSET ahead. */
    r.next = &msg1;
    feed(&r, "250 queued\r\n");
    assert_int_equal(r.code, 250);
    assert_string_equal(written(&r), "RSET\r\n"
                                     "MAIL FROM:<from@example.jp>\r\n"
                                     "RCPT TO:<to@example.jp>\r\n"
                                     "DATA\r\n");
    /* A refused RCPT: the DATA reply is read too, then the end. */
    feed(&r, "250 reset\r\n250 ok\r\n450 4.2.0 busy\r\n");
    assert_int_equal(r.results, 1);
    feed(&r, "554 5.5.1 no valid recipients\r\n");
    assert_int_equal(r.results, 2);
    assert_int_equal(r.code, 450);
    assert_int_equal(r.stage, KN_SMTP_STAGE_RCPT);
    assert_string_equal(written(&r), "");
    /* A server that says 354 anyway gets an empty message, never the
     * content, and the refusal stays the result. */
    kn_smtp_send(r.s, &msg1);
    written(&r);
    feed(&r, "250 reset\r\n550 from refused\r\n503 no mail\r\n354 go\r\n");
    assert_string_equal(written(&r), ".\r\n");
    feed(&r, "250 empty\r\n");
    assert_int_equal(r.results, 3);
    assert_int_equal(r.code, 550);
    assert_int_equal(r.stage, KN_SMTP_STAGE_MAIL);
    assert_int_equal(r.failed, 0);
    kn_smtp_session_free(r.s);
}

static void test_421(void **st)
{
    struct rec r;
    start(&r, &plain_conf, "250-relay\r\n250 PIPELINING\r\n");
    kn_smtp_send(r.s, &msg1);
    written(&r);
    feed(&r, "421 4.3.2 shutting down\r\n");
    assert_int_equal(r.failed, 1);
    assert_int_equal(r.fail_code, 421);
    kn_smtp_session_free(r.s);
    /* A 421 greeting */
    memset(&r, 0, sizeof(r));
    r.s = kn_smtp_session_new(&plain_conf, &cbs, &r);
    feed(&r, "421 4.3.2 try later\r\n");
    assert_int_equal(r.failed, 1);
    assert_int_equal(r.fail_code, 421);
    assert_string_equal(written(&r), "");
    kn_smtp_session_free(r.s);
    /* Garbage */
    memset(&r, 0, sizeof(r));
    r.s = kn_smtp_session_new(&plain_conf, &cbs, &r);
    feed(&r, "HTTP/1.1 400 Bad Request\r\n");
    assert_int_equal(r.failed, 1);
    assert_non_null(strstr(r.why, "protocol error"));
    kn_smtp_session_free(r.s);
    /* A 421 while idle (the relay's idle timeout) */
    start(&r, &plain_conf, "250 relay\r\n");
    feed(&r, "421 idle too long\r\n");
    assert_int_equal(r.failed, 1);
    kn_smtp_session_free(r.s);
}

static void test_ehlo_refused_helo(void **st)
{
    struct rec r;
    start(&r, &plain_conf, "502 what\r\n");
    assert_string_equal(written(&r), "HELO client.example.jp\r\n");
    feed(&r, "250 hi\r\n");
    assert_int_equal(r.ready, 1);
    kn_smtp_session_free(r.s);
}

static const struct kn_smtp_conf tls_conf = {"client.example.jp", "user",
                                             "secret", 1};

static void test_starttls_auth_plain(void **st)
{
    struct rec r;
    start(&r, &tls_conf,
          "250-relay\r\n250-PIPELINING\r\n250-AUTH PLAIN LOGIN\r\n"
          "250 STARTTLS\r\n");
    /* STARTTLS alone, never pipelined, never AUTH before TLS */
    assert_string_equal(written(&r), "STARTTLS\r\n");
    feed(&r, "220 go ahead\r\n");
    assert_int_equal(r.starttls, 1);
    assert_int_equal(kn_smtp_waiting(r.s), KN_SMTP_WAIT_TLS);
    kn_smtp_tls_done(r.s);
    assert_string_equal(written(&r), "EHLO client.example.jp\r\n");
    feed(&r, "250-relay\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN\r\n");
    /* AUTH PLAIN with its initial response: base64("\0user\0secret") */
    assert_string_equal(written(&r), "AUTH PLAIN AHVzZXIAc2VjcmV0\r\n");
    assert_int_equal(r.ready, 0);
    feed(&r, "235 ok\r\n");
    assert_int_equal(r.ready, 1);
    assert_int_equal(kn_smtp_caps(r.s) & KN_SMTP_CAP_PIPELINING,
                     KN_SMTP_CAP_PIPELINING);
    kn_smtp_session_free(r.s);
}

static void test_starttls_injection(void **st)
{
    struct rec r;
    start(&r, &tls_conf, "250-relay\r\n250 STARTTLS\r\n");
    written(&r);
    /* Bytes after the 220 in the same read: an injection, refused. */
    feed(&r, "220 go ahead\r\n250-relay\r\n250 AUTH PLAIN\r\n");
    assert_int_equal(r.starttls, 0);
    assert_int_equal(r.failed, 1);
    assert_non_null(strstr(r.why, "after its 220"));
    kn_smtp_session_free(r.s);
    /* ... or in a later read before the handshake */
    start(&r, &tls_conf, "250-relay\r\n250 STARTTLS\r\n");
    feed(&r, "220 go ahead\r\n");
    assert_int_equal(r.starttls, 1);
    feed(&r, "250 injected\r\n");
    assert_int_equal(r.failed, 1);
    kn_smtp_session_free(r.s);
    /* No STARTTLS offered: nothing else sent */
    start(&r, &tls_conf, "250-relay\r\n250 AUTH PLAIN\r\n");
    assert_int_equal(r.failed, 1);
    assert_non_null(strstr(r.why, "STARTTLS"));
    assert_string_equal(written(&r), "");
    kn_smtp_session_free(r.s);
}

static void test_auth_login_and_refusal(void **st)
{
    struct rec r;
    struct kn_smtp_conf c = {"client.example.jp", "user", "secret", 0};
    start_local(&r, &c, "250-relay\r\n250 AUTH LOGIN\r\n");
    assert_string_equal(written(&r), "AUTH LOGIN\r\n");
    feed(&r, "334 VXNlcm5hbWU6\r\n");
    assert_string_equal(written(&r), "dXNlcg==\r\n");
    feed(&r, "334 UGFzc3dvcmQ6\r\n");
    assert_string_equal(written(&r), "c2VjcmV0\r\n");
    feed(&r, "235 ok\r\n");
    assert_int_equal(r.ready, 1);
    kn_smtp_session_free(r.s);
    start_local(&r, &c, "250-relay\r\n250 AUTH PLAIN\r\n");
    written(&r);
    feed(&r, "535 5.7.8 bad credentials\r\n");
    assert_int_equal(r.failed, 1);
    assert_int_equal(r.fail_code, 535);
    assert_non_null(strstr(r.why, "AUTH refused"));
    kn_smtp_session_free(r.s);
    /* No mechanism we know */
    start_local(&r, &c, "250-relay\r\n250 AUTH CRAM-MD5\r\n");
    assert_int_equal(r.failed, 1);
    kn_smtp_session_free(r.s);
}

/* Without TLS, credentials go only to a relay on this host: to any other
 * the session ends after EHLO, naming the configuration, and nothing of
 * AUTH is written (smtp.tls = none with a remote relay).  Over implicit
 * TLS the same relay gets them. */
static void test_plain_auth_needs_local(void **st)
{
    struct rec r;
    struct kn_smtp_conf c = {"client.example.jp", "user", "secret", 0};
    start(&r, &c, "250-relay\r\n250 AUTH PLAIN LOGIN\r\n");
    assert_string_equal(written(&r), "");
    assert_int_equal(r.failed, 1);
    assert_int_equal(r.fail_code, 0);
    assert_int_equal(r.ready, 0);
    assert_string_equal(r.why, KN_SMTP_PLAIN_AUTH_REFUSED);
    assert_non_null(strstr(r.why, "smtp.tls"));
    kn_smtp_session_free(r.s);
    /* Without a username nothing secret goes: a remote relay in clear is
     * the operator's explicit choice (smtp.tls = none). */
    start(&r, &plain_conf, "250-relay\r\n250 AUTH PLAIN\r\n");
    assert_int_equal(r.failed, 0);
    assert_int_equal(r.ready, 1);
    kn_smtp_session_free(r.s);
    /* smtps: encrypted from the start, the password may go. */
    memset(&r, 0, sizeof(r));
    r.s = kn_smtp_session_new(&c, &cbs, &r);
    kn_smtp_set_tls(r.s);
    feed(&r, "220 relay ESMTP\r\n");
    assert_string_equal(written(&r), "EHLO client.example.jp\r\n");
    feed(&r, "250-relay\r\n250 AUTH PLAIN\r\n");
    assert_string_equal(written(&r), "AUTH PLAIN AHVzZXIAc2VjcmV0\r\n");
    assert_int_equal(r.failed, 0);
    kn_smtp_session_free(r.s);
}

/* DATA answered 2xx instead of 354 (RFC 5321 4.3.2: 354 is DATA's
 * only positive reply): the relay's state is unknown and nothing more
 * will come, so the session ends with a protocol error at once rather
 * than waiting, with no timer, for a reply that never comes.  The
 * content is never sent. */
static void test_data_2xx(void **st)
{
    struct rec r;
    start(&r, &plain_conf, "250-relay\r\n250 PIPELINING\r\n");
    kn_smtp_send(r.s, &msg1);
    written(&r);
    feed(&r, "250 ok\r\n250 ok\r\n250 ok\r\n");
    assert_string_equal(written(&r), "");
    assert_int_equal(r.failed, 1);
    assert_int_equal(r.fail_code, 250);
    assert_non_null(strstr(r.why, "DATA"));
    assert_int_equal(kn_smtp_waiting(r.s), KN_SMTP_WAIT_NONE);
    kn_smtp_session_free(r.s);
    /* the same in lock-step */
    start(&r, &plain_conf, "250 relay\r\n");
    kn_smtp_send(r.s, &msg1);
    feed(&r, "250 ok\r\n");
    feed(&r, "250 ok\r\n");
    assert_string_equal(written(&r), "MAIL FROM:<from@example.jp>\r\n"
                                     "RCPT TO:<to@example.jp>\r\n"
                                     "DATA\r\n");
    feed(&r, "221 bye\r\n");
    assert_string_equal(written(&r), "");
    assert_int_equal(r.failed, 1);
    assert_int_equal(r.results, 0);
    kn_smtp_session_free(r.s);
}

/* A UTF-8 address (RFC 6531): MAIL carries SMTPUTF8 when the relay
 * offers it; when it does not, nothing of the transaction is sent (RFC
 * 6531 3.2: the client MUST NOT send the address) and the message ends
 * 553 at once; an ASCII message after it goes as usual. */
static void test_smtputf8(void **st)
{
    struct rec r;
    struct kn_smtp_msg utf = {"from@example.jp",
                              "\xe3\x81\x9f\xe3\x82\x8d\xe3\x81\x86@example.jp",
                              "body\r\n.\r\n", 9};
    start(&r, &plain_conf, "250-relay\r\n250-PIPELINING\r\n250 SMTPUTF8\r\n");
    assert_int_equal(kn_smtp_caps(r.s) & KN_SMTP_CAP_SMTPUTF8,
                     KN_SMTP_CAP_SMTPUTF8);
    kn_smtp_send(r.s, &utf);
    assert_string_equal(
        written(&r),
        "MAIL FROM:<from@example.jp> SMTPUTF8\r\n"
        "RCPT TO:<\xe3\x81\x9f\xe3\x82\x8d\xe3\x81\x86@example.jp>\r\n"
        "DATA\r\n");
    feed(&r, "250 ok\r\n250 ok\r\n354 go\r\n");
    r.next = &msg1; /* ASCII: no SMTPUTF8 parameter */
    feed(&r, "250 queued\r\n");
    assert_int_equal(r.code, 250);
    assert_string_equal(written(&r), "body\r\n.\r\n"
                                     "RSET\r\n"
                                     "MAIL FROM:<from@example.jp>\r\n"
                                     "RCPT TO:<to@example.jp>\r\n"
                                     "DATA\r\n");
    kn_smtp_session_free(r.s);
    /* A relay without SMTPUTF8 */
    start(&r, &plain_conf, "250-relay\r\n250 PIPELINING\r\n");
    r.next = NULL;
    kn_smtp_send(r.s, &utf);
    assert_string_equal(written(&r), "");
    assert_int_equal(r.results, 1);
    assert_int_equal(r.code, 553);
    assert_int_equal(r.stage, KN_SMTP_STAGE_MAIL);
    assert_non_null(strstr(r.text, "SMTPUTF8"));
    assert_int_equal(r.failed, 0);
    assert_int_equal(r.ready, 2);
    kn_smtp_send(r.s, &msg1);
    assert_string_equal(written(&r), "MAIL FROM:<from@example.jp>\r\n"
                                     "RCPT TO:<to@example.jp>\r\n"
                                     "DATA\r\n");
    kn_smtp_session_free(r.s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_simple),
        cmocka_unit_test(test_parse_ehlo_caps),
        cmocka_unit_test(test_parse_split),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_dot_stuff),
        cmocka_unit_test(test_lockstep),
        cmocka_unit_test(test_pipelining),
        cmocka_unit_test(test_421),
        cmocka_unit_test(test_ehlo_refused_helo),
        cmocka_unit_test(test_starttls_auth_plain),
        cmocka_unit_test(test_starttls_injection),
        cmocka_unit_test(test_auth_login_and_refusal),
        cmocka_unit_test(test_plain_auth_needs_local),
        cmocka_unit_test(test_data_2xx),
        cmocka_unit_test(test_smtputf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
