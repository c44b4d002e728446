/*
 * worker_retry.c - what becomes of a job that did not go through
 * (dispatcher/worker.h): parked for another attempt with backoff (the
 * retry script), given up (the DLQ) or expired, failed over to the
 * recipient's next channel (policy preferred), its dead addresses
 * remembered, and a Redis step of its own that failed.  The decisions are
 * kn__retry_decide's; worker.c sends.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/argv.h"
#include "common/kn.h"
#include "common/log.h"
#include "config/config.h"
#include "dispatcher/daemon.h"
#include "dispatcher/worker.h"
#include "model/job.h"
#include "queue/keys.h"
#include "queue/poison.h"
#include "queue/scripts.h"

/*
 * A step of this job failed with a Redis error: Redis' own trouble
 * leaves the job pending (taken over later, an attempt counted); an
 * error of the job's own (a key of its broadcast of the wrong type, which
 * the scripts name) dead-letters it with the reason, so it never comes
 * back.
 */
void kn__worker_step_failed(struct wjob *jb, const char *what, const char *err)
{
    char why[600];
    if (kn_poison_transient(err)) {
        kn_log(KN_LOG_WARN, "worker",
               "Redis failed; the job stays pending and is taken over later",
               "bc", jb->bcast, "job", jb->entry, "step", what, "error",
               err ? err : "no reply", NULL);
        kn__worker_job_done(jb);
        return;
    }
    snprintf(why, sizeof(why),
             "%s failed: Redis answered \"%.300s\"; a key of this broadcast "
             "holds the wrong type: cancel the broadcast or delete the stray "
             "key",
             what, err);
    kn__worker_finish(jb, "failed", why);
}

static void on_recorded(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct wjob *jb = arg;
    if (rep->type == REDIS_REPLY_ERROR) {
        kn_log(KN_LOG_ERROR, "worker", "parking a job for a retry failed",
               "error", rep->str, "bc", jb->bcast, "job", jb->entry, NULL);
        kn__worker_step_failed(jb, "parking the job for a retry", rep->str);
        return;
    }
    kn__worker_job_done(jb);
}

/*
 * The job's JSON tree, parsed from its text the first time it is needed
 * (a retry, a fallback): a job read plain (kn_job_read_plain) has none.
 * NULL only if the text does not parse, which a job read once cannot do.
 */
static json_t *job_tree(struct wjob *jb)
{
    if (jb->j == NULL)
        jb->j = json_loads(jb->raw, 0, NULL);
    return jb->j;
}

/*
 * Park the job for another attempt after delay_ms.  count: whether this
 * was an attempt (a job parked because its route is paused, or the relay
 * is down and it may not fail over, has not been tried).
 */
void kn__worker_retry(struct wjob *jb, int64_t delay_ms, const char *detail,
                      int count)
{
    struct kn_daemon *d = jb->w->d;
    struct kn_argv a;
    json_t *nj = job_tree(jb) ? json_deep_copy(jb->j) : NULL;
    if (nj == NULL)
        KN_PANIC("a job read once no longer parses");
    json_object_set_new(nj, KN_JOB_ATTEMPTS,
                        json_integer(jb->n + (count ? 1 : 0)));
    /* The members are "r|..." now: its copy is recorded member by member
     * (the script marks the group, so recording it once would lose). */
    json_object_del(nj, KN_JOB_GROUPREC);
    kn_argv_init(&a);
    kn_argv_add(&a, jb->stream);
    kn_argv_take(&a, kn__key(d, "retry"));
    kn_argv_take(&a, kn_key_bc(d->prefix, jb->bcast, ":r"));
    kn_argv_add(&a, KN_GROUP);
    kn_argv_add(&a, jb->entry);
    kn_argv_addi(&a, kn_now_ms() + delay_ms);
    kn_argv_take(&a, json_dumps(nj, JSON_COMPACT));
    kn_argv_add(&a, jb->fields);
    kn_argv_add(&a, jb->rcpt_list);
    kn_argv_add(&a, detail ? detail : "");
    json_decref(nj);
    kn_log(KN_LOG_INFO, "worker", "retry later", "bc", jb->bcast, "rcpt",
           jb->rcpts[0], "channel", jb->w->chname, "reason", detail, NULL);
    kn__eval_reliable(d, &kn_script_retry, on_recorded, jb, NULL, 3, &a);
}

static void on_fallback(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct kn_daemon *d = arg;
    if (rep->type == REDIS_REPLY_INTEGER && rep->integer == 1) {
        for (int c = 0; c < KN_CH__COUNT; c++) {
            if (d->workers[c])
                kn__worker_kick(d->workers[c]);
        }
    }
}

/*
 * policy preferred: the recipient's channel failed for good, so enqueue
 * the next channel it has (the job carries its sealed contacts in "fb").
 */
void kn__worker_fall_back(struct wjob *jb)
{
    struct kn_daemon *d = jb->w->d;
    json_t *fb = json_object_get(job_tree(jb), KN_JOB_FALLBACK), *next, *rest,
           *nj;
    const char *c, *a, *i;
    char q[32], field[96];
    struct kn_argv av;
    int ch;
    if (!json_is_array(fb) || json_array_size(fb) == 0 || jb->naddr != 1)
        return;
    next = json_array_get(fb, 0);
    c = json_string_value(json_object_get(next, KN_JOB_FB_CHANNEL));
    a = json_string_value(json_object_get(next, KN_JOB_ADDR));
    i = json_string_value(json_object_get(next, KN_JOB_INDEX));
    if (c == NULL || a == NULL || i == NULL || (ch = kn_channel_parse(c)) < 0)
        return;
    snprintf(q, sizeof(q), "%s:%s", c, jb->prio == 0 ? "urgent" : "normal");
    snprintf(field, sizeof(field), "%s:%s", c, i);
    rest = json_array();
    for (size_t k = 1; k < json_array_size(fb); k++)
        json_array_append(rest, json_array_get(fb, k));
    nj = kn_job_new(jb->bcast, q, field, kn_now_ms(), jb->expires_ms,
                    json_string_value(json_object_get(next, KN_JOB_PLATFORM)),
                    rest);
    kn_job_set_rcpt(nj, jb->rcpts[0], a, i);
    if (json_is_integer(json_object_get(jb->j, KN_JOB_GUARDIAN)))
        json_object_set(nj, KN_JOB_GUARDIAN,
                        json_object_get(jb->j, KN_JOB_GUARDIAN));
    if (jb->lang != NULL) /* the same reader on the next channel */
        json_object_set_new(nj, KN_JOB_LANG, json_string(jb->lang));
    if (jb->inl) /* still an inline recipient: no my page, no unsubscribe */
        json_object_set_new(nj, KN_JOB_INLINE, json_true());
    json_decref(rest);
    kn_argv_init(&av);
    kn_argv_take(&av, kn_key_bc(d->prefix, jb->bcast, ""));
    kn_argv_take(&av, kn_key_bc(d->prefix, jb->bcast, ":r"));
    kn_argv_take(&av, kn__key(d, "q:%s", q));
    kn_argv_add(&av, field);
    kn_argv_add(&av, jb->rcpts[0]);
    kn_argv_take(&av, json_dumps(nj, JSON_COMPACT));
    json_decref(nj);
    kn_log(KN_LOG_INFO, "worker", "falling back to the next channel", "bc",
           jb->bcast, "rcpt", jb->rcpts[0], "from", jb->w->chname, "to", c,
           NULL);
    kn__eval_reliable(d, &kn_script_fallback, on_fallback, d, NULL, 3, &av);
}

static void on_marked(struct kn_redis *r, redisReply *rep, void *arg)
{
}

/* Remember dead addresses: no job is made for them again. */
void kn__worker_mark_dead(struct wjob *jb)
{
    struct kn_daemon *d = jb->w->d;
    struct kn_argv a;
    kn_argv_init(&a);
    kn_argv_take(&a, kn__key(d, "dead:%s", jb->w->chname));
    kn_argv_add(&a, "dead");
    for (size_t i = 0; i < jb->naddr; i++)
        kn_argv_add(&a, jb->bindex[i]);
    kn__eval_reliable(d, &kn_script_mark_dead, on_marked, NULL, NULL, 1, &a);
}

/* A permanent failure: the DLQ, and the next channel if there is one. */
void kn__worker_fail(struct wjob *jb, const char *detail)
{
    kn__worker_fall_back(jb);
    kn__worker_finish(jb, "failed", detail);
}

struct kn__retry kn__retry_decide(enum kn_status st, int tried,
                                  int64_t max_attempts, int64_t backoff_ms,
                                  int64_t retry_after_ms, int64_t expires_ms,
                                  int64_t now_ms)
{
    struct kn__retry d = {.attempts = tried + 1};
    int64_t delay = backoff_ms;
    if (st == KN_DELIVERED) {
        d.verdict = KN__RETRY_DONE;
        return d;
    }
    if (st == KN_PERMFAIL || d.attempts >= max_attempts) {
        d.verdict = KN__RETRY_GIVE_UP;
        return d;
    }
    if (retry_after_ms > delay)
        delay = retry_after_ms;
    if (expires_ms > 0 && now_ms + delay >= expires_ms) {
        d.verdict = KN__RETRY_EXPIRED;
        return d;
    }
    d.verdict = KN__RETRY_LATER;
    d.delay_ms = delay;
    d.retry_at = now_ms + delay;
    return d;
}

/*
 * After a temporary failure (or a reclaim): retry with backoff, unless the
 * attempts are used up (DLQ) or the retry would come after the expiry.
 */
void kn__worker_retry_or_give_up(struct wjob *jb, int64_t retry_after,
                                 const char *detail)
{
    struct kn_daemon *d = jb->w->d;
    struct kn__retry rd;
    char why[400];
    rd = kn__retry_decide(KN_TEMPFAIL, jb->n, d->cfg->max_attempts,
                          kn__backoff_ms(d, jb->n + 1), retry_after,
                          jb->expires_ms, kn_now_ms());
    switch (rd.verdict) {
    case KN__RETRY_GIVE_UP:
        snprintf(why, sizeof(why), "gave up after %d attempts: %s", rd.attempts,
                 detail ? detail : "");
        kn__worker_fail(jb, why);
        break;
    case KN__RETRY_EXPIRED:
        snprintf(why, sizeof(why), "expired while retrying: %s",
                 detail ? detail : "");
        kn__worker_finish(jb, "expired", why);
        break;
    case KN__RETRY_LATER:
        kn__worker_retry(jb, rd.delay_ms, detail, 1);
        break;
    case KN__RETRY_DONE:
        break;
    }
}
