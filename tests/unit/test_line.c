/*
 * test_line.c - the LINE adapter's pure parts: UTF-16 counting and cutting
 * (emoji at the 5,000-unit boundary never split), the texts of a message
 * (drill prefix, body over several messages, the note when cut, a
 * personal link in a message of its own), request
 * bodies for push and multicast, retry keys (stable, UUID v5 shaped, equal
 * to Python's uuid.uuid5), answer classification (every status the brief
 * names, ids masked, request id kept), and the webhook helpers (signature
 * known answers, follow/unfollow parsing).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"
#include "adapters/http.h"
#include "adapters/line.h"
#include "model/line_event.h"
#include "adapters/mime.h"
#include "common/kn.h"
#include "common/utf8.h"
#include "model/message.h"

static const char *const emoji = "\xF0\x9F\x98\x80"; /* U+1F600, 2 units */
static const char *const a_ja = "\xE3\x81\x82";      /* あ, 1 unit */

static char *repeat(const char *s, size_t n)
{
    size_t l = strlen(s);
    char *out = malloc(l * n + 1);
    for (size_t i = 0; i < n; i++)
        memcpy(out + i * l, s, l);
    out[l * n] = '\0';
    return out;
}

static void test_utf16(void **state)
{
    char *s;
    assert_int_equal(kn_utf16_len("abc", 3), 3);
    assert_int_equal(kn_utf16_len(a_ja, 3), 1);
    assert_int_equal(kn_utf16_len(emoji, 4), 2);
    /* 4999 units of 'a' then an emoji: the emoji does not fit in 5000. */
    s = malloc(4999 + 5);
    memset(s, 'a', 4999);
    memcpy(s + 4999, emoji, 5);
    assert_int_equal(kn_utf16_len(s, strlen(s)), 5001);
    assert_int_equal(kn_utf16_prefix(s, strlen(s), 5000), 4999);
    assert_int_equal(kn_utf16_prefix(s, strlen(s), 5001), 4999 + 4);
    free(s);
    /* 4998 + emoji = exactly 5000: all of it. */
    s = malloc(4998 + 5);
    memset(s, 'a', 4998);
    memcpy(s + 4998, emoji, 5);
    assert_int_equal(kn_utf16_prefix(s, strlen(s), 5000), 4998 + 4);
    free(s);
}

static struct kn_message msg(const char *subject, const char *body, int drill)
{
    struct kn_message m;
    memset(&m, 0, sizeof(m));
    m.bcast = "b-1";
    m.subject = (char *)subject;
    m.body = (char *)body;
    m.drill = drill;
    return m;
}

static void free_texts(char **t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(t[i]);
}

static void test_texts_short(void **state)
{
    char *t[5];
    struct kn_message m = msg("台風接近", "明日は休校です。\r\n以上", 0);
    size_t n = kn_message_line_texts(m.drill, m.subject, m.body, NULL, t);
    assert_int_equal(n, 2);
    assert_string_equal(t[0], "台風接近");
    assert_string_equal(t[1], "明日は休校です。\n以上"); /* CRLF -> LF */
    free_texts(t, n);

    m = msg("避難訓練", "集合してください", 1);
    n = kn_message_line_texts(m.drill, m.subject, m.body, NULL, t);
    assert_int_equal(n, 2);
    assert_string_equal(t[0], "【訓練】避難訓練");
    assert_non_null(strstr(t[1], "訓練"));
    assert_non_null(strstr(t[1], "集合してください"));
    assert_true(strncmp(t[1], "※これは訓練です。", 9) == 0);
    free_texts(t, n);
}

/* A body of emoji only: every cut lands between two of them. */
static void test_texts_long_emoji(void **state)
{
    char *body = repeat(emoji, 20000); /* 40,000 units */
    char *t[5];
    struct kn_message m = msg("s", body, 0);
    size_t n = kn_message_line_texts(m.drill, m.subject, m.body, NULL, t),
           off = 0;
    assert_int_equal(n, 5);
    for (size_t i = 1; i < n; i++) {
        size_t len = strlen(t[i]);
        assert_true(kn_utf8_valid(t[i], len));
        assert_true(kn_utf16_len(t[i], len) <= KN_MESSAGE_LINE_TEXT_MAX);
        if (i < 4) {
            /* Pieces before the last follow each other in the body. */
            assert_memory_equal(t[i], body + off, len);
            assert_int_equal(len % 4, 0);
            off += len;
        }
    }
    /* The last one is cut with the note. */
    assert_non_null(strstr(t[4], "メール"));
    assert_true(strncmp(t[4], body + off, 4) == 0);
    free_texts(t, n);
    free(body);
}

/* Japanese text with a line break shortly before the limit: the piece
 * ends after it. */
static void test_texts_break(void **state)
{
    char *head = repeat(a_ja, 4900), *tail = repeat(a_ja, 3000);
    char *body = malloc(strlen(head) + strlen(tail) + 2), *t[5];
    struct kn_message m;
    size_t n;
    sprintf(body, "%s\n%s", head, tail);
    m = msg("s", body, 0);
    n = kn_message_line_texts(m.drill, m.subject, m.body, NULL, t);
    assert_int_equal(n, 3);
    assert_int_equal(kn_utf16_len(t[1], strlen(t[1])), 4901);
    assert_int_equal(t[1][strlen(t[1]) - 1], '\n');
    assert_string_equal(t[2], tail);
    free_texts(t, n);
    free(head);
    free(tail);
    free(body);
}

/* A personal link: a message of its own, kept when the body is cut. */
static void test_texts_link(void **state)
{
    const char *link = "https://kairan.example.jp/a/tok123";
    char *body = repeat(a_ja, 30000), *t[5];
    struct kn_message m = msg("s", "短い本文", 0);
    size_t n = kn_message_line_texts(m.drill, m.subject, m.body, link, t);
    assert_int_equal(n, 3);
    assert_string_equal(t[1], "短い本文");
    assert_non_null(strstr(t[2], link));
    assert_non_null(strstr(t[2], "確認しました"));
    free_texts(t, n);

    m = msg("s", body, 0);
    n = kn_message_line_texts(m.drill, m.subject, m.body, link, t);
    assert_int_equal(n, 5);
    assert_non_null(strstr(t[3], "メール")); /* the cut note */
    assert_null(strstr(t[3], link));
    assert_non_null(strstr(t[4], link));
    for (size_t i = 0; i < n; i++)
        assert_true(kn_utf16_len(t[i], strlen(t[i])) <=
                    KN_MESSAGE_LINE_TEXT_MAX);
    free_texts(t, n);
    free(body);
}

static void test_body(void **state)
{
    struct kn_message m = msg("件名", "本文", 0);
    const char *ids[] = {"U0123456789abcdef0123456789abcdef",
                         "Uffffffffffffffffffffffffffffffff"};
    char *b = kn__line_body(&m, NULL, ids, 1, 0);
    json_t *j = json_loads(b, 0, NULL), *msgs;
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "to")), ids[0]);
    msgs = json_object_get(j, "messages");
    assert_int_equal(json_array_size(msgs), 2);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(msgs, 0), "type")),
        "text");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(msgs, 0), "text")),
        "件名");
    json_decref(j);
    free(b);

    b = kn__line_body(&m, NULL, ids, 2, 1);
    j = json_loads(b, 0, NULL);
    assert_true(json_is_array(json_object_get(j, "to")));
    assert_int_equal(json_array_size(json_object_get(j, "to")), 2);
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(j, "to"), 1)), ids[1]);
    json_decref(j);
    free(b);

    /* Invalid UTF-8 cannot become JSON: NULL, never a broken request. */
    m = msg("\xff\xfe", "x", 0);
    assert_null(kn__line_body(&m, NULL, ids, 1, 0));
    assert_null(kn__line_body(&m, NULL, ids, 2, 1));
}

/* A multicast's ids are written as they are when JSON carries them so:
 * the very bytes jansson writes; any other id goes through jansson. */
static void test_body_multicast_bytes(void **state)
{
    struct kn_message m = msg("台風\"警報\"\\", "本文\n\t", 0);
    const char *plain[] = {"U0123456789abcdef0123456789abcdef",
                           "U-_.~ !#$%&'()*+,/:;<=>?@[]^`{|}",
                           "Uffffffffffffffffffffffffffffffff"};
    const char *odd[] = {"U0", "U\"quoted\"", "Ua\\b", "U\x01\x7f", "U山田"};
    char *texts[KN_MESSAGE_LINE_TEXTS], *b, *want;
    size_t nt = kn_message_line_texts(0, m.subject, m.body, NULL, texts);
    json_t *msgs = json_array(), *to = json_array(), *o, *j;
    (void)state;
    for (size_t i = 0; i < nt; i++) {
        json_array_append_new(
            msgs, json_pack("{s:s, s:s}", "type", "text", "text", texts[i]));
        free(texts[i]);
    }
    for (size_t i = 0; i < 3; i++)
        json_array_append_new(to, json_string(plain[i]));
    o = json_pack("{s:o, s:o}", "to", to, "messages", msgs);
    want = json_dumps(o, JSON_COMPACT);
    b = kn__line_body(&m, NULL, plain, 3, 1);
    assert_string_equal(b, want);
    free(b);
    free(want);
    json_decref(o);

    /* Ids that need escaping (or are not ASCII): still exact values. */
    b = kn__line_body(&m, NULL, odd, 5, 1);
    j = json_loads(b, 0, NULL);
    assert_non_null(j);
    for (size_t i = 0; i < 5; i++)
        assert_string_equal(
            json_string_value(json_array_get(json_object_get(j, "to"), i)),
            odd[i]);
    json_decref(j);
    free(b);
}

static int uuid_shaped(const char *u)
{
    if (strlen(u) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (u[i] != '-')
                return 0;
        } else if (!((u[i] >= '0' && u[i] <= '9') ||
                     (u[i] >= 'a' && u[i] <= 'f'))) {
            return 0;
        }
    }
    return u[14] == '5' && strchr("89ab", u[19]) != NULL;
}

static void test_retry_key(void **state)
{
    char a[37], b[37], c[37];
    kn__line_retry_key("b-1\nline:p0.0", a);
    kn__line_retry_key("b-1\nline:p0.0", b);
    kn__line_retry_key("b-2\nline:p0.0", c);
    assert_true(uuid_shaped(a));
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    /* Python: uuid.uuid5(UUID("3c0a8f5e-2b7d-4e61-9a4f-6d1c8b2e7f90"),
     * "b-1\nline:p0.0") */
    assert_string_equal(a, "2e2fd27c-c577-52ef-ad3e-35d7c220c876");
    kn__line_retry_key("abc", a);
    assert_string_equal(a, "f19c098f-cbb9-5e53-bf05-a3988358865b");
}

/* ---- classification ---- */

static struct kn_result classify(long status, const char *body, const char *h1,
                                 const char *h2, char *detail, size_t len)
{
    struct kn_http_resp resp;
    struct kn_result r;
    memset(&resp, 0, sizeof(resp));
    resp.rc = CURLE_OK;
    resp.status = status;
    resp.body = body;
    resp.bodylen = strlen(body);
    resp._headers = curl_slist_append(NULL, "X-Line-Request-Id: rid-123");
    if (h1)
        resp._headers = curl_slist_append(resp._headers, h1);
    if (h2)
        resp._headers = curl_slist_append(resp._headers, h2);
    kn__line_classify(&resp, &r, detail, len);
    curl_slist_free_all(resp._headers);
    return r;
}

static void test_classify(void **state)
{
    char d[640];
    struct kn_result r;

    r = classify(200, "{\"sentMessages\":[{\"id\":\"1\"}]}", NULL, NULL, d,
                 sizeof(d));
    assert_int_equal(r.status, KN_DELIVERED);
    assert_non_null(strstr(r.detail, "rid-123"));

    r = classify(409, "{\"message\":\"The retry key is already accepted\"}",
                 "X-Line-Accepted-Request-Id: first-999", NULL, d, sizeof(d));
    assert_int_equal(r.status, KN_DELIVERED);
    assert_non_null(strstr(r.detail, "accepted earlier"));
    assert_non_null(strstr(r.detail, "first-999"));

    r = classify(409, "{\"message\":\"conflict\"}", NULL, NULL, d, sizeof(d));
    assert_int_equal(r.status, KN_PERMFAIL);

    /* LINE's documented 409 on push/multicast, its message, without the
     * X-Line-Accepted-Request-Id header (not in the OpenAPI spec; a
     * proxy may drop it): accepted earlier all the same, never a failure
     * that sends the notice again on the next channel. */
    r = classify(409, "{\"message\":\"The retry key is already accepted\"}",
                 NULL, NULL, d, sizeof(d));
    assert_int_equal(r.status, KN_DELIVERED);
    assert_non_null(strstr(r.detail, "accepted earlier"));

    /* The words elsewhere (a proxy's page, one of the details) are not
     * LINE's answer: a 409 like that is a failure, as any other 409. */
    r = classify(409, "<html>409: The retry key is already accepted</html>",
                 NULL, NULL, d, sizeof(d));
    assert_int_equal(r.status, KN_PERMFAIL);
    r = classify(409,
                 "{\"message\":\"conflict\",\"details\":[{\"message\":"
                 "\"The retry key is already accepted\"}]}",
                 NULL, NULL, d, sizeof(d));
    assert_int_equal(r.status, KN_PERMFAIL);

    r = classify(400,
                 "{\"message\":\"The request body has 1 error(s)\",\"details\":"
                 "[{\"message\":\"Length must be between 0 and 5000\","
                 "\"property\":\"messages[0].text\"}]}",
                 NULL, NULL, d, sizeof(d));
    assert_int_equal(r.status, KN_PERMFAIL);
    assert_false(r.auth);
    assert_non_null(strstr(r.detail, "The request body has 1 error(s)"));
    assert_non_null(strstr(r.detail, "messages[0].text: Length must be"));
    assert_non_null(strstr(r.detail, "rid-123"));

    /* A user id in LINE's text never reaches the detail. */
    r = classify(400,
                 "{\"message\":\"Failed to send messages to "
                 "U0123456789abcdef0123456789abcdef\"}",
                 NULL, NULL, d, sizeof(d));
    assert_null(strstr(r.detail, "0123456789abcdef0123456789abcdef"));
    assert_non_null(strstr(r.detail, "U012***"));

    r = classify(401, "{\"message\":\"Authentication failed.\"}", NULL, NULL, d,
                 sizeof(d));
    assert_int_equal(r.status, KN_TEMPFAIL);
    assert_true(r.auth);

    r = classify(403, "{\"message\":\"not allowed\"}", NULL, NULL, d,
                 sizeof(d));
    assert_int_equal(r.status, KN_PERMFAIL);
    assert_true(r.auth);

    r = classify(413, "{\"message\":\"too large\"}", NULL, NULL, d, sizeof(d));
    assert_int_equal(r.status, KN_PERMFAIL);

    r = classify(429,
                 "{\"message\":\"The API rate limit has been exceeded. Try "
                 "again later.\"}",
                 NULL, NULL, d, sizeof(d));
    assert_int_equal(r.status, KN_TEMPFAIL);
    assert_int_equal(r.retry_after_ms, 1000);
    assert_false(r.quota);

    r = classify(429,
                 "{\"message\":\"The API rate limit has been exceeded. Try "
                 "again later.\"}",
                 "Retry-After: 3", NULL, d, sizeof(d));
    assert_int_equal(r.retry_after_ms, 3000);

    r = classify(429, "{\"message\":\"You have reached your monthly limit.\"}",
                 NULL, NULL, d, sizeof(d));
    assert_int_equal(r.status, KN_PERMFAIL);
    assert_true(r.quota);
    assert_non_null(strstr(r.detail, "quota"));

    r = classify(429, "{\"message\":\"concurrent jobs limit\"}", NULL, NULL, d,
                 sizeof(d));
    assert_int_equal(r.status, KN_TEMPFAIL);
    assert_false(r.quota);

    r = classify(500, "{\"message\":\"Internal Server Error\"}", NULL, NULL, d,
                 sizeof(d));
    assert_int_equal(r.status, KN_TEMPFAIL);
    assert_non_null(strstr(r.detail, "rid-123"));

    r = classify(502, "<html>bad gateway</html>", NULL, NULL, d, sizeof(d));
    assert_int_equal(r.status, KN_TEMPFAIL);
}

/* LINE's text (or a proxy's page echoing the request) with user ids
 * across the detail's cut: every id masked, none left half in clear. */
static void test_classify_cut_ids(void **state)
{
    char d[640], body[8192], *p;
    struct kn_result r;
    size_t o;

    /* ErrorResponse with a detail per recipient */
    o = (size_t)snprintf(body, sizeof(body),
                         "{\"message\":\"The request body has 40 "
                         "error(s)\",\"details\":[");
    for (int i = 0; i < 40; i++)
        o += (size_t)snprintf(body + o, sizeof(body) - o,
                              "%s{\"message\":\"not a friend: "
                              "U%02d23456789abcdef0123456789abcdef\","
                              "\"property\":\"to[%d]\"}",
                              i ? "," : "", i, i);
    snprintf(body + o, sizeof(body) - o, "]}");
    r = classify(400, body, NULL, NULL, d, sizeof(d));
    print_message("details: %s\n", r.detail);
    assert_int_equal(r.status, KN_PERMFAIL);
    assert_null(strstr(r.detail, "456789abc"));
    assert_null(strstr(r.detail, "23456789"));

    /* not JSON: the start of the body, a proxy echoing the request */
    p = body;
    p += sprintf(p, "Bad Request: {\"to\":[");
    for (int i = 0; i < 40; i++)
        p += sprintf(p, "%s\"U%02d23456789abcdef0123456789abcdef\"",
                     i ? "," : "", i);
    sprintf(p, "]}");
    r = classify(400, body, NULL, NULL, d, sizeof(d));
    print_message("page: %s\n", r.detail);
    assert_null(strstr(r.detail, "456789abc"));
    assert_null(strstr(r.detail, "23456789"));
}

/* LINE's request id headers are LINE's text too: an id in them is masked
 * before the value is cut to its place in the detail. */
static void test_classify_header_ids(void **state)
{
    char d[640];
    struct kn_result r;
    struct kn_http_resp resp;
    memset(&resp, 0, sizeof(resp));
    resp.rc = CURLE_OK;
    resp.status = 500;
    resp.body = "{}";
    resp.bodylen = 2;
    resp._headers = curl_slist_append(
        NULL, "X-Line-Request-Id: 0123456789012345678901234567890123456789"
              "U0123456789abcdef0123456789abcdef");
    kn__line_classify(&resp, &r, d, sizeof(d));
    curl_slist_free_all(resp._headers);
    print_message("rid: %s\n", r.detail);
    assert_null(strstr(r.detail, "3456789ab"));
    r = classify(409, "{}",
                 "X-Line-Accepted-Request-Id: 01234567890123456789012345678901"
                 "23456789U0123456789abcdef0123456789abcdef",
                 NULL, d, sizeof(d));
    print_message("accepted: %s\n", r.detail);
    assert_null(strstr(r.detail, "3456789ab"));
}

static void test_classify_transport(void **state)
{
    struct kn_http_resp resp;
    struct kn_result r;
    char d[256];
    memset(&resp, 0, sizeof(resp));
    resp.rc = CURLE_OPERATION_TIMEDOUT;
    resp.error = "Operation timed out after 30000 milliseconds";
    resp.body = "";
    kn__line_classify(&resp, &r, d, sizeof(d));
    assert_int_equal(r.status, KN_TEMPFAIL);
    assert_non_null(strstr(r.detail, "timed out"));
    resp.rc = CURLE_ABORTED_BY_CALLBACK;
    kn__line_classify(&resp, &r, d, sizeof(d));
    assert_ptr_equal(r.detail, kn_detail_aborted);
}

static void test_mask(void **state)
{
    char s[] = "to U0123456789abcdef0123456789abcdef and "
               "Cffffffffffffffffffffffffffffffff, not U0123";
    kn__line_mask_ids(s);
    assert_string_equal(s, "to U012*** and Cfff***, not U0123");
}

/* ---- webhook ---- */

static const char hook_body[] =
    "{\"destination\":\"Uffffffffffffffffffffffffffffffff\",\"events\":[]}";

static void test_webhook_verify(void **state)
{
    size_t n = strlen(hook_body);
    /* Known answers from Python's hmac + base64. */
    assert_true(kn_line_webhook_verify(
        "abc", hook_body, n, "p9ElufJ4LIwIHA1kEOxFEaSmmUOT0/uOHFFe5esgbfQ="));
    assert_true(kn_line_webhook_verify(
        "kk", hook_body, n, "J88SW89+KiuymQuAcTSOxR8ySWs3FHzH3EA9pFsX6N8="));
    /* base64url is not what LINE sends. */
    assert_false(kn_line_webhook_verify(
        "abc", hook_body, n, "p9ElufJ4LIwIHA1kEOxFEaSmmUOT0_uOHFFe5esgbfQ="));
    /* Wrong secret, changed body, missing pieces. */
    assert_false(kn_line_webhook_verify(
        "abd", hook_body, n, "p9ElufJ4LIwIHA1kEOxFEaSmmUOT0/uOHFFe5esgbfQ="));
    assert_false(
        kn_line_webhook_verify("abc", hook_body, n - 1,
                               "p9ElufJ4LIwIHA1kEOxFEaSmmUOT0/uOHFFe5esgbfQ="));
    assert_false(kn_line_webhook_verify(
        "", hook_body, n, "p9ElufJ4LIwIHA1kEOxFEaSmmUOT0/uOHFFe5esgbfQ="));
    assert_false(kn_line_webhook_verify("abc", hook_body, n, ""));
    assert_false(kn_line_webhook_verify("abc", hook_body, n, NULL));
    assert_false(kn_line_webhook_verify("abc", hook_body, n, "p9E="));
}

struct seen {
    int n;
    char type[4][16];
    char uid[4][40];
    int unblocked[4];
    int64_t ts[4];
};

static void on_event(const char *type, const char *uid, int unblocked,
                     int64_t ts, void *arg)
{
    struct seen *s = arg;
    if (s->n < 4) {
        s->ts[s->n] = ts;
        snprintf(s->type[s->n], 16, "%s", type);
        snprintf(s->uid[s->n], 40, "%s", uid);
        s->unblocked[s->n] = unblocked;
    }
    s->n++;
}

static void test_webhook_events(void **state)
{
    const char *body =
        "{\"destination\":\"Uffffffffffffffffffffffffffffffff\",\"events\":["
        "{\"type\":\"unfollow\",\"mode\":\"active\",\"timestamp\":1,"
        "\"source\":{\"type\":\"user\",\"userId\":"
        "\"U0123456789abcdef0123456789abcdef\"}},"
        "{\"type\":\"follow\",\"source\":{\"type\":\"user\",\"userId\":"
        "\"U1111111111111111111111111111111a\"},\"follow\":{\"isUnblocked\":"
        "true},\"replyToken\":\"x\"},"
        "{\"type\":\"follow\",\"timestamp\":1700000000123,\"source\":{"
        "\"type\":\"user\",\"userId\":"
        "\"U2222222222222222222222222222222b\"},\"follow\":{\"isUnblocked\":"
        "false}},"
        "{\"type\":\"message\",\"source\":{\"type\":\"user\",\"userId\":"
        "\"U3333333333333333333333333333333c\"}},"
        "{\"type\":\"unfollow\",\"source\":{\"type\":\"group\",\"groupId\":"
        "\"C3333333333333333333333333333333c\"}},"
        "{\"type\":\"unfollow\",\"source\":{\"type\":\"user\",\"userId\":"
        "\"not-an-id\"}}]}";
    struct seen s;
    memset(&s, 0, sizeof(s));
    assert_int_equal(kn_line_webhook_events(body, strlen(body), on_event, &s),
                     3);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.type[0], "unfollow");
    assert_string_equal(s.uid[0], "U0123456789abcdef0123456789abcdef");
    assert_int_equal(s.unblocked[0], 0);
    assert_string_equal(s.type[1], "follow");
    assert_int_equal(s.unblocked[1], 1);
    assert_string_equal(s.type[2], "follow");
    assert_int_equal(s.unblocked[2], 0);
    /* The event time: as given, 0 when absent. */
    assert_int_equal(s.ts[0], 1);
    assert_int_equal(s.ts[1], 0);
    assert_int_equal(s.ts[2], 1700000000123LL);

    memset(&s, 0, sizeof(s));
    assert_int_equal(
        kn_line_webhook_events(hook_body, strlen(hook_body), on_event, &s), 0);
    assert_int_equal(kn_line_webhook_events("not json", 8, on_event, &s),
                     KN_EINVAL);
    assert_int_equal(kn_line_webhook_events("[1]", 3, on_event, &s), KN_EINVAL);
    assert_int_equal(s.n, 0);
}

struct msgs {
    int n;
    char text[4][64];
    int has_token[4];
};

static void on_msg(const char *user_id, const char *text,
                   const char *reply_token, void *arg)
{
    struct msgs *m = arg;
    (void)user_id;
    if (m->n < 4) {
        snprintf(m->text[m->n], sizeof(m->text[0]), "%s", text);
        m->has_token[m->n] = reply_token != NULL;
    }
    m->n++;
}

static void test_webhook_messages(void **state)
{
    const char *body =
        "{\"events\":["
        "{\"type\":\"message\",\"replyToken\":\"rt1\",\"source\":{"
        "\"type\":\"user\",\"userId\":"
        "\"U0123456789abcdef0123456789abcdef\"},\"message\":{\"type\":"
        "\"text\",\"text\":\"1234 5678\"}},"
        "{\"type\":\"message\",\"source\":{\"type\":\"user\",\"userId\":"
        "\"U0123456789abcdef0123456789abcdef\"},\"message\":{\"type\":"
        "\"sticker\"}},"
        "{\"type\":\"message\",\"replyToken\":\"rt2\",\"source\":{"
        "\"type\":\"group\",\"groupId\":\"C1\",\"userId\":"
        "\"U0123456789abcdef0123456789abcdef\"},\"message\":{\"type\":"
        "\"text\",\"text\":\"12345678\"}},"
        "{\"type\":\"message\",\"deliveryContext\":{\"isRedelivery\":"
        "true},\"source\":{\"type\":\"user\",\"userId\":"
        "\"U0123456789abcdef0123456789abcdef\"},\"message\":{\"type\":"
        "\"text\",\"text\":\"12345678\"}},"
        "{\"type\":\"message\",\"source\":{\"type\":\"user\",\"userId\":"
        "\"U0123456789abcdef0123456789abcdef\"},\"message\":{\"type\":"
        "\"text\",\"text\":\"hello\"}}]}";
    struct msgs m;
    char code[KN_LINE_CODE_DIGITS + 1];
    (void)state;
    memset(&m, 0, sizeof(m));
    assert_int_equal(kn_line_webhook_messages(body, strlen(body), on_msg, &m),
                     2);
    assert_string_equal(m.text[0], "1234 5678");
    assert_int_equal(m.has_token[0], 1);
    assert_string_equal(m.text[1], "hello");
    assert_int_equal(m.has_token[1], 0);
    assert_int_equal(kn_line_webhook_messages("[]", 2, on_msg, &m), KN_EINVAL);

    assert_int_equal(kn_line_link_code("1234-5678", code, sizeof(code)), 0);
    assert_string_equal(code, "12345678");
    /* full-width digits and the ideographic space, as IMEs type them */
    assert_int_equal(kn_line_link_code("\xef\xbc\x91\xef\xbc\x92\xe3\x80\x80"
                                       "345678\xef\xbc\x99",
                                       code, sizeof(code)),
                     -1); /* 9 digits */
    assert_int_equal(kn_line_link_code("\xef\xbc\x91\xef\xbc\x92\xe3\x80\x80"
                                       "34567\xef\xbc\x99",
                                       code, sizeof(code)),
                     0);
    assert_string_equal(code, "12345679");
    assert_int_equal(kn_line_link_code("1234567", code, sizeof(code)), -1);
    assert_int_equal(kn_line_link_code("12345678a", code, sizeof(code)), -1);
    assert_int_equal(kn_line_link_code("", code, sizeof(code)), -1);
    assert_int_equal(kn_line_link_code("12345678", code, 8), -1);
}

static void test_stats_other_adapter(void **state)
{
    struct kn_adapter a;
    struct kn_line_stats st;
    memset(&a, 0, sizeof(a));
    a.ops = &kn_adapter_smtp;
    kn_line_stats(&a, &st);
    assert_int_equal(st.token_issued, 0);
    assert_int_equal(kn_line_token_refreshes(&a), 0);
    assert_ptr_equal(kn_adapter_find("line"), &kn_adapter_line);
    assert_int_equal(kn_adapter_line.max_batch, 500);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf16),
        cmocka_unit_test(test_texts_short),
        cmocka_unit_test(test_texts_long_emoji),
        cmocka_unit_test(test_texts_break),
        cmocka_unit_test(test_texts_link),
        cmocka_unit_test(test_body),
        cmocka_unit_test(test_body_multicast_bytes),
        cmocka_unit_test(test_retry_key),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_classify_cut_ids),
        cmocka_unit_test(test_classify_header_ids),
        cmocka_unit_test(test_classify_transport),
        cmocka_unit_test(test_mask),
        cmocka_unit_test(test_webhook_verify),
        cmocka_unit_test(test_webhook_events),
        cmocka_unit_test(test_webhook_messages),
        cmocka_unit_test(test_stats_other_adapter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
