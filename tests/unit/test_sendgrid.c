/*
 * test_sendgrid.c - the SendGrid adapter's pure parts: the sender from
 * [smtp] from / reply_to (a carrier-style From refused), the Mail Send
 * body for a batch (Japanese subject and name as UTF-8 JSON, one
 * personalization per job with the Message-ID SMTP would use and the
 * custom_args, drill prefix and line, urgent headers, personal links as
 * substitutions), and answer
 * classification (202 with X-Message-Id, 429 waiting for X-RateLimit-Reset
 * or Retry-After, 401/403 as credentials, other 4xx permanent with
 * SendGrid's message masked, 5xx and transport errors temporary).
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

#include "adapters/mime.h"
#include "adapters/adapter.h"
#include "adapters/http.h"
#include "adapters/sendgrid.h"
#include "common/kn.h"
#include "config/config.h"

static void set(char **field, const char *v)
{
    free(*field);
    *field = v ? strdup(v) : NULL;
}

static void load(struct kn_config *cfg, const char *from,
                 const char *reply_to)
{
    assert_int_equal(kn_config_load(cfg, NULL, NULL), 0);
    set(&cfg->smtp_from, from);
    set(&cfg->smtp_reply_to, reply_to);
}

static void test_from(void **state)
{
    struct kn_config cfg;
    struct kn__sendgrid_from f;

    load(&cfg, "桜高校 <noreply@sakura.example.jp>", "職員室 <office@sakura.example.jp>");
    assert_int_equal(kn__sendgrid_from_init(&f, &cfg), 0);
    assert_string_equal(f.email, "noreply@sakura.example.jp");
    assert_string_equal(f.name, "桜高校");
    assert_string_equal(f.reply_email, "office@sakura.example.jp");
    assert_string_equal(f.reply_name, "職員室");
    assert_string_equal(f.domain, "sakura.example.jp");
    kn__sendgrid_from_free(&f);
    kn_config_free(&cfg);

    /* SendGrid would refuse this From: say so at open. */
    load(&cfg, "a..b.@docomo.ne.jp", NULL);
    assert_int_equal(kn__sendgrid_from_init(&f, &cfg), KN_ECONFIG);
    kn_config_free(&cfg);
}

static struct kn_job job(const struct kn_message *m, const char *addr,
                         const char *bindex, const char *key)
{
    struct kn_job j;
    memset(&j, 0, sizeof(j));
    j.msg = m;
    j.channel = "email";
    j.addr = addr;
    j.bindex = bindex;
    j.key = key;
    j.naddr = 1;
    return j;
}

static void test_body(void **state)
{
    struct kn_config cfg;
    struct kn__sendgrid_from f;
    struct kn_message m;
    struct kn_job j1, j2;
    struct kn_job *jobs[2] = {&j1, &j2};
    json_t *b, *p, *h;
    char *s, *mid;

    load(&cfg, "桜高校 <noreply@sakura.example.jp>", NULL);
    assert_int_equal(kn__sendgrid_from_init(&f, &cfg), 0);
    memset(&m, 0, sizeof(m));
    m.bcast = "b-20261122-1";
    m.subject = "【緊急】台風接近に伴う臨時休校";
    m.body = "保護者各位\n明日は休校です。";
    m.urgent = 1;
    j1 = job(&m, "taro@example.jp", "0123456789abcdef0123456789abcdef",
             "email:k1");
    j2 = job(&m, "hanako@example.jp", "fedcba9876543210fedcba9876543210",
             NULL);
    j1.bounce_ref = "abcdefghijklmnop";

    s = kn__sendgrid_body(&f, jobs, 2);
    assert_non_null(s);
    /* UTF-8 as is, not \u escapes: SendGrid takes UTF-8 JSON. */
    assert_non_null(strstr(s, "台風接近"));
    b = json_loads(s, 0, NULL);
    assert_non_null(b);
    assert_string_equal(json_string_value(json_object_get(b, "subject")),
                        m.subject);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(b, "from"), "email")),
                        "noreply@sakura.example.jp");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(b, "from"), "name")),
                        "桜高校");
    assert_null(json_object_get(b, "reply_to"));
    p = json_object_get(b, "content");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(p, 0), "type")),
        "text/plain");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(p, 0), "value")),
        m.body);
    h = json_object_get(b, "headers");
    assert_string_equal(json_string_value(json_object_get(h, "Importance")),
                        "high");
    /* SendGrid's own tracking pinned off whatever the account says: its
     * subscription tracking would add a second List-Unsubscribe (and one
     * to urgent and emergency mail, which must have none) and a footer
     * whose click suppresses the address at SendGrid; click tracking
     * would rewrite the personal confirmation and my-page links. */
    h = json_object_get(b, "tracking_settings");
    assert_true(json_is_false(json_object_get(
        json_object_get(h, "subscription_tracking"), "enable")));
    assert_true(json_is_false(
        json_object_get(json_object_get(h, "click_tracking"), "enable")));
    assert_true(json_is_false(
        json_object_get(json_object_get(h, "click_tracking"), "enable_text")));
    assert_true(json_is_false(
        json_object_get(json_object_get(h, "open_tracking"), "enable")));

    p = json_object_get(b, "personalizations");
    assert_int_equal(json_array_size(p), 2);
    assert_string_equal(
        json_string_value(json_object_get(
            json_array_get(json_object_get(json_array_get(p, 0), "to"), 0),
            "email")),
        "taro@example.jp");
    /* The Message-ID the SMTP adapter would have written. */
    mid = kn_mime_message_id(m.bcast, "0123456789abcdef",
                             "sakura.example.jp");
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_array_get(p, 0), "headers"), "Message-ID")),
        mid);
    free(mid);
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_array_get(p, 0), "custom_args"),
            "kairan_bc")),
        "b-20261122-1");
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_array_get(p, 0), "custom_args"),
            "kairan_job")),
        "email:k1");
    assert_non_null(json_string_value(json_object_get(
        json_object_get(json_array_get(p, 1), "custom_args"), "kairan_job")));
    /* the bounce reference: the Event Webhook attributes by it (issue 18) */
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_array_get(p, 0), "custom_args"),
            "kairan_ref")),
        "abcdefghijklmnop");
    assert_null(json_object_get(
        json_object_get(json_array_get(p, 1), "custom_args"), "kairan_ref"));
    json_decref(b);
    free(s);

    /* A drill: subject prefix and the drill line, as in the mail. */
    m.drill = 1;
    m.urgent = 0;
    s = kn__sendgrid_body(&f, jobs, 1);
    b = json_loads(s, 0, NULL);
    assert_true(strncmp(json_string_value(json_object_get(b, "subject")),
                        "【訓練】", strlen("【訓練】")) == 0);
    assert_non_null(strstr(
        json_string_value(json_object_get(
            json_array_get(json_object_get(b, "content"), 0), "value")),
        "This is a drill"));
    /* not urgent: no priority headers; the language always */
    assert_null(json_object_get(json_object_get(b, "headers"), "Importance"));
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(b, "headers"), "Content-Language")),
                        "ja");
    json_decref(b);
    free(s);
    /* a translation: its language */
    m.lang = "en";
    s = kn__sendgrid_body(&f, jobs, 1);
    b = json_loads(s, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(b, "headers"), "Content-Language")),
                        "en");
    json_decref(b);
    free(s);
    m.lang = NULL;

    /* Personal links: one body with a tag, the link per personalization
     * (and nothing for a job without one). */
    m.drill = 0;
    j1.link = "https://kairan.example.jp/a/tok1";
    s = kn__sendgrid_body(&f, jobs, 2);
    b = json_loads(s, 0, NULL);
    {
        const char *value = json_string_value(json_object_get(
            json_array_get(json_object_get(b, "content"), 0), "value"));
        json_t *s0 = json_object_get(
            json_array_get(json_object_get(b, "personalizations"), 0),
            "substitutions");
        json_t *s1 = json_object_get(
            json_array_get(json_object_get(b, "personalizations"), 1),
            "substitutions");
        const char *tag;
        json_t *val;
        assert_int_equal(json_object_size(s0), 1);
        json_object_foreach(s0, tag, val) {
            assert_non_null(strstr(value, tag));
            assert_non_null(strstr(json_string_value(val), j1.link));
            assert_non_null(strstr(json_string_value(val), "確認しました"));
            assert_string_equal(json_string_value(json_object_get(s1, tag)),
                                "");
        }
        assert_null(strstr(value, "https://"));
    }
    json_decref(b);
    free(s);

    /* SendGrid substitutes in the subject and the content alike: a
     * subject or body that holds the tag (or ends in a part of it) must
     * not get the personal links, line breaks and all, put into it. */
    m.subject = "件名 -kairan-confirm-link- です";
    m.body = "本文 -kairan-confirm-link- と -kairan-confirm-link";
    s = kn__sendgrid_body(&f, jobs, 2);
    b = json_loads(s, 0, NULL);
    {
        const char *value = json_string_value(json_object_get(
            json_array_get(json_object_get(b, "content"), 0), "value"));
        json_t *s0 = json_object_get(
            json_array_get(json_object_get(b, "personalizations"), 0),
            "substitutions");
        const char *tag;
        json_t *val;
        assert_int_equal(json_object_size(s0), 1);
        json_object_foreach(s0, tag, val) {
            const char *at = strstr(value, tag);
            assert_null(strstr(json_string_value(json_object_get(b, "subject")),
                               tag));
            /* once, at the very end, after the whole body */
            assert_non_null(at);
            assert_int_equal(strlen(at), strlen(tag));
            assert_int_equal((size_t)(at - value), strlen(m.body));
        }
    }
    json_decref(b);
    free(s);
    m.subject = "【緊急】台風接近に伴う臨時休校";
    m.body = "保護者各位\n明日は休校です。";
    j1.link = NULL;

    /* RFC 8058 (issue 16): the one-click headers in the personalization
     * of a job that has a URL, none in another's. */
    j1.unsub = "https://kairan.example.jp/u/tok1.0123";
    s = kn__sendgrid_body(&f, jobs, 2);
    b = json_loads(s, 0, NULL);
    {
        json_t *h0 = json_object_get(
            json_array_get(json_object_get(b, "personalizations"), 0),
            "headers");
        json_t *h1 = json_object_get(
            json_array_get(json_object_get(b, "personalizations"), 1),
            "headers");
        assert_string_equal(
            json_string_value(json_object_get(h0, "List-Unsubscribe")),
            "<https://kairan.example.jp/u/tok1.0123>");
        assert_string_equal(
            json_string_value(json_object_get(h0, "List-Unsubscribe-Post")),
            "List-Unsubscribe=One-Click");
        assert_null(json_object_get(h1, "List-Unsubscribe"));
        assert_null(json_object_get(h1, "List-Unsubscribe-Post"));
    }
    json_decref(b);
    free(s);
    j1.unsub = NULL;

    m.subject = "\xff";
    assert_null(kn__sendgrid_body(&f, jobs, 1));

    kn__sendgrid_from_free(&f);
    kn_config_free(&cfg);
}

static struct kn_result classify(long status, const char *body,
                                 const char *h1, const char *h2,
                                 char *detail, size_t len)
{
    struct kn_http_resp resp;
    struct kn_result r;
    memset(&resp, 0, sizeof(resp));
    resp.rc = CURLE_OK;
    resp.status = status;
    resp.body = body;
    resp.bodylen = strlen(body);
    if (h1)
        resp._headers = curl_slist_append(resp._headers, h1);
    if (h2)
        resp._headers = curl_slist_append(resp._headers, h2);
    kn__sendgrid_classify(&resp, 1795308258000LL, &r, detail, len);
    curl_slist_free_all(resp._headers);
    return r;
}

static void test_classify(void **state)
{
    char d[512];
    struct kn_result r;
    struct kn_http_resp resp;

    r = classify(202, "", "X-Message-Id: abcDEF123", NULL, d, sizeof(d));
    assert_int_equal(r.status, KN_DELIVERED);
    assert_non_null(strstr(r.detail, "abcDEF123"));

    /* Any 2xx is an acceptance (a proxy's 204, say): never sent again,
     * which would mail every recipient of the request twice. */
    r = classify(204, "", NULL, NULL, d, sizeof(d));
    assert_int_equal(r.status, KN_DELIVERED);
    r = classify(201, "{}", NULL, NULL, d, sizeof(d));
    assert_int_equal(r.status, KN_DELIVERED);

    r = classify(429, "{\"errors\":[{\"message\":\"too many requests\"}]}",
                 "X-RateLimit-Reset: 1795308263", "Retry-After: 60", d,
                 sizeof(d));
    assert_int_equal(r.status, KN_TEMPFAIL);
    assert_int_equal(r.retry_after_ms, 5000); /* the reset wins */

    r = classify(429, "{}", "Retry-After: 7", NULL, d, sizeof(d));
    assert_int_equal(r.retry_after_ms, 7000);
    r = classify(429, "{}", "X-RateLimit-Reset: 1", NULL, d, sizeof(d));
    assert_int_equal(r.retry_after_ms, 1000); /* in the past: a second */

    r = classify(401,
                 "{\"errors\":[{\"message\":\"authorization required\","
                 "\"field\":null}]}",
                 NULL, NULL, d, sizeof(d));
    assert_int_equal(r.status, KN_TEMPFAIL);
    assert_true(r.auth);
    assert_non_null(strstr(r.detail, "authorization required"));
    r = classify(403, "{\"errors\":[{\"message\":\"access forbidden\"}]}",
                 NULL, NULL, d, sizeof(d));
    assert_int_equal(r.status, KN_TEMPFAIL);
    assert_true(r.auth);

    r = classify(400,
                 "{\"errors\":[{\"message\":\"Does not contain a valid "
                 "address: taro.yamada@example.jp\",\"field\":"
                 "\"personalizations.0.to.0.email\"}]}",
                 NULL, NULL, d, sizeof(d));
    assert_int_equal(r.status, KN_PERMFAIL);
    assert_false(r.auth);
    assert_non_null(strstr(r.detail, "personalizations.0.to.0.email"));
    assert_non_null(strstr(r.detail, "Does not contain a valid address"));
    assert_null(strstr(r.detail, "taro.yamada@"));

    r = classify(413, "{\"errors\":[{\"message\":\"content too large\"}]}",
                 NULL, NULL, d, sizeof(d));
    assert_int_equal(r.status, KN_PERMFAIL);

    r = classify(500, "{\"errors\":[{\"message\":\"internal server error\"}]}",
                 NULL, NULL, d, sizeof(d));
    assert_int_equal(r.status, KN_TEMPFAIL);
    assert_int_equal(r.retry_after_ms, 0);
    r = classify(503, "unavailable", "Retry-After: 2", NULL, d, sizeof(d));
    assert_int_equal(r.status, KN_TEMPFAIL);
    assert_int_equal(r.retry_after_ms, 2000);

    memset(&resp, 0, sizeof(resp));
    resp.rc = CURLE_COULDNT_CONNECT;
    resp.error = "Failed to connect to 127.0.0.1 port 9: Connection refused";
    resp.body = "";
    kn__sendgrid_classify(&resp, 0, &r, d, sizeof(d));
    assert_int_equal(r.status, KN_TEMPFAIL);
    assert_non_null(strstr(r.detail, "Connection refused"));
    resp.rc = CURLE_ABORTED_BY_CALLBACK;
    kn__sendgrid_classify(&resp, 0, &r, d, sizeof(d));
    assert_ptr_equal(r.detail, kn_detail_aborted);
}

/* SendGrid names every refused address of a batch: the cut of the detail
 * falls inside one, which must be masked all the same. */
static void test_classify_cut_address(void **state)
{
    char d[512], body[8192];
    struct kn_result r;
    /* a first error of every length up to one address error, so that the
     * cut falls on every place of an address */
    for (int k = 0; k < 80; k++) {
        size_t o = (size_t)snprintf(body, sizeof(body),
                                    "{\"errors\":[{\"message\":\"%.*s\"}",
                                    k, "................................"
                                       "................................"
                                       "................................");
        for (int i = 0; i < 30; i++)
            o += (size_t)snprintf(body + o, sizeof(body) - o,
                                  ",{\"message\":\"Does not contain a valid "
                                  "address: guardian%02d.yamada@docomo.ne.jp"
                                  "\",\"field\":null}",
                                  i);
        snprintf(body + o, sizeof(body) - o, "]}");
        r = classify(400, body, NULL, NULL, d, sizeof(d));
        if (strstr(r.detail, "uardian") != NULL)
            print_message("detail: %s\n", r.detail);
        assert_int_equal(r.status, KN_PERMFAIL);
        assert_null(strstr(r.detail, "uardian"));
        assert_null(strstr(r.detail, "yamada"));
    }
}

static void test_table(void **state)
{
    assert_ptr_equal(kn_adapter_find("sendgrid"), &kn_adapter_sendgrid);
    assert_int_equal(kn_adapter_sendgrid.max_batch, 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_from),
        cmocka_unit_test(test_body),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_classify_cut_address),
        cmocka_unit_test(test_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
