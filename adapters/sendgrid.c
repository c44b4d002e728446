/*
 * sendgrid.c - e-mail through SendGrid's v3 Mail Send API
 * (PROVIDERS.md section 5), the failover path when the school's relay is
 * down.
 *
 * One send() call becomes one POST /v3/mail/send per broadcast among its
 * jobs (up to sendgrid.batch personalizations each, one per job), with the
 * same subject, body and Message-ID that the SMTP adapter would have sent,
 * and custom_args naming the broadcast and the job (SendGrid has no
 * idempotency key: these let delivery events be de-duplicated) and the
 * job's bounce reference (kairan_ref), by which the Event Webhook's
 * bounces are attributed.  At most
 * KN_SENDGRID_REQUESTS requests run at once; more wait here in order.
 *
 * SendGrid refuses the whole request when one address is outside its
 * `email` format, and Japanese carrier addresses such as
 * taro..yamada.@docomo.ne.jp are: such jobs never enter a request but
 * tempfail at once (they wait for the relay or their next channel).
 *
 * Classification (one result for every job of the request): 202 (any
 * 2xx) delivered (accepted; X-Message-Id kept); 429 tempfail until
 * X-RateLimit-Reset (or Retry-After); 401/403 tempfail with the auth hint
 * (our key, not the recipients); other 4xx permfail with SendGrid's
 * errors[].message; 5xx and transport errors tempfail.
 */
#include "adapters/sendgrid.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"
#include "adapters/http.h"
#include "adapters/mime.h"
#include "adapters/net.h"
#include "common/buf.h"
#include "common/codec.h"
#include "common/kn.h"
#include "common/log.h"
#include "config/config.h"
#include "model/address.h"
#include "model/directory.h"
#include "model/message.h"

const char kn_detail_sendgrid_address[] =
    "address not accepted by SendGrid (RFC-violating carrier address): "
    "waits for the relay";

/* The personal confirmation link: one body for the whole request, the
 * link put in per personalization by a substitution (the same text as the
 * e-mail: kn_message_link_text(KN_TEXT_MAIL)); pick_tag() makes the tag. */
static const char link_tag[] = "-kairan-confirm-link-";

struct sg_req;

struct sendgrid {
    struct kn_net *net;
    struct kn__sendgrid_from from;
    char *url;
    char *auth; /* "Authorization: Bearer <key>" */
    char *ca_file;
    long timeout_ms;
    size_t batch;
    size_t in_flight; /* jobs taken by send() and not yet done */
    size_t running;   /* requests in flight */
    int closing;
    struct sg_req *queue, *queue_tail; /* requests waiting for a slot */
};

struct sg_req {
    struct sendgrid *s;
    kn_done_cb *done;
    void *arg;
    struct kn_job **jobs;
    size_t n;
    char *body;
    struct sg_req *next;
    char detail[512];
};

/* ------------------------------------------------------------------------
 * Sender and body
 * ------------------------------------------------------------------------ */

void kn__sendgrid_from_free(struct kn__sendgrid_from *f)
{
    free(f->email);
    free(f->name);
    free(f->reply_email);
    free(f->reply_name);
    free(f->domain);
    memset(f, 0, sizeof(*f));
}

int kn__sendgrid_from_init(struct kn__sendgrid_from *f,
                           const struct kn_config *cfg)
{
    const char *at;
    memset(f, 0, sizeof(*f));
    if (cfg->smtp_from == NULL ||
        kn_mime_split_mailbox(cfg->smtp_from, &f->name, &f->email) < 0 ||
        !kn_addr_is_dot_atom(f->email) ||
        (at = strrchr(f->email, '@')) == NULL) {
        kn_log(KN_LOG_ERROR, "sendgrid",
               "smtp.from is not an address SendGrid accepts", "hint",
               "write it as 'Name <noreply@school.example.jp>'", NULL);
        kn__sendgrid_from_free(f);
        return KN_ECONFIG;
    }
    f->domain = kn_xstrdup(at + 1);
    if (cfg->smtp_reply_to != NULL &&
        (kn_mime_split_mailbox(cfg->smtp_reply_to, &f->reply_name,
                               &f->reply_email) < 0 ||
         !kn_addr_is_dot_atom(f->reply_email))) {
        kn_log(KN_LOG_ERROR, "sendgrid",
               "smtp.reply_to is not an address SendGrid accepts", NULL);
        kn__sendgrid_from_free(f);
        return KN_ECONFIG;
    }
    return 0;
}

static json_t *mailbox(const char *email, const char *name)
{
    json_t *o = json_pack("{s:s}", "email", email);
    if (o != NULL && name != NULL && name[0] != '\0') {
        json_t *n = json_string(name);
        if (n == NULL) {
            json_decref(o);
            return NULL;
        }
        json_object_set_new(o, "name", n);
    }
    return o;
}

/*
 * The substitution tag for this message, into tag: SendGrid replaces it
 * in the subject and the content alike, so it must be in neither the
 * subject nor the body's own text, nor begin inside the body's end (a
 * body ending "...-link-1a2b" could take the tag's first characters):
 * link_tag and 64 random bits, which a sender cannot guess, checked all
 * the same.  The body is then text + tag, with the tag there once, at
 * the end.
 */
static void pick_tag(char *tag, size_t cap, const char *subject,
                     const char *text)
{
    size_t tlen = strlen(text);
    for (;;) {
        unsigned char r[8];
        char hex[17], *joined;
        int ok;
        if (RAND_bytes(r, sizeof(r)) != 1)
            KN_PANIC("RAND_bytes failed");
        kn_hex_encode(r, sizeof(r), hex);
        snprintf(tag, cap, "%s%s-", link_tag, hex);
        joined = kn_xasprintf("%s%s", text, tag);
        ok = strstr(subject, tag) == NULL &&
             strstr(joined, tag) == joined + tlen;
        free(joined);
        if (ok)
            return;
    }
}

char *kn__sendgrid_body(const struct kn__sendgrid_from *f,
                        struct kn_job *const *jobs, size_t n)
{
    const struct kn_message *m = jobs[0]->msg;
    json_t *o = json_object(), *ps = json_array(), *v;
    char *subject, *body, *text, *out = NULL, tag[48];
    int ok = 1, links = 0;

    for (size_t i = 0; i < n; i++)
        links |= jobs[i]->link != NULL || jobs[i]->mypage != NULL;
    subject = kn_message_subject(m->drill, m->subject);
    /* SendGrid refuses an empty content value. */
    text = kn_message_body(KN_TEXT_MAIL, m->drill,
                           m->body && m->body[0] ? m->body : " ");
    pick_tag(tag, sizeof(tag), subject, text);
    body = kn_message_body_with_link(text, SIZE_MAX, links ? tag : "");
    free(text);
    for (size_t i = 0; i < n && ok; i++) {
        const struct kn_job *j = jobs[i];
        char bi16[17], *mid, *jobkey;
        json_t *p;
        snprintf(bi16, sizeof(bi16), "%.16s", j->bindex ? j->bindex : "");
        mid = kn_mime_message_id(m->bcast, bi16, f->domain);
        jobkey = j->key ? kn_xstrdup(j->key)
                        : kn_xasprintf("email:%s", j->bindex ? j->bindex : "");
        p = json_pack("{s:[{s:s}], s:{s:s}, s:{s:s, s:s}}", "to", "email",
                      j->addr, "headers", "Message-ID", mid, "custom_args",
                      "kairan_bc", m->bcast, "kairan_job", jobkey);
        free(mid);
        free(jobkey);
        if (p != NULL && j->unsub != NULL && kn_mime_unsub_url_ok(j->unsub)) {
            /* RFC 8058, as the SMTP message has them (a personalization's
             * headers; SendGrid refuses to override only its own list) */
            char *lu = kn_xasprintf("<%s>", j->unsub);
            json_t *h = json_object_get(p, "headers");
            json_object_set_new(h, "List-Unsubscribe", json_string(lu));
            json_object_set_new(h, KN_MIME_UNSUB_POST_NAME,
                                json_string(KN_MIME_UNSUB_POST_VALUE));
            free(lu);
        }
        if (p != NULL && j->bounce_ref != NULL)
            /* the one thing the Event Webhook attributes a bounce by
             * (dispatcher/http/sendgrid_events.c) */
            json_object_set_new(json_object_get(p, "custom_args"), "kairan_ref",
                                json_string(j->bounce_ref));
        if (p != NULL && links) {
            /* the confirmation link, then the my-page foot (issue 16) */
            char *l1 = kn_message_link_text(KN_TEXT_MAIL, j->link);
            char *l2 = kn_message_mypage_text(
                j->msg->lang ? j->msg->lang : KN_LANG_DEFAULT, j->mypage);
            char *lt = kn_xasprintf("%s%s", l1, l2);
            json_t *t = json_string(lt);
            free(l1);
            free(l2);
            free(lt);
            if (t == NULL) {
                json_decref(p);
                p = NULL;
            } else {
                json_object_set_new(p, "substitutions",
                                    json_pack("{s:o}", tag, t));
            }
        }
        if (p == NULL)
            ok = 0;
        else
            json_array_append_new(ps, p);
    }
    json_object_set_new(o, "personalizations", ps);
    if ((v = mailbox(f->email, f->name)) == NULL)
        ok = 0;
    else
        json_object_set_new(o, "from", v);
    if (f->reply_email != NULL) {
        if ((v = mailbox(f->reply_email, f->reply_name)) == NULL)
            ok = 0;
        else
            json_object_set_new(o, "reply_to", v);
    }
    if ((v = json_string(subject)) == NULL)
        ok = 0;
    else
        json_object_set_new(o, "subject", v);
    v = json_pack("[{s:s, s:s}]", "type", "text/plain", "value", body);
    if (v == NULL)
        ok = 0;
    else
        json_object_set_new(o, "content", v);
    /* as the SMTP message has them */
    v = json_pack("{s:s}", "Content-Language",
                  m->lang != NULL ? m->lang : KN_LANG_DEFAULT);
    if (m->urgent) {
        json_object_set_new(v, "Importance", json_string("high"));
        json_object_set_new(v, "X-Priority", json_string("1"));
    }
    json_object_set_new(o, "headers", v);
    /* SendGrid's tracking off in every request, whatever the account
     * says: subscription tracking adds its own List-Unsubscribe (a second
     * one, or one on urgent and emergency mail, which must have none) and
     * a footer whose click suppresses the address at SendGrid, emergency
     * mail included; click tracking rewrites the personal confirmation,
     * my-page and unsubscribe links through SendGrid's redirector. */
    json_object_set_new(o, "tracking_settings",
                        json_pack("{s:{s:b, s:b}, s:{s:b}, s:{s:b}}",
                                  "click_tracking", "enable", 0, "enable_text",
                                  0, "open_tracking", "enable", 0,
                                  "subscription_tracking", "enable", 0));
    if (ok)
        out = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    free(subject);
    free(body);
    return out;
}

/* ------------------------------------------------------------------------
 * Classification
 * ------------------------------------------------------------------------ */

/* SendGrid's errors[]: "field: message; ..." (or the start of the body),
 * e-mail addresses masked in the whole text before it is cut to len
 * (SendGrid names every refused address: one across the cut would
 * otherwise keep its local part in clear). */
static void error_text(const char *body, size_t n, char *out, size_t len)
{
    json_t *j = json_loadb(body, n, 0, NULL);
    json_t *errs = json_object_get(j, "errors");
    struct kn_buf b;
    char *all;
    size_t cut = len;

    kn_buf_init(&b, 0);
    for (size_t i = 0; i < json_array_size(errs); i++) {
        json_t *e = json_array_get(errs, i);
        const char *msg = json_string_value(json_object_get(e, "message"));
        const char *field = json_string_value(json_object_get(e, "field"));
        if (field != NULL && strcmp(field, "null") == 0)
            field = NULL;
        kn_buf_addf(&b, "%s%s%s%s", kn_buf_len(&b) ? "; " : "",
                    field ? field : "", field ? ": " : "",
                    msg ? msg : "(no message)");
    }
    if (kn_buf_len(&b) == 0) {
        kn_buf_addn(&b, body, n);
        cut = len < 161 ? len : 161; /* the start of a page */
    }
    json_decref(j);
    all = kn_buf_take(&b, NULL);
    kn_mask_text(all, out, cut);
    free(all);
    for (char *p = out; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    }
}

/* Milliseconds to wait after a 429 or 503. */
static int64_t wait_ms(const struct kn_http_resp *resp, int64_t now_ms)
{
    const char *reset = kn_http_header(resp, "X-RateLimit-Reset");
    const char *ra = kn_http_header(resp, "Retry-After");
    int64_t ms = 0;
    /* Capped before any arithmetic: a provider's (or an attacker's) huge
     * number must not overflow. */
    long long rs = reset != NULL ? strtoll(reset, NULL, 10) : 0;
    long long rv = ra != NULL ? strtoll(ra, NULL, 10) : 0;
    if (rs > 0 && rs < 4102444800LL) /* before 2100 */
        ms = (int64_t)rs * 1000 - now_ms;
    else if (rv > 0)
        ms = (int64_t)(rv < 3600 ? rv : 3600) * 1000;
    if (ms < 1000)
        ms = 1000;
    if (ms > 3600 * 1000)
        ms = 3600 * 1000;
    return ms;
}

void kn__sendgrid_classify(const struct kn_http_resp *resp, int64_t now_ms,
                           struct kn_result *r, char *detail, size_t len)
{
    const char *mid = kn_http_header(resp, "X-Message-Id");
    char text[320], raw[512];
    long st = resp->status;

    memset(r, 0, sizeof(*r));
    r->detail = detail;
    if (resp->rc == CURLE_ABORTED_BY_CALLBACK) {
        r->status = KN_TEMPFAIL;
        r->detail = kn_detail_aborted;
        return;
    }
    if (resp->rc != CURLE_OK) {
        r->status = KN_TEMPFAIL;
        snprintf(raw, sizeof(raw), "sendgrid transport: %s",
                 resp->error ? resp->error : curl_easy_strerror(resp->rc));
    } else if (st >= 200 && st <= 299) {
        /* 202 is SendGrid's; any 2xx is an acceptance (sending it again
         * would mail every recipient of the request twice). */
        r->status = KN_DELIVERED;
        char mv[65];
        /* masked whole, then cut (as error_text) */
        kn_mask_text(mid ? mid : "none", mv, sizeof(mv));
        snprintf(raw, sizeof(raw), "sendgrid %ld accepted (X-Message-Id %s)",
                 st, mv);
    } else {
        error_text(resp->body, resp->bodylen, text, sizeof(text));
        if (st == 429) {
            r->status = KN_TEMPFAIL;
            r->retry_after_ms = wait_ms(resp, now_ms);
            snprintf(raw, sizeof(raw),
                     "sendgrid 429: rate limited, retry "
                     "in %lld ms: %s",
                     (long long)r->retry_after_ms, text);
        } else if (st == 401 || st == 403) {
            r->status = KN_TEMPFAIL;
            r->auth = 1;
            snprintf(raw, sizeof(raw), "sendgrid %ld: API key refused: %s", st,
                     text);
        } else if (st >= 500 || st == 408) {
            r->status = KN_TEMPFAIL;
            if (kn_http_header(resp, "Retry-After") != NULL ||
                kn_http_header(resp, "X-RateLimit-Reset") != NULL)
                r->retry_after_ms = wait_ms(resp, now_ms);
            snprintf(raw, sizeof(raw), "sendgrid %ld: %s", st, text);
        } else if (st >= 400) {
            r->status = KN_PERMFAIL;
            snprintf(raw, sizeof(raw), "sendgrid %ld: %s", st, text);
        } else {
            r->status = KN_TEMPFAIL;
            snprintf(raw, sizeof(raw), "sendgrid: unexpected HTTP status %ld",
                     st);
        }
    }
    kn_mask_text(raw, detail, len);
}

/* ------------------------------------------------------------------------
 * Sending
 * ------------------------------------------------------------------------ */

static void start(struct sg_req *q);

static void req_free(struct sg_req *q)
{
    free(q->jobs);
    free(q->body);
    free(q);
}

/* Give every job of q the result r; frees q. */
static void req_finish(struct sg_req *q, const struct kn_result *r)
{
    struct sendgrid *s = q->s;
    s->in_flight -= q->n;
    for (size_t i = 0; i < q->n; i++)
        q->done(q->jobs[i], r, q->arg);
    req_free(q);
}

/* Start queued requests while there are free request slots. */
static void pump(struct sendgrid *s)
{
    while (!s->closing && s->running < KN_SENDGRID_REQUESTS &&
           s->queue != NULL) {
        struct sg_req *q = s->queue;
        s->queue = q->next;
        if (s->queue == NULL)
            s->queue_tail = NULL;
        q->next = NULL;
        start(q);
    }
}

static void on_response(const struct kn_http_resp *resp, void *arg)
{
    struct sg_req *q = arg;
    struct sendgrid *s = q->s;
    struct kn_result r;

    s->running--;
    kn__sendgrid_classify(resp, kn_now_ms(), &r, q->detail, sizeof(q->detail));
    if (r.auth)
        kn_log(KN_LOG_ERROR, "sendgrid", "SendGrid refused the API key",
               "error", r.detail, NULL);
    req_finish(q, &r);
    pump(s);
}

static void start(struct sg_req *q)
{
    struct sendgrid *s = q->s;
    const char *headers[] = {s->auth, "Content-Type: application/json", NULL};
    struct kn_http_req req;

    memset(&req, 0, sizeof(req));
    req.method = "POST";
    req.url = s->url;
    req.headers = headers;
    req.body = q->body;
    req.bodylen = strlen(q->body);
    req.timeout_ms = s->timeout_ms;
    req.ca_file = s->ca_file;
    s->running++;
    /* The body is copied by http.c: free it now, it holds addresses. */
    kn__http_send(s->net, &req, on_response, q);
    OPENSSL_cleanse(q->body, strlen(q->body));
    free(q->body);
    q->body = NULL;
}

/* One request for jobs[0..n) (one broadcast, all addresses acceptable). */
static void request(struct sendgrid *s, struct kn_job **jobs, size_t n,
                    kn_done_cb *done, void *arg)
{
    struct sg_req *q = kn_xcalloc(1, sizeof(*q));
    q->s = s;
    q->done = done;
    q->arg = arg;
    q->n = n;
    q->jobs = kn_xmalloc(n * sizeof(*q->jobs));
    memcpy(q->jobs, jobs, n * sizeof(*jobs));
    s->in_flight += n;
    q->body = kn__sendgrid_body(&s->from, jobs, n);
    if (q->body == NULL) {
        struct kn_result r = {.status = KN_PERMFAIL};
        snprintf(q->detail, sizeof(q->detail),
                 "invalid message: subject or body is not UTF-8");
        r.detail = q->detail;
        req_finish(q, &r);
        return;
    }
    if (s->queue_tail != NULL)
        s->queue_tail->next = q;
    else
        s->queue = q;
    s->queue_tail = q;
    pump(s);
}

static int sg_send(struct kn_adapter *a, struct kn_job **jobs, size_t n,
                   kn_done_cb *done, void *arg)
{
    struct sendgrid *s = a->priv;
    struct kn_job **ok = kn_xmalloc((n ? n : 1) * sizeof(*ok));
    unsigned char *taken = kn_xcalloc(n ? n : 1, 1);
    size_t nok = 0;

    /* Jobs that must not enter a request hear of it at once. */
    for (size_t i = 0; i < n; i++) {
        const char *why = NULL;
        struct kn_result r = {.status = KN_TEMPFAIL};
        if (jobs[i]->addr == NULL || kn_addr_check(jobs[i]->addr, &why) < 0) {
            r.status = KN_PERMFAIL;
            r.detail = "invalid address";
        } else if (!kn_addr_is_dot_atom(jobs[i]->addr)) {
            r.detail = kn_detail_sendgrid_address;
        } else {
            ok[nok++] = jobs[i];
            continue;
        }
        done(jobs[i], &r, arg);
    }
    /* One request per broadcast (and per batch of s->batch jobs). */
    for (size_t i = 0; i < nok; i++) {
        struct kn_job **group;
        size_t ng = 0;
        if (taken[i])
            continue;
        group = kn_xmalloc(nok * sizeof(*group));
        for (size_t k = i; k < nok; k++) {
            if (!taken[k] &&
                strcmp(ok[k]->msg->bcast, ok[i]->msg->bcast) == 0) {
                taken[k] = 1;
                group[ng++] = ok[k];
            }
        }
        for (size_t off = 0; off < ng; off += s->batch)
            request(s, group + off, ng - off < s->batch ? ng - off : s->batch,
                    done, arg);
        free(group);
    }
    free(taken);
    free(ok);
    return 0;
}

/* ------------------------------------------------------------------------
 * Open and close
 * ------------------------------------------------------------------------ */

static int sg_open(struct kn_adapter *a, const struct kn_config *cfg)
{
    struct sendgrid *s;
    const char *base = cfg->sendgrid_api_base ? cfg->sendgrid_api_base
                                              : "https://api.sendgrid.com";
    const char *why = NULL;
    size_t bl = strlen(base);
    int rc;

    if (kn__http_url_ok(base, &why) < 0) {
        kn_log(KN_LOG_ERROR, "sendgrid", "unusable url", "key",
               "sendgrid.api_base", "url", base, "error", why, NULL);
        return KN_ECONFIG;
    }
    if (cfg->sendgrid_api_key == NULL || cfg->sendgrid_api_key[0] == '\0') {
        kn_log(KN_LOG_ERROR, "sendgrid",
               "no SendGrid API key: set sendgrid.api_key_file (or api_key, "
               "KAIRAN_SENDGRID_API_KEY)",
               NULL);
        return KN_ECONFIG;
    }
    s = kn_xcalloc(1, sizeof(*s));
    rc = kn__sendgrid_from_init(&s->from, cfg);
    if (rc < 0) {
        free(s);
        return rc;
    }
    while (bl > 0 && base[bl - 1] == '/')
        bl--;
    s->url = kn_xasprintf("%.*s/v3/mail/send", (int)bl, base);
    s->auth = kn_xasprintf("Authorization: Bearer %s", cfg->sendgrid_api_key);
    s->ca_file =
        cfg->sendgrid_ca_file ? kn_xstrdup(cfg->sendgrid_ca_file) : NULL;
    s->timeout_ms = (long)cfg->sendgrid_timeout_ms;
    s->batch =
        cfg->sendgrid_batch > 0 && cfg->sendgrid_batch <= KN_SENDGRID_MAX_BATCH
            ? (size_t)cfg->sendgrid_batch
            : KN_SENDGRID_MAX_BATCH;
    s->net = kn_net_new(a->loop, KN_SENDGRID_REQUESTS, 0);
    a->priv = s;
    kn_log(KN_LOG_INFO, "sendgrid", "SendGrid configured", "url", base, NULL);
    return 0;
}

static size_t sg_in_flight(struct kn_adapter *a)
{
    return ((struct sendgrid *)a->priv)->in_flight;
}

static size_t sg_capacity(struct kn_adapter *a)
{
    struct sendgrid *s = a->priv;
    return s->batch * KN_SENDGRID_REQUESTS;
}

static void sg_close(struct kn_adapter *a)
{
    struct sendgrid *s = a->priv;
    struct kn_result r = {.status = KN_TEMPFAIL, .detail = kn_detail_aborted};
    s->closing = 1;
    kn_net_close(s->net); /* running requests: aborted, each job told */
    while (s->queue != NULL) {
        struct sg_req *q = s->queue;
        s->queue = q->next;
        req_finish(q, &r);
    }
    kn__sendgrid_from_free(&s->from);
    free(s->url);
    OPENSSL_cleanse(s->auth, strlen(s->auth));
    free(s->auth);
    free(s->ca_file);
    free(s);
    a->priv = NULL;
}

static int64_t rate_sendgrid(const struct kn_config *cfg)
{
    return cfg->sendgrid_rate;
}

static const struct kn_rate_def sg_rates[] = {
    {"sendgrid", rate_sendgrid},
};

static int sg_configured(const struct kn_config *cfg)
{
    return cfg->sendgrid_api_key != NULL;
}

/* SendGrid refuses RFC-violating carrier addresses (a..b.@docomo.ne.jp),
 * and one of them fails its whole request. */
static int sg_accepts(const char *addr)
{
    return kn_addr_is_dot_atom(addr);
}

const struct kn_adapter_ops kn_adapter_sendgrid = {
    .name = "sendgrid",
    .max_batch = KN_SENDGRID_MAX_BATCH,
    .open = sg_open,
    .send = sg_send,
    .in_flight = sg_in_flight,
    .capacity = sg_capacity,
    .close = sg_close,
    .rates = sg_rates,
    .nrates = KN_ARRAY_SIZE(sg_rates),
    .configured = sg_configured,
    .accepts = sg_accepts,
};
