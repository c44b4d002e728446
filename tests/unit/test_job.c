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

#include "common/buf.h"
#include "common/kn.h"
#include "model/job.h"

static void test_single_round_trip(void **state)
{
    json_t *fb = json_array(), *j, *back;
    struct kn_job_rec rec;
    char *s;
    (void)state;
    json_array_append_new(fb,
                          kn_job_fallback("email", NULL, "k1.SEALED",
                                          "0123456789abcdef0123456789abcdef"));
    json_array_append_new(fb, kn_job_fallback("push", "apns", "k1.TOK", "ti"));
    j = kn_job_new("b-20261122-abc", "line:urgent", "line:bi", 1000, 2000, NULL,
                   fb);
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

/*
 * kn_job_group_json writes what the JSON tree would: the same object
 * (json_equal), read back by kn_job_parse; quotes, backslashes, control
 * characters and UTF-8 escaped or kept as JSON needs; not UTF-8: NULL.
 */
static void test_group_json(void **state)
{
    struct kn_job_member m[3] = {
        {"r-1", "k1.AAAA", "0123abcd"},
        {"r\"2\\x", "k1.BB\nB", "\x01\x1f"},
        {"山田", "k2.C_-", "ff"},
    };
    json_t *want =
        kn_job_new("b-20261206-000000000001", "line:urgent", "line:p3.0",
                   1795308258165LL, 1795394658165LL, NULL, NULL);
    json_t *r = json_array(), *a = json_array(), *i = json_array(), *got;
    struct kn_job_rec rec;
    char *s;

    for (int k = 0; k < 3; k++) {
        json_array_append_new(r, json_string(m[k].rcpt));
        json_array_append_new(a, json_string(m[k].sealed));
        json_array_append_new(i, json_string(m[k].bi));
    }
    json_object_set_new(want, KN_JOB_RCPT, r);
    json_object_set_new(want, KN_JOB_ADDR, a);
    json_object_set_new(want, KN_JOB_INDEX, i);
    s = kn_job_group_json("b-20261206-000000000001", "line:urgent", "line:p3.0",
                          1795308258165LL, 1795394658165LL, NULL, 0, 0, m, 3);
    assert_non_null(s);
    got = json_loads(s, 0, NULL);
    assert_non_null(got);
    assert_true(json_equal(got, want));
    assert_int_equal(kn_job_parse(got, &rec), 0);
    assert_int_equal(rec.n, 3);
    assert_string_equal(rec.rcpts[1], "r\"2\\x");
    assert_string_equal(rec.bindex[1], "\x01\x1f");
    assert_string_equal(rec.rcpts[2], "山田");
    assert_int_equal(rec.expires_ms, 1795394658165LL);
    kn_job_rec_free(&rec);
    json_decref(got);
    json_decref(want);
    free(s);

    /* Not UTF-8, in any field: NULL (the caller lets Lua build it). */
    m[2].sealed = "k1.\xff";
    assert_null(kn_job_group_json("b-1", "line:normal", "line:p0.0", 1, 2, NULL,
                                  0, 0, m, 3));
    m[2].sealed = "k2.C_-";
    assert_null(kn_job_group_json("b-\xc3", "line:normal", "line:p0.0", 1, 2,
                                  NULL, 0, 0, m, 3));
    /* a translation's language ("lg") and "il" for an all-inline group */
    s = kn_job_group_json("b-1", "line:normal", "line:p0.0", 1, 2, "en", 1, 0,
                          m, 2);
    got = json_loads(s, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(got, KN_JOB_LANG)),
                        "en");
    assert_true(json_is_true(json_object_get(got, KN_JOB_INLINE)));
    json_decref(got);
    free(s);
}

/* kn_job_read_plain against json_loadb + kn_job_parse on one text:
 * expect 0 (and the same record) or KN_EAGAIN. */
static void plain_vs_tree(const char *text, int want)
{
    size_t n = strlen(text);
    char *s = kn_xstrdup(text);
    struct kn_job_rec p, j;
    json_t *t = json_loads(text, 0, NULL);
    assert_int_equal(kn_job_read_plain(s, n, &p), want);
    if (want == 0) {
        assert_non_null(t);
        assert_int_equal(kn_job_parse(t, &j), 0);
        assert_string_equal(p.bcast, j.bcast);
        assert_int_equal(p.n, j.n);
        assert_int_equal(p.attempts, j.attempts);
        assert_int_equal(p.first_ms, j.first_ms);
        assert_int_equal(p.expires_ms, j.expires_ms);
        assert_int_equal(p.inl, j.inl);
        assert_int_equal(p.grec, j.grec);
        if (j.key)
            assert_string_equal(p.key, j.key);
        else
            assert_null(p.key);
        if (j.platform)
            assert_string_equal(p.platform, j.platform);
        else
            assert_null(p.platform);
        if (j.lang)
            assert_string_equal(p.lang, j.lang);
        else
            assert_null(p.lang);
        for (size_t k = 0; k < p.n; k++) {
            assert_string_equal(p.rcpts[k], j.rcpts[k]);
            assert_string_equal(p.sealed[k], j.sealed[k]);
            assert_string_equal(p.bindex[k], j.bindex[k]);
        }
        kn_job_rec_free(&p);
        kn_job_rec_free(&j);
    }
    json_decref(t);
    free(s);
}

/*
 * The plain reader takes what kairand and Lua's cjson write (escapes,
 * "\/", \u escapes and surrogate pairs, spaces) exactly as jansson does,
 * and leaves everything else to jansson (KN_EAGAIN): fallbacks, unknown
 * or repeated keys, fractions, bad JSON, a job kn_job_parse refuses.
 */
static void test_read_plain(void **state)
{
    struct kn_job_member m[2] = {{"r-1", "k1.AAAA", "0a"},
                                 {"r-2", "k1.BBBB", "0b"}};
    char *g = kn_job_group_json("b-1", "line:urgent", "line:p0.0", 5, 6, NULL,
                                0, 0, m, 2);
    char *gl = kn_job_group_json("b-1", "line:urgent", "line:p0.0", 5, 6,
                                 "zh-Hans", 0, 0, m, 2);
    json_t *one =
        kn_job_new("b-2", "push:normal", "push:ab", 7, 8, "apns", NULL);
    /* An inline broadcast's multicast: "il" was left to jansson, which
     * cost the worker 20 % of kairand's CPU on a 100,000-recipient
     * inline LINE broadcast. */
    char *gi = kn_job_group_json("b-1", "line:urgent", "line:p0.0", 5, 6, NULL,
                                 1, 0, m, 2);
    /* the expander's multicast: "gr" (its members' records name its key) */
    char *gg = kn_job_group_json("b-1", "line:urgent", "line:p0.0", 5, 6, NULL,
                                 1, 1, m, 2);
    char *os;
    struct kn_job_rec rec;
    kn_job_set_rcpt(one, "r-9", "k2.x_-", "ab");
    os = json_dumps(one, JSON_COMPACT);
    plain_vs_tree(g, 0);
    plain_vs_tree(gl, 0); /* "lg" is read plain too */
    plain_vs_tree(gi, 0); /* and "il" */
    assert_int_equal(kn_job_read_plain(gi, strlen(gi), &rec), 0);
    assert_int_equal(rec.inl, 1);
    assert_int_equal(rec.grec, 0);
    kn_job_rec_free(&rec);
    plain_vs_tree(gg, 0); /* and "gr" */
    assert_int_equal(kn_job_read_plain(gg, strlen(gg), &rec), 0);
    assert_int_equal(rec.grec, 1);
    assert_int_equal(rec.inl, 1);
    kn_job_rec_free(&rec);
    plain_vs_tree(os, 0);
    plain_vs_tree("{\"b\":\"b\",\"n\":0,\"il\":false,\"r\":\"r\",\"a\":\"a\","
                  "\"i\":\"i\"}",
                  0);
    plain_vs_tree("{\"b\":\"b\",\"n\":0,\"il\":1,\"r\":\"r\",\"a\":\"a\","
                  "\"i\":\"i\"}",
                  KN_EAGAIN);
    plain_vs_tree("{\"b\":\"b\",\"n\":0,\"il\":true,\"il\":true,\"r\":\"r\","
                  "\"a\":\"a\",\"i\":\"i\"}",
                  KN_EAGAIN);
    plain_vs_tree("{\"b\":\"b\",\"n\":0,\"il\":tru,\"r\":\"r\",\"a\":\"a\","
                  "\"i\":\"i\"}",
                  KN_EAGAIN);
    free(g);
    free(gi);
    free(gg);
    free(gl);
    free(os);
    json_decref(one);
    plain_vs_tree(" { \"b\" : \"b-1\" , \"n\" : -3 , \"r\" : \"r\\u5c71\\\"\" ,"
                  " \"a\" : \"k1.\\/x\\n\" , \"i\" : \"\\ud83d\\ude00\" } ",
                  0);
    plain_vs_tree("{\"b\":\"b\",\"n\":0,\"r\":[\"r\"],\"a\":[\"a\"],"
                  "\"i\":[\"i\"]}",
                  0);
    plain_vs_tree("{\"b\":\"b\",\"n\":0,\"r\":\"r\",\"a\":\"a\",\"i\":\"i\","
                  "\"fb\":[]}",
                  KN_EAGAIN);
    plain_vs_tree("{\"b\":\"b\",\"n\":0,\"n\":1,\"r\":\"r\",\"a\":\"a\","
                  "\"i\":\"i\"}",
                  KN_EAGAIN);
    plain_vs_tree("{\"b\":\"b\",\"n\":1.0,\"r\":\"r\",\"a\":\"a\",\"i\":\"i\"}",
                  KN_EAGAIN);
    plain_vs_tree("{\"b\":\"b\",\"n\":01,\"r\":\"r\",\"a\":\"a\",\"i\":\"i\"}",
                  KN_EAGAIN);
    plain_vs_tree("{\"b\":\"b\",\"n\":0,\"r\":\"r\",\"a\":\"a\",\"i\":\"i\"}x",
                  KN_EAGAIN);
    plain_vs_tree(
        "{\"b\":\"b\",\"n\":0,\"r\":\"r\",\"a\":\"a\",\"i\":\"\\ud800\"}",
        KN_EAGAIN);
    plain_vs_tree(
        "{\"b\":\"b\",\"n\":0,\"r\":\"r\",\"a\":\"a\",\"i\":\"\\u0000\"}",
        KN_EAGAIN);
    plain_vs_tree(
        "{\"b\":\"b\",\"n\":0,\"r\":\"r\",\"a\":\"a\",\"i\":\"\xff\"}",
        KN_EAGAIN);
    plain_vs_tree("{\"b\":\"b\",\"n\":0,\"r\":[],\"a\":[],\"i\":[]}",
                  KN_EAGAIN);
    plain_vs_tree("{\"b\":\"b\",\"n\":0,\"r\":[\"r\"],\"a\":\"a\",\"i\":\"i\"}",
                  KN_EAGAIN);
    plain_vs_tree("{\"n\":0,\"r\":\"r\",\"a\":\"a\",\"i\":\"i\"}", KN_EAGAIN);
    plain_vs_tree("{\"b\":\"b\",\"n\":0,\"r\":\"r\",\"a\":\"a\",\"i\":\"i\"",
                  KN_EAGAIN);
    plain_vs_tree("{}", KN_EAGAIN);
    plain_vs_tree("", KN_EAGAIN);
}

static void test_refused(void **state)
{
    static const char *const bad[] = {
        "[]",
        "{\"n\":0,\"r\":\"r\",\"a\":\"a\",\"i\":\"i\"}",     /* no b */
        "{\"b\":\"x\",\"r\":\"r\",\"a\":\"a\",\"i\":\"i\"}", /* no n */
        "{\"b\":\"x\",\"n\":\"0\",\"r\":\"r\",\"a\":\"a\",\"i\":\"i\"}",
        "{\"b\":\"x\",\"n\":0,\"r\":\"r\",\"a\":\"a\"}",    /* no i */
        "{\"b\":\"x\",\"n\":0,\"r\":[],\"a\":[],\"i\":[]}", /* empty */
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

/* Past KN_JOB_MAX_RCPTS, or a comma in a recipient or an index (the
 * scripts take them comma-joined): refused by both readers. */
static void test_limits(void **state)
{
    static const char *const comma[] = {
        "{\"b\":\"b\",\"n\":0,\"r\":[\"r\",\"s\"],\"a\":[\"a\",\"a\"],"
        "\"i\":[\"0a,0b\",\"0c\"]}",
        "{\"b\":\"b\",\"n\":0,\"r\":\"r,1\",\"a\":\"a\",\"i\":\"0a\"}",
    };
    struct kn_buf b = KN_BUF_INIT;
    struct kn_job_rec rec;
    char *s;
    (void)state;
    for (int n = KN_JOB_MAX_RCPTS; n <= KN_JOB_MAX_RCPTS + 1; n++) {
        json_t *t;
        kn_buf_reset(&b);
        kn_buf_add(&b, "{\"b\":\"b\",\"n\":0");
        for (int f = 0; f < 3; f++) {
            kn_buf_addf(&b, ",\"%c\":[", "rai"[f]);
            for (int k = 0; k < n; k++)
                kn_buf_addf(&b, "%s\"%c%d\"", k ? "," : "", "rai"[f], k);
            kn_buf_addc(&b, ']');
        }
        kn_buf_addc(&b, '}');
        plain_vs_tree(kn_buf_str(&b), n <= KN_JOB_MAX_RCPTS ? 0 : KN_EAGAIN);
        t = json_loads(kn_buf_str(&b), 0, NULL);
        assert_non_null(t);
        assert_int_equal(kn_job_parse(t, &rec),
                         n <= KN_JOB_MAX_RCPTS ? 0 : KN_EINVAL);
        kn_job_rec_free(&rec);
        json_decref(t);
    }
    kn_buf_free(&b);
    for (size_t k = 0; k < sizeof(comma) / sizeof(comma[0]); k++) {
        json_t *t = json_loads(comma[k], 0, NULL);
        plain_vs_tree(comma[k], KN_EAGAIN);
        assert_int_equal(kn_job_parse(t, &rec), KN_EINVAL);
        assert_null(rec.rcpts);
        json_decref(t);
    }
    s = kn_xstrdup(comma[0]);
    assert_int_equal(kn_job_read_plain(s, strlen(s), &rec), KN_EAGAIN);
    assert_null(rec.rcpts);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_round_trip),
        cmocka_unit_test(test_multicast_and_platform),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_group_json),
        cmocka_unit_test(test_read_plain),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
