/*
 * test_regsheet.c - registration sheet IDs and passcodes
 * (model/regsheet.c) and the QR code drawn as SVG (common/qrsvg.c): the
 * alphabet, the printed form, normalising what a person typed, the keyed
 * hash, and an SVG whose size is the QR version's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/kn.h"
#include "common/qrsvg.h"
#include "common/seal.h"
#include "model/regsheet.h"

static void test_draw(void **state)
{
    char id[KN_REG_ID_LEN + 1], pw[KN_REG_PASS_LEN + 1], pr[KN_REG_PASS_LEN + 3];
    int seen[256] = {0};
    (void)state;
    for (int i = 0; i < 200; i++) {
        kn_reg_id_new(id);
        kn_reg_pass_new(pw);
        assert_int_equal(strlen(id), KN_REG_ID_LEN);
        assert_int_equal(strlen(pw), KN_REG_PASS_LEN);
        for (const char *p = pw; *p; p++) {
            assert_non_null(strchr(KN_REG_ALPHABET, *p));
            seen[(unsigned char)*p]++;
        }
        for (const char *p = id; *p; p++)
            assert_non_null(strchr(KN_REG_ALPHABET, *p));
    }
    /* no look-alikes in the alphabet; every letter of it drawn */
    for (const char *p = "0O1IL2Z5S8BUVD"; *p; p++)
        assert_null(strchr(KN_REG_ALPHABET, *p));
    for (const char *p = KN_REG_ALPHABET; *p; p++)
        assert_true(seen[(unsigned char)*p] > 0);
    kn_reg_pass_print("34679ACEFGHJ", pr);
    assert_string_equal(pr, "3467-9ACE-FGHJ");
}

static void norm_is(const char *typed, size_t want, const char *out)
{
    char buf[32];
    int n = kn_reg_normalise(typed, want, buf, sizeof(buf));
    if (n < 0)
        fail_msg("%s: refused", typed);
    assert_string_equal(buf, out);
}

static void test_normalise(void **state)
{
    char buf[32];
    (void)state;
    norm_is("3467-9ace-fghj", 12, "34679ACEFGHJ");
    norm_is(" 3467 9ACE FGHJ ", 12, "34679ACEFGHJ");
    /* full-width letters and digits, a full-width dash, the long vowel
     * mark a Japanese keyboard gives for '-' */
    norm_is("\xef\xbc\x93\xef\xbc\x94" "67\xef\xbc\x8d" "9ACE\xe3\x83\xbc"
            "FGHJ", 12, "34679ACEFGHJ");
    norm_is("9ace-fghj", 8, "9ACEFGHJ");
    assert_int_equal(kn_reg_normalise("34679ACEFGH", 12, buf, sizeof(buf)), -1);
    assert_int_equal(kn_reg_normalise("34679ACEFGHJK", 12, buf, sizeof(buf)),
                     -1);
    assert_int_equal(kn_reg_normalise("3467O9ACEFGH", 12, buf, sizeof(buf)),
                     -1); /* O is not in the alphabet */
    assert_int_equal(kn_reg_normalise("3467:9ACEFGH", 12, buf, sizeof(buf)),
                     -1);
    assert_int_equal(kn_reg_normalise("", 8, buf, sizeof(buf)), -1);
    assert_int_equal(kn_reg_normalise(NULL, 8, buf, sizeof(buf)), -1);
    assert_int_equal(kn_reg_normalise("9ACEFGHJ", 8, buf, 8), -1);
    assert_int_equal(kn_reg_normalise("\xff\xfe", 8, buf, sizeof(buf)), -1);
}

static void test_hash(void **state)
{
    char path[] = "/tmp/kn-regsheet-XXXXXX", err[200], a[33], b[33], c[33];
    struct kn_keyring *kr = NULL;
    int fd = mkstemp(path);
    (void)state;
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    assert_int_equal(kn_keyfile_generate(path), 0);
    assert_int_equal(kn_keyring_load(path, &kr, err, sizeof(err)), 0);
    kn_reg_pass_hash(kr, "9ACEFGHJ", "34679ACEFGHJ", a);
    kn_reg_pass_hash(kr, "9ACEFGHJ", "34679ACEFGHJ", b);
    kn_reg_pass_hash(kr, "9ACEFGHK", "34679ACEFGHJ", c);
    assert_int_equal(strlen(a), 32);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c); /* another sheet: another hash */
    kn_keyring_free(kr);
    unlink(path);
}

static void test_qr_svg(void **state)
{
    char *svg = kn_qr_svg("https://kairan.example.jp/r?id=9ACEFGHJ", "QR");
    int v = 0;
    (void)state;
    assert_non_null(svg);
    /* 40 bytes at level M: version 3, 29 modules, 37 with the quiet zone */
    assert_int_equal(sscanf(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\" "
                                 "viewBox=\"0 0 %d",
                            &v),
                     1);
    assert_int_equal(v, 37);
    assert_non_null(strstr(svg, "aria-label=\"QR\""));
    /* the top-left finder pattern: a run of 7 dark modules at (4,4) */
    assert_non_null(strstr(svg, "M4 4h7v1h-7z"));
    assert_non_null(strstr(svg, "</svg>"));
    free(svg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_draw),
        cmocka_unit_test(test_normalise),
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_qr_svg),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
