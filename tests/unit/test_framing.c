/*
 * test_framing.c - dispatcher/http/framing.c, the RFC 9112 checks over
 * the bytes http-parser consumed: every request is fed whole and then a
 * byte at a time (the checks must not depend on where reads split), and
 * the answer must be the same.  The end to end cases (what kairand
 * answers) are in tests/integration/test_http_framing.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "dispatcher/http/http_int.h"

/* NULL if data passes, else the reason; chunked says what the parser
 * found in the head (its F_CHUNKED flag). */
static const char *check(const char *data, int chunked, int bytewise)
{
    static struct conn c;
    const char *why = NULL;
    size_t n = strlen(data);
    memset(&c, 0, sizeof(c));
    c.parser.flags = chunked ? F_CHUNKED : 0;
    if (!bytewise)
        return kn__httpd_frame_check(&c, data, n);
    for (size_t i = 0; i < n && why == NULL; i++)
        why = kn__httpd_frame_check(&c, data + i, 1);
    return why;
}

static void ok(const char *data, int chunked)
{
    assert_null(check(data, chunked, 0));
    assert_null(check(data, chunked, 1));
}

static void bad(const char *data, int chunked, const char *word)
{
    const char *a = check(data, chunked, 0), *b = check(data, chunked, 1);
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(a, b);
    assert_non_null(strstr(a, word));
}

static void test_head(void **state)
{
    (void)state;
    ok("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0);
    ok("\r\nGET / HTTP/1.1\nHost: x\nA: b\tc :d\n\n", 0); /* bare LF */
    ok("GET / HTTP/1.1\r\nHost:x\r\nA:\r\n\r\n", 0);
    bad("GET / HTTP/1.1\r\nHost: x\r\n\rXGET", 0, "bare CR");
    bad("GET / HTTP/1.1\r\nA:\rXTransfer-Encoding: chunked\r\n\r\n", 0,
        "bare CR");
    bad("GET / HTTP/1.1\rX", 0, "bare CR");
    bad("GET / HTTP/1.1\r\nContent-Length : 4\r\n\r\n", 0, "colon");
    bad("GET / HTTP/1.1\r\nA\t: b\r\n\r\n", 0, "colon");
    bad("GET / HTTP/1.1\r\n Host: x\r\n\r\n", 0, "whitespace");
    bad("GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n", 0, "obs-fold");
    bad("GET /a\tHTTP/1.1\r\n\r\n", 0, "request line");
    bad("GET /a\fb HTTP/1.1\r\n\r\n", 0, "request line");
    /* After a Content-Length head nothing more is looked at. */
    ok("POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n\r\r\r", 0);
}

static void test_chunked(void **state)
{
    (void)state;
    ok("POST / HTTP/1.1\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 1);
    ok("POST / HTTP/1.1\r\n\r\n"
       "A ; ext=\"v\"\t;x\r\n0123456789\r\n1;y\r\n\r\r\n0\r\nT: a\r\n\r\n",
       1);
    bad("POST / HTTP/1.1\r\n\r\n2\r\n{}XY0\r\n\r\n", 1, "CRLF");
    bad("POST / HTTP/1.1\r\n\r\n2\r\n{}\rX", 1, "CRLF");
    bad("POST / HTTP/1.1\r\n\r\n2;a\nXX\r\n{}\r\n", 1, "extension");
    bad("POST / HTTP/1.1\r\n\r\n2;a=\x01\r\n{}\r\n", 1, "extension");
    bad("POST / HTTP/1.1\r\n\r\n2\rX{}\r\n", 1, "bare CR");
    bad("POST / HTTP/1.1\r\n\r\n2x\r\n{}\r\n", 1, "chunk size");
    bad("POST / HTTP/1.1\r\n\r\n0\r\nT: a\rb\r\n\r\n", 1, "bare CR");
    bad("POST / HTTP/1.1\r\n\r\n0\r\n T: a\r\n\r\n", 1, "obs-fold");
    bad("POST / HTTP/1.1\r\n\r\n11111111111111111\r\n", 1, "overflow");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head),
        cmocka_unit_test(test_chunked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
