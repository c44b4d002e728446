/*
 * worker.h - the pure decisions of a channel worker (worker.c), apart so
 * that tests/unit/test_worker.c drives their edges without a loop or
 * Redis.  Internal to dispatcher/ (names kn__).
 */
#ifndef KN_DISPATCHER_WORKER_H
#define KN_DISPATCHER_WORKER_H

#include <stdint.h>

#include "adapters/adapter.h"

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
