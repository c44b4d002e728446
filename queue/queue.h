/*
 * queue.h - the queue's stream operations, as functions over redis_uv:
 * consumer groups, reads (XREADGROUP), claims of stopped consumers
 * (XAUTOCLAIM), the end of an entry (XACK + XDEL), the dead-letter queue,
 * the cleanup of idle consumers, and script calls kept while Redis is
 * unreachable.  The callers (kairand's expander and workers) keep their
 * own scheduling; what a function needs is passed to it: the connection,
 * the key prefix, the consumer name, a callback.
 *
 * Every stream is read by one group, KN_QUEUE_GROUP; the streams are the
 * broadcasts stream and the KN_QUEUE_STREAMS job streams (queue/scripts.h).
 */
#ifndef KN_QUEUE_QUEUE_H
#define KN_QUEUE_QUEUE_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "common/argv.h"
#include "queue/redis_uv.h"

#define KN_QUEUE_GROUP "kairand"

/*
 * Create the group on every stream (XGROUP CREATE ... 0 MKSTREAM;
 * idempotent); then cb(arg), unless a group could not be made (logged).
 * A stream key of the wrong type is logged and does not hold the others.
 */
void kn_queue_ensure_groups(struct kn_redis *r, const char *prefix,
                            void (*cb)(void *), void *arg);

/*
 * XREADGROUP GROUP kairand <consumer> COUNT <count> [BLOCK <block_ms>]
 * STREAMS <streams...> > ...; block_ms < 0: no BLOCK.  The command's
 * deadline is lengthened by block_ms.  Same return as kn_redis_argv.
 */
int kn_queue_read(struct kn_redis *r, const char *consumer, const char *count,
                  int64_t block_ms, int nstreams, const char *const *streams,
                  kn_redis_cb *cb, void *arg);

/*
 * XAUTOCLAIM <stream> kairand <consumer> <idle_ms> 0-0 COUNT 50: entries
 * of stopped consumers idle that long.  Same return as kn_redis_cmd.
 */
int kn_queue_claim(struct kn_redis *r, const char *stream, const char *consumer,
                   int64_t idle_ms, kn_redis_cb *cb, void *arg);

/*
 * Keep an entry this consumer holds: XCLAIM <stream> kairand <consumer> 0
 * <id> JUSTID resets its idle time, so that no other consumer takes over a
 * long but healthy piece of work.  The reply is ignored.
 */
void kn_queue_keep(struct kn_redis *r, const char *stream, const char *consumer,
                   const char *id);

/*
 * The entry is done: MULTI, XACK, XDEL (and DEL also_del when not NULL),
 * EXEC; cb gets EXEC's reply.  Same return as kn_redis_cmd (of EXEC).
 */
int kn_queue_ack_del(struct kn_redis *r, const char *stream, const char *id,
                     const char *also_del, kn_redis_cb *cb, void *arg);

/*
 * Park an unreadable entry in the DLQ (<prefix>dlq) and let it leave its
 * stream, in one transaction (XADD dlq, XACK, XDEL).  raw (may be NULL):
 * the entry's job or masked broadcast; its "b" and "tenant" are recorded.
 */
void kn_queue_dead_letter(struct kn_redis *r, const char *prefix,
                          const char *stream, const char *id, const char *raw,
                          size_t rawlen, const char *reason);

/*
 * Remove consumers (of any process) idle for a day whose pending list is
 * empty, on every stream (XINFO CONSUMERS, XGROUP DELCONSUMER).
 */
void kn_queue_consumers_cleanup(struct kn_redis *r, const char *prefix);

/* A stream entry ([id, [f, v, ...]]) field value, or NULL. */
const redisReply *kn_queue_entry_field(const redisReply *entry, const char *f);

/*
 * Script calls that must not be lost (results): a call that cannot be sent,
 * or whose connection is lost before it answers, is kept and sent again by
 * kn_queue_reliable_flush (when Redis is back).  The scripts are
 * idempotent, so a call that did run is harmless to run again.
 */
struct kn_queue_pending;
struct kn_queue_reliable {
    struct kn_redis *r;
    struct kn_queue_pending *kept;
    size_t nkept;
};

/* Run s on q->r; cb may get an error reply, never NULL.  Takes args' strings
 * (args is left empty).  drop (may be NULL) frees arg if the call is
 * dropped unanswered (kn_queue_reliable_drop): for an arg that only the
 * call holds. */
typedef void kn_queue_drop_fn(void *arg);
void kn_queue_eval_reliable(struct kn_queue_reliable *q,
                            const struct kn_redis_script *s, kn_redis_cb *cb,
                            void *arg, kn_queue_drop_fn *drop, int nkeys,
                            struct kn_argv *args);

/* Send the kept calls again; returns how many there were. */
size_t kn_queue_reliable_flush(struct kn_queue_reliable *q);

/* Drop the kept calls (shutting down: their entries stay pending); each
 * one's drop function frees its arg. */
void kn_queue_reliable_drop(struct kn_queue_reliable *q);

#endif
