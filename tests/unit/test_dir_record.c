/*
 * test_dir_record.c - unit tests for model/directory.c, the directory
 * record (rcpt:<T>:<id> field "c", and inline audience entries): what the
 * builder stores (keys, sealing, blind indexes, the order the import has
 * always written) and that the reader gets back every part of it,
 * including the marks other code adds (ldead, dead), and nothing from
 * members of the wrong type.
 */
#include <limits.h>
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
#include "model/directory.h"

static char keydir[PATH_MAX];
static char keypath[PATH_MAX + 16];

static int setup_keyring(void **state)
{
    struct kn_keyring *kr = NULL;
    char err[300];
    snprintf(keydir, sizeof(keydir), "%s/kn-test-dir-XXXXXX",
             getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(keydir) == NULL)
        return -1;
    snprintf(keypath, sizeof(keypath), "%s/key", keydir);
    if (kn_keyfile_generate(keypath) != 0)
        return -1;
    if (kn_keyring_load(keypath, &kr, err, sizeof(err)) != 0)
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

static void assert_unseals(const struct kn_keyring *kr, const char *purpose,
                           const char *sealed, const char *want)
{
    char *plain = NULL;
    assert_non_null(sealed);
    assert_int_equal(kn_unseal(kr, purpose, sealed, &plain, NULL), 0);
    assert_string_equal(plain, want);
    free(plain);
}

static void test_build_and_read(void **state)
{
    const struct kn_keyring *kr = *state;
    char bi_e[33], bi_l[33], bi_p[33], want[33], *s;
    json_t *c = kn_dir_new("r-1001"), *back;
    struct kn_dir_rec d;

    kn_dir_set_name(c, kr, "山田 花子");
    kn_dir_set_address(c, kr, "email", "a..b.@docomo.ne.jp", bi_e);
    kn_dir_set_address(c, kr, "line", "U4af4980629d0b1c2e3f4a5b6c7d8e9f0",
                       bi_l);
    kn_dir_add_push(c, kr, "fcm", "fcm-token-1", bi_p);
    kn_dir_add_push(c, kr, "apns", "00aa", NULL);
    kn_dir_add_channel(c, "line");
    kn_dir_add_channel(c, "email");

    /* The blind index is the one the bidx:<T>:<channel>:<bi> sets use. */
    kn_blind_index(kr, "email", "a..b.@docomo.ne.jp", want);
    assert_string_equal(bi_e, want);
    kn_blind_index(kr, "push", "fcm-token-1", want);
    assert_string_equal(bi_p, want);

    /* Stored as compact JSON, keys in the order the import always wrote:
     * what rcpt_upsert compares to tell a changed record. */
    s = json_dumps(c, JSON_COMPACT);
    assert_non_null(strstr(s, "{\"id\":\"r-1001\",\"nm\":\"k"));
    assert_non_null(strstr(s, "\",\"e\":\"k"));
    assert_non_null(strstr(s, "\",\"p\":[{\"k\":\"fcm\",\"t\":\"k"));
    assert_non_null(strstr(s, "\"ch\":[\"line\",\"email\"]}"));
    assert_null(strstr(s, "docomo")); /* never plaintext */
    back = json_loads(s, 0, NULL);
    free(s);

    /* Marks written elsewhere (LINE unfollow, a dead push token). */
    json_object_set_new(back, KN_DIR_LINE_DEAD, json_true());
    json_object_set_new(json_array_get(json_object_get(back, KN_DIR_PUSH), 1),
                        KN_DIR_PUSH_DEAD, json_true());

    assert_int_equal(kn_dir_parse(back, &d), 0);
    assert_string_equal(d.id, "r-1001");
    assert_unseals(kr, "name", d.name, "山田 花子");
    assert_unseals(kr, "email", d.email, "a..b.@docomo.ne.jp");
    assert_string_equal(d.email_index, bi_e);
    assert_unseals(kr, "line", d.line, "U4af4980629d0b1c2e3f4a5b6c7d8e9f0");
    assert_string_equal(d.line_index, bi_l);
    assert_true(d.line_dead);
    assert_int_equal(d.npush, 2);
    assert_string_equal(d.push[0].platform, "fcm");
    assert_unseals(kr, "push", d.push[0].token, "fcm-token-1");
    assert_string_equal(d.push[0].index, bi_p);
    assert_false(d.push[0].dead);
    assert_string_equal(d.push[1].platform, "apns");
    assert_true(d.push[1].dead);
    assert_int_equal(d.nchannels, 2);
    assert_string_equal(d.channels[0], "line");
    assert_string_equal(d.channels[1], "email");
    kn_dir_rec_free(&d);
    json_decref(back);
    json_decref(c);
}

static void test_read_partial_and_wrong(void **state)
{
    struct kn_dir_rec d;
    json_t *c =
        json_loads("{\"id\":7,\"e\":\"k1.x\",\"p\":[3,{\"t\":\"k1.t\"}],"
                   "\"ch\":[\"push\",1,\"line\"],\"ldead\":1}",
                   0, NULL);
    json_t *arr = json_array();
    (void)state;
    assert_int_equal(kn_dir_parse(c, &d), 0);
    assert_null(d.id); /* not a string */
    assert_string_equal(d.email, "k1.x");
    assert_null(d.email_index);
    assert_null(d.line);
    assert_false(d.line_dead); /* only true marks it */
    assert_int_equal(d.npush, 1);
    assert_null(d.push[0].platform);
    assert_string_equal(d.push[0].token, "k1.t");
    assert_int_equal(d.nchannels, 2);
    assert_string_equal(d.channels[1], "line");
    kn_dir_rec_free(&d);
    assert_int_equal(kn_dir_parse(arr, &d), KN_EINVAL);
    assert_int_equal(kn_dir_parse(NULL, &d), KN_EINVAL);
    assert_int_equal(d.npush, 0);
    assert_null(d.push);
    json_decref(arr);
    json_decref(c);
}

static void test_prefs(void **state)
{
    json_t *g = json_loads("{\"pf\": {\"lg\": \"en\", \"ox\": [\"event\", 3]}}",
                           0, NULL);
    json_t *bad =
        json_loads("{\"pf\": {\"lg\": \"EN;x\", \"ox\": \"event\"}}", 0, NULL);

    (void)state;
    assert_true(kn_lang_valid("ja"));
    assert_true(kn_lang_valid("fil"));
    assert_true(kn_lang_valid("zh-Hans"));
    assert_true(kn_lang_valid("pt-BR"));
    assert_false(kn_lang_valid(NULL));
    assert_false(kn_lang_valid(""));
    assert_false(kn_lang_valid("j"));
    assert_false(kn_lang_valid("JA"));
    assert_false(kn_lang_valid("english"));
    assert_false(kn_lang_valid("en-"));
    assert_false(kn_lang_valid("en-x"));
    assert_false(kn_lang_valid("en-abcdefghi"));
    assert_false(kn_lang_valid("en\r\n"));
    assert_false(kn_lang_valid("en-US-x"));
    assert_string_equal(kn_dir_lang(g), "en");
    assert_string_equal(kn_dir_lang(bad), "ja");
    assert_string_equal(kn_dir_lang(NULL), "ja");
    assert_true(kn_dir_opted_out(g, "event"));
    assert_false(kn_dir_opted_out(g, "notice"));
    assert_false(kn_dir_opted_out(g, NULL));
    assert_false(kn_dir_opted_out(bad, "event"));
    json_decref(g);
    json_decref(bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_and_read),
        cmocka_unit_test(test_read_partial_and_wrong),
        cmocka_unit_test(test_prefs),
    };
    return cmocka_run_group_tests(tests, setup_keyring, teardown_keyring);
}
