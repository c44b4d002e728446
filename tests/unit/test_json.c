/*
 * test_json.c - unit tests for common/json.c: the fast reader takes the
 * plain shapes kairan stores and builds the tree jansson would; whatever
 * else it leaves to jansson (and kn_json_load then gives jansson's answer,
 * a tree or NULL), never a different tree.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/json.h"

/* s: the fast reader takes it, and its tree equals jansson's. */
static void expect_fast(const char *s)
{
    json_t *f = kn_json_load_simple(s, strlen(s));
    json_t *j = json_loadb(s, strlen(s), 0, NULL);
    if (f == NULL)
        fail_msg("the fast reader refused: %s", s);
    assert_non_null(j);
    if (!json_equal(f, j))
        fail_msg("trees differ for %s", s);
    json_decref(f);
    json_decref(j);
}

/* s: the fast reader leaves it to jansson, and kn_json_load gives
 * jansson's answer (valid: its tree; invalid: NULL). */
static void expect_jansson(const char *s, size_t n, int valid)
{
    json_t *f = kn_json_load_simple(s, n);
    json_t *l = kn_json_load(s, n);
    json_t *j = json_loadb(s, n, 0, NULL);
    if (f != NULL)
        fail_msg("the fast reader took: %.*s", (int)n, s);
    if (valid) {
        assert_non_null(j);
        assert_non_null(l);
        assert_true(json_equal(l, j));
    } else {
        assert_null(j);
        assert_null(l);
    }
    json_decref(l);
    json_decref(j);
}

#define JANSSON(s, valid) expect_jansson(s, sizeof(s) - 1, valid)

static void test_stored_shapes(void **state)
{
    (void)state;
    /* An inline recipient's audience entry (model/broadcast_store.c). */
    expect_fast("{\"id\":\"r000001\",\"l\":\"k1.AAECAwQFBgcICQoLDA0ODxAREhMU"
                "FRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7\","
                "\"li\":\"0123456789abcdef0123456789abcdef\"}");
    /* A directory record with guardians, push tokens, numbers, literals. */
    expect_fast(" {\"id\":\"c-1\",\"nm\":\"山田 花子\",\"g\":[{\"e\":\"x\","
                "\"p\":[{\"t\":\"ios\",\"k\":\"s\"}]},{}],\"off\":true,"
                "\"v\":false,\"n\":null,\"a\":-12,\"z\":0,\"big\":"
                "123456789012345678,\"e\":[] , \"o\" : { } }\r\n");
    expect_fast("[]");
    expect_fast("[1,[2,[3,[\"x\"]]],{\"k\":[true]}]");
    /* A key twice: the last value, as jansson keeps it. */
    expect_fast("{\"k\":1,\"k\":\"two\"}");
    expect_fast("{\"-0\":-0}");
    /* Bytes jansson takes raw in a string: DEL, UTF-8 up to 4 bytes. */
    expect_fast("{\"\x7f\":\"\xf0\x9f\x98\x80 \xe3\x81\x82\"}");
}

static void test_left_to_jansson(void **state)
{
    (void)state;
    /* Valid JSON outside the fast shape: jansson's tree. */
    JANSSON("{\"k\":\"a\\\"b\\u3042\"}", 1);
    JANSSON("{\"k\\n\":1}", 1);
    JANSSON("{\"k\":1.5}", 1);
    JANSSON("{\"k\":1e3}", 1);
    JANSSON("{\"k\":1234567890123456789}", 1);
    JANSSON("{\"k\":9999999999999999999}", 0); /* too big for jansson */
    JANSSON("{\"k\":-9223372036854775808}", 1);
    /* Invalid JSON: NULL from both. */
    JANSSON("", 0);
    JANSSON("   ", 0);
    JANSSON("\"top-level string\"", 0); /* no JSON_DECODE_ANY */
    JANSSON("17", 0);
    JANSSON("{\"k\":01}", 0);
    JANSSON("{\"k\":-}", 0);
    JANSSON("{\"k\":1,}", 0);
    JANSSON("[1,]", 0);
    JANSSON("[1 2]", 0);
    JANSSON("{\"k\" 1}", 0);
    JANSSON("{k:1}", 0);
    JANSSON("{\"k\":tru}", 0);
    JANSSON("{\"k\":truex}", 0);
    JANSSON("{\"k\":nul}", 0);
    JANSSON("{\"k\":\"unterminated}", 0);
    JANSSON("{\"k\":\"tab\there\"}", 0);
    JANSSON("{\"k\":\"\xff\xfe\"}", 0);     /* not UTF-8 */
    JANSSON("{\"\xc3\x28\":1}", 0);         /* key not UTF-8 */
    JANSSON("{\"k\":\"\xed\xa0\x80\"}", 0); /* a surrogate */
    JANSSON("{\"k\":1}x", 0);
    JANSSON("{\"k\":1}{}", 0);
    JANSSON("{\"k\":1}\0", 0); /* a NUL after the value */
    JANSSON("{\"k\":\"a\0b\"}", 0);
    JANSSON("{\"k\":1", 0);
    JANSSON("[", 0);
    JANSSON("{", 0);
    JANSSON("-", 0);
}

static void test_deep_nesting(void **state)
{
    (void)state;
    /* 31 levels: fast; 40: jansson's (and still the same tree). */
    char s[200];
    size_t n = 0;
    for (int i = 0; i < 31; i++)
        s[n++] = '[';
    for (int i = 0; i < 31; i++)
        s[n++] = ']';
    s[n] = '\0';
    expect_fast(s);
    n = 0;
    for (int i = 0; i < 40; i++)
        s[n++] = '[';
    for (int i = 0; i < 40; i++)
        s[n++] = ']';
    expect_jansson(s, n, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stored_shapes),
        cmocka_unit_test(test_left_to_jansson),
        cmocka_unit_test(test_deep_nesting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
