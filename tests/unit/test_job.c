/*
 * test_job.c - unit tests for model/job.c: a job built by the expander's
 * calls reads back the same, a LINE multicast job (arrays, as the
 * commit_page script writes it) reads back member by member, and what
 * kairand never writes is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/kn.h"
#include "model/job.h"

static void test_single_round_trip(void **state)
{
    json_t *fb = json_array(), *j, *back;
    struct kn_job_rec rec;
    char *s;
    (void)state;
    json_array_append_new(fb, kn_job_fallback("email", NULL, "k1.SEALED",
                                              "0123456789abcdef0123456789abcdef"));
    json_array_append_new(fb, kn_job_fallback("push", "apns", "k1.TOK", "ti"));
    j = kn_job_new("b-20261122-abc", "line:urgent", "line:bi", 1000, 2000,
                   NULL, fb);
    kn_job_set_rcpt(j, "r-1", "k1.LINE", "bi");
    s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    /* The stored format: one place names these letters; Lua reads them. */
    assert_string_equal(
        s, "{\"a\":\"k1.LINE\",\"b\":\"b-20261122-abc\",\"fb\":[{\"a\":"
           "\"k1.SEALED\",\"c\":\"email\",\"i\":"
           "\"0123456789abcdef0123456789abcdef\"},{\"a\":\"k1.TOK\",\"c\":"
           "\"push\",\"i\":\"ti\",\"k\":\"apns\"}],\"i\":\"bi\",\"key\":"
           "\"line:bi\",\"n\":0,\"q\":\"line:urgent\",\"r\":\"r-1\",\"t\":1000,"
           "\"x\":2000}");
    back = json_loads(s, 0, NULL);
    assert_int_equal(kn_job_parse(back, &rec), 0);
    assert_string_equal(rec.bcast, "b-20261122-abc");
    assert_string_equal(rec.queue, "line:urgent");
    assert_string_equal(rec.key, "line:bi");
    assert_null(rec.platform);
    assert_int_equal(rec.attempts, 0);
    assert_int_equal(rec.first_ms, 1000);
    assert_int_equal(rec.expires_ms, 2000);
    assert_int_equal(rec.n, 1);
    assert_string_equal(rec.rcpts[0], "r-1");
    assert_string_equal(rec.sealed[0], "k1.LINE");
    assert_string_equal(rec.bindex[0], "bi");
    assert_non_null(rec.fallback);
    assert_int_equal(json_array_size(rec.fallback), 2);
    kn_job_rec_free(&rec);
    json_decref(back);
    json_decref(j);
    json_decref(fb);
    free(s);
}

static void test_multicast_and_platform(void **state)
{
    struct kn_job_rec rec;
    json_t *j = json_loads(
        "{\"b\":\"b-1\",\"q\":\"line:normal\",\"key\":\"line:p3.0\",\"n\":2,"
        "\"r\":[\"r-1\",\"r-2\"],\"a\":[\"s1\",\"s2\"],\"i\":[\"i1\",\"i2\"]}",
        0, NULL);
    json_t *p = kn_job_new("b-2", "push:normal", "push:x", 1, 2, "fcm", NULL);
    (void)state;
    assert_int_equal(kn_job_parse(j, &rec), 0);
    assert_int_equal(rec.n, 2);
    assert_int_equal(rec.attempts, 2);
    assert_string_equal(rec.rcpts[1], "r-2");
    assert_string_equal(rec.sealed[1], "s2");
    assert_string_equal(rec.bindex[1], "i2");
    assert_int_equal(rec.first_ms, 0); /* absent */
    assert_null(rec.fallback);
    kn_job_rec_free(&rec);
    /* No recipients yet: not a job the worker can read. */
    assert_int_equal(kn_job_parse(p, &rec), KN_EINVAL);
    kn_job_set_rcpt(p, "r-3", "s3", "i3");
    assert_int_equal(kn_job_parse(p, &rec), 0);
    assert_string_equal(rec.platform, "fcm");
    assert_null(json_object_get(p, KN_JOB_FALLBACK)); /* empty: left out */
    kn_job_rec_free(&rec);
    json_decref(p);
    json_decref(j);
}

static void test_refused(void **state)
{
    static const char *const bad[] = {
        "[]",
        "{\"n\":0,\"r\":\"r\",\"a\":\"a\",\"i\":\"i\"}",          /* no b */
        "{\"b\":\"x\",\"r\":\"r\",\"a\":\"a\",\"i\":\"i\"}",      /* no n */
        "{\"b\":\"x\",\"n\":\"0\",\"r\":\"r\",\"a\":\"a\",\"i\":\"i\"}",
        "{\"b\":\"x\",\"n\":0,\"r\":\"r\",\"a\":\"a\"}",          /* no i */
        "{\"b\":\"x\",\"n\":0,\"r\":[],\"a\":[],\"i\":[]}",       /* empty */
        "{\"b\":\"x\",\"n\":0,\"r\":[\"r\"],\"a\":[\"a\"],\"i\":[]}",
        "{\"b\":\"x\",\"n\":0,\"r\":[\"r\",1],\"a\":[\"a\",\"b\"],"
        "\"i\":[\"i\",\"j\"]}",
        "{\"b\":\"x\",\"n\":0,\"r\":\"r\",\"a\":[\"a\"],\"i\":\"i\"}",
    };
    struct kn_job_rec rec;
    (void)state;
    assert_int_equal(kn_job_parse(NULL, &rec), KN_EINVAL);
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        json_t *j = json_loads(bad[k], 0, NULL);
        assert_non_null(j);
        assert_int_equal(kn_job_parse(j, &rec), KN_EINVAL);
        assert_null(rec.rcpts);
        json_decref(j);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_round_trip),
        cmocka_unit_test(test_multicast_and_platform),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
