/*
 * worker_read.c - how a channel worker reads its jobs: as many as it has
 * room for in hand (4 x its send slots), urgent before normal, in three
 * phases (urgent without blocking, normal without blocking, then a short
 * BLOCK on both only if both were empty); a stream whose key cannot be
 * read (the wrong type) is skipped for a while so that the other one is
 * read.  The jobs in hand are kept ours: their idle time in Redis is reset
 * (script "keep") so that no other process takes over a job that only
 * waits here for a slot.  What happens to a job once read is worker.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/argv.h"
#include "common/kn.h"
#include "common/log.h"
#include "config/config.h"
#include "dispatcher/daemon.h"
#include "dispatcher/worker.h"
#include "queue/poison.h"
#include "queue/queue.h"
#include "queue/scripts.h"

/* How long a stream that cannot be read is skipped. */
#define BAD_STREAM_MS 5000

/* ---- the jobs in hand ---- */

void kn__worker_held_add(struct kn_worker *w, struct wjob *jb)
{
    jb->held_ms = kn_mono_ms();
    jb->hnext = NULL;
    jb->hprev = w->held_tail;
    if (w->held_tail != NULL)
        w->held_tail->hnext = jb;
    else
        w->held = jb;
    w->held_tail = jb;
}

void kn__worker_held_del(struct kn_worker *w, struct wjob *jb)
{
    if (jb->hprev != NULL)
        jb->hprev->hnext = jb->hnext;
    else
        w->held = jb->hnext;
    if (jb->hnext != NULL)
        jb->hnext->hprev = jb->hprev;
    else
        w->held_tail = jb->hprev;
    jb->hprev = jb->hnext = NULL;
}

/* ---- reading ---- */

static void read_phase(struct kn_worker *w);
static int stream_ok(struct kn_worker *w, int i);

static void on_again(uv_timer_t *t)
{
    struct kn_worker *w = kn_container_of(t, struct kn_worker, again);
    kn__worker_fill(w);
}

static void groups_ready(void *arg)
{
    kn__worker_fill(arg);
}

static void on_read(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct kn_worker *w = arg;
    long n = 0;
    if (rep == NULL) {
        w->reading = 0; /* connection lost; its state callback kicks us */
        return;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        w->reading = 0;
        if (kn_reply_is_error(rep, "NOGROUP")) {
            kn_log(KN_LOG_WARN, "worker",
                   "consumer group missing (Redis "
                   "restarted empty?); recreating",
                   "channel", w->chname, NULL);
            kn__ensure_groups(w->d, groups_ready, w);
        } else if (w->phase < 2 && !kn_poison_transient(rep->str)) {
            /* This stream's key cannot be read (of the wrong type): skip
             * it for a while and read the other one meanwhile. */
            kn_log(KN_LOG_ERROR, "worker",
                   "a queue stream cannot be read; skipped for 5 s (delete "
                   "the stray key)",
                   "channel", w->chname, "stream", w->streams[w->phase],
                   "error", rep->str, NULL);
            w->bad_until[w->phase] = kn_mono_ms() + BAD_STREAM_MS;
            w->reading = 1;
            w->phase++;
            read_phase(w);
        } else {
            kn_log(KN_LOG_ERROR, "worker", "read failed", "channel", w->chname,
                   "error", rep->str, NULL);
            uv_timer_start(&w->again, on_again, 1000, 0);
        }
        return;
    }
    if (rep->type == REDIS_REPLY_ARRAY && !w->closed) {
        for (size_t s = 0; s < rep->elements; s++) {
            const redisReply *sr = rep->element[s];
            const redisReply *entries;
            if (sr->type != REDIS_REPLY_ARRAY || sr->elements != 2)
                continue;
            entries = sr->element[1];
            n += (long)entries->elements;
            for (size_t i = 0; i < entries->elements; i++) {
                w->got++;
                kn__worker_take(w, sr->element[0]->str, entries->element[i], 0);
            }
        }
    }
    if (w->closed)
        return;
    /* Urgent jobs filled the whole read: the normal stream waits for the
     * next cycle (slots freed meanwhile go to urgent work first). */
    w->phase = w->phase == 0 && n >= w->asked ? 3 : w->phase + 1;
    read_phase(w);
}

/*
 * Three phases: urgent without blocking; then normal without blocking;
 * then, only if both were empty, a short BLOCK on both.  A drain never
 * waits longer than queue.block_ms on a read.
 */
static void read_phase(struct kn_worker *w)
{
    struct kn_daemon *d = w->d;
    long want = (long)w->limit - (long)w->busy;
    char count[24];
    int rc;

    if (want <= 0 || d->stopping || w->closed || w->phase > 2 ||
        (w->phase == 2 && w->got > 0)) {
        w->reading = 0;
        if (w->got > 0 || w->phase > 2)
            kn__worker_fill(w);
        return;
    }
    w->asked = want;
    snprintf(count, sizeof(count), "%ld", want);
    if (w->phase < 2 && !stream_ok(w, w->phase)) {
        w->phase++;
        read_phase(w);
        return;
    }
    if (w->phase < 2) {
        rc = kn_queue_read(w->blk, d->consumer, count, -1, 1,
                           (const char *const *)&w->streams[w->phase], on_read,
                           w);
    } else if (!stream_ok(w, 0) || !stream_ok(w, 1)) {
        /* One stream is skipped: block on the other alone (or, if both
         * are, wait a little). */
        int i = stream_ok(w, 0) ? 0 : 1;
        if (!stream_ok(w, i)) {
            w->reading = 0;
            uv_timer_start(&w->again, on_again, 1000, 0);
            return;
        }
        rc = kn_queue_read(w->blk, d->consumer, count, d->cfg->block_ms, 1,
                           (const char *const *)&w->streams[i], on_read, w);
    } else {
        rc = kn_queue_read(w->blk, d->consumer, count, d->cfg->block_ms, 2,
                           (const char *const *)w->streams, on_read, w);
    }
    if (rc < 0)
        w->reading = 0;
}

/* 1 unless stream i was found unreadable a moment ago. */
static int stream_ok(struct kn_worker *w, int i)
{
    return w->bad_until[i] == 0 || kn_mono_ms() >= w->bad_until[i];
}

void kn__worker_fill(struct kn_worker *w)
{
    /* Read in batches of at least a slot's worth (or when idle), not one
     * entry per finished send: each read is a Redis round trip, and the
     * jobs in hand (up to 4 x slots) cover it. */
    size_t free_ = w->busy < w->limit ? w->limit - w->busy : 0;
    if (!w->started || w->closed || w->reading || w->d->stopping ||
        !kn_redis_up(w->blk) || free_ == 0 || (w->busy > 0 && free_ < w->slots))
        return;
    w->reading = 1;
    w->phase = 0;
    w->got = 0;
    read_phase(w);
}

void kn__worker_blk_state(struct kn_redis *r, int up, void *arg)
{
    struct kn_worker *w = arg;
    if (!up)
        w->reading = 0;
    else
        kn__worker_fill(w);
}

/* Jobs whose idle time is reset in one script call at most. */
#define KEEP_BATCH 200

static void on_kept(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct kn_worker *w = arg;
    w->keeping--;
    if (rep == NULL)
        return;
    if (rep->type != REDIS_REPLY_ARRAY) {
        kn_log(KN_LOG_ERROR, "worker",
               "resetting the idle time of held "
               "jobs failed",
               "channel", w->chname, "error",
               rep->type == REDIS_REPLY_ERROR ? rep->str : "bad reply", NULL);
        return;
    }
    /* Pairs (1 urgent | 2 normal, entry id) no longer pending for us. */
    for (size_t i = 0; i + 1 < rep->elements; i += 2) {
        const redisReply *q = rep->element[i], *id = rep->element[i + 1];
        if (q->type != REDIS_REPLY_STRING || id->type != REDIS_REPLY_STRING)
            continue;
        for (struct wjob *jb = w->held; jb != NULL; jb = jb->hnext) {
            if (jb->prio == atoi(q->str) - 1 && strcmp(jb->entry, id->str) == 0)
                jb->lost = 1;
        }
    }
}

/*
 * Reset the idle time (XCLAIM to ourselves, JUSTID) of the jobs held
 * longer than a quarter of queue.claim_idle_ms: a job waiting here for a
 * slot behind slow sends must not look abandoned to the other processes'
 * XAUTOCLAIM, or it is sent twice.  Runs every claim_idle_ms / 8, and
 * resets every job due, KEEP_BATCH per script call: one call per round
 * kept at most 200 jobs every 375 ms (claim_idle_ms 3 s), fewer than the
 * 1,440 a push worker may hold need when sends are slow, and the kill
 * matrix under the sanitizers saw hundreds of pushes taken over from a
 * live owner and sent twice.  No new round while one is in flight.
 */
void kn__worker_keep(uv_timer_t *t)
{
    struct kn_worker *w = kn_container_of(t, struct kn_worker, keep_timer);
    struct kn_daemon *d = w->d;
    int64_t now = kn_mono_ms(), after = d->cfg->claim_idle_ms / 4;
    struct kn_argv a;
    size_t n;
    if (w->closed || w->keeping > 0 || !kn_redis_up(d->cmd))
        return;
    do {
        kn_argv_init(&a);
        kn_argv_add(&a, w->streams[0]);
        kn_argv_add(&a, w->streams[1]);
        kn_argv_add(&a, KN_GROUP);
        kn_argv_add(&a, d->consumer);
        n = 0;
        while (w->held != NULL && now - w->held->held_ms >= after &&
               n < KEEP_BATCH) {
            struct wjob *jb = w->held;
            kn_argv_addi(&a, jb->prio + 1);
            kn_argv_add(&a, jb->entry);
            n++;
            /* To the back: the list stays in order of held_ms. */
            kn__worker_held_del(w, jb);
            kn__worker_held_add(w, jb);
        }
        if (n > 0) {
            w->keeping++;
            if (kn_redis_eval(d->cmd, &kn_script_keep, on_kept, w, 2, a.n,
                              (const char **)a.v, a.len) < 0) {
                w->keeping--;
                n = 0; /* Redis gone: the next round tries again */
            }
        }
        kn_argv_free(&a);
    } while (n == KEEP_BATCH);
}
