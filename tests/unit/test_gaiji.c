/*
 * test_gaiji.c - private-use characters (model/gaiji.c): the boundaries of
 * the Private Use Areas, the place, the excerpt with 〓 and the reasons.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/kn.h"
#include "model/gaiji.h"

static void found_at(const char *s, unsigned long cp, size_t place)
{
    size_t at = 99;
    assert_int_equal(kn_gaiji_find(s, &at), cp);
    assert_int_equal(at, place);
}

static void test_boundaries(void **state)
{
    (void)state;
    assert_false(kn_gaiji_is(0xdfff));
    assert_true(kn_gaiji_is(0xe000));
    assert_true(kn_gaiji_is(0xe757)); /* CP932 0xF9FC */
    assert_true(kn_gaiji_is(0xf8ff));
    assert_false(kn_gaiji_is(0xf900)); /* CJK compatibility ideograph */
    assert_false(kn_gaiji_is(0xeffff));
    assert_true(kn_gaiji_is(0xf0000));
    assert_true(kn_gaiji_is(0x10ffff));
    assert_false(kn_gaiji_is(0x110000));

    found_at("", 0, 0);
    found_at("山田 太郎", 0, 0);
    found_at("\xee\x80\x80", 0xe000, 1);        /* U+E000 */
    found_at("渡\xee\x80\x80 一郎", 0xe000, 2); /* U+E000 */
    found_at("ab\xef\xa3\xbf", 0xf8ff, 3);      /* U+F8FF */
    found_at("\xef\xa4\x80\xef\xa8\xa9", 0, 0); /* U+F900 豈, U+FA29 﨑 */
    found_at("髙橋\xef\xbf\xbd", 0, 0);         /* U+FFFD */
    found_at("a\xf3\xb0\x80\x80", 0xf0000, 2);  /* U+F0000 */
    found_at("\xf4\x8f\xbf\xbf", 0x10ffff, 1);  /* U+10FFFF */
    found_at("\xf3\xaf\xbf\xbf", 0, 0);         /* U+EFFFF */
    /* a surrogate (U+DFFF as CESU bytes) is not UTF-8: three bytes, three
     * characters, never a gaiji; a gaiji after it is still found */
    found_at("\xed\xbf\xbf", 0, 0);
    found_at("\xed\xbf\xbf\xee\x80\x80", 0xe000, 4);
    found_at("\xff\xee\x80\x81", 0xe001, 2);
}

static void test_excerpt(void **state)
{
    char *e;
    char long_text[400];
    (void)state;
    e = kn_gaiji_excerpt("渡\xee\x80\x80 一\xf3\xb0\x80\x80");
    assert_string_equal(e, "渡〓 一〓");
    free(e);
    e = kn_gaiji_excerpt("山田");
    assert_string_equal(e, "山田");
    free(e);
    /* a bidi override in the text is shown, not obeyed */
    e = kn_gaiji_excerpt("\xe2\x80\xae\xee\x80\x80");
    assert_string_equal(e, "\\u202e〓");
    free(e);
    /* a long text: 15 characters either side, cut marked */
    strcpy(long_text, "");
    for (int i = 0; i < 40; i++)
        strcat(long_text, "あ");
    strcat(long_text, "\xee\x80\x80");
    for (int i = 0; i < 40; i++)
        strcat(long_text, "い");
    e = kn_gaiji_excerpt(long_text);
    assert_string_equal(e, "…あああああああああああああああ〓"
                           "いいいいいいいいいいいいいいい…");
    free(e);
    /* the gaiji near the start: nothing cut before it */
    memmove(long_text, long_text + 3 * 39, strlen(long_text + 3 * 39) + 1);
    e = kn_gaiji_excerpt(long_text);
    assert_string_equal(e, "あ〓いいいいいいいいいいいいいいい…");
    free(e);
}

static void test_check(void **state)
{
    char *en = (char *)1, *ja = (char *)1, *ex = (char *)1;
    size_t at = 99;
    (void)state;
    assert_int_equal(kn_gaiji_check("山田 花子", KN_GAIJI_NAME, "name",
                                    "お名前", &en, &ja, &at, &ex),
                     0);
    assert_null(en);
    assert_null(ja);
    assert_null(ex);
    assert_int_equal(at, 0);

    assert_int_equal(kn_gaiji_check("渡\xee\x80\x80 一郎", KN_GAIJI_NAME,
                                    "name", "お名前", &en, &ja, &at, &ex),
                     KN_EINVAL);
    assert_int_equal(at, 2);
    assert_string_equal(ex, "渡〓 一郎");
    assert_string_equal(en, "name: contains a user-defined character (gaiji: "
                            "U+E000, private use) at character 2 (\"渡〓 "
                            "一郎\"): it shows as a box or another character "
                            "on guardians' phones; replace it with a "
                            "standard kanji or kana");
    assert_non_null(strstr(ja, "お名前に外字（機種依存文字）が含まれています"
                               "（「渡〓 一郎」の〓の所、2 文字目）。"));
    assert_non_null(strstr(ja, "通常の漢字やかなに置き換えて"));
    free(en);
    free(ja);
    free(ex);

    /* a message: what to do differs */
    assert_int_equal(kn_gaiji_check("明日は\xef\xa3\xbf休校", KN_GAIJI_TEXT,
                                    "body", "本文", &en, &ja, NULL, NULL),
                     KN_EINVAL);
    assert_non_null(strstr(en, "U+F8FF, private use) at character 4"));
    assert_non_null(strstr(en, "remove it"));
    assert_non_null(strstr(ja, "本文に外字"));
    assert_non_null(strstr(ja, "「明日は〓休校」の〓の所、4 文字目"));
    free(en);
    free(ja);

    /* an address is never quoted */
    assert_int_equal(kn_gaiji_check("a\xee\x80\x80@example.jp", KN_GAIJI_SECRET,
                                    "email", "メール", &en, &ja, &at, &ex),
                     KN_EINVAL);
    assert_int_equal(at, 2);
    assert_null(ex);
    assert_null(strstr(en, "example"));
    assert_null(strstr(ja, "example"));
    assert_non_null(strstr(en, "at character 2: it shows"));
    free(en);
    free(ja);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_boundaries),
        cmocka_unit_test(test_excerpt),
        cmocka_unit_test(test_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
