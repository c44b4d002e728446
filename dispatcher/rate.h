/*
 * rate.h - a worker's rate buckets (rate.c): token buckets shared by every
 * kairand through Redis (script "take"), one per rate of a provider as
 * its row of the adapter table names them.  Internal to dispatcher/.
 */
#ifndef KN_DISPATCHER_RATE_H
#define KN_DISPATCHER_RATE_H

#include <stddef.h>
#include <stdint.h>

#include "adapters/adapter.h"

struct kn_daemon;

/* Buckets of one worker at most (its adapter's and its failover's). */
#define KN__MAX_BUCKETS 8

/*
 * A bucket: the worker asks Redis for a handful of tokens at a time and
 * spends them locally.
 */
struct kn__bucket {
    const char *name; /* "line:multicast", "push:fcm", ... */
    int64_t rate;     /* per second, all processes together */
    int64_t allow;    /* tokens in hand */
    int asking;
    int64_t wait_until; /* monotonic ms: nothing granted, ask again then */
    uint64_t waits;     /* times a job waited for a token (metrics) */
    uint64_t slowed;    /* 429s that slowed the bucket down (metrics) */
};

/* Called when tokens came (or the shared bucket failed): pump again. */
typedef void kn__rates_cb(void *arg);

struct kn__rates {
    struct kn_daemon *d;
    struct kn__bucket b[KN__MAX_BUCKETS];
    size_t n;
    /* Where each adapter's buckets start in b, by its ops. */
    struct {
        const struct kn_adapter_ops *ops;
        size_t first;
    } from[2];
    size_t nfrom;
    size_t ask; /* tokens asked for at once */
    kn__rates_cb *ready;
    void *arg;
};

/*
 * Set up the buckets of a's provider (and, if alt is not NULL and open,
 * of alt's), asking for up to ask tokens at a time; ready(arg) runs when
 * a wait may be over.
 */
void kn__rates_init(struct kn__rates *rs, struct kn_daemon *d,
                    const struct kn_adapter *a, const struct kn_adapter *alt,
                    size_t ask, kn__rates_cb *ready, void *arg);

/* The bucket a job sent through via spends from, or NULL (no limit). */
struct kn__bucket *kn__rates_for(struct kn__rates *rs,
                                 const struct kn_adapter *via,
                                 const struct kn_job *job);

/*
 * 1 if a token of b is at hand (spent; b NULL: always), 0 if the job must
 * wait (tokens are asked for; ready runs when they come).
 */
int kn__rates_spend(struct kn__rates *rs, struct kn__bucket *b);

/* A 429 came anyway: slow b down for a minute, in every process. */
void kn__rates_slow_down(struct kn__rates *rs, struct kn__bucket *b);

/* The i-th bucket (for /metrics); 0 past the end. */
int kn__rates_get(const struct kn__rates *rs, size_t i, const char **name,
                  uint64_t *waits, uint64_t *slowed);

#endif
