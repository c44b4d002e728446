/*
 * apns.c - Apple Push Notification service, provider API over HTTP/2 with
 * token authentication (PROVIDERS.md 3, specs/PUSH-CHECKLIST.md): one
 * request per device, POST {api_base}/3/device/<hex token>, many streams
 * over a few long-lived connections (Apple treats rapid reconnects as an
 * attack).
 *
 * The provider token (an ES256 JWT signed with the team's .p8 key) is
 * apns_token.c's: one per team and key for every kairand process, shared
 * through the dispatcher, replaced only within Apple's window.  A send
 * before the first token waits for it (not long: the store answers or
 * fails, and then the process signs its own).  A 403 ExpiredProviderToken
 * or InvalidProviderToken hands the token back to apns_token.c, which
 * replaces it once, shared, when the rules allow.
 *
 * Each request carries an apns-id derived from the job's key (the same on
 * every retry), apns-collapse-id = the broadcast, apns-expiration = the
 * broadcast's expiry, so a phone offline until after it never shows it.
 * This file never logs a device token or a key.
 */
#include <ctype.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/http.h"
#include "adapters/jwt.h"
#include "adapters/net.h"
#include "adapters/push.h"
#include "common/kn.h"
#include "common/codec.h"
#include "common/log.h"
#include "config/config.h"
#include "model/address.h"

struct apns_req {
    struct kn__apns *p;
    struct kn_job *job;
    kn_done_cb *done;
    void *arg;
    uint64_t gen; /* the provider token it was sent with */
    char detail[400];
};

/* A job waiting for the first provider token. */
struct apns_wait {
    struct kn_job *job;
    kn_done_cb *done;
    void *arg;
    struct apns_wait *next;
};

struct kn__apns {
    struct kn_h2pool *pool; /* connections counted (http.h) */
    char *base, *topic, *key_id, *team_id, *ca_file;
    EVP_PKEY *key;
    long timeout_ms;
    size_t connections;
    struct kn__apns_token *tok; /* the provider token (apns_token.c) */
    struct apns_wait *waiting, **waiting_tail;
    size_t in_flight;
    int closing;
    /* APNs has accepted a notification from this process: its
     * BadDeviceToken is about the token, not an environment mismatch
     * (sandbox tokens on the production host, or the reverse), which
     * would say it of every token. */
    int accepted;
};

/* ---- pure parts (unit-tested) ---- */

void kn__apns_collapse_id(const char *bcast, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    size_t len = strlen(bcast);
    if (len <= 64) {
        memcpy(out, bcast, len + 1);
        return;
    }
    if (EVP_Digest(bcast, len, md, &n, EVP_sha256(), NULL) != 1 || n != 32)
        KN_PANIC("SHA-256 failed");
    kn_hex_encode(md, 32, out);
}

static json_t *apns_build(void *ctx, const char *title, const char *body)
{
    const struct kn_job *job = ctx;
    const struct kn_message *m = job->msg;
    json_t *t = json_string(title), *b = json_string(body), *aps, *root;
    if (t == NULL || b == NULL) {
        json_decref(t);
        json_decref(b);
        return NULL;
    }
    aps = json_pack("{s:{s:o, s:o}}", "alert", "title", t, "body", b);
    if (aps == NULL)
        return NULL;
    if (m->urgent)
        json_object_set_new(aps, "sound", json_string("default"));
    root = json_pack("{s:o}", "aps", aps);
    if (root != NULL && m->bcast != NULL)
        json_object_set_new(root, "bc", json_string(m->bcast));
    if (root != NULL && job->link != NULL)
        json_object_set_new(root, KN_PUSH_ACK_KEY, json_string(job->link));
    return root;
}

int kn__apns_payload(const struct kn_job *job, char **out, size_t *len)
{
    char *title, *body, *link;
    int rc;
    kn__push_text(job, &title, &body, &link);
    rc = kn__push_fit(apns_build, (void *)job, title, body, link,
                      KN_PUSH_MAX_PAYLOAD, out, len);
    free(title);
    free(body);
    free(link);
    return rc;
}

static int is(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

/*
 * Classification (PROVIDERS.md 3, the action table):
 *  1. 200 (any 2xx): delivered; the detail keeps the apns-id.
 *  2. 410 Unregistered or ExpiredToken: permanent, the token is dead.  A
 *     410 without either reason is not APNs' answer (a proxy's page, a
 *     wrong apns.api_base): tempfail + auth, never dead.
 *  3. 400 BadDeviceToken: permanent, dead.
 *  4. 400 BadTopic, TopicDisallowed: permanent and our configuration
 *     (auth): the wrong app or environment.  DeviceTokenNotForTopic is
 *     about one token (of another app: a former or sibling app, or one
 *     registered on purpose): permanent for that job only, never a pause
 *     of the push route for every recipient; not dead either (a wrong
 *     apns.topic would say it of every token).
 *  5. Other 400, 404 BadPath, 405, 413 PayloadTooLarge, other 4xx:
 *     permanent, with Apple's reason.
 *  6. 403 ExpiredProviderToken: tempfail; returns KN__APNS_EXPIRED (the
 *     provider token is replaced if the rules allow).
 *  7. Other 403 (InvalidProviderToken, MissingProviderToken, certificate
 *     or environment errors): tempfail + auth; InvalidProviderToken
 *     returns KN__APNS_INVALID (replaced once, as 6).
 *  8. 429 (TooManyRequests for the device, TooManyProviderTokenUpdates),
 *     500, 503 and anything else: tempfail, Retry-After honoured.
 */
int kn__apns_classify(long status, const char *body, const char *retry_after,
                      const char *apns_id, const char *token, int64_t now_ms,
                      struct kn_result *r, char *detail, size_t dlen)
{
    json_t *j = body && *body ? json_loads(body, 0, NULL) : NULL;
    const char *reason = json_string_value(json_object_get(j, "reason"));
    char text[80];
    int expired = 0;

    memset(r, 0, sizeof(*r));
    r->detail = detail;
    /* The reason is one of Apple's identifiers; scrub it anyway (it is
     * provider text).  Without JSON, a little of the raw body says what
     * answered (a proxy's HTML page, say). */
    kn__push_scrub(reason ? reason : (j == NULL && body ? body : ""), token,
                   text, reason ? sizeof(text) : 60);
    if (status >= 200 && status <= 299) {
        /* 200 is APNs'; any 2xx is an acceptance (never sent again). */
        r->status = KN_DELIVERED;
        kn__push_scrub(apns_id, token, text, 64);
        snprintf(detail, dlen, "apns %ld apns-id=%s", status, text);
        json_decref(j);
        return 0;
    }
    r->status = KN_TEMPFAIL;
    if (status == 410 && reason != NULL &&
        (is(text, "Unregistered") || is(text, "ExpiredToken"))) {
        r->status = KN_PERMFAIL;
        r->dead = 1;
    } else if (status == 410) {
        /* Not APNs' answer (its 410 is JSON with one of those reasons):
         * a wrong apns.api_base must never mark every token dead. */
        r->auth = 1;
        snprintf(text, sizeof(text),
                 "not an APNs answer (no reason Unregistered): check "
                 "apns.api_base");
    } else if (status == 400) {
        r->status = KN_PERMFAIL;
        if (is(text, "BadDeviceToken"))
            r->dead = 1;
        else if (is(text, "BadTopic") || is(text, "TopicDisallowed"))
            r->auth = 1;
    } else if (status == 403) {
        if (is(text, "ExpiredProviderToken")) {
            expired = KN__APNS_EXPIRED;
        } else {
            r->auth = 1;
            if (is(text, "InvalidProviderToken"))
                expired = KN__APNS_INVALID;
        }
    } else if (status == 429 || status >= 500) {
        r->retry_after_ms = kn__push_retry_after(retry_after, now_ms);
    } else if (status >= 400 && status < 500) {
        r->status = KN_PERMFAIL;
    } else {
        r->retry_after_ms = kn__push_retry_after(retry_after, now_ms);
    }
    snprintf(detail, dlen, "apns %ld%s%s%s", status, *text ? " " : "", text,
             r->dead ? " (token dead)" : "");
    json_decref(j);
    return expired;
}

/* ---- requests ---- */

static void req_finish(struct apns_req *q, const struct kn_result *r)
{
    struct kn__apns *p = q->p;
    p->in_flight--;
    q->done(q->job, r, q->arg);
    free(q);
}

static void req_fail(struct apns_req *q, enum kn_status st, int dead, int auth,
                     const char *detail)
{
    struct kn_result r = {
        .status = st, .dead = dead ? 1 : 0, .auth = auth ? 1 : 0};
    if (detail == kn_detail_aborted) {
        r.detail = kn_detail_aborted;
    } else {
        snprintf(q->detail, sizeof(q->detail), "%s", detail);
        r.detail = q->detail;
    }
    req_finish(q, &r);
}

static void on_sent(const struct kn_http_resp *resp, void *arg)
{
    struct apns_req *q = arg;
    struct kn__apns *p = q->p;
    struct kn_result r;
    char err[200];
    int64_t now = kn_now_ms();
    int expired;
    if (resp->rc == CURLE_ABORTED_BY_CALLBACK || p->closing) {
        req_fail(q, KN_TEMPFAIL, 0, 0, kn_detail_aborted);
        return;
    }
    if (resp->rc != CURLE_OK) {
        snprintf(err, sizeof(err), "apns transport%s: %s",
                 resp->maybe_sent ? " (sent, no answer: may be a duplicate "
                                    "when retried)"
                                  : "",
                 resp->error ? resp->error : curl_easy_strerror(resp->rc));
        req_fail(q, KN_TEMPFAIL, 0, 0, err);
        return;
    }
    expired = kn__apns_classify(resp->status, resp->body,
                                kn_http_header(resp, "retry-after"),
                                kn_http_header(resp, "apns-id"), q->job->addr,
                                now, &r, q->detail, sizeof(q->detail));
    if (r.status == KN_DELIVERED)
        p->accepted = 1;
    if (r.dead && resp->status == 400 && !p->accepted) {
        /* BadDeviceToken before APNs accepted anything from us: maybe
         * every token is "bad" for this host (PROVIDERS.md 3: rule out
         * an environment mismatch first).  A dead token is never sent
         * to again: not marked until the configuration has proven
         * itself. */
        kn__push_not_dead(
            &r, q->detail, sizeof(q->detail),
            "APNs has accepted nothing from this "
            "configuration yet; apns.api_base sandbox or production?");
    }
    if (expired)
        kn__apns_token_refused(p->tok, q->gen, q->detail, sizeof(q->detail));
    req_finish(q, &r);
}

void kn__apns_send(struct kn__apns *p, struct kn_job *job, kn_done_cb *done,
                   void *arg)
{
    struct apns_req *q = kn_xcalloc(1, sizeof(*q));
    const struct kn_message *m = job->msg;
    char *body = NULL, *url, *key;
    size_t len = 0;
    char prio[32], exp[48], collapse[65], cid[100], uuid[37], id[64];
    char topic[300];
    const char *headers[10], *auth = NULL;
    size_t h = 0;
    struct kn_http_req hr = {
        .method = "POST",
        .timeout_ms = p->timeout_ms,
        .ca_file = p->ca_file,
        .http2 = 1,
        .once = 1, /* APNs does not de-duplicate by apns-id */
    };
    int rc;
    q->p = p;
    q->job = job;
    q->done = done;
    q->arg = arg;
    p->in_flight++;
    if (p->closing) {
        req_fail(q, KN_TEMPFAIL, 0, 0, kn_detail_aborted);
        return;
    }
    if (kn_addr_apns_check(job->addr, NULL) < 0) {
        req_fail(q, KN_PERMFAIL, 1, 0,
                 "apns: not a device token (64 to 200 hex digits expected) "
                 "(token dead)");
        return;
    }
    rc = kn__apns_payload(job, &body, &len);
    if (rc < 0) {
        req_fail(q, KN_PERMFAIL, 0, 0,
                 rc == KN_ETOOBIG
                     ? "apns: the notification cannot be made to fit 4096 "
                       "bytes"
                     : "apns: invalid message (bad UTF-8 in subject or "
                       "body)");
        return;
    }
    rc = kn__apns_token_get(p->tok, &auth, &q->gen);
    if (rc == KN_EAGAIN) {
        /* The first token is on its way: wait for it (apns_ready). */
        struct apns_wait *w = kn_xcalloc(1, sizeof(*w));
        free(body);
        free(q);
        w->job = job;
        w->done = done;
        w->arg = arg;
        *p->waiting_tail = w;
        p->waiting_tail = &w->next;
        return;
    }
    if (rc < 0) {
        free(body);
        req_fail(q, KN_TEMPFAIL, 0, 1,
                 "apns: cannot sign the provider token (apns.key_file)");
        return;
    }
    /* The same key on every retry gives the same apns-id. */
    key = job->key ? kn_xstrdup(job->key)
                   : kn_xasprintf("%s:%s", m->bcast ? m->bcast : "",
                                  job->bindex ? job->bindex : job->addr);
    kn__push_uuid(key, uuid);
    free(key);
    kn__apns_collapse_id(m->bcast ? m->bcast : "", collapse);
    snprintf(prio, sizeof(prio), "apns-priority: %s", m->urgent ? "10" : "5");
    snprintf(exp, sizeof(exp), "apns-expiration: %lld",
             (long long)(m->expires_ms > 0 ? m->expires_ms / 1000 : 0));
    snprintf(cid, sizeof(cid), "apns-collapse-id: %s", collapse);
    snprintf(id, sizeof(id), "apns-id: %s", uuid);
    snprintf(topic, sizeof(topic), "apns-topic: %s", p->topic);
    headers[h++] = auth;
    headers[h++] = topic;
    headers[h++] = "apns-push-type: alert";
    headers[h++] = prio;
    headers[h++] = exp;
    if (*collapse)
        headers[h++] = cid;
    headers[h++] = id;
    headers[h++] = "content-type: application/json";
    headers[h] = NULL;
    url = kn_xasprintf("%s/3/device/%s", p->base, job->addr);
    hr.url = url;
    hr.headers = headers;
    hr.body = body;
    hr.bodylen = len;
    kn__h2pool_send(p->pool, &hr, on_sent, q);
    free(url);
    free(body);
}

size_t kn__apns_in_flight(const struct kn__apns *p)
{
    return p->in_flight;
}

uint64_t kn__apns_refreshes(const struct kn__apns *p)
{
    return kn__apns_token_signed(p->tok);
}

/* The provider token is there (or could not be had): send what waited.
 * Each was counted in flight; kn__apns_send counts it again. */
static void apns_ready(void *arg)
{
    struct kn__apns *p = arg;
    struct apns_wait *w = p->waiting;
    p->waiting = NULL;
    p->waiting_tail = &p->waiting;
    while (w != NULL) {
        struct apns_wait *next = w->next;
        p->in_flight--;
        kn__apns_send(p, w->job, w->done, w->arg);
        free(w);
        w = next;
    }
}

size_t kn__apns_connections(const struct kn__apns *p)
{
    return p->connections;
}

/* ---- open and close ---- */

static void apns_free(struct kn__apns *p)
{
    if (p->tok != NULL)
        kn__apns_token_close(p->tok);
    EVP_PKEY_free(p->key);
    free(p->base);
    free(p->topic);
    free(p->key_id);
    free(p->team_id);
    free(p->ca_file);
    free(p);
}

static int bad(const char *what, const char *value, const char *hint)
{
    kn_log(KN_LOG_ERROR, "apns", what, "value", value, "hint", hint, NULL);
    return KN_ECONFIG;
}

/* Key and team ids are 10 upper-case letters and digits; a bundle id is
 * letters, digits, dots and hyphens.  Anything else could not be right and
 * could break a header line. */
static int word_ok(const char *s, const char *extra, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return 0;
    for (; *s; s++) {
        if (!isalnum((unsigned char)*s) && strchr(extra, *s) == NULL)
            return 0;
    }
    return 1;
}

int kn__apns_open(uv_loop_t *loop, const struct kn_config *cfg,
                  const struct kn_adapter_host *host, struct kn__apns **out)
{
    struct kn__apns *p;
    const char *why = NULL;
    char err[200];
    size_t n;
    int set = (cfg->apns_key_file != NULL) + (cfg->apns_key_id != NULL) +
              (cfg->apns_team_id != NULL) + (cfg->apns_topic != NULL);
    *out = NULL;
    if (set == 0)
        return 0;
    if (set != 4)
        return bad("[apns] needs key_file, key_id, team_id and topic",
                   cfg->apns_key_file  ? "key_file set"
                   : cfg->apns_key_id  ? "key_id set"
                   : cfg->apns_team_id ? "team_id set"
                                       : "topic set",
                   "set all four, or none to leave APNs off");
    if (!word_ok(cfg->apns_key_id, "", 32))
        return bad("apns.key_id is not a key id", cfg->apns_key_id,
                   "the 10-character Key ID of the .p8 key");
    if (!word_ok(cfg->apns_team_id, "", 32))
        return bad("apns.team_id is not a team id", cfg->apns_team_id,
                   "the 10-character Team ID");
    if (!word_ok(cfg->apns_topic, ".-_", 200))
        return bad("apns.topic is not a bundle id", cfg->apns_topic,
                   "the app's bundle id, e.g. jp.example.sakura.app");
    if (kn__http_url_ok(cfg->apns_api_base, &why) < 0)
        return bad("apns.api_base is refused", cfg->apns_api_base, why);
    p = kn_xcalloc(1, sizeof(*p));
    p->waiting_tail = &p->waiting;
    p->key = kn_jwt_key_file(cfg->apns_key_file, err, sizeof(err));
    if (p->key == NULL || EVP_PKEY_get_base_id(p->key) != EVP_PKEY_EC) {
        bad("apns.key_file is not an EC (P-256) private key",
            cfg->apns_key_file,
            p->key ? "use the .p8 file from the Apple developer account" : err);
        apns_free(p);
        return KN_ECONFIG;
    }
    p->base = kn_xstrdup(cfg->apns_api_base);
    n = strlen(p->base);
    while (n > 0 && p->base[n - 1] == '/')
        p->base[--n] = '\0';
    p->topic = kn_xstrdup(cfg->apns_topic);
    p->key_id = kn_xstrdup(cfg->apns_key_id);
    p->team_id = kn_xstrdup(cfg->apns_team_id);
    p->ca_file = cfg->apns_ca_file ? kn_xstrdup(cfg->apns_ca_file) : NULL;
    p->timeout_ms = (long)cfg->apns_timeout_ms;
    p->connections = (size_t)cfg->apns_connections;
    p->pool = kn__h2pool_new(loop, p->connections, KN_PUSH_STREAMS_PER_CONN,
                             (size_t)cfg->apns_requests_per_connection);
    p->tok = kn__apns_token_new(loop, p->key, p->key_id, p->team_id, host,
                                cfg->apns_token_check_ms, apns_ready, p);
    kn_log(KN_LOG_INFO, "apns", "configured", "api", p->base, "topic", p->topic,
           "key_id", p->key_id, "team_id", p->team_id, NULL);
    *out = p;
    return 0;
}

void kn__apns_close(struct kn__apns *p)
{
    p->closing = 1;
    apns_ready(p);             /* what waited for a token: aborted (closing) */
    kn__h2pool_close(p->pool); /* sends in flight: aborted */
    apns_free(p);
}
