/*
 * test_sheets.c - what queue/sheets.c writes without Redis: the printable
 * sheets page (one section per sheet, everything from outside escaped, no
 * script), the CSV for mail merge (the columns the school's manual names,
 * the formula guard), and the reminder broadcast (only the students with
 * a contact, the counts, the school and <public_url>/r in the text).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/kn.h"
#include "queue/sheets.h"

static struct kn_sheets two(void)
{
    struct kn_sheets s = {0};
    s.v = kn_xcalloc(3, sizeof(*s.v));
    s.v[0].student = kn_xstrdup("s-1");
    s.v[0].name = kn_xstrdup("<img src=x onerror=alert(1)>");
    s.v[0].group = kn_xstrdup("1-A");
    strcpy(s.v[0].id, "34679ACE");
    strcpy(s.v[0].pass, "FGHJ-KMNP-QRTW");
    s.v[1].student = kn_xstrdup("s-2");
    s.v[1].name = kn_xstrdup("=HYPERLINK(\"x\")");
    s.v[1].group = kn_xstrdup("");
    strcpy(s.v[1].id, "XY34679A");
    strcpy(s.v[1].pass, "CEFG-HJKM-NPQR");
    s.n = 2;
    return s;
}

/* f's text after writer ran (a heap string).  The memstream's pointer
 * and size live on the heap: open_memstream keeps their addresses. */
static char *written(void (*writer)(FILE *, void *), void *arg)
{
    struct mem {
        char *text;
        size_t len;
    } *m = kn_xcalloc(1, sizeof(*m));
    char *text;
    FILE *f = open_memstream(&m->text, &m->len);
    assert_non_null(f);
    writer(f, arg);
    fclose(f);
    text = m->text;
    free(m);
    return text;
}

static void html_writer(FILE *f, void *arg)
{
    kn_sheets_html(f, "sakura<es>", arg, "https://k.example.jp/",
                   "学校 <renraku@school.example.jp>", 2);
}

static void csv_writer(FILE *f, void *arg)
{
    kn_sheets_csv(f, arg, "https://k.example.jp");
}

static size_t count(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void test_html(void **state)
{
    struct kn_sheets s = two();
    char *html = written(html_writer, &s);
    (void)state;
    assert_int_equal(count(html, "<section class=\"sheet\">"), 2);
    assert_null(strstr(html, "<script"));
    assert_null(strstr(html, "<img"));
    assert_non_null(strstr(html, "&lt;img src=x onerror=alert(1)&gt;"));
    assert_non_null(strstr(html, "sakura&lt;es&gt;"));
    assert_non_null(strstr(html, "https://k.example.jp/r?id=34679ACE"));
    assert_non_null(strstr(html, "<dd>FGHJ-KMNP-QRTW</dd>"));
    assert_non_null(strstr(html, "<b>school.example.jp</b>"));
    assert_int_equal(count(html, "<svg"), 2);
    /* the page's only style is kn_sheets_css, which its CSP hashes */
    assert_non_null(strstr(html, kn_sheets_css));
    assert_int_equal(count(html, "<style>"), 1);
    free(html);
    kn_sheets_free(&s);
    assert_int_equal(s.n, 0);
}

static void test_csv(void **state)
{
    struct kn_sheets s = two();
    char *csv = written(csv_writer, &s);
    (void)state;
    assert_true(strncmp(csv, "id,name,url,passcode,student,group\r\n", 36) ==
                0);
    assert_non_null(strstr(csv, "34679ACE,<img src=x onerror=alert(1)>,"
                                "https://k.example.jp/r?id=34679ACE,"
                                "FGHJ-KMNP-QRTW,s-1,1-A\r\n"));
    /* a formula is never a formula in Excel */
    assert_non_null(strstr(csv, "'=HYPERLINK"));
    free(csv);
    kn_sheets_free(&s);
}

static void test_remind(void **state)
{
    struct kn_unreg_row rows[] = {
        {"1-A", "s-1", NULL, KN_UNREG_EMAIL},
        {"1-A", "s-2", NULL, 0},
        {"1-B", "s-3", NULL, KN_UNREG_LINE | KN_UNREG_PUSH},
        {"1-B", "s-4", NULL, 0},
    };
    struct kn_unreg u = {rows, 4, 5};
    size_t sent = 99, none = 99;
    char *text = kn_remind_json(&u, "sakura-es", "https://k.example.jp/",
                                "kairanctl", &sent, &none);
    json_t *j = json_loads(text, 0, NULL), *ids;
    (void)state;
    assert_int_equal(sent, 2);
    assert_int_equal(none, 2);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "tenant")),
                        "sakura-es");
    assert_string_equal(json_string_value(json_object_get(j, "category")),
                        "notice");
    assert_string_equal(json_string_value(json_object_get(j, "sender")),
                        "kairanctl");
    ids = json_object_get(json_object_get(j, "audience"), "recipients");
    assert_int_equal(json_array_size(ids), 2);
    assert_string_equal(json_string_value(json_array_get(ids, 0)), "s-1");
    assert_string_equal(json_string_value(json_array_get(ids, 1)), "s-3");
    assert_non_null(strstr(json_string_value(json_object_get(j, "body")),
                           "https://k.example.jp/r\n"));
    assert_non_null(strstr(json_string_value(json_object_get(j, "body")),
                           "学校にお知らせください"));
    assert_non_null(
        strstr(json_string_value(json_object_get(j, "subject")), "sakura-es"));
    json_decref(j);
    free(text);
    /* nobody with a contact: no broadcast */
    rows[0].has = rows[2].has = 0;
    assert_null(kn_remind_json(&u, "sakura-es", "https://k.example.jp", NULL,
                               &sent, &none));
    assert_int_equal(sent, 0);
    assert_int_equal(none, 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_html),
        cmocka_unit_test(test_csv),
        cmocka_unit_test(test_remind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
