/*
 * submit.h - handing a parsed broadcast to Redis: the argument list of the
 * submit script (queue/scripts.c) with its key names built here, in the
 * queue layer, from the record model/broadcast.c makes.
 */
#ifndef KN_QUEUE_SUBMIT_H
#define KN_QUEUE_SUBMIT_H

#include <hiredis/hiredis.h>

struct kn_argv;
struct kn_broadcast;
struct kn_keyring;

/* How many of the submit script's arguments are keys. */
#define KN_SUBMIT_NKEYS 9

/* An inline audience of this many entries or more is sent as a
 * transaction (struct kn_submit_tx), in RPUSH pages of KN_SUBMIT_PAGE. */
#define KN_SUBMIT_STAGE_MIN 1000
#define KN_SUBMIT_PAGE      1000

/*
 * A large submit as one MULTI ... EXEC transaction: MULTI, DEL of the
 * staging list bc:<id>:aud_in, RPUSH pages of the sealed audience to it,
 * EVAL of the submit script (which checks the list's length and renames it
 * to bc:<id>:aud, or deletes it when it stores nothing), EXEC.  A script's
 * ARGV costs Redis about 2 us per entry (every argument becomes a Lua
 * string, then a Redis string again for RPUSH): 0.2-0.45 s of one
 * single-threaded Redis for 100,000 recipients, against 0.06-0.12 s for the
 * RPUSHes.  MULTI makes it all or nothing: a client that dies before EXEC
 * leaves nothing behind, and EVAL (not EVALSHA) cannot fail NOSCRIPT after
 * the list is written.  cmd[0 .. n): the commands in order; EXEC's answer
 * is an array whose last element is the script's answer
 * (kn_submit_tx_answer).
 */
struct kn_submit_tx {
    struct kn_argv *cmd;
    size_t n;
};

/*
 * The whole argument list of the submit script (queue/lua/submit.lua: its
 * KN_SUBMIT_NKEYS keys under prefix, then name, now, idempotency key, the hash
 * fields, the sealed audience) appended to a.  b->id (the name) must be set;
 * b->key may be NULL (no idempotency).  extra: more field/value pairs for the
 * hash (NULL- terminated), e.g. the submitting API token.  Every producer
 * (kairanctl, the HTTP API, the expander for raw XADDs) stores through this.
 * The script answers {1, name} (stored), {0, name} (already there) or
 * {2, reason} (refused: a category that is not the tenant's; nothing
 * written).
 *
 * tx: NULL, or where a large audience's transaction goes (see above): then
 * tx->n > 0 and a is left empty; send tx instead of evaluating a.  With a
 * small audience, tx->n is 0 and a is filled as without tx.
 */
void kn_broadcast_submit_call(const struct kn_broadcast *b,
                              const struct kn_keyring *kr, const char *prefix,
                              const char *const *extra, struct kn_argv *a,
                              struct kn_submit_tx *tx);

/* The script's answer inside EXEC's answer to a kn_submit_tx (borrowed
 * from rep), or rep itself when it is not an array (an error, NULL). */
const redisReply *kn_submit_tx_answer(const redisReply *rep);

/* Free tx's commands, wiping them first (they hold sealed addresses). */
void kn_submit_tx_free(struct kn_submit_tx *tx);

#endif
