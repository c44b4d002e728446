/*
 * test_gtoken.c - signed guardian links (model/gtoken.h): round trip,
 * expiry, forgery, another use, another key, malformed input.
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

#include "common/codec.h"
#include "common/kn.h"
#include "common/seal.h"
#include "model/gtoken.h"

#define IDX "0123456789abcdef0123456789abcdef"

static char keydir[PATH_MAX];
static char keypath[PATH_MAX + 16];

static struct kn_keyring *load(const char *name)
{
    struct kn_keyring *kr = NULL;
    char path[PATH_MAX + 32], err[300];
    snprintf(path, sizeof(path), "%s/%s", keydir, name);
    if (kn_keyfile_generate(path) != 0 ||
        kn_keyring_load(path, &kr, err, sizeof(err)) != 0)
        return NULL;
    unlink(path);
    return kr;
}

static int setup(void **state)
{
    snprintf(keydir, sizeof(keydir), "%s/kn-test-gtoken-XXXXXX",
             getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(keydir) == NULL)
        return -1;
    snprintf(keypath, sizeof(keypath), "%s/key", keydir);
    *state = load("key");
    return *state == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    kn_keyring_free(*state);
    return rmdir(keydir);
}

static void test_round_trip(void **state)
{
    struct kn_keyring *kr = *state;
    struct kn_gtoken t;
    char *tok = kn_gtoken_make(kr, KN_GTOKEN_UNSUB, "sakura-hs", "s-1001", IDX,
                               2000, "行事|予定");
    assert_non_null(tok);
    assert_null(strpbrk(tok, "+/=|\r\n "));
    assert_int_equal(kn_gtoken_parse(kr, tok, KN_GTOKEN_UNSUB, 1999, &t), 0);
    assert_int_equal(t.use, KN_GTOKEN_UNSUB);
    assert_string_equal(t.tenant, "sakura-hs");
    assert_string_equal(t.child, "s-1001");
    assert_string_equal(t.index, IDX);
    assert_string_equal(t.extra, "行事|予定");
    assert_int_equal(t.expires_ms, 2000);
    kn_gtoken_free(&t);
    /* expired: genuine, filled, but KN_ETIMEDOUT */
    assert_int_equal(kn_gtoken_parse(kr, tok, KN_GTOKEN_UNSUB, 2000, &t),
                     KN_ETIMEDOUT);
    assert_string_equal(t.child, "s-1001");
    kn_gtoken_free(&t);
    /* another use */
    assert_int_equal(kn_gtoken_parse(kr, tok, KN_GTOKEN_MYPAGE, 0, &t),
                     KN_EINVAL);
    assert_null(t.tenant);
    free(tok);
    /* never expires */
    tok = kn_gtoken_make(kr, KN_GTOKEN_MYPAGE, "t1", "c1", IDX, 0, NULL);
    assert_int_equal(kn_gtoken_parse(kr, tok, KN_GTOKEN_MYPAGE, INT64_MAX, &t),
                     0);
    assert_string_equal(t.extra, "");
    kn_gtoken_free(&t);
    free(tok);
}

static void test_forged(void **state)
{
    struct kn_keyring *kr = *state, *other = load("other");
    struct kn_gtoken t;
    char *tok = kn_gtoken_make(kr, KN_GTOKEN_MYPAGE, "t1", "c1", IDX, 0, "");
    char *b64, *forged;
    size_t n = strlen(tok);

    assert_non_null(other);
    /* another key file */
    assert_int_equal(kn_gtoken_parse(other, tok, KN_GTOKEN_MYPAGE, 0, &t),
                     KN_EINVAL);
    /* a flipped MAC digit */
    tok[n - 1] = tok[n - 1] == '0' ? '1' : '0';
    assert_int_equal(kn_gtoken_parse(kr, tok, KN_GTOKEN_MYPAGE, 0, &t),
                     KN_EINVAL);
    /* another child with the old MAC */
    b64 = kn_b64url_encode("g1|m|t1|c2|" IDX "|0|",
                           strlen("g1|m|t1|c2|" IDX "|0|"));
    forged = kn_xasprintf("%s%s", b64, strchr(tok, '.'));
    assert_int_equal(kn_gtoken_parse(kr, forged, KN_GTOKEN_MYPAGE, 0, &t),
                     KN_EINVAL);
    free(b64);
    free(forged);
    free(tok);
    kn_keyring_free(other);
}

static void test_malformed(void **state)
{
    struct kn_keyring *kr = *state;
    struct kn_gtoken t;
    char big[KN_GTOKEN_MAX + 2];
    const char *bad[] = {
        "",  ".", "abc", "abc.0123", "!!!!.0123456789abcdef0123456789abcdef",
        NULL};

    for (int i = 0; bad[i] != NULL; i++)
        assert_int_equal(kn_gtoken_parse(kr, bad[i], KN_GTOKEN_MYPAGE, 0, &t),
                         KN_EINVAL);
    assert_int_equal(kn_gtoken_parse(kr, NULL, KN_GTOKEN_MYPAGE, 0, &t),
                     KN_EINVAL);
    memset(big, 'A', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(kn_gtoken_parse(kr, big, KN_GTOKEN_MYPAGE, 0, &t),
                     KN_EINVAL);
    /* what cannot be made */
    assert_null(kn_gtoken_make(kr, 'x', "t1", "c1", IDX, 0, ""));
    assert_null(kn_gtoken_make(kr, KN_GTOKEN_MYPAGE, "t 1", "c1", IDX, 0, ""));
    assert_null(kn_gtoken_make(kr, KN_GTOKEN_MYPAGE, "t1", "c|1", IDX, 0, ""));
    assert_null(kn_gtoken_make(kr, KN_GTOKEN_MYPAGE, "t1", "c1", "ABC", 0, ""));
    assert_null(kn_gtoken_make(kr, KN_GTOKEN_MYPAGE, "t1", "c1", IDX, -1, ""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_forged),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
