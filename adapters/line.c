/*
 * line.c - the LINE Messaging API adapter (PROVIDERS.md section 1): one
 * job is one request, push for one user id and multicast for up to 500,
 * on the shared curl multi/uv transport (http.c).
 *
 * Every request carries an X-Line-Retry-Key derived from the broadcast and
 * the job key, the same on every attempt, so a retry after a timeout or a
 * 500 is executed by LINE at most once (a repeat answers 409, which counts
 * as delivered).  LINE keeps a key 24 hours: a job first queued longer ago
 * than that is not sent again but fails permanently.
 *
 * The channel access token is either long-lived (line.token, token_file,
 * KAIRAN_LINE_TOKEN) or issued here: a JWT assertion (RS256, the channel's
 * assertion key) posted to line.token_url.  By default that is the
 * stateless endpoint (/oauth2/v3/token): 15-minute tokens, no cap on how
 * many are valid.  The v2.1 endpoint (/oauth2/v2.1/token, 30-day tokens)
 * stays possible, but a channel may hold only 30 valid v2.1 tokens and
 * LINE refuses to issue more: with a token per process start, restarts
 * and more processes would use them up within a month.  An issued token
 * is cached, renewed in the background at 90 % of its life,
 * and shared by all requests; at most one issue is in flight, and jobs
 * that arrive while there is no usable token wait for it.  A 401 drops an
 * issued token so the next job issues a new one, once: a new token that
 * is refused too is kept (a stateless one for a minute, a v2.1 one until
 * LINE accepts it), the credentials being the problem.
 *
 * The webhook helpers at the end (signature check, follow/unfollow
 * events) serve POST /line/webhook on kairand's HTTP port.
 *
 * Never a user id, token or key in a detail or a log line: ids in LINE's
 * answers are masked.
 */
#include "adapters/line.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"
#include "adapters/http.h"
#include "adapters/jwt.h"
#include "adapters/net.h"
#include "common/buf.h"
#include "common/kn.h"
#include "common/codec.h"
#include "common/log.h"
#include "common/seal.h"
#include "config/config.h"
#include "model/directory.h"
#include "model/address.h"
#include "model/message.h"

#define DAY_MS           (24 * 3600 * 1000LL)
#define TOKEN_LIFE_S     2592000 /* token_exp asked for: 30 days */
#define ASSERTION_LIFE_S 1800    /* exp of the JWT assertion: 30 minutes */
#define DROP_INTERVAL_MS 60000   /* a refused new token: dropped after this */
#define RATE_RETRY_MS    1000    /* LINE's 429 carries no Retry-After */

static const char no_credentials[] =
    "no LINE channel access token: set line.token (or token_file, "
    "KAIRAN_LINE_TOKEN), or line.channel_id + key_file + key_id";

/* The stateless endpoint (/oauth2/v3/token) rather than v2.1's. */
static int is_stateless_url(const char *url)
{
    const char *q = strchr(url, '?');
    size_t n = q ? (size_t)(q - url) : strlen(url);
    static const char tail[] = "/oauth2/v3/token";
    return n >= sizeof(tail) - 1 &&
           memcmp(url + n - (sizeof(tail) - 1), tail, sizeof(tail) - 1) == 0;
}

struct line_send;

struct line {
    struct kn_net *net;
    char *push_url, *multicast_url, *reply_url, *token_url;
    char *ca_file;
    long timeout_ms;
    size_t connections;
    size_t in_flight; /* jobs taken by send() and not yet done */
    int closing;

    /* The channel access token: long-lived, or issued (stateless/v2.1). */
    char *static_token;
    EVP_PKEY *key;
    int stateless; /* token_url is LINE's /oauth2/v3/token */
    char *channel_id, *key_id;
    char *token;          /* issued token, NULL if none */
    uint64_t token_gen;   /* changes with every new or dropped token */
    int64_t renew_mono;   /* renew in the background from then on */
    int64_t stale_mono;   /* no longer used from then on */
    int issuing;          /* a token request is in flight */
    int issue_failures;   /* consecutive */
    int64_t retry_mono;   /* no new token request before then */
    int64_t dropped_mono; /* last 401 drop */
    int dropped_unproven; /* a token was dropped and no answer since was
                             anything but 401 */
    char token_error[256];
    int token_error_auth; /* the last failure was a refusal */
    struct line_send *waiting, *waiting_tail;

    struct kn_line_stats stats;
};

struct line_send {
    struct line *l;
    struct kn_job *job;
    kn_done_cb *done;
    void *arg;
    const char *url;
    char *body;
    char retry_key[37];
    uint64_t token_gen;
    int issued; /* sent with an issued token */
    struct line_send *next;
    char detail[640];
};

/* ------------------------------------------------------------------------
 * Request body (the texts: model/message.c)
 * ------------------------------------------------------------------------ */

/* An id that JSON carries as it is: printable ASCII without a quote or a
 * backslash (LINE's user ids are "U" and 32 hex digits). */
static int plain_id(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e || *s == '"' ||
            *s == '\\')
            return 0;
    return 1;
}

char *kn__line_body(const struct kn_message *m, const char *link,
                    const char *const *ids, size_t n, int multicast)
{
    json_t *o, *msgs = json_array(), *to;
    char *texts[KN_MESSAGE_LINE_TEXTS], *out = NULL;
    size_t nt =
        kn_message_line_texts(m->drill, m->subject, m->body, link, texts);
    int ok = 1, plain = multicast;

    for (size_t i = 0; i < nt; i++) {
        json_t *t = json_string(texts[i]); /* NULL for invalid UTF-8 */
        if (t == NULL)
            ok = 0;
        else
            json_array_append_new(
                msgs, json_pack("{s:s, s:o}", "type", "text", "text", t));
        free(texts[i]);
    }
    for (size_t i = 0; plain && i < n; i++)
        plain = plain_id(ids[i]);
    if (plain) {
        /* A multicast's 500 ids written as they are: the same bytes as
         * the tree below gives, without 500 nodes for one request. */
        struct kn_buf b;
        char *mj = ok ? json_dumps(msgs, JSON_COMPACT) : NULL;
        json_decref(msgs);
        if (mj == NULL)
            return NULL;
        kn_buf_init(&b, 0);
        kn_buf_add(&b, "{\"to\":[");
        for (size_t i = 0; i < n; i++) {
            if (i > 0)
                kn_buf_addc(&b, ',');
            kn_buf_addc(&b, '"');
            kn_buf_add(&b, ids[i]);
            kn_buf_addc(&b, '"');
        }
        kn_buf_add(&b, "],\"messages\":");
        kn_buf_add(&b, mj);
        kn_buf_addc(&b, '}');
        free(mj);
        return kn_buf_take(&b, NULL);
    }
    o = json_object();
    if (multicast) {
        to = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(to, json_string(ids[i]));
    } else {
        to = json_string(ids[0]);
    }
    json_object_set_new(o, "to", to);
    json_object_set_new(o, "messages", msgs);
    if (ok && to != NULL)
        out = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return out;
}

/* ------------------------------------------------------------------------
 * Retry key
 * ------------------------------------------------------------------------ */

/* Namespace of kairan's LINE retry keys (a fixed random UUID). */
static const unsigned char retry_ns[16] = {
    0x3c, 0x0a, 0x8f, 0x5e, 0x2b, 0x7d, 0x4e, 0x61,
    0x9a, 0x4f, 0x6d, 0x1c, 0x8b, 0x2e, 0x7f, 0x90,
};

void kn__line_retry_key(const char *key, char out[37])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned int hl = 0;
    size_t o = 0;

    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha1(), NULL) != 1 ||
        EVP_DigestUpdate(md, retry_ns, sizeof(retry_ns)) != 1 ||
        EVP_DigestUpdate(md, key, strlen(key)) != 1 ||
        EVP_DigestFinal_ex(md, h, &hl) != 1 || hl < 16)
        KN_PANIC("SHA-1 failed");
    EVP_MD_CTX_free(md);
    h[6] = (unsigned char)((h[6] & 0x0F) | 0x50); /* version 5 */
    h[8] = (unsigned char)((h[8] & 0x3F) | 0x80); /* RFC 4122 variant */
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        snprintf(out + o, 3, "%02x", h[i]);
        o += 2;
    }
    out[o] = '\0';
}

/* ------------------------------------------------------------------------
 * Classification
 * ------------------------------------------------------------------------ */

static int is_hex32(const char *s)
{
    for (int i = 0; i < 32; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    }
    return 1;
}

static int user_id_ok(const char *s)
{
    return kn_addr_line_check(s, NULL) == 0;
}

void kn__line_mask_ids(char *text)
{
    size_t n = strlen(text), o = 0;
    for (size_t i = 0; i < n;) {
        if ((text[i] == 'U' || text[i] == 'C' || text[i] == 'R') &&
            i + 33 <= n && is_hex32(text + i + 1) &&
            (i + 33 == n || !((text[i + 33] >= '0' && text[i + 33] <= '9') ||
                              (text[i + 33] >= 'a' && text[i + 33] <= 'f')))) {
            /* As kn_mask_address does: four characters and "***". */
            memmove(text + o, text + i, 4);
            memcpy(text + o + 4, "***", 3);
            o += 7;
            i += 33;
        } else {
            text[o++] = text[i++];
        }
    }
    text[o] = '\0';
}

/* Printable text for a detail: control characters become spaces. */
static void printable(char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = ' ';
    }
}

/*
 * LINE's error text: "message [property: detail; ...]" from an
 * ErrorResponse, or the start of the body if it is not one; LINE ids and
 * e-mail addresses masked in the whole text before it is cut to len (an
 * id across the cut would otherwise stay half in clear).
 */
static void error_text(const char *body, size_t n, char *out, size_t len)
{
    json_t *j = json_loadb(body, n, 0, NULL), *details;
    const char *msg = json_string_value(json_object_get(j, "message"));
    struct kn_buf b;
    char *all;
    size_t cut = len;

    kn_buf_init(&b, 0);
    if (msg == NULL) {
        kn_buf_addn(&b, body, n);
        cut = len < 161 ? len : 161; /* the start of a page */
    } else {
        kn_buf_add(&b, msg);
        details = json_object_get(j, "details");
        for (size_t i = 0; i < json_array_size(details); i++) {
            json_t *d = json_array_get(details, i);
            const char *dm = json_string_value(json_object_get(d, "message"));
            const char *prop =
                json_string_value(json_object_get(d, "property"));
            kn_buf_addf(&b, "%s%s%s%s", i ? "; " : " [", prop ? prop : "",
                        prop && dm ? ": " : "", dm ? dm : "");
        }
        if (json_array_size(details) > 0)
            kn_buf_addc(&b, ']');
    }
    json_decref(j);
    all = kn_buf_take(&b, NULL);
    kn__line_mask_ids(all);
    kn_mask_text(all, out, cut);
    free(all);
    printable(out);
}

/* A Retry-After in seconds, capped at an hour before it is multiplied (a
 * huge value must not overflow). */
static int64_t retry_after_capped(const char *ra)
{
    long long v = strtoll(ra, NULL, 10);
    if (v > 3600)
        v = 3600;
    return (int64_t)v * 1000;
}

/* A response header's value for a detail, at most len - 1 bytes: LINE
 * ids and addresses masked in the whole value before it is cut. */
static void header_text(const char *v, char *out, size_t len)
{
    char *t = kn_xstrdup(v);
    kn__line_mask_ids(t);
    kn_mask_text(t, out, len);
    free(t);
    printable(out);
}

/*
 * 1 if a 409's body is LINE's answer to a retry key it executed before:
 * its JSON "message" says so (not a proxy's page that happens to quote
 * the words, nor one of the details).
 */
static int retry_key_accepted(const char *body, size_t n)
{
    json_t *j = json_loadb(body, n, 0, NULL);
    const char *msg = json_string_value(json_object_get(j, "message"));
    int yes = msg != NULL && strstr(msg, "retry key is already accepted");
    json_decref(j);
    return yes;
}

/* Write the final detail: masked e-mail addresses and LINE ids. */
static void finish_detail(const char *raw, char *detail, size_t len)
{
    kn_mask_text(raw, detail, len);
    kn__line_mask_ids(detail);
}

void kn__line_classify(const struct kn_http_resp *resp, struct kn_result *r,
                       char *detail, size_t len)
{
    const char *rid = kn_http_header(resp, "X-Line-Request-Id");
    const char *accepted = kn_http_header(resp, "X-Line-Accepted-Request-Id");
    const char *ra = kn_http_header(resp, "Retry-After");
    char text[400], raw[640], ridtxt[96], hv[65], acc[65];
    long st = resp->status;

    memset(r, 0, sizeof(*r));
    r->detail = detail;
    if (resp->rc == CURLE_ABORTED_BY_CALLBACK) {
        r->status = KN_TEMPFAIL;
        r->detail = kn_detail_aborted;
        return;
    }
    if (resp->rc != CURLE_OK) {
        /* Unknown outcome: retried with the same key, which LINE executes
         * at most once. */
        r->status = KN_TEMPFAIL;
        snprintf(raw, sizeof(raw),
                 "line transport: %s (retried with the "
                 "same retry key)",
                 resp->error ? resp->error : curl_easy_strerror(resp->rc));
        finish_detail(raw, detail, len);
        return;
    }
    header_text(rid ? rid : "none", hv, sizeof(hv));
    snprintf(ridtxt, sizeof(ridtxt), " (request id %s)", hv);
    header_text(accepted ? accepted : "not given", acc, sizeof(acc));
    error_text(resp->body, resp->bodylen, text, sizeof(text));
    if (st >= 200 && st <= 299) {
        r->status = KN_DELIVERED;
        snprintf(raw, sizeof(raw), "line %ld accepted%s", st, ridtxt);
    } else if (st == 409 && (accepted != NULL ||
                             retry_key_accepted(resp->body, resp->bodylen))) {
        /* LINE's 409 on push/multicast: this retry key was executed
         * before.  The accepted id header is not in LINE's OpenAPI
         * spec (a proxy may drop it); its message is enough. */
        r->status = KN_DELIVERED;
        snprintf(raw, sizeof(raw),
                 "line 409: accepted earlier with this retry key (accepted "
                 "request id %s)%s",
                 acc, ridtxt);
    } else if (st == 401) {
        r->status = KN_TEMPFAIL;
        r->auth = 1;
        snprintf(raw, sizeof(raw),
                 "line 401: channel access token refused: %s%s", text, ridtxt);
    } else if (st == 403) {
        r->status = KN_PERMFAIL;
        r->auth = 1;
        snprintf(raw, sizeof(raw),
                 "line 403: not allowed for this channel: "
                 "%s%s",
                 text, ridtxt);
    } else if (st == 429 && strstr(text, "monthly limit") != NULL) {
        r->status = KN_PERMFAIL;
        r->quota = 1;
        snprintf(raw, sizeof(raw),
                 "line 429: monthly message quota used "
                 "up: %s%s",
                 text, ridtxt);
    } else if (st == 429 && strstr(text, "rate limit") != NULL) {
        r->status = KN_TEMPFAIL;
        r->retry_after_ms = RATE_RETRY_MS;
        if (ra != NULL && strtoll(ra, NULL, 10) > 0)
            r->retry_after_ms = retry_after_capped(ra);
        snprintf(raw, sizeof(raw), "line 429: rate limit: %s%s", text, ridtxt);
    } else if (st == 429) {
        /* Too many concurrent jobs (audience uploads), or unknown. */
        r->status = KN_TEMPFAIL;
        if (ra != NULL && strtoll(ra, NULL, 10) > 0)
            r->retry_after_ms = retry_after_capped(ra);
        snprintf(raw, sizeof(raw), "line 429: %s%s", text, ridtxt);
    } else if (st == 413) {
        r->status = KN_PERMFAIL;
        snprintf(raw, sizeof(raw), "line 413: request too large: %s%s", text,
                 ridtxt);
    } else if (st >= 500 || st == 408) {
        r->status = KN_TEMPFAIL;
        if (ra != NULL && strtoll(ra, NULL, 10) > 0)
            r->retry_after_ms = retry_after_capped(ra);
        snprintf(raw, sizeof(raw), "line %ld: %s%s", st, text, ridtxt);
    } else if (st >= 400) {
        /* 400 (and a 409 without the accepted id): never retried. */
        r->status = KN_PERMFAIL;
        snprintf(raw, sizeof(raw), "line %ld: %s%s", st, text, ridtxt);
    } else {
        r->status = KN_TEMPFAIL;
        snprintf(raw, sizeof(raw), "line: unexpected HTTP status %ld%s", st,
                 ridtxt);
    }
    finish_detail(raw, detail, len);
}

/* ------------------------------------------------------------------------
 * Channel access token (v2.1)
 * ------------------------------------------------------------------------ */

static void start_request(struct line_send *s);
static void finish(struct line_send *s, const struct kn_result *r);

static void fail_send(struct line_send *s, enum kn_status st, int auth,
                      const char *why)
{
    struct kn_result r = {.status = st, .auth = auth ? 1 : 0};
    if (why == kn_detail_aborted) {
        r.detail = kn_detail_aborted;
    } else {
        snprintf(s->detail, sizeof(s->detail), "%s", why);
        r.detail = s->detail;
    }
    finish(s, &r);
}

/* Hand every waiting job on: sent with the new token, or failed. */
static void flush_waiting(struct line *l, const char *why, int auth)
{
    struct line_send *s = l->waiting;
    l->waiting = l->waiting_tail = NULL;
    while (s != NULL) {
        struct line_send *next = s->next;
        s->next = NULL;
        if (why == NULL)
            start_request(s);
        else
            fail_send(s, KN_TEMPFAIL, auth, why);
        s = next;
    }
}

static void token_failed(struct line *l, int auth, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void token_failed(struct line *l, int auth, const char *fmt, ...)
{
    va_list ap;
    char raw[256];
    int64_t wait;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    finish_detail(raw, l->token_error, sizeof(l->token_error));
    l->token_error_auth = auth;
    l->stats.token_failures++;
    l->issue_failures++;
    wait = 1000LL << (l->issue_failures < 7 ? l->issue_failures - 1 : 6);
    l->retry_mono = kn_mono_ms() + (wait < 60000 ? wait : 60000);
    kn_log(KN_LOG_ERROR, "line", "cannot issue a channel access token", "error",
           l->token_error, NULL);
    flush_waiting(l, l->token_error, auth);
}

static void on_token(const struct kn_http_resp *resp, void *arg)
{
    struct line *l = arg;
    json_t *j = NULL;
    const char *tok;
    json_int_t life;
    char text[200];

    l->issuing = 0;
    if (resp->rc == CURLE_ABORTED_BY_CALLBACK || l->closing) {
        flush_waiting(l, kn_detail_aborted, 0);
        return;
    }
    if (resp->rc != CURLE_OK) {
        token_failed(l, 0, "line token request: %s",
                     resp->error ? resp->error : curl_easy_strerror(resp->rc));
        return;
    }
    if (resp->status != 200) {
        j = json_loadb(resp->body, resp->bodylen, 0, NULL);
        snprintf(
            text, sizeof(text), "%s%s%s",
            json_string_value(json_object_get(j, "error"))
                ? json_string_value(json_object_get(j, "error"))
                : "",
            json_object_get(j, "error_description") ? ": " : "",
            json_string_value(json_object_get(j, "error_description"))
                ? json_string_value(json_object_get(j, "error_description"))
                : "");
        json_decref(j);
        printable(text);
        /* 4xx: our assertion (key, kid, channel id) was refused. */
        token_failed(l, resp->status >= 400 && resp->status < 500,
                     "line token request refused: HTTP %ld %s", resp->status,
                     text);
        return;
    }
    j = json_loadb(resp->body, resp->bodylen, 0, NULL);
    tok = json_string_value(json_object_get(j, "access_token"));
    life = json_integer_value(json_object_get(j, "expires_in"));
    if (tok == NULL || tok[0] == '\0' || life <= 0 ||
        strpbrk(tok, "\r\n ") != NULL) {
        json_decref(j);
        token_failed(l, 0,
                     "line token answer without access_token and "
                     "expires_in");
        return;
    }
    /* No LINE token lives longer than the 30 days asked for: a longer
     * expires_in is taken as that (never multiplied past 64 bits). */
    if (life > TOKEN_LIFE_S)
        life = TOKEN_LIFE_S;
    if (l->token != NULL) {
        OPENSSL_cleanse(l->token, strlen(l->token));
        free(l->token);
    }
    l->token = kn_xstrdup(tok);
    json_decref(j);
    l->token_gen++;
    l->renew_mono = kn_mono_ms() + life * 900; /* 90 % */
    l->stale_mono = kn_mono_ms() + life * 970; /* keep a margin */
    l->issue_failures = 0;
    l->retry_mono = 0;
    l->stats.token_issued++;
    {
        char lifetxt[32];
        snprintf(lifetxt, sizeof(lifetxt), "%lld", (long long)life);
        kn_log(KN_LOG_INFO, "line", "channel access token issued",
               "expires_in_s", lifetxt, NULL);
    }
    flush_waiting(l, NULL, 0);
}

/* Post a new JWT assertion to the token endpoint (one at a time). */
static void token_issue(struct line *l)
{
    json_t *h, *p;
    char *hj, *pj, *jwt, *form;
    int64_t now = kn_now_ms() / 1000;
    const char *headers[] = {"Content-Type: application/x-www-form-urlencoded",
                             NULL};
    struct kn_http_req req;

    h = json_pack("{s:s, s:s, s:s}", "alg", "RS256", "typ", "JWT", "kid",
                  l->key_id);
    p = json_pack("{s:s, s:s, s:s, s:I}", "iss", l->channel_id, "sub",
                  l->channel_id, "aud", "https://api.line.me/", "exp",
                  (json_int_t)(now + ASSERTION_LIFE_S));
    /* token_exp: the life asked for, v2.1 only (a stateless token lives
     * 15 minutes). */
    if (!l->stateless)
        json_object_set_new(p, "token_exp", json_integer(TOKEN_LIFE_S));
    hj = json_dumps(h, JSON_COMPACT);
    pj = json_dumps(p, JSON_COMPACT);
    json_decref(h);
    json_decref(p);
    jwt = (hj && pj) ? kn_jwt_sign(l->key, "RS256", hj, pj) : NULL;
    free(hj);
    free(pj);
    if (jwt == NULL) {
        token_failed(l, 1,
                     "line: cannot sign the token assertion with "
                     "line.key_file (an RSA key is needed)");
        return;
    }
    form = kn_xasprintf(
        "grant_type=client_credentials&client_assertion_type=urn%%3Aietf%%3A"
        "params%%3Aoauth%%3Aclient-assertion-type%%3Ajwt-bearer&"
        "client_assertion=%s",
        jwt);
    OPENSSL_cleanse(jwt, strlen(jwt));
    free(jwt);
    memset(&req, 0, sizeof(req));
    req.method = "POST";
    req.url = l->token_url;
    req.headers = headers;
    req.body = form;
    req.bodylen = strlen(form);
    req.timeout_ms = l->timeout_ms;
    req.ca_file = l->ca_file;
    l->issuing = 1;
    kn__http_send(l->net, &req, on_token, l);
    /* The assertion is a credential for 30 minutes: wipe our copy. */
    OPENSSL_cleanse(form, strlen(form));
    free(form);
}

/*
 * Is there a token to send with?  1: yes (an issued one may be renewed in
 * the background meanwhile); 0: the job must wait for the issue in
 * flight; -1: no, fail now (l->token_error says why).
 */
static int token_ready(struct line *l)
{
    int64_t now;
    if (l->static_token != NULL)
        return 1;
    if (l->key == NULL) {
        snprintf(l->token_error, sizeof(l->token_error), "%s", no_credentials);
        l->token_error_auth = 1;
        return -1;
    }
    now = kn_mono_ms();
    if (l->token != NULL && now < l->stale_mono) {
        if (now >= l->renew_mono && !l->issuing && now >= l->retry_mono)
            token_issue(l);
        return 1;
    }
    if (l->issuing)
        return 0;
    if (now < l->retry_mono)
        return -1;
    token_issue(l);
    /* token_issue() fails at once only if it could not sign. */
    return l->issuing ? 0 : -1;
}

/* ------------------------------------------------------------------------
 * Sending
 * ------------------------------------------------------------------------ */

static void finish(struct line_send *s, const struct kn_result *r)
{
    struct line *l = s->l;
    l->in_flight--;
    s->done(s->job, r, s->arg);
    free(s->body);
    free(s);
}

static void on_response(const struct kn_http_resp *resp, void *arg)
{
    struct line_send *s = arg;
    struct line *l = s->l;
    struct kn_result r;

    kn__line_classify(resp, &r, s->detail, sizeof(s->detail));
    if (resp->rc == CURLE_OK)
        l->stats.requests++;
    if (r.auth) {
        l->stats.auth_refused++;
        kn_log(KN_LOG_ERROR, "line", "LINE refused our credentials", "error",
               r.detail, NULL);
    }
    if (r.quota) {
        l->stats.quota_exhausted++;
        kn_log(KN_LOG_ERROR, "line", "LINE monthly message quota used up",
               "error", r.detail, NULL);
    }
    if (resp->rc == CURLE_OK && resp->status == 429 && !r.quota &&
        r.retry_after_ms > 0)
        l->stats.rate_limited++;
    if (resp->rc == CURLE_OK && resp->status != 401 && s->issued)
        l->dropped_unproven = 0;
    if (resp->rc == CURLE_OK && resp->status == 401 && s->issued &&
        s->token_gen == l->token_gen && l->token != NULL &&
        (!l->dropped_unproven ||
         (l->stateless &&
          kn_mono_ms() - l->dropped_mono >= DROP_INTERVAL_MS))) {
        /* Revoked or expired early: the next job issues a new one.  If
         * the new one is refused too, the credentials are the problem:
         * it is kept, so a refusing channel never turns into a stream
         * of token requests.  A stateless token is dropped again after
         * a minute; a v2.1 one only once LINE accepted it: a channel may
         * hold 30 valid v2.1 tokens, each for 30 days, and a new one a
         * minute would use them up within half an hour of refusals. */
        l->dropped_unproven = 1;
        OPENSSL_cleanse(l->token, strlen(l->token));
        free(l->token);
        l->token = NULL;
        l->token_gen++;
        l->dropped_mono = kn_mono_ms();
        l->stats.token_dropped++;
        kn_log(KN_LOG_WARN, "line",
               "channel access token refused: dropped, a new one is issued "
               "for the next job",
               NULL);
    }
    finish(s, &r);
}

static void start_request(struct line_send *s)
{
    struct line *l = s->l;
    const char *tok = l->static_token ? l->static_token : l->token;
    char *auth = kn_xasprintf("Authorization: Bearer %s", tok);
    /* (A reply has no retry key: LINE takes one on push and multicast.) */
    char *key = s->retry_key[0]
                    ? kn_xasprintf("X-Line-Retry-Key: %s", s->retry_key)
                    : NULL;
    const char *headers[] = {auth, "Content-Type: application/json", key, NULL};
    struct kn_http_req req;

    s->issued = l->static_token == NULL;
    s->token_gen = l->token_gen;
    memset(&req, 0, sizeof(req));
    req.method = "POST";
    req.url = s->url;
    req.headers = headers;
    req.body = s->body;
    req.bodylen = strlen(s->body);
    req.timeout_ms = l->timeout_ms;
    req.ca_file = l->ca_file;
    kn__http_send(l->net, &req, on_response, s);
    /* http.c has its own copies: wipe ours (token, user ids) now. */
    OPENSSL_cleanse(auth, strlen(auth));
    free(auth);
    free(key);
    OPENSSL_cleanse(s->body, strlen(s->body));
    free(s->body);
    s->body = NULL;
}

static void send_one(struct line *l, struct kn_job *job, kn_done_cb *done,
                     void *arg)
{
    struct line_send *s = kn_xcalloc(1, sizeof(*s));
    const char *const *ids =
        job->naddr > 1 && job->addrs != NULL ? job->addrs : &job->addr;
    size_t nid = job->naddr > 1 && job->addrs != NULL ? job->naddr : 1;
    char *key;

    s->l = l;
    s->job = job;
    s->done = done;
    s->arg = arg;
    l->in_flight++;
    if (nid > KN_LINE_MULTICAST_MAX) {
        char why[96];
        snprintf(why, sizeof(why),
                 "line: a job of %zu user ids; multicast "
                 "takes at most %d",
                 nid, KN_LINE_MULTICAST_MAX);
        fail_send(s, KN_PERMFAIL, 0, why);
        return;
    }
    for (size_t i = 0; i < nid; i++) {
        if (!user_id_ok(ids[i])) {
            fail_send(s, KN_PERMFAIL, 0,
                      "line: not a LINE user id (U and 32 lower-case hex "
                      "digits)");
            return;
        }
    }
    if (job->first_ms > 0 && kn_now_ms() - job->first_ms >= DAY_MS) {
        fail_send(s, KN_PERMFAIL, 0, "retry key expired (older than 24 h)");
        return;
    }
    /* The broadcast id is part of the key, so that job keys that repeat
     * across broadcasts never share a retry key. */
    key = kn_xasprintf("%s\n%s", job->msg->bcast,
                       job->key      ? job->key
                       : job->bindex ? job->bindex
                                     : (job->rcpt ? job->rcpt : ""));
    kn__line_retry_key(key, s->retry_key);
    free(key);
    if (job->mypage != NULL) {
        /* the my-page foot after the body (issue 16; cut with it if the
         * body is too long for LINE's texts) */
        struct kn_message m = *job->msg;
        char *foot = kn_message_mypage_text(
            job->msg->lang ? job->msg->lang : KN_LANG_DEFAULT, job->mypage);
        m.body = kn_xasprintf("%s%s", m.body ? m.body : "", foot);
        s->body = kn__line_body(&m, job->link, ids, nid, nid > 1);
        free(m.body);
        free(foot);
    } else {
        s->body = kn__line_body(job->msg, job->link, ids, nid, nid > 1);
    }
    if (s->body == NULL) {
        fail_send(s, KN_PERMFAIL, 0,
                  "line: invalid message: subject or body is not UTF-8");
        return;
    }
    s->url = nid > 1 ? l->multicast_url : l->push_url;
    switch (token_ready(l)) {
    case 1:
        start_request(s);
        break;
    case 0:
        if (l->waiting_tail != NULL)
            l->waiting_tail->next = s;
        else
            l->waiting = s;
        l->waiting_tail = s;
        break;
    default:
        fail_send(s, KN_TEMPFAIL, l->token_error_auth, l->token_error);
        break;
    }
}

/* The answer to a reply: logged if it failed (masked detail). */
static void on_replied(struct kn_job *job, const struct kn_result *r, void *arg)
{
    (void)job;
    (void)arg;
    if (r->status != KN_DELIVERED)
        kn_log(KN_LOG_WARN, "line", "LINE reply not sent", "error",
               r->detail ? r->detail : "", NULL);
}

static int line_reply(struct kn_adapter *a, const char *reply_token,
                      const char *text)
{
    struct line *l = a->priv;
    struct line_send *s;
    json_t *j;
    if (l == NULL || l->closing || reply_token == NULL || text == NULL)
        return KN_EINVAL;
    j = json_pack("{s:s,s:[{s:s,s:s}]}", "replyToken", reply_token, "messages",
                  "type", "text", "text", text);
    if (j == NULL)
        return KN_EINVAL;
    s = kn_xcalloc(1, sizeof(*s));
    s->l = l;
    s->done = on_replied;
    s->url = l->reply_url;
    s->body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    l->in_flight++;
    switch (token_ready(l)) {
    case 1:
        start_request(s);
        break;
    case 0:
        if (l->waiting_tail != NULL)
            l->waiting_tail->next = s;
        else
            l->waiting = s;
        l->waiting_tail = s;
        break;
    default:
        fail_send(s, KN_TEMPFAIL, l->token_error_auth, l->token_error);
        break;
    }
    return 0;
}

static int line_send(struct kn_adapter *a, struct kn_job **jobs, size_t n,
                     kn_done_cb *done, void *arg)
{
    struct line *l = a->priv;
    for (size_t i = 0; i < n; i++)
        send_one(l, jobs[i], done, arg);
    return 0;
}

/* ------------------------------------------------------------------------
 * Open and close
 * ------------------------------------------------------------------------ */

static void line_free(struct line *l)
{
    free(l->push_url);
    free(l->multicast_url);
    free(l->reply_url);
    free(l->token_url);
    free(l->ca_file);
    if (l->static_token != NULL) {
        OPENSSL_cleanse(l->static_token, strlen(l->static_token));
        free(l->static_token);
    }
    if (l->token != NULL) {
        OPENSSL_cleanse(l->token, strlen(l->token));
        free(l->token);
    }
    EVP_PKEY_free(l->key);
    free(l->channel_id);
    free(l->key_id);
    free(l);
}

static int url_problem(const char *key, const char *url)
{
    const char *why = NULL;
    if (url == NULL || kn__http_url_ok(url, &why) == 0)
        return 0;
    kn_log(KN_LOG_ERROR, "line", "unusable url", "key", key, "url", url,
           "error", why, NULL);
    return 1;
}

static int line_open(struct kn_adapter *a, const struct kn_config *cfg)
{
    struct line *l;
    const char *base =
        cfg->line_api_base ? cfg->line_api_base : "https://api.line.me";
    size_t bl = strlen(base);
    int jwt = cfg->line_key_file != NULL || cfg->line_channel_id != NULL ||
              cfg->line_key_id != NULL;

    if (url_problem("line.api_base", base) ||
        (cfg->line_token == NULL && jwt &&
         url_problem("line.token_url", cfg->line_token_url)))
        return KN_ECONFIG;
    l = kn_xcalloc(1, sizeof(*l));
    while (bl > 0 && base[bl - 1] == '/')
        bl--;
    l->push_url = kn_xasprintf("%.*s/v2/bot/message/push", (int)bl, base);
    l->multicast_url =
        kn_xasprintf("%.*s/v2/bot/message/multicast", (int)bl, base);
    l->reply_url = kn_xasprintf("%.*s/v2/bot/message/reply", (int)bl, base);
    l->ca_file = cfg->line_ca_file ? kn_xstrdup(cfg->line_ca_file) : NULL;
    l->timeout_ms = (long)cfg->line_timeout_ms;
    l->connections =
        cfg->line_connections > 0 ? (size_t)cfg->line_connections : 8;
    if (cfg->line_token != NULL && cfg->line_token[0] != '\0') {
        l->static_token = kn_xstrdup(cfg->line_token);
        if (jwt)
            kn_log(KN_LOG_INFO, "line",
                   "line.token is set: the long-lived token is used, the "
                   "v2.1 key settings are ignored",
                   NULL);
    } else if (jwt) {
        char err[256];
        if (cfg->line_key_file == NULL || cfg->line_channel_id == NULL ||
            cfg->line_key_id == NULL || cfg->line_token_url == NULL) {
            kn_log(KN_LOG_ERROR, "line",
                   "the v2.1 token flow needs line.channel_id, line.key_file "
                   "and line.key_id together",
                   NULL);
            line_free(l);
            return KN_ECONFIG;
        }
        l->key = kn_jwt_key_file(cfg->line_key_file, err, sizeof(err));
        if (l->key == NULL || EVP_PKEY_get_base_id(l->key) != EVP_PKEY_RSA) {
            kn_log(KN_LOG_ERROR, "line",
                   "line.key_file: an RSA private key (PEM) is needed", "error",
                   l->key ? "not an RSA key" : err, NULL);
            line_free(l);
            return KN_ECONFIG;
        }
        l->channel_id = kn_xstrdup(cfg->line_channel_id);
        l->key_id = kn_xstrdup(cfg->line_key_id);
        l->token_url = kn_xstrdup(cfg->line_token_url);
        l->stateless = is_stateless_url(l->token_url);
    } else {
        /* Not fatal: kairand still delivers the other channels.  LINE
         * jobs tempfail with the auth hint until this is fixed. */
        kn_log(KN_LOG_WARN, "line", no_credentials, "hint",
               "or set routes.line = outbox", NULL);
    }
    l->net = kn_net_new(a->loop, (long)l->connections, 0);
    a->priv = l;
    kn_log(KN_LOG_INFO, "line", "LINE Messaging API configured", "url", base,
           "token",
           l->static_token          ? "long-lived"
           : l->key && l->stateless ? "stateless (issued, 15 min)"
           : l->key                 ? "v2.1 (issued)"
                                    : "none",
           NULL);
    return 0;
}

static size_t line_in_flight(struct kn_adapter *a)
{
    return ((struct line *)a->priv)->in_flight;
}

static size_t line_capacity(struct kn_adapter *a)
{
    return ((struct line *)a->priv)->connections;
}

static void line_close(struct kn_adapter *a)
{
    struct line *l = a->priv;
    l->closing = 1;
    kn_net_close(l->net); /* aborts what is left: each job hears of it */
    flush_waiting(l, kn_detail_aborted, 0);
    line_free(l);
    a->priv = NULL;
}

static int64_t rate_multicast(const struct kn_config *cfg)
{
    return cfg->line_rate;
}

/* Pushes to one user go at ten times the multicast rate (LINE's limits
 * for the two endpoints). */
static int64_t rate_push(const struct kn_config *cfg)
{
    return cfg->line_rate * 10;
}

static const struct kn_rate_def line_rates[] = {
    {"line:multicast", rate_multicast},
    {"line:push", rate_push},
};

static int line_rate_for(const struct kn_job *job)
{
    return job->naddr > 1 ? 0 : 1;
}

static void line_tokens(const struct kn_adapter *a, uint64_t *issued,
                        uint64_t *failed)
{
    struct kn_line_stats st;
    kn_line_stats(a, &st);
    *issued += st.token_issued;
    *failed += st.token_failures;
}

const struct kn_adapter_ops kn_adapter_line = {
    .name = "line",
    .max_batch = KN_LINE_MULTICAST_MAX,
    .open = line_open,
    .send = line_send,
    .in_flight = line_in_flight,
    .capacity = line_capacity,
    .close = line_close,
    .rates = line_rates,
    .nrates = KN_ARRAY_SIZE(line_rates),
    .rate_for = line_rate_for,
    .tokens = line_tokens,
    .reply = line_reply,
};

void kn_line_stats(const struct kn_adapter *a, struct kn_line_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (a != NULL && a->ops == &kn_adapter_line && a->priv != NULL)
        *out = ((const struct line *)a->priv)->stats;
}

uint64_t kn_line_token_refreshes(const struct kn_adapter *a)
{
    struct kn_line_stats st;
    kn_line_stats(a, &st);
    return st.token_issued;
}
