/*
 * test_unsub.c - the pure parts of the one-click unsubscribe (issue 16):
 * which categories are emergency ones (model/label.h), the URL of an
 * e-mail (model/gtoken.h kn_gtoken_unsub_url: https only), the POST body
 * RFC 8058 requires (urlencoded or multipart), and the guardian's choices
 * the expander reads (model/directory.h: kn_dir_stopped, kn_dir_order,
 * kn_dir_opted_out).
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
#include "model/gtoken.h"
#include "model/label.h"

#define IDX "0123456789abcdef0123456789abcdef"

static char keydir[PATH_MAX];

static int setup(void **state)
{
    char path[PATH_MAX + 16], err[300];
    struct kn_keyring *kr = NULL;
    snprintf(keydir, sizeof(keydir), "%s/kn-test-unsub-XXXXXX",
             getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(keydir) == NULL)
        return -1;
    snprintf(path, sizeof(path), "%s/key", keydir);
    if (kn_keyfile_generate(path) != 0 ||
        kn_keyring_load(path, &kr, err, sizeof(err)) != 0)
        return -1;
    unlink(path);
    *state = kr;
    return 0;
}

static int teardown(void **state)
{
    kn_keyring_free(*state);
    return rmdir(keydir);
}

static void test_emergency(void **state)
{
    assert_true(kn_category_emergency("emergency", NULL));
    assert_true(kn_category_emergency("emergency", ""));
    assert_true(kn_category_emergency("地震", "emergency"));
    assert_false(kn_category_emergency("行事", ""));
    assert_false(kn_category_emergency("行事", NULL));
    assert_false(kn_category_emergency("notice", NULL));
    assert_false(kn_category_emergency("drill", NULL));
    assert_false(kn_category_emergency(NULL, NULL));
}

static void test_url(void **state)
{
    struct kn_keyring *kr = *state;
    struct kn_gtoken t;
    int64_t now = 1795298400000LL;
    char *u = kn_gtoken_unsub_url(kr, "https://kairan.example.jp", "sakura-hs",
                                  "c-1", IDX, "行事", now);
    const char *pre = "https://kairan.example.jp/u/";
    assert_non_null(u);
    assert_memory_equal(u, pre, strlen(pre));
    assert_int_equal(
        kn_gtoken_parse(kr, u + strlen(pre), KN_GTOKEN_UNSUB, now, &t), 0);
    assert_string_equal(t.tenant, "sakura-hs");
    assert_string_equal(t.child, "c-1");
    assert_string_equal(t.index, IDX);
    assert_string_equal(t.extra, "行事");
    assert_true(t.expires_ms == now + (int64_t)KN_GTOKEN_UNSUB_DAYS * 86400000);
    kn_gtoken_free(&t);
    /* still valid a year on, expired after KN_GTOKEN_UNSUB_DAYS */
    assert_int_equal(kn_gtoken_parse(kr, u + strlen(pre), KN_GTOKEN_UNSUB,
                                     now + 365LL * 86400000, &t),
                     0);
    kn_gtoken_free(&t);
    assert_int_equal(kn_gtoken_parse(kr, u + strlen(pre), KN_GTOKEN_UNSUB,
                                     now + 401LL * 86400000, &t),
                     KN_ETIMEDOUT);
    kn_gtoken_free(&t);
    /* a my-page link is not an unsubscribe link */
    assert_int_equal(
        kn_gtoken_parse(kr, u + strlen(pre), KN_GTOKEN_MYPAGE, now, &t),
        KN_EINVAL);
    free(u);
    /* RFC 8058 requires HTTPS: none over http; none without a category */
    assert_null(kn_gtoken_unsub_url(kr, "http://kairan.example.jp", "sakura-hs",
                                    "c-1", IDX, "行事", now));
    assert_null(
        kn_gtoken_unsub_url(kr, NULL, "sakura-hs", "c-1", IDX, "行事", now));
    assert_null(kn_gtoken_unsub_url(kr, "https://k.example.jp", "sakura-hs",
                                    "c-1", IDX, "", now));
    assert_null(kn_gtoken_unsub_url(kr, "https://k.example.jp", "bad tenant",
                                    "c-1", IDX, "行事", now));
}

static int form(const char *ctype, const char *body)
{
    return kn_gtoken_unsub_form_ok(ctype, body, strlen(body));
}

static void test_form(void **state)
{
    const char *ue = "application/x-www-form-urlencoded";
    const char *mp = "multipart/form-data; boundary=----b0";
    assert_true(form(ue, "List-Unsubscribe=One-Click"));
    assert_true(form("Application/X-WWW-Form-Urlencoded; charset=UTF-8",
                     "x=1&List-Unsubscribe=One-Click"));
    assert_false(form(ue, "List-Unsubscribe=One-Clickx"));
    assert_false(form(ue, "List-Unsubscribe=one-click"));
    assert_false(form(ue, ""));
    assert_false(form(NULL, "List-Unsubscribe=One-Click"));
    assert_false(form("text/plain", "List-Unsubscribe=One-Click"));
    assert_false(form("application/json", "{\"List-Unsubscribe\":1}"));
    assert_true(form(mp, "------b0\r\n"
                         "Content-Disposition: form-data; "
                         "name=\"List-Unsubscribe\"\r\n\r\n"
                         "One-Click\r\n"
                         "------b0--\r\n"));
    assert_true(form("multipart/form-data; boundary=\"q b\"",
                     "--q b\r\nContent-Disposition: form-data; name=\"a\"\r\n"
                     "\r\n1\r\n--q b\r\nContent-Disposition: form-data; "
                     "name=List-Unsubscribe\r\n\r\nOne-Click\r\n--q b--\r\n"));
    assert_false(form(mp, "------b0\r\n"
                          "Content-Disposition: form-data; "
                          "name=\"List-Unsubscribe\"\r\n\r\n"
                          "Two-Clicks\r\n"
                          "------b0--\r\n"));
    assert_false(form(mp, "------b0\r\n"
                          "Content-Disposition: form-data; name=\"other\"\r\n"
                          "\r\nOne-Click\r\n------b0--\r\n"));
    assert_false(form("multipart/form-data", "List-Unsubscribe=One-Click"));
    assert_false(form(mp, "List-Unsubscribe=One-Click"));
    assert_false(form(mp, "------b0--\r\n"));
}

static void test_prefs(void **state)
{
    json_t *g = json_loads("{\"ch\":[\"email\"],\"pf\":{\"ch\":[\"line\","
                           "\"email\"],\"ox\":[\"行事\"],\"xc\":[\"line\"]}}",
                           0, NULL);
    json_t *h = json_loads("{\"ch\":[\"push\"],\"pf\":{\"ch\":[]}}", 0, NULL);
    assert_non_null(g);
    assert_true(kn_dir_opted_out(g, "行事"));
    assert_false(kn_dir_opted_out(g, "notice"));
    assert_true(kn_dir_stopped(g, "line"));
    assert_false(kn_dir_stopped(g, "email"));
    assert_false(kn_dir_stopped(h, "line"));
    /* the guardian's own order wins; an empty one gives the import's */
    assert_string_equal(json_string_value(json_array_get(kn_dir_order(g), 0)),
                        "line");
    assert_string_equal(json_string_value(json_array_get(kn_dir_order(h), 0)),
                        "push");
    json_decref(g);
    json_decref(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_emergency),
        cmocka_unit_test(test_url),
        cmocka_unit_test(test_form),
        cmocka_unit_test(test_prefs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
