/*
 * test_push.c - the push adapter's pure parts and its token rules:
 * FCM and APNs payloads (fields, priorities, TTL, the 4096-byte limit with
 * Japanese text cut on a character boundary), the answer classification
 * tables of both providers, apns-collapse-id hashing, the stable apns-id
 * UUID, Retry-After, scrubbing, the FCM access-token and APNs provider-
 * token renewal rules, and the APNs client renewing its JWT on a fake
 * clock (kn__fake_now_ms) against a port where nothing listens.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* adapter.h comes through push.h (its mail part has no include guard). */
#include "adapters/jwt.h"
#include "adapters/push.h"
#include "model/address.h"
#include "common/kn.h"
#include "common/log.h"
#include "config/config.h"

#define NOW_MS 1795308258000LL /* 2026-11-22 */
#define APNS_TOKEN                                                             \
    "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
#define FCM_TOKEN "dXNlcjE6APA91bH-example_token:with-colons_0123456789"

static const char jp_line[] =
    "台風接近に伴い、明日は臨時休校とします。ご家庭で安全にお過ごしください。";

static struct kn_message msg(int urgent, const char *body)
{
    struct kn_message m;
    memset(&m, 0, sizeof(m));
    m.bcast = "b-20261122-1a2b3c4d5e6f";
    m.tenant = "sakura-hs";
    m.category = "emergency";
    m.subject = "【緊急】台風接近に伴う臨時休校";
    m.body = (char *)body;
    m.urgent = urgent;
    m.created_ms = NOW_MS;
    m.expires_ms = NOW_MS + 3600 * 1000 + 500;
    return m;
}

static struct kn_job job_for(const struct kn_message *m, const char *platform,
                             const char *token)
{
    struct kn_job j;
    memset(&j, 0, sizeof(j));
    j.msg = m;
    j.channel = "push";
    j.rcpt = "r-1";
    j.bindex = "0123456789abcdef0123456789abcdef";
    j.addr = token;
    j.platform = platform;
    j.attempt = 1;
    j.key = "b-20261122-1a2b3c4d5e6f:push:0123456789abcdef";
    return j;
}

static char *long_japanese(size_t lines)
{
    size_t n = strlen(jp_line);
    char *s = malloc(n * lines + 1);
    for (size_t i = 0; i < lines; i++)
        memcpy(s + i * n, jp_line, n);
    s[n * lines] = '\0';
    return s;
}

/* 1 if s is valid UTF-8 (jansson refuses anything else). */
static int utf8_ok(const char *s)
{
    json_t *j = json_string(s);
    json_decref(j);
    return j != NULL;
}

/* ---- FCM payload ---- */

static void test_fcm_payload(void **state)
{
    struct kn_message m = msg(1, "保護者各位\n明日は休校です。");
    struct kn_job job = job_for(&m, "fcm", FCM_TOKEN);
    char *out = NULL;
    size_t len = 0;
    json_t *j, *mm, *v;
    assert_int_equal(kn__fcm_payload(&job, NOW_MS, &out, &len), 0);
    assert_int_equal(strlen(out), len);
    j = json_loads(out, 0, NULL);
    assert_non_null(j);
    mm = json_object_get(j, "message");
    assert_string_equal(json_string_value(json_object_get(mm, "token")),
                        FCM_TOKEN);
    assert_null(json_object_get(mm, "topic"));
    v = json_object_get(mm, "notification");
    assert_string_equal(json_string_value(json_object_get(v, "title")),
                        m.subject);
    assert_string_equal(json_string_value(json_object_get(v, "body")), m.body);
    v = json_object_get(mm, "data");
    assert_string_equal(json_string_value(json_object_get(v, "bc")), m.bcast);
    assert_string_equal(json_string_value(json_object_get(v, "kind")),
                        "emergency");
    {
        /* data values are strings only (FCM refuses anything else) */
        const char *k;
        json_t *dv;
        json_object_foreach(v, k, dv) assert_true(json_is_string(dv));
    }
    v = json_object_get(mm, "android");
    assert_string_equal(json_string_value(json_object_get(v, "priority")),
                        "HIGH");
    assert_string_equal(json_string_value(json_object_get(v, "ttl")), "3600s");
    assert_string_equal(json_string_value(json_object_get(v, "collapse_key")),
                        m.bcast);
    v = json_object_get(json_object_get(mm, "apns"), "headers");
    assert_string_equal(json_string_value(json_object_get(v, "apns-priority")),
                        "10");
    assert_string_equal(json_string_value(json_object_get(v, "apns-push-type")),
                        "alert");
    json_decref(j);
    free(out);

    /* Normal priority, and a TTL that never goes negative. */
    m.urgent = 0;
    assert_int_equal(kn__fcm_payload(&job, m.expires_ms + 5000, &out, &len), 0);
    j = json_loads(out, 0, NULL);
    mm = json_object_get(j, "message");
    v = json_object_get(mm, "android");
    assert_string_equal(json_string_value(json_object_get(v, "priority")),
                        "NORMAL");
    assert_string_equal(json_string_value(json_object_get(v, "ttl")), "0s");
    v = json_object_get(json_object_get(mm, "apns"), "headers");
    assert_string_equal(json_string_value(json_object_get(v, "apns-priority")),
                        "5");
    json_decref(j);
    free(out);
}

static void test_drill_marked(void **state)
{
    struct kn_message m = msg(0, "避難訓練です。");
    struct kn_job job = job_for(&m, "apns", APNS_TOKEN);
    char *out = NULL;
    size_t len;
    json_t *j, *alert;
    m.drill = 1;
    assert_int_equal(kn__apns_payload(&job, &out, &len), 0);
    j = json_loads(out, 0, NULL);
    alert = json_object_get(json_object_get(j, "aps"), "alert");
    assert_non_null(
        strstr(json_string_value(json_object_get(alert, "title")), "【訓練】"));
    assert_non_null(
        strstr(json_string_value(json_object_get(alert, "body")), "訓練"));
    json_decref(j);
    free(out);
}

/* A long Japanese body is cut to fit 4096 bytes: valid UTF-8, a prefix of
 * the original followed by "…", and as long as possible. */
static void check_cut(const char *payload, size_t len, const char *original,
                      const char *got_body)
{
    size_t n = strlen(got_body), e = strlen("…");
    assert_true(len <= KN_PUSH_MAX_PAYLOAD);
    assert_true(len > KN_PUSH_MAX_PAYLOAD - 3 * 8); /* little room wasted */
    assert_true(utf8_ok(got_body));
    assert_true(n > e);
    assert_string_equal(got_body + n - e, "…");
    assert_memory_equal(got_body, original, n - e);
    (void)payload;
}

static void test_fcm_cut_japanese(void **state)
{
    char *body = long_japanese(100); /* ~10 KB */
    struct kn_message m = msg(1, body);
    struct kn_job job = job_for(&m, "fcm", FCM_TOKEN);
    char *out = NULL;
    size_t len;
    json_t *j, *n;
    assert_int_equal(kn__fcm_payload(&job, NOW_MS, &out, &len), 0);
    assert_int_equal(strlen(out), len);
    j = json_loads(out, 0, NULL);
    assert_non_null(j);
    n = json_object_get(json_object_get(j, "message"), "notification");
    check_cut(out, len, body, json_string_value(json_object_get(n, "body")));
    /* The title is whole: only the body was cut. */
    assert_string_equal(json_string_value(json_object_get(n, "title")),
                        m.subject);
    json_decref(j);
    free(out);
    free(body);
}

static void test_apns_payload_and_cut(void **state)
{
    char *body = long_japanese(100);
    struct kn_message m = msg(1, "短い本文");
    struct kn_job job = job_for(&m, "apns", APNS_TOKEN);
    char *out = NULL;
    size_t len;
    json_t *j, *aps, *alert;
    assert_int_equal(kn__apns_payload(&job, &out, &len), 0);
    j = json_loads(out, 0, NULL);
    aps = json_object_get(j, "aps");
    alert = json_object_get(aps, "alert");
    assert_string_equal(json_string_value(json_object_get(alert, "title")),
                        m.subject);
    assert_string_equal(json_string_value(json_object_get(alert, "body")),
                        "短い本文");
    assert_string_equal(json_string_value(json_object_get(aps, "sound")),
                        "default");
    assert_string_equal(json_string_value(json_object_get(j, "bc")), m.bcast);
    json_decref(j);
    free(out);

    m.urgent = 0; /* no sound for normal notices */
    assert_int_equal(kn__apns_payload(&job, &out, &len), 0);
    j = json_loads(out, 0, NULL);
    assert_null(json_object_get(json_object_get(j, "aps"), "sound"));
    json_decref(j);
    free(out);

    m.body = body;
    assert_int_equal(kn__apns_payload(&job, &out, &len), 0);
    j = json_loads(out, 0, NULL);
    alert = json_object_get(json_object_get(j, "aps"), "alert");
    check_cut(out, len, body,
              json_string_value(json_object_get(alert, "body")));
    json_decref(j);
    free(out);
    free(body);
}

/* ---- the personal confirmation link (ack broadcasts) ---- */

#define ACK_LINK                                                               \
    "https://kairan.example.jp/a/"                                             \
    "Yi0yMDI2MTEyMi0xYTJiM2M0ZDVlNmZ8ci0x.0123456789abcdef0123456789abcdef"
#define ACK_WORDS                                                              \
    "確認のため、次のリンクを開いて「確認しました」を押してください。"

/* The text ends with the words and the whole link; what comes before is
 * a prefix of want_body, cut with "…" only when cut. */
static void check_link_text(const char *text, const char *want_body)
{
    const char *tail = "\n\n" ACK_WORDS "\n" ACK_LINK;
    size_t n = strlen(text), t = strlen(tail), e = strlen("…"), kept;
    assert_true(n >= t);
    assert_string_equal(text + n - t, tail);
    kept = n - t;
    if (kept == strlen(want_body)) {
        assert_memory_equal(text, want_body, kept);
    } else {
        assert_true(kept >= e && kept < strlen(want_body) + e);
        assert_memory_equal(text + kept - e, "…", e);
        assert_memory_equal(text, want_body, kept - e);
    }
}

static void test_fcm_link(void **state)
{
    char *big = long_japanese(100); /* ~10 KB: must be cut */
    const char *bodies[] = {"保護者各位\n明日は休校です。", big};
    for (size_t i = 0; i < 2; i++) {
        struct kn_message m = msg(1, bodies[i]);
        struct kn_job job = job_for(&m, "fcm", FCM_TOKEN);
        char *out = NULL;
        size_t len;
        json_t *j, *mm, *data, *n;
        m.ack = 1;
        job.link = ACK_LINK;
        assert_int_equal(kn__fcm_payload(&job, NOW_MS, &out, &len), 0);
        assert_true(len <= KN_PUSH_MAX_PAYLOAD);
        j = json_loads(out, 0, NULL);
        assert_non_null(j);
        mm = json_object_get(j, "message");
        data = json_object_get(mm, "data");
        assert_string_equal(
            json_string_value(json_object_get(data, "kairan_ack_url")),
            ACK_LINK);
        assert_string_equal(json_string_value(json_object_get(data, "bc")),
                            m.bcast);
        n = json_object_get(mm, "notification");
        assert_string_equal(json_string_value(json_object_get(n, "title")),
                            m.subject);
        check_link_text(json_string_value(json_object_get(n, "body")),
                        bodies[i]);
        if (i == 1) /* cut as little as possible: the payload is full */
            assert_true(len > KN_PUSH_MAX_PAYLOAD - 8);
        json_decref(j);
        free(out);
    }
    free(big);
}

static void test_apns_link(void **state)
{
    char *big = long_japanese(100);
    const char *bodies[] = {"短い本文", big};
    for (size_t i = 0; i < 2; i++) {
        struct kn_message m = msg(1, bodies[i]);
        struct kn_job job = job_for(&m, "apns", APNS_TOKEN);
        char *out = NULL;
        size_t len;
        json_t *j, *alert;
        m.ack = 1;
        m.drill = 1;
        job.link = ACK_LINK;
        assert_int_equal(kn__apns_payload(&job, &out, &len), 0);
        assert_true(len <= KN_PUSH_MAX_PAYLOAD);
        j = json_loads(out, 0, NULL);
        assert_non_null(j);
        /* a custom key beside "aps" */
        assert_string_equal(
            json_string_value(json_object_get(j, "kairan_ack_url")), ACK_LINK);
        assert_null(
            json_object_get(json_object_get(j, "aps"), "kairan_ack_url"));
        alert = json_object_get(json_object_get(j, "aps"), "alert");
        assert_non_null(strstr(
            json_string_value(json_object_get(alert, "title")), "【訓練】"));
        {
            char *want = kn_xasprintf("※これは訓練です。(This is a drill.)\n%s",
                                      bodies[i]);
            check_link_text(json_string_value(json_object_get(alert, "body")),
                            want);
            free(want);
        }
        json_decref(j);
        free(out);
    }
    free(big);
}

/* Without an ack link: no key, no confirmation words. */
static void test_push_no_link(void **state)
{
    struct kn_message m = msg(1, "本文");
    struct kn_job job = job_for(&m, "apns", APNS_TOKEN);
    char *out = NULL;
    size_t len;
    assert_int_equal(kn__apns_payload(&job, &out, &len), 0);
    assert_null(strstr(out, "kairan_ack_url"));
    assert_null(strstr(out, "確認しました"));
    free(out);
    job = job_for(&m, "fcm", FCM_TOKEN);
    assert_int_equal(kn__fcm_payload(&job, NOW_MS, &out, &len), 0);
    assert_null(strstr(out, "kairan_ack_url"));
    assert_null(strstr(out, "確認しました"));
    free(out);
}

/* A title so long that the body must go: the link stays (the body is then
 * only the link text), the title is cut. */
static void test_link_survives_title_cut(void **state)
{
    char *huge = long_japanese(80);
    struct kn_message m = msg(1, "本文");
    struct kn_job job = job_for(&m, "apns", APNS_TOKEN);
    char *out = NULL;
    size_t len;
    json_t *j, *alert;
    m.subject = huge;
    job.link = ACK_LINK;
    assert_int_equal(kn__apns_payload(&job, &out, &len), 0);
    assert_true(len <= KN_PUSH_MAX_PAYLOAD);
    j = json_loads(out, 0, NULL);
    alert = json_object_get(json_object_get(j, "aps"), "alert");
    assert_string_equal(json_string_value(json_object_get(alert, "body")),
                        "\n\n" ACK_WORDS "\n" ACK_LINK);
    assert_string_equal(json_string_value(json_object_get(j, "kairan_ack_url")),
                        ACK_LINK);
    json_decref(j);
    free(out);
    free(huge);
}

/* A builder for kn__push_fit tests: {"t": title, "b": body}. */
static json_t *tb_build(void *ctx, const char *title, const char *body)
{
    (void)ctx;
    if (!utf8_ok(title) || !utf8_ok(body))
        return NULL;
    return json_pack("{s:s, s:s}", "t", title, "b", body);
}

/* kn__push_fit keeps the longest prefix that fits, for every limit, with
 * characters of 1, 2, 3 and 4 bytes and escapes that grow in JSON. */
static void test_fit_is_maximal(void **state)
{
    const char *body = "aé漢😀\"\n台風ab\tc漢字かな😀😀end";
    size_t blen = strlen(body), e = strlen("…");
    for (size_t max = 10; max < 120; max++) {
        char *out = NULL;
        size_t len = 0;
        int rc = kn__push_fit(tb_build, NULL, "T", body, NULL, max, &out, &len);
        size_t best = (size_t)-1;
        /* Brute force: the longest boundary prefix whose payload fits. */
        for (size_t n = 0; n <= blen; n++) {
            char *cut, *s;
            json_t *j;
            if (n < blen && ((unsigned char)body[n] & 0xC0) == 0x80)
                continue;
            cut = n < blen ? kn_xasprintf("%.*s…", (int)n, body)
                           : kn_xstrdup(body);
            j = tb_build(NULL, "T", cut);
            s = json_dumps(j, JSON_COMPACT);
            if (strlen(s) <= max)
                best = n;
            free(s);
            json_decref(j);
            free(cut);
        }
        if (best == (size_t)-1) {
            /* Not even "…" fits: the body goes, then the title is cut. */
            if (rc == 0) {
                json_t *j = json_loads(out, 0, NULL);
                assert_string_equal(json_string_value(json_object_get(j, "b")),
                                    "");
                json_decref(j);
                assert_true(len <= max);
                free(out);
            } else {
                assert_int_equal(rc, KN_ETOOBIG);
            }
            continue;
        }
        assert_int_equal(rc, 0);
        assert_true(len <= max);
        {
            json_t *j = json_loads(out, 0, NULL);
            const char *b = json_string_value(json_object_get(j, "b"));
            assert_non_null(b);
            if (best == blen) {
                assert_string_equal(b, body);
            } else {
                assert_int_equal(strlen(b), best + e);
                assert_memory_equal(b, body, best);
            }
            json_decref(j);
        }
        free(out);
    }
    /* Nothing fits at all. */
    {
        char *out = NULL;
        size_t len;
        assert_int_equal(
            kn__push_fit(tb_build, NULL, "T", body, NULL, 5, &out, &len),
            KN_ETOOBIG);
    }
}

static void test_title_cut(void **state)
{
    char *huge = long_japanese(80); /* title alone > 4096 bytes */
    struct kn_message m = msg(1, "本文");
    struct kn_job job = job_for(&m, "apns", APNS_TOKEN);
    char *out = NULL;
    size_t len;
    json_t *j, *alert;
    const char *t;
    m.subject = huge;
    assert_int_equal(kn__apns_payload(&job, &out, &len), 0);
    assert_true(len <= KN_PUSH_MAX_PAYLOAD);
    j = json_loads(out, 0, NULL);
    alert = json_object_get(json_object_get(j, "aps"), "alert");
    t = json_string_value(json_object_get(alert, "title"));
    assert_string_equal(json_string_value(json_object_get(alert, "body")), "");
    assert_true(utf8_ok(t));
    assert_memory_equal(t, huge, strlen(t) - strlen("…"));
    json_decref(j);
    free(out);
    free(huge);
}

/* ---- classification ---- */

struct fcm_case {
    long status;
    const char *body;
    const char *retry_after;
    enum kn_status want;
    int dead, auth, refresh;
    int64_t retry_ms;
    const char *in_detail;
};

#define FCM_ERR(code, st, ec, msg)                                             \
    "{\"error\":{\"code\":" #code ",\"message\":\"" msg "\",\"status\":\"" st  \
    "\",\"details\":[{\"@type\":\"type.googleapis.com"                         \
    "/google.firebase.fcm.v1.FcmError\",\"errorCode\":\"" ec "\"}]}}"

static void test_fcm_classify(void **state)
{
    static const struct fcm_case cases[] = {
        {200, "{\"name\":\"projects/p/messages/0:123\"}", NULL, KN_DELIVERED, 0,
         0, 0, 0, "projects/p/messages/0:123"},
        {404,
         FCM_ERR(404, "NOT_FOUND", "UNREGISTERED",
                 "Requested entity was not found."),
         NULL, KN_PERMFAIL, 1, 0, 0, 0, "UNREGISTERED"},
        /* 404 without details is still a dead token */
        {404, "{\"error\":{\"code\":404,\"status\":\"NOT_FOUND\"}}", NULL,
         KN_PERMFAIL, 1, 0, 0, 0, "dead"},
        {400,
         FCM_ERR(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT",
                 "The registration token is not a valid FCM "
                 "registration token"),
         NULL, KN_PERMFAIL, 1, 0, 0, 0, "not a valid"},
        {400,
         FCM_ERR(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT",
                 "Invalid value at 'message.android.ttl'"),
         NULL, KN_PERMFAIL, 0, 0, 0, 0, "INVALID_ARGUMENT"},
        {403,
         FCM_ERR(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH",
                 "SenderId mismatch"),
         NULL, KN_PERMFAIL, 1, 0, 0, 0, "SENDER_ID_MISMATCH"},
        {403, "{\"error\":{\"code\":403,\"status\":\"PERMISSION_DENIED\"}}",
         NULL, KN_TEMPFAIL, 0, 1, 0, 0, "PERMISSION_DENIED"},
        /* permanent for that token (PROVIDERS.md 8), no route pause */
        {401,
         FCM_ERR(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR",
                 "Auth error from APNS or Web Push Service"),
         NULL, KN_PERMFAIL, 0, 0, 0, 0, "THIRD_PARTY_AUTH_ERROR"},
        {401,
         "{\"error\":{\"code\":401,\"message\":\"Request had invalid "
         "authentication credentials.\",\"status\":\"UNAUTHENTICATED\"}}",
         NULL, KN_TEMPFAIL, 0, 1, 1, 0, "UNAUTHENTICATED"},
        {429, FCM_ERR(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "quota"),
         "7", KN_TEMPFAIL, 0, 0, 0, 7000, "QUOTA_EXCEEDED"},
        {429, FCM_ERR(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "quota"),
         NULL, KN_TEMPFAIL, 0, 0, 0, 60000, "QUOTA_EXCEEDED"},
        {503, FCM_ERR(503, "UNAVAILABLE", "UNAVAILABLE", "overloaded"), "30",
         KN_TEMPFAIL, 0, 0, 0, 30000, "UNAVAILABLE"},
        {503, FCM_ERR(503, "UNAVAILABLE", "UNAVAILABLE", "overloaded"), NULL,
         KN_TEMPFAIL, 0, 0, 0, 0, "UNAVAILABLE"},
        {500, FCM_ERR(500, "INTERNAL", "INTERNAL", "internal"), NULL,
         KN_TEMPFAIL, 0, 0, 0, 0, "INTERNAL"},
        {502, "<html>Bad Gateway</html>", NULL, KN_TEMPFAIL, 0, 0, 0, 0, "502"},
        /* A wrong api_base answers 404 with a page, not FCM's JSON: that
         * must not mark the token dead. */
        {404, "<html><body>Error 404 (Not Found)</body></html>", NULL,
         KN_TEMPFAIL, 0, 1, 0, 0, "fcm.api_base"},
        {413, "", NULL, KN_PERMFAIL, 0, 0, 0, 0, "413"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct fcm_case *c = &cases[i];
        struct kn_result r;
        char detail[400];
        int refresh =
            kn__fcm_classify(c->status, c->body, c->retry_after, FCM_TOKEN,
                             NOW_MS, &r, detail, sizeof(detail));
        print_message("fcm case %zu: %s\n", i, detail);
        assert_int_equal(r.status, c->want);
        assert_int_equal(r.dead, c->dead);
        assert_int_equal(r.auth, c->auth);
        assert_int_equal(refresh, c->refresh);
        assert_int_equal(r.retry_after_ms, c->retry_ms);
        assert_ptr_equal(r.detail, detail);
        assert_non_null(strstr(detail, c->in_detail));
        assert_null(strchr(detail, '\n'));
    }
}

struct apns_case {
    long status;
    const char *reason;
    const char *retry_after;
    enum kn_status want;
    int dead, auth, expired;
    int64_t retry_ms;
};

static void test_apns_classify(void **state)
{
    static const struct apns_case cases[] = {
        {200, NULL, NULL, KN_DELIVERED, 0, 0, 0, 0},
        {410, "Unregistered", NULL, KN_PERMFAIL, 1, 0, 0, 0},
        {410, "ExpiredToken", NULL, KN_PERMFAIL, 1, 0, 0, 0},
        {400, "BadDeviceToken", NULL, KN_PERMFAIL, 1, 0, 0, 0},
        /* one token of another app: not our configuration */
        {400, "DeviceTokenNotForTopic", NULL, KN_PERMFAIL, 0, 0, 0, 0},
        {400, "BadTopic", NULL, KN_PERMFAIL, 0, 1, 0, 0},
        {400, "TopicDisallowed", NULL, KN_PERMFAIL, 0, 1, 0, 0},
        {400, "BadCollapseId", NULL, KN_PERMFAIL, 0, 0, 0, 0},
        {400, "BadPriority", NULL, KN_PERMFAIL, 0, 0, 0, 0},
        {403, "ExpiredProviderToken", NULL, KN_TEMPFAIL, 0, 0, 1, 0},
        {403, "InvalidProviderToken", NULL, KN_TEMPFAIL, 0, 1, 2, 0},
        {403, "MissingProviderToken", NULL, KN_TEMPFAIL, 0, 1, 0, 0},
        {403, "BadCertificateEnvironment", NULL, KN_TEMPFAIL, 0, 1, 0, 0},
        {404, "BadPath", NULL, KN_PERMFAIL, 0, 0, 0, 0},
        {405, "MethodNotAllowed", NULL, KN_PERMFAIL, 0, 0, 0, 0},
        {413, "PayloadTooLarge", NULL, KN_PERMFAIL, 0, 0, 0, 0},
        {429, "TooManyRequests", "3", KN_TEMPFAIL, 0, 0, 0, 3000},
        {429, "TooManyProviderTokenUpdates", NULL, KN_TEMPFAIL, 0, 0, 0, 0},
        {500, "InternalServerError", NULL, KN_TEMPFAIL, 0, 0, 0, 0},
        {503, "ServiceUnavailable", "10", KN_TEMPFAIL, 0, 0, 0, 10000},
        {503, "Shutdown", NULL, KN_TEMPFAIL, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct apns_case *c = &cases[i];
        struct kn_result r;
        char detail[400], body[200];
        int expired;
        if (c->status == 410)
            snprintf(body, sizeof(body),
                     "{\"reason\":\"%s\",\"timestamp\":1795308258000}",
                     c->reason);
        else if (c->reason)
            snprintf(body, sizeof(body), "{\"reason\":\"%s\"}", c->reason);
        else
            body[0] = '\0';
        expired =
            kn__apns_classify(c->status, body, c->retry_after,
                              "8e0ee1b4-7d5c-5c52-9a7e-0c8a3f1e2d11",
                              APNS_TOKEN, NOW_MS, &r, detail, sizeof(detail));
        print_message("apns case %zu: %s\n", i, detail);
        assert_int_equal(r.status, c->want);
        assert_int_equal(r.dead, c->dead);
        assert_int_equal(r.auth, c->auth);
        assert_int_equal(expired, c->expired);
        assert_int_equal(r.retry_after_ms, c->retry_ms);
        if (c->reason)
            assert_non_null(strstr(detail, c->reason));
        if (c->dead)
            assert_non_null(strstr(detail, "dead"));
    }
    {
        struct kn_result r;
        char detail[200];
        kn__apns_classify(200, "", NULL, "8e0ee1b4", APNS_TOKEN, NOW_MS, &r,
                          detail, sizeof(detail));
        assert_non_null(strstr(detail, "apns-id=8e0ee1b4"));
        /* Any 2xx is an acceptance: never sent again (a second
         * notification on the phone). */
        kn__apns_classify(204, "", NULL, "8e0ee1b4", APNS_TOKEN, NOW_MS, &r,
                          detail, sizeof(detail));
        assert_int_equal(r.status, KN_DELIVERED);
        /* A proxy's page instead of JSON: tempfail, no crash. */
        kn__apns_classify(502, "<html>Bad Gateway</html>", NULL, NULL,
                          APNS_TOKEN, NOW_MS, &r, detail, sizeof(detail));
        assert_int_equal(r.status, KN_TEMPFAIL);
    }
    {
        /* 410 that is not APNs' answer (no reason Unregistered or
         * ExpiredToken: a page of a proxy or of a wrong apns.api_base)
         * must never mark the token dead: every token would be. */
        static const char *const not_apns[] = {
            "<html><body>410 Gone</body></html>",
            "",
            "{\"error\":\"gone\"}",
        };
        for (size_t i = 0; i < sizeof(not_apns) / sizeof(not_apns[0]); i++) {
            struct kn_result r;
            char detail[200];
            kn__apns_classify(410, not_apns[i], NULL, NULL, APNS_TOKEN, NOW_MS,
                              &r, detail, sizeof(detail));
            print_message("apns 410 not from APNs %zu: %s\n", i, detail);
            assert_int_equal(r.dead, 0);
            assert_int_equal(r.status, KN_TEMPFAIL);
            assert_int_equal(r.auth, 1);
        }
    }
}

/* ---- identifiers ---- */

static void test_collapse_id(void **state)
{
    char out[65], out2[65];
    char longid[129];
    kn__apns_collapse_id("b-20261122-1a2b3c4d5e6f", out);
    assert_string_equal(out, "b-20261122-1a2b3c4d5e6f");
    memset(longid, 'x', 64);
    longid[64] = '\0';
    kn__apns_collapse_id(longid, out); /* exactly 64: kept */
    assert_string_equal(out, longid);
    memset(longid, 'x', 128);
    longid[128] = '\0';
    kn__apns_collapse_id(longid, out);
    assert_int_equal(strlen(out), 64);
    assert_true(strspn(out, "0123456789abcdef") == 64);
    kn__apns_collapse_id(longid, out2);
    assert_string_equal(out, out2); /* stable */
    longid[127] = 'y';
    kn__apns_collapse_id(longid, out2);
    assert_string_not_equal(out, out2);
}

static void test_uuid_stable(void **state)
{
    char a[37], b[37], c[37];
    kn__push_uuid("b-1:push:abc", a);
    kn__push_uuid("b-1:push:abc", b);
    kn__push_uuid("b-1:push:abd", c);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_int_equal(strlen(a), 36);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(a[i], '-');
        else
            assert_non_null(strchr("0123456789abcdef", a[i]));
    }
    assert_int_equal(a[14], '5');           /* version 5 */
    assert_non_null(strchr("89ab", a[19])); /* RFC 4122 variant */
}

/* The token rules themselves are tested in test_address.c; here: the
 * tokens this file sends with pass them. */
static void test_token_checks(void **state)
{
    assert_int_equal(kn_addr_apns_check(APNS_TOKEN, NULL), 0);
    assert_int_equal(kn_addr_fcm_check(FCM_TOKEN, NULL), 0);
}

static void test_retry_after(void **state)
{
    assert_int_equal(kn__push_retry_after(NULL, NOW_MS), 0);
    assert_int_equal(kn__push_retry_after("120", NOW_MS), 120000);
    assert_int_equal(kn__push_retry_after(" 5", NOW_MS), 5000);
    assert_int_equal(kn__push_retry_after("soon", NOW_MS), 0);
    assert_int_equal(kn__push_retry_after("12abc", NOW_MS), 0);
    assert_int_equal(kn__push_retry_after("99999999", NOW_MS),
                     24LL * 3600 * 1000);
    /* NOW_MS is Sun, 22 Nov 2026 00:44:18 GMT. */
    assert_int_equal(
        kn__push_retry_after("Sun, 22 Nov 2026 00:45:18 GMT", NOW_MS), 60000);
    assert_int_equal(
        kn__push_retry_after("Sun, 22 Nov 2026 00:00:00 GMT", NOW_MS), 0);
}

static void test_scrub(void **state)
{
    char buf[200];
    kn__push_scrub("token " APNS_TOKEN " of taro.yamada@docomo.ne.jp\nx",
                   APNS_TOKEN, buf, sizeof(buf));
    assert_null(strstr(buf, APNS_TOKEN));
    assert_null(strstr(buf, "taro.yamada"));
    assert_null(strchr(buf, '\n'));
    assert_non_null(strstr(buf, "a1b2***"));
    kn__push_scrub("short", APNS_TOKEN, buf, 4);
    assert_string_equal(buf, "sho");
    /* Masked before it is cut: a token or an address across the cut is
     * never left half in clear. */
    kn__push_scrub("Invalid registration token: " FCM_TOKEN, FCM_TOKEN, buf,
                   40);
    print_message("cut token: %s\n", buf);
    assert_null(strstr(buf, "dXNlcjE"));
    kn__push_scrub("Unknown recipient taro.yamada@docomo.ne.jp", NULL, buf, 30);
    print_message("cut address: %s\n", buf);
    assert_null(strstr(buf, "taro.ya"));
}

/* An APNs answer that echoes the device token (a proxy's page with the
 * request path, a reason or apns-id carrying it) never puts it, or a
 * part of it, in the detail. */
static void test_apns_detail_no_token(void **state)
{
    static const char *const bodies[] = {
        "Cannot POST /3/device/" APNS_TOKEN,
        "{\"reason\":\"BadDeviceToken " APNS_TOKEN "\"}",
        "{\"reason\":\"" APNS_TOKEN "\"}",
    };
    static const long statuses[] = {200, 404, 400, 403, 410, 500, 502};
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        for (size_t k = 0; k < sizeof(statuses) / sizeof(statuses[0]); k++) {
            struct kn_result r;
            char detail[400];
            kn__apns_classify(statuses[k], bodies[i], NULL, APNS_TOKEN,
                              APNS_TOKEN, NOW_MS, &r, detail, sizeof(detail));
            print_message("apns %ld: %s\n", statuses[k], detail);
            assert_null(strstr(detail, "c3d4e5f6071829"));
        }
    }
}

/* ---- token renewal rules ---- */

static void test_fcm_token_state(void **state)
{
    const int64_t hour = 3600 * 1000, min = 60 * 1000;
    int64_t exp = NOW_MS + hour;
    assert_int_equal(kn__fcm_token_state(0, 0, NOW_MS), 2); /* none */
    assert_int_equal(kn__fcm_token_state(exp, hour, NOW_MS), 0);
    /* Google's hour: renew from 5 minutes before expiry. */
    assert_int_equal(kn__fcm_token_state(exp, hour, exp - 5 * min - 1), 0);
    assert_int_equal(kn__fcm_token_state(exp, hour, exp - 5 * min), 1);
    assert_int_equal(kn__fcm_token_state(exp, hour, exp - 1), 1);
    assert_int_equal(kn__fcm_token_state(exp, hour, exp), 2);
    /* A short-lived token (tests): a quarter of its life as the margin. */
    exp = NOW_MS + 4000;
    assert_int_equal(kn__fcm_token_state(exp, 4000, NOW_MS + 2999), 0);
    assert_int_equal(kn__fcm_token_state(exp, 4000, NOW_MS + 3000), 1);
    assert_int_equal(kn__fcm_token_state(exp, 4000, NOW_MS + 4000), 2);
}

static void test_apns_jwt_rules(void **state)
{
    const int64_t min = 60 * 1000, renew = 45 * min;
    int64_t iat = NOW_MS;
    assert_int_equal(kn__apns_renew_due(0, NOW_MS, renew, 0, 0),
                     KN__APNS_RENEW); /* none yet */
    assert_int_equal(kn__apns_renew_due(iat, iat, renew, 0, 0), KN__APNS_KEEP);
    assert_int_equal(kn__apns_renew_due(iat, iat + 44 * min, renew, 0, 0),
                     KN__APNS_KEEP);
    assert_int_equal(kn__apns_renew_due(iat, iat + 45 * min, renew, 0, 0),
                     KN__APNS_RENEW);
    assert_int_equal(kn__apns_renew_due(iat, iat + 61 * min, renew, 0, 1),
                     KN__APNS_RENEW);
    /* Refused (ExpiredProviderToken, InvalidProviderToken): younger than
     * 20 minutes, replaced early once; a token that replaced one early is
     * not replaced early again; from 20 minutes always. */
    assert_int_equal(kn__apns_renew_due(iat, iat + 1 * min, renew, 1, 0),
                     KN__APNS_RENEW_EARLY);
    assert_int_equal(kn__apns_renew_due(iat, iat + 1 * min, renew, 1, 1),
                     KN__APNS_KEEP);
    assert_int_equal(kn__apns_renew_due(iat, iat + 20 * min - 1, renew, 1, 1),
                     KN__APNS_KEEP);
    assert_int_equal(kn__apns_renew_due(iat, iat + 20 * min, renew, 1, 1),
                     KN__APNS_RENEW);
    /* The clock went back by more than a minute. */
    assert_int_equal(kn__apns_renew_due(iat, iat - 2 * min, renew, 0, 0),
                     KN__APNS_RENEW);
    assert_int_equal(kn__apns_renew_due(iat, iat - 10 * 1000, renew, 0, 0),
                     KN__APNS_KEEP);
}

/* ---- the clients ---- */
/* ---- the clients ---- */

struct sink {
    int calls;
    enum kn_status status;
    int dead, auth;
    char detail[400];
};

static void on_done(struct kn_job *job, const struct kn_result *r, void *arg)
{
    struct sink *s = arg;
    s->calls++;
    s->status = r->status;
    s->dead = r->dead;
    s->auth = r->auth;
    snprintf(s->detail, sizeof(s->detail), "%s", r->detail ? r->detail : "");
}

static char *write_ec_key(void)
{
    char *path = strdup("/tmp/kn-test-push-p8-XXXXXX");
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(k);
    assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    EVP_PKEY_free(k);
    return path;
}

static struct kn_config apns_cfg(const char *key)
{
    struct kn_config c;
    memset(&c, 0, sizeof(c));
    c.apns_api_base = "https://127.0.0.1:1"; /* nothing listens */
    c.apns_key_file = (char *)key;
    c.apns_key_id = "ABC123DEFG";
    c.apns_team_id = "DEF123GHIJ";
    c.apns_topic = "jp.example.sakura.app";
    c.apns_timeout_ms = 5000;
    c.apns_connections = 2;
    c.fcm_api_base = "https://127.0.0.1:1";
    c.fcm_token_url = "https://oauth2.googleapis.com/token";
    c.fcm_timeout_ms = 5000;
    c.fcm_connections = 3;
    return c;
}

static void run_until(uv_loop_t *loop, struct sink *s, int calls)
{
    for (int i = 0; i < 2000 && s->calls < calls; i++)
        uv_run(loop, UV_RUN_ONCE);
}

/*
 * The APNs client on a fake clock, without a host (its own token): the
 * first send signs a token, sends within 40 minutes reuse it, a send at
 * 50 minutes renews it (the renewal age is drawn between the two).  Sends fail
 * (nothing listens) as tempfail; bad tokens fail as dead without a send.
 */
static void test_apns_client_renewal(void **state)
{
    uv_loop_t loop;
    char *key = write_ec_key();
    struct kn_config c = apns_cfg(key);
    struct kn__apns *p = NULL;
    struct kn_message m = msg(1, "本文");
    struct kn_job job = job_for(&m, "apns", APNS_TOKEN);
    struct sink s = {0};
    const int64_t min = 60 * 1000;

    uv_loop_init(&loop);
    kn__fake_now_ms = NOW_MS;
    assert_int_equal(kn__apns_open(&loop, &c, NULL, &p), 0);
    assert_non_null(p);
    assert_int_equal(kn__apns_connections(p), 2);
    assert_int_equal(kn__apns_refreshes(p), 0);

    kn__apns_send(p, &job, on_done, &s);
    assert_int_equal(kn__apns_refreshes(p), 1);
    assert_int_equal(kn__apns_in_flight(p), 1);
    run_until(&loop, &s, 1);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.status, KN_TEMPFAIL);
    assert_non_null(strstr(s.detail, "apns transport"));
    assert_int_equal(kn__apns_in_flight(p), 0);

    kn__fake_now_ms = NOW_MS + 40 * min - 1000;
    kn__apns_send(p, &job, on_done, &s);
    run_until(&loop, &s, 2);
    assert_int_equal(kn__apns_refreshes(p), 1);

    kn__fake_now_ms = NOW_MS + 50 * min;
    kn__apns_send(p, &job, on_done, &s);
    run_until(&loop, &s, 3);
    assert_int_equal(kn__apns_refreshes(p), 2);

    kn__fake_now_ms = NOW_MS + 51 * min;
    kn__apns_send(p, &job, on_done, &s);
    run_until(&loop, &s, 4);
    assert_int_equal(kn__apns_refreshes(p), 2);

    /* Not hex: permanent, dead, never sent. */
    job.addr = "not-a-token";
    kn__apns_send(p, &job, on_done, &s);
    assert_int_equal(s.calls, 5);
    assert_int_equal(s.status, KN_PERMFAIL);
    assert_true(s.dead);

    /* Closing with a send in flight: it is aborted (one done call). */
    job.addr = APNS_TOKEN;
    kn__apns_send(p, &job, on_done, &s);
    kn__apns_close(p);
    assert_int_equal(s.calls, 6);
    assert_string_equal(s.detail, kn_detail_aborted);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    kn__fake_now_ms = 0;
    unlink(key);
    free(key);
}

/* ---- the shared provider token, with a host that keeps it in memory ---- */

/* One call of the host waiting for its answer (answers never come before
 * the call returns, as Redis' never do). */
struct store_call {
    int offer;
    struct kn_shared_cred c;
    char value[1024];
    kn_shared_cred_cb *cb;
    void *arg;
};

/* The store: what cred_offer.lua keeps, and the calls not answered yet.
 * fail 1: refuse calls at once (Redis not connected); 2: answer them with
 * an error (a timeout). */
struct store {
    char value[1024];
    int64_t iat_ms;
    uint64_t gen;
    int early;
    int fail;
    int gets, offers;
    struct store_call q[16];
    int nq;
};

static int store_get(void *ctx, const char *provider, const char *account,
                     kn_shared_cred_cb *cb, void *arg)
{
    struct store *st = ctx;
    struct store_call *c;
    assert_string_equal(provider, "apns");
    assert_non_null(strstr(account, "DEF123GHIJ.ABC123DEFG."));
    if (st->fail == 1)
        return KN_ECLOSED;
    assert_true(st->nq < 16);
    c = &st->q[st->nq++];
    memset(c, 0, sizeof(*c));
    c->cb = cb;
    c->arg = arg;
    st->gets++;
    return 0;
}

static int store_offer(void *ctx, const char *provider, const char *account,
                       const struct kn_shared_cred *sc, kn_shared_cred_cb *cb,
                       void *arg)
{
    struct store *st = ctx;
    struct store_call *c;
    if (st->fail == 1)
        return KN_ECLOSED;
    assert_true(st->nq < 16);
    c = &st->q[st->nq++];
    memset(c, 0, sizeof(*c));
    c->offer = 1;
    c->c = *sc;
    snprintf(c->value, sizeof(c->value), "%s", sc->value);
    c->cb = cb;
    c->arg = arg;
    st->offers++;
    assert_true(sc->ttl_ms >= 3600 * 1000);
    return 0;
}

/* Answer every call waiting, in order, as cred_offer.lua would. */
static void store_answer(struct store *st)
{
    struct store_call q[16];
    int n = st->nq;
    memcpy(q, st->q, sizeof(q));
    st->nq = 0;
    for (int i = 0; i < n; i++) {
        struct kn_shared_cred now = {0};
        if (st->fail) {
            q[i].cb(KN_ETIMEDOUT, NULL, q[i].arg);
            continue;
        }
        if (q[i].offer && (st->gen == 0 || st->gen == q[i].c.gen)) {
            snprintf(st->value, sizeof(st->value), "%s", q[i].value);
            st->iat_ms = q[i].c.iat_ms;
            st->early = q[i].c.early;
            st->gen++;
        }
        if (st->gen > 0) {
            now.value = st->value;
            now.iat_ms = st->iat_ms;
            now.gen = st->gen;
            now.early = st->early;
        }
        q[i].cb(0, &now, q[i].arg);
    }
}

static void on_ready(void *arg)
{
    (*(int *)arg)++;
}

static EVP_PKEY *load_key(const char *path)
{
    char err[200];
    EVP_PKEY *k = kn_jwt_key_file(path, err, sizeof(err));
    assert_non_null(k);
    return k;
}

/*
 * Two processes' token keepers on one store: both wait for the first
 * token, both offer one, one is stored and both send with it; a restarted
 * process adopts it; APNs refusing it young replaces it once for both (a
 * second early refusal does not); from 20 minutes a refusal replaces it;
 * at its renewal age one offer renews it; a store that fails at once or
 * later leaves a process with its own token; a keeper closed with a call
 * in flight ignores its answer.
 */
static void test_apns_shared_token(void **state)
{
    uv_loop_t loop;
    char *path = write_ec_key();
    EVP_PKEY *key = load_key(path);
    struct store st;
    struct kn_adapter_host host = {&st, store_get, store_offer};
    struct kn__apns_token *a, *b, *c;
    const char *ha, *hb;
    uint64_t ga, gb;
    int ra = 0, rb = 0, rc_ = 0;
    char detail[400];
    const int64_t min = 60 * 1000;
    char first[1200];

    memset(&st, 0, sizeof(st));
    uv_loop_init(&loop);
    kn__fake_now_ms = NOW_MS;
    a = kn__apns_token_new(&loop, key, "ABC123DEFG", "DEF123GHIJ", &host, 0,
                           on_ready, &ra);
    b = kn__apns_token_new(&loop, key, "ABC123DEFG", "DEF123GHIJ", &host, 0,
                           on_ready, &rb);
    /* Before the first push: both wait for the store. */
    assert_int_equal(kn__apns_token_get(a, &ha, &ga), KN_EAGAIN);
    assert_int_equal(kn__apns_token_get(b, &hb, &gb), KN_EAGAIN);
    assert_int_equal(st.gets, 2);
    store_answer(&st); /* nothing stored: both offer their own */
    assert_int_equal(st.offers, 2);
    assert_int_equal(ra + rb, 0);
    store_answer(&st); /* a's is stored, b adopts it */
    assert_int_equal(ra, 1);
    assert_int_equal(rb, 1);
    assert_int_equal(st.gen, 1);
    assert_int_equal(kn__apns_token_get(a, &ha, &ga), 0);
    assert_int_equal(kn__apns_token_get(b, &hb, &gb), 0);
    assert_string_equal(ha, hb);
    assert_non_null(strstr(ha, st.value));
    snprintf(first, sizeof(first), "%s", ha);
    assert_int_equal(kn__apns_token_signed(a), 1);
    assert_int_equal(kn__apns_token_signed(b), 0);
    assert_true(kn__apns_jwt_check(key, "ABC123DEFG", "DEF123GHIJ", st.value,
                                   st.iat_ms));
    assert_false(kn__apns_jwt_check(key, "ABC123DEFG", "OTHERTEAM1", st.value,
                                    st.iat_ms));
    assert_false(kn__apns_jwt_check(key, "ABC123DEFG", "DEF123GHIJ", st.value,
                                    st.iat_ms + 1000));

    /* A restart: adopts the stored token, signs nothing. */
    kn__fake_now_ms = NOW_MS + 30 * 1000;
    c = kn__apns_token_new(&loop, key, "ABC123DEFG", "DEF123GHIJ", &host, 0,
                           on_ready, &rc_);
    assert_int_equal(kn__apns_token_get(c, &hb, &gb), KN_EAGAIN);
    store_answer(&st);
    assert_int_equal(rc_, 1);
    assert_int_equal(kn__apns_token_get(c, &hb, &gb), 0);
    assert_string_equal(hb, first);
    assert_int_equal(kn__apns_token_signed(c), 0);
    assert_int_equal(st.offers, 2);

    /* APNs refuses it at one minute (ExpiredProviderToken): both were
     * refused; one replacement, early, shared. */
    kn__fake_now_ms = NOW_MS + 1 * min;
    detail[0] = '\0';
    kn__apns_token_refused(a, ga, detail, sizeof(detail));
    assert_non_null(strstr(detail, "replaced"));
    detail[0] = '\0';
    kn__apns_token_refused(b, gb, detail, sizeof(detail));
    assert_int_equal(st.offers, 4);
    store_answer(&st);
    assert_int_equal(st.gen, 2);
    assert_int_equal(st.early, 1);
    assert_int_equal(kn__apns_token_get(a, &ha, &ga), 0);
    assert_int_equal(kn__apns_token_get(b, &hb, &gb), 0);
    assert_string_equal(ha, hb);
    assert_string_not_equal(ha, first);
    assert_int_equal(kn__apns_token_signed(a) + kn__apns_token_signed(b), 2);
    /* c still sends with the first: its refusal reads the store and
     * adopts the replacement (it was not refused). */
    detail[0] = '\0';
    kn__apns_token_refused(c, 1, detail, sizeof(detail));
    store_answer(&st);
    assert_int_equal(kn__apns_token_get(c, &hb, &gb), 0);
    assert_string_equal(hb, ha);
    assert_int_equal(st.gen, 2);

    /* Refused again young: an early replacement is not replaced early. */
    kn__fake_now_ms = NOW_MS + 2 * min;
    detail[0] = '\0';
    kn__apns_token_refused(a, ga, detail, sizeof(detail));
    assert_non_null(strstr(detail, "not replaced"));
    assert_int_equal(st.nq, 0);
    /* A refusal of an older token: nothing to do. */
    detail[0] = '\0';
    kn__apns_token_refused(a, ga - 1, detail, sizeof(detail));
    assert_non_null(strstr(detail, "older"));
    assert_int_equal(st.nq, 0);

    /* From 20 minutes of age a refusal replaces it (not early). */
    kn__fake_now_ms = NOW_MS + 21 * min;
    detail[0] = '\0';
    kn__apns_token_refused(a, ga, detail, sizeof(detail));
    store_answer(&st);
    assert_int_equal(st.gen, 3);
    assert_int_equal(st.early, 0);

    /* At its renewal age (50 minutes at most) a send renews it, sending
     * with the current token meanwhile. */
    kn__fake_now_ms = NOW_MS + 21 * min + 50 * min;
    assert_int_equal(kn__apns_token_get(a, &ha, &ga), 0);
    assert_int_equal(st.nq, 1);
    store_answer(&st);
    assert_int_equal(st.gen, 4);
    /* b's token was replaced twice meanwhile: it offers to replace
     * generation 2, loses and adopts generation 4. */
    assert_int_equal(kn__apns_token_get(b, &hb, &gb), 0);
    store_answer(&st);
    assert_int_equal(kn__apns_token_get(b, &hb, &gb), 0);
    assert_int_equal(kn__apns_token_get(a, &ha, &ga), 0);
    assert_string_equal(ha, hb);
    assert_int_equal(st.gen, 4);

    /* The store refuses at once (Redis not connected): a new process
     * signs its own and sends at once. */
    st.fail = 1;
    kn__apns_token_close(c);
    c = kn__apns_token_new(&loop, key, "ABC123DEFG", "DEF123GHIJ", &host, 0,
                           on_ready, &rc_);
    assert_int_equal(kn__apns_token_get(c, &hb, &gb), 0);
    assert_string_not_equal(hb, ha);
    assert_int_equal(kn__apns_token_signed(c), 1);
    kn__apns_token_close(c);
    /* The store fails later (a timeout): the same, after the answer. */
    st.fail = 2;
    rc_ = 0;
    c = kn__apns_token_new(&loop, key, "ABC123DEFG", "DEF123GHIJ", &host, 0,
                           on_ready, &rc_);
    assert_int_equal(kn__apns_token_get(c, &hb, &gb), KN_EAGAIN);
    store_answer(&st);
    assert_int_equal(rc_, 1);
    assert_int_equal(kn__apns_token_get(c, &hb, &gb), 0);
    assert_int_equal(kn__apns_token_signed(c), 1);
    kn__apns_token_close(c);
    /* The timer (every 100 ms here): an idle keeper reads the store and
     * adopts the token another one renewed meanwhile. */
    st.fail = 0;
    rc_ = 0;
    c = kn__apns_token_new(&loop, key, "ABC123DEFG", "DEF123GHIJ", &host, 100,
                           on_ready, &rc_);
    assert_int_equal(kn__apns_token_get(c, &hb, &gb), KN_EAGAIN);
    store_answer(&st);
    assert_int_equal(kn__apns_token_get(c, &hb, &gb), 0);
    assert_string_equal(hb, ha);
    kn__fake_now_ms += 25 * min; /* a's token may be refused and replaced */
    detail[0] = '\0';
    kn__apns_token_refused(a, ga, detail, sizeof(detail));
    store_answer(&st);
    assert_int_equal(st.gen, 5);
    assert_int_equal(kn__apns_token_get(a, &ha, &ga), 0);
    for (int i = 0; i < 1000 && st.nq == 0; i++)
        uv_run(&loop, UV_RUN_ONCE); /* c's timer */
    assert_int_equal(st.nq, 1);
    store_answer(&st);
    assert_int_equal(kn__apns_token_get(c, &hb, &gb), 0);
    assert_string_equal(hb, ha);
    assert_int_equal(kn__apns_token_signed(c), 0);
    kn__apns_token_close(c);

    /* Closed with a call in flight: its answer is dropped. */
    c = kn__apns_token_new(&loop, key, "ABC123DEFG", "DEF123GHIJ", &host, 0,
                           on_ready, &rc_);
    assert_int_equal(kn__apns_token_get(c, &hb, &gb), KN_EAGAIN);
    kn__apns_token_close(c);
    store_answer(&st);

    kn__apns_token_close(a);
    kn__apns_token_close(b);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    kn__fake_now_ms = 0;
    EVP_PKEY_free(key);
    unlink(path);
    free(path);
}

static char *write_account(const char *email, int with_key)
{
    char *path = strdup("/tmp/kn-test-push-sa-XXXXXX");
    int fd = mkstemp(path);
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    BIO *b = BIO_new(BIO_s_mem());
    char *pem;
    long n;
    json_t *j;
    assert_int_equal(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL),
                     1);
    n = BIO_get_mem_data(b, &pem);
    j = json_pack("{s:s, s:s, s:s}", "type", "service_account",
                  "private_key_id", "0123abcd", "token_uri",
                  "https://oauth2.googleapis.com/token");
    if (email)
        json_object_set_new(j, "client_email", json_string(email));
    if (with_key)
        json_object_set_new(j, "private_key", json_stringn(pem, (size_t)n));
    assert_int_equal(json_dumpfd(j, fd, 0), 0);
    close(fd);
    json_decref(j);
    BIO_free(b);
    EVP_PKEY_free(k);
    return path;
}

/* The adapter: provider choice, unconfigured providers, capacity. */
static void test_adapter(void **state)
{
    uv_loop_t loop;
    struct kn_adapter a;
    char *key = write_ec_key();
    char *sa = write_account("kairan@sakura-app.iam.gserviceaccount.com", 1);
    char *sa_bad = write_account(NULL, 1);
    struct kn_config c = apns_cfg(key);
    struct kn_config none = apns_cfg(NULL);
    struct kn_message m = msg(1, "本文");
    struct kn_job job = job_for(&m, "fcm", FCM_TOKEN), *jobs[1] = {&job};
    struct sink s = {0};

    uv_loop_init(&loop);
    none.apns_key_file = NULL;
    none.apns_key_id = NULL;
    none.apns_team_id = NULL;
    none.apns_topic = NULL;
    assert_non_null(kn_adapter_find("push"));
    assert_int_equal(kn_adapter_find("push")->max_batch, 1);
    /* Neither provider: opens (routes.push = push is the default), and
     * every job fails at once saying what to configure. */
    assert_int_equal(kn_adapter_open(&a, "push", &loop, &none, NULL), 0);
    assert_true(a.ops->capacity(&a) > 0);
    a.ops->send(&a, jobs, 1, on_done, &s);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.status, KN_PERMFAIL);
    assert_false(s.dead);
    assert_non_null(strstr(s.detail, "[fcm]"));
    a.ops->close(&a);
    s.calls = 0;
    /* Half of [apns]: refused. */
    none.apns_key_id = "ABC123DEFG";
    assert_int_equal(kn_adapter_open(&a, "push", &loop, &none, NULL),
                     KN_ECONFIG);
    none.apns_key_id = NULL;
    /* [fcm] with a bad project id or a service account without its
     * client_email: refused. */
    none.fcm_project_id = "Sakura App!";
    none.fcm_service_account_file = sa;
    assert_int_equal(kn_adapter_open(&a, "push", &loop, &none, NULL),
                     KN_ECONFIG);
    none.fcm_project_id = "sakura-app";
    none.fcm_service_account_file = sa_bad;
    assert_int_equal(kn_adapter_open(&a, "push", &loop, &none, NULL),
                     KN_ECONFIG);

    /* APNs only: FCM jobs fail permanently, saying what to configure. */
    assert_int_equal(kn_adapter_open(&a, "push", &loop, &c, NULL), 0);
    assert_int_equal(a.ops->capacity(&a), 2 * KN_PUSH_STREAMS_PER_CONN);
    a.ops->send(&a, jobs, 1, on_done, &s);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.status, KN_PERMFAIL);
    assert_non_null(strstr(s.detail, "[fcm]"));
    job.platform = NULL;
    a.ops->send(&a, jobs, 1, on_done, &s);
    assert_int_equal(s.calls, 2);
    assert_int_equal(s.status, KN_PERMFAIL);
    assert_non_null(strstr(s.detail, "platform"));
    assert_int_equal(kn_push_token_refreshes(&a, "fcm"), 0);
    assert_int_equal(kn_push_token_refreshes(&a, "apns"), 0);
    assert_int_equal(a.ops->in_flight(&a), 0);
    a.ops->close(&a);

    /* Both: capacity over every connection; an FCM job waits for its
     * token (the token endpoint is unreachable here, so it tempfails). */
    c.fcm_project_id = "sakura-app";
    c.fcm_service_account_file = sa;
    c.fcm_token_url = "https://127.0.0.1:1/token";
    assert_int_equal(kn_adapter_open(&a, "push", &loop, &c, NULL), 0);
    assert_int_equal(a.ops->capacity(&a), 5 * KN_PUSH_STREAMS_PER_CONN);
    job.platform = "fcm";
    a.ops->send(&a, jobs, 1, on_done, &s);
    assert_int_equal(a.ops->in_flight(&a), 1);
    run_until(&loop, &s, 3);
    assert_int_equal(s.calls, 3);
    assert_int_equal(s.status, KN_TEMPFAIL);
    assert_non_null(strstr(s.detail, "token endpoint"));
    assert_int_equal(kn_push_token_refreshes(&a, "fcm"), 0);
    /* Within the back-off the endpoint is not asked again. */
    a.ops->send(&a, jobs, 1, on_done, &s);
    assert_int_equal(s.calls, 4);
    assert_non_null(strstr(s.detail, "token endpoint"));
    a.ops->close(&a);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    unlink(key);
    unlink(sa);
    unlink(sa_bad);
    free(key);
    free(sa);
    free(sa_bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fcm_payload),
        cmocka_unit_test(test_drill_marked),
        cmocka_unit_test(test_fcm_cut_japanese),
        cmocka_unit_test(test_apns_payload_and_cut),
        cmocka_unit_test(test_fit_is_maximal),
        cmocka_unit_test(test_title_cut),
        cmocka_unit_test(test_fcm_link),
        cmocka_unit_test(test_apns_link),
        cmocka_unit_test(test_push_no_link),
        cmocka_unit_test(test_link_survives_title_cut),
        cmocka_unit_test(test_fcm_classify),
        cmocka_unit_test(test_apns_classify),
        cmocka_unit_test(test_collapse_id),
        cmocka_unit_test(test_uuid_stable),
        cmocka_unit_test(test_token_checks),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_scrub),
        cmocka_unit_test(test_apns_detail_no_token),
        cmocka_unit_test(test_fcm_token_state),
        cmocka_unit_test(test_apns_jwt_rules),
        cmocka_unit_test(test_apns_client_renewal),
        cmocka_unit_test(test_apns_shared_token),
        cmocka_unit_test(test_adapter),
    };
    int rc;
    kn_log_min = KN_LOG_ERROR + 1; /* quiet: the tests provoke errors */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
