/*
 * worker.h - a channel worker's insides, shared by worker.c (a job's life:
 * checks, sends, results, retries) and worker_read.c (reading its streams,
 * keeping the jobs in hand), and the worker's pure decisions, which
 * tests/unit/test_worker.c drives without a loop or Redis.  Internal to
 * dispatcher/ (names kn__); the daemon sees struct kn_worker only through
 * daemon.h.
 */
#ifndef KN_DISPATCHER_WORKER_H
#define KN_DISPATCHER_WORKER_H

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "adapters/adapter.h"
#include "common/argv.h"
#include "dispatcher/daemon.h"
#include "dispatcher/rate.h"
#include "dispatcher/route.h"

/* A job in hand, from its read to its recorded result. */
struct wjob {
    struct kn_worker *w;
    struct kn_job job;
    char *stream; /* full key */
    char *entry;  /* stream entry id */
    char *raw;    /* the job JSON as stored */
    json_t *j;    /* parsed; NULL when read plain (job_tree() makes it) */
    char *plain;  /* read plain: the copy rcpts, sealed, bindex point into */
    const char *bcast;
    size_t naddr;        /* recipients in this job (LINE multicast: many) */
    const char **sealed; /* per recipient */
    const char **bindex;
    const char **rcpts;
    char *fields;    /* "line:<bi>,line:<bi>..." */
    char *rcpt_list; /* "r-1,r-2..." in the same order */
    char *key;       /* "<bcast>/<job key>" */
    int n;           /* attempts before this one */
    /* The broadcast's expiry (ms); 0: none known. */
    int64_t expires_ms;
    struct kn__msg *msg;
    char **addr; /* plaintext, wiped after the send */
    char *link;  /* personal confirmation link */
    char *unsub; /* e-mail: one-click unsubscribe URL (issue 16) or NULL */
    /* e-mail: the guardian's my-page link (issue 16) */
    char *mypage;
    int claimed;
    int prio;                   /* 0 urgent, 1 normal */
    int probe;                  /* the breaker's probe of the relay */
    struct kn_adapter *via;     /* the adapter it was sent through */
    struct wjob *next;          /* ready queue */
    struct wjob *hprev, *hnext; /* every job in hand, oldest hold first */
    int64_t held_ms; /* monotonic: read, or its idle time last reset */
    int lost;        /* another process claimed it: not ours to send */
    /* Its final result, kept until recorded (a failed batch is recorded
     * again job by job). */
    const char *fin_state; /* a literal: "delivered", "failed", ... */
    char *fin_detail;
    int fin_attempts;
    char bref[24]; /* e-mail: its bounce reference, "" none (bounce.c) */
    /* The job's "lg" (a string of j), or NULL: the Japanese text. */
    const char *lang;
    int inl; /* KN_JOB_INLINE: no my-page foot, no unsubscribe link */
    /* KN_JOB_GROUPREC: a delivery may be recorded once (worker_finish.c);
     * fin_slow: recorded member by member after all */
    int grec, fin_slow;
    int carrier; /* e-mail: the address is at a carrier domain */
};

/*
 * bounce.c (issue 18).  kn__bounce_ref: give an e-mail job (one address,
 * decrypted) its VERP reference, jb->bref and jb->job.bounce_ref, and store
 * what it names (bref:<ref>, kept retention.delivery_days) unless neither
 * smtp.bounce_domain nor sendgrid.webhook_public_key is set.
 * kn__bounce_refused: the relay refused the job's address with 5xx at
 * RCPT: suppress it for the tenant (queue/lua/bounce.lua) and write the
 * detail to record ("5.1.1;1;rcpt 550") into out.
 */
void kn__bounce_ref(struct kn_daemon *d, struct wjob *jb);
void kn__bounce_refused(struct kn_daemon *d, struct wjob *jb,
                        const char *smtp_detail, char *out, size_t cap);

struct kn_worker {
    struct kn_daemon *d;
    enum kn_channel ch;
    const char *chname;
    struct kn_adapter ad;
    struct kn__route rt; /* breaker, failover adapter (rt.alt), pauses */
    char *route;
    struct kn_redis *blk;
    char *streams[2]; /* urgent, normal */
    size_t slots;     /* sends at once (the adapter's capacity) */
    size_t limit;     /* jobs in hand at most: 4 x slots */
    size_t busy;      /* jobs in hand: read, not yet recorded */
    size_t sending;   /* jobs in the main adapter */
    struct wjob *ready[2], *ready_tail[2]; /* checked, waiting for a slot */
    int reading, phase;
    long got, asked; /* entries this read cycle; asked of the last read */
    int started, closed;
    uv_timer_t again; /* read again after an error */
    uv_timer_t tick;  /* pause flags, rate-limit waits */
    int handles;      /* open at close time */
    struct kn__rates rates;
    /* Results that came in the same loop turn (FINISH_WAIT_MS), recorded
     * together in one call of the "finish" script. */
    struct kn_argv fin_keys, fin_args;
    struct wjob **fin_jobs;
    size_t nfin;
    uv_timer_t fin_timer;
    /* Jobs in hand, oldest first: their idle time in Redis is reset
     * (script "keep") so that no other process takes them over while
     * they wait here for a slot. */
    struct wjob *held, *held_tail;
    uv_timer_t keep_timer;
    int keeping; /* keep script calls in flight */
    /* A stream whose key cannot be read (wrong type): skipped until. */
    int64_t bad_until[2];
};

/* ---- worker.c ---- */

/* Take one stream entry (claimed: from a stopped consumer): parse it and
 * start its life. */
void kn__worker_take(struct kn_worker *w, const char *stream,
                     const redisReply *e, int claimed);

/* The job is out of our hands (recorded, or left pending): freed, its
 * slot free. */
void kn__worker_job_done(struct wjob *jb);

/* ---- worker_retry.c ---- */

/* A Redis step of the job failed (err: Redis' text, NULL no reply):
 * Redis' own trouble leaves it pending; a key of the wrong type
 * dead-letters it with a reason naming what to fix. */
void kn__worker_step_failed(struct wjob *jb, const char *what, const char *err);
/* Park the job for another attempt after delay_ms (count: whether this
 * was an attempt). */
void kn__worker_retry(struct wjob *jb, int64_t delay_ms, const char *detail,
                      int count);
/* policy preferred: enqueue the recipient's next channel ("fb"). */
void kn__worker_fall_back(struct wjob *jb);
/* Remember the job's addresses as dead: no job is made for them again. */
void kn__worker_mark_dead(struct wjob *jb);
/* A permanent failure: the DLQ, and the next channel if there is one. */
void kn__worker_fail(struct wjob *jb, const char *detail);
/* After a temporary failure (or a takeover): retry with backoff, or give
 * up (DLQ) when the attempts are used up, or expire. */
void kn__worker_retry_or_give_up(struct wjob *jb, int64_t retry_after,
                                 const char *detail);

/* ---- worker_finish.c ---- */

/* Results recorded in one script call at most. */
#define KN__FINISH_BATCH 128

/*
 * Record a final state: delivered, failed (also into the DLQ), expired,
 * cancelled or bounced, for every recipient of the job; the job leaves
 * its stream in the same atomic step, and is done once recorded.
 */
void kn__worker_finish(struct wjob *jb, const char *state, const char *detail);
/* Send the results collected so far (at close, or when the batch is full). */
void kn__worker_flush_finished(struct kn_worker *w);
/* The batch timer's callback (fin_timer). */
void kn__worker_on_fin_timer(uv_timer_t *t);

/* ---- worker_read.c ---- */

/* Read more jobs if there is room in hand (and none is being read). */
void kn__worker_fill(struct kn_worker *w);
/* The blocking connection's state changed (kn_redis_state_cb). */
void kn__worker_blk_state(struct kn_redis *r, int up, void *arg);
/* Timer: reset the idle time in Redis of the jobs held longest. */
void kn__worker_keep(uv_timer_t *t);
/* A job comes in hand / leaves it (the list of held jobs). */
void kn__worker_held_add(struct kn_worker *w, struct wjob *jb);
void kn__worker_held_del(struct kn_worker *w, struct wjob *jb);

/* ---- pure decisions (worker.c) ---- */

enum kn__retry_verdict {
    KN__RETRY_DONE,    /* delivered: nothing to retry */
    KN__RETRY_LATER,   /* park the job until retry_at */
    KN__RETRY_GIVE_UP, /* a permfail, or the attempts are used up: DLQ */
    KN__RETRY_EXPIRED, /* the retry would come after the expiry */
};

struct kn__retry {
    enum kn__retry_verdict verdict;
    int attempts;     /* attempts made, this one included */
    int64_t delay_ms; /* LATER: how long it waits */
    int64_t retry_at; /* LATER: now_ms + delay_ms (ms since the epoch) */
};

/*
 * What to do after an attempt that ended in st (a takeover from a stopped
 * worker counts as a tempfail), the job having been tried `tried` times
 * before it:
 *   1. delivered: DONE.  permfail: GIVE_UP at once.
 *   2. tempfail: the attempts (tried + 1) reach max_attempts: GIVE_UP.
 *   3. the delay is backoff_ms (drawn by the caller: full jitter), or the
 *      provider's retry_after_ms if longer; a job with an expiry
 *      (expires_ms > 0) whose retry would come at or after it: EXPIRED.
 *   4. otherwise LATER, at now_ms + delay.
 * Pure: the time and the random backoff come in as arguments.
 */
struct kn__retry kn__retry_decide(enum kn_status st, int tried,
                                  int64_t max_attempts, int64_t backoff_ms,
                                  int64_t retry_after_ms, int64_t expires_ms,
                                  int64_t now_ms);

#endif
