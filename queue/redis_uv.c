/*
 * redis_uv.c - hiredis 0.14 async context on libuv, with deadlines and
 * reconnects.  See redis_uv.h for why this exists.
 *
 * State machine: DOWN -> CONNECTING -> HANDSHAKE (AUTH/SELECT/PING) -> UP,
 * and back to DOWN on any error, from where a backoff timer starts the next
 * attempt.  Every change goes through set_state(), which logs it.  With
 * sentinels (queue/sentinel.h) each attempt begins in RESOLVING: the
 * primary's address is asked of them in the thread pool, and the
 * handshake ends with ROLE, which must say master.
 *
 * Commands are kept in a FIFO in the order they were written; Redis answers
 * in order, so only the head's deadline needs watching.  A watchdog timer
 * ticks while commands are outstanding.
 */
#include "redis_uv.h"

#include <hiredis/async.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/kn.h"
#include "common/buf.h"
#include "common/codec.h"
#include "common/log.h"
#include "queue/sentinel.h"

enum rstate { R_DOWN, R_CONNECTING, R_HANDSHAKE, R_UP, R_CLOSED, R_RESOLVING };

static const char *rstate_name(enum rstate s)
{
    static const char *names[] = {"down", "connecting", "handshake",
                                  "up",   "closed",     "resolving"};
    return names[s];
}

struct rcmd {
    struct kn_redis *r;
    kn_redis_cb *cb;
    void *arg;
    int64_t deadline; /* monotonic ms */
    struct rcmd *next, *prev;
    int sub; /* a SUBSCRIBE: not in the FIFO, called for every message */
    /* For EVALSHA: enough to resend as EVAL on NOSCRIPT.  The command as
     * formatted for the wire (one buffer, not a copy per argument: a LINE
     * multicast's calls have a thousand), and where its arguments after
     * the SHA begin. */
    const struct kn_redis_script *script;
    int argc;
    char *fmt;
    size_t fmt_len, rest;
};

struct uvev {
    uv_poll_t poll;
    int events;   /* what uv polls for now */
    int flushing; /* inside the deferred write */
    struct kn_redis *r;
    redisAsyncContext *ac;
};

struct kn_redis {
    uv_loop_t *loop;
    char *host, *user, *password, *name;
    int port, db;
    int64_t timeout_ms;
    kn_redis_state_cb *state_cb;
    void *state_arg;
    enum rstate state;
    redisAsyncContext *ac;
    int64_t connect_deadline;
    uv_timer_t watchdog;  /* deadlines */
    uv_timer_t reconnect; /* backoff */
    uv_prepare_t flush;   /* deferred writes, once per loop turn */
    int flush_pending;
    int attempts; /* failed attempts in a row */
    uint64_t connects;
    struct rcmd *head, *tail;
    int handles_open;
    char last_error[400];
    /* Sentinel discovery (NULL: host and port are fixed). */
    struct kn_sentinel *sentinel;
    uv_work_t resolve; /* in flight while resolving = 1 */
    int resolving;
    int reset_pending; /* a reset came during the discovery: ask again */
    int from;          /* the sentinel that named host:port */
    int res_rc, res_port, res_from;
    char res_host[256], res_why[300];
};

static void teardown(struct kn_redis *r, const char *why);

static void set_state(struct kn_redis *r, enum rstate s, const char *why)
{
    enum rstate old = r->state;
    if (old == s)
        return;
    r->state = s;
    if (s == R_UP || old == R_UP || s == R_CLOSED)
        kn_log(s == R_UP || s == R_CLOSED ? KN_LOG_INFO : KN_LOG_WARN, "redis",
               s == R_UP ? "connected" : "state change", "conn", r->name,
               "from", rstate_name(old), "to", rstate_name(s), "why", why,
               NULL);
    else
        kn_log(KN_LOG_DEBUG, "redis", "state change", "conn", r->name, "from",
               rstate_name(old), "to", rstate_name(s), "why", why, NULL);
    if (s == R_UP && r->state_cb)
        r->state_cb(r, 1, r->state_arg);
    else if (old == R_UP && r->state_cb)
        r->state_cb(r, 0, r->state_arg);
}

/* ---- the libuv glue (replaces hiredis adapters/libuv.h) ---- */

static void ev_poll(uv_poll_t *h, int status, int events)
{
    struct uvev *e = kn_container_of(h, struct uvev, poll);
    struct kn_redis *r = e->r;
    if (e->ac == NULL)
        return;
    if (status < 0) {
        /* The socket is broken (refused, reset): hiredis' own adapter
         * drops this and hangs; we tear the connection down, with the
         * socket's own error as the reason. */
        char why[160];
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(e->ac->c.fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
            err != 0)
            snprintf(why, sizeof(why), "%s:%d: %s", r->host, r->port,
                     strerror(err));
        else
            snprintf(why, sizeof(why), "%s:%d: socket error: %s", r->host,
                     r->port, uv_strerror(status));
        teardown(r, why);
        return;
    }
    if (events & UV_READABLE)
        redisAsyncHandleRead(e->ac);
    /* The read may have freed the context (disconnect). */
    if (e->ac != NULL && (events & UV_WRITABLE))
        redisAsyncHandleWrite(e->ac);
}

static void ev_update(struct uvev *e, int events)
{
    /* uv_poll_start deletes and re-adds the descriptor in epoll every
     * time: only call it when the mask really changes. */
    if (events == e->events)
        return;
    e->events = events;
    if (events)
        uv_poll_start(&e->poll, events, ev_poll);
    else
        uv_poll_stop(&e->poll);
}

static void ev_add_read(void *p)
{
    struct uvev *e = p;
    ev_update(e, e->events | UV_READABLE);
}

static void ev_del_read(void *p)
{
    struct uvev *e = p;
    ev_update(e, e->events & ~UV_READABLE);
}

/*
 * hiredis asks to be told when the socket is writable each time commands
 * are queued.  A connected socket almost always is, so instead of polling
 * for it (and paying two epoll_ctl calls each way) the write is deferred
 * to a prepare callback, which runs once per loop turn just before the
 * loop would block: every command queued in that turn goes out in one
 * write.  Only when that write cannot finish, or while connecting, does
 * it poll for writability.
 */
static void ev_add_write(void *p)
{
    struct uvev *e = p;
    if (e->flushing || !(e->ac->c.flags & REDIS_CONNECTED)) {
        ev_update(e, e->events | UV_WRITABLE);
        return;
    }
    e->r->flush_pending = 1;
}

static void ev_del_write(void *p)
{
    struct uvev *e = p;
    ev_update(e, e->events & ~UV_WRITABLE);
}

static void on_flush(uv_prepare_t *h)
{
    struct kn_redis *r = kn_container_of(h, struct kn_redis, flush);
    struct uvev *e;
    if (!r->flush_pending || r->ac == NULL)
        return;
    r->flush_pending = 0;
    e = r->ac->ev.data;
    e->flushing = 1;
    redisAsyncHandleWrite(r->ac);
    /* The write may have failed and freed the context. */
    if (r->ac != NULL && r->ac->ev.data == e)
        e->flushing = 0;
}

static void maybe_free(struct kn_redis *r);

static void ev_closed(uv_handle_t *h)
{
    struct uvev *e = kn_container_of(h, struct uvev, poll);
    struct kn_redis *r = e->r;
    free(e);
    r->handles_open--;
    maybe_free(r);
}

static void ev_cleanup(void *p)
{
    struct uvev *e = p;
    e->ac = NULL;
    uv_poll_stop(&e->poll);
    uv_close((uv_handle_t *)&e->poll, ev_closed);
}

static int ev_attach(struct kn_redis *r, redisAsyncContext *ac)
{
    struct uvev *e = kn_xcalloc(1, sizeof(*e));
    if (uv_poll_init_socket(r->loop, &e->poll, ac->c.fd) != 0) {
        free(e);
        return KN_EIO;
    }
    r->handles_open++;
    e->r = r;
    e->ac = ac;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    ac->ev.data = e;
    return 0;
}

/* ---- command bookkeeping ---- */

static void cmd_unlink(struct kn_redis *r, struct rcmd *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        r->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        r->tail = c->prev;
}

static void cmd_free(struct rcmd *c)
{
    if (c->fmt != NULL)
        redisFreeSdsCommand(c->fmt);
    free(c);
}

static int send_fmt(struct kn_redis *r, struct rcmd *c, const char *cmd,
                    size_t len);

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rcmd *c = priv;
    struct kn_redis *r = c->r;
    redisReply *rep = reply;
    if (c->sub) {
        /* hiredis calls a subscription for every message, and once with
         * NULL when the context is freed. */
        if (c->cb != NULL)
            c->cb(r, rep, c->arg);
        if (rep == NULL)
            cmd_free(c);
        return;
    }
    cmd_unlink(r, c);
    if (rep != NULL && c->script != NULL &&
        kn_reply_is_error(rep, "NOSCRIPT") && r->ac != NULL) {
        /* Redis lost its script cache (restart, SCRIPT FLUSH): send the
         * same call as EVAL with the source; the reply goes to the same
         * callback. */
        struct rcmd *again = kn_xcalloc(1, sizeof(*again));
        size_t srclen = strlen(c->script->src);
        struct kn_buf b;
        kn_buf_init(&b, 0);
        kn_buf_addf(&b, "*%d\r\n$4\r\nEVAL\r\n$%zu\r\n", c->argc, srclen);
        kn_buf_addn(&b, c->script->src, srclen);
        kn_buf_addn(&b, "\r\n", 2);
        kn_buf_addn(&b, c->fmt + c->rest, c->fmt_len - c->rest);
        kn_log(KN_LOG_DEBUG, "redis", "script not cached, sending as EVAL",
               "script", c->script->name, NULL);
        again->r = r;
        again->cb = c->cb;
        again->arg = c->arg;
        if (send_fmt(r, again, kn_buf_str(&b), kn_buf_len(&b)) < 0 &&
            c->cb != NULL)
            c->cb(r, NULL, c->arg);
        kn_buf_free(&b);
        cmd_free(c);
        return;
    }
    if (c->cb != NULL)
        c->cb(r, rep, c->arg);
    cmd_free(c);
}

/* c sent: the last in the FIFO, its deadline set. */
static void cmd_link(struct kn_redis *r, struct rcmd *c)
{
    c->deadline = kn_mono_ms() + r->timeout_ms;
    c->prev = r->tail;
    if (r->tail)
        r->tail->next = c;
    else
        r->head = c;
    r->tail = c;
}

static int send_argv(struct kn_redis *r, struct rcmd *c, int argc,
                     const char **argv, const size_t *lens)
{
    if (r->ac == NULL || redisAsyncCommandArgv(r->ac, on_reply, c, argc, argv,
                                               lens) != REDIS_OK) {
        cmd_free(c);
        return KN_ECLOSED;
    }
    cmd_link(r, c);
    return 0;
}

/* The same for a command formatted for the wire already. */
static int send_fmt(struct kn_redis *r, struct rcmd *c, const char *cmd,
                    size_t len)
{
    if (r->ac == NULL ||
        redisAsyncFormattedCommand(r->ac, on_reply, c, cmd, len) != REDIS_OK) {
        cmd_free(c);
        return KN_ECLOSED;
    }
    cmd_link(r, c);
    return 0;
}

int kn_reply_is_error(const redisReply *rep, const char *prefix)
{
    return rep != NULL && rep->type == REDIS_REPLY_ERROR &&
           strncmp(rep->str, prefix, strlen(prefix)) == 0;
}

/* ---- connection life ---- */

static void on_watchdog(uv_timer_t *t);
static void do_connect(struct kn_redis *r);

static void on_reconnect_timer(uv_timer_t *t)
{
    struct kn_redis *r = kn_container_of(t, struct kn_redis, reconnect);
    do_connect(r);
}

static void backoff(struct kn_redis *r)
{
    int64_t cap = 100LL << (r->attempts < 6 ? r->attempts : 6);
    if (cap > 5000)
        cap = 5000;
    r->attempts++;
    uv_timer_start(&r->reconnect, on_reconnect_timer,
                   (uint64_t)(50 + kn_random_below((uint64_t)cap)), 0);
}

/*
 * Drop the connection: free the context (pending commands get NULL
 * replies), go DOWN and schedule the next attempt.
 */
static void teardown(struct kn_redis *r, const char *why)
{
    redisAsyncContext *ac = r->ac;
    snprintf(r->last_error, sizeof(r->last_error), "%s", why);
    if (r->state != R_UP && r->state != R_CLOSED &&
        (r->attempts == 0 || r->attempts % 20 == 0))
        kn_log(KN_LOG_WARN, "redis", "cannot connect to Redis, retrying",
               "conn", r->name, "error", why, NULL);
    r->ac = NULL;
    if (ac != NULL)
        redisAsyncFree(ac);
    if (r->state != R_CLOSED) {
        set_state(r, R_DOWN, why);
        backoff(r);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct kn_redis *r = ac->data;
    if (r == NULL || ac != r->ac)
        return; /* we freed it ourselves */
    /* hiredis frees the context after this callback. */
    r->ac = NULL;
    snprintf(r->last_error, sizeof(r->last_error), "%s",
             status == REDIS_OK ? "closed" : ac->errstr);
    if (r->state != R_CLOSED) {
        set_state(r, R_DOWN, r->last_error);
        backoff(r);
    }
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct kn_redis *r = ac->data;
    if (r == NULL || ac != r->ac)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback. */
        r->ac = NULL;
        snprintf(r->last_error, sizeof(r->last_error), "connect %s:%d: %s",
                 r->host, r->port, ac->errstr);
        if (r->attempts == 0 || r->attempts % 20 == 0)
            kn_log(KN_LOG_WARN, "redis", "cannot connect, retrying", "conn",
                   r->name, "error", r->last_error, NULL);
        set_state(r, R_DOWN, r->last_error);
        backoff(r);
    }
}

static void on_handshake(struct kn_redis *r, redisReply *rep, void *arg)
{
    const char *step = arg;
    if (r->state != R_HANDSHAKE || rep == NULL)
        return; /* NULL: the connection failed; teardown said why */
    if (rep->type == REDIS_REPLY_ERROR) {
        char why[200];
        snprintf(why, sizeof(why), "%s failed: %s", step,
                 rep ? rep->str : "no reply");
        /* Redis answers -LOADING while it reads its AOF/RDB after a
         * restart: say so once, then keep retrying quietly. */
        if (kn_reply_is_error(rep, "LOADING") &&
            strstr(r->last_error, "LOADING") == NULL)
            kn_log(KN_LOG_WARN, "redis",
                   "Redis is loading its data set; waiting", "conn", r->name,
                   NULL);
        teardown(r, why);
        return;
    }
    if (strcmp(step, "PING") == 0 && r->sentinel != NULL) {
        kn_redis_cmd(r, on_handshake, "ROLE", "ROLE");
        return;
    }
    if (strcmp(step, "ROLE") == 0 && !kn_sentinel_role_is_master(rep)) {
        /* A sentinel named something that is not a primary (a replica
         * not yet promoted, a demoted primary, or a rogue sentinel):
         * write nothing, ask again after the backoff, the others first. */
        char why[600], who[300];
        kn_sentinel_describe(r->sentinel, r->from, who, sizeof(who));
        snprintf(why, sizeof(why),
                 "%s named %s:%d, which is not a primary (ROLE %s)", who,
                 r->host, r->port,
                 rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
                         rep->element[0]->type == REDIS_REPLY_STRING
                     ? rep->element[0]->str
                     : "?");
        kn_log(KN_LOG_WARN, "redis",
               "not a primary; asking the sentinels "
               "again",
               "conn", r->name, "error", why, NULL);
        kn_sentinel_distrust(r->sentinel, r->from);
        teardown(r, why);
        return;
    }
    if (strcmp(step, "PING") == 0 || strcmp(step, "ROLE") == 0) {
        r->attempts = 0;
        if (r->connects++ > 0)
            kn_log(KN_LOG_INFO, "redis", "reconnected", "conn", r->name, NULL);
        r->connect_deadline = 0;
        set_state(r, R_UP, "ready");
    }
}

static void connect_now(struct kn_redis *r);
static void do_connect(struct kn_redis *r);

/* In the thread pool: steps 1-2 of the discovery (blocking). */
static void resolve_work(uv_work_t *w)
{
    struct kn_redis *r = kn_container_of(w, struct kn_redis, resolve);
    r->res_rc = kn_sentinel_resolve(
        r->sentinel, r->res_host, sizeof(r->res_host), &r->res_port,
        &r->res_from, r->res_why, sizeof(r->res_why));
}

static void maybe_free(struct kn_redis *r);

/* Back on the loop: connect to the address the sentinels named. */
static void resolve_done(uv_work_t *w, int status)
{
    struct kn_redis *r = kn_container_of(w, struct kn_redis, resolve);
    r->resolving = 0;
    r->handles_open--;
    if (r->state == R_CLOSED) {
        maybe_free(r);
        return;
    }
    if (status < 0 || r->res_rc < 0) {
        snprintf(r->last_error, sizeof(r->last_error), "%s",
                 status < 0 ? "discovery cancelled" : r->res_why);
        if (r->attempts == 0 || r->attempts % 20 == 0)
            kn_log(KN_LOG_WARN, "redis",
                   "the sentinels name no primary, retrying", "conn", r->name,
                   "error", r->last_error, NULL);
        set_state(r, R_DOWN, r->last_error);
        backoff(r);
        return;
    }
    if (r->reset_pending) {
        /* +switch-master arrived while the sentinels were being asked:
         * their answer may name the old primary; ask again at once. */
        r->reset_pending = 0;
        do_connect(r);
        return;
    }
    if (strcmp(r->host, r->res_host) != 0 || r->port != r->res_port)
        kn_log(KN_LOG_INFO, "redis", "sentinels name the primary", "conn",
               r->name, "primary", r->res_host, NULL);
    free(r->host);
    r->host = kn_xstrdup(r->res_host);
    r->port = r->res_port;
    r->from = r->res_from;
    connect_now(r);
}

static void do_connect(struct kn_redis *r)
{
    if (r->state == R_CLOSED || r->resolving)
        return;
    if (r->sentinel == NULL) {
        connect_now(r);
        return;
    }
    /* Step 4: ask again before every connection. */
    set_state(r, R_RESOLVING, "asking the sentinels");
    r->resolving = 1;
    r->handles_open++;
    uv_queue_work(r->loop, &r->resolve, resolve_work, resolve_done);
}

static void connect_now(struct kn_redis *r)
{
    redisAsyncContext *ac;
    if (r->state == R_CLOSED)
        return;
    ac = redisAsyncConnect(r->host, r->port);
    if (ac == NULL)
        KN_PANIC("redisAsyncConnect: out of memory");
    if (ac->err) {
        snprintf(r->last_error, sizeof(r->last_error), "connect: %s",
                 ac->errstr);
        redisAsyncFree(ac);
        set_state(r, R_DOWN, r->last_error);
        backoff(r);
        return;
    }
    ac->data = r;
    if (ev_attach(r, ac) < 0) {
        redisAsyncFree(ac);
        backoff(r);
        return;
    }
    r->ac = ac;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    r->connect_deadline = kn_mono_ms() + r->timeout_ms;
    uv_timer_start(&r->watchdog, on_watchdog, 100, 100);
    /* hiredis buffers these until the socket is connected; they run
     * first, in order. */
    set_state(r, R_HANDSHAKE, "connecting");
    if (r->password != NULL || r->user != NULL) {
        /* With a user: AUTH user password (Redis 6 ACL; a "nopass" user
         * takes any password, so none is sent as ""). */
        struct rcmd *c = kn_xcalloc(1, sizeof(*c));
        const char *pw = r->password ? r->password : "";
        const char *argv[] = {"AUTH", r->user ? r->user : pw, pw};
        size_t lens[] = {4, strlen(argv[1]), strlen(pw)};
        c->r = r;
        c->cb = on_handshake;
        c->arg = "AUTH";
        send_argv(r, c, r->user ? 3 : 2, argv, lens);
    }
    if (r->db != 0) {
        kn_redis_cmd(r, on_handshake, "SELECT", "SELECT %d", r->db);
    }
    kn_redis_cmd(r, on_handshake, "PING", "PING");
}

static void on_watchdog(uv_timer_t *t)
{
    struct kn_redis *r = kn_container_of(t, struct kn_redis, watchdog);
    int64_t now = kn_mono_ms();
    if (r->ac == NULL) {
        uv_timer_stop(t);
        return;
    }
    if (r->connect_deadline != 0 && r->state != R_UP &&
        now > r->connect_deadline) {
        char why[160];
        snprintf(why, sizeof(why), "%s:%d: connect timed out after %lld ms",
                 r->host, r->port, (long long)r->timeout_ms);
        teardown(r, why);
        return;
    }
    if (r->head != NULL && now > r->head->deadline) {
        char why[64];
        snprintf(why, sizeof(why), "command timed out after %lld ms",
                 (long long)r->timeout_ms);
        teardown(r, why);
    }
}

/* ---- public API ---- */

struct kn_redis *kn_redis_new(uv_loop_t *loop, const struct kn_redis_opts *o,
                              kn_redis_state_cb *state, void *arg)
{
    struct kn_redis *r = kn_xcalloc(1, sizeof(*r));
    r->loop = loop;
    r->host = kn_xstrdup(o->host);
    r->port = o->port;
    r->db = o->db;
    r->password = o->password ? kn_xstrdup(o->password) : NULL;
    r->user = o->user ? kn_xstrdup(o->user) : NULL;
    r->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 5000;
    r->name = kn_xstrdup(o->name ? o->name : "redis");
    r->state_cb = state;
    r->state_arg = arg;
    r->sentinel = o->sentinel;
    if (r->sentinel != NULL)
        kn__sentinel_attach(r->sentinel, r);
    uv_timer_init(loop, &r->watchdog);
    uv_timer_init(loop, &r->reconnect);
    uv_prepare_init(loop, &r->flush);
    uv_prepare_start(&r->flush, on_flush);
    uv_unref((uv_handle_t *)&r->flush); /* never keeps the loop alive */
    r->handles_open = 3;
    return r;
}

void kn_redis_start(struct kn_redis *r)
{
    do_connect(r);
}

int kn_redis_up(const struct kn_redis *r)
{
    return r->state == R_UP;
}

uint64_t kn_redis_reconnects(const struct kn_redis *r)
{
    return r->connects > 0 ? r->connects - 1 : 0;
}

const char *kn_redis_last_error(const struct kn_redis *r)
{
    return r->last_error;
}

int kn_redis_argv(struct kn_redis *r, kn_redis_cb *cb, void *arg,
                  int64_t extra_ms, int argc, const char **argv,
                  const size_t *lens)
{
    struct rcmd *c;
    int rc;
    if (r->state != R_UP)
        return KN_ECLOSED;
    c = kn_xcalloc(1, sizeof(*c));
    c->r = r;
    c->cb = cb;
    c->arg = arg;
    rc = send_argv(r, c, argc, argv, lens);
    if (rc == 0 && extra_ms > 0)
        r->tail->deadline += extra_ms;
    return rc;
}

int kn_redis_cmd(struct kn_redis *r, kn_redis_cb *cb, void *arg,
                 const char *fmt, ...)
{
    struct rcmd *c;
    va_list ap;
    int ok;
    if (r->ac == NULL || (r->state != R_UP && r->state != R_HANDSHAKE))
        return KN_ECLOSED;
    c = kn_xcalloc(1, sizeof(*c));
    c->r = r;
    c->cb = cb;
    c->arg = arg;
    va_start(ap, fmt);
    ok = redisvAsyncCommand(r->ac, on_reply, c, fmt, ap);
    va_end(ap);
    if (ok != REDIS_OK) {
        free(c);
        return KN_ECLOSED;
    }
    c->deadline = kn_mono_ms() + r->timeout_ms;
    c->prev = r->tail;
    if (r->tail)
        r->tail->next = c;
    else
        r->head = c;
    r->tail = c;
    return 0;
}

void kn_redis_script_init(struct kn_redis_script *s)
{
    unsigned char md[20];
    unsigned int mdlen = 0;
    EVP_Digest(s->src, strlen(s->src), md, &mdlen, EVP_sha1(), NULL);
    kn_hex_encode(md, sizeof(md), s->sha);
}

int kn_redis_eval(struct kn_redis *r, const struct kn_redis_script *s,
                  kn_redis_cb *cb, void *arg, int nkeys, int argc,
                  const char **argv, const size_t *lens)
{
    int n = argc + 3, rc;
    const char **av = kn_xcalloc((size_t)n, sizeof(*av));
    size_t *al = kn_xcalloc((size_t)n, sizeof(*al));
    char nk[16];
    struct rcmd *c;
    sds fmt = NULL;

    if (r->state != R_UP) {
        free(av);
        free(al);
        return KN_ECLOSED;
    }
    snprintf(nk, sizeof(nk), "%d", nkeys);
    av[0] = "EVALSHA";
    al[0] = 7;
    av[1] = s->sha;
    al[1] = 40;
    av[2] = nk;
    al[2] = strlen(nk);
    for (int i = 0; i < argc; i++) {
        av[i + 3] = argv[i];
        al[i + 3] = lens ? lens[i] : strlen(argv[i]);
    }
    c = kn_xcalloc(1, sizeof(*c));
    c->r = r;
    c->cb = cb;
    c->arg = arg;
    c->script = s;
    /* Formatted once: sent as is, and kept for a possible EVAL resend
     * (the arguments after the SHA are the same). */
    c->argc = n;
    if (redisFormatSdsCommandArgv(&fmt, n, av, al) < 0)
        KN_PANIC("out of memory formatting a Redis command");
    c->fmt = fmt;
    c->fmt_len = sdslen(fmt);
    /* "*<n>\r\n" "$7\r\nEVALSHA\r\n" "$40\r\n<sha>\r\n" */
    c->rest = (size_t)snprintf(NULL, 0, "*%d\r\n", n) + 13 + 5 + 40 + 2;
    if (c->rest >= c->fmt_len || fmt[c->rest] != '$')
        KN_PANIC("an EVALSHA formatted in an unexpected shape");
    rc = send_fmt(r, c, c->fmt, c->fmt_len); /* frees c on failure */
    free(av);
    free(al);
    return rc;
}

static void maybe_free(struct kn_redis *r)
{
    if (r->state == R_CLOSED && r->handles_open == 0) {
        free(r->host);
        free(r->user);
        if (r->password) {
            memset(r->password, 0, strlen(r->password));
            free(r->password);
        }
        free(r->name);
        free(r);
    }
}

static void timer_closed(uv_handle_t *h)
{
    struct kn_redis *r = h->data;
    r->handles_open--;
    maybe_free(r);
}

void kn_redis_reset(struct kn_redis *r, const char *why)
{
    if (r->state == R_CLOSED)
        return;
    if (r->resolving) {
        r->reset_pending = 1; /* resolve_done asks again */
        return;
    }
    r->attempts = 0;
    if (r->ac != NULL) {
        teardown(r, why); /* schedules the next attempt */
        return;
    }
    /* Waiting for the backoff: try at once. */
    uv_timer_start(&r->reconnect, on_reconnect_timer, 0, 0);
}

int kn_redis_subscribe(struct kn_redis *r, const char *channel, kn_redis_cb *cb,
                       void *arg)
{
    struct rcmd *c;
    if (r->state != R_UP || r->ac == NULL)
        return KN_ECLOSED;
    c = kn_xcalloc(1, sizeof(*c));
    c->r = r;
    c->cb = cb;
    c->arg = arg;
    c->sub = 1;
    if (redisAsyncCommand(r->ac, on_reply, c, "SUBSCRIBE %s", channel) !=
        REDIS_OK) {
        free(c);
        return KN_ECLOSED;
    }
    return 0;
}

void kn_redis_close(struct kn_redis *r)
{
    redisAsyncContext *ac = r->ac;
    if (r->sentinel != NULL)
        kn__sentinel_detach(r->sentinel, r);
    set_state(r, R_CLOSED, "close");
    r->ac = NULL;
    if (ac != NULL)
        redisAsyncFree(ac);
    uv_timer_stop(&r->watchdog);
    uv_timer_stop(&r->reconnect);
    uv_prepare_stop(&r->flush);
    r->watchdog.data = r;
    r->reconnect.data = r;
    r->flush.data = r;
    uv_close((uv_handle_t *)&r->watchdog, timer_closed);
    uv_close((uv_handle_t *)&r->reconnect, timer_closed);
    uv_close((uv_handle_t *)&r->flush, timer_closed);
}
