/*
 * worker_finish.c - recording the final results of a worker's jobs
 * (worker.c): the results that end in one loop turn go to Redis together,
 * in one call of the finish script, which writes each recipient's record,
 * counts them, lets the jobs leave their streams and dead-letters the
 * failed, in one atomic step.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/argv.h"
#include "common/buf.h"
#include "common/kn.h"
#include "common/log.h"
#include "dispatcher/daemon.h"
#include "dispatcher/worker.h"
#include "queue/keys.h"
#include "queue/scripts.h"

/*
 * How long a result may wait for others to share its script call: 0 = the
 * next loop turn (the results of one turn go together).  2 ms saved ~20 %
 * of Redis' CPU and ~5 % of throughput in the bench, but a result sent and
 * not yet recorded is sent again after a kill -9: the kill matrix counted
 * 193 e-mail duplicates with 2 ms, 119 with 0 (20 kills, 50,000 each).
 */
#define FINISH_WAIT_MS 0

/* A batch of results sent to Redis, waiting for its reply. */
struct fin_batch {
    struct kn_worker *w;
    size_t n;
    struct wjob *jobs[];
};

static void fin_append(struct kn_worker *w, struct wjob *jb);

/* The code of a final state in a bc:<id>:r record. */
static char fin_code(const char *state)
{
    switch (state[0]) {
    case 'd':
        return 'd'; /* delivered */
    case 'f':
        return 'f'; /* failed */
    case 'e':
        return 'x'; /* expired */
    case 'c':
        return 'c'; /* cancelled */
    default:
        return 'b'; /* bounced */
    }
}

static void on_finished(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct fin_batch *b = arg;
    struct kn_worker *w = b->w;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == b->n) {
        size_t again = 0;
        for (size_t i = 0; i < b->n; i++) {
            const redisReply *e = rep->element[i];
            if (e->type == REDIS_REPLY_INTEGER && e->integer == -2 &&
                !b->jobs[i]->fin_slow && !w->closed) {
                /* Recorded once, it lost to a record of its group (a
                 * duplicate run, a retry): member by member, which
                 * counts nothing final twice.  Its entry is still
                 * pending. */
                b->jobs[i]->fin_slow = 1;
                fin_append(w, b->jobs[i]);
                if (w->nfin == KN__FINISH_BATCH)
                    kn__worker_flush_finished(w);
                again++;
                continue;
            }
            if (e->type == REDIS_REPLY_INTEGER && e->integer < 0)
                kn_log(KN_LOG_ERROR, "worker",
                       "result not recorded: a key of its broadcast holds "
                       "the wrong type; the job is in the DLQ",
                       "bc", b->jobs[i]->bcast, "job", b->jobs[i]->entry, NULL);
            kn__worker_job_done(b->jobs[i]);
        }
        if (again > 0)
            kn__worker_flush_finished(w);
    } else if (b->n > 1 && !w->closed) {
        /* One bad job (a key of the wrong type, say) must not keep the
         * others' results from being recorded: again, one by one. */
        kn_log(KN_LOG_WARN, "worker",
               "recording a batch of results failed; recording them one "
               "by one",
               "error", rep->type == REDIS_REPLY_ERROR ? rep->str : "bad reply",
               NULL);
        kn__worker_flush_finished(w);
        for (size_t i = 0; i < b->n; i++) {
            fin_append(w, b->jobs[i]);
            kn__worker_flush_finished(w);
        }
    } else {
        /* The job stays pending in Redis: taken over and tried again. */
        for (size_t i = 0; i < b->n; i++) {
            kn_log(KN_LOG_ERROR, "worker", "recording a result failed", "error",
                   rep->type == REDIS_REPLY_ERROR ? rep->str : "bad reply",
                   "bc", b->jobs[i]->bcast, "job", b->jobs[i]->entry, NULL);
            kn__worker_job_done(b->jobs[i]);
        }
    }
    free(b);
}

/* Send the results collected so far. */
void kn__worker_flush_finished(struct kn_worker *w)
{
    struct kn_daemon *d = w->d;
    struct fin_batch *b;
    struct kn_argv a;
    int nkeys;
    uv_timer_stop(&w->fin_timer);
    if (w->nfin == 0)
        return;
    b = kn_xmalloc(sizeof(*b) + w->nfin * sizeof(b->jobs[0]));
    b->w = w;
    b->n = w->nfin;
    memcpy(b->jobs, w->fin_jobs, w->nfin * sizeof(b->jobs[0]));
    w->nfin = 0;
    kn_argv_init(&a);
    kn_argv_take(&a, kn__key(d, "dlq"));
    kn_argv_take(&a, kn__key(d, "active"));
    kn_argv_move(&a, &w->fin_keys);
    nkeys = a.n;
    kn_argv_add(&a, KN_GROUP);
    kn_argv_addi(&a, kn_now_ms());
    kn_argv_move(&a, &w->fin_args);
    kn__eval_reliable(d, &kn_script_finish, on_finished, b, free, nkeys, &a);
}

void kn__worker_on_fin_timer(uv_timer_t *t)
{
    kn__worker_flush_finished(kn_container_of(t, struct kn_worker, fin_timer));
}

/*
 * Record a final state: delivered, failed (also into the DLQ), expired
 * or cancelled, for every recipient of the job.  The job leaves its
 * stream in the same atomic step.  Results are collected during a loop
 * turn and recorded together (one script call, not one per message).
 */
void kn__worker_finish(struct wjob *jb, const char *state, const char *detail)
{
    struct kn_worker *w = jb->w;
    struct kn_daemon *d = w->d;
    int counted = strcmp(state, "delivered") == 0 ||
                  strcmp(state, "failed") == 0 || strcmp(state, "bounced") == 0;
    if (strcmp(state, "delivered") != 0)
        kn_log(strcmp(state, "failed") == 0 ? KN_LOG_WARN : KN_LOG_INFO,
               "worker", state, "bc", jb->bcast, "rcpt", jb->rcpts[0],
               "channel", w->chname, "reason", detail, NULL);
    if (strcmp(state, "expired") == 0)
        d->metrics.expired += jb->naddr;
    else if (strcmp(state, "cancelled") == 0)
        d->metrics.cancelled += jb->naddr;
    else if (strcmp(state, "failed") == 0)
        d->metrics.dead_lettered += jb->naddr;
    jb->fin_state = state;
    free(jb->fin_detail);
    jb->fin_detail = kn_xstrdup(detail ? detail : "");
    /* This attempt counts once: a send that ended (delivered, failed) or
     * a takeover (a stopped worker's attempt). */
    jb->fin_attempts = jb->n + (counted || jb->claimed ? 1 : 0);
    fin_append(w, jb);
    if (w->nfin == KN__FINISH_BATCH)
        kn__worker_flush_finished(w);
    else if (w->nfin == 1)
        uv_timer_start(&w->fin_timer, kn__worker_on_fin_timer, FINISH_WAIT_MS,
                       0);
}

/*
 * The job's fields and their final records, as the finish script writes
 * them: n, then per recipient "<channel>:<bindex>" and
 * "<code>|<rcpt>|<ms>|<detail>".  Built here, not in the script, since
 * every string made in Redis' Lua is hashed whole and one made per
 * recipient of a 500-member multicast cost Redis more than the HSET that
 * writes them.
 */
static void fin_records(struct kn_argv *a, const struct wjob *jb)
{
    struct kn_buf v = KN_BUF_INIT;
    char tail[48];
    int tn;
    /* (A first attempt only: a retried copy kairand writes has no "gr";
     * one an older kairand wrote may, with members "r|..." it did not
     * mark, which recording once would leave retrying for good.) */
    if (jb->grec && !jb->fin_slow && jb->naddr > 0 && jb->n == 0 &&
        strcmp(jb->fin_state, "delivered") == 0) {
        /* A multicast LINE accepted, whose members' records name its key
         * (docs/multicast-record.md): one record for all of them, "@<key>"
         * = "d|<ms>|<members>|<detail>", not 500 (-2 back: it lost to a
         * record of the group, on_finished sends it member by member). */
        kn_argv_addi(a, -(int64_t)jb->naddr);
        kn_argv_addf(a, "@%s", jb->key + strlen(jb->bcast) + 1);
        kn_argv_addf(a, "d|%lld|%zu|%s", (long long)kn_now_ms(), jb->naddr,
                     jb->fin_detail);
        return;
    }
    kn_argv_addi(a, (int64_t)jb->naddr);
    if (jb->naddr == 0)
        return;
    tn = snprintf(tail, sizeof(tail), "|%lld|", (long long)kn_now_ms());
    for (size_t k = 0; k < jb->naddr; k++) {
        kn_buf_reset(&v);
        kn_buf_add(&v, jb->w->chname);
        kn_buf_addc(&v, ':');
        kn_buf_add(&v, jb->bindex[k]);
        kn_argv_addn(a, kn_buf_str(&v), kn_buf_len(&v));
        kn_buf_reset(&v);
        kn_buf_addc(&v, fin_code(jb->fin_state));
        kn_buf_addc(&v, '|');
        kn_buf_add(&v, jb->rcpts[k]);
        kn_buf_addn(&v, tail, (size_t)tn);
        kn_buf_add(&v, jb->fin_detail);
        kn_argv_addn(a, kn_buf_str(&v), kn_buf_len(&v));
    }
    kn_buf_free(&v);
}

/* Add jb's result (set by finish) to the batch being collected. */
static void fin_append(struct kn_worker *w, struct wjob *jb)
{
    struct kn_daemon *d = w->d;
    kn_argv_add(&w->fin_keys, jb->stream);
    kn_argv_take(&w->fin_keys, kn_key_bc(d->prefix, jb->bcast, ""));
    kn_argv_take(&w->fin_keys, kn_key_bc(d->prefix, jb->bcast, ":r"));
    kn_argv_add(&w->fin_args, jb->entry);
    kn_argv_add(&w->fin_args, jb->fin_state);
    kn_argv_add(&w->fin_args, jb->fin_detail);
    kn_argv_add(&w->fin_args, jb->bcast);
    /* A delivered job's text is not sent (75 kB for a LINE multicast, each
     * byte of it hashed by Redis' Lua): the script reads it from the
     * stream entry in the rare case it needs it. */
    kn_argv_add(&w->fin_args,
                strcmp(jb->fin_state, "delivered") == 0 ? "" : jb->raw);
    kn_argv_addi(&w->fin_args, jb->fin_attempts);
    fin_records(&w->fin_args, jb);
    w->fin_jobs[w->nfin++] = jb;
}
