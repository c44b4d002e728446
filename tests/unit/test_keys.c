/*
 * test_keys.c - key names cannot collide (queue/keys.h, common/kn.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/kn.h"
#include "queue/keys.h"

static void check_part(const char *in, const char *want)
{
    char *p = kn_key_part(in);
    assert_string_equal(p, want);
    free(p);
}

static void test_key_part(void **state)
{
    check_part("r-1001", "r-1001");
    check_part("A.b_c-9", "A.b_c-9");
    check_part("x:r1", "x%3Ar1");
    check_part("X:aud", "X%3Aaud");
    check_part("100%", "100%25");
    check_part("a b", "a%20b");
    check_part("{t}", "%7Bt%7D");
    check_part("*?[", "%2A%3F%5B");
    /* サッカー部: every byte of the UTF-8 encoded. */
    check_part("\xe3\x82\xb5", "%E3%82%B5");
    check_part("", "");
}

/* Every key suffix kairan uses, given as a part, stays inside its part. */
static void test_no_collision(void **state)
{
    static const char *const hostile[] = {
        "X:aud",   "X:r",     "X:ack",    ":aud", "x:r1", "a:b:c", "%3A",
        "X%3Aaud", "grp:t:g", "rcpt:t:i", "*",    "",     "x\r\ny"};
    for (size_t i = 0; i < KN_ARRAY_SIZE(hostile); i++) {
        char *p = kn_key_part(hostile[i]);
        assert_null(strchr(p, ':'));
        for (size_t j = 0; j < KN_ARRAY_SIZE(hostile); j++) {
            char *q = kn_key_part(hostile[j]);
            /* injective */
            assert_int_equal(strcmp(p, q) == 0, i == j);
            free(q);
        }
        free(p);
    }
    {
        char *a = kn_key_bc("k:", "X", ":aud"),
             *b = kn_key_bc("k:", "X:aud", "");
        assert_string_equal(a, "k:bc:X:aud");
        assert_string_equal(b, "k:bc:X%3Aaud");
        free(a);
        free(b);
    }
    {
        /* tenant "ume"'s "x:r1" is not tenant "ume:x"'s "r1" */
        char *a = kn_key_rcpt("k:", "ume", "x:r1");
        char *b = kn_key_rcpt("k:", "ume:x", "r1");
        char *g = kn_key_grp("k:", "ume", "x:r1");
        assert_string_equal(a, "k:rcpt:ume:x%3Ar1");
        assert_string_equal(b, "k:rcpt:ume%3Ax:r1");
        assert_string_not_equal(a, b);
        assert_string_equal(g, "k:grp:ume:x%3Ar1");
        free(a);
        free(b);
        free(g);
    }
    {
        char *i = kn_key_idem("k:", "sakura-hs");
        assert_string_equal(i, "k:idem:sakura-hs");
        free(i);
    }
}

static void test_tenant_and_name(void **state)
{
    assert_true(kn_tenant_valid("sakura-hs"));
    assert_true(kn_tenant_valid("A.b_c"));
    assert_false(kn_tenant_valid("ume:x"));
    assert_false(kn_tenant_valid(""));
    assert_false(kn_tenant_valid("-x"));
    assert_false(kn_tenant_valid("a b"));
    assert_false(kn_tenant_valid("\xe3\x82\xb5"));
    assert_true(kn_tenant_valid(
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
    assert_false(kn_tenant_valid(
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
    assert_true(kn_name_valid("b-20261205-0123456789ab"));
    assert_false(kn_name_valid("X:aud"));
    assert_false(kn_name_valid(".."));
}

/* Staff keys: a login, an address or a hash given from outside cannot
 * reach another tenant's or another account's key. */
static void test_staff_keys(void **state)
{
    char *a, *b;
    a = kn_key_staff("kairan:", "sakura", "sato");
    assert_string_equal(a, "kairan:staff:sakura:sato");
    free(a);
    /* login "x:sato" of tenant "sakura" is not tenant "sakura:x" */
    a = kn_key_staff("kairan:", "sakura", "x:sato");
    assert_string_equal(a, "kairan:staff:sakura:x%3Asato");
    free(a);
    a = kn_key_login_fail("kairan:", "sakura", "sato", "::1");
    assert_string_equal(a, "kairan:lfail:sakura:sato:%3A%3A1");
    free(a);
    /* an address cannot extend the login: (sato, "1:x") != ("sato:1", x) */
    a = kn_key_login_fail("kairan:", "sakura", "sato", "1:x");
    b = kn_key_login_fail("kairan:", "sakura", "sato:1", "x");
    assert_string_not_equal(a, b);
    free(a);
    free(b);
    a = kn_key_session("kairan:", "ab12");
    assert_string_equal(a, "kairan:sess:ab12");
    free(a);
    a = kn_key_session_pwtry("kairan:", "ab12");
    assert_string_equal(a, "kairan:sesspw:ab12");
    free(a);
    a = kn_key_staffs("kairan:", "sakura");
    assert_string_equal(a, "kairan:staffs:sakura");
    free(a);
    a = kn_key_staff_sessions("kairan:", "sakura", "sato");
    assert_string_equal(a, "kairan:stsess:sakura:sato");
    free(a);
    a = kn_key_login_spread("kairan:", "sakura", "sato");
    assert_string_equal(a, "kairan:lspread:sakura:sato");
    free(a);
    a = kn_key_login_untrusted("kairan:", "sakura", "sato");
    assert_string_equal(a, "kairan:luntr:sakura:sato");
    free(a);
    a = kn_key_device_fail("kairan:", "sakura", "sato", "AbC-_0");
    assert_string_equal(a, "kairan:ldev:sakura:sato:AbC-_0");
    free(a);
    /* a nonce cannot extend the login: (sato, "1:x") != ("sato:1", x) */
    a = kn_key_device_fail("kairan:", "sakura", "sato", "1:x");
    b = kn_key_device_fail("kairan:", "sakura", "sato:1", "x");
    assert_string_not_equal(a, b);
    free(a);
    free(b);
    a = kn_key_totp_used("kairan:", "sakura", "sato", 12345);
    assert_string_equal(a, "kairan:totpuse:sakura:sato:12345");
    free(a);
    a = kn_key_totp_fail("kairan:", "sakura", "sato");
    assert_string_equal(a, "kairan:totpfail:sakura:sato");
    free(a);
}

/* The console's reads and templates: one-part keys of the tenant. */
static void test_console_keys(void **state)
{
    char *a;
    a = kn_key_groups("kairan:", "sakura");
    assert_string_equal(a, "kairan:groups:sakura");
    free(a);
    a = kn_key_rcpts("kairan:", "sakura");
    assert_string_equal(a, "kairan:rcpts:sakura");
    free(a);
    a = kn_key_templates("kairan:", "sakura");
    assert_string_equal(a, "kairan:tpl:sakura");
    free(a);
    /* a tenant cannot reach another kind of key */
    a = kn_key_templates("kairan:", "a:b");
    assert_string_equal(a, "kairan:tpl:a%3Ab");
    free(a);
}

/* cred:<provider>:<account>: the APNs account as it is; a ':' in either
 * part is encoded, so no provider reaches another's credential. */
static void test_cred_keys(void **state)
{
    char *a, *b;
    a = kn_key_cred("kairan:", "apns", "DEF123GHIJ.ABC123DEFG.0123abcd");
    assert_string_equal(a, "kairan:cred:apns:DEF123GHIJ.ABC123DEFG.0123abcd");
    free(a);
    a = kn_key_cred("kairan:", "apns:x", "y");
    b = kn_key_cred("kairan:", "apns", "x:y");
    assert_string_equal(a, "kairan:cred:apns%3Ax:y");
    assert_string_equal(b, "kairan:cred:apns:x%3Ay");
    free(a);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_part),
        cmocka_unit_test(test_no_collision),
        cmocka_unit_test(test_tenant_and_name),
        cmocka_unit_test(test_staff_keys),
        cmocka_unit_test(test_console_keys),
        cmocka_unit_test(test_cred_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
