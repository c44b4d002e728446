/*
 * daemon.h - kairand's insides, shared by daemon.c (start, stop, timers),
 * expand.c (broadcast -> jobs) and worker.c (jobs -> adapters).  Not a
 * public API: names are kn__ (internal, several files).
 *
 * One process = one uv loop.  Redis connections: "cmd" (every short
 * command and script, shared), one blocking connection for the broadcasts
 * stream (expander) and one per channel worker, so that a BLOCKing read
 * never delays a result being recorded.
 */
#ifndef KN_DISPATCHER_DAEMON_H
#define KN_DISPATCHER_DAEMON_H

#include <hiredis/hiredis.h>
#include <stdint.h>
#include <uv.h>

#include "adapters/adapter.h"
#include "model/broadcast.h"
#include "queue/queue.h"
#include "queue/redis_uv.h"

struct kn_config;
struct kn_keyring;
struct kn_expander;
struct kn_daemon;
struct kn_worker;

#define KN_GROUP KN_QUEUE_GROUP

/* A broadcast's message, shared by its jobs, loaded once (HMGET). */
struct kn__msg {
    struct kn_message m;
    /* Its translations: m with another lang, subject and body each (the
     * other pointers are m's: not freed twice). */
    struct kn_message *tr;
    size_t ntr;
    int loaded;    /* 1 when m is filled; 0 while loading */
    int failed;    /* 1: the broadcast hash is gone, 2: Redis did not
                      answer (try later), 3: its hash holds another type */
    int cancelled; /* refreshed by the daemon's tick */
    int refs;
    int64_t used_ms;
    struct kn__msg_wait *waiters;
    struct kn__msg *next;
    const struct kn_keyring *kr; /* opens a sealed body ("sb") */
};

typedef void kn__msg_cb(struct kn__msg *msg, void *arg);

/*
 * Counters for /metrics (rendered by the HTTP module; cheap to keep: a
 * scrape never scans Redis key by key).  Latency is submit (created_ms)
 * to the recorded result, in the buckets of KN_LATENCY_BUCKETS (seconds).
 */
#define KN_LATENCY_BUCKETS                                                     \
    {                                                                          \
        0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900                        \
    }
#define KN_NLATENCY      11
#define KN_MAX_PROVIDERS 16

struct kn_provider_stats {
    const char *provider; /* adapter name: "smtp", "sendgrid", "line" ... */
    enum kn_channel channel;
    uint64_t results[3]; /* by enum kn_status */
};

struct kn_metrics {
    struct kn_provider_stats providers[KN_MAX_PROVIDERS];
    size_t nproviders;
    uint64_t latency[KN_CH__COUNT][KN_NLATENCY + 1]; /* last: +Inf */
    double latency_sum[KN_CH__COUNT];
    uint64_t latency_count[KN_CH__COUNT];
    uint64_t token_refreshes; /* provider access tokens issued */
    uint64_t token_refresh_failures;
    uint64_t expired, cancelled, dead_lettered;
};

/* Count one result (and its latency if delivered; latency_ms < 0: none). */
void kn__metrics_result(struct kn_daemon *d, enum kn_channel ch,
                        const char *provider, enum kn_status st,
                        int64_t latency_ms);

struct kn_daemon {
    uv_loop_t *loop;
    const struct kn_config *cfg;
    struct kn_keyring *kr;
    char *prefix;
    char *consumer;
    struct kn_redis *cmd;
    struct kn_sentinel *sentinel; /* NULL: redis.url's server */
    struct kn_expander *exp;
    struct kn_worker *workers[KN_CH__COUNT];
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t tick;
    int started; /* startup checks passed, readers running */
    /* The one-time fill of the tenants' broadcast indexes (kn_tbcs_fill)
     * on a worker thread before anything starts: 0 not begun, 1 running,
     * 2 done (or failed: tried again at the next start). */
    int tbcs_state;
    uv_work_t tbcs_work;
    long long tbcs_added;
    char tbcs_err[200];
    int stopping; /* SIGTERM seen */
    int exit_code;
    int64_t drain_deadline; /* monotonic ms */
    int64_t next_promote, next_claim, next_cleanup, next_sched, next_status;
    struct kn__msg *msgs;
    /* Results that could not be recorded (Redis down); re-sent on up. */
    struct kn_queue_reliable reliable;
    int closing_handles;
    /* counters for status and metrics */
    uint64_t delivered, tempfailed, permfailed;
    struct kn_metrics metrics;
    /* e-mail relay breaker: 0 closed, 1 half-open, 2 open */
    int breaker_state;
    /* routes paused: by channel, 0 no, 1 credentials, 2 quota */
    int route_paused[KN_CH__COUNT];
    /* what the adapters may ask of the dispatcher (cred.c) */
    struct kn_adapter_host host;
};

/* In-flight sends of all workers (for /metrics and /healthz). */
size_t kn__in_flight(const struct kn_daemon *d);
/* Redis reconnects of all of this process's connections. */
uint64_t kn__redis_reconnects(const struct kn_daemon *d);
/* A channel's worker adapter name ("smtp", "outbox"), or NULL. */
const char *kn__worker_route(const struct kn_worker *w);
size_t kn__worker_sending(const struct kn_worker *w);
int kn__worker_rate(const struct kn_worker *w, size_t i, const char **name,
                    uint64_t *waits, uint64_t *slowed);
void kn__worker_tokens(const struct kn_worker *w, uint64_t *issued,
                       uint64_t *failed);
struct kn_redis *kn__worker_redis(const struct kn_worker *w);
struct kn_redis *kn__expander_redis(const struct kn_expander *e);

/* Key with the configured prefix: heap string. */
char *kn__key(const struct kn_daemon *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Get (loading if needed) the message of a broadcast; cb runs once the
 * message is known (maybe at once).  Release with kn__msg_put. */
void kn__msg_get(struct kn_daemon *d, const char *bcast, kn__msg_cb *cb,
                 void *arg);
void kn__msg_put(struct kn__msg *m);

/* The message in language lang (a key of the broadcast's "translations",
 * from a job's "lg"): its translation, or the main (Japanese) text when
 * lang is NULL or the broadcast has no such translation.  Lives as m. */
const struct kn_message *kn__msg_lang(const struct kn__msg *m,
                                      const char *lang);

/*
 * Run a script on the cmd connection.  If Redis is unreachable the call
 * is kept and re-sent when it is back (results must not be lost), and cb
 * runs then.  cb may get an error reply; it never gets NULL.  A call still
 * unanswered at the exit is dropped: drop (NULL if arg is held elsewhere)
 * frees arg then.
 */
void kn__eval_reliable(struct kn_daemon *d, const struct kn_redis_script *s,
                       kn_redis_cb *cb, void *arg, kn_queue_drop_fn *drop,
                       int nkeys, struct kn_argv *args);

/* Full-jitter exponential backoff for attempt n (1-based). */
int64_t kn__backoff_ms(const struct kn_daemon *d, int attempt);

/* Redis connection options for the configured server. */
struct kn_redis *kn__redis_open(struct kn_daemon *d, const char *name,
                                kn_redis_state_cb *cb, void *arg);

/*
 * A synchronous connection to the configured Redis (AUTH, SELECT done),
 * for work run off the loop in the thread pool (purge, escalation); NULL
 * if unreachable.  Free with redisFree.
 */
redisContext *kn__redis_sync(const struct kn_config *cfg);

/* Create the consumer groups (idempotent); then cb(arg). */
void kn__ensure_groups(struct kn_daemon *d, void (*cb)(void *), void *arg);

/* Park an unreadable entry in the DLQ and let it leave its stream. */
void kn__poison(struct kn_daemon *d, const char *stream, const char *id,
                const char *raw, size_t rawlen, const char *reason);

/* expand.c */
struct kn_expander *kn__expander_new(struct kn_daemon *d);
void kn__expander_start(struct kn_expander *e);
int kn__expander_idle(const struct kn_expander *e);
void kn__expander_close(struct kn_expander *e);
/* Process broadcasts entries claimed from a stopped process. */
void kn__expander_claimed(struct kn_expander *e, const redisReply *entries);

/* worker.c */
struct kn_worker *kn__worker_new(struct kn_daemon *d, enum kn_channel ch,
                                 const char *adapter);
void kn__worker_start(struct kn_worker *w);
size_t kn__worker_busy(const struct kn_worker *w);
void kn__worker_kick(struct kn_worker *w);
void kn__worker_close(struct kn_worker *w);
/* Handle entries claimed from a stopped consumer (count an attempt). */
void kn__worker_claimed(struct kn_worker *w, const char *stream,
                        const redisReply *entries);

/* cred.c: fill d->host (credentials shared through Redis, sealed). */
void kn__cred_host_init(struct kn_daemon *d);

/* daemon.c */
int kn_daemon_run(const struct kn_config *cfg);

#endif
