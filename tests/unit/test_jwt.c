/*
 * test_jwt.c - RS256 and ES256 compact JWS: what is signed verifies, a
 * changed payload does not, ES256 signatures are raw r||s (64 bytes, what
 * JWS wants, not OpenSSL's DER), and the wrong key type is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/jwt.h"
#include "common/seal.h"

static void check(EVP_PKEY *k, const char *alg, long want_siglen)
{
    const char *hdr = "{\"alg\":\"X\",\"kid\":\"ABC123DEFG\"}";
    const char *pl = "{\"iss\":\"DEF123GHIJ\",\"iat\":1795308258}";
    char *jwt = kn_jwt_sign(k, alg, hdr, pl), *bad;
    unsigned char *sig = NULL;
    const char *dot;
    assert_non_null(jwt);
    assert_true(kn_jwt_verify(k, jwt));
    dot = strrchr(jwt, '.');
    assert_int_equal(kn_b64url_decode(dot + 1, &sig), want_siglen);
    free(sig);
    /* Flip one character of the payload: the signature no longer holds. */
    bad = strdup(jwt);
    bad[strchr(bad, '.') - bad + 3] ^= 1;
    assert_false(kn_jwt_verify(k, bad));
    free(bad);
    free(jwt);
}

static void test_rs256(void **state)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    assert_non_null(k);
    check(k, "RS256", 256);
    assert_null(kn_jwt_sign(k, "ES256", "{}", "{}")); /* wrong key type */
    EVP_PKEY_free(k);
}

static void test_es256(void **state)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(k);
    for (int i = 0; i < 20; i++) /* r or s with a leading zero byte too */
        check(k, "ES256", 64);
    assert_null(kn_jwt_sign(k, "RS256", "{}", "{}"));
    assert_null(kn_jwt_sign(k, "HS256", "{}", "{}"));
    EVP_PKEY_free(k);
}

static void test_pem(void **state)
{
    char err[128];
    assert_null(kn_jwt_key_pem("not a key", err, sizeof(err)));
    assert_non_null(strstr(err, "PEM"));
    assert_null(kn_jwt_key_file("/nonexistent/key.p8", err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/key.p8"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rs256),
        cmocka_unit_test(test_es256),
        cmocka_unit_test(test_pem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
