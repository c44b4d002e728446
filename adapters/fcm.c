/*
 * fcm.c - Firebase Cloud Messaging HTTP v1: one request per device token,
 * POST {api_base}/v1/projects/{project}/messages:send, many in flight over
 * a few HTTP/2 connections (PROVIDERS.md 2).
 *
 * Authorization is an OAuth2 access token from Google's service-account
 * flow: a JWT (RS256, signed with the service account's key) posted to the
 * token endpoint.  The token is cached and shared by every request.  There
 * is at most one token request in flight: jobs that find no usable token
 * wait for it in a list and go out when it comes.  A token is renewed in
 * the background shortly before it expires (jobs keep using the old one
 * meanwhile), and at once when FCM answers 401 to a request sent with the
 * current token; such a request is sent once more with the new token, and
 * only once.  A new token that is refused too before FCM accepted it once
 * is kept (dropped again only after a minute): the credentials (or a proxy
 * that strips them) are the problem, and a token request per refusal
 * would follow every job in flight.  A token endpoint that fails is not asked
 * again before a back-off (1 s doubling to 60 s); jobs meanwhile tempfail with
 * its answer.
 *
 * The token endpoint has its own curl multi handle (one connection), so
 * that hourly renewals never take a slot from the send connections.
 *
 * This file never logs a device token, an access token or a key, and a
 * provider's text is scrubbed of the token before it reaches a detail.
 */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "adapters/http.h"
#include "adapters/jwt.h"
#include "adapters/net.h"
#include "adapters/push.h"
#include "common/kn.h"
#include "common/log.h"
#include "config/config.h"
#include "model/address.h"

#define FCM_SCOPE             "https://www.googleapis.com/auth/firebase.messaging"
#define FCM_DEFAULT_TOKEN_URL "https://oauth2.googleapis.com/token"
#define FCM_MAX_TTL_S         2419200 /* 4 weeks */
#define FCM_BACKOFF_MIN_MS    1000
#define FCM_BACKOFF_MAX_MS    60000
#define FCM_QUOTA_WAIT_MS     60000 /* 429 without Retry-After */
#define FCM_DROP_INTERVAL_MS  60000 /* a refused new token: dropped after */
/* Google's access tokens live an hour; a longer expires_in is taken as a
 * day (and never multiplied past 64 bits). */
#define FCM_TOKEN_MAX_LIFE_S 86400

struct fcm_req {
    struct kn__fcm *f;
    struct kn_job *job;
    kn_done_cb *done;
    void *arg;
    char *body;
    size_t len;
    uint64_t gen;         /* the access token it was sent with */
    int retried;          /* already sent again after a 401 */
    struct fcm_req *next; /* waiting for a token */
    char detail[400];
};

struct kn__fcm {
    struct kn_h2pool *pool;  /* sends: connections counted (http.h) */
    struct kn_net *auth_net; /* the token endpoint */
    char *send_url, *token_url, *project;
    char *client_email, *key_id;
    EVP_PKEY *key;
    char *ca_file;
    long timeout_ms;
    size_t connections;
    /* The shared access token, as a header line "Authorization: Bearer". */
    char *auth_header;
    int64_t expires_ms, lifetime_ms;
    uint64_t gen; /* bumped by every new token */
    int refreshing;
    int64_t failed_ms, backoff_ms; /* last failed token request */
    int failed_auth;
    char failed_detail[300];
    /* A token was dropped after a 401 and no answer since accepted the
     * one that replaced it: a refused new token is kept (dropped again
     * only after FCM_DROP_INTERVAL_MS), the credentials being the
     * problem, so that a refusing FCM never turns into a stream of token
     * requests. */
    int dropped_unproven;
    int64_t dropped_ms;
    struct fcm_req *waiting, *waiting_tail;
    size_t in_flight;
    uint64_t refreshes;
    uint64_t maybe_sent; /* lost answers to written requests */
    int closing;
    /* FCM has accepted a message from this process: its
     * SENDER_ID_MISMATCH is about the token, not a service account of
     * another Firebase project, which would say it of every token. */
    int accepted;
};

static void dispatch(struct kn__fcm *f, struct fcm_req *q);

/* ---- pure parts (unit-tested) ---- */

int kn__fcm_token_state(int64_t expires_ms, int64_t lifetime_ms, int64_t now_ms)
{
    int64_t margin = lifetime_ms / 4;
    if (margin > 5 * 60 * 1000)
        margin = 5 * 60 * 1000;
    if (expires_ms <= 0 || now_ms >= expires_ms)
        return 2;
    if (now_ms >= expires_ms - margin)
        return 1;
    return 0;
}

struct fcm_build {
    const struct kn_job *job;
    int64_t now_ms;
};

static json_t *fcm_build(void *ctx, const char *title, const char *body)
{
    const struct fcm_build *b = ctx;
    const struct kn_message *m = b->job->msg;
    json_t *t = json_string(title), *bd = json_string(body), *msg, *android,
           *headers, *data;
    char ttl[32], exp[32];
    if (t == NULL || bd == NULL) {
        json_decref(t);
        json_decref(bd);
        return NULL;
    }
    data = json_pack("{s:s, s:s}", "bc", m->bcast ? m->bcast : "", "kind",
                     m->category ? m->category : "");
    if (data != NULL && b->job->link != NULL)
        json_object_set_new(data, KN_PUSH_ACK_KEY, json_string(b->job->link));
    android = json_pack("{s:s}", "priority", m->urgent ? "HIGH" : "NORMAL");
    headers = json_pack("{s:s, s:s}", "apns-priority", m->urgent ? "10" : "5",
                        "apns-push-type", "alert");
    if (data == NULL || android == NULL || headers == NULL) {
        json_decref(t);
        json_decref(bd);
        json_decref(data);
        json_decref(android);
        json_decref(headers);
        return NULL;
    }
    if (m->expires_ms > 0) {
        /* Time to live: what is left until the broadcast expires, so that
         * a phone that comes online later never shows a stale notice. */
        int64_t s = (m->expires_ms - b->now_ms) / 1000;
        if (s < 0)
            s = 0;
        if (s > FCM_MAX_TTL_S)
            s = FCM_MAX_TTL_S;
        snprintf(ttl, sizeof(ttl), "%llds", (long long)s);
        json_object_set_new(android, "ttl", json_string(ttl));
        snprintf(exp, sizeof(exp), "%lld", (long long)(m->expires_ms / 1000));
        json_object_set_new(headers, "apns-expiration", json_string(exp));
    }
    if (m->bcast != NULL)
        json_object_set_new(android, "collapse_key", json_string(m->bcast));
    msg =
        json_pack("{s:s, s:{s:o, s:o}, s:o, s:o, s:{s:o}}", "token",
                  b->job->addr, "notification", "title", t, "body", bd, "data",
                  data, "android", android, "apns", "headers", headers);
    if (msg == NULL)
        return NULL; /* json_pack released the "o" references */
    return json_pack("{s:o}", "message", msg);
}

int kn__fcm_payload(const struct kn_job *job, int64_t now_ms, char **out,
                    size_t *len)
{
    struct fcm_build b = {.job = job, .now_ms = now_ms};
    char *title, *body, *link;
    int rc;
    kn__push_text(job, &title, &body, &link);
    rc = kn__push_fit(fcm_build, &b, title, body, link, KN_PUSH_MAX_PAYLOAD,
                      out, len);
    free(title);
    free(body);
    free(link);
    return rc;
}

/* The first details[].errorCode of an FCM error object, or NULL. */
static const char *error_code(json_t *err)
{
    json_t *details = json_object_get(err, "details"), *d;
    size_t i;
    json_array_foreach(details, i, d)
    {
        json_t *c = json_object_get(d, "errorCode");
        if (json_is_string(c))
            return json_string_value(c);
    }
    return NULL;
}

static int is(const char *code, const char *want)
{
    return code != NULL && strcmp(code, want) == 0;
}

/*
 * Classification (PROVIDERS.md 2, the errorCode table):
 *  1. 2xx: delivered; the detail keeps the message name.
 *  2. UNREGISTERED, or 404 with FCM's JSON error: permanent, the token is
 *     dead.  A 404 without it (an HTML page: a wrong api_base) is our
 *     configuration: tempfail + auth, never dead.
 *  3. SENDER_ID_MISMATCH: permanent, dead (another project's token).
 *  4. THIRD_PARTY_AUTH_ERROR: Firebase's APNs/Web Push credentials were
 *     refused for this token (an iPhone's or a browser's): permanent
 *     (PROVIDERS.md 8), for that job only.  Not the auth hint: it would
 *     pause the route, Android tokens included, and keep the job for
 *     ever.
 *  5. Any other 401: our access token was refused: tempfail + auth, and
 *     the caller may renew and retry once (returns 1).
 *  6. QUOTA_EXCEEDED or 429: tempfail after Retry-After, else 60 s.
 *  7. UNAVAILABLE, INTERNAL, 5xx: tempfail (Retry-After honoured).
 *  8. INVALID_ARGUMENT or 400: permanent; dead too when the message says
 *     the registration token is not valid.
 *  9. Other 403 (PERMISSION_DENIED: the service account may not send for
 *     this project): tempfail + auth.
 * 10. Other 4xx permanent, anything else tempfail.
 */
int kn__fcm_classify(long status, const char *body, const char *retry_after,
                     const char *token, int64_t now_ms, struct kn_result *r,
                     char *detail, size_t dlen)
{
    json_t *j = body && *body ? json_loads(body, 0, NULL) : NULL;
    json_t *err = json_object_get(j, "error");
    const char *code = NULL, *msg = NULL, *name;
    char text[200];
    int refresh = 0;
    int64_t ra = kn__push_retry_after(retry_after, now_ms);

    memset(r, 0, sizeof(*r));
    r->detail = detail;
    if (json_is_object(err)) {
        code = error_code(err);
        if (code == NULL && json_is_string(json_object_get(err, "status")))
            code = json_string_value(json_object_get(err, "status"));
        if (json_is_string(json_object_get(err, "message")))
            msg = json_string_value(json_object_get(err, "message"));
    }
    kn__push_scrub(msg ? msg : (j == NULL && body ? body : ""), token, text,
                   sizeof(text));
    if (status >= 200 && status < 300) {
        name = json_string_value(json_object_get(j, "name"));
        r->status = KN_DELIVERED;
        snprintf(detail, dlen, "fcm %ld %s", status, name ? name : "");
        json_decref(j);
        return 0;
    }
    if (code == NULL)
        code = "";
    if (status == 404 && !json_is_object(err)) {
        /* Not FCM's answer (its 404 is JSON with an error object): a
         * wrong fcm.api_base must never mark every token dead. */
        r->status = KN_TEMPFAIL;
        r->auth = 1;
        snprintf(text, sizeof(text),
                 "not an FCM answer (HTML?): check fcm.api_base");
    } else if (is(code, "UNREGISTERED") || status == 404) {
        r->status = KN_PERMFAIL;
        r->dead = 1;
    } else if (is(code, "SENDER_ID_MISMATCH")) {
        r->status = KN_PERMFAIL;
        r->dead = 1;
    } else if (is(code, "THIRD_PARTY_AUTH_ERROR")) {
        r->status = KN_PERMFAIL;
        snprintf(text, sizeof(text),
                 "the APNs or Web Push credentials of the Firebase project "
                 "were refused");
    } else if (status == 401) {
        r->status = KN_TEMPFAIL;
        r->auth = 1;
        refresh = 1;
    } else if (is(code, "QUOTA_EXCEEDED") || status == 429) {
        r->status = KN_TEMPFAIL;
        r->retry_after_ms = ra > 0 ? ra : FCM_QUOTA_WAIT_MS;
    } else if (is(code, "UNAVAILABLE") || is(code, "INTERNAL") ||
               status >= 500) {
        r->status = KN_TEMPFAIL;
        r->retry_after_ms = ra;
    } else if (is(code, "INVALID_ARGUMENT") || status == 400) {
        r->status = KN_PERMFAIL;
        if (msg != NULL && strcasestr(msg, "registration token") != NULL &&
            (strcasestr(msg, "not a valid") != NULL ||
             strcasestr(msg, "invalid") != NULL))
            r->dead = 1;
    } else if (status == 403) {
        r->status = KN_TEMPFAIL;
        r->auth = 1;
    } else if (status >= 400 && status < 500) {
        r->status = KN_PERMFAIL;
    } else {
        r->status = KN_TEMPFAIL;
        r->retry_after_ms = ra;
    }
    snprintf(detail, dlen, "fcm %ld%s%s%s%s", status, *code ? " " : "", code,
             *text ? ": " : "", text);
    if (r->dead) {
        size_t l = strlen(detail);
        snprintf(detail + l, dlen - l, " (token dead)");
    }
    json_decref(j);
    return refresh;
}

/* ---- requests ---- */

static void req_finish(struct fcm_req *q, const struct kn_result *r)
{
    struct kn__fcm *f = q->f;
    f->in_flight--;
    q->done(q->job, r, q->arg);
    free(q->body);
    free(q);
}

static void req_fail(struct fcm_req *q, enum kn_status st, const char *detail,
                     int64_t retry_after_ms, int auth)
{
    struct kn_result r = {
        .status = st, .retry_after_ms = retry_after_ms, .auth = auth ? 1 : 0};
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
    struct fcm_req *q = arg;
    struct kn__fcm *f = q->f;
    struct kn_result r;
    int refresh;
    char err[200];
    if (resp->rc == CURLE_ABORTED_BY_CALLBACK || f->closing) {
        req_fail(q, KN_TEMPFAIL, kn_detail_aborted, 0, 0);
        return;
    }
    if (resp->rc != CURLE_OK) {
        /* Retried by the dispatcher either way (never skipped: the token
         * must get its push).  maybe_sent says FCM may have it already,
         * so the retry may show twice on the phone: said in the detail
         * and counted, never done silently by curl. */
        if (resp->maybe_sent)
            f->maybe_sent++;
        snprintf(err, sizeof(err), "fcm transport%s: %s",
                 resp->maybe_sent ? " (sent, no answer: may be a duplicate "
                                    "when retried)"
                                  : "",
                 resp->error ? resp->error : curl_easy_strerror(resp->rc));
        req_fail(q, KN_TEMPFAIL, err, 0, 0);
        return;
    }
    refresh = kn__fcm_classify(
        resp->status, resp->body, kn_http_header(resp, "retry-after"),
        q->job->addr, kn_now_ms(), &r, q->detail, sizeof(q->detail));
    if (!refresh && q->gen == f->gen)
        f->dropped_unproven = 0; /* the current token was accepted */
    if (r.status == KN_DELIVERED)
        f->accepted = 1;
    if (r.dead && resp->status == 403 && !f->accepted) {
        /* SENDER_ID_MISMATCH before FCM accepted anything from us: maybe
         * every token is of "another sender" (fcm.service_account_file of
         * the wrong project).  A dead token is never sent to again: not
         * marked until the configuration has proven itself. */
        kn__push_not_dead(&r, q->detail, sizeof(q->detail),
                          "FCM has accepted nothing from this "
                          "configuration yet; the service account's project?");
    }
    if (refresh && (q->gen != f->gen || f->expires_ms == 0)) {
        /* Refused with a token already replaced, or already known dead
         * (it left the pool's queue before the new one came): explained,
         * not this request's own retry; it goes again with the next. */
        dispatch(f, q);
        return;
    }
    if (refresh && !q->retried &&
        (!f->dropped_unproven ||
         kn_now_ms() - f->dropped_ms >= FCM_DROP_INTERVAL_MS)) {
        /* The current access token was refused: drop it (whoever asks
         * next waits for a new one) and send this request once more with
         * the new one.  A token fetched to replace a refused one and
         * refused before any answer accepted it is kept instead: the job
         * ends tempfail with the auth hint below. */
        q->retried = 1;
        f->expires_ms = 0;
        f->dropped_unproven = 1;
        f->dropped_ms = kn_now_ms();
        kn_log(KN_LOG_INFO, "fcm",
               "access token refused (401): fetching a new one", NULL);
        dispatch(f, q);
        return;
    }
    if (r.status != KN_DELIVERED)
        kn_log(KN_LOG_DEBUG, "fcm", "send failed", "bc", q->job->msg->bcast,
               "rcpt", q->job->rcpt, "reason", r.detail, NULL);
    req_finish(q, &r);
}

/* The access token as the request leaves the pool's queue (it may have
 * waited there for room while the token was renewed). */
static const char *auth_now(void *arg)
{
    struct fcm_req *q = arg;
    q->gen = q->f->gen;
    return q->f->auth_header;
}

static void send_req(struct kn__fcm *f, struct fcm_req *q)
{
    const char *headers[] = {"Content-Type: application/json; charset=UTF-8",
                             NULL};
    struct kn_http_req hr = {
        .method = "POST",
        .url = f->send_url,
        .headers = headers,
        .body = q->body,
        .bodylen = q->len,
        .timeout_ms = f->timeout_ms,
        .ca_file = f->ca_file,
        .http2 = 1,
        .once = 1,
        .header_now = auth_now,
    };
    kn__h2pool_send(f->pool, &hr, on_sent, q);
}

/* ---- the access token ---- */

static void token_failed(struct kn__fcm *f, const char *detail, int auth)
{
    struct fcm_req *q = f->waiting;
    f->waiting = f->waiting_tail = NULL;
    f->failed_ms = kn_now_ms();
    f->backoff_ms = f->backoff_ms == 0 ? FCM_BACKOFF_MIN_MS : f->backoff_ms * 2;
    if (f->backoff_ms > FCM_BACKOFF_MAX_MS)
        f->backoff_ms = FCM_BACKOFF_MAX_MS;
    f->failed_auth = auth;
    snprintf(f->failed_detail, sizeof(f->failed_detail), "%s", detail);
    kn_log(auth ? KN_LOG_ERROR : KN_LOG_WARN, "fcm",
           "no access token: the token endpoint failed", "reason", detail,
           "hint",
           auth ? "check [fcm] service_account_file (key revoked? wrong "
                  "project?) and token_url"
                : "retrying after a back-off",
           NULL);
    while (q != NULL) {
        struct fcm_req *next = q->next;
        req_fail(q, KN_TEMPFAIL, detail, f->backoff_ms, auth);
        q = next;
    }
}

static void on_token(const struct kn_http_resp *resp, void *arg)
{
    struct kn__fcm *f = arg;
    json_t *j = NULL, *tok, *exp;
    char detail[300], text[160];
    int64_t expires_in = 0;
    struct fcm_req *q;

    f->refreshing = 0;
    if (resp->rc == CURLE_ABORTED_BY_CALLBACK || f->closing) {
        q = f->waiting;
        f->waiting = f->waiting_tail = NULL;
        while (q != NULL) {
            struct fcm_req *next = q->next;
            req_fail(q, KN_TEMPFAIL, kn_detail_aborted, 0, 0);
            q = next;
        }
        return;
    }
    if (resp->rc != CURLE_OK) {
        snprintf(detail, sizeof(detail), "fcm token endpoint: %s",
                 resp->error ? resp->error : curl_easy_strerror(resp->rc));
        token_failed(f, detail, 0);
        return;
    }
    j = json_loads(resp->body, 0, NULL);
    if (resp->status != 200) {
        const char *e = json_string_value(json_object_get(j, "error"));
        const char *d =
            json_string_value(json_object_get(j, "error_description"));
        kn__push_scrub(d ? d : "", NULL, text, sizeof(text));
        snprintf(detail, sizeof(detail), "fcm token endpoint %ld: %s%s%s",
                 resp->status, e ? e : "error", *text ? ": " : "", text);
        json_decref(j);
        /* 400 invalid_grant, 401 invalid_client, 403: our credentials. */
        token_failed(f, detail,
                     resp->status >= 400 && resp->status < 500 &&
                         resp->status != 429);
        return;
    }
    tok = json_object_get(j, "access_token");
    exp = json_object_get(j, "expires_in");
    if (json_is_integer(exp))
        expires_in = json_integer_value(exp);
    else if (json_is_string(exp))
        expires_in = strtoll(json_string_value(exp), NULL, 10);
    if (expires_in > FCM_TOKEN_MAX_LIFE_S)
        expires_in = FCM_TOKEN_MAX_LIFE_S;
    if (!json_is_string(tok) || json_string_length(tok) == 0 ||
        strpbrk(json_string_value(tok), "\r\n") != NULL || expires_in <= 0) {
        json_decref(j);
        token_failed(f,
                     "fcm token endpoint: answer without access_token and "
                     "expires_in",
                     0);
        return;
    }
    if (f->auth_header != NULL) {
        memset(f->auth_header, 0, strlen(f->auth_header));
        free(f->auth_header);
    }
    f->auth_header =
        kn_xasprintf("Authorization: Bearer %s", json_string_value(tok));
    json_decref(j);
    f->lifetime_ms = expires_in * 1000;
    f->expires_ms = kn_now_ms() + f->lifetime_ms;
    f->gen++;
    f->refreshes++;
    f->backoff_ms = 0;
    if (kn_log_enabled(KN_LOG_INFO)) {
        char n[24], s[24];
        snprintf(n, sizeof(n), "%llu", (unsigned long long)f->refreshes);
        snprintf(s, sizeof(s), "%lld", (long long)expires_in);
        kn_log(KN_LOG_INFO, "fcm", "access token renewed", "expires_in_s", s,
               "count", n, NULL);
    }
    /* Everyone who waited goes now, in the order they came. */
    q = f->waiting;
    f->waiting = f->waiting_tail = NULL;
    while (q != NULL) {
        struct fcm_req *next = q->next;
        q->next = NULL;
        send_req(f, q);
        q = next;
    }
}

/* Ask the token endpoint for a new access token, unless a request is
 * already out (at most one at a time). */
static void start_refresh(struct kn__fcm *f)
{
    int64_t iat = kn_now_ms() / 1000;
    json_t *h, *c;
    char *hs, *cs, *jwt, *body;
    const char *headers[] = {"Content-Type: application/x-www-form-urlencoded",
                             NULL};
    struct kn_http_req hr = {
        .method = "POST",
        .url = f->token_url,
        .headers = headers,
        .timeout_ms = f->timeout_ms,
        .ca_file = f->ca_file,
        .http2 = 1,
    };
    if (f->refreshing || f->closing)
        return;
    h = json_pack("{s:s, s:s, s:s}", "alg", "RS256", "typ", "JWT", "kid",
                  f->key_id);
    c = json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss", f->client_email, "scope",
                  FCM_SCOPE, "aud", f->token_url, "iat", (json_int_t)iat, "exp",
                  (json_int_t)(iat + 3600));
    hs = json_dumps(h, JSON_COMPACT);
    cs = json_dumps(c, JSON_COMPACT);
    json_decref(h);
    json_decref(c);
    jwt = hs && cs ? kn_jwt_sign(f->key, "RS256", hs, cs) : NULL;
    free(hs);
    free(cs);
    if (jwt == NULL) {
        token_failed(f, "fcm: cannot sign the token request (RS256)", 1);
        return;
    }
    /* A JWT is base64url and dots: nothing to percent-encode. */
    body = kn_xasprintf("grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3A"
                        "grant-type%%3Ajwt-bearer&assertion=%s",
                        jwt);
    free(jwt);
    hr.body = body;
    hr.bodylen = strlen(body);
    f->refreshing = 1;
    kn__http_send(f->auth_net, &hr, on_token, f);
    free(body); /* http.c keeps its own copy */
}

/*
 * Send a request now, or park it until a token comes:
 *  1. a usable token: send it (and renew in the background when the token
 *     is near its end, unless the token endpoint failed within its
 *     back-off);
 *  2. none (or expired): wait for the one refresh in flight, starting it
 *     if needed; but if the token endpoint failed a moment ago, fail at
 *     once with its answer rather than asking it again.
 */
static void dispatch(struct kn__fcm *f, struct fcm_req *q)
{
    int64_t now = kn_now_ms();
    int st = kn__fcm_token_state(f->expires_ms, f->lifetime_ms, now);
    /* The token endpoint failed a moment ago: not asked again before its
     * back-off, also for a renewal in the background. */
    int backoff = f->failed_ms > 0 && now < f->failed_ms + f->backoff_ms;
    if (st == 2 && !f->refreshing && backoff) {
        req_fail(q, KN_TEMPFAIL, f->failed_detail,
                 f->failed_ms + f->backoff_ms - now, f->failed_auth);
        return;
    }
    if (st == 2) {
        q->next = NULL;
        if (f->waiting_tail != NULL)
            f->waiting_tail->next = q;
        else
            f->waiting = q;
        f->waiting_tail = q;
        start_refresh(f);
        return;
    }
    if (st == 1 && !backoff)
        start_refresh(f);
    send_req(f, q);
}

void kn__fcm_send(struct kn__fcm *f, struct kn_job *job, kn_done_cb *done,
                  void *arg)
{
    struct fcm_req *q = kn_xcalloc(1, sizeof(*q));
    const char *why = NULL;
    int rc;
    q->f = f;
    q->job = job;
    q->done = done;
    q->arg = arg;
    f->in_flight++;
    if (f->closing) {
        req_fail(q, KN_TEMPFAIL, kn_detail_aborted, 0, 0);
        return;
    }
    if (kn_addr_fcm_check(job->addr, &why) < 0) {
        struct kn_result r = {.status = KN_PERMFAIL, .dead = 1};
        snprintf(q->detail, sizeof(q->detail),
                 "fcm: not a valid registration token: %s (token dead)", why);
        r.detail = q->detail;
        req_finish(q, &r);
        return;
    }
    rc = kn__fcm_payload(job, kn_now_ms(), &q->body, &q->len);
    if (rc < 0) {
        req_fail(q, KN_PERMFAIL,
                 rc == KN_ETOOBIG
                     ? "fcm: the notification cannot be made to fit 4096 "
                       "bytes (broadcast id too long?)"
                     : "fcm: invalid message (bad UTF-8 in subject or body)",
                 0, 0);
        return;
    }
    dispatch(f, q);
}

size_t kn__fcm_in_flight(const struct kn__fcm *f)
{
    return f->in_flight;
}

uint64_t kn__fcm_refreshes(const struct kn__fcm *f)
{
    return f->refreshes;
}

size_t kn__fcm_connections(const struct kn__fcm *f)
{
    return f->connections;
}

/* ---- open and close ---- */

static void fcm_free(struct kn__fcm *f)
{
    if (f->auth_header != NULL) {
        memset(f->auth_header, 0, strlen(f->auth_header));
        free(f->auth_header);
    }
    EVP_PKEY_free(f->key);
    free(f->send_url);
    free(f->token_url);
    free(f->project);
    free(f->client_email);
    free(f->key_id);
    free(f->ca_file);
    free(f);
}

static char *strip_slash(const char *url)
{
    char *s = kn_xstrdup(url);
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '/')
        s[--n] = '\0';
    return s;
}

static int bad(const char *what, const char *value, const char *hint)
{
    kn_log(KN_LOG_ERROR, "fcm", what, "value", value, "hint", hint, NULL);
    return KN_ECONFIG;
}

/* Project ids are lowercase letters, digits and hyphens (or a project
 * number): anything else would change the request path. */
static int project_ok(const char *p)
{
    if (*p == '\0' || strlen(p) > 100)
        return 0;
    for (; *p; p++) {
        if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) &&
            *p != '-')
            return 0;
    }
    return 1;
}

/*
 * Read the service account JSON: client_email, private_key (PEM),
 * private_key_id, and token_uri (used unless fcm.token_url was changed
 * from its default).
 */
static int read_account(struct kn__fcm *f, const struct kn_config *cfg)
{
    const char *path = cfg->fcm_service_account_file;
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je), *v;
    const char *email, *pem, *kid, *uri;
    char err[200];
    int rc = KN_ECONFIG;
    if (j == NULL) {
        snprintf(err, sizeof(err), "line %d: %s", je.line, je.text);
        kn_log(KN_LOG_ERROR, "fcm",
               "fcm.service_account_file is not readable JSON", "file", path,
               "error", err, "hint",
               "download the service account key (JSON) from the Firebase "
               "console",
               NULL);
        return KN_ECONFIG;
    }
    email = json_string_value(json_object_get(j, "client_email"));
    pem = json_string_value(json_object_get(j, "private_key"));
    kid = json_string_value(json_object_get(j, "private_key_id"));
    v = json_object_get(j, "token_uri");
    uri = json_is_string(v) ? json_string_value(v) : NULL;
    if (email == NULL || pem == NULL || kid == NULL) {
        kn_log(KN_LOG_ERROR, "fcm",
               "fcm.service_account_file lacks client_email, private_key or "
               "private_key_id",
               "file", path, "hint", "use the unmodified key file", NULL);
        goto out;
    }
    f->key = kn_jwt_key_pem(pem, err, sizeof(err));
    if (f->key == NULL || EVP_PKEY_get_base_id(f->key) != EVP_PKEY_RSA) {
        kn_log(KN_LOG_ERROR, "fcm",
               "the service account's private_key is not an RSA key", "file",
               path, "error", f->key ? "not RSA" : err, NULL);
        goto out;
    }
    f->client_email = kn_xstrdup(email);
    f->key_id = kn_xstrdup(kid);
    if (strcmp(cfg->fcm_token_url, FCM_DEFAULT_TOKEN_URL) != 0 || uri == NULL)
        f->token_url = kn_xstrdup(cfg->fcm_token_url);
    else
        f->token_url = kn_xstrdup(uri);
    rc = 0;
out:
    json_decref(j);
    return rc;
}

int kn__fcm_open(uv_loop_t *loop, const struct kn_config *cfg,
                 struct kn__fcm **out)
{
    struct kn__fcm *f;
    const char *why = NULL;
    char *base;
    char masked[64];
    *out = NULL;
    if (cfg->fcm_project_id == NULL && cfg->fcm_service_account_file == NULL)
        return 0;
    if (cfg->fcm_project_id == NULL || cfg->fcm_service_account_file == NULL)
        return bad("[fcm] needs both project_id and service_account_file",
                   cfg->fcm_project_id ? cfg->fcm_project_id
                                       : cfg->fcm_service_account_file,
                   "set both, or neither to leave FCM off");
    if (!project_ok(cfg->fcm_project_id))
        return bad("fcm.project_id is not a Firebase project id",
                   cfg->fcm_project_id,
                   "lowercase letters, digits and hyphens (the project id "
                   "in the Firebase console)");
    if (kn__http_url_ok(cfg->fcm_api_base, &why) < 0)
        return bad("fcm.api_base is refused", cfg->fcm_api_base, why);
    f = kn_xcalloc(1, sizeof(*f));
    if (read_account(f, cfg) < 0) {
        fcm_free(f);
        return KN_ECONFIG;
    }
    if (kn__http_url_ok(f->token_url, &why) < 0) {
        bad("the FCM token url is refused", f->token_url, why);
        fcm_free(f);
        return KN_ECONFIG;
    }
    base = strip_slash(cfg->fcm_api_base);
    f->send_url = kn_xasprintf("%s/v1/projects/%s/messages:send", base,
                               cfg->fcm_project_id);
    free(base);
    f->project = kn_xstrdup(cfg->fcm_project_id);
    f->ca_file = cfg->fcm_ca_file ? kn_xstrdup(cfg->fcm_ca_file) : NULL;
    f->timeout_ms = (long)cfg->fcm_timeout_ms;
    f->connections = (size_t)cfg->fcm_connections;
    f->pool = kn__h2pool_new(loop, f->connections, KN_PUSH_STREAMS_PER_CONN,
                             (size_t)cfg->fcm_requests_per_connection);
    f->auth_net = kn_net_new(loop, 1, 1);
    kn_log(KN_LOG_INFO, "fcm", "configured", "project", f->project, "api",
           f->send_url, "token_url", f->token_url, "account",
           kn_mask_address(f->client_email, masked, sizeof(masked)), NULL);
    *out = f;
    return 0;
}

void kn__fcm_close(struct kn__fcm *f)
{
    struct fcm_req *q;
    struct kn_h2pool_stats st;
    char n[24], lanes[24], peak[24];
    kn__h2pool_stats(f->pool, &st);
    snprintf(peak, sizeof(peak), "%llu", (unsigned long long)st.peak);
    snprintf(n, sizeof(n), "%llu", (unsigned long long)f->maybe_sent);
    snprintf(lanes, sizeof(lanes), "%llu", (unsigned long long)st.lanes);
    /* What an operator needs to explain a duplicate: answers lost after a
     * request was sent (each retried, so each may have shown twice). */
    kn_log(f->maybe_sent ? KN_LOG_WARN : KN_LOG_INFO, "fcm", "closed",
           "connections_opened", lanes, "sent_without_answer", n,
           "most_in_flight", peak, NULL);
    f->closing = 1;
    kn__h2pool_close(f->pool); /* sends in flight: aborted */
    kn_net_close(f->auth_net); /* a token request: its waiters aborted */
    q = f->waiting;
    f->waiting = f->waiting_tail = NULL;
    while (q != NULL) {
        struct fcm_req *next = q->next;
        req_fail(q, KN_TEMPFAIL, kn_detail_aborted, 0, 0);
        q = next;
    }
    fcm_free(f);
}
