/*
 * rate.c - a worker's rate buckets: one token bucket per rate of a
 * provider (its row of the adapter table names them and their rates),
 * shared by every kairand through Redis (key rate:<name>, script "take").
 * The worker asks for a handful of tokens at a time and spends them
 * locally, so that a send costs a Redis round trip only now and then.
 *
 * A provider's 429 slows its bucket down for a minute everywhere (the
 * script reads slow_until).  If the shared bucket cannot be used, this
 * process keeps to the rate alone for a second rather than asking again
 * at once or stopping the channel.  This file never sends.
 */
#include "dispatcher/rate.h"

#include <stdlib.h>
#include <string.h>

#include "common/argv.h"
#include "common/kn.h"
#include "common/log.h"
#include "dispatcher/daemon.h"
#include "queue/scripts.h"

static void add_from(struct kn__rates *rs, const struct kn_adapter *a)
{
    const struct kn_adapter_ops *ops = a->ops;
    const struct kn_config *cfg = rs->d->cfg;
    rs->from[rs->nfrom].ops = ops;
    rs->from[rs->nfrom].first = rs->n;
    rs->nfrom++;
    for (size_t i = 0; i < ops->nrates && rs->n < KN__MAX_BUCKETS; i++) {
        struct kn__bucket *b = &rs->b[rs->n++];
        int64_t rate = ops->rates[i].per_second(cfg);
        b->name = ops->rates[i].name;
        b->rate = rate > 0 ? rate : 1;
    }
}

void kn__rates_init(struct kn__rates *rs, struct kn_daemon *d,
                    const struct kn_adapter *a, const struct kn_adapter *alt,
                    size_t ask, kn__rates_cb *ready, void *arg)
{
    memset(rs, 0, sizeof(*rs));
    rs->d = d;
    rs->ask = ask;
    rs->ready = ready;
    rs->arg = arg;
    add_from(rs, a);
    if (alt != NULL && alt->ops != NULL)
        add_from(rs, alt);
}

struct kn__bucket *kn__rates_for(struct kn__rates *rs,
                                 const struct kn_adapter *via,
                                 const struct kn_job *job)
{
    int i = kn_adapter_rate_for(via, job);
    if (i < 0)
        return NULL;
    for (size_t k = 0; k < rs->nfrom; k++) {
        size_t at = rs->from[k].first + (size_t)i;
        if (rs->from[k].ops == via->ops && at < rs->n)
            return &rs->b[at];
    }
    return NULL;
}

struct take_ctx {
    struct kn__rates *rs;
    struct kn__bucket *b;
};

static void on_take(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct take_ctx *t = arg;
    struct kn__bucket *b = t->b;
    b->asking = 0;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2) {
        b->allow += rep->element[0]->integer;
        if (rep->element[0]->integer == 0)
            b->wait_until = kn_mono_ms() + rep->element[1]->integer;
    } else {
        /* The shared bucket cannot be used: this process keeps to the
         * rate alone for a second rather than asking again at once (a
         * tight loop) or stopping the channel. */
        int64_t got = b->rate < 50 ? b->rate : 50;
        kn_log(KN_LOG_ERROR, "worker",
               "the shared rate limit failed; limiting this process alone",
               "bucket", b->name, "error",
               rep->type == REDIS_REPLY_ERROR ? rep->str : "bad reply", NULL);
        b->allow += got > 0 ? got : 1;
        b->wait_until = kn_mono_ms() + 1000;
    }
    t->rs->ready(t->rs->arg);
    free(t);
}

int kn__rates_spend(struct kn__rates *rs, struct kn__bucket *b)
{
    struct kn_daemon *d = rs->d;
    struct take_ctx *t;
    struct kn_argv a;
    if (b == NULL)
        return 1;
    if (b->allow > 0) {
        b->allow--;
        return 1;
    }
    b->waits++;
    if (b->asking || kn_mono_ms() < b->wait_until)
        return 0;
    b->asking = 1;
    t = kn_xcalloc(1, sizeof(*t));
    t->rs = rs;
    t->b = b;
    kn_argv_init(&a);
    kn_argv_take(&a, kn__key(d, "rate:%s", b->name));
    kn_argv_addi(&a, b->rate);
    kn_argv_addi(&a, b->rate); /* burst: one second's worth */
    kn_argv_addi(&a, kn_now_ms());
    kn_argv_addi(&a, (int64_t)rs->ask);
    kn__eval_reliable(d, &kn_script_take, on_take, t, free, 1, &a);
    return 0;
}

static void on_slowed(struct kn_redis *r, redisReply *rep, void *arg)
{
}

void kn__rates_slow_down(struct kn__rates *rs, struct kn__bucket *b)
{
    b->slowed++;
    char *k = kn__key(rs->d, "rate:%s", b->name);
    kn_redis_cmd(rs->d->cmd, on_slowed, NULL, "HSET %s slow_until %lld", k,
                 (long long)(kn_now_ms() + 60000));
    free(k);
}

int kn__rates_get(const struct kn__rates *rs, size_t i, const char **name,
                  uint64_t *waits, uint64_t *slowed)
{
    if (i >= rs->n)
        return 0;
    *name = rs->b[i].name;
    *waits = rs->b[i].waits;
    *slowed = rs->b[i].slowed;
    return 1;
}
