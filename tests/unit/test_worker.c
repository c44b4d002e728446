/*
 * test_worker.c - the retry decision of a channel worker
 * (dispatcher/worker.c), as a pure function: delivered, permfail at once,
 * tempfail retried after the backoff or the provider's Retry-After,
 * given up at queue.max_attempts, expired when the retry would come at or
 * after the broadcast's expiry.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "dispatcher/worker.h"

#define NOW 1700000000000LL

static void test_delivered(void **st)
{
    struct kn__retry r = kn__retry_decide(KN_DELIVERED, 0, 5, 100, 0, 0, NOW);
    (void)st;
    assert_int_equal(r.verdict, KN__RETRY_DONE);
    assert_int_equal(r.attempts, 1);
}

static void test_permfail_gives_up_at_once(void **st)
{
    struct kn__retry r = kn__retry_decide(KN_PERMFAIL, 0, 5, 100, 0, 0, NOW);
    (void)st;
    assert_int_equal(r.verdict, KN__RETRY_GIVE_UP);
    assert_int_equal(r.attempts, 1);
    /* Even with attempts left and a Retry-After. */
    r = kn__retry_decide(KN_PERMFAIL, 2, 5, 100, 60000, 0, NOW);
    assert_int_equal(r.verdict, KN__RETRY_GIVE_UP);
    assert_int_equal(r.attempts, 3);
}

static void test_tempfail_backoff(void **st)
{
    struct kn__retry r = kn__retry_decide(KN_TEMPFAIL, 0, 5, 1500, 0, 0, NOW);
    (void)st;
    assert_int_equal(r.verdict, KN__RETRY_LATER);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(r.delay_ms, 1500);
    assert_int_equal(r.retry_at, NOW + 1500);
    /* Full jitter may draw 0: retried at once. */
    r = kn__retry_decide(KN_TEMPFAIL, 1, 5, 0, 0, 0, NOW);
    assert_int_equal(r.verdict, KN__RETRY_LATER);
    assert_int_equal(r.delay_ms, 0);
    assert_int_equal(r.retry_at, NOW);
}

static void test_retry_after(void **st)
{
    struct kn__retry r;
    (void)st;
    /* The provider's Retry-After wins when longer ... */
    r = kn__retry_decide(KN_TEMPFAIL, 0, 5, 1500, 30000, 0, NOW);
    assert_int_equal(r.delay_ms, 30000);
    /* ... never when shorter, and 0 / negative mean none. */
    r = kn__retry_decide(KN_TEMPFAIL, 0, 5, 1500, 1000, 0, NOW);
    assert_int_equal(r.delay_ms, 1500);
    r = kn__retry_decide(KN_TEMPFAIL, 0, 5, 1500, -1, 0, NOW);
    assert_int_equal(r.delay_ms, 1500);
}

static void test_attempts_used_up(void **st)
{
    struct kn__retry r;
    (void)st;
    /* max_attempts 5: the 4th attempt (3 before) may still be retried,
     * the 5th is the last. */
    r = kn__retry_decide(KN_TEMPFAIL, 3, 5, 100, 0, 0, NOW);
    assert_int_equal(r.verdict, KN__RETRY_LATER);
    assert_int_equal(r.attempts, 4);
    r = kn__retry_decide(KN_TEMPFAIL, 4, 5, 100, 0, 0, NOW);
    assert_int_equal(r.verdict, KN__RETRY_GIVE_UP);
    assert_int_equal(r.attempts, 5);
    /* Beyond (a job re-queued from the DLQ with its count). */
    r = kn__retry_decide(KN_TEMPFAIL, 9, 5, 100, 0, 0, NOW);
    assert_int_equal(r.verdict, KN__RETRY_GIVE_UP);
    /* max_attempts 1: never retried. */
    r = kn__retry_decide(KN_TEMPFAIL, 0, 1, 100, 0, 0, NOW);
    assert_int_equal(r.verdict, KN__RETRY_GIVE_UP);
    /* Used up wins over expired. */
    r = kn__retry_decide(KN_TEMPFAIL, 4, 5, 100, 0, NOW - 1, NOW);
    assert_int_equal(r.verdict, KN__RETRY_GIVE_UP);
}

static void test_expiry(void **st)
{
    struct kn__retry r;
    (void)st;
    /* The retry would come exactly at the expiry: expired. */
    r = kn__retry_decide(KN_TEMPFAIL, 0, 5, 1000, 0, NOW + 1000, NOW);
    assert_int_equal(r.verdict, KN__RETRY_EXPIRED);
    /* One ms before it: retried. */
    r = kn__retry_decide(KN_TEMPFAIL, 0, 5, 999, 0, NOW + 1000, NOW);
    assert_int_equal(r.verdict, KN__RETRY_LATER);
    assert_int_equal(r.retry_at, NOW + 999);
    /* A Retry-After that reaches past the expiry. */
    r = kn__retry_decide(KN_TEMPFAIL, 0, 5, 10, 60000, NOW + 30000, NOW);
    assert_int_equal(r.verdict, KN__RETRY_EXPIRED);
    /* No expiry (0): never expired. */
    r = kn__retry_decide(KN_TEMPFAIL, 0, 5, 1LL << 40, 0, 0, NOW);
    assert_int_equal(r.verdict, KN__RETRY_LATER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delivered),
        cmocka_unit_test(test_permfail_gives_up_at_once),
        cmocka_unit_test(test_tempfail_backoff),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_attempts_used_up),
        cmocka_unit_test(test_expiry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
