/*
 * sendgrid_events.c - POST /sendgrid/events: SendGrid's Event Webhook
 * (issue 18), for the bounces of mail sent through SendGrid while the relay
 * is down.
 *
 * Checked before anything else: sendgrid.webhook_public_key is set (else
 * 403), both headers are there (else 401), the request rate and the
 * requests at once (SG_RATE, SG_CONCURRENCY, for all of SendGrid's servers
 * together, as the LINE webhook), the body at most KN_SG_HOOK_MAX_BODY;
 * then the ECDSA P-256 signature (SHA-256 over the timestamp header and
 * the raw body, DER, base64: X-Twilio-Email-Event-Webhook-Signature) and
 * the timestamp within SG_WINDOW_S of now: wrong or stale -> 403, nothing
 * read.
 *
 * Replays: SendGrid retries a POST it did not see answered with 2xx for up
 * to 24 hours, so the window is 24 h and 15 min.  What stops a replay
 * within it is Redis: a signed request (the SHA-256 of its timestamp and
 * body: not of the signature, which ECDSA lets anyone alter into another
 * valid one) is taken once (a request seen again is
 * answered 200, "replay", and changes nothing, which also ends SendGrid's
 * own retry of a request whose answer was lost) and each sg_event_id
 * once.  A request that failed (Redis unreachable: 503) took nothing, so
 * SendGrid's retry of it is recorded.
 *
 * Only bounce, blocked and dropped events with kairan's own custom
 * argument kairan_ref (adapters/sendgrid.c) count; the reference is looked
 * up like a DSN's (queue/lua/sendgrid_events.lua).  The events' e-mail
 * addresses and reasons are never read into a log or Redis.
 */
#include "dispatcher/http/http_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/argv.h"
#include "common/codec.h"
#include "common/kn.h"
#include "common/log.h"
#include "config/config.h"
#include "model/dsn.h"
#include "queue/scripts.h"

#define SG_RATE        50 /* requests a second */
#define SG_CONCURRENCY 8  /* requests at once */
#define SG_WINDOW_S    (24 * 3600 + 15 * 60)
#define SG_FUTURE_S    300 /* clocks differ */
#define SG_KEEP_MS     ((int64_t)(SG_WINDOW_S + SG_FUTURE_S + 3600) * 1000)
#define SG_MAX_EVENTS  10000

int kn__httpd_sg_admit(struct conn *c)
{
    const struct kn_config *cfg = c->srv->cfg;

    if (cfg->sendgrid_webhook_public_key == NULL) {
        kn__httpd_respond_error(c, 403, NULL,
                                "the SendGrid webhook is off: set "
                                "sendgrid.webhook_public_key");
        return 0;
    }
    if (c->req.sg_sig == NULL || c->req.sg_sig[0] == '\0' ||
        c->req.sg_ts == NULL || c->req.sg_ts[0] == '\0') {
        kn__httpd_respond_error(c, 401, NULL,
                                "missing X-Twilio-Email-Event-Webhook-"
                                "Signature or -Timestamp");
        return 0;
    }
    /* (the ECDSA check costs the loop ~0.1 ms: a flooding source is
     * refused before its body) */
    return kn__httpd_hook_source_ok(c);
}

/* Once the signature holds: the shared budget and a slot. */
int kn__httpd_sg_take(struct conn *c)
{
    struct http_srv *s = c->srv;
    double cap = SG_RATE;
    int64_t now = kn_mono_ms();

    if (s->sg_at == 0)
        s->sg_tokens = cap;
    else
        s->sg_tokens += (double)(now - s->sg_at) * cap / 1000.0;
    if (s->sg_tokens > cap)
        s->sg_tokens = cap;
    s->sg_at = now;
    if (s->sg_tokens < 1.0) {
        json_t *j = json_object();
        json_object_set_new(j, "error",
                            json_string("too many SendGrid webhook requests; "
                                        "try again"));
        json_object_set_new(j, "field", json_null());
        kn__httpd_respond_json(c, 429, j, "Retry-After: 1\r\n");
        return 0;
    }
    if (s->sg_active >= SG_CONCURRENCY) {
        kn__httpd_respond_error(c, 503, NULL,
                                "too many SendGrid webhook requests at once; "
                                "try again");
        return 0;
    }
    s->sg_tokens -= 1.0;
    s->sg_active++;
    c->req.sg_slot = 1;
    return 1;
}

/* The timestamp header: 1-12 digits, within the window of now. */
static int ts_ok(const char *ts)
{
    size_t n = strlen(ts);
    long long t, now = kn_now_ms() / 1000;
    if (n == 0 || n > 12)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)ts[i]))
            return 0;
    }
    t = strtoll(ts, NULL, 10);
    return t >= now - SG_WINDOW_S && t <= now + SG_FUTURE_S;
}

/* 1 if sig_b64 is the key's ECDSA signature of ts || body; then sha is
 * the SHA-256 of ts, LF, body (the request's identity). */
static int sig_ok(const char *key_b64, const char *ts, const char *body,
                  size_t len, const char *sig_b64, unsigned char sha[32])
{
    unsigned char *der = NULL, *sig = NULL;
    const unsigned char *p;
    long dl = kn_b64_decode(key_b64, strlen(key_b64), &der);
    long sl = kn_b64_decode(sig_b64, strlen(sig_b64), &sig);
    EVP_PKEY *k = NULL;
    EVP_MD_CTX *md = NULL;
    int ok = 0;
    if (dl <= 0 || sl <= 0 || sl > 256)
        goto out;
    p = der;
    k = d2i_PUBKEY(NULL, &p, dl);
    if (k == NULL || EVP_PKEY_get_base_id(k) != EVP_PKEY_EC)
        goto out;
    md = EVP_MD_CTX_new();
    if (md == NULL ||
        EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k) != 1 ||
        EVP_DigestVerifyUpdate(md, ts, strlen(ts)) != 1 ||
        EVP_DigestVerifyUpdate(md, body, len) != 1)
        goto out;
    ok = EVP_DigestVerifyFinal(md, sig, (size_t)sl) == 1;
    if (ok) {
        /* what identifies the request: its timestamp and body */
        EVP_MD_CTX *h = EVP_MD_CTX_new();
        unsigned int hl = 0;
        ok = h != NULL && EVP_DigestInit_ex(h, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(h, ts, strlen(ts)) == 1 &&
             EVP_DigestUpdate(h, "\n", 1) == 1 &&
             EVP_DigestUpdate(h, body, len) == 1 &&
             EVP_DigestFinal_ex(h, sha, &hl) == 1 && hl == 32;
        EVP_MD_CTX_free(h);
    }
out:
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(k);
    free(der);
    free(sig);
    return ok;
}

/*
 * One event into a (id, ref, kind, status), or 0 if it is not a bounce of
 * ours: bounce (type blocked, or a 4.x.x status: soft; else hard), blocked
 * (soft), dropped (hard); with an sg_event_id and a valid kairan_ref.
 */
static int take_event(json_t *e, struct kn_argv *a)
{
    const char *ev = json_string_value(json_object_get(e, "event"));
    const char *id = json_string_value(json_object_get(e, "sg_event_id"));
    const char *ref = json_string_value(json_object_get(e, "kairan_ref"));
    const char *type = json_string_value(json_object_get(e, "type"));
    const char *st = json_string_value(json_object_get(e, "status"));
    char detail[48], status[16] = "5.0.0";
    int soft;
    size_t il;
    if (ev == NULL || id == NULL || ref == NULL || !kn_bounce_ref_valid(ref))
        return 0;
    if (strcmp(ev, "bounce") != 0 && strcmp(ev, "blocked") != 0 &&
        strcmp(ev, "dropped") != 0)
        return 0;
    il = strlen(id);
    if (il == 0 || il > 128)
        return 0;
    for (size_t i = 0; i < il; i++) {
        if ((unsigned char)id[i] <= 0x20 || (unsigned char)id[i] >= 0x7f)
            return 0;
    }
    if (st != NULL) {
        /* the status, validated: "5.1.1;0;x" -> "5.1.1" */
        kn_bounce_detail(detail, sizeof(detail), st, 0, "x");
        if (detail[0] != ';')
            snprintf(status, sizeof(status), "%.*s", (int)strcspn(detail, ";"),
                     detail);
    }
    soft = strcmp(ev, "blocked") == 0 ||
           (type != NULL && strcmp(type, "blocked") == 0) || status[0] == '4';
    kn_argv_add(a, id);
    kn_argv_add(a, ref);
    kn_argv_add(a, soft ? "soft" : "hard");
    kn_argv_add(a, status);
    return 1;
}

static void on_sg_recorded(struct batch *b)
{
    struct conn *c = b->c;
    const redisReply *r;
    json_t *j;
    if (c == NULL)
        return;
    r = kn__httpd_brep(b, 0);
    if (b->failed || r == NULL || r->type != REDIS_REPLY_ARRAY ||
        r->elements != 4) {
        /* nothing was taken: SendGrid's retry will be recorded */
        kn__httpd_respond_error(c, 503, NULL,
                                "Redis is unreachable; send it again");
        return;
    }
    j = json_pack("{s:b, s:I, s:I, s:I}", "replay", r->element[0]->integer == 1,
                  "recorded", (json_int_t)r->element[1]->integer, "duplicates",
                  (json_int_t)r->element[2]->integer, "unknown",
                  (json_int_t)r->element[3]->integer);
    kn_log(KN_LOG_INFO, "http", "SendGrid events", "replay",
           r->element[0]->integer == 1 ? "yes" : "no", "source", c->req.source,
           NULL);
    kn__httpd_respond_json(c, 200, j, NULL);
}

void kn__httpd_run_sg_hook(struct conn *c)
{
    const struct kn_config *cfg = c->srv->cfg;
    const char *body = kn_buf_str(&c->req.body);
    size_t len = kn_buf_len(&c->req.body), i, n = 0;
    unsigned char sha[32];
    char hex[65];
    json_t *arr, *e;
    json_error_t jerr;
    struct kn_argv a;
    struct batch *b;

    if (!ts_ok(c->req.sg_ts) ||
        !sig_ok(cfg->sendgrid_webhook_public_key, c->req.sg_ts, body, len,
                c->req.sg_sig, sha)) {
        kn_log(KN_LOG_WARN, "http",
               "SendGrid webhook with a bad signature or a stale timestamp",
               "source", c->req.source, NULL);
        kn__httpd_hook_bad(c);
        kn__httpd_respond_error(c, 403, NULL,
                                "bad X-Twilio-Email-Event-Webhook-Signature "
                                "or a timestamp outside the window");
        return;
    }
    if (!kn__httpd_sg_take(c))
        return;
    arr = json_loadb(body, len, 0, &jerr);
    if (!json_is_array(arr) || json_array_size(arr) > SG_MAX_EVENTS) {
        json_decref(arr);
        kn__httpd_respond_error(c, 400, NULL,
                                "the body is not an array of SendGrid "
                                "events (at most 10000)");
        return;
    }
    for (i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", sha[i]);
    kn_argv_init(&a);
    kn_argv_add(&a, "EVAL");
    kn_argv_add(&a, kn_script_sendgrid_events.src);
    kn_argv_add(&a, "1");
    kn_argv_take(&a, kn__key(c->srv->d, "sgsig:%s", hex));
    kn_argv_add(&a, c->srv->d->prefix);
    kn_argv_addi(&a, kn_now_ms());
    kn_argv_addi(&a, SG_KEEP_MS);
    kn_argv_addi(&a, KN_BOUNCE_SOFT_WINDOW_MS);
    kn_argv_addi(&a, KN_BOUNCE_SOFT_LIMIT);
    json_array_foreach(arr, i, e)
    {
        if (json_is_object(e))
            n += (size_t)take_event(e, &a);
    }
    json_decref(arr);
    kn_log(KN_LOG_INFO, "http", "SendGrid webhook", "bounces",
           n > 0 ? "yes" : "no", "source", c->req.source, NULL);
    b = kn__httpd_batch_new(c->srv, c, on_sg_recorded, NULL);
    kn__httpd_batch_add(b, &a);
    kn__httpd_batch_end(b);
    kn_argv_free(&a);
}
