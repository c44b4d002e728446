/*
 * test_log.c - unit tests for common/log.c's masking of provider text
 * (kn_mask_text): every e-mail address a relay or provider echoes keeps
 * at most its first character before the '@', whatever its form (a
 * dot-atom, a carrier's quoted local part, an RFC 6531 UTF-8 local part,
 * a quoted one holding '@' or an escaped quote), and the text stays
 * terminated in any buffer size; and a log line never carries a C1
 * control or a bidi override raw (a terminal showing the log would obey
 * them), only as a JSON escape of the same value.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

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

/* Not an address (no '@', a clerk typing with the IME on): what is kept
 * of it is cut at a character, never inside one (the import quotes it in
 * a reason that the console sends as JSON, where a broken UTF-8 sequence
 * makes jansson drop the whole reason). */
static void test_mask_no_at_cut_at_a_character(void **state)
{
    char buf[128];
    (void)state;
    assert_string_equal(
        kn_mask_address("ｔａｒｏ＠docomo.ne.jp", buf, sizeof(buf)), "ｔ***");
    assert_string_equal(kn_mask_address("090-1234-5678", buf, sizeof(buf)),
                        "090-***");
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

static void test_log_line_terminal_safe(void **state)
{
    char path[] = "/tmp/kn-test-log-XXXXXX", buf[4096];
    const char *hostile = "/v1/b\xc2\x9b"
                          "31m\u202eabc\x1b[2J\u2028";
    int fd = mkstemp(path);
    ssize_t n;
    json_t *j;
    (void)state;
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(kn_log_open(path), 0);
    kn_log(KN_LOG_ERROR, "test", "hostile \xc2\x9b", "path", hostile, NULL);
    assert_int_equal(kn_log_open(NULL), 0);
    fd = open(path, O_RDONLY);
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    unlink(path);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_null(strstr(buf, "\xc2\x9b"));
    assert_null(strstr(buf, "\xe2\x80\xae"));
    assert_null(strstr(buf, "\xe2\x80\xa8"));
    assert_null(strchr(buf, 0x1b));
    j = json_loads(buf, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "path")),
                        hostile);
    assert_string_equal(json_string_value(json_object_get(j, "msg")),
                        "hostile \xc2\x9b");
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mask_ascii),
        cmocka_unit_test(test_mask_utf8_local_part),
        cmocka_unit_test(test_mask_no_at_cut_at_a_character),
        cmocka_unit_test(test_mask_quoted_specials),
        cmocka_unit_test(test_mask_small_buffers),
        cmocka_unit_test(test_log_line_terminal_safe),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
