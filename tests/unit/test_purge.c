/*
 * test_purge.c - the date rules of retention (queue/retention.c) and the
 * confirmation page (dispatcher/ack.c): the fiscal-year cutoff with its
 * June rule around every boundary, "N years ago" in JST (Feb 29), and a
 * page that escapes everything it shows and marks a drill.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kn.h"
#include "dispatcher/ack.h"
#include "queue/retention.h"

static int64_t at(const char *iso)
{
    int64_t ms = 0;
    assert_int_equal(kn_time_parse(iso, &ms), 0);
    return ms;
}

static void cutoff_is(const char *now, int years, const char *want)
{
    char buf[48];
    kn_time_jst(kn_purge_fy_cutoff(at(now), years), buf, sizeof(buf));
    if (strcmp(buf, want) != 0)
        fail_msg("now %s (%d years): cutoff %s, want %s", now, years, buf,
                 want);
}

static void test_fiscal_cutoff(void **st)
{
    const char *w = "T00:00:00.000+09:00";
    char want[64];
    (void)st;
    /* FY2027 = April 2027 - March 2028. */
    snprintf(want, sizeof(want), "2024-04-01%s", w);
    cutoff_is("2027-06-01T00:00:00+09:00", 4, want);
    cutoff_is("2028-03-31T23:59:59+09:00", 4, want);
    /* April and May: the previous window still holds. */
    snprintf(want, sizeof(want), "2023-04-01%s", w);
    cutoff_is("2027-04-01T00:00:00+09:00", 4, want);
    cutoff_is("2027-05-31T23:59:59+09:00", 4, want);
    /* June 1 00:00 JST is May 31 15:00 UTC: JST decides. */
    cutoff_is("2027-05-31T14:59:59Z", 4, want);
    snprintf(want, sizeof(want), "2024-04-01%s", w);
    cutoff_is("2027-05-31T15:00:00Z", 4, want);
    /* January - March belong to the previous fiscal year. */
    snprintf(want, sizeof(want), "2023-04-01%s", w);
    cutoff_is("2027-03-31T23:59:59+09:00", 4, want);
    /* One year kept: only the current one (after June). */
    snprintf(want, sizeof(want), "2027-04-01%s", w);
    cutoff_is("2027-07-01T00:00:00+09:00", 1, want);
    snprintf(want, sizeof(want), "2026-04-01%s", w);
    cutoff_is("2027-05-01T00:00:00+09:00", 1, want);
}

static void test_years_ago(void **st)
{
    char buf[48];
    (void)st;
    kn_time_jst(kn_purge_years_ago(at("2027-05-15T12:00:00+09:00"), 5), buf,
                sizeof(buf));
    assert_string_equal(buf, "2022-05-15T12:00:00.000+09:00");
    kn_time_jst(kn_purge_years_ago(at("2028-02-29T08:00:00+09:00"), 5), buf,
                sizeof(buf));
    assert_string_equal(buf, "2023-02-28T08:00:00.000+09:00");
}

static void test_ack_page(void **st)
{
    static const char *const ch[] = {"無事です", "<b>けが</b>"};
    struct kn_ack_view v = {"<script>alert(1)</script>",
                            "a & b\n\"c\" 'd'",
                            1,
                            0,
                            NULL,
                            0,
                            -1,
                            NULL,
                            NULL,
                            NULL};
    char *p;
    (void)st;
    p = kn__ack_page(&v, 0);
    assert_null(strstr(p, "<script>"));
    assert_non_null(strstr(p, "&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert_non_null(strstr(p, "<title>確認のお願い: &lt;script&gt;"));
    assert_non_null(strstr(p, "a &amp; b\n&quot;c&quot; &#39;d&#39;"));
    assert_non_null(strstr(p, "【訓練】"));
    assert_non_null(strstr(p, "<form method=\"post\">"));
    assert_null(strstr(p, "type=\"radio\""));
    free(p);
    v = (struct kn_ack_view){
        "s", "b", 0, at("2027-05-15T12:00:00+09:00"), NULL, 0, -1, NULL, NULL,
        NULL};
    p = kn__ack_page(&v, 1);
    assert_null(strstr(p, "【訓練】"));
    assert_null(strstr(p, "<form"));
    /* the time for people, RFC 3339 in the attribute */
    assert_non_null(strstr(p,
                           "<time datetime=\"2027-05-15T12:00:00.000+09:00\">"
                           "2027年5月15日 12:00</time>"));
    assert_non_null(strstr(p, "ありがとうございました"));
    assert_non_null(strstr(p, "<span lang=\"en\">(Confirmed. Thank you.)"));
    free(p);
    /* answers: one radio each (escaped), the comment field; an error */
    v = (struct kn_ack_view){"s", "b", 0, 0, ch, 2, -1, NULL, "fix <it>", NULL};
    p = kn__ack_page(&v, 0);
    assert_non_null(strstr(p, "value=\"0\" required> 無事です"));
    assert_non_null(strstr(p, "value=\"1\"> &lt;b&gt;けが&lt;/b&gt;"));
    assert_non_null(strstr(p, "name=\"c\" maxlength=\"200\""));
    assert_non_null(strstr(p, "fix &lt;it&gt;"));
    assert_non_null(strstr(p, "<title>エラー: 確認のお願い: s</title>"));
    free(p);
    /* recorded: the answer and the comment shown, escaped */
    v = (struct kn_ack_view){"s", "b", 0, at("2027-05-15T12:00:00+09:00"),
                             ch,  2,   1, "<img src=x>",
                             NULL, NULL};
    p = kn__ack_page(&v, 0);
    assert_non_null(strstr(p, "&lt;b&gt;けが&lt;/b&gt;"));
    assert_non_null(strstr(p, "&lt;img src=x&gt;"));
    assert_null(strstr(p, "<img"));
    free(p);
    /* a translation (issue 16): subject and body marked with their
     * language, the page's own words Japanese */
    v = (struct kn_ack_view){"Typhoon", "No school", 0, 0, ch, 2, -1, NULL,
                             NULL, "en"};
    p = kn__ack_page(&v, 0);
    assert_non_null(strstr(p, "<html lang=\"ja\">"));
    assert_non_null(strstr(p, "<h1 lang=\"en\">Typhoon</h1>"));
    assert_non_null(strstr(p, "<div class=\"body\" lang=\"en\">No school"));
    assert_non_null(strstr(p, "確認しました"));
    free(p);
    assert_non_null(strstr(kn__ack_csp(), "style-src 'sha256-"));
    assert_null(strstr(kn__ack_csp(), "script-src"));
}

/* The page of a guardian of several children: each child a region named
 * by its heading, its button described by it; the form for all at once
 * only while two or more are open; nothing left to do, no invitation. */
static void test_ack_page_children(void **st)
{
    static const char *const ch[] = {"無事です", "けが"};
    struct kn_ack_view v = {"s", "b", 0, 0, ch, 2, -1, NULL, NULL, NULL};
    struct kn__ack_child k[3] = {{"c-1", "<i>一郎</i>", 0, -1, NULL},
                                 {"c-2", NULL, 0, -1, NULL},
                                 {"c-3", "三郎", 0, -1, NULL}};
    char *p;
    (void)st;
    p = kn__ack_page_children(&v, k, 3, 0);
    assert_non_null(strstr(p,
                           "<section class=\"kid\" aria-labelledby=\"kid-0\">"
                           "<h2 class=\"child\" id=\"kid-0\">"
                           "&lt;i&gt;一郎&lt;/i&gt;</h2>"));
    assert_non_null(strstr(p, "id=\"kid-1\">c-2</h2>"));
    assert_non_null(
        strstr(p, "<button type=\"submit\" aria-describedby=\"kid-2\">"));
    assert_non_null(
        strstr(p, "aria-describedby=\"kid-all\">全員まとめて確認しました"));
    assert_non_null(strstr(p, "value=\"*\""));
    assert_non_null(strstr(p, "お子さまごとに確認してください"));
    assert_null(strstr(p, "<i>"));
    free(p);
    /* two confirmed: one form left, none for all at once */
    k[0].confirmed_ms = k[2].confirmed_ms = 1;
    k[0].answer = 1;
    k[0].comment = "<b>x</b>";
    p = kn__ack_page_children(&v, k, 3, 1);
    assert_null(strstr(p, "value=\"*\""));
    assert_non_null(strstr(p, "value=\"c-2\""));
    assert_null(strstr(p, "value=\"c-1\""));
    assert_non_null(
        strstr(p, "<span class=\"comment\">&lt;b&gt;x&lt;/b&gt;</span>"));
    free(p);
    /* all confirmed: no form and no invitation to confirm */
    k[1].confirmed_ms = 1;
    p = kn__ack_page_children(&v, k, 3, 1);
    assert_null(strstr(p, "<form"));
    assert_null(strstr(p, "お子さまごとに確認してください"));
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fiscal_cutoff),
        cmocka_unit_test(test_years_ago),
        cmocka_unit_test(test_ack_page),
        cmocka_unit_test(test_ack_page_children),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
