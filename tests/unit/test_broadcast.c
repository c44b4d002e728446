/*
 * test_broadcast.c - unit tests for model/broadcast.c: parsing and
 * validating the broadcast of the wire contract (DESIGN.md), masking a
 * rejected broadcast, ids, and the sealed storage form.
 *
 * The rejections are one table: every row is its own cmocka test (so the
 * TAP output names the case) and checks that the broadcast is refused, that
 * the error names the right field, that the message says what to fix, and
 * that no plaintext e-mail address appears in the message (a masked form
 * such as "t***@docomo.ne.jp" is fine).
 *
 * Limits used throughout: max_subject 1000, max_body 100000,
 * max_recipients 100, default_ttl 24 h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/argv.h"
#include "common/kn.h"
#include "common/seal.h"
#include "model/broadcast.h"

#define TTL_MS (24LL * 3600 * 1000)
static const struct kn_limits LIM = {1000, 100000, 100, TTL_MS, 0};

/* 2099-11-22T07:00:00+09:00 and 2099-11-22T18:00:00+09:00 in ms. */
#define SEND_AT_MS 4098981600000LL
#define EXPIRES_MS 4099021200000LL

#define LINE_ID   "U4af4980629a1b2c3d4e5f60718293a4b"
#define FCM_TOKEN "fcm-token-0123456789abcdefghijklmnopqrstuvwxyz"
#define APNS_TOKEN                                                             \
    "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"

/* Every field of the wire contract. */
static const char FULL[] =
    "{\"id\":\"b-typhoon-2026\",\"tenant\":\"sakura-hs\","
    "\"category\":\"emergency\",\"priority\":\"urgent\",\"drill\":false,"
    "\"subject\":\"【緊急】台風接近に伴う臨時休校\","
    "\"body\":\"保護者各位\\n\\n台風接近のため、明日は臨時休校とします。\","
    "\"channels\":[\"email\",\"line\",\"push\"],\"policy\":\"all\","
    "\"audience\":{\"groups\":[\"2-A\",\"3-B\"],\"recipients\":[\"r-1001\"]},"
    "\"recipients\":[{\"id\":\"r-9\",\"name\":\"山田 花子\","
    "\"email\":\"a..b.@docomo.ne.jp\",\"line\":\"" LINE_ID "\","
    "\"push\":[{\"platform\":\"fcm\",\"token\":\"" FCM_TOKEN "\"},"
    "{\"platform\":\"apns\",\"token\":\"" APNS_TOKEN "\"}]},"
    "{\"id\":\"r-10\",\"email\":\"Taro.Yamada@ezweb.ne.jp\"}],"
    "\"ack\":true,\"send_at\":\"2099-11-22T07:00:00+09:00\","
    "\"expires_at\":\"2099-11-22T18:00:00+09:00\"}";

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static int is_local_char(unsigned char c)
{
    return isalnum(c) || c == '.' || c == '_' || c == '+' || c == '-' ||
           c >= 0x80;
}

/*
 * Fail if s holds what looks like a plaintext e-mail address: a '@' right
 * after a local-part character other than the '*' of a masked form.
 */
static void assert_no_plain_address(const char *s)
{
    for (const char *p = strchr(s, '@'); p != NULL; p = strchr(p + 1, '@')) {
        if (p > s && is_local_char((unsigned char)p[-1]))
            fail_msg("plaintext address in message: %s", s);
    }
}

static void assert_lacks(const char *hay, size_t n, const char *needle)
{
    if (memmem(hay, n, needle, strlen(needle)) != NULL)
        fail_msg("\"%.*s\" contains \"%s\"", (int)n, hay, needle);
}

/* Parse a NUL-terminated text that must be valid; returns the broadcast. */
static void parse_ok(const char *json, struct kn_broadcast *b)
{
    char err[600] = "", field[128] = "";
    int rc = kn_broadcast_parse(json, strlen(json), &LIM, b, err, sizeof(err),
                                field, sizeof(field));
    if (rc != 0)
        fail_msg("valid broadcast refused: %s (field %s)", err, field);
}

/* ------------------------------------------------------------------------
 * Valid broadcasts
 * ------------------------------------------------------------------------ */

static void test_full_valid(void **state)
{
    struct kn_broadcast b;

    parse_ok(FULL, &b);
    assert_string_equal(b.key, "b-typhoon-2026");
    assert_null(b.id); /* the name is kairan's, set by the front end */
    assert_string_equal(b.tenant, "sakura-hs");
    assert_string_equal(b.category, "emergency");
    assert_int_equal(b.urgent, 1);
    assert_int_equal(b.drill, 0);
    assert_int_equal(b.ack, 1);
    assert_int_equal(b.preferred, 0);
    assert_string_equal(b.subject, "【緊急】台風接近に伴う臨時休校");
    assert_string_equal(
        b.body, "保護者各位\n\n台風接近のため、明日は臨時休校とします。");
    assert_int_equal(b.nchannels, 3);
    assert_int_equal(b.channels[0], KN_CH_EMAIL);
    assert_int_equal(b.channels[1], KN_CH_LINE);
    assert_int_equal(b.channels[2], KN_CH_PUSH);
    assert_int_equal(b.ngroups, 2);
    assert_string_equal(b.groups[0], "2-A");
    assert_string_equal(b.groups[1], "3-B");
    assert_int_equal(b.nrcpt_ids, 1);
    assert_string_equal(b.rcpt_ids[0], "r-1001");
    assert_int_equal(b.nrcpts, 2);
    assert_string_equal(b.rcpts[0].id, "r-9");
    assert_string_equal(b.rcpts[0].name, "山田 花子");
    /* A carrier address is taken as given. */
    assert_string_equal(b.rcpts[0].email, "a..b.@docomo.ne.jp");
    assert_string_equal(b.rcpts[0].line, LINE_ID);
    assert_int_equal(b.rcpts[0].npush, 2);
    assert_string_equal(b.rcpts[0].push[0].platform, "fcm");
    assert_string_equal(b.rcpts[0].push[0].token, FCM_TOKEN);
    assert_string_equal(b.rcpts[0].push[1].platform, "apns");
    assert_string_equal(b.rcpts[0].push[1].token, APNS_TOKEN);
    assert_string_equal(b.rcpts[1].id, "r-10");
    assert_null(b.rcpts[1].name);
    assert_string_equal(b.rcpts[1].email, "Taro.Yamada@ezweb.ne.jp");
    assert_null(b.rcpts[1].line);
    assert_int_equal(b.rcpts[1].npush, 0);
    assert_int_equal(b.send_at_ms, SEND_AT_MS);
    assert_int_equal(b.expires_ms, EXPIRES_MS);
    assert_int_equal(b.escalate_ms, 0);
    assert_null(b.sender);
    kn_broadcast_free(&b);
    assert_null(b.subject);
}

/* The extra fields: escalate_after, sender; policy preferred; drill. */
static void test_extras_valid(void **state)
{
    struct kn_broadcast b;
    parse_ok("{\"tenant\":\"t1\",\"category\":\"notice\",\"drill\":true,"
             "\"priority\":\"normal\",\"policy\":\"preferred\","
             "\"subject\":\"s\",\"body\":\"b\",\"channels\":[\"line\"],"
             "\"audience\":{\"groups\":[\"all\"]},"
             "\"escalate_after\":\"10m\",\"sender\":\"token:office\"}",
             &b);
    assert_int_equal(b.drill, 1); /* a drill whatever the category */
    assert_string_equal(b.category, "notice");
    assert_int_equal(b.urgent, 0);
    assert_int_equal(b.preferred, 1);
    assert_int_equal(b.escalate_ms, 10 * 60 * 1000);
    assert_string_equal(b.sender, "token:office");
    assert_int_equal(b.nrcpts, 0);
    kn_broadcast_free(&b);
}

/* Group and category names are NFKC-normalised: full-width letters and
 * digits, half-width katakana and an ideographic space at the ends all
 * become what the CSV import stores. */
static void test_names_normalised(void **state)
{
    struct kn_broadcast b;
    parse_ok("{\"tenant\":\"t1\",\"category\":\"\u3000行事\u3000\","
             "\"subject\":\"s\",\"body\":\"b\",\"channels\":[\"email\"],"
             "\"audience\":{\"groups\":[\"２年Ａ組\",\"ｻｯｶｰ部\","
             "\"2年 B組\"]}}",
             &b);
    assert_string_equal(b.category, "行事");
    assert_int_equal(b.ngroups, 3);
    assert_string_equal(b.groups[0], "2年A組");
    assert_string_equal(b.groups[1], "サッカー部");
    assert_string_equal(b.groups[2], "2年 B組");
    kn_broadcast_free(&b);
}

/* Defaults: category notice, normal, policy all, expiry now + ttl. */
static void test_defaults(void **state)
{
    struct kn_broadcast b;
    kn__fake_now_ms = 1795000000000LL;
    parse_ok("{\"tenant\":\"sakura-hs\",\"subject\":\"件名\",\"body\":\"本文\","
             "\"channels\":[\"email\"],"
             "\"recipients\":[{\"id\":\"r-1\",\"email\":\"t@docomo.ne.jp\"}]}",
             &b);
    kn__fake_now_ms = 0;
    assert_null(b.id);
    assert_string_equal(b.category, "notice");
    assert_int_equal(b.urgent, 0);
    assert_int_equal(b.drill, 0);
    assert_int_equal(b.ack, 0);
    assert_int_equal(b.preferred, 0);
    assert_int_equal(b.send_at_ms, 0);
    assert_int_equal(b.expires_ms, 1795000000000LL + TTL_MS);
    assert_int_equal(b.ngroups, 0);
    assert_int_equal(b.nrcpt_ids, 0);
    assert_int_equal(b.nrcpts, 1);
    kn_broadcast_free(&b);

    /* With send_at and no expires_at: send_at + ttl. */
    parse_ok("{\"tenant\":\"sakura-hs\",\"subject\":\"s\",\"body\":\"b\","
             "\"channels\":[\"email\"],\"audience\":{\"recipients\":[\"r-1\"]},"
             "\"send_at\":\"2099-11-22T07:00:00+09:00\"}",
             &b);
    assert_int_equal(b.send_at_ms, SEND_AT_MS);
    assert_int_equal(b.expires_ms, SEND_AT_MS + TTL_MS);
    kn_broadcast_free(&b);
}

/* Exactly at each limit is accepted. */
static void test_limits_inclusive(void **state)
{
    struct kn_broadcast b;
    char *subj = kn_xmalloc(1001), *body = kn_xmalloc(100001), *json;
    size_t off;
    memset(subj, 'S', 1000);
    subj[1000] = '\0';
    memset(body, 'B', 100000);
    body[100000] = '\0';
    json = kn_xmalloc(200000);
    off =
        (size_t)sprintf(json,
                        "{\"tenant\":\"t\",\"subject\":\"%s\",\"body\":\"%s\","
                        "\"channels\":[\"email\"],\"recipients\":[",
                        subj, body);
    for (int i = 0; i < 100; i++)
        off += (size_t)sprintf(
            json + off, "%s{\"id\":\"r-%d\",\"email\":\"u%d@example.jp\"}",
            i ? "," : "", i, i);
    strcpy(json + off, "]}");
    parse_ok(json, &b);
    assert_int_equal(strlen(b.subject), 1000);
    assert_int_equal(strlen(b.body), 100000);
    assert_int_equal(b.nrcpts, 100);
    assert_string_equal(b.rcpts[99].email, "u99@example.jp");
    kn_broadcast_free(&b);
    free(subj);
    free(body);
    free(json);
}

/* ------------------------------------------------------------------------
 * Rejections (table)
 * ------------------------------------------------------------------------ */

struct reject_case {
    const char *name;
    const char *json;            /* NUL-terminated, or NULL: build */
    char *(*build)(size_t *len); /* heap JSON and its length */
    const char *field;           /* expected field; "a|b": either */
    const char *want[3];         /* substrings of the message */
};

/* Common parts. */
#define HEAD                                                                   \
    "\"tenant\":\"sakura-hs\",\"subject\":\"件名\",\"body\":\"本文\","     \
    "\"channels\":[\"email\"]"
#define RCPT    "\"recipients\":[{\"id\":\"r-1\",\"email\":\"taro@docomo.ne.jp\"}]"
#define OK_BODY HEAD "," RCPT

static char *build_long_subject(size_t *len)
{
    char *s = kn_xmalloc(1002), *j;
    memset(s, 'x', 1001);
    s[1001] = '\0';
    j = kn_xasprintf("{\"tenant\":\"t\",\"subject\":\"%s\",\"body\":\"b\","
                     "\"channels\":[\"email\"]," RCPT "}",
                     s);
    free(s);
    *len = strlen(j);
    return j;
}

static char *build_long_subject_utf8(size_t *len)
{
    /* 334 x "あ" (3 bytes) = 1002 bytes: the limit counts bytes. */
    char *s = kn_xmalloc(334 * 3 + 1), *j;
    for (int i = 0; i < 334; i++)
        memcpy(s + 3 * i, "あ", 3);
    s[334 * 3] = '\0';
    j = kn_xasprintf("{\"tenant\":\"t\",\"subject\":\"%s\",\"body\":\"b\","
                     "\"channels\":[\"email\"]," RCPT "}",
                     s);
    free(s);
    *len = strlen(j);
    return j;
}

static char *build_long_body(size_t *len)
{
    char *s = kn_xmalloc(100002), *j;
    memset(s, 'y', 100001);
    s[100001] = '\0';
    j = kn_xasprintf("{\"tenant\":\"t\",\"subject\":\"s\",\"body\":\"%s\","
                     "\"channels\":[\"email\"]," RCPT "}",
                     s);
    free(s);
    *len = strlen(j);
    return j;
}

static char *build_many_rcpts(size_t *len)
{
    char *j = kn_xmalloc(20000);
    size_t off = (size_t)sprintf(j, "{" HEAD ",\"recipients\":[");
    for (int i = 0; i < 101; i++)
        off += (size_t)sprintf(
            j + off, "%s{\"id\":\"r-%d\",\"email\":\"u%d@example.jp\"}",
            i ? "," : "", i, i);
    strcpy(j + off, "]}");
    *len = strlen(j);
    return j;
}

static char *build_subject_ff(size_t *len)
{
    char *j =
        kn_xasprintf("{\"tenant\":\"t\",\"subject\":\"ab\xff\xfe"
                     "cd\",\"body\":\"b\",\"channels\":[\"email\"]," RCPT "}");
    *len = strlen(j);
    return j;
}

static char *build_subject_overlong(size_t *len)
{
    /* An overlong encoding of '/' (C0 AF): not valid UTF-8. */
    char *j =
        kn_xasprintf("{\"tenant\":\"t\",\"subject\":\"a\xc0\xaf"
                     "b\",\"body\":\"b\",\"channels\":[\"email\"]," RCPT "}");
    *len = strlen(j);
    return j;
}

static char *build_subject_raw_nul(size_t *len)
{
    /* A literal NUL byte inside the subject (length-delimited input). */
    static const char pre[] = "{\"tenant\":\"t\",\"subject\":\"ab";
    static const char post[] =
        "cd\",\"body\":\"b\",\"channels\":[\"email\"]," RCPT "}";
    size_t n1 = sizeof(pre) - 1, n2 = sizeof(post) - 1;
    char *j = kn_xmalloc(n1 + 1 + n2 + 1);
    memcpy(j, pre, n1);
    j[n1] = '\0';
    memcpy(j + n1 + 1, post, n2 + 1);
    *len = n1 + 1 + n2;
    return j;
}

static char *build_id_too_long(size_t *len)
{
    char id[130];
    char *j;
    memset(id, 'a', 129);
    id[129] = '\0';
    j = kn_xasprintf("{\"id\":\"%s\"," OK_BODY "}", id);
    *len = strlen(j);
    return j;
}

static const struct reject_case cases[] = {
    /* JSON itself */
    {"malformed JSON (truncated)",
     "{\"tenant\":\"sakura-hs\",",
     NULL,
     "json",
     {"line 1", "column"}},
    {"malformed JSON on line 3",
     "{\n \"tenant\": \"x\",\n \"subject\": }",
     NULL,
     "json",
     {"line 3", "column"}},
    {"malformed JSON (trailing comma)",
     "{" OK_BODY ",}",
     NULL,
     "json",
     {"line", "column"}},
    {"empty input", "", NULL, "json", {"line", "column"}},
    {"not an object (array)",
     "["
     "\"sakura-hs\""
     "]",
     NULL,
     "json",
     {"object"}},
    {"duplicate JSON keys",
     "{" OK_BODY ",\"subject\":\"二度目\"}",
     NULL,
     "json",
     {"duplicate"}},
    {"unknown top-level field",
     "{" OK_BODY ",\"subjct\":\"typo\"}",
     NULL,
     "subjct",
     {"unknown field"}},
    {"unknown field in a recipient",
     "{" HEAD ",\"recipients\":[{\"id\":\"r-1\",\"mail\":\"t@x.jp\"}]}",
     NULL,
     "recipients[0].mail",
     {"unknown field"}},
    {"unknown field in audience",
     "{" HEAD ",\"audience\":{\"group\":[\"2-A\"]}}",
     NULL,
     "audience.group",
     {"unknown field"}},
    /* required fields */
    {"missing tenant",
     "{\"subject\":\"s\",\"body\":\"b\",\"channels\":[\"email\"]," RCPT "}",
     NULL,
     "tenant",
     {"missing"}},
    {"invalid tenant",
     "{\"tenant\":\"sakura hs\",\"subject\":\"s\","
     "\"body\":\"b\",\"channels\":[\"email\"]," RCPT "}",
     NULL,
     "tenant",
     {"letters, digits"}},
    {"missing subject",
     "{\"tenant\":\"t\",\"body\":\"b\",\"channels\":[\"email\"]," RCPT "}",
     NULL,
     "subject",
     {"missing", "subject"}},
    {"empty subject",
     "{\"tenant\":\"t\",\"subject\":\"\",\"body\":\"b\","
     "\"channels\":[\"email\"]," RCPT "}",
     NULL,
     "subject",
     {"needs a subject"}},
    {"missing body",
     "{\"tenant\":\"t\",\"subject\":\"s\",\"channels\":[\"email\"]," RCPT "}",
     NULL,
     "body",
     {"needs a body"}},
    {"empty body",
     "{\"tenant\":\"t\",\"subject\":\"s\",\"body\":\"\","
     "\"channels\":[\"email\"]," RCPT "}",
     NULL,
     "body",
     {"needs a body"}},
    {"missing channels",
     "{\"tenant\":\"t\",\"subject\":\"s\",\"body\":\"b\"," RCPT "}",
     NULL,
     "channels",
     {"\"email\"", "\"line\"", "\"push\""}},
    {"empty channels",
     "{\"tenant\":\"t\",\"subject\":\"s\",\"body\":\"b\","
     "\"channels\":[]," RCPT "}",
     NULL,
     "channels",
     {"at least one"}},
    /* wrong types */
    {"subject is a number",
     "{\"tenant\":\"t\",\"subject\":42,\"body\":\"b\","
     "\"channels\":[\"email\"]," RCPT "}",
     NULL,
     "subject",
     {"must be a string"}},
    {"body is an object",
     "{\"tenant\":\"t\",\"subject\":\"s\",\"body\":{},"
     "\"channels\":[\"email\"]," RCPT "}",
     NULL,
     "body",
     {"must be a string"}},
    {"tenant is an array",
     "{\"tenant\":[\"t\"],\"subject\":\"s\",\"body\":"
     "\"b\",\"channels\":[\"email\"]," RCPT "}",
     NULL,
     "tenant",
     {"must be a string"}},
    {"drill is a string",
     "{" OK_BODY ",\"drill\":\"true\"}",
     NULL,
     "drill",
     {"true or false"}},
    {"ack is a number",
     "{" OK_BODY ",\"ack\":1}",
     NULL,
     "ack",
     {"true or false"}},
    {"channels is a string, not an array",
     "{\"tenant\":\"t\",\"subject\":\"s\",\"body\":\"b\",\"channels\":"
     "\"email\"," RCPT "}",
     NULL,
     "channels",
     {"\"email\"", "array"}},
    {"channel is a number",
     "{\"tenant\":\"t\",\"subject\":\"s\",\"body\":"
     "\"b\",\"channels\":[1]," RCPT "}",
     NULL,
     "channels[0]",
     {"\"email\""}},
    {"recipients is an object",
     "{" HEAD ",\"recipients\":{\"id\":\"r-1\"}}",
     NULL,
     "recipients",
     {"array"}},
    {"recipient is a string",
     "{" HEAD ",\"recipients\":[\"r-1\"]}",
     NULL,
     "recipients[0]",
     {"object"}},
    {"audience is an array",
     "{" HEAD ",\"audience\":[\"2-A\"]}",
     NULL,
     "audience",
     {"groups"}},
    {"audience.groups is a string",
     "{" HEAD ",\"audience\":{\"groups\":\"2-A\"}}",
     NULL,
     "audience.groups",
     {"array"}},
    {"push is an object",
     "{" HEAD ",\"recipients\":[{\"id\":\"r-1\",\"push\":{\"platform\":"
     "\"fcm\",\"token\":\"abc\"}}]}",
     NULL,
     "recipients[0].push",
     {"platform", "token"}},
    /* header injection and encoding in the subject */
    {"subject with CR",
     "{\"tenant\":\"t\",\"subject\":\"休校\\rBcc: x\","
     "\"body\":\"b\",\"channels\":[\"email\"]," RCPT "}",
     NULL,
     "subject",
     {"line break", "one line"}},
    {"subject with LF",
     "{\"tenant\":\"t\",\"subject\":\"休校\\nBcc: x\","
     "\"body\":\"b\",\"channels\":[\"email\"]," RCPT "}",
     NULL,
     "subject",
     {"line break"}},
    {"subject with CRLF",
     "{\"tenant\":\"t\",\"subject\":\"a\\r\\nBcc: "
     "x@evil.example\",\"body\":\"b\",\"channels\":"
     "[\"email\"]," RCPT "}",
     NULL,
     "subject",
     {"line break"}},
    {"subject with NUL (\\u0000)",
     "{\"tenant\":\"t\",\"subject\":\"a\\u0000b\",\"body\":\"b\","
     "\"channels\":[\"email\"]," RCPT "}",
     NULL,
     "json|subject",
     {"NUL|\\u0000"}},
    {"subject with a raw NUL byte",
     NULL,
     build_subject_raw_nul,
     "json|subject",
     {""}},
    {"subject with invalid UTF-8 (0xff)",
     NULL,
     build_subject_ff,
     "json|subject",
     {"0xff|UTF-8"}},
    {"subject with overlong UTF-8",
     NULL,
     build_subject_overlong,
     "json|subject",
     {""}},
    {"subject over max_subject",
     NULL,
     build_long_subject,
     "subject",
     {"1001 bytes", "at most 1000"}},
    {"subject over max_subject (UTF-8 bytes)",
     NULL,
     build_long_subject_utf8,
     "subject",
     {"1002 bytes", "at most 1000"}},
    {"body over max_body",
     NULL,
     build_long_body,
     "body",
     {"100001 bytes", "at most 100000"}},
    {"sender with LF",
     "{" OK_BODY ",\"sender\":\"a\\nb\"}",
     NULL,
     "sender",
     {"line break"}},
    /* channels, priority, policy */
    {"unknown channel",
     "{\"tenant\":\"t\",\"subject\":\"s\",\"body\":\"b\","
     "\"channels\":[\"email\",\"fax\"]," RCPT "}",
     NULL,
     "channels[1]",
     {"unknown channel", "\"email\""}},
    {"duplicate channel",
     "{\"tenant\":\"t\",\"subject\":\"s\",\"body\":\"b\","
     "\"channels\":[\"email\",\"email\"]," RCPT "}",
     NULL,
     "channels[1]",
     {"twice"}},
    {"bad priority",
     "{" OK_BODY ",\"priority\":\"high\"}",
     NULL,
     "priority",
     {"\"urgent\"", "\"normal\""}},
    {"bad policy",
     "{" OK_BODY ",\"policy\":\"first\"}",
     NULL,
     "policy",
     {"\"all\"", "\"preferred\""}},
    {"bad category",
     "{" OK_BODY ",\"category\":\"緊急;訓練\"}",
     NULL,
     "category",
     {"';'", "kairanctl category list"}},
    {"category too long",
     "{" OK_BODY
     ",\"category\":\"ああああああああああああああああああああああああああああああああ"
     "あああああああああああああああああああああああああああああああああ\"}",
     NULL,
     "category",
     {"65 characters", "at most 64"}},
    /* recipients */
    {"recipients over max_recipients",
     NULL,
     build_many_rcpts,
     "recipients",
     {"101", "at most 100", "group"}},
    {"recipient without contact",
     "{" HEAD ",\"recipients\":[{\"id\":\"r-1\",\"name\":\"山田\"}]}",
     NULL,
     "recipients[0]",
     {"no contact", "email, line or push"}},
    {"recipient without id",
     "{" HEAD ",\"recipients\":[{\"email\":\"taro@docomo.ne.jp\"}]}",
     NULL,
     "recipients[0].id",
     {"id"}},
    {"recipient with an invalid id",
     "{" HEAD ",\"recipients\":[{\"id\":\"r 1\",\"email\":\"t@x.jp\"}]}",
     NULL,
     "recipients[0].id",
     {"letters"}},
    {"second recipient is named by index",
     "{" HEAD ",\"recipients\":[{\"id\":\"r-1\",\"email\":\"t@x.jp\"},"
     "{\"id\":\"r-2\",\"email\":\"hanako.docomo.ne.jp\"}]}",
     NULL,
     "recipients[1].email",
     {"missing @"}},
    {"recipient email with CRLF (header injection)",
     "{" HEAD ",\"recipients\":[{\"id\":\"r-1\",\"email\":"
     "\"taro@docomo.ne.jp\\r\\nBcc: x@evil.example\"}]}",
     NULL,
     "recipients[0].email",
     {"line break"}},
    {"recipient email with LF only",
     "{" HEAD ",\"recipients\":[{\"id\":\"r-1\",\"email\":"
     "\"taro@docomo.ne.jp\\nBcc: x@evil.example\"}]}",
     NULL,
     "recipients[0].email",
     {"line break"}},
    {"recipient email with a tab",
     "{" HEAD ",\"recipients\":[{\"id\":\"r-1\",\"email\":"
     "\"taro\\t@docomo.ne.jp\"}]}",
     NULL,
     "recipients[0].email",
     {"control character", "not an address"}},
    {"recipient email with two '@'",
     "{" HEAD ",\"recipients\":[{\"id\":\"r-1\",\"email\":"
     "\"taro@hanako@docomo.ne.jp\"}]}",
     NULL,
     "recipients[0].email",
     {"more than one @"}},
    {"recipient email without '@'",
     "{" HEAD ",\"recipients\":[{\"id\":\"r-1\",\"email\":"
     "\"taro.docomo.ne.jp\"}]}",
     NULL,
     "recipients[0].email",
     {"missing @"}},
    {"recipient email is a number",
     "{" HEAD ",\"recipients\":[{\"id\":\"r-1\",\"email\":5}]}",
     NULL,
     "recipients[0].email",
     {"must be a string"}},
    {"recipient name with CRLF",
     "{" HEAD ",\"recipients\":[{\"id\":\"r-1\",\"name\":\"山田\\r\\nBcc: "
     "y\",\"email\":\"t@x.jp\"}]}",
     NULL,
     "recipients[0].name",
     {"line break"}},
    {"LINE id too short",
     "{" HEAD ",\"recipients\":[{\"id\":\"r-1\",\"line\":\"U4af4\"}]}",
     NULL,
     "recipients[0].line",
     {"'U' and 32 hex"}},
    {"LINE id with a non-hex digit",
     "{" HEAD ",\"recipients\":[{\"id\":\"r-1\",\"line\":"
     "\"U4af4980629a1b2c3d4e5f60718293a4g\"}]}",
     NULL,
     "recipients[0].line",
     {"'U' and 32 hex"}},
    {"LINE id without the U",
     "{" HEAD ",\"recipients\":[{\"id\":\"r-1\",\"line\":"
     "\"X4af4980629a1b2c3d4e5f60718293a4b\"}]}",
     NULL,
     "recipients[0].line",
     {"'U' and 32 hex"}},
    {"push platform gcm",
     "{" HEAD ",\"recipients\":[{\"id\":\"r-1\",\"push\":[{\"platform\":"
     "\"gcm\",\"token\":\"abc\"}]}]}",
     NULL,
     "recipients[0].push[0].platform",
     {"\"fcm\" or \"apns\""}},
    {"push without platform",
     "{" HEAD ",\"recipients\":[{\"id\":\"r-1\",\"push\":[{\"token\":"
     "\"abc\"}]}]}",
     NULL,
     "recipients[0].push[0].platform",
     {"\"fcm\" or \"apns\""}},
    {"push with an empty token",
     "{" HEAD ",\"recipients\":[{\"id\":\"r-1\",\"push\":[{\"platform\":"
     "\"fcm\",\"token\":\"\"}]}]}",
     NULL,
     "recipients[0].push[0].token",
     {"token"}},
    {"push with an unknown field",
     "{" HEAD ",\"recipients\":[{\"id\":\"r-1\",\"push\":[{\"platform\":"
     "\"fcm\",\"token\":\"abc\",\"os\":\"android\"}]}]}",
     NULL,
     "recipients[0].push[0].os",
     {"unknown field"}},
    /* audience */
    {"no audience at all",
     "{" HEAD "}",
     NULL,
     "audience",
     {"nobody to send to"}},
    {"empty audience object",
     "{" HEAD ",\"audience\":{}}",
     NULL,
     "audience",
     {"nobody to send to"}},
    {"empty groups and recipients",
     "{" HEAD ",\"audience\":{\"groups\":[],\"recipients\":[]},"
     "\"recipients\":[]}",
     NULL,
     "audience",
     {"groups"}},
    {"invalid group name",
     "{" HEAD ",\"audience\":{\"groups\":[\"2-A;2-B\"]}}",
     NULL,
     "audience.groups[0]",
     {"';'"}},
    {"group name with a control character",
     "{" HEAD ",\"audience\":{\"groups\":[\"2\\u001bA\"]}}",
     NULL,
     "audience.groups[0]",
     {"control character", "U+001B"}},
    {"empty group name",
     "{" HEAD ",\"audience\":{\"groups\":[\"\\u3000\"]}}",
     NULL,
     "audience.groups[0]",
     {"empty"}},
    {"group name is a number",
     "{" HEAD ",\"audience\":{\"groups\":[2]}}",
     NULL,
     "audience.groups[0]",
     {"must be a string"}},
    {"invalid directory recipient id",
     "{" HEAD ",\"audience\":{\"recipients\":[\"r-1\",\"r/2\"]}}",
     NULL,
     "audience.recipients[1]",
     {"not a valid name"}},
    {"an address among directory recipient ids",
     "{" HEAD ",\"audience\":{\"recipients\":[\"taro@docomo.ne.jp\"]}}",
     NULL,
     "audience.recipients[0]",
     {"holds an address", "top-level"}},
    {"a key that is not a word",
     "{" HEAD ",\"recipients\":[{\"id\":\"r-1\",\"taro@docomo.ne.jp\":1}]}",
     NULL,
     "recipients[0].?",
     {"not a word"}},
    /* times */
    {"expires_at in the past",
     "{" OK_BODY ",\"expires_at\":\"2001-01-01T00:00:00+09:00\"}",
     NULL,
     "expires_at",
     {"past"}},
    {"expires_at not RFC 3339 (word)",
     "{" OK_BODY ",\"expires_at\":\"tomorrow\"}",
     NULL,
     "expires_at",
     {"RFC 3339", "2026-11-22T07:00:00+09:00"}},
    {"expires_at not RFC 3339 (no zone)",
     "{" OK_BODY ",\"expires_at\":\"2099-11-22T18:00:00\"}",
     NULL,
     "expires_at",
     {"RFC 3339"}},
    {"expires_at not RFC 3339 (no seconds)",
     "{" OK_BODY ",\"expires_at\":\"2099-11-22T18:00+09:00\"}",
     NULL,
     "expires_at",
     {"RFC 3339"}},
    {"expires_at is a number",
     "{" OK_BODY ",\"expires_at\":4099021200}",
     NULL,
     "expires_at",
     {"string"}},
    {"send_at not RFC 3339",
     "{" OK_BODY ",\"send_at\":\"2099/11/22 07:00\"}",
     NULL,
     "send_at",
     {"RFC 3339"}},
    {"send_at after expires_at",
     "{" OK_BODY ",\"send_at\":\"2099-11-22T19:00:00+09:00\","
     "\"expires_at\":\"2099-11-22T18:00:00+09:00\"}",
     NULL,
     "expires_at",
     {"later than send_at"}},
    {"send_at equal to expires_at",
     "{" OK_BODY ",\"send_at\":\"2099-11-22T18:00:00+09:00\","
     "\"expires_at\":\"2099-11-22T18:00:00+09:00\"}",
     NULL,
     "expires_at",
     {"later than send_at"}},
    {"bad escalate_after",
     "{" OK_BODY ",\"escalate_after\":\"soon\"}",
     NULL,
     "escalate_after",
     {"10m"}},
    /* ids */
    {"id with a space",
     "{\"id\":\"bad id\"," OK_BODY "}",
     NULL,
     "id",
     {"letters, digits"}},
    {"id with a slash",
     "{\"id\":\"a/../b\"," OK_BODY "}",
     NULL,
     "id",
     {"letters, digits"}},
    {"id starting with '-'",
     "{\"id\":\"-b1\"," OK_BODY "}",
     NULL,
     "id",
     {"not first"}},
    {"id with a Redis glob",
     "{\"id\":\"b*\"," OK_BODY "}",
     NULL,
     "id",
     {"letters, digits"}},
    {"empty id", "{\"id\":\"\"," OK_BODY "}", NULL, "id", {"letters, digits"}},
    {"id over 128 characters", NULL, build_id_too_long, "id", {"at most 128"}},
    {"id is a number",
     "{\"id\":7," OK_BODY "}",
     NULL,
     "id",
     {"must be a string"}},
    /* A literal line break inside a JSON string is invalid JSON; the
     * parser's message must not quote the address it stopped in. */
    {"malformed JSON: raw CRLF inside an address",
     "{" HEAD ",\"recipients\":[{\"id\":\"r-1\",\"email\":"
     "\"taro@docomo.ne.jp\r\nBcc: x@evil.example\"}]}",
     NULL,
     "json",
     {"line", "column"}},
    {"malformed JSON: missing ':' before an address",
     "{" HEAD ",\"recipients\":[{\"id\":\"r-1\",\"email\" "
     "\"taro@docomo.ne.jp\"}]}",
     NULL,
     "json",
     {"line", "column"}},
    {"malformed JSON: unquoted address",
     "{" HEAD ",\"recipients\":[{\"id\":\"r-1\",\"email\":"
     "taro@docomo.ne.jp}]}",
     NULL,
     "json",
     {"line", "column"}},
};

/* 1 if got is one of the '|'-separated alternatives. */
static int one_of(const char *alts, const char *got)
{
    size_t n = strlen(got);
    for (const char *p = alts;;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, got, n) == 0)
            return 1;
        if (bar == NULL)
            return 0;
        p = bar + 1;
    }
}

static int contains_one_of(const char *hay, const char *alts)
{
    char buf[200];
    for (const char *p = alts;;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        snprintf(buf, sizeof(buf), "%.*s", (int)len, p);
        if (strstr(hay, buf) != NULL)
            return 1;
        if (bar == NULL)
            return 0;
        p = bar + 1;
    }
}

static void test_reject(void **state)
{
    const struct reject_case *c = *state;
    struct kn_broadcast b;
    char err[600], field[128];
    char *heap = NULL;
    const char *json = c->json;
    size_t len;
    int rc;

    if (json == NULL) {
        heap = c->build(&len);
        json = heap;
    } else {
        len = strlen(json);
    }
    memset(err, 'X', sizeof(err));
    memset(field, 'X', sizeof(field));
    rc = kn_broadcast_parse(json, len, &LIM, &b, err, sizeof(err), field,
                            sizeof(field));
    free(heap);
    if (rc == 0) {
        kn_broadcast_free(&b);
        fail_msg("accepted, but must be refused (want field %s)", c->field);
    }
    assert_int_equal(rc, KN_EINVAL);
    /* Both strings NUL-terminated. */
    assert_non_null(memchr(err, '\0', sizeof(err)));
    assert_non_null(memchr(field, '\0', sizeof(field)));
    print_message("# %s -> [%s] %s\n", c->name, field, err);
    if (!one_of(c->field, field))
        fail_msg("field is \"%s\", want \"%s\" (message: %s)", field, c->field,
                 err);
    /* The message starts with the field's name and says more. */
    assert_true(strncmp(err, field, strlen(field)) == 0);
    assert_true(strlen(err) > strlen(field) + 10);
    for (int i = 0; i < 3 && c->want[i] != NULL; i++) {
        if (!contains_one_of(err, c->want[i]))
            fail_msg("message \"%s\" does not say \"%s\"", err, c->want[i]);
    }
    /* One line: nothing that could break a log line or a terminal. */
    assert_null(strchr(err, '\n'));
    assert_null(strchr(err, '\r'));
    assert_no_plain_address(err);
    /* Nothing is left allocated in b. */
    assert_null(b.id);
    assert_null(b.tenant);
    assert_null(b.subject);
    assert_null(b.body);
    assert_null(b.rcpts);
    assert_int_equal(b.nrcpts, 0);
}

/* A small error buffer truncates but stays NUL-terminated. */
static void test_reject_small_buffers(void **state)
{
    struct kn_broadcast b;
    char err[8], field[4];
    const char *json = "{" OK_BODY ",\"priority\":\"high\"}";
    int rc = kn_broadcast_parse(json, strlen(json), &LIM, &b, err, sizeof(err),
                                field, sizeof(field));
    assert_int_equal(rc, KN_EINVAL);
    assert_int_equal(strlen(err), sizeof(err) - 1);
    assert_int_equal(strlen(field), sizeof(field) - 1);
    assert_memory_equal(err, "priorit", 7);
}

/* Messages never show a full address, whichever recipient is bad. */
static void test_reject_masks_addresses(void **state)
{
    static const char *const bad[] = {
        "taro.yamada@hanako@docomo.ne.jp",
        "taro yamada@docomo.ne.jp",
        "taro@docomo..ne.jp",
        "taro@docomo.ne.jp.",
        "\\\"taro\\\"x@docomo.ne.jp",
        "taro@docomo ne.jp",
        "taro@[127.0.0.1]",
        "@docomo.ne.jp",
        "taro@",
        "\\\"unterminated@docomo.ne.jp",
    };
    for (size_t i = 0; i < KN_ARRAY_SIZE(bad); i++) {
        struct kn_broadcast b;
        char err[600], field[128];
        char *json = kn_xasprintf(
            "{" HEAD ",\"recipients\":[{\"id\":\"r-1\",\"email\":\"ok@x.jp\"},"
            "{\"id\":\"r-2\",\"email\":\"%s\"}]}",
            bad[i]);
        int rc = kn_broadcast_parse(json, strlen(json), &LIM, &b, err,
                                    sizeof(err), field, sizeof(field));
        free(json);
        if (rc == 0) {
            kn_broadcast_free(&b);
            fail_msg("address %s accepted", bad[i]);
        }
        print_message("# %s -> [%s] %s\n", bad[i], field, err);
        assert_string_equal(field, "recipients[1].email");
        assert_no_plain_address(err);
        assert_null(strstr(err, "taro"));
    }
}

/* ------------------------------------------------------------------------
 * Masking, ids
 * ------------------------------------------------------------------------ */

static void test_mask_json(void **state)
{
    const char *in =
        "{\"id\":\"b-1\",\"tenant\":\"sakura-hs\",\"subject\":\"件名 山田\","
        "\"category\":\"emergency\",\"priority\":\"urgent\",\"policy\":\"all\","
        "\"drill\":true,\"send_at\":\"2026-11-22T07:00:00+09:00\","
        "\"escalate_after\":\"10m\",\"expires_at\":\"hanako@docomo.ne.jp\","
        "\"audience\":{\"groups\":[\"2-A\"],\"recipients\":[\"mail@x.jp\"]},"
        "\"recipeints\":[{\"emial\":\"jiro@au.com\"}],"
        "\"hanako.k@ezweb.ne.jp\":\"x\","
        "\"recipients\":[{\"id\":\"r-9\",\"name\":\"山田\","
        "\"email\":\"taro.yamada@docomo.ne.jp\",\"line\":\"" LINE_ID "\","
        "\"push\":[{\"platform\":\"fcm\",\"token\":\"" FCM_TOKEN "\"}]},"
        "{\"id\":\"r-10\",\"email\":\"a..b.@docomo.ne.jp\\r\\nBcc: "
        "x@evil.example\"}],\"channels\":[\"email\",\"fax\",\"ume@x.jp\"],"
        "\"n\":5}";
    char *out = kn_broadcast_mask_json(in, strlen(in));
    json_t *root, *r0, *r1, *p0, *ch;

    assert_non_null(out);
    print_message("# masked: %s\n", out);
    assert_lacks(out, strlen(out), "taro.yamada");
    assert_lacks(out, strlen(out), LINE_ID);
    assert_lacks(out, strlen(out), FCM_TOKEN);
    assert_lacks(out, strlen(out), "a..b.@");
    assert_lacks(out, strlen(out), "x@evil");
    assert_lacks(out, strlen(out), "山田");
    assert_lacks(out, strlen(out), "hanako");
    assert_lacks(out, strlen(out), "jiro");
    assert_lacks(out, strlen(out), "mail@");
    assert_lacks(out, strlen(out), "ume@");
    assert_lacks(out, strlen(out), "2-A");
    assert_lacks(out, strlen(out), "r-9");
    assert_lacks(out, strlen(out), "fax");
    assert_no_plain_address(out);
    root = json_loads(out, 0, NULL);
    assert_non_null(root);
    /* The harmless fields stay, when valid. */
    assert_string_equal(json_string_value(json_object_get(root, "tenant")),
                        "sakura-hs");
    assert_string_equal(json_string_value(json_object_get(root, "category")),
                        "emergency");
    assert_string_equal(json_string_value(json_object_get(root, "priority")),
                        "urgent");
    assert_string_equal(json_string_value(json_object_get(root, "policy")),
                        "all");
    assert_string_equal(json_string_value(json_object_get(root, "send_at")),
                        "2026-11-22T07:00:00+09:00");
    assert_string_equal(
        json_string_value(json_object_get(root, "escalate_after")), "10m");
    assert_true(json_is_true(json_object_get(root, "drill")));
    assert_int_equal(json_integer_value(json_object_get(root, "n")), 5);
    ch = json_object_get(root, "channels");
    assert_string_equal(json_string_value(json_array_get(ch, 0)), "email");
    assert_string_equal(json_string_value(json_array_get(ch, 1)), "***");
    assert_string_equal(json_string_value(json_array_get(ch, 2)), "u***@x.jp");
    /* Everything else is masked: subject, ids, names, groups, addresses,
     * a harmless field holding an address. */
    assert_string_equal(json_string_value(json_object_get(root, "subject")),
                        "***");
    assert_string_equal(json_string_value(json_object_get(root, "id")), "***");
    assert_string_equal(json_string_value(json_object_get(root, "expires_at")),
                        "h***@docomo.ne.jp");
    r0 = json_array_get(json_object_get(root, "recipients"), 0);
    r1 = json_array_get(json_object_get(root, "recipients"), 1);
    p0 = json_array_get(json_object_get(r0, "push"), 0);
    assert_string_equal(json_string_value(json_object_get(r0, "email")),
                        "t***@docomo.ne.jp");
    assert_string_equal(json_string_value(json_object_get(r0, "line")), "***");
    assert_string_equal(json_string_value(json_object_get(p0, "token")), "***");
    assert_string_equal(json_string_value(json_object_get(p0, "platform")),
                        "fcm");
    assert_string_equal(json_string_value(json_object_get(r0, "id")), "***");
    assert_string_equal(json_string_value(json_object_get(r0, "name")), "***");
    assert_non_null(json_string_value(json_object_get(r1, "email")));
    /* A misspelt key is kept (it is the reason); a key that is not a word
     * is replaced by its position. */
    assert_non_null(json_object_get(root, "recipeints"));
    assert_string_equal(
        json_string_value(json_object_get(
            json_array_get(json_object_get(root, "recipeints"), 0), "emial")),
        "j***@au.com");
    assert_non_null(json_object_get(root, "?13"));
    json_decref(root);
    free(out);

    /* Not JSON at all: NULL. */
    assert_null(kn_broadcast_mask_json("{\"email\": taro@x.jp", 19));
    assert_null(kn_broadcast_mask_json("", 0));
    /* A non-string value is left alone (nothing to leak). */
    out = kn_broadcast_mask_json("{\"email\":5}", 11);
    assert_non_null(out);
    assert_string_equal(out, "{\"email\":5}");
    free(out);
    /* Not an object: masked as a whole. */
    const char *arr = "[\"taro@x.jp\",\"名前\"]";
    out = kn_broadcast_mask_json(arr, strlen(arr));
    assert_non_null(out);
    assert_string_equal(out, "[\"t***@x.jp\",\"***\"]");
    free(out);
}

struct id_case {
    const char *s;
    int ok;
};

/* A record's counts within reason, whatever the hash holds. */
static void test_bc_count(void **state)
{
    (void)state;
    assert_int_equal(kn_bc_count(NULL), 0);
    assert_int_equal(kn_bc_count("12"), 12);
    assert_int_equal(kn_bc_count("-5"), 0);
    assert_int_equal(kn_bc_count("x"), 0);
    assert_true(kn_bc_count("9223372036854775807") == KN_BC_COUNT_MAX);
    assert_true(kn_bc_count("99999999999999999999999") == KN_BC_COUNT_MAX);
    assert_true(kn_bc_count("-9223372036854775808") == 0);
}

static void test_id_valid(void **state)
{
    static const struct id_case ids[] = {
        {"a", 1},
        {"Z", 1},
        {"7", 1},
        {"r-1001", 1},
        {"b-20261122-0123456789ab", 1},
        {"1700000000000-0", 1}, /* a stream entry id */
        {"sakura-hs.2026:A_1", 1},
        {"", 0},
        {"-a", 0},
        {"_a", 0},
        {".a", 0},
        {":a", 0},
        {"a b", 0},
        {"a/b", 0},
        {"a*", 0},
        {"a?", 0},
        {"a{b}", 0},
        {"a\n", 0},
        {"a\r", 0},
        {"a\t", 0},
        {"a\"", 0},
        {"a@b", 0},
        {"..", 0},
        {"二年A組", 0},
        {"a\xff", 0},
    };
    char buf[200];
    for (size_t i = 0; i < KN_ARRAY_SIZE(ids); i++) {
        if (kn_id_valid(ids[i].s) != ids[i].ok)
            fail_msg("kn_id_valid(\"%s\") != %d", ids[i].s, ids[i].ok);
    }
    memset(buf, 'a', 128);
    buf[128] = '\0';
    assert_int_equal(kn_id_valid(buf), 1);
    buf[128] = 'a';
    buf[129] = '\0';
    assert_int_equal(kn_id_valid(buf), 0);
}

static void test_new_id(void **state)
{
    char today[48], after[48], want[16], want2[16];
    char *a, *b;

    kn_time_jst(kn_now_ms(), today, sizeof(today));
    a = kn_broadcast_new_id();
    b = kn_broadcast_new_id();
    kn_time_jst(kn_now_ms(), after, sizeof(after));
    /* "YYYY-MM-DDT..." -> "YYYYMMDD" (JST date) */
    snprintf(want, sizeof(want), "%.4s%.2s%.2s", today, today + 5, today + 8);
    snprintf(want2, sizeof(want2), "%.4s%.2s%.2s", after, after + 5, after + 8);
    for (int k = 0; k < 2; k++) {
        const char *id = k ? b : a;
        assert_int_equal(strlen(id), 2 + 8 + 1 + 12);
        assert_memory_equal(id, "b-", 2);
        if (memcmp(id + 2, want, 8) != 0 && memcmp(id + 2, want2, 8) != 0)
            fail_msg("id %s does not carry the JST date %s", id, want);
        assert_int_equal(id[10], '-');
        for (int i = 11; i < 23; i++) {
            if (!((id[i] >= '0' && id[i] <= '9') ||
                  (id[i] >= 'a' && id[i] <= 'f')))
                fail_msg("id %s: not lower-case hex at %d", id, i);
        }
        assert_int_equal(kn_id_valid(id), 1);
    }
    assert_string_not_equal(a, b);
    free(a);
    free(b);

    /* The date is JST's: 2026-11-21T15:30Z is already the 22nd in Tokyo. */
    kn__fake_now_ms = 1795275000000LL; /* 2026-11-21T15:30:00Z */
    a = kn_broadcast_new_id();
    kn__fake_now_ms = 0;
    assert_memory_equal(a, "b-20261122-", 11);
    free(a);
}

/* ------------------------------------------------------------------------
 * Storage form (sealed)
 * ------------------------------------------------------------------------ */

static char keydir[PATH_MAX];
static char keypath[PATH_MAX + 16];

static int setup_keyring(void **state)
{
    struct kn_keyring *kr = NULL;
    char err[300];
    snprintf(keydir, sizeof(keydir), "%s/kn-test-broadcast-XXXXXX",
             getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(keydir) == NULL)
        return -1;
    snprintf(keypath, sizeof(keypath), "%s/key", keydir);
    if (kn_keyfile_generate(keypath) != 0)
        return -1;
    if (kn_keyring_load(keypath, &kr, err, sizeof(err)) != 0) {
        print_error("kn_keyring_load: %s\n", err);
        return -1;
    }
    *state = kr;
    return 0;
}

static int teardown_keyring(void **state)
{
    kn_keyring_free(*state);
    unlink(keypath);
    return rmdir(keydir);
}

static const char *argv_get(const struct kn_argv *a, const char *k)
{
    for (int i = 0; i + 1 < a->n; i += 2) {
        if (strcmp(a->v[i], k) == 0)
            return a->v[i + 1];
    }
    return NULL;
}

static void assert_unseals(const struct kn_keyring *kr, const char *purpose,
                           const char *sealed, const char *want)
{
    char *plain = NULL;
    size_t len = 0;
    assert_non_null(sealed);
    if (kn_unseal(kr, purpose, sealed, &plain, &len) != 0)
        fail_msg("cannot unseal %s (%s)", sealed, purpose);
    assert_int_equal(len, strlen(want));
    assert_string_equal(plain, want);
    free(plain);
    /* The purpose is bound: the same ciphertext does not open as another. */
    plain = NULL;
    assert_int_not_equal(
        kn_unseal(kr, strcmp(purpose, "email") == 0 ? "line" : "email", sealed,
                  &plain, NULL),
        0);
    free(plain);
}

static void test_submit_args(void **state)
{
    const struct kn_keyring *kr = *state;
    static const char *const plain[] = {"a..b.@docomo.ne.jp",
                                        "Taro.Yamada@ezweb.ne.jp",
                                        LINE_ID,
                                        FCM_TOKEN,
                                        APNS_TOKEN,
                                        "a..b.",
                                        "Taro.Yamada"};
    struct kn_broadcast b;
    struct kn_argv fields, aud;
    char bi[33];
    char want_exp[32];

    parse_ok(FULL, &b);
    b.id = kn_xstrdup("b-20261205-0123456789ab"); /* what a front end sets */
    kn_argv_init(&fields);
    kn_argv_init(&aud);
    kn_broadcast_submit_args(&b, kr, &fields, &aud);

    /* The hash fields. */
    assert_int_equal(fields.n % 2, 0);
    assert_string_equal(argv_get(&fields, "id"), "b-20261205-0123456789ab");
    assert_string_equal(argv_get(&fields, "key"), "b-typhoon-2026");
    assert_string_equal(argv_get(&fields, "tenant"), "sakura-hs");
    assert_string_equal(argv_get(&fields, "category"), "emergency");
    assert_string_equal(argv_get(&fields, "priority"), "urgent");
    assert_string_equal(argv_get(&fields, "drill"), "0");
    assert_string_equal(argv_get(&fields, "ack"), "1");
    assert_string_equal(argv_get(&fields, "policy"), "all");
    assert_string_equal(argv_get(&fields, "channels"), "email,line,push");
    assert_string_equal(argv_get(&fields, "subject"),
                        "【緊急】台風接近に伴う臨時休校");
    assert_string_equal(argv_get(&fields, "groups"), "[\"2-A\",\"3-B\"]");
    assert_string_equal(argv_get(&fields, "rcpt_ids"), "[\"r-1001\"]");
    snprintf(want_exp, sizeof(want_exp), "%lld", EXPIRES_MS);
    assert_string_equal(argv_get(&fields, "expires_ms"), want_exp);
    snprintf(want_exp, sizeof(want_exp), "%lld", SEND_AT_MS);
    assert_string_equal(argv_get(&fields, "send_at_ms"), want_exp);
    assert_non_null(argv_get(&fields, "created_ms"));
    assert_non_null(argv_get(&fields, "body"));

    /* One audience entry per inline recipient. */
    assert_int_equal(aud.n, 2);
    for (int i = 0; i < aud.n; i++) {
        for (size_t k = 0; k < KN_ARRAY_SIZE(plain); k++)
            assert_lacks(aud.v[i], aud.len[i], plain[k]);
        assert_no_plain_address(aud.v[i]);
        assert_memory_equal(aud.v[i], "i:", 2);
    }
    for (int i = 0; i < fields.n; i++) {
        for (size_t k = 0; k < KN_ARRAY_SIZE(plain); k++)
            assert_lacks(fields.v[i], fields.len[i], plain[k]);
    }

    {
        json_t *r = json_loads(aud.v[0] + 2, 0, NULL), *p, *t;
        assert_non_null(r);
        assert_string_equal(json_string_value(json_object_get(r, "id")), "r-9");
        /* Names are sealed like addresses. */
        assert_unseals(kr, "name", json_string_value(json_object_get(r, "nm")),
                       "山田 花子");
        assert_unseals(kr, "email", json_string_value(json_object_get(r, "e")),
                       "a..b.@docomo.ne.jp");
        kn_blind_index(kr, "email", "a..b.@docomo.ne.jp", bi);
        assert_string_equal(json_string_value(json_object_get(r, "ei")), bi);
        assert_unseals(kr, "line", json_string_value(json_object_get(r, "l")),
                       LINE_ID);
        kn_blind_index(kr, "line", LINE_ID, bi);
        assert_string_equal(json_string_value(json_object_get(r, "li")), bi);
        p = json_object_get(r, "p");
        assert_int_equal(json_array_size(p), 2);
        t = json_array_get(p, 0);
        assert_string_equal(json_string_value(json_object_get(t, "k")), "fcm");
        assert_unseals(kr, "push", json_string_value(json_object_get(t, "t")),
                       FCM_TOKEN);
        kn_blind_index(kr, "push", FCM_TOKEN, bi);
        assert_string_equal(json_string_value(json_object_get(t, "ti")), bi);
        t = json_array_get(p, 1);
        assert_string_equal(json_string_value(json_object_get(t, "k")), "apns");
        assert_unseals(kr, "push", json_string_value(json_object_get(t, "t")),
                       APNS_TOKEN);
        json_decref(r);

        r = json_loads(aud.v[1] + 2, 0, NULL);
        assert_non_null(r);
        assert_string_equal(json_string_value(json_object_get(r, "id")),
                            "r-10");
        assert_unseals(kr, "email", json_string_value(json_object_get(r, "e")),
                       "Taro.Yamada@ezweb.ne.jp");
        /* The blind index normalises case: the same for any spelling. */
        kn_blind_index(kr, "email", "taro.yamada@EZWEB.ne.jp", bi);
        assert_string_equal(json_string_value(json_object_get(r, "ei")), bi);
        assert_null(json_object_get(r, "l"));
        assert_null(json_object_get(r, "p"));
        json_decref(r);
    }

    kn_argv_free(&fields);
    kn_argv_free(&aud);
    kn_broadcast_free(&b);
}

/* Sealing is randomised: the same broadcast twice gives other ciphertext
 * but the same blind indexes. */
static void test_submit_args_fresh_nonces(void **state)
{
    const struct kn_keyring *kr = *state;
    struct kn_broadcast b;
    struct kn_argv f1, a1, f2, a2;
    json_t *r1, *r2;

    parse_ok("{\"id\":\"b-1\"," OK_BODY "}", &b);
    b.id = kn_broadcast_new_id();
    kn_argv_init(&f1);
    kn_argv_init(&a1);
    kn_argv_init(&f2);
    kn_argv_init(&a2);
    kn_broadcast_submit_args(&b, kr, &f1, &a1);
    kn_broadcast_submit_args(&b, kr, &f2, &a2);
    assert_int_equal(a1.n, 1);
    assert_int_equal(a2.n, 1);
    r1 = json_loads(a1.v[0] + 2, 0, NULL);
    r2 = json_loads(a2.v[0] + 2, 0, NULL);
    assert_non_null(r1);
    assert_non_null(r2);
    assert_string_not_equal(json_string_value(json_object_get(r1, "e")),
                            json_string_value(json_object_get(r2, "e")));
    assert_string_equal(json_string_value(json_object_get(r1, "ei")),
                        json_string_value(json_object_get(r2, "ei")));
    assert_unseals(kr, "email", json_string_value(json_object_get(r2, "e")),
                   "taro@docomo.ne.jp");
    json_decref(r1);
    json_decref(r2);
    kn_argv_free(&f1);
    kn_argv_free(&a1);
    kn_argv_free(&f2);
    kn_argv_free(&a2);
    kn_broadcast_free(&b);
}

/* Channel names both ways. */
static void test_channel_names(void **state)
{
    assert_string_equal(kn_channel_name(KN_CH_EMAIL), "email");
    assert_string_equal(kn_channel_name(KN_CH_LINE), "line");
    assert_string_equal(kn_channel_name(KN_CH_PUSH), "push");
    assert_int_equal(kn_channel_parse("email"), KN_CH_EMAIL);
    assert_int_equal(kn_channel_parse("line"), KN_CH_LINE);
    assert_int_equal(kn_channel_parse("push"), KN_CH_PUSH);
    assert_int_equal(kn_channel_parse("Email"), -1);
    assert_int_equal(kn_channel_parse("sms"), -1);
    assert_int_equal(kn_channel_parse(""), -1);
}

/* "choices" (answers of an ack broadcast) and the stored confirmation. */
static int parse_choices(const char *choices, int ack, struct kn_broadcast *b,
                         char *err, size_t errlen)
{
    char json[2048], field[128];
    snprintf(json, sizeof(json),
             "{\"tenant\":\"t\",\"category\":\"notice\",\"subject\":\"s\","
             "\"body\":\"b\",\"channels\":[\"email\"],\"ack\":%s,"
             "\"choices\":%s,\"audience\":{\"groups\":[\"g\"]}}",
             ack ? "true" : "false", choices);
    return kn_broadcast_parse(json, strlen(json), &LIM, b, err, errlen, field,
                              sizeof(field));
}

static void test_choices(void **state)
{
    static const char *const bad[] = {
        "[\"one\"]",                                   /* fewer than 2 */
        "[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\"]", /* more than 6 */
        "[\"a\",\"\"]",                                /* empty */
        "[\"a\",\"b\\nc\"]",                           /* line break */
        "[\"a\",\"b\\u0085\"]",                        /* C1 control */
        "[\"a\",1]",                                   /* not a string */
        "[\"a\",\"a\"]",                               /* twice */
        "\"a,b\"",                                     /* not an array */
        "[\"a\",\"12345678901234567890123456789012345678901\"]", /* 41 */
    };
    struct kn_broadcast b;
    char err[600];
    struct kn_argv f, a;
    const char *forty =
        "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめも"
        "やゆよらり";
    char json[512], *v, *sealed;
    int64_t ms;
    int ans;
    (void)state;

    assert_int_equal(parse_choices("[\"無事です\",\"けがをしています\","
                                   "\"お迎えが必要です\"]",
                                   1, &b, err, sizeof(err)),
                     0);
    assert_int_equal(b.nchoices, 3);
    assert_string_equal(b.choices[1], "けがをしています");
    kn_argv_init(&f);
    kn_argv_init(&a);
    b.id = kn_xstrdup("b-1");
    kn_broadcast_submit_args(&b, NULL, &f, &a);
    for (int i = 0; i + 1 < f.n; i += 2) {
        if (strcmp(f.v[i], "choices") == 0)
            assert_string_equal(f.v[i + 1],
                                "[\"無事です\",\"けがをしています\","
                                "\"お迎えが必要です\"]");
        if (strcmp(f.v[i], "nchoices") == 0)
            assert_string_equal(f.v[i + 1], "3");
    }
    kn_argv_free(&f);
    kn_argv_free(&a);
    kn_broadcast_free(&b);
    /* 40 characters of 3 bytes each (120 bytes) are fine: characters count */
    snprintf(json, sizeof(json), "[\"a\",\"%s\"]", forty);
    assert_int_equal(parse_choices(json, 1, &b, err, sizeof(err)), 0);
    kn_broadcast_free(&b);
    snprintf(json, sizeof(json), "[\"a\",\"%sん\"]", forty);
    assert_int_equal(parse_choices(json, 1, &b, err, sizeof(err)), KN_EINVAL);
    assert_non_null(strstr(err, "41 characters"));
    /* only with "ack": true */
    assert_int_equal(parse_choices("[\"a\",\"b\"]", 0, &b, err, sizeof(err)),
                     KN_EINVAL);
    assert_non_null(strstr(err, "\"ack\": true"));
    for (size_t i = 0; i < KN_ARRAY_SIZE(bad); i++) {
        if (parse_choices(bad[i], 1, &b, err, sizeof(err)) != KN_EINVAL)
            fail_msg("choices %s accepted", bad[i]);
        assert_true(strncmp(err, "choices", 7) == 0);
        assert_null(b.choices);
    }

    /* the stored confirmation, and the plain time stored before answers */
    v = kn_ack_value(1700000000123LL, 2, "SEALED");
    assert_string_equal(v, "{\"t\":1700000000123,\"a\":2,\"c\":\"SEALED\"}");
    assert_int_equal(kn_ack_value_parse(v, &ms, &ans, &sealed), 0);
    assert_true(ms == 1700000000123LL && ans == 2);
    assert_string_equal(sealed, "SEALED");
    free(sealed);
    free(v);
    v = kn_ack_value(5, -1, NULL);
    assert_string_equal(v, "{\"t\":5}");
    assert_int_equal(kn_ack_value_parse(v, &ms, &ans, &sealed), 0);
    assert_true(ms == 5 && ans == -1 && sealed == NULL);
    free(v);
    assert_int_equal(kn_ack_value_parse("1700000000000", &ms, &ans, NULL), 0);
    assert_true(ms == 1700000000000LL && ans == -1);
    assert_int_equal(kn_ack_value_parse("x", &ms, &ans, NULL), KN_EINVAL);
    assert_int_equal(kn_ack_value_parse("{}", &ms, &ans, NULL), KN_EINVAL);
    assert_int_equal(kn_ack_value_parse(NULL, &ms, &ans, NULL), KN_EINVAL);

    /* the comment: 200 characters (not bytes), one line */
    {
        char c[1024] = "";
        for (int i = 0; i < 200; i++)
            strcat(c, "あ");
        assert_int_equal(kn_ack_comment_check(c, strlen(c), err, sizeof(err)),
                         0);
        strcat(c, "a");
        assert_int_equal(kn_ack_comment_check(c, strlen(c), err, sizeof(err)),
                         KN_EINVAL);
        assert_non_null(strstr(err, "201 characters"));
        assert_null(strstr(err, "あ"));
        assert_int_equal(kn_ack_comment_check("a\tb", 3, err, sizeof(err)),
                         KN_EINVAL);
        assert_int_equal(kn_ack_comment_check("", 0, err, sizeof(err)), 0);
    }
}

/*
 * A private-use character (gaiji) in a text that reaches phones: refused
 * with the field, Japanese first, its place and an excerpt with 〓; kept
 * with gaiji_ok (a raw XADD, kairan's own messages).  U+F900-U+FAFF (CJK
 * compatibility ideographs: 﨑) are characters and pass.
 */
static void test_gaiji(void **state)
{
    static const struct {
        const char *subject, *body, *extra, *field, *words;
    } bad[] = {
        {"臨時\xee\x80\x80休校", "b", "", "subject",
         "subject: 件名に外字（機種依存文字）が含まれています（「臨時〓休校」"
         "の〓の所、3 文字目）"},
        {"s", "明日は\xef\xa3\xbf休校です。", "", "body",
         "(contains a user-defined character (gaiji: U+F8FF, private use) "
         "at character 4 (\"明日は〓休校です。\")"},
        {"s", "b", ",\"ack\":true,\"choices\":[\"はい\",\"\xf4\x8f\xbf\xbf\"]",
         "choices[1]", "回答の選択肢に外字"},
        {"s", "b",
         ",\"translations\":{\"en\":{\"subject\":\"s\",\"body\":"
         "\"\xf3\xb0\x80\x80\"}}",
         "translations.en.body", "翻訳の本文に外字"},
        {"s", "b",
         ",\"recipients\":[{\"id\":\"r0\",\"email\":\"a@example.jp\"},"
         "{\"id\":\"r1\",\"name\":\"山\xee\x80\x81太郎\","
         "\"email\":\"b@example.jp\"}]",
         "recipients[1].name", "受信者の名前に外字"},
    };
    struct kn_limits ok = LIM;
    ok.gaiji_ok = 1;
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char json[1024], err[1100], field[128];
        struct kn_broadcast b;
        snprintf(json, sizeof(json),
                 "{\"tenant\":\"t\",\"subject\":\"%s\",\"body\":\"%s\","
                 "\"channels\":[\"email\"],\"audience\":{\"groups\":"
                 "[\"g\"]}%s}",
                 bad[i].subject, bad[i].body, bad[i].extra);
        assert_int_equal(kn_broadcast_parse(json, strlen(json), &LIM, &b, err,
                                            sizeof(err), field, sizeof(field)),
                         KN_EINVAL);
        assert_string_equal(field, bad[i].field);
        if (strstr(err, bad[i].words) == NULL)
            fail_msg("%zu: \"%s\" does not say \"%s\"", i, err, bad[i].words);
        assert_int_equal(kn_broadcast_parse(json, strlen(json), &ok, &b, err,
                                            sizeof(err), field, sizeof(field)),
                         0);
        kn_broadcast_free(&b);
    }
    /* a long body: an excerpt around the character, not the whole body */
    {
        char json[4096], err[1100], field[128], body[2400] = "";
        struct kn_broadcast b;
        for (int i = 0; i < 300; i++)
            strcat(body, "あ");
        strcat(body, "\xee\x80\x80");
        for (int i = 0; i < 300; i++)
            strcat(body, "い");
        snprintf(json, sizeof(json),
                 "{\"tenant\":\"t\",\"subject\":\"s\",\"body\":\"%s\","
                 "\"channels\":[\"email\"],\"audience\":{\"groups\":"
                 "[\"g\"]}}",
                 body);
        assert_int_equal(kn_broadcast_parse(json, strlen(json), &LIM, &b, err,
                                            sizeof(err), field, sizeof(field)),
                         KN_EINVAL);
        assert_non_null(strstr(err, "301 文字目"));
        assert_non_null(strstr(err, "web page or another program can be "
                                    "one))")); /* the English, whole */
        assert_non_null(strstr(err, "「…あああああああああああああああ〓"
                                    "いいいいいいいいいいいいいいい…」"));
        assert_null(strstr(err, "ああああああああああああああああああ"));
    }
    /* 﨑 and 髙 are not gaiji */
    {
        struct kn_broadcast b;
        parse_ok("{\"tenant\":\"t\",\"subject\":\"\xef\xa8\x91山先生より\","
                 "\"body\":\"髙橋\",\"channels\":[\"email\"],\"audience\":"
                 "{\"groups\":[\"g\"]}}",
                 &b);
        kn_broadcast_free(&b);
    }
}

/* "translations" (issue 16): parsed, refused with the field, stored. */
static int parse_tr(const char *tr, struct kn_broadcast *b, char *err,
                    size_t errlen, char *field, size_t fieldlen)
{
    char json[4096];
    snprintf(json, sizeof(json),
             "{\"tenant\":\"t\",\"subject\":\"件名\",\"body\":\"本文\","
             "\"channels\":[\"email\"],\"translations\":%s,"
             "\"audience\":{\"groups\":[\"g\"]}}",
             tr);
    return kn_broadcast_parse(json, strlen(json), &LIM, b, err, errlen, field,
                              fieldlen);
}

static void test_translations(void **state)
{
    static const struct {
        const char *tr, *field, *words;
    } bad[] = {
        {"[1]", "translations", "must be an object"},
        {"{\"EN\":{\"subject\":\"s\",\"body\":\"b\"}}", "translations.EN",
         "not a language tag"},
        {"{\"e n\":{\"subject\":\"s\",\"body\":\"b\"}}", "translations.?",
         "not a language tag"},
        {"{\"ja\":{\"subject\":\"s\",\"body\":\"b\"}}", "translations.ja",
         "Japanese"},
        {"{\"ja-JP\":{\"subject\":\"s\",\"body\":\"b\"}}", "translations.ja-JP",
         "Japanese"},
        {"{\"en\":\"hello\"}", "translations.en", "must be {"},
        {"{\"en\":{\"subject\":\"s\"}}", "translations.en.body", "missing"},
        {"{\"en\":{\"body\":\"b\"}}", "translations.en.subject", "missing"},
        {"{\"en\":{\"subject\":\"\",\"body\":\"b\"}}",
         "translations.en.subject", "missing"},
        {"{\"en\":{\"subject\":\"a\\r\\nBcc: x@example.com\",\"body\":\"b\"}}",
         "translations.en.subject", "line break"},
        {"{\"en\":{\"subject\":\"s\",\"body\":1}}", "translations.en.body",
         "must be a string"},
        {"{\"en\":{\"subject\":\"s\",\"body\":\"b\",\"title\":\"t\"}}",
         "translations.en.title", "unknown field"},
        {"{\"a1\":{}}", "translations.a1", "not a language tag"},
        {"{\"aa\":{},\"ab\":{},\"ac\":{},\"ad\":{},\"ae\":{},\"af\":{},"
         "\"ag\":{},\"ah\":{},\"ai\":{}}",
         "translations", "at most 8"},
    };
    struct kn_broadcast b;
    char err[600], field[128], big[1200], out[16];
    struct kn_argv f, a;
    struct kn_translation *tr;
    size_t n;
    const char *langs = NULL, *stored = NULL;
    (void)state;

    assert_int_equal(
        parse_tr("{\"en\":{\"subject\":\"Typhoon\",\"body\":\"No school\"},"
                 "\"pt\":{\"subject\":\"Tufão\",\"body\":\"Sem aula\\n\"},"
                 "\"zh-Hans\":{\"subject\":\"台风\",\"body\":\"停课\"}}",
                 &b, err, sizeof(err), field, sizeof(field)),
        0);
    assert_int_equal(b.ntr, 3);
    assert_string_equal(b.tr[0].lang, "en");
    assert_string_equal(b.tr[1].subject, "Tufão");
    assert_string_equal(b.tr[1].body, "Sem aula\n");
    assert_string_equal(b.tr[2].lang, "zh-Hans");
    kn_argv_init(&f);
    kn_argv_init(&a);
    b.id = kn_xstrdup("b-1");
    kn_broadcast_submit_args(&b, NULL, &f, &a);
    for (int i = 0; i + 1 < f.n; i += 2) {
        if (strcmp(f.v[i], "langs") == 0)
            langs = f.v[i + 1];
        if (strcmp(f.v[i], "translations") == 0)
            stored = f.v[i + 1];
    }
    assert_non_null(langs);
    assert_string_equal(langs, "en,pt,zh-Hans");
    assert_non_null(stored);
    n = kn_translations_load(stored, &tr);
    assert_int_equal(n, 3);
    assert_string_equal(tr[0].lang, "en");
    assert_string_equal(tr[0].subject, "Typhoon");
    assert_string_equal(tr[1].body, "Sem aula\n");
    assert_string_equal(tr[2].lang, "zh-Hans");
    kn_translations_free(tr, n);
    kn_argv_free(&f);
    kn_argv_free(&a);
    kn_broadcast_free(&b);
    /* none: no fields at all */
    assert_int_equal(
        parse_tr("null", &b, err, sizeof(err), field, sizeof(field)), 0);
    assert_int_equal(b.ntr, 0);
    kn_broadcast_free(&b);
    assert_int_equal(kn_translations_load(NULL, &tr), 0);
    assert_null(tr);
    assert_int_equal(kn_translations_load("{\"x\":1,\"EN\":{}}", &tr), 0);
    assert_int_equal(kn_translations_load("not json", &tr), 0);

    /* the same limits as the main text: the subject at most 1000 bytes */
    memset(big, 'x', 1001);
    big[1001] = '\0';
    {
        char tj[1300];
        snprintf(tj, sizeof(tj), "{\"en\":{\"subject\":\"%s\",\"body\":\"b\"}}",
                 big);
        assert_int_equal(
            parse_tr(tj, &b, err, sizeof(err), field, sizeof(field)),
            KN_EINVAL);
        assert_string_equal(field, "translations.en.subject");
        assert_non_null(strstr(err, "at most 1000"));
        big[1000] = '\0';
        snprintf(tj, sizeof(tj), "{\"en\":{\"subject\":\"%s\",\"body\":\"b\"}}",
                 big);
        assert_int_equal(
            parse_tr(tj, &b, err, sizeof(err), field, sizeof(field)), 0);
        kn_broadcast_free(&b);
    }
    for (size_t i = 0; i < KN_ARRAY_SIZE(bad); i++) {
        if (parse_tr(bad[i].tr, &b, err, sizeof(err), field, sizeof(field)) !=
            KN_EINVAL)
            fail_msg("translations %s accepted", bad[i].tr);
        if (strcmp(field, bad[i].field) != 0 || !strstr(err, bad[i].words))
            fail_msg("translations %s: field %s, error %s", bad[i].tr, field,
                     err);
        assert_null(strstr(err, "x@example.com"));
        assert_null(b.tr);
    }

    /* which translation a reader gets */
    assert_int_equal(kn_translation_pick("en,pt", "en", out, sizeof(out)), 1);
    assert_string_equal(out, "en");
    assert_int_equal(kn_translation_pick("en,pt", "pt", out, sizeof(out)), 1);
    assert_string_equal(out, "pt");
    assert_int_equal(kn_translation_pick("en,pt", "vi", out, sizeof(out)), 0);
    assert_string_equal(out, "");
    assert_int_equal(kn_translation_pick("en,pt", "ja", out, sizeof(out)), 0);
    assert_int_equal(kn_translation_pick(NULL, "en", out, sizeof(out)), 0);
    assert_int_equal(kn_translation_pick("", "en", out, sizeof(out)), 0);
    assert_int_equal(kn_translation_pick("en", "e", out, sizeof(out)), 0);
    assert_int_equal(kn_translation_pick("en-GB,en", "en", out, sizeof(out)),
                     1);
    assert_string_equal(out, "en");
    assert_int_equal(
        kn_translation_pick("zh-Hans", "zh-Hant", out, sizeof(out)), 1);
    assert_string_equal(out, "zh-Hans");
    assert_int_equal(
        kn_translation_pick("zh-Hans,zh", "zh-TW", out, sizeof(out)), 1);
    assert_string_equal(out, "zh-Hans");
    assert_int_equal(kn_translation_pick("fil", "fi", out, sizeof(out)), 0);
}

int main(void)
{
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_choices),
        cmocka_unit_test(test_translations),
        cmocka_unit_test(test_full_valid),
        cmocka_unit_test(test_extras_valid),
        cmocka_unit_test(test_names_normalised),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_limits_inclusive),
        cmocka_unit_test(test_reject_small_buffers),
        cmocka_unit_test(test_reject_masks_addresses),
        cmocka_unit_test(test_mask_json),
        cmocka_unit_test(test_id_valid),
        cmocka_unit_test(test_bc_count),
        cmocka_unit_test(test_new_id),
        cmocka_unit_test(test_channel_names),
        cmocka_unit_test(test_gaiji),
        cmocka_unit_test_setup_teardown(test_submit_args, setup_keyring,
                                        teardown_keyring),
        cmocka_unit_test_setup_teardown(test_submit_args_fresh_nonces,
                                        setup_keyring, teardown_keyring),
    };
    size_t nrows = KN_ARRAY_SIZE(cases), n = KN_ARRAY_SIZE(fixed) + nrows;
    struct CMUnitTest *tests = kn_xcalloc(n, sizeof(*tests));
    char **names = kn_xcalloc(nrows, sizeof(*names));
    int failed;

    memcpy(tests, fixed, sizeof(fixed));
    for (size_t i = 0; i < nrows; i++) {
        names[i] = kn_xasprintf("reject: %s", cases[i].name);
        tests[KN_ARRAY_SIZE(fixed) + i] = (struct CMUnitTest){
            .name = names[i],
            .test_func = test_reject,
            .initial_state = (void *)&cases[i],
        };
    }
    failed = _cmocka_run_group_tests("broadcast", tests, n, NULL, NULL);
    for (size_t i = 0; i < nrows; i++)
        free(names[i]);
    free(names);
    free(tests);
    return failed;
}
