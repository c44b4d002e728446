/*
 * sentinel.h - finding the Redis primary through Redis Sentinel, as the
 * Sentinel client guidelines say, for every connection kairan makes
 * (hiredis 0.14 has no Sentinel support).
 *
 *   1. ask each sentinel in turn, with a short timeout, and move the first
 *      that answers to the front of the list;
 *   2. SENTINEL get-master-addr-by-name <redis.master_name>;
 *   3. connect to that address and check that ROLE says master; if not,
 *      the sentinel that named it goes to the back of the list and the
 *      discovery starts again after a pause;
 *   4. discover again before every reconnect;
 *   5. kairand also subscribes to +switch-master on every sentinel and
 *      drops its connections at once when the primary changes
 *      (kn_sentinel_watch).
 *
 * Sentinels are asked with AUTH (redis.sentinel_password_file): a sentinel
 * that anyone could start could name a primary of its own.
 *
 * The discovery itself is blocking (hiredis' synchronous API with short
 * timeouts): kairanctl calls it directly, kairand from the libuv thread
 * pool (queue/redis_uv.c), never on the loop.
 */
#ifndef KN_QUEUE_SENTINEL_H
#define KN_QUEUE_SENTINEL_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct kn_config;
struct kn_redis;
struct kn_sentinel;

/*
 * The sentinels of cfg (redis.sentinels, master_name, the sentinel
 * password, timeout_ms), or NULL when redis.sentinels is not set.  The
 * caller frees it with kn_sentinel_free after every connection using it
 * is closed.  The config must have passed kn_config_load.
 */
struct kn_sentinel *kn_sentinel_new(const struct kn_config *cfg);

/* Stop watching (kn_sentinel_unwatch) first.  NULL is fine. */
void kn_sentinel_free(struct kn_sentinel *s);

/*
 * Steps 1 and 2: ask the sentinels in turn for the primary's address.
 * Blocking, safe from any thread.  Returns 0 with host (hostsz bytes) and
 * *port, or KN_EAGAIN with why (no sentinel answered, or none knows the
 * name: try again later) or KN_EINVAL (a sentinel answered something that
 * is not an address).  *from (may be NULL) gets the index of the sentinel
 * that answered, for kn_sentinel_distrust.
 */
int kn_sentinel_resolve(struct kn_sentinel *s, char *host, size_t hostsz,
                        int *port, int *from, char *why, size_t whysz);

/*
 * The sentinel that answered (from kn_sentinel_resolve) named an address
 * that is not a primary: move it to the back, so that the next discovery
 * asks the others first.
 */
void kn_sentinel_distrust(struct kn_sentinel *s, int from);

/* Step 3: 1 when a ROLE reply says "master". */
int kn_sentinel_role_is_master(const redisReply *rep);

/* The short timeout for one sentinel, in ms. */
int64_t kn_sentinel_timeout_ms(const struct kn_sentinel *s);

/* "sentinel 2 of 3 (127.0.0.1:26379)": which one, for messages. */
void kn_sentinel_describe(struct kn_sentinel *s, int from, char *buf,
                          size_t len);

/*
 * A synchronous, ready connection to the primary (AUTH and SELECT done):
 * through the sentinels when s is not NULL (steps 1-3, trying again
 * until timeout_ms has passed), else to redis.url.  Returns the context
 * (the caller redisFree()s it) or NULL with why: never a password, and
 * an address only as host:port.
 */
redisContext *kn_redis_connect_sync(const struct kn_config *cfg,
                                    struct kn_sentinel *s, int64_t timeout_ms,
                                    char *why, size_t whysz);

/*
 * Step 4, kairand: connections opened with this sentinel (struct
 * kn_redis_opts.sentinel) are attached to it; on a +switch-master for
 * our name each is dropped and discovers the primary again.
 */
void kn__sentinel_attach(struct kn_sentinel *s, struct kn_redis *r);
void kn__sentinel_detach(struct kn_sentinel *s, struct kn_redis *r);

/*
 * Step 5: subscribe to +switch-master on every sentinel, on loop (one
 * connection per sentinel, reconnecting on its own).  kn_sentinel_unwatch
 * closes them.
 */
void kn_sentinel_watch(struct kn_sentinel *s, uv_loop_t *loop);
void kn_sentinel_unwatch(struct kn_sentinel *s);

/* +switch-master messages seen for our name (for tests and metrics). */
uint64_t kn_sentinel_switches(const struct kn_sentinel *s);

#endif
