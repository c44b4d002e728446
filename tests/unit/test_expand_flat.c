/*
 * test_expand_flat.c - inline audience entries read without a JSON tree
 * (dispatcher/expand_flat.c) and their jobs (flat_jobs in
 * dispatcher/expand_page.c, included to reach its statics).
 *
 *  - kn__flat_read accepts only what jansson reads as the same object:
 *    for hand-made hostile entries and for thousands of random mutations
 *    of real ones, "read flat" implies "jansson reads it, and to the same
 *    object" (kn__flat_json);
 *  - flat_jobs makes exactly the commit arguments and LINE members that
 *    recipient_jobs makes from the jansson tree, for every record shape
 *    and every broadcast setting they depend on (channels and their
 *    order, policy, ack, urgent, translations, inline).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dispatcher/expand_page.c"

/* ---- kn__flat_read ---- */

static void free_flat(struct kn__flat *f)
{
    free(f->buf);
    memset(f, 0, sizeof(*f));
}

/* Read flat or not: if so, jansson must read the same object. */
static int check_one(const char *s, size_t n)
{
    struct kn__flat f;
    json_t *want, *got;
    memset(&f, 0, sizeof(f));
    if (kn__flat_read(&f, s, n) != 0) {
        assert_null(f.buf); /* untouched */
        return 0;
    }
    want = json_loadb(s, n, 0, NULL);
    if (want == NULL)
        fail_msg("read flat but not by jansson: %.*s", (int)n, s);
    got = kn__flat_json(&f);
    if (!json_equal(want, got))
        fail_msg("read flat differently from jansson: %.*s", (int)n, s);
    json_decref(want);
    json_decref(got);
    free_flat(&f);
    return 1;
}

static void test_flat_read(void **state)
{
    static const char *yes[] = {
        "{}",
        "{\"id\":\"r1\"}",
        "{\"id\":\"s-001\",\"l\":\"AAAA+/=\",\"li\":\"bi-1_x\"}",
        "{\"id\":\"x\",\"nm\":\"n\",\"e\":\"E\",\"ei\":\"EI\",\"l\":\"L\","
        "\"li\":\"LI\"}",
        "{\"li\":\"LI\",\"l\":\"L\",\"id\":\"\"}",
        "{\"id\":\"a:b|c;d,e{f}[g]\"}",
    };
    static const char *no[] = {
        "",
        "{",
        "}",
        "[]",
        "{\"id\":\"r1\"",
        "{\"id\":\"r1\",}",
        "{,\"id\":\"r1\"}",
        "{\"id\" :\"r1\"}",
        " {\"id\":\"r1\"}",
        "{\"id\":\"r1\"} ",
        "{\"id\":\"r\\u0031\"}",     /* an escape: jansson's */
        "{\"id\":\"r\\\"1\"}",       /* an escaped quote */
        "{\"id\":\"\xe7\x94\x9f\"}", /* non-ASCII: jansson's */
        "{\"id\":\"r\x01\"}",        /* a control byte */
        "{\"id\":\"r1\",\"id\":\"r2\"}",
        "{\"id\":\"r1\",\"p\":[]}",
        "{\"id\":\"r1\",\"ldead\":true}",
        "{\"id\":\"r1\",\"pf\":{}}",
        "{\"id\":1}",
        "{\"id\":null}",
        "{\"id\"}",
        "{\"id\":}",
        "{\"id\"\"r1\"}",
        "{\"Id\":\"r1\"}",
        "{\"\":\"r1\"}",
        "{\"id\":\"r1\"}}",
    };
    for (size_t i = 0; i < KN_ARRAY_SIZE(yes); i++) {
        if (!check_one(yes[i], strlen(yes[i])))
            fail_msg("not read flat: %s", yes[i]);
    }
    for (size_t i = 0; i < KN_ARRAY_SIZE(no); i++) {
        struct kn__flat f;
        memset(&f, 0, sizeof(f));
        if (kn__flat_read(&f, no[i], strlen(no[i])) == 0)
            fail_msg("read flat: %s", no[i]);
        assert_null(f.buf);
    }
}

/* Random mutations of real entries: flat implies jansson's same object. */
static void test_flat_read_mutations(void **state)
{
    static const char *seeds[] = {
        "{\"id\":\"r000123\",\"l\":\"v1.QUJDREVGR0g.SUpLTE1OT1A\","
        "\"li\":\"Zm9vYmFy\"}",
        "{\"id\":\"s-9\",\"nm\":\"v1.bmFtZQ\",\"e\":\"v1.ZW1haWw\","
        "\"ei\":\"aW5kZXg\"}",
    };
    static const char alphabet[] = "{}[]\":,\\ az09+/=.-_\x01\x7f\xc3";
    unsigned seed = 12345;
    size_t accepted = 0;
    char buf[256];
    for (int round = 0; round < 20000; round++) {
        const char *s = seeds[round % KN_ARRAY_SIZE(seeds)];
        size_t n = strlen(s);
        int edits = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 3;
        memcpy(buf, s, n);
        for (int k = 0; k < edits; k++) {
            size_t at;
            seed = seed * 1103515245u + 12345u;
            at = (seed >> 16) % n;
            seed = seed * 1103515245u + 12345u;
            switch ((seed >> 16) % 3) {
            case 0: /* replace */
                buf[at] = alphabet[(seed >> 20) % (sizeof(alphabet) - 1)];
                break;
            case 1: /* delete */
                memmove(buf + at, buf + at + 1, n - at - 1);
                n--;
                break;
            default: /* insert */
                if (n + 1 < sizeof(buf)) {
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = alphabet[(seed >> 20) % (sizeof(alphabet) - 1)];
                    n++;
                }
                break;
            }
        }
        accepted += (size_t)check_one(buf, n);
    }
    /* Some mutations keep the shape (a letter for a letter). */
    assert_true(accepted > 100);
}

/* ---- flat_jobs against recipient_jobs ---- */

static const char *const addr_shapes[][4] = {
    /* e, ei, l, li */
    {NULL, NULL, NULL, NULL},         {"v1.ZQ", "ei-1", NULL, NULL},
    {NULL, NULL, "v1.bA", "li-1"},    {"v1.ZQ", "ei-1", "v1.bA", "li-1"},
    {"v1.ZQ", NULL, "v1.bA", "li-1"}, /* an address without its index */
    {NULL, "ei-1", "v1.bA", NULL},    {"v1.ZQ", "ei-1", NULL, "li-1"},
};

static const enum kn_channel chan_sets[][3] = {
    {KN_CH_LINE},
    {KN_CH_EMAIL},
    {KN_CH_PUSH},
    {KN_CH_EMAIL, KN_CH_LINE},
    {KN_CH_LINE, KN_CH_EMAIL},
    {KN_CH_LINE, KN_CH_PUSH, KN_CH_EMAIL},
    {KN_CH_PUSH, KN_CH_EMAIL, KN_CH_LINE},
    {KN_CH_EMAIL, KN_CH_EMAIL, KN_CH_LINE}, /* the same twice */
};
static const size_t chan_counts[] = {1, 1, 1, 2, 2, 3, 3, 3};

static char *entry_text(size_t shape, int with_name)
{
    const char *const *s = addr_shapes[shape];
    json_t *o = json_object();
    char *t;
    json_object_set_new(o, KN_DIR_ID, json_string("r-42"));
    if (with_name)
        json_object_set_new(o, KN_DIR_NAME, json_string("v1.bmFtZQ"));
    if (s[0])
        json_object_set_new(o, KN_DIR_EMAIL, json_string(s[0]));
    if (s[1])
        json_object_set_new(o, KN_DIR_EMAIL_INDEX, json_string(s[1]));
    if (s[2])
        json_object_set_new(o, KN_DIR_LINE, json_string(s[2]));
    if (s[3])
        json_object_set_new(o, KN_DIR_LINE_INDEX, json_string(s[3]));
    t = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return t;
}

/* The argument strings, with each job's creation time ("t") left out:
 * the two runs may fall in different milliseconds. */
static char *arg_at(const struct kn_argv *a, size_t i)
{
    json_t *j = json_loads(a->v[i], JSON_DECODE_ANY, NULL);
    char *s;
    if (!json_is_object(j)) {
        json_decref(j);
        return strdup(a->v[i]);
    }
    json_object_del(j, KN_JOB_FIRST);
    s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    return s;
}

static void compare(struct kn_expander *e, size_t shape, int with_name)
{
    char *text = entry_text(shape, with_name);
    struct kn__flat f;
    json_t *tree = json_loads(text, 0, NULL);
    struct kn_argv a1, a2;
    struct line_member l1[4], l2[4];
    size_t n1 = 0, n2 = 0;
    int opted = 0, r1, r2;
    int64_t p1[KN_QUEUE_STREAMS], p2[KN_QUEUE_STREAMS];

    memset(&f, 0, sizeof(f));
    assert_int_equal(kn__flat_read(&f, text, strlen(text)), 0);
    memset(l1, 0, sizeof(l1));
    memset(l2, 0, sizeof(l2));
    kn_argv_init(&a1);
    kn_argv_init(&a2);
    for (int i = 0; i < KN_QUEUE_STREAMS; i++)
        e->qs[i].pending = 0;
    r1 = recipient_jobs(e, &a1, tree, "r-42", l1, &n1, 0, &opted);
    for (int i = 0; i < KN_QUEUE_STREAMS; i++) {
        p1[i] = e->qs[i].pending;
        e->qs[i].pending = 0;
    }
    r2 = flat_jobs(e, &a2, &f, "r-42", l2, &n2);
    for (int i = 0; i < KN_QUEUE_STREAMS; i++)
        p2[i] = e->qs[i].pending;

    assert_int_equal(r1, r2);
    assert_int_equal(opted, 0);
    assert_int_equal(a1.n, a2.n);
    for (size_t i = 0; i < (size_t)a1.n; i++) {
        char *x = arg_at(&a1, i), *y = arg_at(&a2, i);
        if (strcmp(x, y) != 0)
            fail_msg("shape %zu: argument %zu differs:\n  tree: %s\n  flat: "
                     "%s",
                     shape, i, x, y);
        free(x);
        free(y);
    }
    for (int i = 0; i < KN_QUEUE_STREAMS; i++)
        assert_int_equal(p1[i], p2[i]);
    assert_int_equal(n1, n2);
    for (size_t i = 0; i < n1; i++) {
        assert_string_equal(l1[i].rcpt, l2[i].rcpt);
        assert_string_equal(l1[i].sealed, l2[i].sealed);
        assert_string_equal(l1[i].bi, l2[i].bi);
        assert_int_equal(l1[i].inl, l2[i].inl);
        assert_string_equal(l1[i].lang, l2[i].lang);
    }
    kn_argv_free(&a1);
    kn_argv_free(&a2);
    json_decref(tree);
    free_flat(&f);
    free(text);
}

static void test_flat_jobs_same(void **state)
{
    struct kn_expander e;
    struct xentry cur;
    size_t cases = 0;
    memset(&cur, 0, sizeof(cur));
    cur.bc = "bc-1";
    for (size_t cs = 0; cs < KN_ARRAY_SIZE(chan_sets); cs++) {
        for (int bits = 0; bits < 64; bits++) {
            memset(&e, 0, sizeof(e));
            e.cur = &cur;
            e.nchans = chan_counts[cs];
            memcpy(e.chans, chan_sets[cs], sizeof(e.chans[0]) * e.nchans);
            e.preferred = bits & 1;
            e.ack = (bits >> 1) & 1;
            e.urgent = (bits >> 2) & 1;
            e.inline_now = (bits >> 3) & 1;
            e.emergency = (bits >> 4) & 1;
            snprintf(e.langs, sizeof(e.langs), "%s",
                     (bits >> 5) & 1 ? "en,pt" : "");
            e.expires_ms = 1700000000000;
            for (size_t shape = 0; shape < KN_ARRAY_SIZE(addr_shapes);
                 shape++) {
                compare(&e, shape, 0);
                compare(&e, shape, 1);
                cases += 2;
            }
        }
    }
    assert_int_equal(cases, KN_ARRAY_SIZE(chan_sets) * 64 *
                                KN_ARRAY_SIZE(addr_shapes) * 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flat_read),
        cmocka_unit_test(test_flat_read_mutations),
        cmocka_unit_test(test_flat_jobs_same),
    };
    kn_log_min = KN_LOG_ERROR;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
