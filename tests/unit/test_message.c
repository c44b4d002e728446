/*
 * test_message.c - model/message.c: the text every channel sends.  The
 * drill marks, the confirmation words and link as each channel lays them
 * out, the one cut in front of a link (UTF-8 boundary, "…", the link
 * whole), and LINE's texts with a link that is never cut off however long
 * the body.  Runs under valgrind: every string is freed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/kn.h"
#include "common/utf8.h"
#include "model/message.h"

#define LINK  "https://kairan.example.jp/a/YmMtMXxyLTE.0123456789abcdef01234567"
#define WORDS "確認のため、次のリンクを開いて「確認しました」を押してください。"

static void test_subject(void **state)
{
    char *s = kn_message_subject(0, "台風");
    assert_string_equal(s, "台風");
    free(s);
    s = kn_message_subject(1, "台風");
    assert_string_equal(s, "【訓練】台風");
    free(s);
    s = kn_message_subject(1, NULL);
    assert_string_equal(s, "【訓練】");
    free(s);
}

static void test_body(void **state)
{
    char *s = kn_message_body(KN_TEXT_MAIL, 0, "本文");
    assert_string_equal(s, "本文");
    free(s);
    s = kn_message_body(KN_TEXT_MAIL, 1, "本文");
    assert_string_equal(s, "※これは訓練です。(This is a drill.)\n\n本文");
    free(s);
    s = kn_message_body(KN_TEXT_LINE, 1, "本文");
    assert_string_equal(s, "※これは訓練です。(This is a drill.)\n\n本文");
    free(s);
    /* a lock screen has little room: one line break */
    s = kn_message_body(KN_TEXT_PUSH, 1, "本文");
    assert_string_equal(s, "※これは訓練です。(This is a drill.)\n本文");
    free(s);
    s = kn_message_body(KN_TEXT_PUSH, 0, NULL);
    assert_string_equal(s, "");
    free(s);
}

/* The my-page foot of an e-mail (issue 16): Japanese, English unless the
 * guardian reads Japanese, the link last; nothing without a link. */
static void test_mypage_text(void **state)
{
    char *s = kn_message_mypage_text(NULL, "https://k.example/m#t=x.y");
    assert_string_equal(s, "\n\n--\n配信の設定・過去のお知らせ（マイページ）:\n"
                           "Your settings and past messages (My page):\n"
                           "https://k.example/m#t=x.y\n");
    free(s);
    s = kn_message_mypage_text("ja", "https://k.example/m#t=x.y");
    assert_string_equal(s, "\n\n--\n配信の設定・過去のお知らせ（マイページ）:\n"
                           "https://k.example/m#t=x.y\n");
    free(s);
    s = kn_message_mypage_text("pt", "u");
    assert_non_null(strstr(s, "My page"));
    free(s);
    s = kn_message_mypage_text("en", NULL);
    assert_string_equal(s, "");
    free(s);
}

static void test_link_text(void **state)
{
    char *s = kn_message_link_text(KN_TEXT_MAIL, LINK);
    assert_string_equal(s, "\n\n" WORDS "\n" LINK "\n");
    free(s);
    s = kn_message_link_text(KN_TEXT_PUSH, LINK);
    assert_string_equal(s, "\n\n" WORDS "\n" LINK);
    free(s);
    s = kn_message_link_text(KN_TEXT_LINE, LINK);
    assert_string_equal(s, WORDS "\n" LINK);
    free(s);
    for (int ch = KN_TEXT_MAIL; ch <= KN_TEXT_PUSH; ch++) {
        s = kn_message_link_text((enum kn_text_channel)ch, NULL);
        assert_string_equal(s, "");
        free(s);
    }
}

/* The body is cut at a character boundary with "…"; the link stays whole
 * for every keep, and the whole body is kept when keep allows. */
static void test_body_with_link(void **state)
{
    const char *body = "aé漢😀b";
    size_t n = strlen(body);
    char *lt = kn_message_link_text(KN_TEXT_PUSH, LINK), *s;
    for (size_t keep = 0; keep <= n + 1; keep++) {
        size_t kept;
        s = kn_message_body_with_link(body, keep, lt);
        assert_true(kn_utf8_valid(s, strlen(s)));
        /* ends with the whole link text */
        assert_true(strlen(s) > strlen(lt));
        assert_string_equal(s + strlen(s) - strlen(lt), lt);
        kept = strlen(s) - strlen(lt);
        if (keep >= n) {
            assert_int_equal(kept, n);
            assert_memory_equal(s, body, n);
        } else {
            size_t e = strlen(kn_message_ellipsis);
            assert_true(kept >= e);
            assert_memory_equal(s + kept - e, kn_message_ellipsis, e);
            assert_true(kept - e <= keep);
            assert_memory_equal(s, body, kept - e);
        }
        free(s);
    }
    s = kn_message_body_with_link(body, SIZE_MAX, NULL);
    assert_string_equal(s, body);
    free(s);
    s = kn_message_body_with_link(NULL, 0, lt);
    assert_string_equal(s, lt);
    free(s);
    free(lt);
}

static void free_texts(char **t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(t[i]);
}

/* A cut never splits a user-perceived character: an emoji ZWJ sequence,
 * a flag (two regional indicators), a skin tone, a combining dakuten.
 * The push cut (kn_message_body_with_link) and LINE's pieces alike. */
#define FAMILY "\U0001F468\u200D\U0001F469\u200D\U0001F467" /* 18 bytes */
#define FLAG_JP "\U0001F1EF\U0001F1F5"                        /* 8 bytes */
static void test_cut_keeps_graphemes(void **state)
{
    char *s;
    char *t[KN_MESSAGE_LINE_TEXTS], *body;
    size_t n, i;

    /* inside the family (after man + ZWJ): back to before it */
    s = kn_message_body_with_link("ab" FAMILY "cd", 2 + 7, NULL);
    assert_string_equal(s, "ab…");
    free(s);
    /* between the two regional indicators of the second flag */
    s = kn_message_body_with_link(FLAG_JP FLAG_JP "x", 12, NULL);
    assert_string_equal(s, FLAG_JP "…");
    free(s);
    /* before a skin tone modifier, before a combining dakuten */
    s = kn_message_body_with_link("a\U0001F44D\U0001F3FDz", 5, NULL);
    assert_string_equal(s, "a…");
    free(s);
    s = kn_message_body_with_link("かか\u3099き", 6, NULL);
    assert_string_equal(s, "か…");
    free(s);
    /* one character longer than the cut: cut inside it rather than
     * keep nothing */
    s = kn_message_body_with_link(FAMILY, 9, NULL);
    assert_string_equal(s, "\U0001F468\u200D…");
    free(s);

    /* LINE: 4998 units, then the family (8 units) across the 5000 line:
     * the first body message ends before it, the second starts with it */
    body = kn_xmalloc(4998 + sizeof(FAMILY) + 6000);
    memset(body, 'a', 4998);
    strcpy(body + 4998, FAMILY);
    memset(body + 4998 + strlen(FAMILY), 'b', 5000);
    body[4998 + strlen(FAMILY) + 5000] = '\0';
    n = kn_message_line_texts(0, "件名", body, NULL, t);
    assert_true(n >= 3);
    assert_int_equal(strlen(t[1]), 4998);
    assert_memory_equal(t[2], FAMILY, strlen(FAMILY));
    for (i = 0; i < n; i++)
        assert_true(kn_utf16_len(t[i], strlen(t[i])) <=
                    KN_MESSAGE_LINE_TEXT_MAX);
    free_texts(t, n);
    free(body);
}

/* LINE: the link is a text of its own, whole, even when the body fills
 * every message LINE allows. */
static void test_line_texts_link(void **state)
{
    size_t big = 30000, n;
    char *body = malloc(big * 3 + 1), *t[KN_MESSAGE_LINE_TEXTS];
    for (size_t i = 0; i < big; i++)
        memcpy(body + 3 * i, "あ", 3);
    body[big * 3] = '\0';
    n = kn_message_line_texts(1, "件名", body, LINK, t);
    assert_int_equal(n, KN_MESSAGE_LINE_TEXTS);
    assert_string_equal(t[0], "【訓練】件名");
    assert_string_equal(t[n - 1], WORDS "\n" LINK);
    for (size_t i = 0; i < n; i++)
        assert_true(kn_utf16_len(t[i], strlen(t[i])) <=
                    KN_MESSAGE_LINE_TEXT_MAX);
    /* the last body text says it was cut */
    assert_non_null(strstr(t[n - 2], "LINEの文字数の上限"));
    free_texts(t, n);

    /* A short body: subject, body, link. */
    n = kn_message_line_texts(0, "件名", "本文\r\n二行目", LINK, t);
    assert_int_equal(n, 3);
    assert_string_equal(t[1], "本文\n二行目");
    assert_string_equal(t[2], WORDS "\n" LINK);
    free_texts(t, n);

    /* Without a link: up to four body texts. */
    n = kn_message_line_texts(0, "件名", body, NULL, t);
    assert_int_equal(n, KN_MESSAGE_LINE_TEXTS);
    assert_null(strstr(t[n - 1], LINK));
    free_texts(t, n);
    free(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subject),
        cmocka_unit_test(test_body),
        cmocka_unit_test(test_link_text),
        cmocka_unit_test(test_mypage_text),
        cmocka_unit_test(test_body_with_link),
        cmocka_unit_test(test_line_texts_link),
        cmocka_unit_test(test_cut_keeps_graphemes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
