/*
 * test_csv.c - unit tests for common/csv.c: encoding detection (UTF-8 with
 * and without BOM, CP932 as Japanese Excel writes it, UTF-16 and invalid
 * bytes refused with the line named) and the record reader (quotes,
 * doubled quotes, commas and line breaks inside quotes, CRLF / LF / CR,
 * physical line numbers, syntax errors that do not derail the next row).
 *
 * common/csv.c is included here directly, so that its static helpers
 * can be reached.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "common/csv.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ---- helpers ---- */

static int decode(const char *in, size_t len, char **out, size_t *outlen,
                  enum kn_csv_enc *enc, char *err)
{
    return kn_csv_decode(in, len, out, outlen, enc, err, 300, NULL, 0);
}

/* Read every record of text into rows (at most max); returns the count. */
static size_t read_all(const char *text, struct kn_csv_row *rows, size_t max)
{
    struct kn_csv c;
    size_t n = 0;
    kn_csv_init(&c, text, strlen(text));
    while (n < max) {
        memset(&rows[n], 0, sizeof(rows[n]));
        if (kn_csv_next(&c, &rows[n]) == 0)
            break;
        n++;
    }
    return n;
}

static void free_rows(struct kn_csv_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        kn_csv_row_free(&rows[i]);
}

/* ---- encoding ---- */

static void test_decode_ascii(void **state)
{
    const char *in = "id,name\r\n1,a\r\n";
    char *out, err[300];
    size_t len;
    enum kn_csv_enc enc;
    assert_int_equal(decode(in, strlen(in), &out, &len, &enc, err), 0);
    assert_int_equal(enc, KN_CSV_UTF8);
    assert_int_equal(len, strlen(in));
    assert_string_equal(out, in);
    free(out);
    assert_string_equal(kn_csv_enc_name(KN_CSV_UTF8), "UTF-8");
}

static void test_decode_utf8_no_bom(void **state)
{
    const char *in = "氏名\n髙橋①\n";
    char *out, err[300];
    size_t len;
    enum kn_csv_enc enc;
    assert_int_equal(decode(in, strlen(in), &out, &len, &enc, err), 0);
    assert_int_equal(enc, KN_CSV_UTF8);
    assert_string_equal(out, in);
    free(out);
}

static void test_decode_bom(void **state)
{
    const char in[] = "\xef\xbb\xbfid,\xe6\xb0\x8f\xe5\x90\x8d\n";
    char *out, err[300];
    size_t len;
    enum kn_csv_enc enc;
    assert_int_equal(decode(in, sizeof(in) - 1, &out, &len, &enc, err), 0);
    assert_int_equal(enc, KN_CSV_UTF8_BOM);
    assert_string_equal(out, "id,氏名\n"); /* BOM gone */
    assert_int_equal(len, strlen("id,氏名\n"));
    free(out);
    assert_string_equal(kn_csv_enc_name(KN_CSV_UTF8_BOM), "UTF-8 with BOM");
}

static void test_decode_bom_only(void **state)
{
    char *out, err[300];
    size_t len;
    enum kn_csv_enc enc;
    assert_int_equal(decode("\xef\xbb\xbf", 3, &out, &len, &enc, err), 0);
    assert_int_equal(len, 0);
    assert_string_equal(out, "");
    free(out);
}

/*
 * CP932 as Excel writes it: 髙 (NEC-selected IBM extension EE E0 and the
 * IBM extension FB FC), 橋 8B B4, ① (NEC special row) 87 40, ～ 81 60,
 * and 表 95 5C, whose second byte is '\'.
 */
static void test_decode_cp932(void **state)
{
    const char in[] = "id,\x8e\x81\x96\xbc\r\n"         /* id,氏名 */
                      "1,\xee\xe0\x8b\xb4\x87\x40\r\n"  /* 髙橋① */
                      "2,\xfb\xfc\x81\x60\x95\x5c\r\n"; /* 髙～表 */
    char *out, err[300];
    size_t len;
    enum kn_csv_enc enc;
    assert_int_equal(decode(in, sizeof(in) - 1, &out, &len, &enc, err), 0);
    assert_int_equal(enc, KN_CSV_CP932);
    assert_string_equal(out, "id,氏名\r\n1,髙橋①\r\n2,髙～表\r\n");
    assert_int_equal(len, strlen(out));
    free(out);
    assert_string_equal(kn_csv_enc_name(KN_CSV_CP932), "CP932");
}

/* Half-width katakana are single bytes in CP932 (A1-DF). */
static void test_decode_cp932_halfwidth(void **state)
{
    const char in[] = "\xb6\xc5,\x82\xa0\n"; /* ｶﾅ,あ */
    char *out, err[300];
    size_t len;
    enum kn_csv_enc enc;
    assert_int_equal(decode(in, sizeof(in) - 1, &out, &len, &enc, err), 0);
    assert_int_equal(enc, KN_CSV_CP932);
    assert_string_equal(out, "ｶﾅ,あ\n");
    free(out);
}

/* 0x80 and 0xFF are not characters in CP932 and not UTF-8 either. */
static void test_decode_invalid_both(void **state)
{
    const char in[] = "id,name\r\n1,a\r\n2,\x80\xff\r\n";
    char *out = (char *)1, err[300];
    size_t len;
    enum kn_csv_enc enc;
    assert_int_equal(decode(in, sizeof(in) - 1, &out, &len, &enc, err),
                     KN_EUTF8);
    assert_null(out);
    assert_non_null(strstr(err, "line 3:"));
    assert_non_null(strstr(err, "neither UTF-8 nor CP932"));
    assert_non_null(strstr(err, "0x80"));
}

/* A CP932 lead byte followed by a space: not a character. */
static void test_decode_invalid_cp932_pair(void **state)
{
    const char in[] = "a\nb\n\x82\xa0\n\x81\x20x\n"; /* あ ok, 81 20 bad */
    char *out, err[300];
    size_t len;
    enum kn_csv_enc enc;
    assert_int_equal(decode(in, sizeof(in) - 1, &out, &len, &enc, err),
                     KN_EUTF8);
    assert_non_null(strstr(err, "line 4:"));
    assert_non_null(strstr(err, "0x81 0x20"));
}

/* A lead byte cut off by the end of the file. */
static void test_decode_cp932_truncated(void **state)
{
    const char in[] = "a,\x82\xa0\n\x82";
    char *out, err[300];
    size_t len;
    enum kn_csv_enc enc;
    assert_int_equal(decode(in, sizeof(in) - 1, &out, &len, &enc, err),
                     KN_EUTF8);
    assert_non_null(strstr(err, "line 2:"));
}

/* Invalid UTF-8 forms are not taken for UTF-8 (then CP932 decides). */
static void test_decode_utf8_edge_cases(void **state)
{
    /* overlong "/" (C0 AF) is not UTF-8; in CP932 it is ﾀｯ */
    const char overlong[] = "\xc0\xaf\n";
    /* a surrogate (ED A0 80) is not UTF-8, and 80 is not CP932 */
    const char surrogate[] = "x\n\xed\xa0\x80\n";
    char *out, err[300];
    size_t len;
    enum kn_csv_enc enc;
    assert_int_equal(decode(overlong, 3, &out, &len, &enc, err), 0);
    assert_int_equal(enc, KN_CSV_CP932);
    assert_string_equal(out, "ﾀｯ\n");
    free(out);
    /* ED A0 is valid CP932 (a kanji), 80 is not */
    assert_int_equal(
        decode(surrogate, sizeof(surrogate) - 1, &out, &len, &enc, err),
        KN_EUTF8);
    assert_non_null(strstr(err, "line 2:"));
    /* a 4-byte character is fine */
    assert_int_equal(decode("\xf0\x9f\x98\x80", 4, &out, &len, &enc, err), 0);
    assert_int_equal(enc, KN_CSV_UTF8);
    free(out);
}

static void test_decode_bom_then_invalid(void **state)
{
    const char in[] = "\xef\xbb\xbfid\r\n\x82\xa0\r\n"; /* BOM + CP932 */
    char *out, err[300];
    size_t len;
    enum kn_csv_enc enc;
    assert_int_equal(decode(in, sizeof(in) - 1, &out, &len, &enc, err),
                     KN_EUTF8);
    assert_non_null(strstr(err, "line 2:"));
    assert_non_null(strstr(err, "BOM"));
}

static void test_decode_utf16(void **state)
{
    const char in[] = "\xff\xfei\x00"
                      "d\x00";
    char *out, err[300];
    size_t len;
    enum kn_csv_enc enc;
    assert_int_equal(decode(in, sizeof(in) - 1, &out, &len, &enc, err),
                     KN_EUTF8);
    assert_non_null(strstr(err, "UTF-16"));
}

/* Line numbers count CRLF, LF and a lone CR each as one line end. */
static void test_decode_line_numbers_mixed_eol(void **state)
{
    const char in[] = "a\r\nb\rc\nd\r\n\x80";
    char *out, err[300];
    size_t len;
    enum kn_csv_enc enc;
    assert_int_equal(decode(in, sizeof(in) - 1, &out, &len, &enc, err),
                     KN_EUTF8);
    assert_non_null(strstr(err, "line 5:"));
}

/* ---- records ---- */

static void test_simple(void **state)
{
    struct kn_csv_row r[4];
    size_t n = read_all("id,name\r\n1,a\r\n2,b", r, 4);
    assert_int_equal(n, 3);
    assert_int_equal(r[0].n, 2);
    assert_string_equal(r[0].f[0], "id");
    assert_string_equal(r[0].f[1], "name");
    assert_int_equal(r[0].line, 1);
    assert_string_equal(r[1].f[1], "a");
    assert_int_equal(r[1].line, 2);
    assert_string_equal(r[2].f[0], "2");
    assert_string_equal(r[2].f[1], "b"); /* no final line break */
    assert_int_equal(r[2].line, 3);
    assert_null(r[2].err);
    free_rows(r, n);
}

static void test_quotes(void **state)
{
    struct kn_csv_row r[2];
    size_t n = read_all("\"a,b\",\"say \"\"hi\"\"\",\"\",plain\n", r, 2);
    assert_int_equal(n, 1);
    assert_int_equal(r[0].n, 4);
    assert_string_equal(r[0].f[0], "a,b");
    assert_string_equal(r[0].f[1], "say \"hi\"");
    assert_string_equal(r[0].f[2], "");
    assert_int_equal(r[0].len[2], 0);
    assert_string_equal(r[0].f[3], "plain");
    assert_null(r[0].err);
    free_rows(r, n);
}

/* Line breaks inside quotes are kept and counted. */
static void test_embedded_newlines(void **state)
{
    struct kn_csv_row r[4];
    size_t n = read_all("id,memo\r\n"
                        "1,\"first\r\nsecond\nthird\"\r\n"
                        "2,x\r\n"
                        "3,\"a\rb\"\n",
                        r, 4);
    assert_int_equal(n, 4);
    assert_string_equal(r[1].f[1], "first\r\nsecond\nthird");
    assert_int_equal(r[1].line, 2);
    assert_int_equal(r[1].end_line, 4);
    assert_int_equal(r[2].line, 5);
    assert_string_equal(r[2].f[0], "2");
    assert_int_equal(r[3].line, 6);
    assert_string_equal(r[3].f[1], "a\rb");
    free_rows(r, n);
}

static void test_cr_only_and_blank_lines(void **state)
{
    struct kn_csv_row r[4];
    size_t n = read_all("h\r\r\na\r\n\nb\r\r", r, 4);
    /* lines: 1 "h", 2 "", 3 "a", 4 "", 5 "b", 6 "" */
    assert_int_equal(n, 3);
    assert_string_equal(r[0].f[0], "h");
    assert_int_equal(r[0].line, 1);
    assert_string_equal(r[1].f[0], "a");
    assert_int_equal(r[1].line, 3);
    assert_string_equal(r[2].f[0], "b");
    assert_int_equal(r[2].line, 5);
    free_rows(r, n);
}

static void test_empty_fields(void **state)
{
    struct kn_csv_row r[2];
    size_t n = read_all(",,\n1,,\n", r, 2);
    assert_int_equal(n, 2);
    assert_int_equal(r[0].n, 3); /* a cleared Excel row is still a record */
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(r[0].f[i], "");
    assert_int_equal(r[1].n, 3);
    assert_string_equal(r[1].f[0], "1");
    free_rows(r, n);
}

static void test_empty_input(void **state)
{
    struct kn_csv_row r[2];
    assert_int_equal(read_all("", r, 2), 0);
    assert_int_equal(read_all("\r\n\n\r", r, 2), 0);
}

/* A quote inside an unquoted cell is an ordinary character. */
static void test_quote_inside_unquoted(void **state)
{
    struct kn_csv_row r[1];
    size_t n = read_all("ab\"c,d\n", r, 1);
    assert_int_equal(n, 1);
    assert_string_equal(r[0].f[0], "ab\"c");
    assert_null(r[0].err);
    free_rows(r, n);
}

/* Text after a closing quote: an error on that row only. */
static void test_text_after_quote(void **state)
{
    struct kn_csv_row r[3];
    size_t n = read_all("1,\"ab\"cd,e\n2,f,g\n", r, 3);
    assert_int_equal(n, 2);
    assert_non_null(r[0].err);
    assert_non_null(strstr(r[0].err, "after a closing quote"));
    assert_int_equal(r[0].err_line, 1);
    assert_int_equal(r[0].unclosed, 0);
    assert_int_equal(r[0].n, 3);
    assert_string_equal(r[0].f[1], "abcd");
    assert_string_equal(r[0].f[2], "e");
    assert_null(r[1].err);
    assert_int_equal(r[1].line, 2);
    assert_string_equal(r[1].f[2], "g");
    free_rows(r, n);
}

/* A quote never closed takes the rest of the file; the error names the
 * line it opened on. */
static void test_unclosed_quote(void **state)
{
    struct kn_csv_row r[3];
    size_t n = read_all("id\n1,\"abc\n2,x\n3,y\n", r, 3);
    assert_int_equal(n, 2);
    assert_null(r[0].err);
    assert_non_null(r[1].err);
    assert_non_null(strstr(r[1].err, "never closed"));
    assert_int_equal(r[1].err_line, 2);
    assert_int_equal(r[1].unclosed, 1);
    assert_string_equal(r[1].f[1], "abc\n2,x\n3,y\n");
    free_rows(r, n);
}

/* NUL bytes are kept with the right length (the caller refuses them). */
static void test_nul_byte(void **state)
{
    const char text[] = "a\0b,c\n";
    struct kn_csv c;
    struct kn_csv_row r = {0};
    kn_csv_init(&c, text, sizeof(text) - 1);
    assert_int_equal(kn_csv_next(&c, &r), 1);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.len[0], 3);
    assert_memory_equal(r.f[0], "a\0b", 3);
    assert_string_equal(r.f[1], "c");
    assert_int_equal(kn_csv_next(&c, &r), 0);
    kn_csv_row_free(&r);
}

/* A trailing comma is one more, empty, field. */
static void test_trailing_comma(void **state)
{
    struct kn_csv_row r[1];
    size_t n = read_all("a,b,\r\n", r, 1);
    assert_int_equal(n, 1);
    assert_int_equal(r[0].n, 3);
    assert_string_equal(r[0].f[2], "");
    free_rows(r, n);
}

/* Decoded CP932 goes through the reader with its line numbers intact. */
static void test_cp932_file_end_to_end(void **state)
{
    /* "id,氏名,メモ" / "1,髙橋,"①\r\n②"" / "2,表,x" in CP932 */
    const char in[] = "id,\x8e\x81\x96\xbc,\x83\x81\x83\x82\r\n"
                      "1,\xee\xe0\x8b\xb4,\"\x87\x40\r\n\x87\x41\"\r\n"
                      "2,\x95\x5c,x\r\n";
    struct kn_csv_row r[4];
    char *out, err[300];
    size_t len, n;
    enum kn_csv_enc enc;
    assert_int_equal(decode(in, sizeof(in) - 1, &out, &len, &enc, err), 0);
    assert_int_equal(enc, KN_CSV_CP932);
    n = read_all(out, r, 4);
    assert_int_equal(n, 3);
    assert_string_equal(r[0].f[1], "氏名");
    assert_string_equal(r[0].f[2], "メモ");
    assert_string_equal(r[1].f[1], "髙橋");
    assert_string_equal(r[1].f[2], "①\r\n②");
    assert_int_equal(r[2].line, 4);
    assert_string_equal(r[2].f[1], "表");
    free_rows(r, n);
    free(out);
}

/*
 * A UTF-8 file with lines pasted from a CP932 file (and the other way
 * round): refused, naming the first line of the smaller kind, instead of
 * reading it all as CP932 (山田 as mojibake).
 */
static void test_decode_mixed_encodings(void **state)
{
    /* header, 山田 and 佐藤 in UTF-8, then 髙橋 (E9 AB 99 in UTF-8) in
     * CP932: FB FC 8B B4 */
    const char utf8_first[] = "id,name\r\n1,\xe5\xb1\xb1\xe7\x94\xb0\r\n"
                              "2,\xe4\xbd\x90\xe8\x97\xa4\r\n"
                              "3,\xfb\xfc\x8b\xb4\r\n";
    /* 山田 (8E 52 93 63) and 佐藤 (8D B2 93 A1) in CP932, one UTF-8 line */
    const char cp932_first[] = "id,name\n1,\x8e\x52\x93\x63\n"
                               "2,\x8d\xb2\x93\xa1\n"
                               "3,\xe5\xb1\xb1\xe7\x94\xb0\n"
                               "4,\x8e\x52\x93\x63\n";
    char *out = (char *)1, err[300];
    size_t len;
    enum kn_csv_enc enc;
    assert_int_equal(
        decode(utf8_first, sizeof(utf8_first) - 1, &out, &len, &enc, err),
        KN_EUTF8);
    assert_null(out);
    assert_non_null(strstr(err, "line 4:"));
    assert_non_null(strstr(err, "mixes two encodings"));
    assert_non_null(strstr(err, "one encoding"));
    assert_int_equal(
        decode(cp932_first, sizeof(cp932_first) - 1, &out, &len, &enc, err),
        KN_EUTF8);
    assert_non_null(strstr(err, "line 4: the file mixes"));
    assert_non_null(strstr(err, "this line is UTF-8"));
}

/* Pure CP932 with half-width kana that happen to be valid 2-byte UTF-8
 * ("ﾃｽ" is C3 BD, "½" in UTF-8) is still CP932, not "mixed". */
static void test_decode_cp932_kana_not_mixed(void **state)
{
    const char in[] = "id,name\n1,\xc3\xbd\n2,\x8e\x52\x93\x63\n";
    char *out, err[300];
    size_t len;
    enum kn_csv_enc enc;
    assert_int_equal(decode(in, sizeof(in) - 1, &out, &len, &enc, err), 0);
    assert_int_equal(enc, KN_CSV_CP932);
    assert_string_equal(out, "id,name\n1,ﾃｽ\n2,山田\n");
    free(out);
}

/* ---- writing ---- */

static char *put_cells(const char *const *cells, size_t n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    for (size_t i = 0; i < n; i++)
        kn_csv_put_cell(f, cells[i], i + 1 == n);
    fclose(f);
    return buf;
}

/* Formula cells are written as text for Excel (OWASP): 'x in quotes. */
static void test_put_cell_guards_formulas(void **state)
{
    const char *const cells[] = {"=1+1", "+81", "-2",  "@SUM(A1)", "\tx",
                                 "'=x",  "ok",  "a,b", "'abc",     ""};
    char *s = put_cells(cells, KN_ARRAY_SIZE(cells));
    assert_string_equal(s, "\"'=1+1\",\"'+81\",\"'-2\",\"'@SUM(A1)\","
                           "\"'\tx\",\"''=x\",ok,\"a,b\",'abc,\r\n");
    free(s);
}

/* What Japanese Excel also takes as a formula: the full-width ＝ ＋ － ＠
 * (its input method turns them into = + - @), U+2212 (CP932 writes it as
 * the full-width －), and any of them after leading spaces (ASCII or
 * U+3000). */
static void test_put_cell_guards_fullwidth_and_spaces(void **state)
{
    const char *const cells[] = {"＝1+1", "＋81", "－2",   "＠SUM", "−3",
                                 " =1+1", "　=1", "  ＝x", "ok ＝"};
    char *s = put_cells(cells, KN_ARRAY_SIZE(cells));
    assert_string_equal(s, "\"'＝1+1\",\"'＋81\",\"'－2\",\"'＠SUM\","
                           "\"'−3\",\"' =1+1\",\"'　=1\",\"'  ＝x\","
                           "ok ＝\r\n");
    free(s);
    /* and import takes the quote off again */
    assert_string_equal(kn_csv_unguard("'＝1"), "＝1");
    assert_string_equal(kn_csv_unguard("' =1"), " =1");
    assert_string_equal(kn_csv_unguard("'？"), "'？");
}

/* What export writes, import reads back as it was. */
static void test_guard_round_trip(void **state)
{
    const char *const values[] = {"=HYPERLINK(\"http://x\")",
                                  "+81-3",
                                  "-",
                                  "@",
                                  "'=x",
                                  "''+y",
                                  "'abc",
                                  "'",
                                  "a'=b",
                                  "山田",
                                  "＝1",
                                  "'－2",
                                  " =x",
                                  ""};
    for (size_t i = 0; i < KN_ARRAY_SIZE(values); i++) {
        const char *cells[1] = {values[i]};
        char *text = put_cells(cells, 1);
        struct kn_csv c;
        struct kn_csv_row row = {0};
        kn_csv_init(&c, text, strlen(text));
        if (values[i][0] == '\0') {
            free(text);
            continue; /* an empty line is no record */
        }
        assert_int_equal(kn_csv_next(&c, &row), 1);
        assert_int_equal(row.n, 1);
        assert_string_equal(kn_csv_unguard(row.f[0]), values[i]);
        kn_csv_row_free(&row);
        free(text);
    }
    /* a quote that export would not have added stays */
    assert_string_equal(kn_csv_unguard("'abc"), "'abc");
    assert_string_equal(kn_csv_unguard("'"), "'");
    assert_string_equal(kn_csv_unguard("'=1"), "=1");
}

/* UTF-8 -> CP932 for Excel (common/csvcell.c): Japanese text and the
 * CSV's own bytes kept; what CP932 cannot hold becomes '?'. */
static void test_cp932_out(void **st)
{
    const char *in = "氏名,\"無事です\",～①\r\n😀x\xff";
    size_t n;
    char *out = kn_csv_cp932(in, strlen(in), &n);
    char *back = NULL;
    size_t bn, bad = 0;
    (void)st;
    assert_int_equal(n, strlen(out));
    /* back through the reader's own converter */
    assert_int_equal(from_cp932(out, n, &back, &bn, &bad), 0);
    assert_string_equal(back, "氏名,\"無事です\",～①\r\n?x?");
    free(back);
    free(out);
    out = kn_csv_cp932("", 0, &n);
    assert_int_equal(n, 0);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cp932_out),
        cmocka_unit_test(test_decode_ascii),
        cmocka_unit_test(test_decode_utf8_no_bom),
        cmocka_unit_test(test_decode_bom),
        cmocka_unit_test(test_decode_bom_only),
        cmocka_unit_test(test_decode_cp932),
        cmocka_unit_test(test_decode_cp932_halfwidth),
        cmocka_unit_test(test_decode_invalid_both),
        cmocka_unit_test(test_decode_invalid_cp932_pair),
        cmocka_unit_test(test_decode_cp932_truncated),
        cmocka_unit_test(test_decode_utf8_edge_cases),
        cmocka_unit_test(test_decode_bom_then_invalid),
        cmocka_unit_test(test_decode_utf16),
        cmocka_unit_test(test_decode_line_numbers_mixed_eol),
        cmocka_unit_test(test_simple),
        cmocka_unit_test(test_quotes),
        cmocka_unit_test(test_embedded_newlines),
        cmocka_unit_test(test_cr_only_and_blank_lines),
        cmocka_unit_test(test_empty_fields),
        cmocka_unit_test(test_empty_input),
        cmocka_unit_test(test_quote_inside_unquoted),
        cmocka_unit_test(test_text_after_quote),
        cmocka_unit_test(test_unclosed_quote),
        cmocka_unit_test(test_nul_byte),
        cmocka_unit_test(test_trailing_comma),
        cmocka_unit_test(test_cp932_file_end_to_end),
        cmocka_unit_test(test_decode_mixed_encodings),
        cmocka_unit_test(test_decode_cp932_kana_not_mixed),
        cmocka_unit_test(test_put_cell_guards_formulas),
        cmocka_unit_test(test_guard_round_trip),
        cmocka_unit_test(test_put_cell_guards_fullwidth_and_spaces),
    };
    return cmocka_run_group_tests_name("csv", tests, NULL, NULL);
}
