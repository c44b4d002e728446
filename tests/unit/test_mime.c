/*
 * test_mime.c - unit tests for adapters/mime.c: RFC 2047 header encoding
 * and decoding (round trips of Japanese text, line and encoded-word
 * lengths, no split characters), whole messages parsed back, header
 * injection, address checking and quoting (Japanese carrier addresses),
 * Message-IDs, JST dates, mailbox splitting and base64.
 *
 * The checks on generated headers are done by an independent small parser
 * here (check_header()), not by the code under test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "adapters/mime.h"
#include "common/codec.h"
#include "common/kn.h"
#include "common/utf8.h"
#include "model/address.h"
#include "model/message.h"

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

/*
 * Check one generated header (or header block) and return how many
 * encoded-words it holds:
 *  1. it ends with CRLF, and CR and LF appear only as CRLF;
 *  2. every line is at most 76 octets before its CRLF;
 *  3. every line after the first starts with a space (a fold), when
 *     one_field is set;
 *  4. every encoded-word is at most 75 characters and decodes on its own
 *     to valid UTF-8, so no character was split between two of them.
 */
static int check_header(const char *h, int one_field)
{
    size_t n = strlen(h), line_start = 0;
    int words = 0;

    assert_true(n >= 2);
    assert_memory_equal(h + n - 2, "\r\n", 2);
    for (size_t i = 0; i < n; i++) {
        if (h[i] == '\r') {
            assert_int_equal(h[i + 1], '\n');
            assert_true(i - line_start <= 76);
            if (one_field && line_start > 0)
                assert_int_equal(h[line_start], ' ');
            i++;
            line_start = i + 1;
        } else {
            assert_int_not_equal(h[i], '\n');
        }
    }
    for (const char *p = strstr(h, "=?"); p != NULL; p = strstr(p, "=?")) {
        const char *q = strstr(p + 2, "?B?");
        const char *e;
        char *word, *dec = NULL;

        assert_non_null(q);
        e = strstr(q + 3, "?=");
        assert_non_null(e);
        e += 2;
        assert_true(e - p <= 75);
        assert_memory_equal(p, "=?UTF-8?B?", 10);
        word = kn_xstrndup(p, (size_t)(e - p));
        assert_int_equal(kn_mime_header_decode(word, &dec), 0);
        assert_true(kn_utf8_valid(dec, strlen(dec)));
        free(dec);
        free(word);
        words++;
        p = e;
    }
    return words;
}

/* The value of a header produced by kn_mime_header(name, ...). */
static const char *header_value(const char *h, const char *name)
{
    size_t nl = strlen(name);

    assert_memory_equal(h, name, nl);
    assert_int_equal(h[nl], ':');
    h += nl + 1;
    /* A name too long to leave room for any text is folded at once. */
    if (h[0] == '\r' && h[1] == '\n')
        h += 2;
    if (*h == ' ')
        h++;
    return h;
}

/* Encode value as header name, check the result and decode it back. */
static void roundtrip(const char *name, const char *value)
{
    char *h = kn_mime_header(name, value);
    char *dec = NULL;
    int rc;

    check_header(h, 1);
    rc = kn_mime_header_decode(header_value(h, name), &dec);
    if (rc != 0 || strcmp(dec, value) != 0)
        fail_msg("round trip failed for [%s]\nheader:\n%s\ndecoded: [%s]",
                 value, h, dec ? dec : "(error)");
    free(dec);
    free(h);
}

static char *repeat(const char *s, int times)
{
    size_t n = strlen(s);
    char *out = kn_xmalloc(n * (size_t)times + 1);

    for (int i = 0; i < times; i++)
        memcpy(out + n * (size_t)i, s, n);
    out[n * (size_t)times] = '\0';
    return out;
}

/* ------------------------------------------------------------------------
 * UTF-8 and header safety
 * ------------------------------------------------------------------------ */

static void test_utf8_valid(void **state)
{
    static const struct {
        const char *s;
        size_t n;
        int ok;
    } cases[] = {
        {"", 0, 1},
        {"abc", 3, 1},
        {"学校", 6, 1},
        {"😀①髙﨑ｶﾞ", 19, 1},
        {"\xf4\x8f\xbf\xbf", 4, 1}, /* U+10FFFF */
        {"\xc0\x80", 2, 0},         /* overlong NUL */
        {"\xe0\x80\xaf", 3, 0},     /* overlong '/' */
        {"\xed\xa0\x80", 3, 0},     /* surrogate D800 */
        {"\xf4\x90\x80\x80", 4, 0}, /* above U+10FFFF */
        {"\xe3\x81", 2, 0},         /* truncated */
        {"\x80", 1, 0},             /* lone continuation */
        {"\xf5\x80\x80\x80", 4, 0},
        {"\xff", 1, 0},
    };

    for (size_t i = 0; i < KN_ARRAY_SIZE(cases); i++)
        assert_int_equal(kn_utf8_valid(cases[i].s, cases[i].n), cases[i].ok);
}

static void test_header_safe(void **state)
{
    assert_int_equal(kn_header_safe("abc 学校", strlen("abc 学校")), 1);
    assert_int_equal(kn_header_safe("a\rb", 3), 0);
    assert_int_equal(kn_header_safe("a\nb", 3), 0);
    assert_int_equal(kn_header_safe("a\0b", 3), 0);
    assert_int_equal(kn_header_safe("a\tb", 3), 1);
}

/* ------------------------------------------------------------------------
 * kn_mime_header / kn_mime_header_decode
 * ------------------------------------------------------------------------ */

static void test_header_roundtrip_many(void **state)
{
    static const char *names[] = {
        "Subject", "To", "X-Kairan-Broadcast-Title",
        "X-A-Very-Long-Header-Name-That-Leaves-Almost-No-Room-On-Line-1"};
    char *long_jp = repeat("【緊急】台風接近に伴う臨時休校😀①髙﨑 ", 8);
    char *emoji = repeat("😀", 70);
    char *mixed = repeat("Typhoon 台風10号 no.10 のお知らせ ", 10);
    char *ascii_long =
        repeat("School closed tomorrow because of the storm. ", 8);
    char *ascii_word = repeat("x", 100);
    char *kana = repeat("ｶﾞｯｺｳﾚﾝﾗｸ", 20);
    const char *values[] = {
        "",
        " ",
        "   ",
        "Hello",
        "学校",
        "【重要】明日の運動会は延期します",
        "①髙﨑小学校からのお知らせ",
        "Re: 保護者会 (3/14) について",
        "PTA総会 2026年度 第1回",
        "a  b",
        " leading space",
        "trailing space ",
        "double  space 二重  空白",
        "tab\there",
        "=?UTF-8?B?5a2m5qCh?= is not an encoded word",
        "looks like ?= and =? in text",
        "a=?b",
        "é",
        "が",           /* U+304B U+3099 combining */
        "\xe2\x80\x8b", /* zero width space */
        long_jp,
        emoji,
        mixed,
        ascii_long,
        ascii_word,
        kana,
    };

    assert_true(strlen(long_jp) > 200);
    for (size_t n = 0; n < KN_ARRAY_SIZE(names); n++)
        for (size_t i = 0; i < KN_ARRAY_SIZE(values); i++)
            roundtrip(names[n], values[i]);
    free(long_jp);
    free(emoji);
    free(mixed);
    free(ascii_long);
    free(ascii_word);
    free(kana);
}

/*
 * Four-byte and three-byte characters at every alignment: an ASCII prefix
 * of 0..60 characters shifts where each encoded-word has to end.
 */
static void test_header_never_splits_char(void **state)
{
    char *tail = repeat("😀髙①a", 30);

    for (int pre = 0; pre <= 60; pre++) {
        char *prefix = repeat("x", pre);
        char *v = kn_xasprintf("%s%s", prefix, tail);
        char *v2 = kn_xasprintf("%s %s", prefix, tail);
        roundtrip("Subject", v);
        roundtrip("Subject", v2);
        free(v2);
        free(v);
        free(prefix);
    }
    free(tail);
}

/* Append the UTF-8 form of code point cp to buf at *n. */
static void put_utf8(char *buf, size_t *n, uint32_t cp)
{
    if (cp < 0x80) {
        buf[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        buf[(*n)++] = (char)(0xC0 | (cp >> 6));
        buf[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        buf[(*n)++] = (char)(0xE0 | (cp >> 12));
        buf[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        buf[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        buf[(*n)++] = (char)(0xF0 | (cp >> 18));
        buf[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        buf[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        buf[(*n)++] = (char)(0x80 | (cp & 0x3F));
    }
}

/*
 * Random text (fixed seed) mixing ASCII words, spaces, tabs, kana, kanji,
 * vendor characters and emoji: every value must round-trip and every
 * header must pass check_header().
 */
static void test_header_roundtrip_random(void **state)
{
    static const uint32_t pool[] = {
        'a',    'Z',      '0',    '=',    '?',     '_',     ' ',
        ' ',    '\t',     0xE9,   0x3042, 0x30AC,  0x5B66,  0x9AD9,
        0xFA11, 0x2460,   0xFF76, 0xFF9E, 0x1F600, 0x1F468, 0x200D,
        0xFE0F, 0x10FFFF, 0x7F,   0x1B,
    };
    static const char *names[] = {"Subject", "X-Kairan-Title"};
    uint64_t seed = 12345;
    char buf[4 * 400 + 1];

    for (int iter = 0; iter < 1500; iter++) {
        size_t n = 0;
        int chars;
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        chars = (int)((seed >> 33) % 400);
        for (int c = 0; c < chars; c++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            uint32_t cp = pool[(seed >> 33) % KN_ARRAY_SIZE(pool)];
            /* runs of plain ASCII letters make long words sometimes */
            if ((seed >> 20) % 3 == 0)
                cp = 'a' + (uint32_t)((seed >> 40) % 26);
            put_utf8(buf, &n, cp);
        }
        buf[n] = '\0';
        roundtrip(names[iter % 2], buf);
    }
}

static void test_header_plain_ascii(void **state)
{
    char *h = kn_mime_header("Subject", "Hello world");
    char *long_text = repeat("School is closed tomorrow. ", 10);
    char *v;

    assert_string_equal(h, "Subject: Hello world\r\n");
    free(h);

    /* Long ASCII is folded at its spaces and never encoded. */
    v = kn_xstrndup(long_text, strlen(long_text) - 1);
    h = kn_mime_header("Subject", v);
    assert_int_equal(check_header(h, 1), 0);
    assert_non_null(strstr(h, "\r\n "));
    roundtrip("Subject", v);
    free(h);
    free(v);
    free(long_text);

    /* An empty value. */
    h = kn_mime_header("Subject", "");
    assert_string_equal(h, "Subject:\r\n");
    free(h);
}

static void test_header_encoded_forms(void **state)
{
    char *h = kn_mime_header("Subject", "学校");
    char *word = repeat("y", 90);

    assert_string_equal(h, "Subject: =?UTF-8?B?5a2m5qCh?=\r\n");
    free(h);

    /* An ASCII word too long for any line is encoded. */
    h = kn_mime_header("Subject", word);
    assert_true(check_header(h, 1) >= 2);
    free(h);
    free(word);

    /* ASCII words next to Japanese stay readable. */
    h = kn_mime_header("Subject", "Re: 学校");
    assert_string_equal(h, "Subject: Re: =?UTF-8?B?5a2m5qCh?=\r\n");
    free(h);

    /* Control characters never appear raw. */
    h = kn_mime_header("Subject", "a\r\nBcc: x@example.jp");
    check_header(h, 1);
    assert_null(strstr(h, "Bcc"));
    free(h);
}

static void test_decode(void **state)
{
    static const struct {
        const char *in;
        const char *out; /* NULL: KN_EINVAL */
    } cases[] = {
        {"=?utf-8?Q?caf=C3=A9_?=", "café "},
        {"=?UTF-8?q?a=3Db?=", "a=b"},
        {"=?UTF-8?B?5a2m?= =?UTF-8?B?5qCh?=", "学校"},
        {"=?UTF-8?B?5a2m?=\r\n =?UTF-8?B?5qCh?=", "学校"},
        {"=?UTF-8?B?5a2m?=\r\n\t  =?utf-8?b?5qCh?=", "学校"},
        {"a =?UTF-8?B?5a2m?= b", "a 学 b"},
        {"Re:\r\n hello", "Re: hello"},
        {"plain text", "plain text"},
        {"=?UTF-8*ja?B?5a2m?=", "学"},
        {"=?US-ASCII?Q?abc?=", "abc"},
        {"=?UTF-8?B?5a2m5qCh?=\r\n", "学校"},
        /* a character split by another mailer is joined again */
        {"=?UTF-8?B?5a0=?= =?UTF-8?B?pg==?=", "学"},
        /* not encoded-words: copied */
        {"=?UTF-8?X?abc?=", "=?UTF-8?X?abc?="},
        {"=? not one ?=", "=? not one ?="},
        {"=?UTF-8?B?5a2m", "=?UTF-8?B?5a2m"},
        /* errors */
        {"=?ISO-2022-JP?B?GyRCM1g5OxsoQg==?=", NULL},
        {"=?UTF-8?B?5a2m*?=", NULL},
        {"=?UTF-8?B?/w==?=", NULL}, /* 0xFF is not UTF-8 */
        {"=?UTF-8?Q?a=ZZ?=", NULL},
        {"=?UTF-8?Q?a=4?=", NULL},
        {"=?UTF-8?B?AA==?=", NULL}, /* NUL */
        {"a\r\nBcc: x", NULL},
        {"a\rb", NULL},
        {"\xff", NULL},
    };

    for (size_t i = 0; i < KN_ARRAY_SIZE(cases); i++) {
        char *out = NULL;
        int rc = kn_mime_header_decode(cases[i].in, &out);
        if (cases[i].out == NULL) {
            if (rc != KN_EINVAL)
                fail_msg("case %zu [%s]: expected KN_EINVAL, got %d", i,
                         cases[i].in, rc);
            assert_null(out);
        } else {
            if (rc != 0 || strcmp(out, cases[i].out) != 0)
                fail_msg("case %zu [%s]: got rc %d [%s]", i, cases[i].in, rc,
                         out ? out : "");
        }
        free(out);
    }
}

/* ------------------------------------------------------------------------
 * Base64
 * ------------------------------------------------------------------------ */

static void test_base64(void **state)
{
    unsigned char data[300], *dec = NULL;
    char *s;
    long n;

    s = kn_mime_base64_lines("", 0);
    assert_string_equal(s, "");
    free(s);
    s = kn_mime_base64_lines("abc", 3);
    assert_string_equal(s, "YWJj\r\n");
    free(s);

    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(i * 37 + 11);
    for (size_t len = 0; len <= sizeof(data); len++) {
        s = kn_mime_base64_lines(data, len);
        check_header(len ? s : "\r\n", 0);
        for (char *p = s; *p; p = strstr(p, "\r\n") + 2) {
            size_t l = (size_t)(strstr(p, "\r\n") - p);
            /* full lines are exactly 76; only the last may be shorter */
            if (p[l + 2] != '\0')
                assert_int_equal(l, 76);
        }
        n = kn_b64_decode(s, strlen(s), &dec);
        assert_int_equal(n, (long)len);
        assert_memory_equal(dec, data, len);
        free(dec);
        free(s);
    }

    n = kn_b64_decode(" YW\r\nJj\tZA", 10, &dec);
    assert_int_equal(n, 4);
    assert_string_equal((char *)dec, "abcd");
    free(dec);
    n = kn_b64_decode("YQ==", 4, &dec);
    assert_int_equal(n, 1);
    free(dec);

    assert_int_equal(kn_b64_decode("Y", 1, &dec), -1);
    assert_null(dec);
    assert_int_equal(kn_b64_decode("@@@@", 4, &dec), -1);
    assert_int_equal(kn_b64_decode("YQ=A", 4, &dec), -1);
    assert_int_equal(kn_b64_decode("YQ===", 5, &dec), -1);
    assert_int_equal(kn_b64_decode("====", 4, &dec), -1);
    assert_int_equal(kn_b64_decode("YWJj-_", 6, &dec), -1);
}

/* ------------------------------------------------------------------------
 * Addresses
 * ------------------------------------------------------------------------ */

static void test_addr_check(void **state)
{
    char *a65 = repeat("a", 65);
    char *long_local = kn_xasprintf("%s@example.jp", a65);
    char *max_local = kn_xasprintf("%s@example.jp", a65 + 1);
    const struct {
        const char *addr;
        int ok;
    } cases[] = {
        {"taro@example.jp", 1},
        {"taro.yamada@school.ed.jp", 1},
        {"taro..yamada.@docomo.ne.jp", 1},
        {".abc@ezweb.ne.jp", 1},
        {"abc.@docomo.ne.jp", 1},
        {"a..b@au.com", 1},
        {"user+tag@i.softbank.jp", 1},
        {"\"quoted name\"@example.jp", 1},
        {"\"a\\\"b\"@example.jp", 1},
        {"山田@例え.jp", 1},
        {"x@localhost", 1},
        {max_local, 1},
        {long_local, 0},
        {"", 0},
        {"taro.example.jp", 0},
        {"a@b@example.jp", 0},
        {"@example.jp", 0},
        {"\"\"@example.jp", 0},
        {"taro@", 0},
        {"ta ro@example.jp", 0},
        {"taro@exa mple.jp", 0},
        {"taro@example.jp\r\nBcc: x@y.jp", 0},
        {"ta\tro@example.jp", 0},
        {"taro\x7f@example.jp", 0},
        {"taro@example.jp\n", 0},
        {"\"unterminated@example.jp", 0},
        {"\"a\"b@example.jp", 0},
        {"a\"b@example.jp", 0},
        {"taro@.example.jp", 0},
        {"taro@example..jp", 0},
        {"taro@example.jp.", 0},
        {"taro@exa<mple.jp", 0},
        {"taro@example.jp>", 0},
        {"\xff@example.jp", 0},
    };

    for (size_t i = 0; i < KN_ARRAY_SIZE(cases); i++) {
        const char *why = "unset";
        int rc = kn_addr_check(cases[i].addr, &why);
        if (cases[i].ok) {
            if (rc != 0)
                fail_msg("should accept [%s]: %s", cases[i].addr, why);
            assert_null(why);
        } else {
            if (rc != KN_EINVAL)
                fail_msg("should reject [%s]", cases[i].addr);
            assert_non_null(why);
        }
    }
    assert_int_equal(kn_addr_check(NULL, NULL), KN_EINVAL);
    free(long_local);
    free(max_local);
    free(a65);
}

static void test_addr_quote(void **state)
{
    static const struct {
        const char *in;
        const char *out;
    } cases[] = {
        {"taro@example.jp", "taro@example.jp"},
        {"taro.yamada@example.jp", "taro.yamada@example.jp"},
        {"user+tag@example.jp", "user+tag@example.jp"},
        {"taro..yamada.@docomo.ne.jp", "\"taro..yamada.\"@docomo.ne.jp"},
        {".abc@ezweb.ne.jp", "\".abc\"@ezweb.ne.jp"},
        {"abc.@docomo.ne.jp", "\"abc.\"@docomo.ne.jp"},
        {"a(b)@example.jp", "\"a(b)\"@example.jp"},
        {"a\\b@example.jp", "\"a\\\\b\"@example.jp"},
        {"a\"b@example.jp", "\"a\\\"b\"@example.jp"},
        {"\"already..quoted\"@example.jp", "\"already..quoted\"@example.jp"},
        {"山田@example.jp", "山田@example.jp"},
    };

    for (size_t i = 0; i < KN_ARRAY_SIZE(cases); i++) {
        char *q = kn_addr_quote(cases[i].in);
        assert_string_equal(q, cases[i].out);
        free(q);
    }
}

static void test_addr_is_dot_atom(void **state)
{
    static const struct {
        const char *addr;
        int yes;
    } cases[] = {
        {"taro@example.jp", 1},     {"taro.yamada+pta@mail.school.ed.jp", 1},
        {"o'brien@example.com", 1}, {"taro..yamada.@docomo.ne.jp", 0},
        {".abc@ezweb.ne.jp", 0},    {"abc.@docomo.ne.jp", 0},
        {"\"taro\"@example.jp", 0}, {"taro@localhost", 0},
        {"taro@-example.jp", 0},    {"taro@example-.jp", 0},
        {"taro@exa_mple.jp", 0},    {"山田@example.jp", 0},
        {"taro@例え.jp", 0},        {"a(b)@example.jp", 0},
        {"not an address", 0},
    };

    for (size_t i = 0; i < KN_ARRAY_SIZE(cases); i++)
        if (kn_addr_is_dot_atom(cases[i].addr) != cases[i].yes)
            fail_msg("kn_addr_is_dot_atom(%s) != %d", cases[i].addr,
                     cases[i].yes);
}

/* ------------------------------------------------------------------------
 * Message-ID, date, mailboxes
 * ------------------------------------------------------------------------ */

static void test_message_id(void **state)
{
    char *a = kn_mime_message_id("bcast-1", "r42", "mail.example.jp");
    char *b = kn_mime_message_id("bcast-1", "r42", "mail.example.jp");
    char *c = kn_mime_message_id("bcast-2", "r42", "mail.example.jp");

    /* printf bcast-1 | sha256sum -> 8842fd201736c6c6... */
    assert_string_equal(a, "<kn.8842fd201736c6c6.r42@mail.example.jp>");
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    free(a);
    free(b);
    free(c);
    a = kn_mime_message_id("", "x", "d.jp");
    assert_string_equal(a, "<kn.e3b0c44298fc1c14.x@d.jp>");
    free(a);
}

static void test_date(void **state)
{
    char buf[64];

    kn_mime_date(0, buf, sizeof(buf));
    assert_string_equal(buf, "Thu, 01 Jan 1970 09:00:00 +0900");
    kn_mime_date(999, buf, sizeof(buf));
    assert_string_equal(buf, "Thu, 01 Jan 1970 09:00:00 +0900");
    kn_mime_date(-1, buf, sizeof(buf));
    assert_string_equal(buf, "Thu, 01 Jan 1970 08:59:59 +0900");
    kn_mime_date(15LL * 3600 * 1000, buf, sizeof(buf));
    assert_string_equal(buf, "Fri, 02 Jan 1970 00:00:00 +0900");
    /* 2026-11-21T22:00:00Z = 2026-11-22 07:00 JST */
    kn_mime_date(1795298400000LL, buf, sizeof(buf));
    assert_string_equal(buf, "Sun, 22 Nov 2026 07:00:00 +0900");
    /* 2024-02-29T00:00:00+09:00 (leap day) */
    kn_mime_date(1709132400000LL, buf, sizeof(buf));
    assert_string_equal(buf, "Thu, 29 Feb 2024 00:00:00 +0900");
    /* truncation is safe */
    kn_mime_date(0, buf, 4);
    assert_string_equal(buf, "Thu");
}

static void test_split_mailbox(void **state)
{
    static const struct {
        const char *in;
        int ok;
        const char *name; /* NULL: no name */
        const char *addr;
    } cases[] = {
        {"学校 <a@b.jp>", 1, "学校", "a@b.jp"},
        {"a@b.jp", 1, NULL, "a@b.jp"},
        {"  a@b.jp  ", 1, NULL, "a@b.jp"},
        {"<a@b.jp>", 1, NULL, "a@b.jp"},
        {"\"Quoted Name\" <a@b>", 1, "Quoted Name", "a@b"},
        {"\"Yamada, \\\"Taro\\\"\" <a@b.jp>", 1, "Yamada, \"Taro\"", "a@b.jp"},
        {"\"A <b>\" <a@b.jp>", 1, "A <b>", "a@b.jp"},
        {"さくら小学校 PTA < a@b.jp >", 1, "さくら小学校 PTA", "a@b.jp"},
        {"Name <\"x>y\"@b.jp>", 1, "Name", "\"x>y\"@b.jp"},
        {"Name <a@b.jp", 0, NULL, NULL},
        {"Name a@b.jp>", 0, NULL, NULL},
        {"Name <a@b.jp> tail", 0, NULL, NULL},
        {"Name <a@b.jp><c@d.jp>", 0, NULL, NULL},
        {"Name <<a@b.jp>>", 0, NULL, NULL},
        {"Name <>", 0, NULL, NULL},
        {"\"unterminated <a@b.jp>", 0, NULL, NULL},
        {"", 0, NULL, NULL},
        {"   ", 0, NULL, NULL},
    };

    for (size_t i = 0; i < KN_ARRAY_SIZE(cases); i++) {
        char *name = (char *)1, *addr = (char *)1;
        int rc = kn_mime_split_mailbox(cases[i].in, &name, &addr);
        if (!cases[i].ok) {
            if (rc != KN_EINVAL)
                fail_msg("should reject [%s]", cases[i].in);
            assert_null(name);
            assert_null(addr);
            continue;
        }
        if (rc != 0)
            fail_msg("should accept [%s]", cases[i].in);
        if (cases[i].name == NULL)
            assert_null(name);
        else
            assert_string_equal(name, cases[i].name);
        assert_string_equal(addr, cases[i].addr);
        free(name);
        free(addr);
    }
}

/* ------------------------------------------------------------------------
 * Whole messages
 * ------------------------------------------------------------------------ */

struct parsed {
    char *fields[32]; /* unfolded "Name: value", without CRLF */
    int nfields;
    char *body; /* decoded */
    long body_len;
};

static void parsed_free(struct parsed *p)
{
    for (int i = 0; i < p->nfields; i++)
        free(p->fields[i]);
    free(p->body);
}

/* Split a built message into unfolded header fields and a decoded body. */
static void parse_message(const char *msg, size_t len, struct parsed *p)
{
    const char *sep = strstr(msg, "\r\n\r\n");
    const char *s;
    char *hdr;
    unsigned char *body = NULL;

    memset(p, 0, sizeof(*p));
    assert_int_equal(strlen(msg), len);
    assert_non_null(sep);
    hdr = kn_xstrndup(msg, (size_t)(sep - msg) + 2);
    check_header(hdr, 0);
    for (s = hdr; *s;) {
        const char *e = s;
        char *f;
        size_t o = 0;
        /* a field runs until a CRLF not followed by WSP */
        while (!(e[0] == '\r' && e[2] != ' ' && e[2] != '\t'))
            e++;
        f = kn_xmalloc((size_t)(e - s) + 1);
        for (const char *q = s; q < e; q++) {
            if (q[0] == '\r' && q[1] == '\n') {
                q++;
                continue;
            }
            f[o++] = *q;
        }
        f[o] = '\0';
        assert_true(p->nfields < 32);
        p->fields[p->nfields++] = f;
        s = e + 2;
    }
    free(hdr);
    /* the body: base64 lines of at most 76 characters, CRLF ended */
    if (sep[4] != '\0')
        check_header(sep + 4, 0);
    p->body_len = kn_b64_decode(sep + 4, strlen(sep + 4), &body);
    assert_true(p->body_len >= 0);
    p->body = (char *)body;
}

/* The value of the one field called name, or NULL; fails on duplicates. */
static const char *field(const struct parsed *p, const char *name)
{
    const char *found = NULL;
    size_t nl = strlen(name);

    for (int i = 0; i < p->nfields; i++) {
        if (strncmp(p->fields[i], name, nl) == 0 && p->fields[i][nl] == ':') {
            assert_null(found);
            found = p->fields[i] + nl + 1;
            if (*found == ' ')
                found++;
        }
    }
    return found;
}

static void test_build_roundtrip(void **state)
{
    char *subject =
        repeat("【重要】台風10号の接近に伴う臨時休校について😀①髙﨑 ", 4);
    const char *body = "保護者の皆様\n\n明日は臨時休校とします。\r\n"
                       "詳しくは学校のホームページをご覧ください。\n"
                       "さくら小学校 校長 髙﨑①\n";
    const char *body_crlf = "保護者の皆様\r\n\r\n明日は臨時休校とします。\r\n"
                            "詳しくは学校のホームページをご覧ください。\r\n"
                            "さくら小学校 校長 髙﨑①\r\n";
    struct kn_mime_msg m = {
        .from = "さくら小学校 連絡網 <noreply@sakura-es.example.jp>",
        .reply_to = "教頭 <kyoto@sakura-es.example.jp>",
        .to = "taro..yamada.@docomo.ne.jp",
        .subject = subject,
        .body = body,
        .message_id = "<kn.8842fd201736c6c6.r42@mail.example.jp>",
        .date_ms = 0,
        .urgent = 0,
    };
    struct parsed p;
    char *out = NULL, *dec = NULL, *name = NULL, *addr = NULL;
    size_t len = 0;
    const char *order[] = {
        "Date",         "From",         "Reply-To",
        "To",           "Subject",      "Message-ID",
        "MIME-Version", "Content-Type", "Content-Transfer-Encoding"};

    assert_int_equal(kn_mime_build(&m, &out, &len), 0);
    parse_message(out, len, &p);

    assert_int_equal(p.nfields, (int)KN_ARRAY_SIZE(order));
    for (size_t i = 0; i < KN_ARRAY_SIZE(order); i++) {
        size_t nl = strlen(order[i]);
        assert_memory_equal(p.fields[i], order[i], nl);
        assert_int_equal(p.fields[i][nl], ':');
    }
    assert_string_equal(field(&p, "Date"), "Thu, 01 Jan 1970 09:00:00 +0900");
    assert_string_equal(field(&p, "To"), "\"taro..yamada.\"@docomo.ne.jp");
    assert_string_equal(field(&p, "Message-ID"), m.message_id);
    assert_string_equal(field(&p, "MIME-Version"), "1.0");
    assert_string_equal(field(&p, "Content-Type"), "text/plain; charset=UTF-8");
    assert_string_equal(field(&p, "Content-Transfer-Encoding"), "base64");
    assert_null(field(&p, "Importance"));
    assert_null(field(&p, "X-Priority"));

    assert_int_equal(kn_mime_header_decode(field(&p, "Subject"), &dec), 0);
    assert_string_equal(dec, subject);
    free(dec);

    /* From: encoded display name, then the address in brackets. */
    assert_memory_equal(field(&p, "From"), "=?UTF-8?B?", 10);
    assert_int_equal(kn_mime_header_decode(field(&p, "From"), &dec), 0);
    assert_int_equal(kn_mime_split_mailbox(dec, &name, &addr), 0);
    assert_string_equal(name, "さくら小学校 連絡網");
    assert_string_equal(addr, "noreply@sakura-es.example.jp");
    free(name);
    free(addr);
    free(dec);
    assert_int_equal(kn_mime_header_decode(field(&p, "Reply-To"), &dec), 0);
    assert_string_equal(dec, "教頭 <kyoto@sakura-es.example.jp>");
    free(dec);

    assert_int_equal(p.body_len, (long)strlen(body_crlf));
    assert_string_equal(p.body, body_crlf);

    parsed_free(&p);
    free(out);
    free(subject);
}

/* RFC 8058: both headers exactly, the URL in brackets unfolded; none
 * without a URL; a URL that could break the header refused. */
static void test_build_list_unsubscribe(void **state)
{
    char url[400];
    struct kn_mime_msg m = {
        .from = "noreply@example.jp",
        .to = "parent@example.jp",
        .subject = "行事のお知らせ",
        .body = "本文",
        .message_id = "<kn.0.1@example.jp>",
        .date_ms = 1795298400000LL,
    };
    char *out = NULL, *want;
    size_t len = 0;
    const char *bad[] = {"http://k.example.jp/u/x",
                         "https://k.example.jp/u/a b",
                         "https://k.example.jp/u/a>b",
                         "https://k/u/a,b",
                         "https://k.example.jp/u/\xe3\x81\x82",
                         "https://"};

    snprintf(url, sizeof(url), "https://kairan.example.jp/u/%0300d", 7);
    m.unsub = url;
    assert_int_equal(kn_mime_build(&m, &out, &len), 0);
    want = kn_xasprintf("\r\nList-Unsubscribe: <%s>\r\n"
                        "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
                        url);
    assert_non_null(strstr(out, want));
    free(want);
    /* (parse_message checks 76 octets a line: this one header may pass
     * it, RFC 2369 forbids folding inside the brackets) */
    assert_non_null(strstr(out, "\r\n\r\n"));
    assert_true(strstr(out, "List-Unsubscribe:") < strstr(out, "\r\n\r\n"));
    free(out);

    /* the scheme is case-insensitive (RFC 3986 3.1) */
    m.unsub = "HTTPS://Kairan.Example.JP/u/T";
    assert_int_equal(kn_mime_build(&m, &out, &len), 0);
    assert_non_null(
        strstr(out, "\r\nList-Unsubscribe: <HTTPS://Kairan.Example.JP/u/T>"));
    free(out);

    m.unsub = NULL;
    assert_int_equal(kn_mime_build(&m, &out, &len), 0);
    assert_null(strstr(out, "List-Unsubscribe"));
    free(out);

    for (size_t i = 0; i < KN_ARRAY_SIZE(bad); i++) {
        m.unsub = bad[i];
        assert_int_equal(kn_mime_build(&m, &out, &len), KN_EINVAL);
        assert_null(out);
    }
}

static void test_build_urgent_and_ascii(void **state)
{
    struct kn_mime_msg m = {
        .from = "Yamada, Taro <taro@example.jp>",
        .to = "parent@example.jp",
        .subject = "School closed",
        .body = "No school today.",
        .message_id = "<kn.0.1@example.jp>",
        .date_ms = 1795298400000LL,
        .urgent = 1,
    };
    struct parsed p;
    char *out = NULL;
    size_t len = 0;

    assert_int_equal(kn_mime_build(&m, &out, &len), 0);
    parse_message(out, len, &p);
    assert_string_equal(field(&p, "Date"), "Sun, 22 Nov 2026 07:00:00 +0900");
    assert_string_equal(field(&p, "From"),
                        "\"Yamada, Taro\" <taro@example.jp>");
    assert_null(field(&p, "Reply-To"));
    assert_string_equal(field(&p, "To"), "parent@example.jp");
    assert_string_equal(field(&p, "Subject"), "School closed");
    assert_string_equal(field(&p, "Importance"), "high");
    assert_string_equal(field(&p, "X-Priority"), "1");
    assert_string_equal(p.body, "No school today.");
    assert_null(field(&p, "Content-Language")); /* none given */
    parsed_free(&p);
    free(out);

    /* A translation's language (issue 16); a tag that is not one is
     * refused (it would reach a header). */
    m.lang = "en";
    assert_int_equal(kn_mime_build(&m, &out, &len), 0);
    parse_message(out, len, &p);
    assert_string_equal(field(&p, "Content-Language"), "en");
    parsed_free(&p);
    free(out);
    m.lang = "en\r\nBcc: x@example.jp";
    assert_int_equal(kn_mime_build(&m, &out, &len), KN_EINVAL);
    m.lang = NULL;

    /* Plain address; atom display name; empty subject and body. */
    m.from = "noreply@example.jp";
    m.subject = "";
    m.body = "";
    m.urgent = 0;
    m.reply_to = "Sakura PTA <pta@example.jp>";
    assert_int_equal(kn_mime_build(&m, &out, &len), 0);
    parse_message(out, len, &p);
    assert_string_equal(field(&p, "From"), "noreply@example.jp");
    assert_string_equal(field(&p, "Reply-To"), "Sakura PTA <pta@example.jp>");
    assert_string_equal(field(&p, "Subject"), "");
    assert_int_equal(p.body_len, 0);
    assert_null(field(&p, "Importance"));
    parsed_free(&p);
    free(out);
}

/* Display names of every kind come back out of the From header. */
static void test_build_from_forms(void **state)
{
    static const struct {
        const char *from;
        const char *name; /* NULL: no display name */
        const char *addr; /* as written in the header */
    } cases[] = {
        {"a@example.jp", NULL, "a@example.jp"},
        {"<a@example.jp>", NULL, "a@example.jp"},
        {"Sakura PTA <a@example.jp>", "Sakura PTA", "a@example.jp"},
        {"\"T. Yamada (PTA)\" <a@example.jp>", "T. Yamada (PTA)",
         "a@example.jp"},
        {"Say \"hi\" <a@example.jp>", "Say \"hi\"", "a@example.jp"},
        {"=?not?= <a@example.jp>", "=?not?=", "a@example.jp"},
        {"さくら小学校 <abc.@docomo.ne.jp>", "さくら小学校",
         "\"abc.\"@docomo.ne.jp"},
        {"Sakura Elementary School Parents and Teachers Association Emergency "
         "Contact Network <a@example.jp>",
         "Sakura Elementary School Parents and Teachers Association Emergency "
         "Contact Network",
         "a@example.jp"},
        {"\"Sakura Elementary School, Parents and Teachers Association, "
         "Emergency Contact\" <a@example.jp>",
         "Sakura Elementary School, Parents and Teachers Association, "
         "Emergency Contact",
         "a@example.jp"},
    };

    for (size_t i = 0; i < KN_ARRAY_SIZE(cases); i++) {
        struct kn_mime_msg m = {
            .from = cases[i].from,
            .to = "b@example.jp",
            .subject = "s",
            .body = "b",
            .message_id = "<kn.0.1@example.jp>",
        };
        struct parsed p;
        char *out = NULL, *dec = NULL, *name = NULL, *addr = NULL;
        size_t len;

        assert_int_equal(kn_mime_build(&m, &out, &len), 0);
        parse_message(out, len, &p);
        assert_int_equal(kn_mime_header_decode(field(&p, "From"), &dec), 0);
        assert_int_equal(kn_mime_split_mailbox(dec, &name, &addr), 0);
        if (cases[i].name == NULL)
            assert_null(name);
        else if (name == NULL || strcmp(name, cases[i].name) != 0)
            fail_msg("case %zu: name [%s] from [%s]", i, name ? name : "",
                     field(&p, "From"));
        assert_string_equal(addr, cases[i].addr);
        free(name);
        free(addr);
        free(dec);
        parsed_free(&p);
        free(out);
    }
}

static void test_build_body_line_ends(void **state)
{
    struct kn_mime_msg m = {
        .from = "a@example.jp",
        .to = "b@example.jp",
        .subject = "x",
        .body = "a\nb\r\nc\rd\n\ne",
        .message_id = "<kn.0.1@example.jp>",
    };
    struct parsed p;
    char *out = NULL, *big = repeat("長い本文の行です。", 200);
    size_t len = 0;

    assert_int_equal(kn_mime_build(&m, &out, &len), 0);
    parse_message(out, len, &p);
    assert_string_equal(p.body, "a\r\nb\r\nc\r\nd\r\n\r\ne");
    parsed_free(&p);
    free(out);

    /* A long body: many base64 lines, each checked by parse_message. */
    m.body = big;
    assert_int_equal(kn_mime_build(&m, &out, &len), 0);
    parse_message(out, len, &p);
    assert_string_equal(p.body, big);
    parsed_free(&p);
    free(out);
    free(big);
}

/* Every way of smuggling a line break or bad bytes in is refused. */
static void test_build_injection(void **state)
{
    const struct kn_mime_msg good = {
        .from = "学校 <school@example.jp>",
        .reply_to = "office@example.jp",
        .to = "parent@example.jp",
        .subject = "件名",
        .body = "本文\n",
        .message_id = "<kn.0.1@example.jp>",
    };
    static const char *bad_headers[] = {
        "x\r\nBcc: victim@example.jp",
        "x\nBcc: victim@example.jp",
        "x\rBcc: victim@example.jp",
        "\xe5\xad", /* truncated UTF-8 */
        "\xed\xa0\x80",
    };
    struct kn_mime_msg m;
    char *out;
    size_t len;

    out = NULL;
    assert_int_equal(kn_mime_build(&good, &out, &len), 0);
    free(out);

    for (size_t i = 0; i < KN_ARRAY_SIZE(bad_headers); i++) {
        const char **fields[] = {&m.subject, &m.from, &m.to, &m.reply_to,
                                 &m.message_id};
        for (size_t f = 0; f < KN_ARRAY_SIZE(fields); f++) {
            m = good;
            *fields[f] = bad_headers[i];
            out = (char *)1;
            len = 99;
            if (kn_mime_build(&m, &out, &len) != KN_EINVAL)
                fail_msg("field %zu accepted [%s]", f, bad_headers[i]);
            assert_null(out);
            assert_int_equal(len, 0);
        }
    }
    /* Line breaks inside an address part, and other bad addresses. */
    {
        static const char *bad_from[] = {
            "学校 <school@example.jp\r\n>",
            "学校\r\n <school@example.jp>",
            "学校 <school@example.jp",
            "学校 <not-an-address>",
            "",
        };
        for (size_t i = 0; i < KN_ARRAY_SIZE(bad_from); i++) {
            m = good;
            m.from = bad_from[i];
            assert_int_equal(kn_mime_build(&m, &out, &len), KN_EINVAL);
            m = good;
            m.reply_to = bad_from[i];
            assert_int_equal(kn_mime_build(&m, &out, &len), KN_EINVAL);
        }
    }
    m = good;
    m.to = "Name <parent@example.jp>";
    assert_int_equal(kn_mime_build(&m, &out, &len), KN_EINVAL);
    m = good;
    m.to = "a@b@example.jp";
    assert_int_equal(kn_mime_build(&m, &out, &len), KN_EINVAL);
    m = good;
    m.message_id = "no-brackets@example.jp";
    assert_int_equal(kn_mime_build(&m, &out, &len), KN_EINVAL);
    m = good;
    m.message_id = "<a b@example.jp>";
    assert_int_equal(kn_mime_build(&m, &out, &len), KN_EINVAL);
    m = good;
    m.body = "bad \xff body";
    assert_int_equal(kn_mime_build(&m, &out, &len), KN_EINVAL);
    m = good;
    m.to = NULL;
    assert_int_equal(kn_mime_build(&m, &out, &len), KN_EINVAL);
    assert_int_equal(kn_mime_build(NULL, &out, &len), KN_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_header_safe),
        cmocka_unit_test(test_header_roundtrip_many),
        cmocka_unit_test(test_header_never_splits_char),
        cmocka_unit_test(test_header_roundtrip_random),
        cmocka_unit_test(test_header_plain_ascii),
        cmocka_unit_test(test_header_encoded_forms),
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_addr_check),
        cmocka_unit_test(test_addr_quote),
        cmocka_unit_test(test_addr_is_dot_atom),
        cmocka_unit_test(test_message_id),
        cmocka_unit_test(test_date),
        cmocka_unit_test(test_split_mailbox),
        cmocka_unit_test(test_build_roundtrip),
        cmocka_unit_test(test_build_urgent_and_ascii),
        cmocka_unit_test(test_build_list_unsubscribe),
        cmocka_unit_test(test_build_from_forms),
        cmocka_unit_test(test_build_body_line_ends),
        cmocka_unit_test(test_build_injection),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
