/*
 * redis_uv.h - one managed Redis connection on the uv loop: hiredis 0.14
 * async with kairan's own libuv glue, command timeouts, reconnect with
 * backoff, and Lua scripts by SHA with a fallback on NOSCRIPT.
 *
 * Why not hiredis' adapters/libuv.h (0.14.1): it returns early on a poll
 * error, so a refused or reset connection is never noticed and every
 * command waits forever; and 0.14 has no command timeouts.  Here a poll
 * error tears the connection down, every command carries a deadline
 * checked by a uv timer, and on expiry the context is freed (all pending
 * callbacks get a NULL reply) and the connection is re-established with
 * exponential backoff and full jitter.
 */
#ifndef KN_QUEUE_REDIS_UV_H
#define KN_QUEUE_REDIS_UV_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct kn_redis;
struct kn_sentinel;

/*
 * A reply callback.  reply is NULL when the command failed without a reply
 * (timeout, connection lost, shut down); an error reply is a
 * REDIS_REPLY_ERROR.  The reply belongs to hiredis and is valid only
 * during the call.
 */
typedef void kn_redis_cb(struct kn_redis *r, redisReply *reply, void *arg);

/* Called with up = 1 once connected and ready (AUTH, SELECT, PING done),
 * with up = 0 when the connection is lost. */
typedef void kn_redis_state_cb(struct kn_redis *r, int up, void *arg);

struct kn_redis_opts {
    const char *host;
    int port;
    int db;
    const char *user;     /* an ACL user (AUTH user password); NULL: none */
    const char *password; /* NULL for none */
    int64_t timeout_ms;   /* connect and per-command */
    const char *name;     /* for logs: "cmd", "block" */
    /* Not NULL: host and port are ignored; before every (re)connect the
     * primary is asked of these sentinels (in the thread pool), and the
     * connection is used only once ROLE says master (queue/sentinel.h).
     * Borrowed: it must outlive the connection. */
    struct kn_sentinel *sentinel;
};

struct kn_redis *kn_redis_new(uv_loop_t *loop, const struct kn_redis_opts *o,
                              kn_redis_state_cb *state, void *arg);

/* Begin connecting (and keep reconnecting until kn_redis_close). */
void kn_redis_start(struct kn_redis *r);

/* 1 when ready for commands. */
int kn_redis_up(const struct kn_redis *r);

/* Times the connection was (re)established after the first time. */
uint64_t kn_redis_reconnects(const struct kn_redis *r);

/* Last connection error text ("" if none), for operators. */
const char *kn_redis_last_error(const struct kn_redis *r);

/*
 * Send a command given as argv.  extra_ms lengthens this command's deadline
 * (for BLOCK).  Returns 0 (cb will be called exactly once) or KN_ECLOSED
 * when not connected (cb is not called).
 */
int kn_redis_argv(struct kn_redis *r, kn_redis_cb *cb, void *arg,
                  int64_t extra_ms, int argc, const char **argv,
                  const size_t *lens);

/* printf-style (hiredis format: %s, %b, %d...). Same return as above. */
int kn_redis_cmd(struct kn_redis *r, kn_redis_cb *cb, void *arg,
                 const char *fmt, ...);

struct kn_redis_script {
    const char *name;
    const char *src;
    char sha[41]; /* filled by kn_redis_script_init */
};

/* Compute the script's SHA-1 (once, before use). */
void kn_redis_script_init(struct kn_redis_script *s);

/*
 * EVALSHA the script with nkeys keys followed by args (all in argv); on a
 * NOSCRIPT reply (Redis restarted or flushed its scripts) it is sent again
 * as EVAL with the source, transparently.  Same return as kn_redis_argv.
 */
int kn_redis_eval(struct kn_redis *r, const struct kn_redis_script *s,
                  kn_redis_cb *cb, void *arg, int nkeys, int argc,
                  const char **argv, const size_t *lens);

/*
 * Stop: fail every pending command (NULL replies), close the socket and
 * free r once its handles are closed.  No callback runs after this call
 * returns except those NULL replies, which run inside it.
 */
void kn_redis_close(struct kn_redis *r);

/*
 * Drop the connection now (pending commands get NULL replies) and connect
 * again soon, asking the sentinels again first: the primary changed.
 * Nothing happens to a closed connection.
 */
void kn_redis_reset(struct kn_redis *r, const char *why);

/*
 * SUBSCRIBE to channel on a ready connection: cb is called with every
 * message (and first with the subscribe confirmation), and once with
 * NULL when the connection ends; subscribe again when it is up again.
 * The connection is then good for nothing else.  Returns 0 or
 * KN_ECLOSED.
 */
int kn_redis_subscribe(struct kn_redis *r, const char *channel, kn_redis_cb *cb,
                       void *arg);

/* Helpers for replies. */
int kn_reply_is_error(const redisReply *rep, const char *prefix);

#endif
