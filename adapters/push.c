/*
 * push.c - the "push" adapter: app notifications through FCM (fcm.c) or
 * APNs (apns.c), picked per job by the device token's platform
 * (job->platform "fcm" or "apns"), plus what both clients share: the
 * notification text, cutting a payload to the providers' 4096 bytes,
 * Retry-After, the stable apns-id UUID and scrubbing provider text.
 *
 * This file owns no connection: each client has its own curl multi handle
 * (its own HTTP/2 connections and limits).  Either provider may be left
 * unconfigured; a job for it then fails permanently with a reason saying
 * which keys to set.  With neither configured the adapter still opens
 * (routes.push = push is the default, and an e-mail-only school must be
 * able to start) and says so in a warning; a half-configured provider is
 * a start-up error.
 */
#include "adapters/push.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/kn.h"
#include "common/log.h"
#include "common/utf8.h"
#include "config/config.h"
#include "model/message.h"

/* ---- shared helpers ---- */

void kn__push_text(const struct kn_job *job, char **title, char **body,
                   char **link)
{
    const struct kn_message *m = job->msg;
    /* As in e-mail: a drill must never be mistaken for the real thing,
     * not even on a lock screen. */
    *title = kn_message_subject(m->drill, m->subject);
    *body = kn_message_body(KN_TEXT_PUSH, m->drill, m->body);
    *link = kn_message_link_text(KN_TEXT_PUSH, job->link);
}

/* Serialise build() with text cut to n bytes (+ "…" when cut); which = 0
 * cuts the body (tail, the link, kept whole after it), 1 the title (the
 * body then only the tail). */
static char *try_cut(kn__push_build_cb *build, void *ctx, const char *title,
                     const char *body, const char *tail, int which, size_t n,
                     size_t *len)
{
    char *text, *out;
    json_t *j;
    if (which == 0) {
        text = kn_message_body_with_link(body, n, tail);
        j = build(ctx, title, text);
    } else {
        text = kn_message_body_with_link(title, n, NULL);
        j = build(ctx, text, tail);
    }
    free(text);
    if (j == NULL)
        return NULL;
    out = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (out == NULL)
        return NULL;
    *len = strlen(out);
    return out;
}

/*
 * Binary search for the longest cut of the body (which = 0) or the title
 * (which = 1) that fits: the serialised length grows with the kept
 * prefix, so the search is exact.  Returns the payload, or NULL (with
 * *rc set) when not even the shortest cut fits.
 */
static char *fit_cut(kn__push_build_cb *build, void *ctx, const char *title,
                     const char *body, const char *tail, int which, size_t max,
                     size_t *len, int *rc)
{
    const char *s = which == 0 ? body : title;
    size_t lo = 0, hi = strlen(s), best_len = 0;
    char *best = NULL, *p;
    /* lo: a kept length known to fit (once best is set); hi: known not to
     * (the full text did not). */
    p = try_cut(build, ctx, title, body, tail, which, 0, len);
    if (p == NULL) {
        *rc = KN_EINVAL;
        return NULL;
    }
    if (*len > max) {
        free(p);
        *rc = KN_ETOOBIG;
        return NULL;
    }
    best = p;
    best_len = *len;
    while (hi - lo > 1) {
        size_t mid = kn_utf8_floor(s, lo + (hi - lo) / 2), l;
        if (mid <= lo) {
            /* No character boundary strictly between lo and hi other
             * than lo: try the next boundary above lo. */
            mid = lo + 1;
            while (mid < hi && ((unsigned char)s[mid] & 0xC0) == 0x80)
                mid++;
            if (mid >= hi)
                break;
        }
        p = try_cut(build, ctx, title, body, tail, which, mid, &l);
        if (p == NULL) {
            free(best);
            *rc = KN_EINVAL;
            return NULL;
        }
        if (l <= max) {
            free(best);
            best = p;
            best_len = l;
            lo = mid;
        } else {
            free(p);
            hi = mid;
        }
    }
    *len = best_len;
    return best;
}

int kn__push_fit(kn__push_build_cb *build, void *ctx, const char *title,
                 const char *body, const char *tail, size_t max, char **out,
                 size_t *len)
{
    char *s;
    int rc = 0;
    if (tail == NULL)
        tail = "";
    s = try_cut(build, ctx, title, body, tail, 0, SIZE_MAX, len);
    if (s == NULL)
        return KN_EINVAL;
    if (*len <= max) {
        *out = s;
        return 0;
    }
    free(s);
    /* Too long: cut the body (never the tail); if an empty body is still
     * too long, keep it empty and cut the title. */
    s = fit_cut(build, ctx, title, body, tail, 0, max, len, &rc);
    if (s == NULL && rc == KN_ETOOBIG) {
        /* The whole title with no body at all, else a cut title. */
        s = try_cut(build, ctx, title, "", tail, 0, 0, len);
        if (s != NULL && *len > max) {
            free(s);
            s = fit_cut(build, ctx, title, body, tail, 1, max, len, &rc);
        } else if (s == NULL) {
            rc = KN_EINVAL;
        }
    }
    if (s == NULL)
        return rc;
    *out = s;
    return 0;
}

int64_t kn__push_retry_after(const char *value, int64_t now_ms)
{
    const int64_t cap = 24LL * 3600 * 1000;
    int64_t ms;
    struct tm tm;
    const char *end;
    if (value == NULL)
        return 0;
    while (*value == ' ')
        value++;
    if (isdigit((unsigned char)*value)) {
        long long s = 0;
        for (end = value; isdigit((unsigned char)*end); end++) {
            if (s < 1000000000LL)
                s = s * 10 + (*end - '0');
        }
        if (*end != '\0' && *end != ' ')
            return 0;
        ms = s * 1000;
    } else {
        /* IMF-fixdate (RFC 9110 5.6.7): "Sun, 06 Nov 1994 08:49:37 GMT" */
        memset(&tm, 0, sizeof(tm));
        end = strptime(value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        if (end == NULL)
            return 0;
        ms = (int64_t)timegm(&tm) * 1000 - now_ms;
    }
    if (ms <= 0)
        return 0;
    return ms > cap ? cap : ms;
}

void kn__push_uuid(const char *key, char out[37])
{
    /* A fixed namespace for kairan's apns-id values (a random v4 UUID
     * chosen once; never change it: retries across versions must keep
     * their ids). */
    static const unsigned char ns[16] = {0x6b, 0x61, 0x69, 0x72, 0x61, 0x6e,
                                         0x4a, 0x50, 0x9f, 0x3c, 0x21, 0x7e,
                                         0x58, 0x0d, 0xa4, 0x11};
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (c == NULL || EVP_DigestInit_ex(c, EVP_sha1(), NULL) != 1 ||
        EVP_DigestUpdate(c, ns, sizeof(ns)) != 1 ||
        EVP_DigestUpdate(c, key, strlen(key)) != 1 ||
        EVP_DigestFinal_ex(c, md, &mdlen) != 1)
        KN_PANIC("SHA-1 failed");
    EVP_MD_CTX_free(c);
    md[6] = (unsigned char)((md[6] & 0x0F) | 0x50); /* version 5 */
    md[8] = (unsigned char)((md[8] & 0x3F) | 0x80); /* RFC 4122 variant */
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[md[i] >> 4];
        out[o++] = hex[md[i] & 15];
    }
    out[o] = '\0';
}

char *kn__push_scrub(const char *text, const char *token, char *buf, size_t len)
{
    /* The whole text is masked first and cut after: an address or the
     * token across the cut would otherwise be left half in clear.  A
     * masked address is at most 3 bytes longer than its "x@": 4n + 1
     * bytes hold any text of n bytes masked. */
    size_t tl0 = text ? strlen(text) : 0;
    char *tmp, *hit;
    size_t o = 0;
    if (len == 0)
        return buf;
    tmp = kn_xmalloc(4 * tl0 + 1);
    kn_mask_text(text ? text : "", tmp, 4 * tl0 + 1);
    if (token != NULL && strlen(token) >= 8) {
        /* Replace each occurrence of the token by its masked form. */
        char masked[32];
        const char *p = tmp;
        size_t tl = strlen(token);
        kn_mask_address(token, masked, sizeof(masked));
        while ((hit = strstr(p, token)) != NULL && o + 1 < len) {
            size_t n = (size_t)(hit - p), m = strlen(masked);
            if (o + n >= len)
                n = len - o - 1;
            memcpy(buf + o, p, n);
            o += n;
            if (o + m >= len)
                m = len - o - 1;
            memcpy(buf + o, masked, m);
            o += m;
            p = hit + tl;
        }
        while (*p != '\0' && o + 1 < len)
            buf[o++] = *p++;
    } else {
        for (const char *p = tmp; *p != '\0' && o + 1 < len; p++)
            buf[o++] = *p;
    }
    buf[o] = '\0';
    /* Control characters (a provider's multi-line text) become spaces:
     * a detail is one line. */
    for (char *p = buf; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    }
    free(tmp);
    return buf;
}

/* ---- the adapter ---- */

struct push {
    struct kn__fcm *fcm;
    struct kn__apns *apns;
};

static const char no_platform[] =
    "push job without a platform (expected \"fcm\" or \"apns\")";
static const char fcm_off[] =
    "fcm is not configured: set [fcm] project_id and service_account_file";
static const char apns_off[] = "apns is not configured: set [apns] key_file, "
                               "key_id, team_id and topic";

static int push_open(struct kn_adapter *a, const struct kn_config *cfg)
{
    struct push *p = kn_xcalloc(1, sizeof(*p));
    int rc = kn__fcm_open(a->loop, cfg, &p->fcm);
    if (rc == 0)
        rc = kn__apns_open(a->loop, cfg, a->host, &p->apns);
    if (rc == 0 && p->fcm == NULL && p->apns == NULL) {
        /* routes.push = push is the default: a school that sends only
         * e-mail must still be able to start.  Push jobs then fail at
         * once with the reason (and move on to the recipient's next
         * channel under policy preferred). */
        kn_log(KN_LOG_WARN, "push",
               "routes.push = push, but neither [fcm] nor [apns] is "
               "configured: push jobs will fail",
               "hint",
               "set [fcm] project_id and service_account_file, and/or "
               "[apns] key_file, key_id, team_id and topic; or route push "
               "to the outbox",
               NULL);
    }
    if (rc < 0) {
        if (p->fcm != NULL)
            kn__fcm_close(p->fcm);
        if (p->apns != NULL)
            kn__apns_close(p->apns);
        free(p);
        return rc;
    }
    a->priv = p;
    return 0;
}

static void fail_now(struct kn_job *job, const char *why, kn_done_cb *done,
                     void *arg)
{
    struct kn_result r = {.status = KN_PERMFAIL, .detail = why};
    done(job, &r, arg);
}

static int push_send(struct kn_adapter *a, struct kn_job **jobs, size_t n,
                     kn_done_cb *done, void *arg)
{
    struct push *p = a->priv;
    for (size_t i = 0; i < n; i++) {
        struct kn_job *job = jobs[i];
        const char *pf = job->platform;
        if (pf != NULL && strcmp(pf, "fcm") == 0) {
            if (p->fcm != NULL)
                kn__fcm_send(p->fcm, job, done, arg);
            else
                fail_now(job, fcm_off, done, arg);
        } else if (pf != NULL && strcmp(pf, "apns") == 0) {
            if (p->apns != NULL)
                kn__apns_send(p->apns, job, done, arg);
            else
                fail_now(job, apns_off, done, arg);
        } else {
            fail_now(job, no_platform, done, arg);
        }
    }
    return 0;
}

static size_t push_in_flight(struct kn_adapter *a)
{
    struct push *p = a->priv;
    return (p->fcm ? kn__fcm_in_flight(p->fcm) : 0) +
           (p->apns ? kn__apns_in_flight(p->apns) : 0);
}

/* HTTP/2 multiplexing: many streams per connection, on every connection
 * of each configured provider. */
static size_t push_capacity(struct kn_adapter *a)
{
    struct push *p = a->priv;
    size_t conns = (p->fcm ? kn__fcm_connections(p->fcm) : 0) +
                   (p->apns ? kn__apns_connections(p->apns) : 0);
    /* Nothing configured: jobs fail at once, a few at a time. */
    return conns > 0 ? conns * KN_PUSH_STREAMS_PER_CONN : 16;
}

static void push_close(struct kn_adapter *a)
{
    struct push *p = a->priv;
    if (p->fcm != NULL)
        kn__fcm_close(p->fcm);
    if (p->apns != NULL)
        kn__apns_close(p->apns);
    free(p);
    a->priv = NULL;
}

static int64_t rate_fcm(const struct kn_config *cfg)
{
    return cfg->fcm_rate;
}

static int64_t rate_apns(const struct kn_config *cfg)
{
    return cfg->apns_rate;
}

static const struct kn_rate_def push_rates[] = {
    {"push:fcm", rate_fcm},
    {"push:apns", rate_apns},
};

/* A job without a platform is an FCM token (the expander's default). */
static int push_rate_for(const struct kn_job *job)
{
    if (job->platform == NULL || strcmp(job->platform, "fcm") == 0)
        return 0;
    if (strcmp(job->platform, "apns") == 0)
        return 1;
    return -1;
}

static void push_tokens(const struct kn_adapter *a, uint64_t *issued,
                        uint64_t *failed)
{
    *issued +=
        kn_push_token_refreshes(a, "fcm") + kn_push_token_refreshes(a, "apns");
}

const struct kn_adapter_ops kn_adapter_push = {
    .name = "push",
    .max_batch = 1,
    .open = push_open,
    .send = push_send,
    .in_flight = push_in_flight,
    .capacity = push_capacity,
    .close = push_close,
    .rates = push_rates,
    .nrates = KN_ARRAY_SIZE(push_rates),
    .rate_for = push_rate_for,
    .tokens = push_tokens,
};

uint64_t kn_push_token_refreshes(const struct kn_adapter *a,
                                 const char *provider)
{
    const struct push *p;
    if (a == NULL || a->ops != &kn_adapter_push || a->priv == NULL ||
        provider == NULL)
        return 0;
    p = a->priv;
    if (strcmp(provider, "fcm") == 0)
        return p->fcm ? kn__fcm_refreshes(p->fcm) : 0;
    if (strcmp(provider, "apns") == 0)
        return p->apns ? kn__apns_refreshes(p->apns) : 0;
    return 0;
}

void kn__push_not_dead(struct kn_result *r, char *detail, size_t n,
                       const char *why)
{
    static const char tag[] = " (token dead)";
    size_t l = strlen(detail);
    if (l >= sizeof(tag) - 1 &&
        strcmp(detail + l - (sizeof(tag) - 1), tag) == 0)
        l -= sizeof(tag) - 1;
    r->dead = 0;
    snprintf(detail + l, n - l, " (not marked dead: %s)", why);
}
