/*
 * daemon.c - kairand's life: start-up checks, the Redis connections, the
 * timers that move retries and reclaim jobs of stopped processes, signals
 * and the graceful drain.
 *
 * Start: load the key file (refused if group/other can read it), connect,
 * refuse a Redis whose maxmemory-policy is not noeviction (an evicting
 * queue loses jobs), create the consumer groups, then start the expander
 * and one worker per routed channel.
 *
 * Stop (SIGTERM/SIGINT): stop reading, let in-flight sends finish and their
 * results be recorded for up to dispatcher.drain_ms, then close and exit 0.
 * Whatever was not finished stays pending in Redis for the other
 * processes (XAUTOCLAIM after queue.claim_idle_ms).
 */
#include "daemon.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/argv.h"
#include "common/kn.h"
#include "common/log.h"
#include "common/seal.h"
#include "config/config.h"
#include "dispatcher/module.h"
#include "dispatcher/notify.h"
#include "model/broadcast.h"
#include "queue/poison.h"
#include "queue/retention.h"
#include "queue/queue.h"
#include "queue/scripts.h"
#include "queue/sentinel.h"
#include "queue/keys.h"
#include "queue/lua.h"

char *kn__key(const struct kn_daemon *d, const char *fmt, ...)
{
    va_list ap;
    char *tail, *k;
    va_start(ap, fmt);
    if (vasprintf(&tail, fmt, ap) < 0)
        KN_PANIC("out of memory");
    va_end(ap);
    k = kn_xasprintf("%s%s", d->prefix, tail);
    free(tail);
    return k;
}

void kn__metrics_result(struct kn_daemon *d, enum kn_channel ch,
                        const char *provider, enum kn_status st,
                        int64_t latency_ms)
{
    static const double bounds[] = KN_LATENCY_BUCKETS;
    struct kn_metrics *m = &d->metrics;
    struct kn_provider_stats *p = NULL;
    for (size_t i = 0; i < m->nproviders; i++) {
        if (m->providers[i].channel == ch &&
            strcmp(m->providers[i].provider, provider) == 0)
            p = &m->providers[i];
    }
    if (p == NULL && m->nproviders < KN_MAX_PROVIDERS) {
        p = &m->providers[m->nproviders++];
        p->provider = provider;
        p->channel = ch;
    }
    if (p != NULL)
        p->results[st]++;
    if (latency_ms >= 0 && st == KN_DELIVERED) {
        double sec = latency_ms / 1000.0;
        size_t b = 0;
        while (b < KN_NLATENCY && sec > bounds[b])
            b++;
        m->latency[ch][b]++;
        m->latency_sum[ch] += sec;
        m->latency_count[ch]++;
    }
}

size_t kn__in_flight(const struct kn_daemon *d)
{
    size_t n = 0;
    for (int c = 0; c < KN_CH__COUNT; c++) {
        if (d->workers[c])
            n += kn__worker_sending(d->workers[c]);
    }
    return n;
}

uint64_t kn__redis_reconnects(const struct kn_daemon *d)
{
    uint64_t n = kn_redis_reconnects(d->cmd);
    if (d->exp)
        n += kn_redis_reconnects(kn__expander_redis(d->exp));
    for (int c = 0; c < KN_CH__COUNT; c++) {
        if (d->workers[c])
            n += kn_redis_reconnects(kn__worker_redis(d->workers[c]));
    }
    return n;
}

int64_t kn__backoff_ms(const struct kn_daemon *d, int attempt)
{
    int64_t base = d->cfg->retry_base_ms, cap = d->cfg->retry_cap_ms, ceil;
    int shift = attempt - 1 < 30 ? attempt - 1 : 30;
    ceil = base << (shift > 0 ? shift : 0);
    if (ceil > cap || ceil <= 0)
        ceil = cap;
    /* Full jitter: uniform in [0, ceil], so that retries of a relay outage
     * do not arrive all at once when it comes back. */
    return (int64_t)kn_random_below((uint64_t)ceil + 1);
}

/* ---- reliable script calls ---- */

void kn__eval_reliable(struct kn_daemon *d, const struct kn_redis_script *s,
                       kn_redis_cb *cb, void *arg, kn_queue_drop_fn *drop,
                       int nkeys, struct kn_argv *args)
{
    kn_queue_eval_reliable(&d->reliable, s, cb, arg, drop, nkeys, args);
}

static void flush_unrecorded(struct kn_daemon *d)
{
    if (d->reliable.kept != NULL)
        kn_log(KN_LOG_INFO, "daemon",
               "recording results kept while Redis "
               "was unreachable",
               NULL);
    kn_queue_reliable_flush(&d->reliable);
}

/* ---- message cache ---- */

struct kn__msg_wait {
    kn__msg_cb *cb;
    void *arg;
    struct kn__msg_wait *next;
};

static void msg_free(struct kn__msg *m)
{
    free(m->m.bcast);
    free(m->m.tenant);
    free(m->m.category);
    free(m->m.subject);
    free(m->m.body);
    for (size_t i = 0; i < m->ntr; i++) {
        free((char *)m->tr[i].lang);
        free(m->tr[i].subject);
        free(m->tr[i].body);
    }
    free(m->tr);
    free(m);
}

/* The broadcast's translations (the stored JSON, model/broadcast.h) as
 * copies of m->m with their own language, subject and body. */
static void msg_translations(struct kn__msg *m, const redisReply *v)
{
    struct kn_translation *tr;
    if (v == NULL || v->type != REDIS_REPLY_STRING)
        return;
    m->ntr = kn_translations_load(v->str, &tr);
    if (m->ntr == 0)
        return;
    m->tr = kn_xcalloc(m->ntr, sizeof(*m->tr));
    for (size_t i = 0; i < m->ntr; i++) {
        m->tr[i] = m->m;
        m->tr[i].lang = kn_xstrdup(tr[i].lang);
        m->tr[i].subject = tr[i].subject;
        m->tr[i].body = tr[i].body;
        tr[i].subject = tr[i].body = NULL;
    }
    kn_translations_free(tr, m->ntr);
}

const struct kn_message *kn__msg_lang(const struct kn__msg *m, const char *lang)
{
    for (size_t i = 0; lang != NULL && i < m->ntr; i++) {
        if (strcmp(m->tr[i].lang, lang) == 0)
            return &m->tr[i];
    }
    return &m->m;
}

static char *rstr(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_STRING ? kn_xstrndup(r->str, r->len)
                                              : NULL;
}

static void on_msg_loaded(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct kn__msg *m = arg;
    struct kn__msg_wait *w = m->waiters;
    if (rep == NULL ||
        kn_poison_transient(rep->type == REDIS_REPLY_ERROR ? rep->str : "")) {
        m->failed = 2;
    } else if (rep->type == REDIS_REPLY_ERROR) {
        m->failed = 3;
    } else if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 12 ||
               rep->element[0]->type != REDIS_REPLY_STRING ||
               rep->element[1]->type != REDIS_REPLY_STRING) {
        m->failed = 1;
    } else {
        m->m.subject = rstr(rep->element[0]);
        m->m.body = rstr(rep->element[1]);
        if (rep->element[11]->type == REDIS_REPLY_STRING &&
            strcmp(rep->element[11]->str, "1") == 0) {
            /* a sealed body (a guardian's one-time link or code) */
            char *plain = NULL;
            if (kn_unseal(m->kr, "body", m->m.body, &plain, NULL) == 0) {
                kn_free_secret(m->m.body);
                m->m.body = plain;
            } else {
                m->failed = 1; /* no key opens it: nothing to send */
            }
        }
        m->m.urgent = rep->element[2]->type == REDIS_REPLY_STRING &&
                      strcmp(rep->element[2]->str, "urgent") == 0;
        m->m.drill = rep->element[3]->type == REDIS_REPLY_STRING &&
                     strcmp(rep->element[3]->str, "1") == 0;
        m->m.tenant = rstr(rep->element[4]);
        m->m.category = rstr(rep->element[5]);
        m->m.created_ms = rep->element[6]->type == REDIS_REPLY_STRING
                              ? strtoll(rep->element[6]->str, NULL, 10)
                              : 0;
        m->m.expires_ms = rep->element[7]->type == REDIS_REPLY_STRING
                              ? strtoll(rep->element[7]->str, NULL, 10)
                              : 0;
        m->m.ack = rep->element[8]->type == REDIS_REPLY_STRING &&
                   strcmp(rep->element[8]->str, "1") == 0;
        /* The expander's decision (resolve.lua); absent (expanded before
         * it was made): no unsubscribe link, the safe side. */
        m->m.emergency = !(rep->element[9]->type == REDIS_REPLY_STRING &&
                           strcmp(rep->element[9]->str, "0") == 0);
        msg_translations(m, rep->element[10]);
    }
    m->loaded = 1;
    m->waiters = NULL;
    while (w != NULL) {
        struct kn__msg_wait *next = w->next;
        w->cb(m, w->arg);
        free(w);
        w = next;
    }
}

void kn__msg_get(struct kn_daemon *d, const char *bcast, kn__msg_cb *cb,
                 void *arg)
{
    struct kn__msg *m;
    struct kn__msg_wait *w;
    char *key;
    for (m = d->msgs; m != NULL; m = m->next) {
        if (strcmp(m->m.bcast, bcast) == 0 && !(m->loaded && m->failed))
            break;
    }
    if (m == NULL) {
        m = kn_xcalloc(1, sizeof(*m));
        m->m.bcast = kn_xstrdup(bcast);
        m->kr = d->kr;
        m->next = d->msgs;
        d->msgs = m;
        key = kn_key_bc(d->prefix, bcast, "");
        if (kn_redis_cmd(d->cmd, on_msg_loaded, m,
                         "HMGET %s subject body priority drill tenant "
                         "category created_ms expires_ms ack emg "
                         "translations sb",
                         key) < 0) {
            m->loaded = 1;
            m->failed = 2;
        }
        free(key);
    }
    m->refs++;
    m->used_ms = kn_mono_ms();
    if (m->loaded) {
        cb(m, arg);
        return;
    }
    w = kn_xcalloc(1, sizeof(*w));
    w->cb = cb;
    w->arg = arg;
    w->next = m->waiters;
    m->waiters = w;
}

void kn__msg_put(struct kn__msg *m)
{
    m->refs--;
}

static void on_status(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct kn__msg *m = arg;
    if (rep != NULL && rep->type == REDIS_REPLY_STRING &&
        strcmp(rep->str, "cancelled") == 0)
        m->cancelled = 1;
    m->refs--;
}

/* Refresh the status of the broadcasts in use (a cancel shows within). */
static void msg_refresh(struct kn_daemon *d)
{
    for (struct kn__msg *m = d->msgs; m != NULL; m = m->next) {
        char *key;
        if (!m->loaded || m->failed || m->cancelled || m->refs == 0)
            continue;
        key = kn_key_bc(d->prefix, m->m.bcast, "");
        m->refs++; /* held until the reply */
        if (kn_redis_cmd(d->cmd, on_status, m, "HGET %s status", key) < 0)
            m->refs--;
        free(key);
    }
}

/* Forget messages nobody used for a minute (and failed loads at once). */
static void msg_evict(struct kn_daemon *d, int all)
{
    struct kn__msg **pp = &d->msgs;
    int64_t now = kn_mono_ms();
    while (*pp != NULL) {
        struct kn__msg *m = *pp;
        if (m->refs <= 0 && m->loaded &&
            (all || m->failed || now - m->used_ms > 60000)) {
            *pp = m->next;
            msg_free(m);
        } else {
            pp = &m->next;
        }
    }
}

/* ---- redis ---- */

/* The sentinels, for kn__redis_sync's callers in the thread pool (the
 * discovery is thread-safe). */
static struct kn_sentinel *sync_sentinel;

struct kn_redis *kn__redis_open(struct kn_daemon *d, const char *name,
                                kn_redis_state_cb *cb, void *arg)
{
    struct kn_redis_opts o;
    char *host = NULL, *password = NULL;
    int port = 6379, db = 0;
    struct kn_redis *r;
    if (kn_redis_url_parse(d->cfg->redis_url, &host, &port, &db, &password) < 0)
        kn_fatal("redis.url: cannot parse (want redis://[[user]:password@]"
                 "host:port/db)");
    memset(&o, 0, sizeof(o));
    o.host = host;
    o.port = port;
    o.db = db;
    o.user = d->cfg->redis_user;
    o.password = d->cfg->redis_password ? d->cfg->redis_password : password;
    o.timeout_ms = d->cfg->redis_timeout_ms;
    o.name = name;
    o.sentinel = d->sentinel;
    r = kn_redis_new(d->loop, &o, cb, arg);
    free(host);
    if (password) {
        memset(password, 0, strlen(password));
        free(password);
    }
    return r;
}

redisContext *kn__redis_sync(const struct kn_config *cfg)
{
    char why[400];
    redisContext *c =
        kn_redis_connect_sync(cfg, sync_sentinel, 10000, why, sizeof(why));
    if (c == NULL)
        kn_log(KN_LOG_WARN, "redis", "cannot connect", "conn", "sync", "error",
               why, NULL);
    return c;
}

void kn__ensure_groups(struct kn_daemon *d, void (*cb)(void *), void *arg)
{
    kn_queue_ensure_groups(d->cmd, d->prefix, cb, arg);
}

void kn__poison(struct kn_daemon *d, const char *stream, const char *id,
                const char *raw, size_t rawlen, const char *reason)
{
    kn_queue_dead_letter(d->cmd, d->prefix, stream, id, raw, rawlen, reason);
}

/* ---- start-up ---- */

static void start_readers(void *arg);

/* The tenants' indexes of broadcasts (tbcs:<tenant>) filled from bcs for
 * the broadcasts stored before 0.5.0, once (queue/retention.c): on a
 * worker thread, the loop (and the systemd watchdog) going on, and before
 * anything else starts, so that nothing is read from a half-filled index
 * and no key appears after "ready". */
static void tbcs_work(uv_work_t *w)
{
    struct kn_daemon *d = kn_container_of(w, struct kn_daemon, tbcs_work);
    redisContext *c = kn__redis_sync(d->cfg);
    if (c == NULL) {
        d->tbcs_added = -1;
        snprintf(d->tbcs_err, sizeof(d->tbcs_err), "cannot reach Redis");
        return;
    }
    d->tbcs_added =
        kn_tbcs_fill(c, d->prefix, d->tbcs_err, sizeof(d->tbcs_err));
    redisFree(c);
}

static void tbcs_done(uv_work_t *w, int status)
{
    struct kn_daemon *d = kn_container_of(w, struct kn_daemon, tbcs_work);
    char n[24];
    d->tbcs_state = 2;
    if (d->tbcs_added < 0) {
        kn_log(KN_LOG_ERROR, "daemon",
               "the tenants' broadcast indexes could not be filled (tried "
               "again at the next start)",
               "error", d->tbcs_err, NULL);
    } else if (d->tbcs_added > 0) {
        snprintf(n, sizeof(n), "%lld", d->tbcs_added);
        kn_log(KN_LOG_INFO, "daemon", "tenants' broadcast indexes filled",
               "broadcasts", n, NULL);
    }
    if (!d->stopping)
        start_readers(d);
}

static void start_readers(void *arg)
{
    struct kn_daemon *d = arg;
    if (!d->started && d->tbcs_state != 2) {
        if (d->tbcs_state == 0) {
            d->tbcs_state = 1;
            if (uv_queue_work(d->loop, &d->tbcs_work, tbcs_work, tbcs_done) !=
                0)
                d->tbcs_state = 2, start_readers(d);
        }
        return; /* goes on in tbcs_done */
    }
    if (d->started) {
        /* After a reconnect: groups re-made (Redis may have lost them),
         * results kept meanwhile re-sent, readers nudged. */
        flush_unrecorded(d);
        for (int c = 0; c < KN_CH__COUNT; c++) {
            if (d->workers[c])
                kn__worker_kick(d->workers[c]);
        }
        return;
    }
    d->started = 1;
    kn_log(KN_LOG_INFO, "daemon", "ready", "consumer", d->consumer, NULL);
    kn__expander_start(d->exp);
    for (int c = 0; c < KN_CH__COUNT; c++) {
        if (d->workers[c])
            kn__worker_start(d->workers[c]);
    }
    for (struct kn_module *const *mp = kn__modules(); *mp != NULL; mp++) {
        struct kn_module *m = *mp;
        if (m->open(d, &m->_state) < 0) {
            kn_log(KN_LOG_ERROR, "daemon", "a module failed to start", "module",
                   m->name, NULL);
            d->exit_code = 1;
            d->stopping = 1;
            d->drain_deadline = kn_mono_ms();
            return;
        }
        m->_state = m->_state ? m->_state : (void *)m;
    }
    /* systemd (Type=notify): Redis is reachable, the adapters are open. */
    kn__notify_ready();
}

static void on_policy(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct kn_daemon *d = arg;
    if (rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
        rep->element[1]->type == REDIS_REPLY_STRING) {
        if (strcmp(rep->element[1]->str, "noeviction") != 0) {
            kn_log(KN_LOG_ERROR, "daemon",
                   "refusing to run: Redis may evict keys and so lose jobs",
                   "maxmemory_policy", rep->element[1]->str, "fix",
                   "set maxmemory-policy noeviction in redis.conf (or "
                   "CONFIG SET maxmemory-policy noeviction)",
                   NULL);
            d->exit_code = 1;
            d->stopping = 1;
            d->drain_deadline = kn_mono_ms();
            return;
        }
    } else {
        kn_log(KN_LOG_WARN, "daemon",
               "cannot read maxmemory-policy (CONFIG GET refused?); make "
               "sure it is noeviction",
               "error", rep && rep->type == REDIS_REPLY_ERROR ? rep->str : "",
               NULL);
    }
    kn__ensure_groups(d, start_readers, d);
}

static void on_cmd_state(struct kn_redis *r, int up, void *arg)
{
    struct kn_daemon *d = arg;
    kn__notify_status(up ? "Redis reachable"
                         : "Redis unreachable; reconnecting");
    if (!up || d->stopping)
        return;
    if (!d->started)
        kn_redis_cmd(r, on_policy, d, "CONFIG GET maxmemory-policy");
    else
        kn__ensure_groups(d, start_readers, d);
}

/* ---- timers ---- */

static void on_promoted(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct kn_daemon *d = arg;
    if (rep != NULL && rep->type == REDIS_REPLY_INTEGER && rep->integer > 0) {
        for (int c = 0; c < KN_CH__COUNT; c++) {
            if (d->workers[c])
                kn__worker_kick(d->workers[c]);
        }
        if (rep->integer >= 500)
            d->next_promote = 0; /* more due: again at the next tick */
    }
}

static void on_sched(struct kn_redis *r, redisReply *rep, void *arg)
{
}

struct claim_ctx {
    struct kn_daemon *d;
    int ch; /* -1 for the broadcasts stream */
    char *stream;
};

static void on_claimed(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct claim_ctx *c = arg;
    if (rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements >= 2 &&
        rep->element[1]->type == REDIS_REPLY_ARRAY &&
        rep->element[1]->elements > 0 && !c->d->stopping) {
        kn_log(KN_LOG_INFO, "daemon", "reclaimed jobs of a stopped process",
               "stream", c->stream, NULL);
        if (c->ch < 0)
            kn__expander_claimed(c->d->exp, rep->element[1]);
        else if (c->d->workers[c->ch])
            kn__worker_claimed(c->d->workers[c->ch], c->stream,
                               rep->element[1]);
    } else if (kn_reply_is_error(rep, "NOGROUP")) {
        kn__ensure_groups(c->d, start_readers, c->d);
    }
    free(c->stream);
    free(c);
}

static void claim_stream(struct kn_daemon *d, int ch, char *stream)
{
    struct claim_ctx *c = kn_xcalloc(1, sizeof(*c));
    c->d = d;
    c->ch = ch;
    c->stream = stream;
    if (kn_queue_claim(d->cmd, stream, d->consumer, d->cfg->claim_idle_ms,
                       on_claimed, c) < 0) {
        free(c->stream);
        free(c);
    }
}

static void claim_all(struct kn_daemon *d)
{
    claim_stream(d, -1, kn__key(d, "broadcasts"));
    for (int i = 0; i < KN_QUEUE_STREAMS; i++) {
        int ch = i / 2;
        if (d->workers[ch])
            claim_stream(d, ch, kn__key(d, "q:%s", kn_queue_stream_name(i)));
    }
}

/*
 * Remove consumers (of any process) idle for a day whose pending list is
 * empty: every restart makes a new consumer name, and the list would grow
 * without end.
 */
static void cleanup_consumers(struct kn_daemon *d)
{
    kn_queue_consumers_cleanup(d->cmd, d->prefix);
}

static void shutdown_now(struct kn_daemon *d);

static size_t busy_total(struct kn_daemon *d)
{
    size_t n = 0;
    for (int c = 0; c < KN_CH__COUNT; c++) {
        if (d->workers[c])
            n += kn__worker_busy(d->workers[c]);
    }
    return n;
}

static void on_tick(uv_timer_t *t)
{
    struct kn_daemon *d = kn_container_of(t, struct kn_daemon, tick);
    int64_t now = kn_mono_ms();

    if (d->stopping) {
        size_t busy = busy_total(d);
        if ((busy == 0 && d->reliable.nkept == 0 &&
             kn__expander_idle(d->exp)) ||
            now >= d->drain_deadline) {
            if (busy > 0 || d->reliable.nkept > 0)
                kn_log(KN_LOG_WARN, "daemon",
                       "drain time is over; unfinished jobs stay pending "
                       "for the other processes",
                       NULL);
            shutdown_now(d);
        }
        return;
    }
    msg_evict(d, 0);
    if (!d->started || !kn_redis_up(d->cmd))
        return;
    if (now >= d->next_status) {
        uint64_t issued = 0, failed = 0;
        msg_refresh(d);
        d->next_status = now + 500;
        for (int c = 0; c < KN_CH__COUNT; c++) {
            if (d->workers[c])
                kn__worker_tokens(d->workers[c], &issued, &failed);
        }
        d->metrics.token_refreshes = issued;
        d->metrics.token_refresh_failures = failed;
    }
    if (now >= d->next_promote) {
        struct kn_argv a;
        char *retry = kn__key(d, "retry");
        kn_argv_init(&a);
        kn_argv_take(&a, retry);
        kn_argv_take(&a, kn__key(d, "dlq"));
        kn_argv_addi(&a, kn_now_ms());
        kn_argv_add(&a, d->prefix);
        kn_argv_add(&a, "500");
        kn_redis_eval(d->cmd, &kn_script_promote, on_promoted, d, 2, a.n,
                      (const char **)a.v, a.len);
        kn_argv_free(&a);
        d->next_promote = now + 200;
    }
    if (now >= d->next_sched) {
        /* Scheduled broadcasts (send_at) that are due go back to the
         * broadcasts stream. */
        char *sched = kn__key(d, "sched"), *bs = kn__key(d, "broadcasts");
        char nowms[24];
        snprintf(nowms, sizeof(nowms), "%lld", (long long)kn_now_ms());
        kn_redis_cmd(d->cmd, on_sched, NULL, "EVAL %s 2 %s %s %s",
                     kn_lua_sched_due, sched, bs, nowms);
        free(sched);
        free(bs);
        d->next_sched = now + 1000;
    }
    if (now >= d->next_claim) {
        int64_t every = d->cfg->claim_idle_ms / 4;
        claim_all(d);
        d->next_claim = now + (every < 1000 ? 1000 : every);
    }
    if (now >= d->next_cleanup) {
        cleanup_consumers(d);
        d->next_cleanup = now + 3600 * 1000;
    }
}

/* ---- signals and shutdown ---- */

static void begin_drain(struct kn_daemon *d, const char *why)
{
    if (d->stopping)
        return;
    d->stopping = 1;
    kn__notify_stopping();
    d->drain_deadline = kn_mono_ms() + d->cfg->drain_ms;
    kn_log(KN_LOG_INFO, "daemon", "draining: no new jobs, finishing sends",
           "signal", why, NULL);
    uv_timer_start(&d->tick, on_tick, 20, 20);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct kn_daemon *d = s->data;
    if (signum == SIGHUP) {
        kn_log_open(d->cfg->log_file);
        kn_log(KN_LOG_INFO, "daemon", "SIGHUP: log file reopened", NULL);
        return;
    }
    begin_drain(d, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void on_closed(uv_handle_t *h)
{
}

static void shutdown_now(struct kn_daemon *d)
{
    uv_timer_stop(&d->tick);
    uv_close((uv_handle_t *)&d->tick, on_closed);
    kn__notify_watchdog_stop();
    uv_close((uv_handle_t *)&d->sig_term, on_closed);
    uv_close((uv_handle_t *)&d->sig_int, on_closed);
    uv_close((uv_handle_t *)&d->sig_hup, on_closed);
    for (struct kn_module *const *mp = kn__modules(); *mp != NULL; mp++) {
        struct kn_module *m = *mp;
        if (m->_state != NULL) {
            m->close(d, m->_state == (void *)m ? NULL : m->_state);
            m->_state = NULL;
        }
    }
    kn__expander_close(d->exp);
    for (int c = 0; c < KN_CH__COUNT; c++) {
        if (d->workers[c])
            kn__worker_close(d->workers[c]);
    }
    kn_redis_close(d->cmd);
    kn_sentinel_unwatch(d->sentinel);
    /* Calls that could not be recorded stay as pending entries in Redis
     * and are reclaimed by another process. */
    kn_queue_reliable_drop(&d->reliable);
}

int kn_daemon_run(const struct kn_config *cfg)
{
    struct kn_daemon d;
    char err[512], host[256];
    int rc;

    memset(&d, 0, sizeof(d));
    d.cfg = cfg;
    d.loop = uv_default_loop();
    d.prefix = kn_xstrdup(cfg->redis_prefix);
    if (cfg->consumer != NULL) {
        d.consumer = kn_xstrdup(cfg->consumer);
    } else {
        if (gethostname(host, sizeof(host)) != 0)
            snprintf(host, sizeof(host), "localhost");
        host[sizeof(host) - 1] = '\0';
        d.consumer = kn_xasprintf("%s:%d:%lld", host, (int)getpid(),
                                  (long long)kn_now_ms());
    }
    rc = kn_keyring_load(cfg->key_file, &d.kr, err, sizeof(err));
    if (rc < 0) {
        kn_log(KN_LOG_ERROR, "daemon", "cannot load the key file", "error", err,
               NULL);
        free(d.prefix);
        free(d.consumer);
        return 1;
    }
    kn_scripts_init();
    d.sentinel = kn_sentinel_new(cfg);
    sync_sentinel = d.sentinel;
    if (d.sentinel != NULL)
        kn_sentinel_watch(d.sentinel, d.loop);
    d.cmd = kn__redis_open(&d, "cmd", on_cmd_state, &d);
    d.reliable.r = d.cmd;
    kn__cred_host_init(&d);
    d.exp = kn__expander_new(&d);
    /* A peer that closed a socket we write to (the SMTP relay, an HTTP
     * client) is an EPIPE error for that connection, never the end of the
     * process: libuv writes with write(2), which raises SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    for (int c = 0; c < KN_CH__COUNT; c++) {
        const char *route = c == KN_CH_EMAIL  ? cfg->route_email
                            : c == KN_CH_LINE ? cfg->route_line
                                              : cfg->route_push;
        d.workers[c] = kn__worker_new(&d, (enum kn_channel)c, route);
    }
    uv_timer_init(d.loop, &d.tick);
    uv_signal_init(d.loop, &d.sig_term);
    uv_signal_init(d.loop, &d.sig_int);
    uv_signal_init(d.loop, &d.sig_hup);
    d.sig_term.data = d.sig_int.data = d.sig_hup.data = &d;
    uv_signal_start(&d.sig_term, on_signal, SIGTERM);
    uv_signal_start(&d.sig_int, on_signal, SIGINT);
    uv_signal_start(&d.sig_hup, on_signal, SIGHUP);
    uv_timer_start(&d.tick, on_tick, 50, 50);
    kn__notify_watchdog_start(d.loop);
    kn_log(KN_LOG_INFO, "daemon", "starting", "redis", "connecting", "consumer",
           d.consumer, NULL);
    kn_redis_start(d.cmd);

    uv_run(d.loop, UV_RUN_DEFAULT);
    /* A call made while the handles closed (after shutdown_now dropped
     * the others) has no Redis left to answer it. */
    kn_queue_reliable_drop(&d.reliable);

    msg_evict(&d, 1);
    rc = uv_loop_close(d.loop);
    if (rc != 0)
        kn_log(KN_LOG_WARN, "daemon", "loop closed with open handles", NULL);
    kn_keyring_free(d.kr);
    sync_sentinel = NULL;
    kn_sentinel_free(d.sentinel);
    kn_log(KN_LOG_INFO, "daemon", "stopped", NULL);
    free(d.prefix);
    free(d.consumer);
    return d.exit_code;
}
