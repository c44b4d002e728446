/*
 * test_http.c - the HTTP/2 pool's bound on requests in flight
 * (kn__h2pool_limit): Little's law with its floor and cap.  Pure
 * arithmetic, no clock: the measuring itself is proven end to end by
 * test_push_dups.py and the kill matrix.  And which provider URLs may be
 * plain http:// (kn__http_url_ok: this host only).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "adapters/http.h"

static void test_littles_law(void **state)
{
    (void)state;
    /* 5,000 answers/s at 10 ms: 50 in the air, twice that, + floor. */
    assert_int_equal(kn__h2pool_limit(5000, 10000, 8, 360), 108);
    /* 1,000/s at 2 ms: 4 in flight suffice. */
    assert_int_equal(kn__h2pool_limit(1000, 2000, 8, 360), 12);
}

static void test_floor_and_cap(void **state)
{
    (void)state;
    /* Idle (no answers): the floor, so that a burst can start. */
    assert_int_equal(kn__h2pool_limit(0, 5000, 8, 360), 8);
    /* A far provider (FCM at 100 ms, 5,000/s): every stream. */
    assert_int_equal(kn__h2pool_limit(5000, 100000, 8, 360), 360);
    /* A cap below the floor (one lane of few streams) wins. */
    assert_int_equal(kn__h2pool_limit(100, 1000, 8, 4), 4);
    /* Nonsense in (a broken clock): the cap, never 0 or garbage. */
    assert_int_equal(kn__h2pool_limit(NAN, 1000, 8, 360), 360);
    assert_int_equal(kn__h2pool_limit(1e300, 1e300, 8, 360), 360);
}

static void test_url_ok(void **state)
{
    static const char *const ok[] = {
        "https://api.line.me",   "http://127.0.0.1:8080/v2",
        "http://127.10.0.1/",    "http://localhost",
        "http://LOCALHOST:99?x", "http://[::1]:8443/x",
        "http://127.0.0.1#f",
    };
    static const char *const bad[] = {
        "http://localhost.example.com/",
        "http://127.0.0.1@evil.example/",
        "http://localhost:80@evil.example",
        "http://127.evil.example/",
        "http://127.0.0.1.nip.io/",
        "http://127.0.0.1:/",
        "http://127.0.0.1:80x/",
        "http://[::1].evil/",
        "http://10.0.0.1/",
        "ftp://127.0.0.1/",
        "HTTP://127.0.0.1/",
    };
    const char *why;
    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (kn__http_url_ok(ok[i], &why) != 0)
            fail_msg("%s refused: %s", ok[i], why);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        if (kn__http_url_ok(bad[i], &why) == 0 || why == NULL)
            fail_msg("%s taken for this host", bad[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_littles_law),
        cmocka_unit_test(test_floor_and_cap),
        cmocka_unit_test(test_url_ok),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
