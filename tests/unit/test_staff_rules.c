/*
 * test_staff_rules.c - unit tests for the staff-account rules of model/:
 * TOTP against RFC 6238's SHA-1 test vectors (appendix B) and replay,
 * base32, the password policy and the bundled common list, Argon2id's
 * stored parameters, session ids, cookies and the public origin.
 * No timing assertions: only values.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "common/kn.h"
#include "model/password.h"
#include "model/session.h"
#include "model/totp.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const unsigned char rfc_key[] = "12345678901234567890";

/* RFC 6238 appendix B, SHA-1 column (8 digits). */
static void test_totp_rfc6238_vectors(void **state)
{
    static const struct {
        uint64_t t;
        uint32_t code8;
    } v[] = {{59, 94287082},         {1111111109, 7081804},
             {1111111111, 14050471}, {1234567890, 89005924},
             {2000000000, 69279037}, {20000000000ULL, 65353130}};
    (void)state;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        assert_int_equal(kn_hotp(rfc_key, 20, v[i].t / 30, 8), v[i].code8);
        assert_int_equal(kn_hotp(rfc_key, 20, v[i].t / 30, 6),
                         v[i].code8 % 1000000);
    }
}

static void test_totp_check_window_and_replay(void **state)
{
    int64_t now = 1111111111, step = now / 30;
    char code[8];
    (void)state;
    snprintf(code, sizeof(code), "%06u", kn_hotp(rfc_key, 20, step, 6));
    assert_int_equal(kn_totp_check(rfc_key, 20, code, now, -1), step);
    /* the same code again: refused once its step was used */
    assert_int_equal(kn_totp_check(rfc_key, 20, code, now, step), -1);
    /* one step of drift either way is accepted, two are not */
    snprintf(code, sizeof(code), "%06u", kn_hotp(rfc_key, 20, step - 1, 6));
    assert_int_equal(kn_totp_check(rfc_key, 20, code, now, -1), step - 1);
    snprintf(code, sizeof(code), "%06u", kn_hotp(rfc_key, 20, step + 1, 6));
    assert_int_equal(kn_totp_check(rfc_key, 20, code, now, -1), step + 1);
    snprintf(code, sizeof(code), "%06u", kn_hotp(rfc_key, 20, step + 2, 6));
    assert_int_equal(kn_totp_check(rfc_key, 20, code, now, -1), -1);
    assert_int_equal(kn_totp_check(rfc_key, 20, "12345", now, -1), -1);
    assert_int_equal(kn_totp_check(rfc_key, 20, "12345a", now, -1), -1);
    assert_int_equal(kn_totp_check(rfc_key, 20, NULL, now, -1), -1);
}

static void test_base32(void **state)
{
    char out[64];
    (void)state;
    kn_base32_encode((const unsigned char *)"foobar", 6, out);
    assert_string_equal(out, "MZXW6YTBOI"); /* RFC 4648 section 10 */
    kn_base32_encode(rfc_key, 20, out);
    assert_string_equal(out, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
}

static void test_password_policy(void **state)
{
    char err[200];
    (void)state;
    assert_int_equal(kn_password_check("short", "sato", err, sizeof(err)),
                     KN_EINVAL);
    assert_non_null(strstr(err, "12"));
    /* 11 and 12 code points of Japanese text */
    assert_int_equal(kn_password_check("あいうえおかきくけこさ", "sato", err,
                                       sizeof(err)),
                     KN_EINVAL);
    assert_int_equal(kn_password_check("あいうえおかきくけこさし", "sato",
                                       err, sizeof(err)),
                     0);
    assert_int_equal(kn_password_check("Password1234", "sato", err,
                                       sizeof(err)),
                     KN_EINVAL);
    assert_non_null(strstr(err, "common"));
    assert_int_equal(kn_password_check("QWERTYUIOP12", "sato", err,
                                       sizeof(err)),
                     KN_EINVAL);
    assert_int_equal(kn_password_check("sato.ichiro.x", "Sato.Ichiro.X", err,
                                       sizeof(err)),
                     KN_EINVAL);
    assert_int_equal(kn_password_check("tab\there and more", NULL, err,
                                       sizeof(err)),
                     KN_EINVAL);
    assert_int_equal(kn_password_check("\xff\xfe not utf8 at all", NULL, err,
                                       sizeof(err)),
                     KN_EINVAL);
    assert_int_equal(kn_password_check("correct horse battery", "sato", err,
                                       sizeof(err)),
                     0);
    assert_true(kn_password_common("iloveyou1234"));
    assert_true(kn_password_common("ILOVEYOU1234"));
    assert_false(kn_password_common("iloveyou123")); /* not listed: < 12 */
    assert_false(kn_password_common(""));
}

static void test_password_argon2id_params(void **state)
{
    char enc[KN_PW_ENCODED], enc2[KN_PW_ENCODED], pw[21];
    unsigned m, t, p;
    (void)state;
    kn_password_initial(pw);
    assert_int_equal(strlen(pw), 20);
    assert_int_equal(kn_password_hash(pw, enc), 0);
    assert_int_equal(strncmp(enc, "$argon2id$v=19$", 15), 0);
    assert_int_equal(kn_password_params(enc, &m, &t, &p), 0);
    assert_true(m >= 19456);
    assert_true(t >= 2);
    assert_int_equal(p, 1);
    assert_true(kn_password_verify(enc, pw));
    assert_false(kn_password_verify(enc, "not the password"));
    /* a fresh salt each time */
    assert_int_equal(kn_password_hash(pw, enc2), 0);
    assert_string_not_equal(enc, enc2);
    /* malformed or too costly hashes are refused, not run */
    assert_false(kn_password_verify("$argon2i$v=19$m=19456,t=2,p=1$x$y", pw));
    assert_false(kn_password_verify(
        "$argon2id$v=19$m=99999999,t=2,p=1$c2FsdHNhbHQ$aGFzaA", pw));
    assert_false(kn_password_verify(NULL, pw));
    assert_true(kn_password_dummy()[0] == '$');
}

static void test_session_id_and_cookie(void **state)
{
    char a[KN_SESSION_ID_CHARS + 1], b[KN_SESSION_ID_CHARS + 1],
        got[KN_SESSION_ID_CHARS + 1], h[65], hdr[200], o[128];
    char *ck;
    (void)state;
    kn_session_new_id(a);
    kn_session_new_id(b);
    assert_int_equal(strlen(a), 43);
    assert_string_not_equal(a, b);
    kn_session_hash(a, h);
    assert_int_equal(strlen(h), 64);
    assert_null(strstr(h, a));

    ck = kn_session_cookie("https://kairan.example.jp/", a);
    assert_int_equal(strncmp(ck, "__Host-kairan_session=", 22), 0);
    assert_non_null(strstr(ck, "; Secure;"));
    assert_non_null(strstr(ck, "HttpOnly"));
    assert_non_null(strstr(ck, "SameSite=Strict"));
    assert_non_null(strstr(ck, "Path=/;"));
    assert_null(strstr(ck, "Domain"));
    free(ck);
    ck = kn_session_cookie("http://127.0.0.1:8025", NULL);
    assert_int_equal(strncmp(ck, "kairan_session=;", 16), 0);
    assert_null(strstr(ck, "Secure"));
    assert_non_null(strstr(ck, "Max-Age=0"));
    free(ck);

    snprintf(hdr, sizeof(hdr), "x=1; __Host-kairan_session=%s; y=2", a);
    assert_int_equal(kn_session_from_cookie(hdr, "https://k.example/", got),
                     0);
    assert_string_equal(got, a);
    /* the plain name is not read under https (no __Host- guarantees) */
    snprintf(hdr, sizeof(hdr), "kairan_session=%s", a);
    assert_int_equal(kn_session_from_cookie(hdr, "https://k.example/", got),
                     KN_ENOENT);
    assert_int_equal(kn_session_from_cookie(hdr, "http://k.example/", got),
                     0);
    snprintf(hdr, sizeof(hdr), "kairan_session=%s; kairan_session=%s", a, b);
    assert_int_equal(kn_session_from_cookie(hdr, "http://k/", got), KN_EINVAL);
    assert_int_equal(kn_session_from_cookie("kairan_session=short", "http://k/",
                                            got),
                     KN_EINVAL);
    assert_int_equal(kn_session_from_cookie(NULL, "http://k/", got),
                     KN_ENOENT);

    kn_session_origin("HTTPS://Kairan.Example.JP:8443/console?x", o,
                      sizeof(o));
    assert_string_equal(o, "https://kairan.example.jp:8443");
    kn_session_origin("http://127.0.0.1:8025", o, sizeof(o));
    assert_string_equal(o, "http://127.0.0.1:8025");
    kn_session_origin("ftp://x", o, sizeof(o));
    assert_string_equal(o, "");
}

static void test_session_lifetime(void **state)
{
    int64_t t0 = 1000000000000LL;
    (void)state;
    assert_int_equal(kn_session_alive(t0, t0, t0 + 1000), 0);
    assert_int_equal(kn_session_alive(t0, t0, t0 + KN_SESSION_IDLE_MS),
                     KN_ETIMEDOUT);
    assert_int_equal(kn_session_alive(t0, t0 + KN_SESSION_MAX_MS - 1000,
                                      t0 + KN_SESSION_MAX_MS),
                     KN_ETIMEDOUT);
    assert_int_equal(kn_session_alive(0, t0, t0), KN_ETIMEDOUT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_totp_rfc6238_vectors),
        cmocka_unit_test(test_totp_check_window_and_replay),
        cmocka_unit_test(test_base32),
        cmocka_unit_test(test_password_policy),
        cmocka_unit_test(test_password_argon2id_params),
        cmocka_unit_test(test_session_id_and_cookie),
        cmocka_unit_test(test_session_lifetime),
    };
    return cmocka_run_group_tests_name("staff_rules", tests, NULL, NULL);
}
