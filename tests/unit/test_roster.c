/*
 * test_roster.c - unit tests for queue/roster.c's check step (no Redis):
 * the header (aliases, unknown columns kept with their names and column
 * numbers, ignore and ignore_unknown, a repeated column, no id), bad rows
 * with their lines and reasons (capped at KN_ROSTER_MAX_SHOWN, the rest
 * counted), skip_bad, a child's guardian rows merged, CP932 and an empty
 * file; and the staff name and groups rules of model/session.c.  Every
 * reason also in Japanese (text_ja: the row as a spreadsheet shows it,
 * the column as the file's header names it, what to do), and CP932's
 * user-defined characters (gaiji, private use) refused in a cell.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "common/buf.h"
#include "common/kn.h"
#include "model/address.h"
#include "model/session.h"
#include "queue/roster.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static struct kn_roster *check(const char *csv, const struct kn_roster_opts *o,
                               int want)
{
    struct kn_roster *ro = NULL;
    struct kn_roster_opts d = {"sakura", 0, 0, NULL, 0, 0, 0};
    assert_int_equal(kn_roster_check(csv, strlen(csv), o ? o : &d, &ro), want);
    assert_non_null(ro);
    return ro;
}

static void test_good_file_and_aliases(void **state)
{
    struct kn_roster *ro = check("生徒ID,名前,クラス,メール\r\n"
                                 "s-1,山田 太郎,2年A組,a@example.jp\r\n"
                                 ",,,\r\n" /* a cleared row */
                                 "s-2,鈴木,2年A組,b@example.jp\r\n",
                                 NULL, 0);
    (void)state;
    assert_int_equal(ro->stop, KN_ROSTER_OK);
    assert_int_equal(ro->nrows, 2);
    assert_int_equal(ro->ngood, 2);
    assert_int_equal(ro->nbad, 0);
    assert_int_equal(ro->enc, KN_CSV_UTF8);
    kn_roster_free(ro);
}

static void test_unknown_columns_named_then_ignored(void **state)
{
    const char *csv = "ID,氏名,備考,メール,メモ\n"
                      "s-1,山田,x,a@example.jp,y\n";
    const char *ign[] = {"備考", "メモ"};
    struct kn_roster_opts o = {"sakura", 0, 0, ign, 2, 0, 0};
    struct kn_roster_opts all = {"sakura", 0, 0, NULL, 0, 1, 0};
    struct kn_roster *ro = check(csv, NULL, -1);
    (void)state;
    assert_int_equal(ro->stop, KN_ROSTER_HEADER);
    assert_int_equal(ro->nheader, 2);
    assert_string_equal(ro->header[0].unknown, "備考");
    assert_int_equal(ro->header[0].column, 3);
    assert_string_equal(ro->header[1].unknown, "メモ");
    assert_int_equal(ro->header[1].column, 5);
    assert_non_null(strstr(ro->header[0].text, "--ignore-column"));
    assert_string_equal(ro->header[0].letter, "C");
    assert_string_equal(ro->header[1].letter, "E");
    assert_non_null(strstr(ro->header[0].text, "unknown column \"備考\" "
                                               "(column 3, letter C)"));
    kn_roster_free(ro);
    /* column 27 is AA, as Excel names it, in both languages */
    {
        char *wide = kn_xstrdup("ID");
        for (int i = 2; i <= 26; i++) {
            char *t = kn_xasprintf("%s,", wide);
            free(wide);
            wide = t;
        }
        char *t = kn_xasprintf("%s,備考\ns-1\n", wide);
        free(wide);
        ro = check(t, NULL, -1);
        free(t);
        assert_int_equal(ro->nheader, 1);
        assert_int_equal(ro->header[0].column, 27);
        assert_string_equal(ro->header[0].letter, "AA");
        assert_non_null(strstr(ro->header[0].text, "(column 27, letter AA)"));
        assert_non_null(
            strstr(ro->header[0].text_ja, "見出し「備考」（AA列）"));
        kn_roster_free(ro);
    }
    ro = check(csv, &o, 0);
    assert_int_equal(ro->ngood, 1);
    kn_roster_free(ro);
    ro = check(csv, &all, 0);
    assert_int_equal(ro->ngood, 1);
    kn_roster_free(ro);
}

static void test_header_problems(void **state)
{
    struct kn_roster *ro =
        check("id,email,email\ns-1,a@x.jp,b@x.jp\n", NULL, -1);
    (void)state;
    assert_int_equal(ro->stop, KN_ROSTER_HEADER);
    assert_null(ro->header[0].unknown);
    assert_non_null(strstr(ro->header[0].text, "twice"));
    kn_roster_free(ro);
    ro = check("name,email\nx,a@x.jp\n", NULL, -1);
    assert_non_null(strstr(ro->header[0].text, "no id"));
    kn_roster_free(ro);
    ro = check("\n\n", NULL, -1);
    assert_int_equal(ro->stop, KN_ROSTER_EMPTY);
    kn_roster_free(ro);
    ro = check("id,name\n\xff\xfe\xfd,x\n", NULL, -1);
    assert_int_equal(ro->stop, KN_ROSTER_DECODE);
    assert_true(ro->decode_err[0] != '\0');
    kn_roster_free(ro);
}

static void test_bad_rows_lines_reasons_cap(void **state)
{
    char *csv = kn_xstrdup("id,name,email\n");
    struct kn_roster_opts skip = {"sakura", 1, 0, NULL, 0, 0, 0};
    struct kn_roster *ro;
    (void)state;
    for (int i = 0; i < 30; i++) {
        char *t = kn_xasprintf("%sb-%d,x,bad%d@@secret.example\n", csv, i, i);
        free(csv);
        csv = t;
    }
    {
        char *t = kn_xasprintf("%sok-1,y,ok@example.jp\n", csv);
        free(csv);
        csv = t;
    }
    ro = check(csv, NULL, -1);
    assert_int_equal(ro->stop, KN_ROSTER_BAD_ROWS);
    assert_int_equal(ro->nbad, 30);
    assert_int_equal(ro->nbad_shown, KN_ROSTER_MAX_SHOWN);
    assert_int_equal(ro->bad[0].line, 2);
    assert_non_null(strstr(ro->bad[0].text, "email"));
    assert_null(strstr(ro->bad[0].text, "bad0@")); /* masked */
    kn_roster_free(ro);
    ro = check(csv, &skip, 0);
    assert_int_equal(ro->ngood, 1);
    kn_roster_free(ro);
    free(csv);
}

static void test_guardian_rows_merged(void **state)
{
    struct kn_roster *ro = check("id,name,email,guardian\n"
                                 "f-1,田中,m@example.jp,母\n"
                                 "f-1,,f@example.jp,父\n"
                                 "f-1,別人,g@example.jp,祖母\n",
                                 NULL, -1);
    (void)state;
    /* the third row names another child under the same id */
    assert_int_equal(ro->nbad, 1);
    assert_int_equal(ro->bad[0].line, 4);
    assert_int_equal(ro->ngood, 1);
    kn_roster_free(ro);
}

/* A text of head, then n copies of fmt (%d the copy's number). */
static char *many(const char *head, const char *fmt, int n)
{
    struct kn_buf b = KN_BUF_INIT;
    size_t len;
    kn_buf_addf(&b, "%s", head);
    for (int i = 0; i < n; i++)
        kn_buf_addf(&b, fmt, i);
    return kn_buf_take(&b, &len);
}

/* One id on 200000 rows (a hostile or broken file: the id column filled
 * down) is checked in linear time: each guardian row was appended by
 * walking the whole list of the ones before it. */
static void test_one_id_on_many_rows_is_linear(void **state)
{
    char *csv = many("id,email\n", "x,a%d@example.jp\n", 200000);
    struct kn_roster *ro = check(csv, NULL, 0);
    (void)state;
    /* No clock here (a busy machine, valgrind): quadratic, this took
     * minutes and the test's own timeout caught it; linear, seconds. */
    assert_int_equal(ro->nrows, 200000);
    assert_int_equal(ro->ngood, 1);
    kn_roster_free(ro);
    free(csv);
}

/* A cell of 200000 values joined by ';' (fcm tokens, channels, groups)
 * is checked in linear time: repeats were looked for against every
 * value before, and the list joined again with strcat. */
static void test_long_lists_in_a_cell_are_linear(void **state)
{
    static const char *const heads[] = {"id,fcm\ns-1,", "id,channels\ns-1,",
                                        "id,groups\ns-1,"};
    static const char *const fmts[] = {"tok%d;", "email;", "g%d;"};
    (void)state;
    for (int k = 0; k < 3; k++) {
        char *csv = many(heads[k], fmts[k], 200000);
        struct kn_roster *ro = check(csv, NULL, k == 1 ? -1 : 0);
        assert_int_equal(ro->nrows, 1);
        kn_roster_free(ro);
        free(csv);
    }
    /* a token three times, another twice: repeats dropped as before */
    {
        struct kn_roster *ro = check("id,fcm\ns-1,b;a;b;c;b;a\n", NULL, 0);
        kn_roster_free(ro);
    }
}

/* A BOM in the middle (two "CSV UTF-8" files pasted into one) makes the
 * id after it invalid; the message must name it, not quote an id that
 * looks right ("s-2" is not a valid id). */
static void test_bom_in_the_middle_is_shown(void **state)
{
    struct kn_roster *ro =
        check("id,name\ns-1,a\n\xef\xbb\xbfs-2,b\n", NULL, -1);
    (void)state;
    assert_int_equal(ro->nbad, 1);
    assert_int_equal(ro->bad[0].line, 3);
    assert_non_null(strstr(ro->bad[0].text, "id: contains"));
    assert_non_null(strstr(ro->bad[0].text, "U+FEFF: a BOM"));
    kn_roster_free(ro);
}

/* What the registration page refuses in a guardian's name (a bidi
 * override turns the names after it around where the console joins a
 * child's guardians; C1 controls reach a terminal) is refused in every
 * cell of the import too: name, guardian, class, an address. */
static void test_bidi_and_c1_refused(void **state)
{
    struct kn_roster *ro =
        check("id,name,guardian,class,email\n"
              "s-1,\xe2\x80\xae"
              "abc,,,\n"
              "s-2,,\xe2\x81\xa6x,,\n"
              "s-3,,,A\xc2\x85,\n"
              "s-4,,,,x\xe2\x80\xae@example.jp\n"
              "s-5,山田 太郎,山田 花子,２年Ａ組,a@example.jp\n",
              NULL, -1);
    (void)state;
    assert_int_equal(ro->nbad, 4);
    assert_int_equal(ro->ngood, 1);
    assert_non_null(strstr(ro->bad[0].text, "name: contains"));
    assert_non_null(strstr(ro->bad[1].text, "guardian: contains"));
    assert_non_null(strstr(ro->bad[2].text, "class: contains"));
    assert_non_null(strstr(ro->bad[3].text, "email: contains"));
    kn_roster_free(ro);
}

static void test_cp932(void **state)
{
    /* "id,氏名,email\ns-1,山田,a@example.jp\n" in CP932 */
    static const char csv[] = "id,\x8e\x81\x96\xbc,email\ns-1,\x8e\x52\x93\x63,"
                              "a@example.jp\n";
    struct kn_roster *ro = check(csv, NULL, 0);
    (void)state;
    assert_int_equal(ro->enc, KN_CSV_CP932);
    assert_int_equal(ro->ngood, 1);
    kn_roster_free(ro);
}

static void test_staff_name_and_groups_rules(void **state)
{
    (void)state;
    assert_true(kn_staff_name_valid("佐藤 一郎"));
    assert_false(kn_staff_name_valid(""));
    assert_false(kn_staff_name_valid("a\x07"));
    assert_false(kn_staff_name_valid("\xff"));
    assert_false(kn_staff_name_valid("佐藤 \xee\x80\x80郎")); /* gaiji */
    assert_true(kn_staff_name_valid("髙\xef\xa8\x91 一郎"));  /* 髙﨑 */
    assert_true(kn_staff_groups_valid("2年A組,サッカー部"));
    assert_false(kn_staff_groups_valid(""));
    assert_false(kn_staff_groups_valid("a,,b"));
    assert_false(kn_staff_groups_valid("a,"));
    assert_false(kn_staff_groups_valid("a;b"));
}

/* kairand's import stops at max_rows data rows (cleared rows not
 * counted) before holding more; kairanctl's has no limit. */
static void test_max_rows(void **state)
{
    struct kn_roster_opts lim = {"sakura", 0, 0, NULL, 0, 0, 3};
    const char *csv = "id,name\r\ns-1,a\r\n,\r\ns-2,b\r\ns-3,c\r\n";
    struct kn_roster *ro = check(csv, &lim, 0);
    char *more;
    (void)state;
    assert_int_equal(ro->stop, KN_ROSTER_OK); /* 3 rows: within */
    kn_roster_free(ro);
    more = kn_xasprintf("%ss-4,d\r\n", csv);
    ro = check(more, &lim, -1);
    assert_int_equal(ro->stop, KN_ROSTER_TOO_MANY);
    assert_int_equal(ro->ngood, 0);
    kn_roster_free(ro);
    ro = check(more, NULL, 0); /* no limit */
    assert_int_equal(ro->nrows, 4);
    kn_roster_free(ro);
    free(more);
}

/* ---- the reasons in Japanese (reason_ja) ---- */

/* The one bad row of csv (checked with skip_bad): its Japanese reason,
 * which must start with "<row>行目：" and hold every one of want[]; its
 * English one must hold en.  Returns the roster (free it). */
static struct kn_roster *one_bad(const char *csv, long row, const char *en,
                                 const char *const *want, size_t nwant)
{
    struct kn_roster_opts skip = {"sakura", 1, 0, NULL, 0, 0, 0};
    struct kn_roster *ro = NULL;
    char prefix[32];
    kn_roster_check(csv, strlen(csv), &skip, &ro);
    assert_non_null(ro);
    if (ro->nbad != 1)
        fail_msg("%zu bad rows in %s", ro->nbad, csv);
    assert_int_equal(ro->bad[0].row, row);
    snprintf(prefix, sizeof(prefix), "%ld行目：", row);
    if (strncmp(ro->bad[0].text_ja, prefix, strlen(prefix)) != 0)
        fail_msg("no %s in: %s", prefix, ro->bad[0].text_ja);
    if (en != NULL && strstr(ro->bad[0].text, en) == NULL)
        fail_msg("no \"%s\" in: %s", en, ro->bad[0].text);
    for (size_t i = 0; i < nwant; i++) {
        if (strstr(ro->bad[0].text_ja, want[i]) == NULL)
            fail_msg("no \"%s\" in: %s", want[i], ro->bad[0].text_ja);
    }
    return ro;
}

#define BAD(csv, row, en, ...)                                                 \
    do {                                                                       \
        static const char *const w_[] = {__VA_ARGS__};                         \
        kn_roster_free(one_bad(csv, row, en, w_, KN_ARRAY_SIZE(w_)));          \
    } while (0)

/* Each reason of a row, in Japanese, names the column as the clerk's
 * header writes it (with the column's letter) and says what to do; the
 * English stays as kairanctl prints it. */
static void test_reasons_ja_name_the_header(void **state)
{
    (void)state;
    /* the header the clerk wrote: 生徒ID, 名前, クラス, 保護者メール ... */
    BAD("生徒ID,名前,クラス,保護者メール\n"
        "s-1,山田,2A,taro@@docomo.ne.jp\n",
        2, "email: \"t***@docomo.ne.jp\" is not an address: more than one @",
        "「保護者メール」（D列）", "「t***@docomo.ne.jp」",
        "「@」が 2 つ以上あります", "正しいアドレスに直してください");
    BAD("生徒ID,名前,保護者メール\ns-1,山田,ｔａｒｏ＠example.jp\n", 2,
        "email:", "「保護者メール」（C列）", "全角", "半角で入力");
    BAD("生徒ID,名前,保護者メール\ns-1,山田,taro.example.jp\n", 2, "missing @",
        "「@」がありません");
    BAD("ＩＤ,名前\n,山田\n", 2, "id: missing", "「ＩＤ」（A列）が空です");
    BAD("生徒ID,名前\ns 1,山田\n", 2, "id: \"s 1\" is not a valid id",
        "「生徒ID」（A列）の「s 1」は ID に使えません", "半角の英字・数字");
    BAD("ID,名前\ns-1,\"山田\n太郎\"\n", 2, "name: contains a line break",
        "「名前」（B列）のセルの中で改行されています", "Alt+Enter");
    BAD("ID,氏名\ns-1,a\x01"
        "b\n",
        2, "name: contains a control character",
        "「氏名」（B列）に目に見えない制御文字");
    BAD("ID,氏名\ns-1,\xe2\x80\xae"
        "abc\n",
        2, "name: contains a character",
        "「氏名」（B列）に目に見えない特殊な文字", "貼り付け");
    BAD("ID,組\ns-1,"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
        2, "class: longer than 64 bytes", "「組」（B列）が長すぎます",
        "半角 64 文字");
    BAD("ID,グループ\ns-1,2年A組;サッカー，野球\n", 2, "groups:",
        "「グループ」（B列）の「サッカー，野球」はグループ名に使えません",
        "名前の区切りに使う文字", "「;」で区切ります");
    BAD("ID,携帯電話\ns-1,090-1234-abcd\n", 2, "phone: not a phone number",
        "「携帯電話」（B列）が電話番号になっていません", "090-1234-5678");
    BAD("ID,LINE\ns-1,Uabc\n", 2, "line:", "「LINE」（B列）",
        "LINE のユーザー ID ではありません");
    BAD("ID,FCMトークン\ns-1,a b\n", 2,
        "fcm:", "「FCMトークン」（B列）の 1 個目のトークンが正しくありません",
        "空白");
    BAD("ID,APNsトークン\ns-1,abc\n", 2, "apns:", "「APNsトークン」（B列）",
        "64〜200 文字");
    BAD("ID,配信順\ns-1,line;fax\n", 2, "channels: \"fax\" is not a channel",
        "「配信順」（B列）の「fax」は使えません", "line;email");
    BAD("ID,配信順\ns-1,line;LINE\n", 2, "named twice",
        "「配信順」（B列）に line が 2 回");
    BAD("ID,有効\ns-1,はい\n", 2, "active: write 1",
        "「有効」（B列）には 1（配信する）か 0");
    BAD("ID,氏名\ns-1,山田,x\n", 2, "column 3 has a value but no header",
        "C列に値がありますが、見出し");
    BAD("ID,氏名,メール\ns-1,山田\n", 2, "2 fields, the header has 3",
        "この行は 2 列しかなく");
    BAD("ID,氏名\ns-1,\"山田\"x\n", 2, "text after a closing quote",
        "「\"\"」と 2 つ重ねて");
    BAD("ID,氏名\ns-1,\"山田\n", 2, "never closed", "閉じられていません");
    /* a guardian row under another child's id names both rows and the
     * column that differs, as the header writes it */
    BAD("ID,名前,保護者メール\nf-1,田中,m@example.jp\nf-1,別人,f@example.jp\n",
        3, "already used at line 2 with another name",
        "「ID」（A列）の f-1 は 2行目でも使われていますが、「名前」（B列）"
        "が違います",
        "別の ID にしてください");
    {
        /* a NUL byte (strlen would stop at it) */
        static const char nul[] = "ID,氏名\ns-1,a\0b\n";
        struct kn_roster_opts d = {"sakura", 0, 0, NULL, 0, 0, 0};
        struct kn_roster *ro = NULL;
        kn_roster_check(nul, sizeof(nul) - 1, &d, &ro);
        assert_int_equal(ro->nbad, 1);
        assert_non_null(
            strstr(ro->bad[0].text_ja,
                   "2行目：「氏名」（B列）に読み取れない文字（NUL）"));
        kn_roster_free(ro);
        /* a guardian row under a bad first row */
        ro = check("ID,名前,保護者メール\nf-1,田中,bad@@x\nf-1,,f@example.jp\n",
                   NULL, -1);
        assert_int_equal(ro->nbad, 2);
        assert_non_null(strstr(ro->bad[1].text, "at line 2, which is bad"));
        assert_non_null(
            strstr(ro->bad[1].text_ja,
                   "3行目：「ID」（A列）の f-1 は 2行目でも使われていて"
                   "、その行に誤りがあります"));
        kn_roster_free(ro);
    }
}

/* The row a spreadsheet shows: a cell with line breaks in it (Alt+Enter,
 * quoted by Excel) is one row there but several lines in the file; an
 * empty line is an empty row.  The Japanese names the row, the English
 * (kairanctl's FILE:LINE) the line. */
static void test_row_as_a_spreadsheet_shows_it(void **state)
{
    const char *csv = "ID,氏名,住所メモ,メール\n"
                      "s-1,山田,\"1行目\n2行目\n3行目\",a@example.jp\n"
                      "\n"
                      "s-2,鈴木,,b@@example.jp\n";
    const char *ign[] = {"住所メモ"};
    struct kn_roster_opts o = {"sakura", 1, 0, ign, 1, 0, 0};
    struct kn_roster *ro = NULL;
    (void)state;
    kn_roster_check(csv, strlen(csv), &o, &ro);
    assert_int_equal(ro->nbad, 1);
    assert_int_equal(ro->bad[0].line, 6); /* the file's line */
    assert_int_equal(ro->bad[0].row, 4);  /* Excel's row */
    assert_non_null(strstr(ro->bad[0].text_ja, "4行目："));
    assert_non_null(strstr(ro->bad[0].text_ja, "「メール」（D列）"));
    kn_roster_free(ro);
    /* a guardian row names its first row by Excel's row too */
    {
        const char *g = "ID,氏名,備考\nf-1,田中,\"a\nb\"\nf-1,別人,\n";
        const char *ign2[] = {"備考"};
        struct kn_roster_opts o2 = {"sakura", 1, 0, ign2, 1, 0, 0};
        ro = NULL;
        kn_roster_check(g, strlen(g), &o2, &ro);
        assert_int_equal(ro->nbad, 1);
        assert_int_equal(ro->bad[0].line, 4);
        assert_int_equal(ro->bad[0].row, 3);
        assert_non_null(strstr(ro->bad[0].text_ja, "2行目でも使われています"));
        assert_non_null(strstr(ro->bad[0].text, "at line 2"));
        kn_roster_free(ro);
    }
}

/* More reasons than a row keeps: the Japanese counts the rest too. */
static void test_more_reasons_counted_ja(void **state)
{
    struct kn_roster *ro =
        check("ID,氏名,学年,組,出席番号,ふりがな,保護者氏名,電話,メール,LINE,"
              "配信順,有効\n"
              ",\x01,\x01,\x01,\x01,\x01,\x01,x,a@@b,U1,fax,x\n",
              NULL, -1);
    (void)state;
    assert_int_equal(ro->nbad, 1);
    assert_non_null(strstr(ro->bad[0].text, "... and"));
    assert_non_null(
        strstr(ro->bad[0].text_ja, "ほかに 2 件の誤りがあります。"));
    kn_roster_free(ro);
}

/* The header's problems, in Japanese too: the unknown column with its
 * letter, a column given twice naming both headers, no ID column, a quote
 * never closed in the header. */
static void test_header_reasons_ja(void **state)
{
    struct kn_roster *ro = check("ID,氏名,メールアドレス,メール\n", NULL, -1);
    (void)state;
    assert_non_null(strstr(ro->header[0].text, "column email appears twice"));
    assert_non_null(strstr(ro->header[0].text_ja,
                           "1行目（見出し）：見出し「メール」（D列）は"
                           "「メールアドレス」（C列）と同じ項目"));
    assert_int_equal(ro->header[0].row, 1);
    kn_roster_free(ro);
    ro = check("ID,氏名,保護者ﾒｰﾙ,備考\ns-1,a,b,c\n", NULL, -1);
    assert_int_equal(ro->nheader, 1); /* 保護者ﾒｰﾙ is 保護者メール (NFKC) */
    assert_non_null(strstr(ro->header[0].text_ja,
                           "見出し「備考」（D列）は名簿の項目ではありません"));
    kn_roster_free(ro);
    ro = check("氏名,メール\n山田,a@example.jp\n", NULL, -1);
    assert_non_null(strstr(ro->header[0].text_ja, "「ID」の列がありません"));
    kn_roster_free(ro);
    ro = check("ID,\"氏名\n", NULL, -1);
    assert_non_null(strstr(ro->header[0].text_ja, "閉じられていません"));
    kn_roster_free(ro);
}

/* A file kairan cannot read says why in Japanese too. */
static void test_decode_reasons_ja(void **state)
{
    struct kn_roster *ro = check("\xff\xfei\0d\0", NULL, -1);
    (void)state;
    kn_roster_free(ro);
    {
        static const char u16[] = "\xff\xfe"
                                  "i\0d\0\n\0";
        struct kn_roster_opts d = {"sakura", 0, 0, NULL, 0, 0, 0};
        ro = NULL;
        kn_roster_check(u16, sizeof(u16) - 1, &d, &ro);
        assert_int_equal(ro->stop, KN_ROSTER_DECODE);
        assert_non_null(strstr(ro->decode_err_ja, "UTF-16"));
        assert_non_null(strstr(ro->decode_err_ja, "「CSV UTF-8」か「CSV」"));
        kn_roster_free(ro);
    }
    ro = check("\xef\xbb\xbfid,name\ns-1,\xff\n", NULL, -1);
    assert_non_null(strstr(ro->decode_err_ja, "2行目：UTF-8 のファイルのはず"));
    kn_roster_free(ro);
    /* 山田 in UTF-8 on line 2, in CP932 on lines 3 and 4 */
    ro = check("id,name\ns-1,\xe5\xb1\xb1\xe7\x94\xb0\ns-2,\x8e\x52\x93\x63\n"
               "s-3,\x8e\x52\x93\x63\n",
               NULL, -1);
    assert_non_null(strstr(ro->decode_err_ja, "2行目：ファイルの中で文字コード"
                                              "が混ざっています"));
    kn_roster_free(ro);
    ro = check("id,name\n\xff\xfe\xfd,x\n", NULL, -1);
    assert_non_null(strstr(ro->decode_err_ja, "UTF-8 でも Shift_JIS でもない"));
    kn_roster_free(ro);
}

/* Every reason the address checks give has its own Japanese text (not
 * the general one). */
static void test_address_reasons_have_ja(void **state)
{
    static const char *const bad_mail[] = {
        "",
        "a\x01@x.jp",
        "ａ@x.jp",
        "\"ab@x.jp",
        "\"a\"b@x.jp",
        "abc",
        "@x.jp",
        "a b@x.jp",
        "a\"b@x.jp",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@x.jp",
        "a@",
        "a@b@c",
        "a@b c",
        "a@b,c",
        "a@b..c",
        "\"\"@x.jp",
        "\xff@x.jp"};
    const char *why = NULL;
    const char *general = kn_addr_why_ja("no such reason");
    (void)state;
    for (size_t i = 0; i < KN_ARRAY_SIZE(bad_mail); i++) {
        assert_int_not_equal(kn_addr_check(bad_mail[i], &why), 0);
        if (kn_addr_why_ja(why) == general)
            fail_msg("no Japanese for \"%s\"", why);
    }
    assert_int_not_equal(kn_addr_line_check("U1", &why), 0);
    assert_true(kn_addr_why_ja(why) != general);
    assert_int_not_equal(kn_addr_fcm_check("a b", &why), 0);
    assert_true(kn_addr_why_ja(why) != general);
    assert_int_not_equal(kn_addr_fcm_check("", &why), 0);
    assert_true(kn_addr_why_ja(why) != general);
    assert_int_not_equal(kn_addr_apns_check("ab", &why), 0);
    assert_true(kn_addr_why_ja(why) != general);
    {
        char tok[65];
        memset(tok, 'g', 64);
        tok[64] = '\0';
        assert_int_not_equal(kn_addr_apns_check(tok, &why), 0);
        assert_true(kn_addr_why_ja(why) != general);
    }
}

/* ---- CP932's user-defined characters (gaiji) ---- */

/*
 * A gaiji (CP932 0xF040-0xF9FC, iconv's U+E000-U+E757) in a cell refuses
 * that row, naming the row, the column and the character's place, with
 * the cell shown with 〓 for it; the other rows are good (with skip_bad
 * they are written, as for any bad row).  A gaiji in a left-out column is
 * not looked at; an address column is never quoted.
 */
static void test_gaiji_refused(void **state)
{
    /* "ID,氏名,保護者メール\n" then s-1 渡<F040>, s-2 山田, s-3 <F9FC> in
     * the address, all in CP932 */
    static const char csv[] =
        "ID,\x8e\x81\x96\xbc,\x95\xdb\x8c\xec\x8e\xd2\x83\x81\x81\x5b\x83\x8b\n"
        "s-1,\x93\x6e\xf0\x40 \x88\xea\x98\x59,a@example.jp\n"
        "s-2,\x8e\x52\x93\x63,b@example.jp\n"
        "s-3,\x8e\x52\x93\x63,c\xf9\xfc@example.jp\n";
    struct kn_roster_opts skip = {"sakura", 1, 0, NULL, 0, 0, 0};
    struct kn_roster *ro = check(csv, NULL, -1);
    (void)state;
    assert_int_equal(ro->enc, KN_CSV_CP932);
    assert_int_equal(ro->stop, KN_ROSTER_BAD_ROWS);
    assert_int_equal(ro->nbad, 2);
    assert_int_equal(ro->ngood, 1);
    assert_int_equal(ro->bad[0].row, 2);
    assert_non_null(strstr(ro->bad[0].text, "name: contains a user-defined "
                                            "character (gaiji: U+E000"));
    assert_non_null(strstr(ro->bad[0].text, "at character 2"));
    assert_non_null(strstr(ro->bad[0].text, "(\"渡〓 一郎\")"));
    assert_non_null(
        strstr(ro->bad[0].text_ja,
               "2行目：「氏名」（B列）に外字（機種依存文字）が含まれ"
               "ています（「渡〓 一郎」の〓の所、2 文字目）"));
    assert_non_null(strstr(ro->bad[0].text_ja, "通常の漢字やかなに置き換えて"
                                               "ください"));
    /* the address: named, never quoted */
    assert_int_equal(ro->bad[1].row, 4);
    assert_non_null(strstr(ro->bad[1].text, "email: contains a user-defined "
                                            "character (gaiji: U+E757, "
                                            "private use) at character 2:"));
    assert_non_null(
        strstr(ro->bad[1].text_ja, "「保護者メール」（C列）に外字"));
    assert_null(strstr(ro->bad[1].text_ja, "example.jp"));
    assert_non_null(strstr(ro->bad[1].text_ja, "半角で入力し直して"));
    assert_non_null(strstr(ro->bad[1].text, "type it again"));
    assert_null(strstr(ro->bad[1].text, "example.jp"));
    kn_roster_free(ro);
    ro = check(csv, &skip, 0); /* the rest imports */
    assert_int_equal(ro->ngood, 1);
    assert_int_equal(ro->nbad, 2);
    kn_roster_free(ro);
    /* UTF-8 too (a file from another system), the planes 15-16 too, and
     * a left-out column is not looked at */
    {
        const char *ign[] = {"備考"};
        struct kn_roster_opts o = {"sakura", 0, 0, ign, 1, 0, 0};
        ro =
            check("ID,ふりがな,備考\ns-1,やまだ\xf3\xb0\x80\x80,\xee\x80\x80\n",
                  &o, -1);
        assert_int_equal(ro->nbad, 1);
        assert_non_null(strstr(ro->bad[0].text, "kana: contains a "
                                                "user-defined character "
                                                "(gaiji: U+F0000"));
        assert_non_null(
            strstr(ro->bad[0].text_ja, "「ふりがな」（B列）に外字"));
        kn_roster_free(ro);
        ro = check("ID,ふりがな,備考\ns-1,やまだ,\xee\x80\x80\n", &o, 0);
        kn_roster_free(ro);
    }
    /* what is not gaiji stays good: 髙 and ① (CP932's NEC and IBM
     * extensions), U+E000's neighbours */
    ro = check("ID,氏名\ns-1,髙橋 ①\xef\xa4\xa9\n", NULL, 0);
    kn_roster_free(ro);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_file_and_aliases),
        cmocka_unit_test(test_unknown_columns_named_then_ignored),
        cmocka_unit_test(test_header_problems),
        cmocka_unit_test(test_bad_rows_lines_reasons_cap),
        cmocka_unit_test(test_guardian_rows_merged),
        cmocka_unit_test(test_one_id_on_many_rows_is_linear),
        cmocka_unit_test(test_long_lists_in_a_cell_are_linear),
        cmocka_unit_test(test_bom_in_the_middle_is_shown),
        cmocka_unit_test(test_bidi_and_c1_refused),
        cmocka_unit_test(test_cp932),
        cmocka_unit_test(test_staff_name_and_groups_rules),
        cmocka_unit_test(test_max_rows),
        cmocka_unit_test(test_reasons_ja_name_the_header),
        cmocka_unit_test(test_row_as_a_spreadsheet_shows_it),
        cmocka_unit_test(test_more_reasons_counted_ja),
        cmocka_unit_test(test_header_reasons_ja),
        cmocka_unit_test(test_decode_reasons_ja),
        cmocka_unit_test(test_address_reasons_have_ja),
        cmocka_unit_test(test_gaiji_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
