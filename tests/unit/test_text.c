/*
 * test_text.c - unit tests for common/text.c: terminal escapes, C1 and
 * bidi controls and invalid UTF-8 made visible (never dropped), CJK kept,
 * and JSON text kept valid JSON with the same value.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/text.h"

static void expect_safe(const char *in, const char *want)
{
    char *got = kn_text_safe(in);
    assert_string_equal(got, want);
    free(got);
}

static void test_safe_keeps_cjk_and_ascii(void **state)
{
    (void)state;
    expect_safe("【緊急】台風接近に伴う臨時休校 (2-A) \\path",
                "【緊急】台風接近に伴う臨時休校 (2-A) \\path");
    expect_safe("ﾔﾏﾀﾞ ﾀﾛｳ 髙橋 ①郎 😀", "ﾔﾏﾀﾞ ﾀﾛｳ 髙橋 ①郎 😀");
    expect_safe(NULL, "");
    expect_safe("", "");
}

static void test_safe_escapes_controls(void **state)
{
    (void)state;
    /* ESC [ 2 J (clear screen), an OSC title, BEL, CR, LF, TAB, DEL */
    expect_safe("a\x1b[2Jb", "a\\x1b[2Jb");
    expect_safe("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07");
    expect_safe("x\r\ny\tz\x7f", "x\\x0d\\x0ay\\x09z\\x7f");
    /* C1 CSI (U+009B) and NEL (U+0085) in UTF-8 */
    expect_safe("\xc2\x9b"
                "31m\xc2\x85",
                "\\u009b31m\\u0085");
    /* bidi override, isolate, line separator */
    expect_safe("abc\xe2\x80\xaegpj.exe", "abc\\u202egpj.exe");
    expect_safe("\xe2\x81\xa6x\xe2\x80\xa8", "\\u2066x\\u2028");
    /* invisible: a BOM (two files pasted into one), zero width space, word
     * joiner */
    expect_safe("\xef\xbb\xbfs-2", "\\ufeffs-2");
    expect_safe("a\xe2\x80\x8b"
                "b\xe2\x81\xa0",
                "a\\u200bb\\u2060");
}

static void test_safe_escapes_invalid_utf8(void **state)
{
    (void)state;
    /* CP932 山田 (8E 52 93 63): invalid UTF-8 bytes escaped, ASCII kept */
    expect_safe("/tmp/\x8e\x52\x93\x63.csv", "/tmp/\\x8eR\\x93c.csv");
    expect_safe("\xff\xfe", "\\xff\\xfe");
    expect_safe("\xe3\x81", "\\xe3\\x81");          /* cut short */
    expect_safe("\xc0\xaf", "\\xc0\\xaf");          /* overlong '/' */
    expect_safe("\xed\xa0\x80", "\\xed\\xa0\\x80"); /* surrogate */
}

static void test_utf8_only_invalid(void **state)
{
    char *s;
    json_t *j;
    (void)state;
    s = kn_text_utf8("a\x1b\xff山", 6);
    assert_string_equal(s, "a\x1b\\xff山");
    /* the result is always a string jansson accepts */
    j = json_string(s);
    assert_non_null(j);
    json_decref(j);
    free(s);
    s = kn_text_utf8("a\0b", 3); /* NUL bytes too */
    assert_string_equal(s, "a\\x00b");
    free(s);
}

static void test_json_stays_valid(void **state)
{
    json_t *o = json_object(), *back;
    char *dump, *safe;
    (void)state;
    json_object_set_new(o, "subject",
                        json_string("\x1b[31m赤\xc2\x9b"
                                    "2J\xe2\x80\xae"));
    dump = json_dumps(o, JSON_COMPACT);
    safe = kn_text_json(dump);
    /* no raw ESC, C1 or bidi byte sequence left */
    assert_null(strchr(safe, 0x1b));
    assert_null(strstr(safe, "\xc2\x9b"));
    assert_null(strstr(safe, "\xe2\x80\xae"));
    assert_non_null(strstr(safe, "赤"));
    /* and it is the same JSON value */
    back = json_loads(safe, 0, NULL);
    assert_non_null(back);
    assert_true(json_equal(back, o));
    json_decref(back);
    json_decref(o);
    free(dump);
    free(safe);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_safe_keeps_cjk_and_ascii),
        cmocka_unit_test(test_safe_escapes_controls),
        cmocka_unit_test(test_safe_escapes_invalid_utf8),
        cmocka_unit_test(test_utf8_only_invalid),
        cmocka_unit_test(test_json_stays_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
