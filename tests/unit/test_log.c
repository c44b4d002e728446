/*
 * test_log.c - unit tests for common/log.c's masking of provider text
 * (kn_mask_text): every e-mail address a relay or provider echoes keeps
 * at most its first character before the '@', whatever its form (a
 * dot-atom, a carrier's quoted local part, an RFC 6531 UTF-8 local part,
 * a quoted one holding '@' or an escaped quote), and the text stays
 * terminated in any buffer size.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/log.h"

static void expect_mask(const char *in, const char *want)
{
    char buf[256];
    assert_string_equal(kn_mask_text(in, buf, sizeof(buf)), want);
}

static void test_mask_ascii(void **state)
{
    (void)state;
    expect_mask("550 5.1.1 <taro@docomo.ne.jp>: Recipient address rejected",
                "550 5.1.1 <t***@docomo.ne.jp>: Recipient address rejected");
    expect_mask("550 user taro..yamada.@docomo.ne.jp unknown",
                "550 user t***@docomo.ne.jp unknown");
    expect_mask("550 <\"taro..yamada.\"@docomo.ne.jp> unknown",
                "550 <t***@docomo.ne.jp> unknown");
    expect_mask("no address here: 5.7.1 @ relay", "no address here: 5.7.1 @ relay");
}

/* A UTF-8 local part (kn_addr_check takes it) is masked too. */
static void test_mask_utf8_local_part(void **state)
{
    (void)state;
    expect_mask("553 5.6.7 <山田太郎@example.jp>: Must declare SMTPUTF8",
                "553 5.6.7 <***@example.jp>: Must declare SMTPUTF8");
    expect_mask("550 user yamada.山田@example.jp unknown",
                "550 user y***@example.jp unknown");
}

/* A quoted local part holding '@' or an escaped quote: nothing of it
 * but its first character. */
static void test_mask_quoted_specials(void **state)
{
    (void)state;
    expect_mask("550 <\"ab@cd\"@docomo.ne.jp> unknown",
                "550 <a***@docomo.ne.jp> unknown");
    expect_mask("550 <\"ab\\\"cd\"@docomo.ne.jp> unknown",
                "550 <a***@docomo.ne.jp> unknown");
}

/* Small buffers: always terminated, and a local part cut by the end of
 * the buffer is never written out unmasked. */
static void test_mask_small_buffers(void **state)
{
    const char *in = "x <taro.yamada@docomo.ne.jp>";
    char buf[64];
    (void)state;
    for (size_t len = 1; len < sizeof(buf); len++) {
        memset(buf, 'z', sizeof(buf));
        kn_mask_text(in, buf, len);
        assert_non_null(memchr(buf, '\0', len));
        assert_null(strstr(buf, "tar"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mask_ascii),
        cmocka_unit_test(test_mask_utf8_local_part),
        cmocka_unit_test(test_mask_quoted_specials),
        cmocka_unit_test(test_mask_small_buffers),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
