/*
 * metrics.c - GET /metrics (Prometheus text format 0.0.4) and GET
 * /healthz, and the queue gauges they share with /v1/queues: a scrape
 * reads a fixed set of keys (three per queue stream, three more), never
 * one per broadcast or job, and is cached for a second.
 */
#include "dispatcher/http/http_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/kn.h"
#include "queue/keys.h"

/* ------------------------------------------------------------ queue gauges */

void kn__httpd_gather_add(struct batch *b)
{
    struct kn_daemon *d = b->srv->d;
    char *k;
    for (int i = 0; i < KN_QUEUE_STREAMS; i++) {
        k = kn__key(d, "q:%s", kn_queue_stream_name(i));
        kn__httpd_batch_cmd(b, "XLEN", k, NULL);
        kn__httpd_batch_cmd(b, "XPENDING", k, KN_GROUP, NULL);
        kn__httpd_batch_cmd(b, "XRANGE", k, "-", "+", "COUNT", "1", NULL);
        free(k);
    }
    k = kn__key(d, "retry");
    kn__httpd_batch_cmd(b, "ZCARD", k, NULL);
    free(k);
    k = kn__key(d, "dlq");
    kn__httpd_batch_cmd(b, "XLEN", k, NULL);
    free(k);
    k = kn__key(d, "active");
    kn__httpd_batch_cmd(b, "ZCARD", k, NULL);
    free(k);
}

void kn__httpd_gather_parse(const struct batch *b, struct qstats *q)
{
    memset(q, 0, sizeof(*q));
    q->ok = !b->failed;
    q->at_ms = kn_now_ms();
    for (int i = 0; i < KN_QUEUE_STREAMS; i++) {
        const redisReply *len = kn__httpd_brep(b, 3 * i),
                         *pend = kn__httpd_brep(b, 3 * i + 1),
                         *first = kn__httpd_brep(b, 3 * i + 2);
        q->len[i] = kn__httpd_rnum(len);
        if (pend != NULL && pend->type == REDIS_REPLY_ARRAY &&
            pend->elements >= 1)
            q->pending[i] = kn__httpd_rnum(pend->element[0]);
        if (first != NULL && first->type == REDIS_REPLY_ARRAY &&
            first->elements == 1 &&
            first->element[0]->type == REDIS_REPLY_ARRAY &&
            first->element[0]->elements >= 1)
            q->first_ms[i] =
                strtoll(first->element[0]->element[0]->str, NULL, 10);
    }
    q->retry = kn__httpd_rnum(kn__httpd_brep(b, 3 * KN_QUEUE_STREAMS));
    q->dlq = kn__httpd_rnum(kn__httpd_brep(b, 3 * KN_QUEUE_STREAMS + 1));
    q->active = kn__httpd_rnum(kn__httpd_brep(b, 3 * KN_QUEUE_STREAMS + 2));
}

static void metrics_render(struct conn *c);

static void on_gathered(struct batch *b)
{
    struct http_srv *s = b->srv;
    struct conn *w = s->waiters;
    int64_t now = kn_mono_ms();

    s->gathering = 0;
    s->waiters = NULL;
    kn__httpd_gather_parse(b, &s->qs);
    s->qs_mono = now;
    if (s->qs.ok && now >= s->next_sample) {
        struct sample *sm = &s->hist[s->hist_head];
        memset(sm, 0, sizeof(*sm));
        sm->t = s->qs.at_ms;
        for (int i = 0; i < KN_QUEUE_STREAMS; i++)
            sm->jobs[i / 2] += s->qs.len[i];
        s->hist_head = (s->hist_head + 1) % HISTORY_N;
        if (s->hist_n < HISTORY_N)
            s->hist_n++;
        s->next_sample = now + HISTORY_EVERY_MS - 100;
    }
    while (w != NULL) {
        struct conn *next = w->wait_next;
        w->wait_next = NULL;
        if (kn__httpd_conn_release(w))
            metrics_render(w);
        w = next;
    }
}

void kn__httpd_gather_start(struct http_srv *s)
{
    struct batch *b;
    if (s->gathering)
        return;
    s->gathering = 1;
    b = kn__httpd_batch_new(s, NULL, on_gathered, NULL);
    kn__httpd_gather_add(b);
    kn__httpd_batch_end(b);
}

/* ------------------------------------------------------------ breakers */

struct breaker_view {
    const char *route;
    int state; /* 0 closed, 1 half-open, 2 open (as worker.c keeps it) */
};

static const char *breaker_state_name(int st)
{
    return st == 2 ? "open" : st == 1 ? "half-open" : "closed";
}

/*
 * The circuit breakers' states, per route: today one, the e-mail relay
 * ("smtp"), whose state the e-mail worker keeps in d->breaker_state.
 * When more routes get a breaker, this is the only place to change.
 */
static size_t breakers(const struct kn_daemon *d, struct breaker_view *out,
                       size_t max)
{
    if (max < 1)
        return 0;
    out[0].route = "smtp";
    out[0].state = d->breaker_state;
    return 1;
}

/* ------------------------------------------------------------ /metrics */

static void metric_head(struct kn_buf *b, const char *name, const char *type,
                        const char *help)
{
    kn_buf_addf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One counter per rate bucket of every worker: its waits (slowed 0) or its
 * slowdowns (slowed 1). */
static void rate_series(struct kn_buf *b, struct kn_daemon *d, const char *name,
                        const char *help, int slowed)
{
    metric_head(b, name, "counter", help);
    for (int ch = 0; ch < KN_CH__COUNT; ch++) {
        const char *bn;
        uint64_t w, sl;
        for (size_t i = 0;
             d->workers[ch] && kn__worker_rate(d->workers[ch], i, &bn, &w, &sl);
             i++)
            kn_buf_addf(b, "%s{bucket=\"%s\"} %llu\n", name, bn,
                        (unsigned long long)(slowed ? sl : w));
    }
}

static void metrics_render(struct conn *c)
{
    static const double bounds[] = KN_LATENCY_BUCKETS;
    struct http_srv *s = c->srv;
    struct kn_daemon *d = s->d;
    const struct qstats *q = &s->qs;
    const struct kn_metrics *m = &d->metrics;
    struct breaker_view bv[8];
    size_t nb = breakers(d, bv, KN_ARRAY_SIZE(bv));
    int up = kn_redis_up(d->cmd) && q->ok;
    struct kn_buf b = KN_BUF_INIT;

    metric_head(&b, "kairan_up", "gauge",
                "1 when this kairand reaches Redis and read the queues.");
    kn_buf_addf(&b, "kairan_up %d\n", up);
    if (q->ok) {
        static const char *const fam[3][2] = {
            {"kairan_queue_depth",
             "Jobs in the stream not yet read by any worker."},
            {"kairan_queue_pending",
             "Jobs read by a worker and not yet finished."},
            {"kairan_queue_oldest_age_seconds",
             "Age of the oldest job still in the stream."}};
        for (int f = 0; f < 3; f++) {
            metric_head(&b, fam[f][0], "gauge", fam[f][1]);
            for (int i = 0; i < KN_QUEUE_STREAMS; i++) {
                const char *name = kn_queue_stream_name(i);
                const char *colon = strchr(name, ':');
                long long depth = q->len[i] - q->pending[i];
                double age = q->first_ms[i] > 0 && q->at_ms > q->first_ms[i]
                                 ? (double)(q->at_ms - q->first_ms[i]) / 1000.0
                                 : 0.0;
                kn_buf_addf(&b, "%s{channel=\"%.*s\",priority=\"%s\"} ",
                            fam[f][0], (int)(colon - name), name, colon + 1);
                if (f == 0)
                    kn_buf_addf(&b, "%lld\n", depth > 0 ? depth : 0);
                else if (f == 1)
                    kn_buf_addf(&b, "%lld\n", q->pending[i]);
                else
                    kn_buf_addf(&b, "%.3f\n", age);
            }
        }
        metric_head(&b, "kairan_retry_size", "gauge",
                    "Jobs waiting for their next attempt.");
        kn_buf_addf(&b, "kairan_retry_size %lld\n", q->retry);
        metric_head(&b, "kairan_dlq_size", "gauge", "Dead-lettered jobs.");
        kn_buf_addf(&b, "kairan_dlq_size %lld\n", q->dlq);
        metric_head(&b, "kairan_broadcasts_active", "gauge",
                    "Broadcasts not yet ended.");
        kn_buf_addf(&b, "kairan_broadcasts_active %lld\n", q->active);
    }
    metric_head(&b, "kairan_in_flight", "gauge",
                "Sends in progress in this process.");
    kn_buf_addf(&b, "kairan_in_flight %zu\n", kn__in_flight(d));
    metric_head(&b, "kairan_deliveries_total", "counter",
                "Delivery results recorded by this process.");
    for (size_t i = 0; i < m->nproviders; i++) {
        for (int st = 0; st < 3; st++)
            kn_buf_addf(
                &b,
                "kairan_deliveries_total{channel=\"%s\",provider=\"%s\","
                "result=\"%s\"} %llu\n",
                kn_channel_name(m->providers[i].channel),
                m->providers[i].provider, kn_status_name((enum kn_status)st),
                (unsigned long long)m->providers[i].results[st]);
    }
    metric_head(&b, "kairan_delivery_latency_seconds", "histogram",
                "Submit to delivered, per channel.");
    for (int ch = 0; ch < KN_CH__COUNT; ch++) {
        unsigned long long cum = 0;
        for (int k = 0; k <= KN_NLATENCY; k++) {
            cum += m->latency[ch][k];
            if (k < KN_NLATENCY)
                kn_buf_addf(&b,
                            "kairan_delivery_latency_seconds_bucket{channel="
                            "\"%s\",le=\"%g\"} %llu\n",
                            kn_channel_name((enum kn_channel)ch), bounds[k],
                            cum);
            else
                kn_buf_addf(&b,
                            "kairan_delivery_latency_seconds_bucket{channel="
                            "\"%s\",le=\"+Inf\"} %llu\n",
                            kn_channel_name((enum kn_channel)ch), cum);
        }
        kn_buf_addf(&b,
                    "kairan_delivery_latency_seconds_sum{channel=\"%s\"} "
                    "%.6f\n",
                    kn_channel_name((enum kn_channel)ch), m->latency_sum[ch]);
        kn_buf_addf(&b,
                    "kairan_delivery_latency_seconds_count{channel=\"%s\"} "
                    "%llu\n",
                    kn_channel_name((enum kn_channel)ch),
                    (unsigned long long)m->latency_count[ch]);
    }
    metric_head(&b, "kairan_route_paused", "gauge",
                "Route paused: 0 no, 1 credentials refused, 2 quota used up.");
    for (int ch = 0; ch < KN_CH__COUNT; ch++)
        kn_buf_addf(&b, "kairan_route_paused{channel=\"%s\"} %d\n",
                    kn_channel_name((enum kn_channel)ch), d->route_paused[ch]);
    metric_head(&b, "kairan_breaker_state", "gauge",
                "Circuit breaker per route: 0 closed, 1 half-open, 2 open.");
    for (size_t i = 0; i < nb; i++)
        kn_buf_addf(&b, "kairan_breaker_state{route=\"%s\"} %d\n", bv[i].route,
                    bv[i].state);
    rate_series(&b, d, "kairan_rate_limit_waits_total",
                "Sends that waited for a token of a shared rate bucket.", 0);
    rate_series(&b, d, "kairan_rate_limit_slowdowns_total",
                "429s from a provider that halved a bucket for a minute.", 1);
    metric_head(&b, "kairan_redis_reconnects_total", "counter",
                "Redis connections re-established by this process.");
    kn_buf_addf(&b, "kairan_redis_reconnects_total %llu\n",
                (unsigned long long)kn__redis_reconnects(d));
    metric_head(&b, "kairan_token_refreshes_total", "counter",
                "Provider access tokens obtained.");
    kn_buf_addf(&b, "kairan_token_refreshes_total %llu\n",
                (unsigned long long)m->token_refreshes);
    metric_head(&b, "kairan_token_refresh_failures_total", "counter",
                "Provider access tokens that could not be obtained.");
    kn_buf_addf(&b, "kairan_token_refresh_failures_total %llu\n",
                (unsigned long long)m->token_refresh_failures);
    kn__httpd_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8",
                      kn_buf_str(&b), kn_buf_len(&b), NULL, NULL);
    kn_buf_free(&b);
}

void kn__httpd_run_metrics(struct conn *c)
{
    struct http_srv *s = c->srv;
    /* Every school's deliveries, depths and routes together, as the
     * queue history: not for an admin token bound to one school (a
     * monitoring system has an operator token, or http.metrics_open). */
    if (!s->cfg->http_metrics_open && kn__httpd_tok_scoped(&c->req.tok)) {
        kn__httpd_respond_error(c, 403, NULL,
                                "the metrics are of every school together: "
                                "for a token that sees every school (an "
                                "operator, an admin without a tenant)");
        return;
    }
    if (s->qs_mono != 0 && kn_mono_ms() - s->qs_mono < GATHER_FRESH_MS) {
        metrics_render(c);
        return;
    }
    kn__httpd_conn_hold(c);
    c->wait_next = s->waiters;
    s->waiters = c;
    kn__httpd_gather_start(s);
}

/* ------------------------------------------------------------ /healthz */

void kn__httpd_run_health(struct conn *c)
{
    struct kn_daemon *d = c->srv->d;
    struct breaker_view bv[8];
    size_t nb = breakers(d, bv, KN_ARRAY_SIZE(bv));
    int up = kn_redis_up(d->cmd), degraded = !up;
    json_t *j = json_object(), *br = json_object();

    for (size_t i = 0; i < nb; i++) {
        json_object_set_new(br, bv[i].route,
                            json_string(breaker_state_name(bv[i].state)));
        if (bv[i].state != 0)
            degraded = 1;
    }
    json_object_set_new(j, "status",
                        json_string(d->stopping ? "draining"
                                    : degraded  ? "degraded"
                                                : "ok"));
    json_object_set_new(j, "redis", json_boolean(up));
    json_object_set_new(j, "breakers", br);
    kn__httpd_respond_json(c, !up || d->stopping ? 503 : 200, j, NULL);
}
