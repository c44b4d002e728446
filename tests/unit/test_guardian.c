/*
 * test_guardian.c - unit tests for model/guardian.c (a child's guardians
 * in order, who is reachable, the list of bc:<id>:gs, how a report names
 * a guardian) and for what the next guardian adds to model/broadcast.c and
 * model/ack.c:
 * "escalate_to", the personal link naming its guardian (old links still
 * parse), and the guardian of a stored confirmation.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/kn.h"
#include "common/seal.h"
#include "model/broadcast.h"
#include "model/guardian.h"

#define ALL   (1u << KN_CH_EMAIL | 1u << KN_CH_LINE | 1u << KN_CH_PUSH)
#define EMAIL (1u << KN_CH_EMAIL)

/* A child whose first guardian has LINE only, the second e-mail but is
 * deactivated, the third e-mail, the fourth a dead push token. */
static const char CHILD[] =
    "{\"id\":\"c-1\",\"l\":\"sl\",\"li\":\"bl\","
    "\"g\":[{\"e\":\"se2\",\"ei\":\"be2\",\"off\":true},"
    "\"not an object\","
    "{\"e\":\"se3\",\"ei\":\"be3\",\"nm\":\"sealed\"},"
    "{\"p\":[{\"k\":\"fcm\",\"t\":\"st\",\"ti\":\"bt\",\"dead\":true}]}]}";

static void test_order_and_reach(void **state)
{
    json_t *c = json_loads(CHILD, 0, NULL);
    (void)state;
    assert_non_null(c);
    assert_int_equal(kn_guardian_count(c), 4); /* a non-object is skipped */
    assert_ptr_equal(kn_guardian_at(c, 0), c);
    assert_string_equal(
        json_string_value(json_object_get(kn_guardian_at(c, 2), "e")), "se3");
    assert_null(kn_guardian_at(c, 4));
    assert_null(kn_guardian_at(NULL, 0));
    assert_int_equal(kn_guardian_count(NULL), 0);
    /* reachable: on the channels, active, not dead */
    assert_true(kn_guardian_reachable(kn_guardian_at(c, 0), ALL));
    assert_false(kn_guardian_reachable(kn_guardian_at(c, 0), EMAIL));
    assert_false(kn_guardian_reachable(kn_guardian_at(c, 1), EMAIL));
    assert_true(kn_guardian_reachable(kn_guardian_at(c, 2), EMAIL));
    assert_false(kn_guardian_reachable(kn_guardian_at(c, 3), ALL));
    /* the next reachable from a number on */
    assert_int_equal(kn_guardian_next(c, 0, ALL), 0);
    assert_int_equal(kn_guardian_next(c, 0, EMAIL), 2);
    assert_int_equal(kn_guardian_next(c, 1, ALL), 2);
    assert_int_equal(kn_guardian_next(c, 3, ALL), -1);
    assert_int_equal(kn_guardian_next(c, 0, 1u << KN_CH_PUSH), -1);
    json_decref(c);
}

static void test_sent_list(void **state)
{
    char *a, *b, *c2;
    int k;
    int64_t ms;
    (void)state;
    a = kn_guardian_sent_add(NULL, 0, 1000);
    assert_string_equal(a, "0@1000");
    b = kn_guardian_sent_add(a, 2, 5000);
    assert_string_equal(b, "0@1000,2@5000");
    c2 = kn_guardian_sent_add(b, 0, 9000); /* already there: unchanged */
    assert_string_equal(c2, b);
    assert_true(kn_guardian_sent_has(b, 2));
    assert_false(kn_guardian_sent_has(b, 1));
    assert_int_equal(kn_guardian_sent_at(b, 1, &k, &ms), 0);
    assert_int_equal(k, 2);
    assert_true(ms == 5000);
    assert_int_equal(kn_guardian_sent_at(b, 2, &k, &ms), KN_EINVAL);
    /* what is not the list's shape reads as nothing */
    assert_int_equal(kn_guardian_sent_at("", 0, &k, &ms), KN_EINVAL);
    assert_int_equal(kn_guardian_sent_at("x@1", 0, &k, &ms), KN_EINVAL);
    assert_int_equal(kn_guardian_sent_at("1@", 0, &k, &ms), KN_EINVAL);
    assert_int_equal(kn_guardian_sent_at("99@5", 0, &k, &ms), KN_EINVAL);
    assert_int_equal(kn_guardian_sent_at(NULL, 0, &k, &ms), KN_EINVAL);
    free(a);
    free(b);
    free(c2);
}

static void test_label(void **state)
{
    char out[64];
    (void)state;
    assert_string_equal(kn_guardian_label(0, NULL, out, sizeof(out)),
                        "保護者1");
    assert_string_equal(kn_guardian_label(1, "", out, sizeof(out)), "保護者2");
    assert_string_equal(kn_guardian_label(1, "高橋 父", out, sizeof(out)),
                        "高橋 父");
}

static const struct kn_limits LIM = {1000, 100000, 100, 86400000LL, 0};

/* Parse a broadcast with extra top-level members; returns the result and
 * fills field. */
static int parse_with(const char *extra, struct kn_broadcast *b, char *err,
                      size_t errlen, char *field)
{
    char *json = kn_xasprintf(
        "{\"tenant\":\"t1\",\"subject\":\"s\",\"body\":\"b\","
        "\"channels\":[\"email\"],\"audience\":{\"groups\":[\"2-A\"]}%s}",
        extra);
    int rc =
        kn_broadcast_parse(json, strlen(json), &LIM, b, err, errlen, field, 64);
    free(json);
    return rc;
}

static void test_escalate_to(void **state)
{
    static const struct {
        const char *extra;
        const char *field, *says; /* NULL: accepted */
        int guardian;
    } rows[] = {
        {",\"ack\":true,\"escalate_after\":\"5m\","
         "\"escalate_to\":\"next_guardian\"",
         NULL, NULL, 1},
        {",\"ack\":true,\"escalate_after\":\"5m\","
         "\"escalate_to\":\"next_channel\"",
         NULL, NULL, 0},
        {",\"ack\":true,\"escalate_after\":\"5m\"", NULL, NULL, 0},
        {",\"ack\":true,\"escalate_after\":\"5m\",\"escalate_to\":\"x\"",
         "escalate_to", "next_guardian", 0},
        {",\"ack\":true,\"escalate_after\":\"5m\",\"escalate_to\":1",
         "escalate_to", NULL, 0},
        {",\"escalate_after\":\"5m\",\"escalate_to\":\"next_guardian\"",
         "escalate_to", "\"ack\"", 0},
        {",\"ack\":true,\"escalate_to\":\"next_guardian\"", "escalate_to",
         "escalate_after", 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct kn_broadcast b;
        char err[400], field[64] = "";
        int rc = parse_with(rows[i].extra, &b, err, sizeof(err), field);
        if (rows[i].field == NULL) {
            if (rc != 0)
                fail_msg("row %zu refused: %s: %s", i, field, err);
            assert_int_equal(b.escalate_guardian, rows[i].guardian);
            kn_broadcast_free(&b);
        } else {
            assert_true(rc < 0);
            assert_string_equal(field, rows[i].field);
            if (rows[i].says != NULL && strstr(err, rows[i].says) == NULL)
                fail_msg("row %zu: \"%s\" does not say %s", i, err,
                         rows[i].says);
        }
    }
}

static char keydir[256], keypath[300];

static int setup_keyring(void **state)
{
    struct kn_keyring *kr = NULL;
    char err[300];
    snprintf(keydir, sizeof(keydir), "%s/kn-test-guardian-XXXXXX",
             getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(keydir) == NULL)
        return -1;
    snprintf(keypath, sizeof(keypath), "%s/key", keydir);
    if (kn_keyfile_generate(keypath) != 0 ||
        kn_keyring_load(keypath, &kr, err, sizeof(err)) != 0)
        return -1;
    *state = kr;
    return 0;
}

static int teardown_keyring(void **state)
{
    kn_keyring_free(*state);
    unlink(keypath);
    return rmdir(keydir);
}

static void test_link_names_guardian(void **state)
{
    const struct kn_keyring *kr = *state;
    char *t, *bc, *rc;
    int g;
    t = kn_ack_token_guardian(kr, "b-1", "c-1", 1);
    assert_int_equal(kn_ack_parse_guardian(kr, t, &bc, &rc, &g), 0);
    assert_string_equal(bc, "b-1");
    assert_string_equal(rc, "c-1");
    assert_int_equal(g, 1);
    free(bc);
    free(rc);
    /* kn_ack_parse reads the new links too */
    assert_int_equal(kn_ack_parse(kr, t, &bc, &rc), 0);
    assert_string_equal(rc, "c-1");
    free(bc);
    free(rc);
    free(t);
    /* an old link (no guardian) still parses, naming none */
    t = kn_ack_token(kr, "b-1", "c-1");
    assert_int_equal(kn_ack_parse_guardian(kr, t, &bc, &rc, &g), 0);
    assert_int_equal(g, -1);
    assert_string_equal(rc, "c-1");
    free(bc);
    free(rc);
    free(t);
    /* negative: the old form */
    t = kn_ack_token_guardian(kr, "b-1", "c-1", -1);
    assert_int_equal(kn_ack_parse_guardian(kr, t, &bc, &rc, &g), 0);
    assert_int_equal(g, -1);
    free(bc);
    free(rc);
    free(t);
}

static void test_link_bad_guardian(void **state)
{
    /* Signed with the right key, but the guardian part is not 0..99
     * written plainly: refused. */
    static const char *const bad[] = {"b-1|c-1|",   "b-1|c-1|x",
                                      "b-1|c-1|07", "b-1|c-1|100",
                                      "b-1|c-1|-1", "b-1|c-1|1|2"};
    const struct kn_keyring *kr = *state;
    (void)kr;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char mac[33], *b64, *t, *bc, *rc;
        int g = 5;
        kn_blind_index(kr, "ack", bad[i], mac);
        b64 = kn_b64url_encode(bad[i], strlen(bad[i]));
        t = kn_xasprintf("%s.%s", b64, mac);
        if (kn_ack_parse_guardian(kr, t, &bc, &rc, &g) != KN_EINVAL)
            fail_msg("%s accepted", bad[i]);
        assert_null(bc);
        assert_null(rc);
        assert_int_equal(g, -1);
        free(b64);
        free(t);
    }
}

static void test_value_guardian(void **state)
{
    char *v;
    int64_t ms;
    int a;
    (void)state;
    v = kn_ack_value_guardian(1000, 2, NULL, 1);
    assert_int_equal(kn_ack_value_guardian_of(v), 1);
    assert_int_equal(kn_ack_value_parse(v, &ms, &a, NULL), 0);
    assert_true(ms == 1000);
    assert_int_equal(a, 2);
    free(v);
    v = kn_ack_value(1000, -1, NULL); /* names none */
    assert_int_equal(kn_ack_value_guardian_of(v), -1);
    assert_null(strstr(v, "\"g\""));
    free(v);
    assert_int_equal(kn_ack_value_guardian_of("1700000000000"), -1);
    assert_int_equal(kn_ack_value_guardian_of(NULL), -1);
    assert_int_equal(kn_ack_value_guardian_of("{\"t\":1,\"g\":\"1\"}"), -1);
    assert_int_equal(kn_ack_value_guardian_of("{\"t\":1,\"g\":-3}"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_reach),
        cmocka_unit_test(test_sent_list),
        cmocka_unit_test(test_label),
        cmocka_unit_test(test_escalate_to),
        cmocka_unit_test_setup_teardown(test_link_names_guardian, setup_keyring,
                                        teardown_keyring),
        cmocka_unit_test_setup_teardown(test_link_bad_guardian, setup_keyring,
                                        teardown_keyring),
        cmocka_unit_test(test_value_guardian),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
