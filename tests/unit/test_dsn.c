/*
 * test_dsn.c - the RFC 3464 parser and the bounce words (model/dsn.c): a
 * Postfix DSN of a docomo address with a quoted local part, a delayed
 * report, a base64 delivery-status part, a report of success, an
 * auto-reply, a plain reply, truncated and hostile input; the address
 * form that is hashed; carrier domains and the teacher's reason.  The
 * messages are the fuzz target's seeds (tests/fuzz/corpus/fuzz_dsn).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/kn.h"
#include "model/dsn.h"

#define SEEDS "tests/fuzz/corpus/fuzz_dsn/"

static char *slurp(const char *name, size_t *len)
{
    char path[256], *buf = kn_xmalloc(KN_DSN_MAX_INPUT);
    FILE *f;
    snprintf(path, sizeof(path), SEEDS "%s", name);
    f = fopen(path, "rb");
    assert_non_null(f);
    *len = fread(buf, 1, KN_DSN_MAX_INPUT, f);
    fclose(f);
    return buf;
}

static enum kn_dsn_kind parse_file(const char *name, struct kn_dsn *d)
{
    size_t n;
    char *m = slurp(name, &n);
    enum kn_dsn_kind k = kn_dsn_parse(m, n, d);
    free(m);
    return k;
}

static void test_failed(void **state)
{
    struct kn_dsn d;
    assert_int_equal(parse_file("dsn_failed.eml", &d), KN_DSN_FAILED);
    assert_string_equal(d.status, "5.1.1");
    /* the quoted carrier local part unquoted, as kairan sent it */
    assert_string_equal(d.final_rcpt, "taro..yamada.@docomo.ne.jp");
    assert_true(kn_dsn_status_hard(d.status));
    assert_string_equal(kn_dsn_kind_name(d.kind), "failed");
}

static void test_delayed(void **state)
{
    struct kn_dsn d;
    assert_int_equal(parse_file("dsn_delayed.eml", &d), KN_DSN_DELAYED);
    assert_string_equal(d.status, "4.4.1");
    assert_string_equal(d.final_rcpt, "hanako@example.jp");
    assert_false(kn_dsn_status_hard(d.status));
}

static void test_base64_part(void **state)
{
    struct kn_dsn d;
    assert_int_equal(parse_file("dsn_base64.eml", &d), KN_DSN_FAILED);
    assert_string_equal(d.status, "5.2.2");
    assert_string_equal(d.final_rcpt, "a@b.jp");
}

static void test_not_bounces(void **state)
{
    struct kn_dsn d;
    assert_int_equal(parse_file("dsn_success.eml", &d), KN_DSN_OTHER);
    assert_non_null(strstr(d.why, "success"));
    assert_int_equal(parse_file("autoreply.eml", &d), KN_DSN_AUTOREPLY);
    assert_int_equal(parse_file("plain.eml", &d), KN_DSN_OTHER);
    assert_non_null(strstr(d.why, "RFC 3464"));
    assert_string_equal(d.final_rcpt, "");
}

static void test_hostile(void **state)
{
    struct kn_dsn d;
    size_t n;
    char *m = slurp("dsn_failed.eml", &n);
    /* every prefix parses without reading past it */
    for (size_t i = 0; i <= n; i++) {
        char *cut = kn_xmalloc(i ? i : 1);
        memcpy(cut, m, i);
        kn_dsn_parse(cut, i, &d);
        assert_true(strlen(d.final_rcpt) < sizeof(d.final_rcpt));
        free(cut);
    }
    free(m);
    assert_int_equal(kn_dsn_parse("", 0, &d), KN_DSN_OTHER);
    /* a DSN whose Final-Recipient has no '@' is not attributed */
    {
        const char *x = "Content-Type: multipart/report; report-type="
                        "delivery-status; boundary=b\n\n--b\nContent-Type: "
                        "message/delivery-status\n\nFinal-Recipient: rfc822;"
                        " nobody\nAction: failed\nStatus: 5.1.1\n--b--\n";
        assert_int_equal(kn_dsn_parse(x, strlen(x), &d), KN_DSN_OTHER);
    }
    /* a bad status is dropped, the bounce kept (hard) */
    {
        const char *x = "Content-Type: multipart/report; report-type="
                        "delivery-status; boundary=b\n\n--b\nContent-Type: "
                        "message/delivery-status\n\nFinal-Recipient: rfc822;"
                        " a@b.jp\nAction: FAILED\nStatus: 5.x.1\n--b--\n";
        assert_int_equal(kn_dsn_parse(x, strlen(x), &d), KN_DSN_FAILED);
        assert_string_equal(d.status, "");
        assert_true(kn_dsn_status_hard(d.status));
    }
}

static void test_addr_norm(void **state)
{
    char b[64];
    assert_int_equal(kn_dsn_addr_norm(" <Taro@Docomo.NE.JP> ", b, sizeof(b)),
                     0);
    assert_string_equal(b, "taro@docomo.ne.jp");
    assert_int_equal(kn_dsn_addr_norm("\"a..b.\"@ezweb.ne.jp", b, sizeof(b)),
                     0);
    assert_string_equal(b, "a..b.@ezweb.ne.jp");
    assert_int_equal(kn_dsn_addr_norm("a..b.@ezweb.ne.jp", b, sizeof(b)), 0);
    assert_string_equal(b, "a..b.@ezweb.ne.jp");
    assert_int_equal(kn_dsn_addr_norm("nobody", b, sizeof(b)), -1);
    assert_int_equal(kn_dsn_addr_norm("a@b@c", b, sizeof(b)), -1);
    assert_int_equal(kn_dsn_addr_norm("a b@c.jp", b, sizeof(b)), -1);
    assert_int_equal(kn_dsn_addr_norm("a\x01b@c.jp", b, sizeof(b)), -1);
    assert_int_equal(kn_dsn_addr_norm("\"a b\"@c.jp", b, sizeof(b)), 0);
    assert_string_equal(b, "a b@c.jp");
    /* '@' in a quoted local part (RFC 5321 allows it, model/address.c
     * accepts it): unquoted, the address is compared by its last '@'. */
    assert_int_equal(kn_dsn_addr_norm("\"Ab@Cd\"@Docomo.ne.jp", b, sizeof(b)),
                     0);
    assert_string_equal(b, "ab@cd@docomo.ne.jp");
    assert_int_equal(kn_dsn_addr_norm("\"ab\"@cd@docomo.ne.jp", b, sizeof(b)),
                     -1);
    assert_int_equal(kn_dsn_addr_norm("\"unterminated@x", b, sizeof(b)), -1);
    assert_int_equal(kn_dsn_addr_norm("aaaaaaaa@bbbbbbbb", b, 8), -1);
}

static void test_reason(void **state)
{
    assert_true(kn_dsn_carrier_domain("x@docomo.ne.jp"));
    assert_true(kn_dsn_carrier_domain("x@EZweb.ne.jp"));
    assert_true(kn_dsn_carrier_domain("x@t.vodafone.softbank.ne.jp"));
    assert_false(kn_dsn_carrier_domain("x@notdocomo.ne.jp"));
    assert_false(kn_dsn_carrier_domain("x@gmail.com"));
    assert_non_null(strstr(kn_dsn_reason("5.1.1", 1, 0), "ドメイン指定受信"));
    assert_non_null(strstr(kn_dsn_reason("5.1.1", 1, 1), "ドメイン指定受信"));
    assert_non_null(strstr(kn_dsn_reason("5.1.1", 0, 0), "does not exist"));
    assert_non_null(strstr(kn_dsn_reason("4.2.2", 0, 0), "for now"));
    assert_non_null(strstr(kn_dsn_reason("5.2.2", 0, 1), "一杯"));
}

static void test_ref(void **state)
{
    unsigned char b[10] = {0xff, 0,    0x12, 0x34, 0x56,
                           0x78, 0x9a, 0xbc, 0xde, 0xf0};
    char ref[KN_BOUNCE_REF_LEN + 1], got[KN_BOUNCE_REF_LEN + 1], addr[64];
    char st[16];
    int carrier = -1;
    kn_bounce_ref_encode(b, ref);
    assert_int_equal(strlen(ref), KN_BOUNCE_REF_LEN);
    assert_true(kn_bounce_ref_valid(ref));
    assert_string_equal(ref, "74abencwpcnlzxxq");
    snprintf(addr, sizeof(addr), "Bounce+%s@Bounce.Example.JP", ref);
    assert_int_equal(kn_bounce_ref_from_addr(addr, "bounce", got), 0);
    assert_string_equal(got, ref);
    assert_int_equal(kn_bounce_ref_from_addr(addr, "other", got), -1);
    assert_int_equal(
        kn_bounce_ref_from_addr("bounce+short@x.jp", "bounce", got), -1);
    assert_int_equal(
        kn_bounce_ref_from_addr("bounce+0000000000000000@x.jp", "bounce", got),
        -1);
    assert_false(kn_bounce_ref_valid("74abencwpcnlzxx"));
    kn_bounce_detail(st, sizeof(st), "5.1.1", 1, "dsn");
    assert_string_equal(st, "5.1.1;1;dsn");
    assert_int_equal(
        kn_bounce_detail_parse("5.1.1;1;dsn", st, sizeof(st), &carrier), 0);
    assert_string_equal(st, "5.1.1");
    assert_int_equal(carrier, 1);
    assert_int_equal(kn_bounce_detail_parse("250 ok", st, sizeof(st), &carrier),
                     -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failed),      cmocka_unit_test(test_delayed),
        cmocka_unit_test(test_base64_part), cmocka_unit_test(test_not_bounces),
        cmocka_unit_test(test_hostile),     cmocka_unit_test(test_addr_norm),
        cmocka_unit_test(test_reason),      cmocka_unit_test(test_ref),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
