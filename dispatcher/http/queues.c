/*
 * queues.c - GET /v1/queues (depths, breakers, rate buckets, active and
 * rejected broadcasts) and GET /v1/queues/history (the depth samples the
 * status page draws).
 */
#include "dispatcher/http/http_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/argv.h"
#include "common/kn.h"
#include "queue/keys.h"

/* ------------------------------------------------------------ /v1/queues */

static int tenant_visible(const struct conn *c, const char *tenant)
{
    /* A staff session or a token bound to a tenant never sees outside
     * it, whatever its role. */
    if (!kn__httpd_tok_scoped(&c->req.tok))
        return 1;
    return tenant != NULL && c->req.tok.tenant != NULL &&
           strcmp(tenant, c->req.tok.tenant) == 0;
}

struct queues_ctx {
    json_t *root;
    struct kn_argv active, rejected;
};

/* The shared rate-limit buckets of dispatcher/worker.c. */
static const char *const rate_buckets[] = {"line:multicast", "line:push",
                                           "push:fcm", "push:apns", "sendgrid"};

static void queues_ctx_free(struct queues_ctx *q)
{
    json_decref(q->root);
    kn_argv_free(&q->active);
    kn_argv_free(&q->rejected);
    free(q);
}

static void on_queues_2(struct batch *b)
{
    struct queues_ctx *q = b->arg;
    json_t *act = json_array(), *rej = json_array();
    int k = 0;

    if (b->c == NULL) {
        queues_ctx_free(q);
        json_decref(act);
        json_decref(rej);
        return;
    }
    if (b->failed) {
        kn__httpd_respond_error(b->c, 503, NULL,
                                "Redis is unreachable; try again");
        queues_ctx_free(q);
        json_decref(act);
        json_decref(rej);
        return;
    }
    for (int i = 0; i < q->active.n; i++, k++) {
        const redisReply *h = kn__httpd_brep(b, k);
        const char *st;
        json_t *o;
        if (h == NULL || h->type != REDIS_REPLY_ARRAY || h->elements != 4 ||
            !tenant_visible(b->c, kn__httpd_rstr(h->element[3])))
            continue;
        st = kn__httpd_rstr(h->element[0]);
        o = json_object();
        json_object_set_new(o, "id", json_string(q->active.v[i]));
        json_object_set_new(o, "status", json_string(st ? st : "?"));
        json_object_set_new(o, "jobs",
                            json_integer(kn__httpd_rnum(h->element[1])));
        json_object_set_new(o, "final",
                            json_integer(kn__httpd_rnum(h->element[2])));
        json_array_append_new(act, o);
    }
    for (int i = 0; i < q->rejected.n; i++, k++) {
        const redisReply *h = kn__httpd_brep(b, k);
        const char *reason;
        json_t *o;
        if (h == NULL || h->type != REDIS_REPLY_ARRAY || h->elements != 3 ||
            !tenant_visible(b->c, kn__httpd_rstr(h->element[2])))
            continue;
        reason = kn__httpd_rstr(h->element[0]);
        o = json_object();
        json_object_set_new(o, "id", json_string(q->rejected.v[i]));
        json_object_set_new(o, "reason", json_string(reason ? reason : ""));
        json_object_set_new(o, "rejected_ms",
                            json_integer(kn__httpd_rnum(h->element[1])));
        json_array_append_new(rej, o);
    }
    json_object_set_new(q->root, "active", act);
    json_object_set_new(q->root, "rejected", rej);
    {
        /* Last, in kairanctl's order. */
        json_t *cats = json_incref(json_object_get(q->root, "categories"));
        json_t *rate = json_incref(json_object_get(q->root, "rate"));
        json_object_del(q->root, "categories");
        json_object_del(q->root, "rate");
        json_object_set_new(q->root, "categories", cats);
        json_object_set_new(q->root, "rate", rate);
    }
    kn__httpd_respond_json(b->c, 200, json_incref(q->root), NULL);
    queues_ctx_free(q);
}

static void on_queues_1(struct batch *b)
{
    struct http_srv *s = b->srv;
    struct queues_ctx *q;
    struct batch *b2;
    json_t *arr;
    const redisReply *ids;
    struct qstats qs;

    if (!kn__httpd_batch_usable(b))
        return;
    kn__httpd_gather_parse(b, &qs);
    s->qs = qs; /* as fresh as it gets: the scrape cache may use it */
    s->qs_mono = kn_mono_ms();
    q = kn_xcalloc(1, sizeof(*q));
    kn_argv_init(&q->active);
    kn_argv_init(&q->rejected);
    q->root = json_object();
    arr = json_array();
    for (int i = 0; i < KN_QUEUE_STREAMS; i++) {
        const char *name = kn_queue_stream_name(i);
        const char *colon = strchr(name, ':');
        long long oldest = qs.first_ms[i] > 0 ? qs.at_ms - qs.first_ms[i] : 0;
        json_t *o = json_object();
        json_object_set_new(o, "channel",
                            json_stringn(name, (size_t)(colon - name)));
        json_object_set_new(o, "priority", json_string(colon + 1));
        json_object_set_new(o, "depth",
                            json_integer(qs.len[i] - qs.pending[i]));
        json_object_set_new(o, "pending", json_integer(qs.pending[i]));
        json_object_set_new(o, "oldest_age_ms",
                            json_integer(oldest > 0 ? oldest : 0));
        json_array_append_new(arr, o);
    }
    json_object_set_new(q->root, "queues", arr);
    json_object_set_new(q->root, "retry", json_integer(qs.retry));
    json_object_set_new(q->root, "dlq", json_integer(qs.dlq));
    {
        /* Broadcasts per category, as kairanctl status --json shows: the
         * counts of every school, by name (a school's own category names
         * are its business): for a caller that sees every tenant only. */
        json_t *cats = json_object();
        const redisReply *h = kn__httpd_tok_scoped(&b->c->req.tok)
                                  ? NULL
                                  : kn__httpd_brep(b, GATHER_N + 2);
        for (size_t i = 0;
             h && h->type == REDIS_REPLY_ARRAY && i + 1 < h->elements; i += 2)
            json_object_set_new(cats, h->element[i]->str,
                                json_integer(atoll(h->element[i + 1]->str)));
        json_object_set_new(q->root, "categories", cats);
    }
    {
        json_t *rate = json_object();
        long long now = kn_now_ms();
        for (size_t i = 0; i < KN_ARRAY_SIZE(rate_buckets); i++) {
            const redisReply *h = kn__httpd_brep(b, GATHER_N + 3 + (int)i);
            json_t *o = json_object();
            const char *tk =
                h && h->type == REDIS_REPLY_ARRAY && h->elements == 2
                    ? kn__httpd_rstr(h->element[0])
                    : NULL;
            const char *su =
                h && h->type == REDIS_REPLY_ARRAY && h->elements == 2
                    ? kn__httpd_rstr(h->element[1])
                    : NULL;
            json_object_set_new(o, "tokens", json_real(tk ? atof(tk) : -1));
            json_object_set_new(o, "slowed",
                                json_boolean(su && atoll(su) > now));
            json_object_set_new(rate, rate_buckets[i], o);
        }
        json_object_set_new(q->root, "rate", rate);
    }

    b2 = kn__httpd_batch_new(s, b->c, on_queues_2, q);
    ids = kn__httpd_brep(b, GATHER_N);
    for (size_t i = 0;
         ids && ids->type == REDIS_REPLY_ARRAY && i < ids->elements; i++) {
        char *k = kn_key_bc(s->d->prefix, ids->element[i]->str, "");
        kn_argv_add(&q->active, ids->element[i]->str);
        kn__httpd_batch_cmd(b2, "HMGET", k, "status", "jobs", "final", "tenant",
                            NULL);
        free(k);
    }
    ids = kn__httpd_brep(b, GATHER_N + 1);
    for (size_t i = 0;
         ids && ids->type == REDIS_REPLY_ARRAY && i < ids->elements; i++) {
        char *k = kn_key_bc(s->d->prefix, ids->element[i]->str, "");
        kn_argv_add(&q->rejected, ids->element[i]->str);
        kn__httpd_batch_cmd(b2, "HMGET", k, "reason", "created_ms", "tenant",
                            NULL);
        free(k);
    }
    kn__httpd_batch_end(b2);
}

/* GET /v1/queues: exactly what kairanctl status --json prints (for a
 * limited_admin, the broadcast lists hold its tenant's only). */
void kn__httpd_run_queues(struct conn *c)
{
    struct kn_daemon *d = c->srv->d;
    struct batch *b = kn__httpd_batch_new(c->srv, c, on_queues_1, NULL);
    char *k;
    kn__httpd_gather_add(b);
    k = kn__key(d, "active");
    kn__httpd_batch_cmd(b, "ZRANGE", k, "0", "49", NULL);
    free(k);
    k = kn__key(d, "rejected");
    kn__httpd_batch_cmd(b, "ZREVRANGE", k, "0", "19", NULL);
    free(k);
    k = kn__key(d, "categories");
    kn__httpd_batch_cmd(b, "HGETALL", k, NULL);
    free(k);
    for (size_t i = 0; i < KN_ARRAY_SIZE(rate_buckets); i++) {
        k = kn__key(d, "rate:%s", rate_buckets[i]);
        kn__httpd_batch_cmd(b, "HMGET", k, "tokens", "slow_until", NULL);
        free(k);
    }
    kn__httpd_batch_end(b);
}

/*
 * GET /v1/queues/history: jobs per channel, one sample per 5 s.  The
 * samples are of every school together and cannot be cut to one: a
 * school's account (a limited_admin, the routing table says; an admin
 * token made with --tenant, a staff session) would watch other schools'
 * sending over time, so it gets 403.  Its own broadcasts and their
 * progress are in /v1/queues and /v1/broadcasts.
 */
void kn__httpd_run_history(struct conn *c)
{
    struct http_srv *s = c->srv;
    json_t *j, *arr, *ch;
    size_t start = (s->hist_head + HISTORY_N - s->hist_n) % HISTORY_N;
    if (kn__httpd_tok_scoped(&c->req.tok)) {
        kn__httpd_respond_error(c, 403, NULL,
                                "the queue history is of every school "
                                "together: for a token that sees every "
                                "school (an operator, an admin without a "
                                "tenant)");
        return;
    }
    j = json_object();
    arr = json_array();
    ch = json_array();
    for (int k = 0; k < KN_CH__COUNT; k++)
        json_array_append_new(ch,
                              json_string(kn_channel_name((enum kn_channel)k)));
    for (size_t i = 0; i < s->hist_n; i++) {
        const struct sample *sm = &s->hist[(start + i) % HISTORY_N];
        json_t *o = json_object();
        json_object_set_new(o, "t", json_integer(sm->t));
        for (int k = 0; k < KN_CH__COUNT; k++)
            json_object_set_new(o, kn_channel_name((enum kn_channel)k),
                                json_integer(sm->jobs[k]));
        json_array_append_new(arr, o);
    }
    json_object_set_new(j, "interval_ms", json_integer(HISTORY_EVERY_MS));
    json_object_set_new(j, "capacity", json_integer(HISTORY_N));
    json_object_set_new(j, "channels", ch);
    json_object_set_new(j, "samples", arr);
    kn__httpd_respond_json(c, 200, j, NULL);
}
