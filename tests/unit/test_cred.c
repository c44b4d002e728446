/*
 * test_cred.c - unit tests for model/cred.c, the stored form of a shared
 * provider credential (cred:<provider>:<account>): the record's fields
 * read back (absent, malformed, whole), and the sealed value with its
 * name and iat bound inside: it opens only as the credential it was
 * sealed as, never under another name, with another iat, with another
 * purpose, or changed by one character; kairanctl rekey's re-seal (open
 * with the purpose, seal again) keeps it opening.
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

#include "common/kn.h"
#include "common/seal.h"
#include "model/cred.h"

static char keydir[PATH_MAX];
static char keypath[PATH_MAX + 16];

#define NAME "apns:DEF123GHIJ.ABC123DEFG.0123456789abcdef"
#define JWT  "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJERUYxMjNHSElKIn0.c2ln"
#define IAT  1795308258000LL

static int setup_keyring(void **state)
{
    struct kn_keyring *kr = NULL;
    char err[300];
    snprintf(keydir, sizeof(keydir), "%s/kn-test-cred-XXXXXX",
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

static void test_record_parse(void **state)
{
    struct kn_cred_record r;
    /* nothing stored */
    assert_int_equal(kn_cred_record_parse(NULL, NULL, NULL, NULL, &r),
                     KN_ENOENT);
    assert_int_equal(r.gen, 0);
    /* a whole record */
    assert_int_equal(
        kn_cred_record_parse("3", "1795308258000", "1", "k1.x", &r), 0);
    assert_int_equal(r.gen, 3);
    assert_int_equal(r.iat_ms, IAT);
    assert_true(r.early);
    assert_string_equal(r.sealed, "k1.x");
    assert_int_equal(kn_cred_record_parse("1", "5", "0", "k1.x", &r), 0);
    assert_false(r.early);
    /* not a record: a field missing, not a number, out of range */
    static const char *const bad[][4] = {
        {"1", "5", "0", NULL},    {"1", "5", NULL, "k1.x"},
        {"1", NULL, "0", "k1.x"}, {NULL, "5", "0", "k1.x"},
        {"0", "5", "0", "k1.x"},  {"1", "0", "0", "k1.x"},
        {"-1", "5", "0", "k1.x"}, {"1", "5x", "0", "k1.x"},
        {"1", "5", "2", "k1.x"},  {"1", "5", "0", ""},
        {"1", " 5", "0", "k1.x"}, {"99999999999999999999", "5", "0", "k1.x"},
        {"x", "5", "0", "k1.x"},  {"1", "5", "yes", "k1.x"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        print_message("bad record %zu\n", i);
        assert_int_equal(kn_cred_record_parse(bad[i][0], bad[i][1], bad[i][2],
                                              bad[i][3], &r),
                         KN_EINVAL);
    }
}

static void test_seal_open(void **state)
{
    const struct kn_keyring *kr = *state;
    char *v = kn_cred_seal(kr, NAME, IAT, JWT), *out = NULL, *plain = NULL;
    char *again;
    size_t len = 0;
    assert_non_null(v);
    /* sealed: neither the token nor its parts in clear */
    assert_null(strstr(v, "eyJ"));
    assert_null(strstr(v, "DEF123GHIJ"));
    assert_int_equal(kn_cred_open(kr, NAME, IAT, v, &out), 0);
    assert_string_equal(out, JWT);
    kn_free_secret(out);
    /* another name, another iat: refused */
    assert_int_equal(
        kn_cred_open(kr, "apns:OTHERTEAM.ABC123DEFG.0123", IAT, v, &out),
        KN_EINVAL);
    assert_null(out);
    assert_int_equal(kn_cred_open(kr, NAME, IAT + 1000, v, &out), KN_EINVAL);
    assert_null(out);
    /* another purpose, a changed character, garbage: does not open */
    assert_int_not_equal(kn_unseal(kr, "push", v, &plain, NULL), 0);
    {
        char *t = strdup(v);
        size_t n = strlen(t);
        t[n - 3] = t[n - 3] == 'A' ? 'B' : 'A';
        assert_int_equal(kn_cred_open(kr, NAME, IAT, t, &out), KN_ECRYPTO);
        free(t);
    }
    assert_int_equal(kn_cred_open(kr, NAME, IAT, "k1.nonsense", &out),
                     KN_ECRYPTO);
    assert_int_equal(kn_cred_open(kr, NAME, IAT, NULL, &out), KN_ECRYPTO);
    /* rekey re-seals with the purpose alone: still this credential */
    assert_int_equal(kn_unseal(kr, KN_CRED_PURPOSE, v, &plain, &len), 0);
    again = kn_seal(kr, KN_CRED_PURPOSE, plain, len);
    kn_free_secret(plain);
    assert_string_not_equal(again, v); /* a fresh nonce */
    assert_int_equal(kn_cred_open(kr, NAME, IAT, again, &out), 0);
    assert_string_equal(out, JWT);
    kn_free_secret(out);
    free(again);
    free(v);
}

/* Sealed JSON that is not a credential's: opens, but is refused. */
static void test_open_not_a_credential(void **state)
{
    const struct kn_keyring *kr = *state;
    static const char *const plains[] = {
        "not json",
        "[]",
        "{\"c\":\"" NAME "\",\"iat\":1795308258000}",
        "{\"c\":\"" NAME "\",\"iat\":\"1795308258000\",\"v\":\"x\"}",
        "{\"c\":\"" NAME "\",\"iat\":1795308258000,\"v\":\"\"}",
        "{\"iat\":1795308258000,\"v\":\"x\"}",
    };
    for (size_t i = 0; i < sizeof(plains) / sizeof(plains[0]); i++) {
        char *v = kn_seal(kr, KN_CRED_PURPOSE, plains[i], strlen(plains[i]));
        char *out = NULL;
        print_message("plain %zu\n", i);
        assert_int_equal(kn_cred_open(kr, NAME, IAT, v, &out), KN_EINVAL);
        assert_null(out);
        free(v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_parse),
        cmocka_unit_test(test_seal_open),
        cmocka_unit_test(test_open_not_a_credential),
    };
    return cmocka_run_group_tests(tests, setup_keyring, teardown_keyring);
}
