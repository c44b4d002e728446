/*
 * worker.c - one worker per channel: reads delivery jobs from its streams
 * (urgent before normal, as many as it has free send slots), checks each
 * against its broadcast (cancelled? expired? already delivered?), decrypts
 * the address just before handing the job to the adapter, and records the
 * result atomically (finish / retry scripts) before the job leaves its
 * stream.
 *
 * A job's life: read -> message -> (precheck) -> ready -> send -> record
 * -> gone.  busy counts jobs between read and recorded and never exceeds
 * twice the adapter's send slots, so memory stays flat whatever the
 * broadcast size; the jobs beyond the slots wait, checked and ready, in a
 * local queue (urgent first), so that a slot whose send ends starts the
 * next one at once instead of after three Redis round trips.
 *
 * The precheck (cancelled? expired? already delivered?) asks Redis only
 * for jobs that may have been tried before (attempt > 0: retried,
 * reclaimed, re-queued from the DLQ).  A first attempt read from its
 * stream cannot have been delivered (the expander enqueues each address
 * once), so it is checked against the cached broadcast: its expiry, and
 * its status, which the daemon refreshes every 500 ms (a cancel takes
 * effect within that).
 *
 * Decisions are made here, not in adapters: a tempfail is retried with
 * full-jitter backoff (or the provider's Retry-After) until
 * queue.max_attempts, then dead-lettered; a permfail is dead-lettered at
 * once with the adapter's reason.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/argv.h"
#include "common/kn.h"
#include "common/log.h"
#include "common/seal.h"
#include "config/config.h"
#include "dispatcher/daemon.h"
#include "queue/scripts.h"

struct wjob {
    struct kn_worker *w;
    struct kn_job job;
    char *stream; /* full key */
    char *entry;  /* stream entry id */
    char *raw;    /* the job JSON as stored */
    json_t *j;    /* parsed */
    const char *bcast, *rcpt, *sealed, *bindex;
    int n; /* attempts before this one */
    char *field;
    struct kn__msg *msg;
    char *addr; /* plaintext, wiped after the send */
    int claimed;
    int prio; /* 0 urgent, 1 normal */
    struct wjob *next; /* ready queue */
};

struct kn_worker {
    struct kn_daemon *d;
    enum kn_channel ch;
    const char *chname;
    struct kn_adapter ad;
    char *route;
    struct kn_redis *blk;
    char *streams[2]; /* urgent, normal */
    size_t slots;   /* sends at once (the adapter's capacity) */
    size_t limit;   /* jobs in hand at most: 2 x slots */
    size_t busy;    /* jobs in hand: read, not yet recorded */
    size_t sending; /* jobs in the adapter */
    struct wjob *ready[2], *ready_tail[2]; /* checked, waiting for a slot */
    int reading, phase, got;
    int started, closed;
    uv_timer_t again; /* read again after an error */
};

static void fill(struct kn_worker *w);

/* ---- job bookkeeping ---- */

static void job_free(struct wjob *jb)
{
    if (jb->addr != NULL) {
        memset(jb->addr, 0, strlen(jb->addr));
        free(jb->addr);
    }
    if (jb->msg != NULL)
        kn__msg_put(jb->msg);
    json_decref(jb->j);
    free(jb->stream);
    free(jb->entry);
    free(jb->raw);
    free(jb->field);
    free(jb);
}

/* The job is out of our hands (recorded, or left pending). */
static void job_done(struct wjob *jb)
{
    struct kn_worker *w = jb->w;
    job_free(jb);
    w->busy--;
    fill(w);
}

static void on_recorded(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct wjob *jb = arg;
    if (rep->type == REDIS_REPLY_ERROR)
        kn_log(KN_LOG_ERROR, "worker", "recording a result failed", "error",
               rep->str, "bc", jb->bcast, "job", jb->entry, NULL);
    job_done(jb);
}

/*
 * Record a final state: delivered, failed (also into the DLQ), expired
 * or cancelled.  The job leaves its stream in the same atomic step.
 */
static void finish(struct wjob *jb, const char *state, const char *detail)
{
    struct kn_daemon *d = jb->w->d;
    struct kn_argv a;
    kn_argv_init(&a);
    kn_argv_add(&a, jb->stream);
    kn_argv_take(&a, kn__key(d, "bc:%s", jb->bcast));
    kn_argv_take(&a, kn__key(d, "bc:%s:r", jb->bcast));
    kn_argv_take(&a, kn__key(d, "dlq"));
    kn_argv_take(&a, kn__key(d, "active"));
    kn_argv_add(&a, KN_GROUP);
    kn_argv_add(&a, jb->entry);
    kn_argv_add(&a, jb->field);
    kn_argv_add(&a, state);
    kn_argv_addi(&a, kn_now_ms());
    kn_argv_add(&a, jb->rcpt);
    kn_argv_add(&a, detail ? detail : "");
    kn_argv_add(&a, jb->bcast);
    kn_argv_add(&a, jb->raw);
    kn_argv_addi(&a, jb->n + (jb->claimed ? 1 : 0) +
                         (strcmp(state, "delivered") == 0 ||
                                  strcmp(state, "failed") == 0
                              ? 1
                              : 0));
    if (strcmp(state, "delivered") != 0)
        kn_log(strcmp(state, "failed") == 0 ? KN_LOG_WARN : KN_LOG_INFO,
               "worker", state, "bc", jb->bcast, "rcpt", jb->rcpt, "channel",
               jb->w->chname, "reason", detail, NULL);
    kn__eval_reliable(d, &kn_script_finish, on_recorded, jb, 5, &a);
}

/* Park the job for another attempt after delay_ms. */
static void retry(struct wjob *jb, int64_t delay_ms, const char *detail)
{
    struct kn_daemon *d = jb->w->d;
    struct kn_argv a;
    json_t *nj = json_deep_copy(jb->j);
    char *s;
    json_object_set_new(nj, "n", json_integer(jb->n + 1));
    s = json_dumps(nj, JSON_COMPACT);
    json_decref(nj);
    kn_argv_init(&a);
    kn_argv_add(&a, jb->stream);
    kn_argv_take(&a, kn__key(d, "retry"));
    kn_argv_take(&a, kn__key(d, "bc:%s:r", jb->bcast));
    kn_argv_add(&a, KN_GROUP);
    kn_argv_add(&a, jb->entry);
    kn_argv_addi(&a, kn_now_ms() + delay_ms);
    kn_argv_take(&a, s);
    kn_argv_add(&a, jb->field);
    kn_argv_add(&a, jb->rcpt);
    kn_argv_add(&a, detail ? detail : "");
    kn_log(KN_LOG_INFO, "worker", "retry later", "bc", jb->bcast, "rcpt",
           jb->rcpt, "channel", jb->w->chname, "reason", detail, NULL);
    kn__eval_reliable(d, &kn_script_retry, on_recorded, jb, 3, &a);
}

/*
 * After a temporary failure (or a reclaim): retry with backoff, unless the
 * attempts are used up (DLQ) or the retry would come after the expiry.
 */
static void retry_or_give_up(struct wjob *jb, int64_t retry_after,
                             const char *detail)
{
    struct kn_daemon *d = jb->w->d;
    int attempts = jb->n + 1;
    int64_t delay = kn__backoff_ms(d, attempts), expires = 0;
    char why[400];
    json_t *t = json_object_get(jb->j, "x");
    if (retry_after > delay)
        delay = retry_after;
    if (json_is_integer(t))
        expires = json_integer_value(t);
    if (attempts >= d->cfg->max_attempts) {
        snprintf(why, sizeof(why), "gave up after %d attempts: %s", attempts,
                 detail ? detail : "");
        finish(jb, "failed", why);
    } else if (expires > 0 && kn_now_ms() + delay >= expires) {
        snprintf(why, sizeof(why), "expired while retrying: %s",
                 detail ? detail : "");
        finish(jb, "expired", why);
    } else {
        retry(jb, delay, detail);
    }
}

/* ---- sending ---- */

static void pump(struct kn_worker *w);

static void on_sent(struct kn_job *job, const struct kn_result *r, void *arg)
{
    struct wjob *jb = job->_owner;
    struct kn_daemon *d = jb->w->d;
    jb->w->sending--;
    if (!jb->w->closed)
        pump(jb->w);
    if (jb->addr != NULL) {
        memset(jb->addr, 0, strlen(jb->addr));
        free(jb->addr);
        jb->addr = NULL;
        jb->job.addr = NULL;
    }
    if (r->status == KN_TEMPFAIL && r->detail == kn_detail_aborted) {
        /* Shutting down mid-send: the entry stays pending in Redis and
         * another process takes it over; no attempt is counted. */
        job_done(jb);
        return;
    }
    kn__metrics_result(d, jb->w->ch, jb->w->ad.ops->name, r->status,
                       jb->msg->m.created_ms > 0
                           ? kn_now_ms() - jb->msg->m.created_ms
                           : -1);
    switch (r->status) {
    case KN_DELIVERED:
        d->delivered++;
        finish(jb, "delivered", r->detail);
        break;
    case KN_PERMFAIL:
        d->permfailed++;
        finish(jb, "failed", r->detail);
        break;
    case KN_TEMPFAIL:
        d->tempfailed++;
        retry_or_give_up(jb, r->retry_after_ms, r->detail);
        break;
    }
}

static void send_now(struct wjob *jb)
{
    struct kn_worker *w = jb->w;
    struct kn_job *jobs[1];
    size_t len = 0;
    int rc = kn_unseal(w->d->kr, w->chname, jb->sealed, &jb->addr, &len);
    if (rc < 0) {
        char why[160];
        snprintf(why, sizeof(why),
                 "cannot decrypt the address (sealed with key id %d: is it "
                 "in security.key_file?)",
                 kn_sealed_kid(jb->sealed));
        finish(jb, "failed", why);
        return;
    }
    jb->job.msg = &jb->msg->m;
    jb->job.channel = w->chname;
    jb->job.rcpt = jb->rcpt;
    jb->job.bindex = jb->bindex;
    jb->job.addr = jb->addr;
    jb->job.attempt = jb->n + 1;
    jb->job._owner = jb;
    jobs[0] = &jb->job;
    w->sending++;
    w->ad.ops->send(&w->ad, jobs, 1, on_sent, NULL);
}

/* Start ready jobs while the adapter has free slots, urgent first. */
static void pump(struct kn_worker *w)
{
    while (w->sending < w->slots && !w->closed) {
        struct wjob *jb;
        int q = w->ready[0] != NULL ? 0 : 1;
        if (w->ready[q] == NULL)
            return;
        jb = w->ready[q];
        w->ready[q] = jb->next;
        if (w->ready[q] == NULL)
            w->ready_tail[q] = NULL;
        jb->next = NULL;
        send_now(jb);
    }
}

/* The job passed its checks: queue it for a send slot. */
static void send_job(struct wjob *jb)
{
    struct kn_worker *w = jb->w;
    int q = jb->prio;
    jb->next = NULL;
    if (w->ready_tail[q] != NULL)
        w->ready_tail[q]->next = jb;
    else
        w->ready[q] = jb;
    w->ready_tail[q] = jb;
    pump(w);
}

static void on_precheck(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct wjob *jb = arg;
    const char *status, *rstate;
    int64_t expires;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3) {
        kn_log(KN_LOG_ERROR, "worker", "precheck failed", "error",
               rep->type == REDIS_REPLY_ERROR ? rep->str : "bad reply", NULL);
        job_done(jb); /* stays pending; reclaimed later */
        return;
    }
    status = rep->element[0]->str;
    expires = strtoll(rep->element[1]->str, NULL, 10);
    rstate = rep->element[2]->str;
    if (rstate[0] != '\0' && rstate[0] != 'q' && rstate[0] != 'r') {
        /* Already final (a reclaimed duplicate): only let it leave. */
        finish(jb, "delivered", "duplicate");
    } else if (strcmp(status, "cancelled") == 0) {
        finish(jb, "cancelled", "broadcast cancelled");
    } else if (expires > 0 && kn_now_ms() >= expires) {
        finish(jb, "expired", "broadcast expired before it could be sent");
    } else {
        send_job(jb);
    }
}

static void on_msg(struct kn__msg *m, void *arg)
{
    struct wjob *jb = arg;
    struct kn_daemon *d = jb->w->d;
    struct kn_argv a;
    jb->msg = m;
    if (m->failed) {
        kn__poison(d, jb->stream, jb->entry, jb->raw, strlen(jb->raw),
                   "broadcast not found (purged or never stored)");
        job_done(jb);
        return;
    }
    if (jb->claimed) {
        /* Taken over from a process that stopped while holding it: count
         * the attempt, so a job that kills its worker every time ends in
         * the DLQ after queue.max_attempts instead of looping. */
        retry_or_give_up(jb, 0, "taken over from a stopped worker");
        return;
    }
    if (jb->n == 0) {
        /* A first attempt: checked against the cached broadcast. */
        if (m->cancelled)
            finish(jb, "cancelled", "broadcast cancelled");
        else if (m->m.expires_ms > 0 && kn_now_ms() >= m->m.expires_ms)
            finish(jb, "expired", "broadcast expired before it could be "
                                  "sent");
        else
            send_job(jb);
        return;
    }
    kn_argv_init(&a);
    kn_argv_take(&a, kn__key(d, "bc:%s", jb->bcast));
    kn_argv_take(&a, kn__key(d, "bc:%s:r", jb->bcast));
    kn_argv_add(&a, jb->field);
    kn__eval_reliable(d, &kn_script_precheck, on_precheck, jb, 2, &a);
}

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Take one stream entry: parse it and start its life. */
static void take_entry(struct kn_worker *w, const char *stream,
                       const redisReply *e, int claimed)
{
    struct wjob *jb;
    const redisReply *jv = kn__entry_field(e, "j");
    json_t *nv;
    if (e == NULL || e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
        e->element[0]->type != REDIS_REPLY_STRING)
        return; /* deleted entry (nil) in a claim reply */
    jb = kn_xcalloc(1, sizeof(*jb));
    jb->w = w;
    jb->stream = kn_xstrdup(stream);
    jb->entry = kn_xstrndup(e->element[0]->str, e->element[0]->len);
    jb->claimed = claimed;
    jb->prio = strstr(stream, ":urgent") != NULL ? 0 : 1;
    w->busy++;
    if (jv == NULL || jv->type != REDIS_REPLY_STRING) {
        kn__poison(w->d, stream, jb->entry, NULL, 0, "entry has no job");
        job_done(jb);
        return;
    }
    jb->raw = kn_xstrndup(jv->str, jv->len);
    jb->j = json_loadb(jv->str, jv->len, 0, NULL);
    jb->bcast = jstr(jb->j, "b");
    jb->rcpt = jstr(jb->j, "r");
    jb->sealed = jstr(jb->j, "a");
    jb->bindex = jstr(jb->j, "i");
    nv = json_object_get(jb->j, "n");
    if (jb->bcast == NULL || jb->rcpt == NULL || jb->sealed == NULL ||
        jb->bindex == NULL || !json_is_integer(nv)) {
        kn__poison(w->d, stream, jb->entry, jb->raw, strlen(jb->raw),
                   "unreadable job (not the JSON kairand writes)");
        job_done(jb);
        return;
    }
    jb->n = (int)json_integer_value(nv);
    jb->field = kn_xasprintf("%s:%s", w->chname, jb->bindex);
    kn__msg_get(w->d, jb->bcast, on_msg, jb);
}

/* ---- reading ---- */

static void read_phase(struct kn_worker *w);

static void on_again(uv_timer_t *t)
{
    struct kn_worker *w = kn_container_of(t, struct kn_worker, again);
    fill(w);
}

static void groups_ready(void *arg)
{
    fill(arg);
}

static void on_read(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct kn_worker *w = arg;
    if (rep == NULL) {
        w->reading = 0; /* connection lost; its state callback kicks us */
        return;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        w->reading = 0;
        if (kn_reply_is_error(rep, "NOGROUP")) {
            kn_log(KN_LOG_WARN, "worker", "consumer group missing (Redis "
                                          "restarted empty?); recreating",
                   "channel", w->chname, NULL);
            kn__ensure_groups(w->d, groups_ready, w);
        } else {
            kn_log(KN_LOG_ERROR, "worker", "read failed", "channel",
                   w->chname, "error", rep->str, NULL);
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
            for (size_t i = 0; i < entries->elements; i++) {
                w->got++;
                take_entry(w, sr->element[0]->str, entries->element[i], 0);
            }
        }
    }
    if (w->closed)
        return;
    w->phase++;
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
    char count[24], block[24];
    int rc;

    if (want <= 0 || d->stopping || w->closed || w->phase > 2 ||
        (w->phase == 2 && w->got > 0)) {
        w->reading = 0;
        if (w->got > 0 || w->phase > 2)
            fill(w);
        return;
    }
    snprintf(count, sizeof(count), "%ld", want);
    snprintf(block, sizeof(block), "%lld", (long long)d->cfg->block_ms);
    if (w->phase < 2) {
        rc = kn_redis_cmd(w->blk, on_read, w,
                          "XREADGROUP GROUP " KN_GROUP " %s COUNT %s "
                          "STREAMS %s >",
                          d->consumer, count, w->streams[w->phase]);
    } else {
        const char *argv[] = {"XREADGROUP", "GROUP",    KN_GROUP,
                              d->consumer,  "COUNT",    count,
                              "BLOCK",      block,      "STREAMS",
                              w->streams[0], w->streams[1], ">",
                              ">"};
        rc = kn_redis_argv(w->blk, on_read, w, d->cfg->block_ms,
                           (int)KN_ARRAY_SIZE(argv), argv, NULL);
    }
    if (rc < 0)
        w->reading = 0;
}

static void fill(struct kn_worker *w)
{
    /* Read in batches of at least half the slots (or when idle), not one
     * entry per finished send. */
    size_t free_ = w->busy < w->limit ? w->limit - w->busy : 0;
    if (!w->started || w->closed || w->reading || w->d->stopping ||
        !kn_redis_up(w->blk) || free_ == 0 ||
        (w->busy > 0 && free_ < (w->slots + 1) / 2))
        return;
    w->reading = 1;
    w->phase = 0;
    w->got = 0;
    read_phase(w);
}

static void on_blk_state(struct kn_redis *r, int up, void *arg)
{
    struct kn_worker *w = arg;
    if (!up)
        w->reading = 0;
    else
        fill(w);
}

/* ---- public (internal) API ---- */

struct kn_worker *kn__worker_new(struct kn_daemon *d, enum kn_channel ch,
                                 const char *adapter)
{
    struct kn_worker *w;
    int rc;
    if (kn_adapter_find(adapter) == NULL) {
        kn_log(KN_LOG_WARN, "worker",
               "no adapter of that name in this build; jobs of this channel "
               "wait in their streams",
               "channel", kn_channel_name(ch), "route", adapter, NULL);
        return NULL;
    }
    w = kn_xcalloc(1, sizeof(*w));
    w->d = d;
    w->ch = ch;
    w->chname = kn_channel_name(ch);
    w->route = kn_xstrdup(adapter);
    rc = kn_adapter_open(&w->ad, adapter, d->loop, d->cfg);
    if (rc < 0)
        kn_fatal("cannot open the %s adapter for %s: %s", adapter,
                 w->chname, kn_strerror(rc));
    w->slots = w->ad.ops->capacity(&w->ad);
    w->limit = 2 * w->slots;
    w->streams[0] = kn__key(d, "q:%s:urgent", w->chname);
    w->streams[1] = kn__key(d, "q:%s:normal", w->chname);
    uv_timer_init(d->loop, &w->again);
    w->blk = kn__redis_open(d, w->chname, on_blk_state, w);
    return w;
}

void kn__worker_start(struct kn_worker *w)
{
    w->started = 1;
    kn_log(KN_LOG_INFO, "worker", "started", "channel", w->chname, "adapter",
           w->route, NULL);
    kn_redis_start(w->blk);
}

size_t kn__worker_busy(const struct kn_worker *w)
{
    return w->busy;
}

size_t kn__worker_sending(const struct kn_worker *w)
{
    return w->sending;
}

const char *kn__worker_route(const struct kn_worker *w)
{
    return w->route;
}

struct kn_redis *kn__worker_redis(const struct kn_worker *w)
{
    return w->blk;
}

void kn__worker_kick(struct kn_worker *w)
{
    fill(w);
}

void kn__worker_claimed(struct kn_worker *w, const char *stream,
                        const redisReply *entries)
{
    for (size_t i = 0; i < entries->elements; i++)
        take_entry(w, stream, entries->element[i], 1);
}

static void on_again_closed(uv_handle_t *h)
{
    struct kn_worker *w = kn_container_of(h, struct kn_worker, again);
    free(w);
}

void kn__worker_close(struct kn_worker *w)
{
    w->closed = 1;
    /* Sends still running are aborted: each gets a tempfail that we leave
     * pending in Redis (no attempt counted). */
    w->ad.ops->close(&w->ad);
    kn_redis_close(w->blk);
    free(w->streams[0]);
    free(w->streams[1]);
    free(w->route);
    uv_close((uv_handle_t *)&w->again, on_again_closed);
}
