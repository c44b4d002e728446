/*
 * test_route.c - the relay's circuit breaker (dispatcher/route.c), as pure
 * functions: when failures open it (count, window), when the probe goes
 * out and what its result does, where the other jobs go meanwhile
 * (failover, or a wait until the next probe of at least a second).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "dispatcher/route.h"

static const struct kn__breaker_conf conf = {
    .failures = 3,
    .window_ms = 10000,
    .probe_ms = 30000,
};

/* Count n relay tempfails at now (not probes); returns the last reason. */
static const char *tempfails(struct kn__breaker *b, int n, int64_t now)
{
    const char *why = NULL;
    for (int i = 0; i < n; i++)
        why = kn__breaker_result(b, &conf, KN_TEMPFAIL, 0, "421 busy", now);
    return why;
}

static void test_names(void **st)
{
    (void)st;
    assert_string_equal(kn__breaker_state_name(KN__BREAKER_CLOSED), "closed");
    assert_string_equal(kn__breaker_state_name(KN__BREAKER_HALF_OPEN),
                        "half-open");
    assert_string_equal(kn__breaker_state_name(KN__BREAKER_OPEN), "open");
    assert_string_equal(kn__breaker_state_name((enum kn__breaker_state)7),
                        "unknown");
}

static void test_closed_sends_through_relay(void **st)
{
    struct kn__breaker b = {0};
    const char *why = "x";
    int64_t wait = -1;
    (void)st;
    assert_int_equal(kn__breaker_choose(&b, &conf, 0, 1000, &wait, &why),
                     KN__WAY_RELAY);
    assert_null(why);
    assert_int_equal(wait, 0);
    assert_int_equal(b.state, KN__BREAKER_CLOSED);
}

static void test_opens_at_the_threshold(void **st)
{
    struct kn__breaker b = {0};
    (void)st;
    assert_null(tempfails(&b, 2, 1000));
    assert_int_equal(b.state, KN__BREAKER_CLOSED);
    assert_int_equal(b.fails, 2);
    /* The third within the window opens it, with the relay's detail. */
    assert_string_equal(tempfails(&b, 1, 5000), "421 busy");
    assert_int_equal(b.state, KN__BREAKER_OPEN);
    assert_int_equal(b.opened, 5000);
    /* More failures while open change nothing. */
    assert_null(tempfails(&b, 5, 6000));
    assert_int_equal(b.state, KN__BREAKER_OPEN);
    assert_int_equal(b.opened, 5000);
}

static void test_default_reason(void **st)
{
    struct kn__breaker b = {0};
    (void)st;
    tempfails(&b, 2, 0);
    assert_string_equal(
        kn__breaker_result(&b, &conf, KN_TEMPFAIL, 0, NULL, 1), "relay failures");
}

static void test_window_restarts(void **st)
{
    struct kn__breaker b = {0};
    (void)st;
    tempfails(&b, 2, 1000);
    /* Exactly at the window's end it still counts ... */
    assert_non_null(
        kn__breaker_result(&b, &conf, KN_TEMPFAIL, 0, "d", 1000 + 10000));
    assert_int_equal(b.state, KN__BREAKER_OPEN);

    /* ... one ms later the window starts again from that failure. */
    memset(&b, 0, sizeof(b));
    tempfails(&b, 2, 1000);
    assert_null(tempfails(&b, 1, 1000 + 10001));
    assert_int_equal(b.state, KN__BREAKER_CLOSED);
    assert_int_equal(b.fails, 1);
    assert_int_equal(b.first_fail, 11001);
    assert_null(tempfails(&b, 1, 12000));
    assert_non_null(tempfails(&b, 1, 13000));
    assert_int_equal(b.state, KN__BREAKER_OPEN);
}

static void test_answer_resets_the_count(void **st)
{
    struct kn__breaker b = {0};
    (void)st;
    tempfails(&b, 2, 1000);
    /* A delivery, or a 5xx for the recipient: the relay answers. */
    assert_null(kn__breaker_result(&b, &conf, KN_DELIVERED, 0, NULL, 1500));
    assert_int_equal(b.fails, 0);
    tempfails(&b, 2, 2000);
    assert_null(kn__breaker_result(&b, &conf, KN_PERMFAIL, 0, "550", 2500));
    assert_int_equal(b.fails, 0);
    assert_null(tempfails(&b, 2, 3000));
    assert_int_equal(b.state, KN__BREAKER_CLOSED);
}

static void test_open_fails_over_or_waits(void **st)
{
    struct kn__breaker b = {0};
    const char *why;
    int64_t wait;
    (void)st;
    tempfails(&b, 3, 1000); /* opened at 1000, probe due at 31000 */
    assert_int_equal(kn__breaker_choose(&b, &conf, 1, 2000, &wait, &why),
                     KN__WAY_FAILOVER);
    assert_null(why);
    assert_int_equal(kn__breaker_choose(&b, &conf, 0, 2000, &wait, &why),
                     KN__WAY_WAIT);
    assert_int_equal(wait, 29000);
    /* Never less than a second, even just before the probe is due. */
    assert_int_equal(kn__breaker_choose(&b, &conf, 0, 30500, &wait, &why),
                     KN__WAY_WAIT);
    assert_int_equal(wait, 1000);
    assert_int_equal(b.state, KN__BREAKER_OPEN);
    assert_int_equal(b.probing, 0);
}

static void test_probe_then_close(void **st)
{
    struct kn__breaker b = {0};
    const char *why;
    int64_t wait;
    (void)st;
    tempfails(&b, 3, 1000);
    /* The probe is due at opened + probe_ms exactly, whatever the job's
     * failover permission. */
    assert_int_equal(kn__breaker_choose(&b, &conf, 0, 31000, &wait, &why),
                     KN__WAY_PROBE);
    assert_string_equal(why, "probing the relay");
    assert_int_equal(b.state, KN__BREAKER_HALF_OPEN);
    assert_int_equal(b.probing, 1);
    /* One probe at a time: the others fail over or wait meanwhile. */
    assert_int_equal(kn__breaker_choose(&b, &conf, 1, 31001, &wait, &why),
                     KN__WAY_FAILOVER);
    assert_null(why);
    assert_int_equal(kn__breaker_choose(&b, &conf, 0, 31001, &wait, &why),
                     KN__WAY_WAIT);
    assert_int_equal(wait, 1000);
    /* The probe is delivered: closed, count reset. */
    assert_string_equal(
        kn__breaker_result(&b, &conf, KN_DELIVERED, 1, NULL, 32000),
        "the relay answers again");
    assert_int_equal(b.state, KN__BREAKER_CLOSED);
    assert_int_equal(b.probing, 0);
    assert_int_equal(b.fails, 0);
    assert_int_equal(kn__breaker_choose(&b, &conf, 0, 32001, &wait, &why),
                     KN__WAY_RELAY);
}

static void test_probe_fails(void **st)
{
    struct kn__breaker b = {0};
    const char *why;
    int64_t wait;
    (void)st;
    tempfails(&b, 3, 1000);
    kn__breaker_choose(&b, &conf, 1, 40000, &wait, &why);
    assert_int_equal(b.state, KN__BREAKER_HALF_OPEN);
    assert_string_equal(
        kn__breaker_result(&b, &conf, KN_TEMPFAIL, 1, "421", 41000),
        "the probe failed");
    assert_int_equal(b.state, KN__BREAKER_OPEN);
    assert_int_equal(b.probing, 0);
    assert_int_equal(b.opened, 41000);
    /* The next probe after probe_ms from then, not from the first open. */
    assert_int_equal(kn__breaker_choose(&b, &conf, 1, 70999, &wait, &why),
                     KN__WAY_FAILOVER);
    assert_int_equal(kn__breaker_choose(&b, &conf, 1, 71000, &wait, &why),
                     KN__WAY_PROBE);
}

static void test_half_open_late_relay_results(void **st)
{
    struct kn__breaker b = {0};
    const char *why;
    int64_t wait;
    (void)st;
    tempfails(&b, 3, 1000);
    kn__breaker_choose(&b, &conf, 1, 31000, &wait, &why);
    /* A send started before the breaker opened fails late: counted, but
     * only the probe's own result reopens a half-open breaker. */
    assert_null(tempfails(&b, 5, 31500));
    assert_int_equal(b.state, KN__BREAKER_HALF_OPEN);
    assert_int_equal(b.probing, 1);
    /* A late delivery closes it (the relay answers) before the probe
     * ends; the probe's failure then opens it again. */
    assert_non_null(
        kn__breaker_result(&b, &conf, KN_DELIVERED, 0, NULL, 31600));
    assert_int_equal(b.state, KN__BREAKER_CLOSED);
    assert_int_equal(b.probing, 1);
    assert_string_equal(
        kn__breaker_result(&b, &conf, KN_TEMPFAIL, 1, "421", 31700),
        "the probe failed");
    assert_int_equal(b.state, KN__BREAKER_OPEN);
    assert_int_equal(b.probing, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_closed_sends_through_relay),
        cmocka_unit_test(test_opens_at_the_threshold),
        cmocka_unit_test(test_default_reason),
        cmocka_unit_test(test_window_restarts),
        cmocka_unit_test(test_answer_resets_the_count),
        cmocka_unit_test(test_open_fails_over_or_waits),
        cmocka_unit_test(test_probe_then_close),
        cmocka_unit_test(test_probe_fails),
        cmocka_unit_test(test_half_open_late_relay_results),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
