/*
 * test_address.c - model/address.c: one check per channel, at its
 * boundaries.  LINE user ids (exactly 'U' + 32 lower-case hex), FCM
 * registration tokens (1..4096 printable ASCII without space, '"', '\'),
 * APNs device tokens (64..200 hex digits, even count, either case), and
 * the e-mail check's length limits (the full e-mail matrix, carrier forms
 * and quoting included, is in test_mime.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/kn.h"
#include "model/address.h"

/* n copies of c, NUL-terminated (heap). */
static char *fill(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void test_line_id(void **state)
{
    const char *why = NULL;
    assert_int_equal(
        kn_addr_line_check("U4af4980629a1b2c3d4e5f60718293a4b", &why), 0);
    assert_null(why);
    /* 32 and 34 characters */
    assert_int_equal(
        kn_addr_line_check("U4af4980629a1b2c3d4e5f60718293a4", &why),
        KN_EINVAL);
    assert_non_null(strstr(why, "'U' and 32 hex"));
    assert_int_equal(
        kn_addr_line_check("U4af4980629a1b2c3d4e5f60718293a4bc", NULL),
        KN_EINVAL);
    /* upper-case hex, another prefix (group, room), a non-hex digit */
    assert_int_equal(
        kn_addr_line_check("U4AF4980629A1B2C3D4E5F60718293A4B", NULL),
        KN_EINVAL);
    assert_int_equal(
        kn_addr_line_check("C4af4980629a1b2c3d4e5f60718293a4b", NULL),
        KN_EINVAL);
    assert_int_equal(
        kn_addr_line_check("U4af4980629a1b2c3d4e5f60718293a4g", NULL),
        KN_EINVAL);
    assert_int_equal(kn_addr_line_check("", NULL), KN_EINVAL);
    assert_int_equal(kn_addr_line_check(NULL, &why), KN_EINVAL);
    assert_non_null(why);
}

static void test_fcm_token(void **state)
{
    char *s;
    const char *why = NULL;
    assert_int_equal(kn_addr_fcm_check("c1:APA91bH-x_y-kairanTestToken", &why),
                     0);
    assert_null(why);
    assert_int_equal(kn_addr_fcm_check("a", NULL), 0); /* 1: the minimum */
    s = fill('A', KN_ADDR_FCM_MAX);                    /* 4096: accepted */
    assert_int_equal(kn_addr_fcm_check(s, NULL), 0);
    free(s);
    s = fill('A', KN_ADDR_FCM_MAX + 1); /* 4097: refused */
    assert_int_equal(kn_addr_fcm_check(s, &why), KN_EINVAL);
    assert_non_null(strstr(why, "4096"));
    free(s);
    /* The adapter refused tokens over 1,024 before: now the same rule. */
    s = fill('x', 1025);
    assert_int_equal(kn_addr_fcm_check(s, NULL), 0);
    free(s);
    assert_int_equal(kn_addr_fcm_check("", NULL), KN_EINVAL);
    assert_int_equal(kn_addr_fcm_check(NULL, NULL), KN_EINVAL);
    assert_int_equal(kn_addr_fcm_check("abc def", &why), KN_EINVAL);
    assert_non_null(strstr(why, "printable"));
    assert_int_equal(kn_addr_fcm_check("abc\"def", NULL), KN_EINVAL);
    assert_int_equal(kn_addr_fcm_check("abc\\def", NULL), KN_EINVAL);
    assert_int_equal(kn_addr_fcm_check("abc\tdef", NULL), KN_EINVAL);
    assert_int_equal(kn_addr_fcm_check("abc\x7f", NULL), KN_EINVAL);
    assert_int_equal(kn_addr_fcm_check("abc\xc3\xa9", NULL), KN_EINVAL);
}

static void test_apns_token(void **state)
{
    char *s;
    const char *why = NULL;
    s = fill('a', 64); /* the minimum, and every token of today */
    assert_int_equal(kn_addr_apns_check(s, &why), 0);
    assert_null(why);
    s[0] = 'F'; /* either case */
    assert_int_equal(kn_addr_apns_check(s, NULL), 0);
    free(s);
    s = fill('0', 62); /* 62: refused (the adapter took 16 before) */
    assert_int_equal(kn_addr_apns_check(s, &why), KN_EINVAL);
    assert_non_null(strstr(why, "64 to 200"));
    free(s);
    s = fill('0', 200); /* 200: the maximum */
    assert_int_equal(kn_addr_apns_check(s, NULL), 0);
    free(s);
    s = fill('0', 202); /* 202: refused (the adapter took 400 before) */
    assert_int_equal(kn_addr_apns_check(s, NULL), KN_EINVAL);
    free(s);
    s = fill('0', 65); /* odd */
    assert_int_equal(kn_addr_apns_check(s, NULL), KN_EINVAL);
    free(s);
    s = fill('0', 64);
    s[10] = 'g';
    assert_int_equal(kn_addr_apns_check(s, &why), KN_EINVAL);
    assert_non_null(strstr(why, "hex"));
    s[10] = '/'; /* it goes into the request path */
    assert_int_equal(kn_addr_apns_check(s, NULL), KN_EINVAL);
    free(s);
    assert_int_equal(kn_addr_apns_check("", NULL), KN_EINVAL);
    assert_int_equal(kn_addr_apns_check(NULL, NULL), KN_EINVAL);
}

/* E-mail: the length boundaries (64-octet local part, 255-octet domain). */
static void test_email_bounds(void **state)
{
    char *local = fill('a', 64), *dom = fill('b', 251), *addr;
    const char *why = NULL;
    addr = kn_xasprintf("%s@%s.jp", local, dom); /* 64 @ 254 */
    assert_int_equal(kn_addr_check(addr, &why), 0);
    free(addr);
    addr = kn_xasprintf("%s@x%s.jp", local, dom); /* 64 @ 255 */
    assert_int_equal(kn_addr_check(addr, &why), 0);
    free(addr);
    addr = kn_xasprintf("%s@xy%s.jp", local, dom); /* 64 @ 256 */
    assert_int_equal(kn_addr_check(addr, &why), KN_EINVAL);
    assert_string_equal(why, "domain longer than 255 octets");
    free(addr);
    addr = kn_xasprintf("%sa@docomo.ne.jp", local); /* 65 */
    assert_int_equal(kn_addr_check(addr, &why), KN_EINVAL);
    assert_string_equal(why, "local part longer than 64 octets");
    free(addr);
    assert_int_equal(kn_addr_check("taro..yamada.@docomo.ne.jp", NULL), 0);
    assert_false(kn_addr_is_dot_atom("taro..yamada.@docomo.ne.jp"));
    assert_true(kn_addr_is_dot_atom("taro.yamada@docomo.ne.jp"));
    free(local);
    free(dom);
}

/* Typed with the IME on: full-width letters, digits, '.', '@' or the
 * ideographic space look like an address but never reach the guardian
 * (no carrier issues them; a full-width dot makes one label of
 * "docomo．ne．jp"). */
static void test_email_full_width(void **state)
{
    static const char *const bad[] = {
        "ｔａｒｏ@docomo.ne.jp",         "taro@docomo．ne．jp",
        "a@ｅｘａｍｐｌｅ.jp",           "taro@docomo.ne.ｊｐ",
        "ta\xe3\x80\x80ro@docomo.ne.jp", "taro１@docomo.ne.jp"};
    const char *why = NULL;
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(kn_addr_check(bad[i], &why), KN_EINVAL);
        assert_non_null(strstr(why, "full-width"));
    }
    /* Japanese in a local part (RFC 6531) is still an address */
    assert_int_equal(kn_addr_check("山田@example.jp", NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_id),
        cmocka_unit_test(test_fcm_token),
        cmocka_unit_test(test_apns_token),
        cmocka_unit_test(test_email_bounds),
        cmocka_unit_test(test_email_full_width),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
