/*
 * queue.c - the queue's stream operations over redis_uv (queue.h): groups,
 * reads, claims, ack + delete, the dead-letter queue, idle consumers, and
 * script calls kept while Redis is unreachable.
 */
#include "queue/queue.h"

#include <jansson.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kn.h"
#include "common/log.h"
#include "queue/scripts.h"

/* Stream i of the group: the job streams, then (i == KN_QUEUE_STREAMS)
 * the broadcasts stream.  Heap string. */
static char *stream_key(const char *prefix, int i)
{
    return i < KN_QUEUE_STREAMS
               ? kn_xasprintf("%sq:%s", prefix, kn_queue_stream_name(i))
               : kn_xasprintf("%sbroadcasts", prefix);
}

/* ---- consumer groups ---- */

struct groups_ctx {
    void (*cb)(void *);
    void *arg;
    int left;
    int failed;
};

static void on_group(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct groups_ctx *g = arg;
    if (kn_reply_is_error(rep, "WRONGTYPE")) {
        /* One stream key holds another type: its readers say so and
         * skip it; the other streams must not wait for it. */
        kn_log(KN_LOG_ERROR, "daemon",
               "a stream key holds the wrong type: its jobs wait; delete "
               "the stray key",
               "error", rep->str, NULL);
    } else if (rep == NULL || (rep->type == REDIS_REPLY_ERROR &&
                               !kn_reply_is_error(rep, "BUSYGROUP"))) {
        g->failed = 1;
        kn_log(KN_LOG_ERROR, "daemon", "cannot create consumer group", "error",
               rep ? rep->str : "no reply", NULL);
    }
    if (--g->left == 0) {
        if (!g->failed)
            g->cb(g->arg);
        free(g);
    }
}

void kn_queue_ensure_groups(struct kn_redis *r, const char *prefix,
                            void (*cb)(void *), void *arg)
{
    struct groups_ctx *g = kn_xcalloc(1, sizeof(*g));
    g->cb = cb;
    g->arg = arg;
    g->left = KN_QUEUE_STREAMS + 1;
    for (int i = 0; i <= KN_QUEUE_STREAMS; i++) {
        char *key = stream_key(prefix, i);
        /* Start at 0, not $: entries added before the group existed
         * (kairanctl submit before the first kairand) must be read. */
        if (kn_redis_cmd(r, on_group, g,
                         "XGROUP CREATE %s " KN_QUEUE_GROUP " 0 MKSTREAM",
                         key) < 0)
            on_group(r, NULL, g);
        free(key);
    }
}

/* ---- reading and claiming ---- */

int kn_queue_read(struct kn_redis *r, const char *consumer, const char *count,
                  int64_t block_ms, int nstreams, const char *const *streams,
                  kn_redis_cb *cb, void *arg)
{
    const char *argv[9 + 2 * 8];
    char block[24];
    int n = 0;
    if (nstreams < 1 || nstreams > 8)
        return KN_EINVAL;
    argv[n++] = "XREADGROUP";
    argv[n++] = "GROUP";
    argv[n++] = KN_QUEUE_GROUP;
    argv[n++] = consumer;
    argv[n++] = "COUNT";
    argv[n++] = count;
    if (block_ms >= 0) {
        snprintf(block, sizeof(block), "%lld", (long long)block_ms);
        argv[n++] = "BLOCK";
        argv[n++] = block;
    }
    argv[n++] = "STREAMS";
    for (int i = 0; i < nstreams; i++)
        argv[n++] = streams[i];
    for (int i = 0; i < nstreams; i++)
        argv[n++] = ">";
    return kn_redis_argv(r, cb, arg, block_ms > 0 ? block_ms : 0, n, argv,
                         NULL);
}

int kn_queue_claim(struct kn_redis *r, const char *stream, const char *consumer,
                   int64_t idle_ms, kn_redis_cb *cb, void *arg)
{
    char idle[24];
    snprintf(idle, sizeof(idle), "%lld", (long long)idle_ms);
    return kn_redis_cmd(r, cb, arg,
                        "XAUTOCLAIM %s " KN_QUEUE_GROUP " %s %s 0-0 COUNT 50",
                        stream, consumer, idle);
}

static void on_kept(struct kn_redis *r, redisReply *rep, void *arg)
{
}

void kn_queue_keep(struct kn_redis *r, const char *stream, const char *consumer,
                   const char *id)
{
    kn_redis_cmd(r, on_kept, NULL,
                 "XCLAIM %s " KN_QUEUE_GROUP " %s 0 %s JUSTID", stream,
                 consumer, id);
}

const redisReply *kn_queue_entry_field(const redisReply *entry, const char *f)
{
    const redisReply *kv;
    if (entry == NULL || entry->type != REDIS_REPLY_ARRAY ||
        entry->elements < 2)
        return NULL;
    kv = entry->element[1];
    if (kv == NULL || kv->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < kv->elements; i += 2) {
        if (kv->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(kv->element[i]->str, f) == 0)
            return kv->element[i + 1];
    }
    return NULL;
}

/* ---- an entry leaves ---- */

int kn_queue_ack_del(struct kn_redis *r, const char *stream, const char *id,
                     const char *also_del, kn_redis_cb *cb, void *arg)
{
    kn_redis_cmd(r, NULL, NULL, "MULTI");
    kn_redis_cmd(r, NULL, NULL, "XACK %s " KN_QUEUE_GROUP " %s", stream, id);
    kn_redis_cmd(r, NULL, NULL, "XDEL %s %s", stream, id);
    if (also_del != NULL)
        kn_redis_cmd(r, NULL, NULL, "DEL %s", also_del);
    return kn_redis_cmd(r, cb, arg, "EXEC");
}

static void on_dead_letter(struct kn_redis *r, redisReply *rep, void *arg)
{
}

void kn_queue_dead_letter(struct kn_redis *r, const char *prefix,
                          const char *stream, const char *id, const char *raw,
                          size_t rawlen, const char *reason)
{
    char *dlq = kn_xasprintf("%sdlq", prefix), now[24], bc[80] = "",
         tenant[80] = "";
    json_t *j = raw ? json_loadb(raw, rawlen, 0, NULL) : NULL;
    /* The broadcast, when the job names one (a job of a purged broadcast
     * is readable): the DLQ listing can then say whose it was. */
    if (json_is_string(json_object_get(j, "b")) &&
        strlen(json_string_value(json_object_get(j, "b"))) < sizeof(bc))
        snprintf(bc, sizeof(bc), "%s",
                 json_string_value(json_object_get(j, "b")));
    /* A broadcast (a producer's raw entry, masked) names its tenant. */
    if (json_is_string(json_object_get(j, "tenant")) &&
        strlen(json_string_value(json_object_get(j, "tenant"))) <
            sizeof(tenant))
        snprintf(tenant, sizeof(tenant), "%s",
                 json_string_value(json_object_get(j, "tenant")));
    json_decref(j);
    snprintf(now, sizeof(now), "%lld", (long long)kn_now_ms());
    kn_log(KN_LOG_WARN, "daemon", "unreadable entry moved to the DLQ", "stream",
           stream, "entry", id, "bc", bc, "tenant", tenant, "reason", reason,
           NULL);
    kn_redis_cmd(r, on_dead_letter, NULL, "MULTI");
    kn_redis_cmd(
        r, on_dead_letter, NULL,
        "XADD %s * stream %s entry %s bc %s tenant %s job %b reason %s "
        "failed_ms %s",
        dlq, stream, id, bc, tenant, raw ? raw : "", raw ? rawlen : (size_t)0,
        reason, now);
    kn_redis_cmd(r, on_dead_letter, NULL, "XACK %s " KN_QUEUE_GROUP " %s",
                 stream, id);
    kn_redis_cmd(r, on_dead_letter, NULL, "XDEL %s %s", stream, id);
    kn_redis_cmd(r, on_dead_letter, NULL, "EXEC");
    free(dlq);
}

/* ---- idle consumers ---- */

static void on_ignore(struct kn_redis *r, redisReply *rep, void *arg)
{
}

static void on_consumers(struct kn_redis *r, redisReply *rep, void *arg)
{
    char *stream = arg;
    if (rep != NULL && rep->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < rep->elements; i++) {
            const redisReply *c = rep->element[i];
            const char *name = NULL;
            long long pending = -1, idle = 0;
            if (c->type != REDIS_REPLY_ARRAY)
                continue;
            for (size_t j = 0; j + 1 < c->elements; j += 2) {
                const char *k = c->element[j]->str;
                const redisReply *v = c->element[j + 1];
                if (strcmp(k, "name") == 0 && v->type == REDIS_REPLY_STRING)
                    name = v->str;
                else if (strcmp(k, "pending") == 0)
                    pending = v->integer;
                else if (strcmp(k, "idle") == 0)
                    idle = v->integer;
            }
            if (name != NULL && pending == 0 && idle > 86400000LL) {
                kn_log(KN_LOG_INFO, "daemon", "removing idle consumer",
                       "stream", stream, "consumer", name, NULL);
                kn_redis_cmd(r, on_ignore, NULL,
                             "XGROUP DELCONSUMER %s " KN_QUEUE_GROUP " %s",
                             stream, name);
            }
        }
    }
    free(stream);
}

void kn_queue_consumers_cleanup(struct kn_redis *r, const char *prefix)
{
    for (int i = 0; i <= KN_QUEUE_STREAMS; i++) {
        char *key = stream_key(prefix, i);
        if (kn_redis_cmd(r, on_consumers, key,
                         "XINFO CONSUMERS %s " KN_QUEUE_GROUP, key) < 0)
            free(key);
    }
}

/* ---- reliable script calls ---- */

struct kn_queue_pending {
    const struct kn_redis_script *s;
    kn_redis_cb *cb;
    void *arg;
    kn_queue_drop_fn *drop;
    int nkeys;
    struct kn_argv args;
    struct kn_queue_reliable *q;
    struct kn_queue_pending *next;
};

static void pending_queue(struct kn_queue_pending *p)
{
    struct kn_queue_reliable *q = p->q;
    p->next = q->kept;
    q->kept = p;
    q->nkept++;
}

static void on_reliable_reply(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct kn_queue_pending *p = arg;
    if (rep == NULL) {
        /* Lost with the connection: keep it for when Redis is back.  The
         * scripts are idempotent, so a call that did run is harmless to
         * run again. */
        pending_queue(p);
        return;
    }
    p->cb(r, rep, p->arg);
    kn_argv_free(&p->args);
    free(p);
}

static void pending_send(struct kn_queue_pending *p)
{
    if (kn_redis_eval(p->q->r, p->s, on_reliable_reply, p, p->nkeys, p->args.n,
                      (const char **)p->args.v, p->args.len) < 0)
        pending_queue(p);
}

void kn_queue_eval_reliable(struct kn_queue_reliable *q,
                            const struct kn_redis_script *s, kn_redis_cb *cb,
                            void *arg, kn_queue_drop_fn *drop, int nkeys,
                            struct kn_argv *args)
{
    struct kn_queue_pending *p = kn_xcalloc(1, sizeof(*p));
    p->s = s;
    p->cb = cb;
    p->arg = arg;
    p->drop = drop;
    p->nkeys = nkeys;
    p->q = q;
    p->args = *args; /* take the strings */
    kn_argv_init(args);
    pending_send(p);
}

size_t kn_queue_reliable_flush(struct kn_queue_reliable *q)
{
    struct kn_queue_pending *list = NULL;
    size_t n = q->nkept;
    /* kept is newest first: sent again oldest first, in the order they
     * were made (the expander's commits of two pages in a row) */
    while (q->kept != NULL) {
        struct kn_queue_pending *p = q->kept;
        q->kept = p->next;
        p->next = list;
        list = p;
    }
    q->nkept = 0;
    while (list != NULL) {
        struct kn_queue_pending *p = list;
        list = p->next;
        pending_send(p);
    }
    return n;
}

void kn_queue_reliable_drop(struct kn_queue_reliable *q)
{
    while (q->kept != NULL) {
        struct kn_queue_pending *p = q->kept;
        q->kept = p->next;
        if (p->drop != NULL)
            p->drop(p->arg);
        kn_argv_free(&p->args);
        free(p);
    }
    q->nkept = 0;
}
