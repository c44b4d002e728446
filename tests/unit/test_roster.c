/*
 * test_roster.c - unit tests for queue/roster.c's check step (no Redis):
 * the header (aliases, unknown columns kept with their names and column
 * numbers, ignore and ignore_unknown, a repeated column, no id), bad rows
 * with their lines and reasons (capped at KN_ROSTER_MAX_SHOWN, the rest
 * counted), skip_bad, a child's guardian rows merged, CP932 and an empty
 * file; and the staff name and groups rules of model/session.c.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "common/buf.h"
#include "common/kn.h"
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
    kn_roster_free(ro);
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
