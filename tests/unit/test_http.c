/*
 * test_http.c - the HTTP/2 pool's bound on requests in flight
 * (kn__h2pool_limit): Little's law with its floor and cap.  Pure
 * arithmetic, no clock: the measuring itself is proven end to end by
 * test_push_dups.py and the kill matrix.
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_littles_law),
        cmocka_unit_test(test_floor_and_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
