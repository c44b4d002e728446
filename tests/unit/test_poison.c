/*
 * test_poison.c - the give-up rule of kairan's stream readers
 * (queue/poison.c): which Redis errors count against an entry, the bound
 * and the backoff, type mismatches, and a reason that names the key and
 * echoes nothing but the first line of Redis' error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "queue/poison.h"

static const char *const wrongtype =
    "WRONGTYPE Operation against a key holding the wrong kind of value";

static void test_transient(void **st)
{
    (void)st;
    assert_true(kn_poison_transient(NULL));
    assert_true(kn_poison_transient("OOM command not allowed when used "
                                    "memory > 'maxmemory'."));
    assert_true(kn_poison_transient("LOADING Redis is loading the dataset"));
    assert_true(kn_poison_transient("BUSY Redis is busy running a script"));
    assert_true(kn_poison_transient("READONLY You can't write against a "
                                    "read only replica."));
    assert_true(kn_poison_transient("MASTERDOWN Link with MASTER is down"));
    assert_true(kn_poison_transient("NOSCRIPT No matching script"));
    assert_true(kn_poison_transient("MISCONF Errors writing to the AOF"));
    assert_false(kn_poison_transient(wrongtype));
    assert_false(kn_poison_transient("BUSYGROUP Consumer Group name already "
                                     "exists"));
    assert_false(kn_poison_transient("ERR Error running script: "
                                     "@user_script:3: bad argument"));
    assert_false(kn_poison_transient(""));
    assert_false(kn_poison_transient("OOMPH not a code"));
}

static void test_decide_bound(void **st)
{
    struct kn_poison_verdict v;
    int64_t total = 0;
    (void)st;
    /* 250, 500, 1000, 2000 ms; the fifth failure parks. */
    for (int f = 0; f < KN_POISON_MAX - 1; f++) {
        v = kn_poison_decide(f, wrongtype);
        assert_int_equal(v.park, 0);
        assert_int_equal(v.counted, 1);
        assert_int_equal(v.delay_ms, (int64_t)KN_POISON_BASE_MS << f);
        total += v.delay_ms;
    }
    assert_int_equal(total, 3750);
    v = kn_poison_decide(KN_POISON_MAX - 1, wrongtype);
    assert_int_equal(v.park, 1);
    assert_int_equal(v.counted, 1);
    /* Counts kept elsewhere may be past the bound (several processes):
     * still parked, never a huge shift. */
    v = kn_poison_decide(1000, "ERR anything");
    assert_int_equal(v.park, 1);
    v = kn_poison_decide(-3, wrongtype);
    assert_int_equal(v.park, 0);
    assert_int_equal(v.delay_ms, KN_POISON_BASE_MS);
}

static void test_decide_transient(void **st)
{
    struct kn_poison_verdict v;
    (void)st;
    /* Redis down or out of memory: never counted, never parked, however
     * often it happens. */
    for (int f = 0; f < 100; f += 7) {
        v = kn_poison_decide(f < KN_POISON_MAX ? f : KN_POISON_MAX - 1,
                             f % 2 ? NULL : "OOM command not allowed");
        assert_int_equal(v.park, 0);
        assert_int_equal(v.counted, 0);
        assert_int_equal(v.delay_ms, KN_POISON_TRANSIENT_MS);
    }
}

static void test_mismatch(void **st)
{
    (void)st;
    assert_false(kn_poison_mismatch("hash", "hash"));
    assert_false(kn_poison_mismatch("none", "hash"));
    assert_false(kn_poison_mismatch("stream", "stream|none"));
    assert_false(kn_poison_mismatch("set", "zset|set"));
    assert_true(kn_poison_mismatch("string", "hash"));
    assert_true(kn_poison_mismatch("hash", "list"));
    assert_true(kn_poison_mismatch("zset", "set"));
    assert_true(kn_poison_mismatch("set", "zset"));
    assert_true(kn_poison_mismatch("stream", "str"));
    assert_false(kn_poison_mismatch(NULL, "hash"));
}

static void test_reason(void **st)
{
    char buf[512];
    (void)st;
    kn_poison_reason(buf, sizeof(buf), "expanding the broadcast", wrongtype,
                     "kairan:bc:X:aud", "hash", "list|none", 5);
    assert_non_null(strstr(buf, "WRONGTYPE for kairan:bc:X:aud"));
    assert_non_null(strstr(buf, "a hash where kairan keeps a list"));
    assert_non_null(strstr(buf, "5 times"));
    assert_non_null(strstr(buf, "cancel the broadcast or delete the stray "
                                "key"));
    /* No key found: the error's first line, printable, quotes replaced,
     * at most 160 characters. */
    kn_poison_reason(buf, sizeof(buf), "committing a page",
                     "ERR \"bad\"\x01 value\nsecond line a@b.example", NULL,
                     NULL, NULL, 1);
    assert_non_null(strstr(buf, "Redis answered \"ERR ?bad?? value\""));
    assert_null(strstr(buf, "a@b.example"));
    assert_non_null(strstr(buf, "1 time;"));
    {
        char longerr[400];
        memset(longerr, 'E', sizeof(longerr) - 1);
        longerr[sizeof(longerr) - 1] = '\0';
        kn_poison_reason(buf, sizeof(buf), "x", longerr, NULL, NULL, NULL, 2);
        assert_true(strspn(strchr(buf, '"') + 1, "E") == 160);
    }
    /* A small buffer is cut, never overrun. */
    kn_poison_reason(buf, 16, "x", NULL, "k", "hash", "list", 5);
    assert_int_equal(strlen(buf), 15);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transient),
        cmocka_unit_test(test_decide_bound),
        cmocka_unit_test(test_decide_transient),
        cmocka_unit_test(test_mismatch),
        cmocka_unit_test(test_reason),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
