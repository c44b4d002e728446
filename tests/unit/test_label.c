/*
 * test_label.c - group and category names (model/label.c): NFKC, the
 * length in characters, the refused characters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/kn.h"
#include "model/label.h"

static void norm_is(const char *in, const char *want)
{
    char err[200], *out = NULL;
    int rc = kn_label_norm(in, &out, err, sizeof(err));
    if (rc != 0)
        fail_msg("%s: %s", in, err);
    assert_string_equal(out, want);
    assert_int_equal(kn_label_is_norm(out), 1);
    free(out);
}

static void refused(const char *in, const char *why)
{
    char err[200], *out = (char *)1;
    assert_int_equal(kn_label_norm(in, &out, err, sizeof(err)), KN_EINVAL);
    assert_null(out);
    if (strstr(err, why) == NULL)
        fail_msg("%s: \"%s\" does not say \"%s\"", in, err, why);
}

static void test_nfkc(void **state)
{
    norm_is("２年Ａ組", "2年A組");
    norm_is("2年A組", "2年A組");
    norm_is("ｻｯｶｰ部", "サッカー部");
    norm_is("サッカー部", "サッカー部");
    norm_is("行事", "行事");
    norm_is("\xe3\x80\x80"
            "1年\xe3\x80\x80"
            "1組 ",
            "1年 1組"); /* U+3000 */
    norm_is("2-A", "2-A");
    norm_is("soccer", "soccer");
    norm_is("①", "1");
    assert_int_equal(kn_label_is_norm("２年Ａ組"), 0);
}

static void test_length(void **state)
{
    char s[64 * 3 + 4];
    size_t n = 0;
    for (int i = 0; i < 64; i++) {
        memcpy(s + n, "あ", 3);
        n += 3;
    }
    s[n] = '\0';
    norm_is(s, s); /* 64 characters (192 bytes) */
    memcpy(s + n, "あ", 4);
    refused(s, "65 characters");
    refused("", "empty");
    refused("   ", "empty");
    refused("\xe3\x80\x80", "empty");
}

/* A name stored before the strict rules is still found (to delete it);
 * the joiners that shape emoji and scripts pass both. */
static void test_existing(void **state)
{
    char err[200], *out = NULL;
    assert_int_equal(
        kn_label_norm_existing("臨時休校\xe2\x80\x8b", &out, err, sizeof(err)),
        0);
    assert_string_equal(out, "臨時休校\xe2\x80\x8b");
    free(out);
    assert_int_equal(kn_label_norm_existing("a\xe2\x80\xae"
                                            "b",
                                            &out, err, sizeof(err)),
                     KN_EINVAL); /* bidi controls never */
    assert_null(out);
    /* a group named with a gaiji before they were refused: found */
    assert_int_equal(
        kn_label_norm_existing("部\xee\x80\x80", &out, err, sizeof(err)), 0);
    assert_string_equal(out, "部\xee\x80\x80");
    free(out);
    norm_is("\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa7 保護者会",
            "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa7 保護者会"); /* ZWJ */
}

static void test_refused(void **state)
{
    refused("2-A;2-B", "';'");
    refused("2-A,2-B", "','");
    refused("2-A；2-B", "';'"); /* full-width semicolon: NFKC makes it ';' */
    refused("a\tb", "control character");
    refused("a\nb", "U+000A");
    refused("a\x1b[31mb", "U+001B");
    refused("a\xc2\x9b"
            "b",
            "U+009B"); /* C1 CSI */
    refused("a\xe2\x80\xae"
            "b",
            "U+202E"); /* RLO */
    refused("a\xe2\x80\xa8"
            "b",
            "U+2028"); /* line separator */
    /* every format character (Cf): invisible, two names alike */
    refused("臨時休校\xe2\x80\x8b", "U+200B"); /* zero-width space */
    refused("臨時\xe2\x81\xa0休校", "U+2060"); /* word joiner */
    refused("2-\xc2\xad"
            "A",
            "U+00AD"); /* soft hyphen */
    refused("a\xef\xbb\xbf"
            "b",
            "U+FEFF"); /* BOM */
    refused("\xff\xfe", "not UTF-8");
    /* a private-use character (gaiji): a box on guardians' phones */
    refused("サッカー\xee\x80\x80部", "gaiji: U+E000, private use) at "
                                      "character 5");
    refused("\xf3\xb0\x80\x80", "U+F0000");
    norm_is("\xef\xa8\xa9\xe5\xb1\xb1", "\xef\xa8\xa9\xe5\xb1\xb1"); /* 﨑山 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nfkc),
        cmocka_unit_test(test_existing),
        cmocka_unit_test(test_length),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
