/*
 * test_buf.c - unit tests for common/buf.c (the capped growable buffer)
 * and common/codec.c (hex, base64, base64url): growth, the cap, take and
 * reset; RFC 4648 test vectors, round trips and what each decoder refuses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/codec.h"
#include "common/kn.h"
#include "common/utf8.h"

static void test_buf_grows_and_takes(void **state)
{
    struct kn_buf b;
    size_t len = 0;
    char *s;
    (void)state;
    kn_buf_init(&b, 0);
    assert_string_equal(kn_buf_str(&b), "");
    assert_int_equal(kn_buf_len(&b), 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(kn_buf_add(&b, "ab"), 0);
    assert_int_equal(kn_buf_addc(&b, 'c'), 0);
    assert_int_equal(kn_buf_addf(&b, "-%d-%s", 42, "x"), 0);
    assert_int_equal(kn_buf_addn(&b, "\0z", 2), 0);
    assert_int_equal(kn_buf_len(&b), 2000 + 1 + 5 + 2);
    s = kn_buf_take(&b, &len);
    assert_int_equal(len, 2008);
    assert_memory_equal(s + 1998, "abc-42-x\0z", 11);
    free(s);
    /* Empty after take, and usable again. */
    assert_int_equal(kn_buf_len(&b), 0);
    s = kn_buf_take(&b, NULL);
    assert_string_equal(s, "");
    free(s);
    assert_int_equal(kn_buf_add(&b, "again"), 0);
    kn_buf_reset(&b);
    assert_string_equal(kn_buf_str(&b), "");
    assert_int_equal(kn_buf_add(&b, "x"), 0);
    assert_string_equal(kn_buf_str(&b), "x");
    kn_buf_free(&b);
}

static void test_buf_cap(void **state)
{
    struct kn_buf b;
    (void)state;
    kn_buf_init(&b, 8);
    assert_int_equal(kn_buf_add(&b, "12345678"), 0); /* exactly the cap */
    assert_int_equal(kn_buf_addc(&b, '9'), KN_ETOOBIG);
    /* Over the cap, the contents are gone: never half a text. */
    assert_int_equal(kn_buf_len(&b), 0);
    assert_int_equal(kn_buf_addf(&b, "%s", "123456789"), KN_ETOOBIG);
    assert_int_equal(kn_buf_addn(&b, "1234", 4), 0);
    assert_int_equal(kn_buf_addf(&b, "%d", 12345), KN_ETOOBIG);
    assert_int_equal(kn_buf_addn(&b, "x", SIZE_MAX), KN_ETOOBIG);
    kn_buf_free(&b);
    /* A zeroed buffer has no cap. */
    struct kn_buf z = KN_BUF_INIT;
    assert_int_equal(kn_buf_add(&z, "free"), 0);
    kn_buf_free(&z);
}

/* A wiped buffer is empty and none of the bytes it held is left. */
static void test_buf_wipe(void **state)
{
    struct kn_buf b = KN_BUF_INIT;
    size_t cap;
    assert_int_equal(kn_buf_add(&b, "Bearer kn_0123_secret"), 0);
    cap = b._cap;
    kn_buf_wipe(&b);
    assert_int_equal(kn_buf_len(&b), 0);
    assert_string_equal(kn_buf_str(&b), "");
    for (size_t i = 0; i < cap; i++)
        assert_int_equal(b._p[i], 0);
    assert_int_equal(kn_buf_add(&b, "x"), 0); /* usable again */
    assert_string_equal(kn_buf_str(&b), "x");
    kn_buf_free(&b);
}

static void test_hex(void **state)
{
    unsigned char raw[4] = {0x00, 0xab, 0x7f, 0xff}, back[4];
    char hex[9];
    (void)state;
    kn_hex_encode(raw, 4, hex);
    assert_string_equal(hex, "00ab7fff");
    assert_int_equal(kn_hex_decode("00AB7fff", 8, back, 4), 0);
    assert_memory_equal(back, raw, 4);
    assert_int_equal(kn_hex_decode("00ab7ff", 7, back, 4), -1);
    assert_int_equal(kn_hex_decode("00ab7ffg", 8, back, 4), -1);
    assert_int_equal(kn_hex_value('F'), 15);
    assert_int_equal(kn_hex_value('g'), -1);
    kn_hex_encode(raw, 0, hex);
    assert_string_equal(hex, "");
}

/* RFC 4648 section 10. */
static const char *const vec_plain[] = {"", "f", "fo", "foo", "foob",
                                        "fooba", "foobar"};
static const char *const vec_b64[] = {"",         "Zg==",     "Zm8=",
                                      "Zm9v",     "Zm9vYg==", "Zm9vYmE=",
                                      "Zm9vYmFy"};
static const char *const vec_b64url[] = {"",     "Zg",     "Zm8",     "Zm9v",
                                         "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};

static void test_base64_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vec_plain) / sizeof(vec_plain[0]); i++) {
        size_t n = strlen(vec_plain[i]);
        unsigned char *dec;
        char *e = kn_b64_encode(vec_plain[i], n);
        assert_string_equal(e, vec_b64[i]);
        free(e);
        assert_int_equal(kn_b64_decode(vec_b64[i], strlen(vec_b64[i]), &dec),
                         (long)n);
        assert_memory_equal(dec, vec_plain[i], n);
        free(dec);
        e = kn_b64url_encode(vec_plain[i], n);
        assert_string_equal(e, vec_b64url[i]);
        free(e);
        assert_int_equal(kn_b64url_decode(vec_b64url[i], &dec), (long)n);
        if (n > 0)
            assert_memory_equal(dec, vec_plain[i], n);
        free(dec);
    }
}

static void test_base64_alphabets(void **state)
{
    const unsigned char raw[3] = {0xfb, 0xff, 0xbf};
    unsigned char *dec;
    char *e;
    (void)state;
    e = kn_b64_encode(raw, 3);
    assert_string_equal(e, "+/+/");
    free(e);
    e = kn_b64url_encode(raw, 3);
    assert_string_equal(e, "-_-_");
    free(e);
    /* Each decoder refuses the other's alphabet. */
    assert_int_equal(kn_b64_decode("-_-_", 4, &dec), -1);
    assert_null(dec);
    assert_int_equal(kn_b64url_decode("+/+/", &dec), -1);
    assert_null(dec);
    /* base64url is strict: no padding, no 4n+1, no stray low bits. */
    assert_int_equal(kn_b64url_decode("Zg==", &dec), -1);
    assert_int_equal(kn_b64url_decode("Zm9vY", &dec), -1);
    assert_int_equal(kn_b64url_decode("Zh", &dec), -1);
    /* base64 is lenient with white space and a missing padding. */
    assert_int_equal(kn_b64_decode(" Zm9v\r\nYg", 9, &dec), 4);
    assert_memory_equal(dec, "foob", 4);
    free(dec);
}

static void test_utf8_decode(void **state)
{
    unsigned long cp = 0;
    (void)state;
    assert_int_equal(kn_utf8_decode("A", 1, &cp), 1);
    assert_int_equal(cp, 'A');
    assert_int_equal(kn_utf8_decode("\xe5\x9b\x9e", 3, &cp), 3); /* 回 */
    assert_int_equal(cp, 0x56de);
    assert_int_equal(kn_utf8_decode("\xf0\x9f\x98\x80", 4, &cp), 4);
    assert_int_equal(cp, 0x1f600);
    assert_int_equal(kn_utf8_decode("\xc0\x80", 2, &cp), 0);     /* overlong */
    assert_int_equal(kn_utf8_decode("\xed\xa0\x80", 3, &cp), 0); /* surrogate */
    assert_int_equal(kn_utf8_decode("\xf4\x90\x80\x80", 4, &cp), 0);
    assert_int_equal(kn_utf8_decode("\xe5\x9b", 2, &cp), 0); /* cut */
    assert_int_equal(kn_utf8_decode("", 0, &cp), 0);
    assert_int_equal(kn_utf8_char_len((const unsigned char *)"\xe5\x9b\x9e", 3),
                     3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_grows_and_takes),
        cmocka_unit_test(test_buf_cap),
        cmocka_unit_test(test_buf_wipe),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_base64_vectors),
        cmocka_unit_test(test_base64_alphabets),
        cmocka_unit_test(test_utf8_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
