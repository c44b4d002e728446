/*
 * poison.h - when a reader of a stream or zset gives up on an entry.
 *
 * Every reader of kairan's streams (the expander, the workers) retries an
 * entry that fails, but only a bounded number of times, and never at the
 * head of its stream: between attempts the entry waits aside while the
 * reader goes on with the next ones.  After KN_POISON_MAX failures that
 * are the entry's own (a key of the wrong type, a script error on its
 * data) the entry is parked (a broadcast `rejected`, a job in the DLQ)
 * with a reason a person can act on.  Failures of Redis itself (out of
 * memory, loading, a failover, the connection lost) are not the entry's
 * fault: they are retried without being counted, since every entry fails
 * alike and none is ahead of another.
 *
 * Pure functions, no I/O: the callers count failures (in Redis, see
 * kn_script_failed) and act on the verdict.
 */
#ifndef KN_QUEUE_POISON_H
#define KN_QUEUE_POISON_H

#include <stddef.h>
#include <stdint.h>

/* Failures of an entry's own after which it is parked. */
#define KN_POISON_MAX 5
/* First delay after a failure; doubled each time (250, 500, 1000, 2000). */
#define KN_POISON_BASE_MS 250
/* Delay before trying again after a failure of Redis itself. */
#define KN_POISON_TRANSIENT_MS 1000
/* How long a failure count is kept in Redis (then it starts over). */
#define KN_POISON_TTL_MS (24 * 3600 * 1000LL)

struct kn_poison_verdict {
    int park;         /* 1: give up on the entry now */
    int counted;      /* 1: this failure counts against the entry */
    int64_t delay_ms; /* when not parked: try again after this long */
};

/*
 * 1 if the Redis error text (an error reply, as hiredis gives it) is a
 * failure of Redis as a whole rather than of one entry: OOM, LOADING,
 * BUSY, READONLY, MASTERDOWN, MISCONF, NOREPLICAS, TRYAGAIN, CLUSTERDOWN,
 * NOSCRIPT.  NULL (no reply: the connection was lost) is transient too.
 */
int kn_poison_transient(const char *err);

/*
 * What to do after a failure of an entry that failed `failures` times
 * before (counted, 0 the first time) with the error text err (NULL: no
 * reply).  A transient error is never counted and never parks; any other
 * error is the entry's failures + 1st: parked when that reaches
 * KN_POISON_MAX, else tried again after KN_POISON_BASE_MS << failures.
 */
struct kn_poison_verdict kn_poison_decide(int failures, const char *err);

/*
 * 1 if a key of Redis type `have` ("string", "hash", "list", "set",
 * "zset", "stream", "none") is not where kairan keeps one of `want` (a
 * "|"-separated list such as "hash" or "stream|none").  A missing key
 * ("none") is never a mismatch.
 */
int kn_poison_mismatch(const char *have, const char *want);

/*
 * The reason of a parked entry, in buf (always terminated).  key: the key
 * found to hold the wrong type (have: its type, want: what kairan keeps
 * there) or NULL when none was found; err: the last Redis error (only its
 * first line, at most 160 printable characters, is kept: Redis errors do
 * not carry values, and nothing else of the entry is echoed); what: the
 * step that failed ("expanding the broadcast"); attempts: failures
 * counted.  Returns buf.
 */
char *kn_poison_reason(char *buf, size_t n, const char *what, const char *err,
                       const char *key, const char *have, const char *want,
                       int attempts);

#endif
