/*
 * submit.h - handing a parsed broadcast to Redis: the argument list of the
 * submit script (queue/scripts.c) with its key names built here, in the
 * queue layer, from the record model/broadcast.c makes.
 */
#ifndef KN_QUEUE_SUBMIT_H
#define KN_QUEUE_SUBMIT_H

struct kn_argv;
struct kn_broadcast;
struct kn_keyring;

/* How many of the submit script's arguments are keys. */
#define KN_SUBMIT_NKEYS 8

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
 */
void kn_broadcast_submit_call(const struct kn_broadcast *b,
                              const struct kn_keyring *kr, const char *prefix,
                              const char *const *extra, struct kn_argv *a);

#endif
