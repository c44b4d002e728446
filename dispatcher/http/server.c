/*
 * http.c - kairand's HTTP surface, on kairand's own uv loop: the JSON API
 * (/v1/broadcasts, /v1/queues), /healthz, /metrics (Prometheus text
 * format 0.0.4) and the status page, behind bearer tokens with roles.
 *
 * Library: http-parser 2.9 (Debian's libhttp-parser-dev) over uv_tcp_t.
 * llhttp is not packaged in Debian 12, and h2o 2.2 would bring its own
 * event-loop layer, TLS and HTTP/2 stacks for a dozen routes that sit
 * behind a TLS reverse proxy anyway.  http-parser only parses; this file
 * owns the connections: keep-alive, pipelining (the parser is paused after
 * each request and the socket is not read again until the answer is
 * written, so answers leave in order and a client cannot make us buffer
 * without bound), limits (body size checked on Content-Length and on the
 * running count, URL and header sizes, connection count, per-address
 * request rate) and timeouts.
 *
 * It never blocks the loop: every Redis access goes through the shared
 * "cmd" connection (d->cmd) asynchronously and pipelined; a scrape reads a
 * fixed set of keys (three per queue stream, three more), never one per
 * broadcast or job, and is cached for a second.
 *
 * It must never log or answer a secret: a token's secret is compared in
 * constant time and wiped; only the token id reaches the login log;
 * addresses are sealed (kn_broadcast_submit_args) before they reach
 * Redis; the status page shows data through textContent only.
 */
#include "model/audit.h"
#include "model/token.h"

#include <errno.h>
#include <fcntl.h>
#include <http_parser.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "common/argv.h"
#include "common/kn.h"
#include "common/log.h"
#include "common/seal.h"
#include "common/text.h"
#include "config/config.h"
#include "adapters/line.h"
#include "dispatcher/ack.h"
#include "dispatcher/broadcast.h"
#include "dispatcher/daemon.h"
#include "dispatcher/module.h"
#include "queue/scripts.h"
#include "queue/keys.h"

#define HTTP_MAX_URL          4096
#define HTTP_MAX_HEADER_VALUE 8192
#define HTTP_MAX_HEADERS      (32 * 1024) /* all headers of one request */
#define HTTP_REQUEST_MS       60000       /* a request must arrive within */
#define HTTP_SMALL_BODY       16384 /* routes other than submit, webhook */
#define HTTP_BACKLOG          1024
#define PEER_SLOTS            1024
#define PROXIES_MAX           32
#define HTTP_IDLE_MS          30000 /* keep-alive connection idle */
#define HTTP_LINGER_MS        2000  /* read and drop after a final answer */
#define HTTP_LINGER_BYTES     (4 << 20)
#define HTTP_LINGER_UNREAD    (64 << 10) /* after refusing a body unread */
#define GATHER_FRESH_MS       1000       /* queue gauges cached this long */
#define HISTORY_N             120  /* depth samples kept: 10 minutes ... */
#define HISTORY_EVERY_MS      5000 /* ... one every 5 s */
#define RECENT_MS             (15 * 60 * 1000) /* ended broadcasts still listed */
#define RATE_SLOTS            1024
#define RATE_MAX              65536 /* source addresses tracked */
#define LIST_MAX              100   /* broadcasts in ?active=1 */

/* ------------------------------------------------------------ types */

struct sbuf {
    char *s;
    size_t n, cap;
};

struct token {
    char id[KN_TOKEN_ID_MAX + 1];
    int role;
    char *tenant;
    char *name;
    char *groups; /* comma list (senders) */
};

struct conn;
struct http_srv;

enum route_id {
    R_PAGE,
    R_JS,
    R_CSS,
    R_FAVICON,
    R_HEALTH,
    R_METRICS,
    R_QUEUES,
    R_HISTORY,
    R_BC_LIST,
    R_BC_SUBMIT,
    R_BC_GET,
    R_BC_CANCEL,
    R_ACK_GET,
    R_ACK_POST,
    R_LINE_HOOK
};

#define ROLE(r) (1u << (r))
#define STAFF   (ROLE(KN_ROLE_ADMIN) | ROLE(KN_ROLE_LIMITED_ADMIN))

struct route {
    enum route_id id;
    unsigned method;     /* enum http_method */
    const char *pattern; /* "{}" matches one path segment */
    unsigned roles;      /* 0: no token needed */
    int limited;         /* counted against the per-address rate */
    void (*run)(struct conn *c);
};

/* One request; a connection answers one at a time (pipelined requests
 * wait in the socket or in c->pending). */
struct req {
    struct sbuf url, hfield, hval, body;
    char *authz, *ctype, *real_ip, *expect;
    char *line_sig; /* X-Line-Signature */
    size_t header_bytes;
    int in_value;
    int dup_authz;
    int started;
    int head_paused; /* a body follows: the head is checked first */
    int ready;       /* checked (route, rate, token): read the body */
    int want_continue;
    int line_slot; /* holds one of line.webhook_concurrency */
    size_t body_cap;
    char allow[64]; /* methods of the path when none matched */
    int complete;
    int keep_alive;
    int early_status; /* 413/414/431 found while parsing */
    const char *early_msg;
    unsigned method;
    char *path;  /* percent-decoded */
    char *query; /* raw, may be NULL */
    char source[64];
    const struct route *route;
    char *param; /* the {} segment */
    struct token tok;
    const char *auth_result; /* NULL: no token looked at */
    char *bc_id;             /* submit: the id being stored */
    char *bc_tenant;         /* its tenant (operation log) */
    char *bc_key;            /* submit: the producer's key, or NULL */
    char *ack_rcpt;          /* /a/{token}: the recipient */
    int64_t t0;
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shut;
    struct http_srv *srv;
    http_parser parser;
    struct req req;
    char *pending; /* input read but not yet parsed (pipelining) */
    size_t npending;
    char peer[64];
    int open_handles;
    int refs; /* async operations that will call back with this conn */
    int closed;
    int reading;
    int busy; /* a request is being answered */
    int close_after;
    int lingering;
    int writing; /* an answer is being written: send_timeout_ms runs */
    size_t linger_bytes;
    size_t held;       /* body bytes counted in srv->buffered */
    struct peer *slot; /* its peer's count; NULL for a proxy */
    struct conn *next, *prev;
    struct conn *wait_next; /* waiting for the queue gauges */
    char rbuf[16384];
};

struct qstats {
    int ok;
    long long len[KN_QUEUE_STREAMS], pending[KN_QUEUE_STREAMS];
    long long first_ms[KN_QUEUE_STREAMS]; /* oldest entry's time; 0 none */
    long long retry, dlq, active;
    int64_t at_ms;
};

struct sample {
    int64_t t;
    long long jobs[KN_CH__COUNT];
};

struct rbucket {
    struct rbucket *next;
    double tokens;
    int64_t at;
    char addr[64];
};

/* Open connections of one peer address. */
struct peer {
    struct peer *next;
    unsigned n;
    char addr[64];
};

struct http_srv {
    struct kn_daemon *d;
    const struct kn_config *cfg;
    uv_tcp_t listener;
    uv_timer_t tick;
    int live; /* open handles, connections and batches in flight */
    int closing;
    struct conn *conns;
    size_t nconns;
    int64_t warned_full;
    struct qstats qs;
    int64_t qs_mono; /* when qs was read; 0 never */
    int gathering;
    struct conn *waiters;
    struct sample hist[HISTORY_N];
    size_t hist_n, hist_head;
    int64_t next_sample, next_sweep;
    struct rbucket *rl[RATE_SLOTS];
    size_t rl_n;
    struct peer *peers[PEER_SLOTS];
    char proxies[PROXIES_MAX][64]; /* http.trusted_proxies, as peers read */
    size_t nproxies;
    size_t buffered; /* body bytes held, all connections */
    int line_active; /* webhook requests being worked on */
    double line_tokens;
    int64_t line_at;
    int64_t warned_peer;
};

/* ------------------------------------------------------------ helpers */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void sb_add(struct sbuf *b, const char *p, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        b->s = kn_xrealloc(b->s, cap);
        b->cap = cap;
    }
    memcpy(b->s + b->n, p, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void sb_addf(struct sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sb_addf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    char *s;
    int n;
    va_start(ap, fmt);
    n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        KN_PANIC("out of memory");
    sb_add(b, s, (size_t)n);
    free(s);
}

static void sb_free(struct sbuf *b)
{
    free(b->s);
    memset(b, 0, sizeof(*b));
}

static void free_secret(char **s)
{
    if (*s != NULL) {
        OPENSSL_cleanse(*s, strlen(*s));
        free(*s);
        *s = NULL;
    }
}

static const char *rstr(const redisReply *r)
{
    return r != NULL && (r->type == REDIS_REPLY_STRING ||
                         r->type == REDIS_REPLY_STATUS)
               ? r->str
               : NULL;
}

static long long rnum(const redisReply *r)
{
    if (r == NULL)
        return 0;
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    if (r->type == REDIS_REPLY_STRING)
        return strtoll(r->str, NULL, 10);
    return 0;
}

static json_t *jtime(long long ms)
{
    char buf[48];
    if (ms <= 0)
        return json_null();
    return json_string(kn_time_jst(ms, buf, sizeof(buf)));
}

static char *dupstr(const char *s)
{
    return s != NULL ? kn_xstrdup(s) : NULL;
}

static json_t *jstr_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

/*
 * A JSON string of outside text (a request path, a message that quotes
 * one): bytes that are not UTF-8 become \\xNN instead of the value being
 * dropped (json_string() refuses invalid UTF-8 and returns NULL).
 */
static json_t *jstr_text(const char *s)
{
    char *t = kn_text_utf8(s, strlen(s));
    json_t *j = json_string(t);
    free(t);
    return j;
}

/* A deep copy of a hiredis reply (replies die with their callback). */
static redisReply *reply_clone(const redisReply *r)
{
    redisReply *c;
    if (r == NULL)
        return NULL;
    c = kn_xcalloc(1, sizeof(*c));
    c->type = r->type;
    c->integer = r->integer;
    if (r->str != NULL) {
        c->str = kn_xmalloc(r->len + 1);
        memcpy(c->str, r->str, r->len);
        c->str[r->len] = '\0';
        c->len = r->len;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
        c->element = kn_xcalloc(r->elements, sizeof(*c->element));
        c->elements = r->elements;
        for (size_t i = 0; i < r->elements; i++)
            c->element[i] = reply_clone(r->element[i]);
    }
    return c;
}

static void reply_free(redisReply *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->elements; i++)
        reply_free(r->element[i]);
    free(r->element);
    free(r->str);
    free(r);
}

/* ------------------------------------------------------------ server life */

static void srv_unref(struct http_srv *s)
{
    if (--s->live > 0 || !s->closing)
        return;
    for (size_t i = 0; i < RATE_SLOTS; i++) {
        while (s->rl[i] != NULL) {
            struct rbucket *b = s->rl[i];
            s->rl[i] = b->next;
            free(b);
        }
    }
    free(s);
}

static void on_srv_handle_closed(uv_handle_t *h)
{
    srv_unref(h->data);
}

/* ------------------------------------------------------------ connections */

static void conn_feed(struct conn *c, const char *data, size_t len);
static void conn_close(struct conn *c);
static void dispatch(struct conn *c);
static void respond_error(struct conn *c, int status, const char *field,
                          const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void token_reset(struct token *t)
{
    free(t->tenant);
    free(t->name);
    free(t->groups);
    memset(t, 0, sizeof(*t));
    t->role = -1;
}

static void req_reset(struct req *r)
{
    sb_free(&r->url);
    sb_free(&r->hfield);
    if (r->hval.s != NULL)
        OPENSSL_cleanse(r->hval.s, r->hval.n);
    sb_free(&r->hval);
    sb_free(&r->body);
    free_secret(&r->authz);
    free(r->ctype);
    free(r->real_ip);
    free(r->expect);
    free(r->line_sig);
    free(r->ack_rcpt);
    free(r->path);
    free(r->query);
    free(r->param);
    free(r->bc_id);
    free(r->bc_tenant);
    free(r->bc_key);
    token_reset(&r->tok);
    memset(r, 0, sizeof(*r));
    r->tok.role = -1;
}

static unsigned addr_hash(const char *s);

/* Give back what the request holds of the server's shared limits: its
 * body bytes and its LINE webhook slot. */
static void req_release(struct conn *c)
{
    struct http_srv *s = c->srv;
    s->buffered -= c->held;
    c->held = 0;
    if (c->req.line_slot) {
        s->line_active--;
        c->req.line_slot = 0;
    }
}

static int peer_is_proxy(const struct http_srv *s, const char *addr)
{
    for (size_t i = 0; i < s->nproxies; i++) {
        if (strcmp(s->proxies[i], addr) == 0)
            return 1;
    }
    return 0;
}

/* Count one more connection of addr; NULL if it has max_conns_per_peer. */
static struct peer *peer_take(struct http_srv *s, const char *addr)
{
    struct peer **pp = &s->peers[addr_hash(addr) % PEER_SLOTS], *p;
    for (p = *pp; p != NULL; p = p->next) {
        if (strcmp(p->addr, addr) == 0)
            break;
    }
    if (p == NULL) {
        p = kn_xcalloc(1, sizeof(*p));
        snprintf(p->addr, sizeof(p->addr), "%s", addr);
        p->next = *pp;
        *pp = p;
    }
    if (p->n >= (unsigned)s->cfg->http_max_conns_per_peer)
        return NULL;
    p->n++;
    return p;
}

static void peer_give(struct http_srv *s, struct peer *p)
{
    struct peer **pp;
    if (p == NULL || --p->n > 0)
        return;
    for (pp = &s->peers[addr_hash(p->addr) % PEER_SLOTS]; *pp != p;
         pp = &(*pp)->next)
        ;
    *pp = p->next;
    free(p);
}

static void conn_maybe_free(struct conn *c)
{
    struct http_srv *s = c->srv;
    if (!c->closed || c->open_handles > 0 || c->refs > 0)
        return;
    req_reset(&c->req);
    free(c->pending);
    free(c);
    srv_unref(s);
}

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    c->open_handles--;
    conn_maybe_free(c);
}

static void conn_close(struct conn *c)
{
    struct http_srv *s = c->srv;
    if (c->closed)
        return;
    c->closed = 1;
    req_release(c);
    peer_give(s, c->slot);
    c->slot = NULL;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    s->nconns--;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

/* Hold c across an async call; release returns 1 if it is still open. */
static void conn_hold(struct conn *c)
{
    c->refs++;
}

static int conn_release(struct conn *c)
{
    c->refs--;
    if (c->closed) {
        conn_maybe_free(c);
        return 0;
    }
    return 1;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct conn *c = h->data;
    buf->base = c->rbuf;
    buf->len = sizeof(c->rbuf);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

static void read_start(struct conn *c)
{
    if (!c->reading && !c->closed) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->reading = 1;
        else
            conn_close(c);
    }
}

static void read_stop(struct conn *c)
{
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

static void on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->closed)
        return;
    /* An answer not taken within send_timeout_ms: the client does not
     * read (its window and our socket buffer are full).  Drop it. */
    if (c->writing || c->lingering || (!c->busy && !c->req.started)) {
        conn_close(c);
        return;
    }
    if (c->busy)
        return; /* waiting for Redis, which has its own deadline */
    read_stop(c);
    c->close_after = 1;
    c->busy = 1;
    if (c->req.ready)
        respond_error(c, 408, NULL, "the request body did not arrive in time");
    else
        respond_error(c, 408, NULL,
                      "the request head did not arrive within %lld ms",
                      (long long)c->srv->cfg->http_header_timeout_ms);
}

/* While a body arrives: the next read within body_timeout_ms, the whole
 * request within HTTP_REQUEST_MS. */
static void body_timer(struct conn *c)
{
    int64_t left = c->req.t0 + HTTP_REQUEST_MS - kn_mono_ms();
    int64_t ms = c->srv->cfg->http_body_timeout_ms;
    if (left < ms)
        ms = left > 0 ? left : 1;
    uv_timer_start(&c->timer, on_timer, (uint64_t)ms, 0);
}

static void on_shutdown(uv_shutdown_t *sh, int status)
{
    struct conn *c = sh->data;
    conn_release(c);
}

/*
 * Close after a final answer (413, a parse error, Connection: close)
 * without losing that answer: shut our side down, then read and drop
 * what the client still sends for a moment, as nginx's lingering close
 * does.  Closing at once with unread input would make the kernel send a
 * reset, and the client could lose the answer before reading it.
 */
static void conn_linger(struct conn *c)
{
    c->lingering = 1;
    c->busy = 0;
    uv_timer_start(&c->timer, on_timer, HTTP_LINGER_MS, 0);
    c->shut.data = c;
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        conn_close(c);
        return;
    }
    conn_hold(c);
    read_start(c);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = st->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (c->lingering) {
        /* A refused body (401, 413 before it was read) is not drained
         * whole: a client that sends it without waiting for 100 Continue
         * may lose the answer to the reset. */
        c->linger_bytes += (size_t)nread;
        if (c->linger_bytes >
            (c->req.complete ? HTTP_LINGER_BYTES : HTTP_LINGER_UNREAD))
            conn_close(c);
        return;
    }
    if (c->req.ready && !c->req.complete)
        body_timer(c);
    conn_feed(c, buf->base, (size_t)nread);
}

/* After an answer is written: the next pipelined request, or wait. */
static void conn_next(struct conn *c)
{
    char *p;
    size_t n;
    req_release(c);
    req_reset(&c->req);
    c->busy = 0;
    uv_timer_start(&c->timer, on_timer, HTTP_IDLE_MS, 0);
    http_parser_pause(&c->parser, 0);
    if (c->npending > 0) {
        p = c->pending;
        n = c->npending;
        c->pending = NULL;
        c->npending = 0;
        conn_feed(c, p, n);
        free(p);
        if (c->closed || c->busy)
            return;
    }
    read_start(c);
}

struct wreq {
    uv_write_t w;
    struct conn *c;
    char *data;
};

static void on_written(uv_write_t *w, int status)
{
    struct wreq *wr = kn_container_of(w, struct wreq, w);
    struct conn *c = wr->c;
    free(wr->data);
    free(wr);
    c->writing = 0;
    if (!conn_release(c))
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->close_after) {
        conn_linger(c);
        return;
    }
    conn_next(c);
}

/*
 * Paths whose rest is a secret, one row each: a personal link /a/<token>
 * is the guardian's only credential, so no log line may hold it (at
 * log_level = debug every request's path is logged).  Queries are never
 * logged at all.
 */
static const char *const secret_paths[] = {"/a/"};

/* The path as it may be logged: what follows a secret prefix, wherever
 * it appears (a mistyped "/x/a/<token>" too), becomes "<redacted>".
 * Returns path itself or buf. */
static const char *log_path(const char *path, char *buf, size_t len)
{
    if (path == NULL)
        return "";
    for (size_t i = 0; i < KN_ARRAY_SIZE(secret_paths); i++) {
        const char *p = strstr(path, secret_paths[i]);
        if (p != NULL) {
            snprintf(buf, len, "%.*s%s<redacted>", (int)(p - path), path,
                     secret_paths[i]);
            return buf;
        }
    }
    return path;
}

/* ------------------------------------------------------------ answers */

static void login_log(struct conn *c, int status)
{
    struct req *r = &c->req;
    json_t *j = json_object();
    const char *result = r->auth_result;
    char t[48], lp[256], *line;
    if (strcmp(result, "ok") == 0 && status == 403)
        result = "forbidden";
    json_object_set_new(j, "time",
                        json_string(kn_time_jst(kn_now_ms(), t, sizeof(t))));
    json_object_set_new(j, "token",
                        jstr_or_null(r->tok.id[0] ? r->tok.id : NULL));
    json_object_set_new(
        j, "role",
        jstr_or_null(r->tok.role >= 0 ? kn_role_name(r->tok.role) : NULL));
    json_object_set_new(
        j, "tenant",
        jstr_or_null(r->tok.tenant && r->tok.tenant[0] ? r->tok.tenant : NULL));
    json_object_set_new(j, "source", json_string(r->source));
    json_object_set_new(
        j, "method", json_string(http_method_str((enum http_method)r->method)));
    json_object_set_new(j, "path",
                        jstr_text(log_path(r->path, lp, sizeof(lp))));
    json_object_set_new(j, "result", json_string(result));
    json_object_set_new(j, "status", json_integer(status));
    line = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (kn_audit_append(c->srv->cfg->audit_dir, "login.jsonl", line) < 0)
        kn_log(KN_LOG_WARN, "http", "cannot append to the login log", "dir",
               c->srv->cfg->audit_dir, "error", strerror(errno), NULL);
    free(line);
}

static const char *const csp_default =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";
/* The page: its script and style come from this origin (no inline code,
 * so no nonce is needed), it talks only to this origin, and it cannot be
 * framed. */
static const char *const csp_page =
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'";

/*
 * Write one answer.  Every answer carries no-store, nosniff and a CSP;
 * extra is more header lines ("Name: value\r\n"...) or NULL.  The login
 * log line of the request is written here, once, with the final status.
 */
static void respond(struct conn *c, int status, const char *ctype,
                    const char *body, size_t len, const char *csp,
                    const char *extra)
{
    struct sbuf h = {0};
    struct wreq *wr;
    uv_buf_t buf;
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    int keep;

    if (c->closed)
        return;
    /* Answered before its body was read (401, 413, 429...): the body
     * is never read, so the connection cannot carry another request. */
    keep = !c->close_after && c->req.keep_alive && c->req.complete &&
           !c->srv->closing && !c->parser.upgrade;
    if (!keep)
        c->close_after = 1;
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    sb_addf(&h,
            "HTTP/1.1 %d %s\r\n"
            "Date: %s\r\n"
            "Content-Type: %s\r\n"
            "Content-Length: %zu\r\n"
            "Cache-Control: no-store\r\n"
            "X-Content-Type-Options: nosniff\r\n"
            "X-Frame-Options: DENY\r\n"
            "Referrer-Policy: no-referrer\r\n"
            "Content-Security-Policy: %s\r\n"
            "%s"
            "Connection: %s\r\n\r\n",
            status, http_status_str((enum http_status)status), date, ctype, len,
            csp ? csp : csp_default, extra ? extra : "",
            keep ? "keep-alive" : "close");
    if (c->req.method != HTTP_HEAD) /* (HEAD itself is answered 405) */
        sb_add(&h, body, len);
    if (c->req.auth_result != NULL)
        login_log(c, status);
    if (kn_log_enabled(KN_LOG_DEBUG)) {
        char st[8], ms[24], lp[256];
        snprintf(st, sizeof(st), "%d", status);
        snprintf(ms, sizeof(ms), "%lld", (long long)(kn_mono_ms() - c->req.t0));
        kn_log(KN_LOG_DEBUG, "http", "request", "method",
               http_method_str((enum http_method)c->req.method), "path",
               log_path(c->req.path, lp, sizeof(lp)), "status", st, "source",
               c->req.source, "ms", ms, NULL);
    }
    wr = kn_xcalloc(1, sizeof(*wr));
    wr->c = c;
    wr->data = h.s;
    buf = uv_buf_init(h.s, (unsigned)h.n);
    conn_hold(c);
    if (uv_write(&wr->w, (uv_stream_t *)&c->tcp, &buf, 1, on_written) != 0) {
        free(wr->data);
        free(wr);
        c->refs--;
        conn_close(c);
        return;
    }
    c->writing = 1;
    uv_timer_start(&c->timer, on_timer,
                   (uint64_t)c->srv->cfg->http_send_timeout_ms, 0);
}

static void respond_json(struct conn *c, int status, json_t *j,
                         const char *extra)
{
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    respond(c, status, "application/json; charset=utf-8", s, strlen(s), NULL,
            extra);
    free(s);
}

/* {"error": "...", "field": "..."|null} with the status. */
static void respond_error(struct conn *c, int status, const char *field,
                          const char *fmt, ...)
{
    json_t *j = json_object();
    va_list ap;
    char msg[700];
    const char *extra = NULL;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_object_set_new(j, "error", jstr_text(msg));
    json_object_set_new(j, "field", jstr_or_null(field));
    if (status == 401)
        extra = "WWW-Authenticate: Bearer realm=\"kairan\"\r\n";
    else if (status == 503)
        extra = "Retry-After: 1\r\n";
    respond_json(c, status, j, extra);
}

/* ------------------------------------------------------------ parsing */

static void on_interim_written(uv_write_t *w, int status)
{
    struct wreq *wr = kn_container_of(w, struct wreq, w);
    struct conn *c = wr->c;
    free(wr);
    conn_release(c);
}

/* "100 Continue": the client (curl, for large bodies) waits for it
 * before sending the body.  Written before the final answer (uv_write
 * keeps the order). */
static void send_continue(struct conn *c)
{
    static char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
    struct wreq *wr = kn_xcalloc(1, sizeof(*wr));
    uv_buf_t buf = uv_buf_init(line, sizeof(line) - 1);
    wr->c = c;
    conn_hold(c);
    if (uv_write(&wr->w, (uv_stream_t *)&c->tcp, &buf, 1, on_interim_written) !=
        0) {
        free(wr);
        c->refs--;
    }
}

static int header_is(const struct sbuf *f, const char *name)
{
    return f->n == strlen(name) && strcasecmp(f->s, name) == 0;
}

static void header_done(struct req *r)
{
    char **slot = NULL;
    if (r->hfield.n == 0)
        goto out;
    if (header_is(&r->hfield, "authorization")) {
        if (r->authz != NULL)
            r->dup_authz = 1;
        slot = &r->authz;
    } else if (header_is(&r->hfield, "content-type")) {
        slot = &r->ctype;
    } else if (header_is(&r->hfield, "x-real-ip")) {
        slot = &r->real_ip;
    } else if (header_is(&r->hfield, "expect")) {
        slot = &r->expect;
    } else if (header_is(&r->hfield, "x-line-signature")) {
        slot = &r->line_sig;
    }
    if (slot != NULL) {
        free_secret(slot);
        *slot = kn_xstrndup(r->hval.s ? r->hval.s : "", r->hval.n);
    }
out:
    if (r->hval.s != NULL)
        OPENSSL_cleanse(r->hval.s, r->hval.n);
    r->hfield.n = 0;
    r->hval.n = 0;
    if (r->hfield.s)
        r->hfield.s[0] = '\0';
    if (r->hval.s)
        r->hval.s[0] = '\0';
}

static int early(http_parser *p, int status, const char *msg)
{
    struct conn *c = p->data;
    if (c->req.early_status == 0) {
        c->req.early_status = status;
        c->req.early_msg = msg;
    }
    http_parser_pause(p, 1);
    return 0;
}

static int on_message_begin(http_parser *p)
{
    struct conn *c = p->data;
    req_release(c);
    req_reset(&c->req);
    c->req.started = 1;
    c->req.t0 = kn_mono_ms();
    /* The whole head (request line and headers) within this time, from
     * its first byte: against slowloris. */
    uv_timer_start(&c->timer, on_timer,
                   (uint64_t)c->srv->cfg->http_header_timeout_ms, 0);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    if (c->req.url.n + len > HTTP_MAX_URL)
        return early(p, 414, "the URL is too long");
    sb_add(&c->req.url, at, len);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct req *r = &((struct conn *)p->data)->req;
    if (r->in_value) {
        header_done(r);
        r->in_value = 0;
    }
    r->header_bytes += len;
    if (r->hfield.n + len > 256 || r->header_bytes > HTTP_MAX_HEADERS)
        return early(p, 431, "a request header is too large");
    sb_add(&r->hfield, at, len);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct req *r = &((struct conn *)p->data)->req;
    r->in_value = 1;
    r->header_bytes += len;
    if (r->hval.n + len > HTTP_MAX_HEADER_VALUE ||
        r->header_bytes > HTTP_MAX_HEADERS)
        return early(p, 431, "a request header is too large");
    sb_add(&r->hval, at, len);
    return 0;
}

static void route_find(struct conn *c);

/* The largest body of the request's route: http.max_body only for a
 * broadcast submit, the LINE webhook's own, small for everything else. */
static const char *body_cap(struct conn *c)
{
    const struct route *rt = c->req.route;
    if (rt != NULL && rt->id == R_BC_SUBMIT) {
        c->req.body_cap = (size_t)c->srv->cfg->http_max_body;
        return "the request body is larger than http.max_body";
    }
    if (rt != NULL && rt->id == R_LINE_HOOK) {
        c->req.body_cap = (size_t)c->srv->cfg->line_webhook_max_body;
        return "the request body is larger than line.webhook_max_body";
    }
    c->req.body_cap = HTTP_SMALL_BODY;
    return "the request body is too large for this resource";
}

/*
 * The head is complete.  Its route decides the body's cap (refused with
 * 413 before a byte of it is read).  A request with a body stops here
 * (paused) until dispatch has checked its route, rate and token: a body
 * is only read for a request that may go on.
 */
static int on_headers_complete(http_parser *p)
{
    struct conn *c = p->data;
    struct req *r = &c->req;
    const char *why;
    if (r->in_value)
        header_done(r);
    r->in_value = 0;
    r->method = p->method;
    r->keep_alive = http_should_keep_alive(p);
    route_find(c);
    why = body_cap(c);
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > r->body_cap)
        return early(p, 413, why);
    r->want_continue = r->expect != NULL &&
                       strcasecmp(r->expect, "100-continue") == 0 &&
                       p->http_major == 1 && p->http_minor >= 1;
    if ((p->flags & F_CHUNKED) ||
        ((p->flags & F_CONTENTLENGTH) && p->content_length > 0)) {
        r->head_paused = 1;
        http_parser_pause(p, 1);
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    struct http_srv *s = c->srv;
    struct req *r = &c->req;
    /* Chunked bodies have no length up front: count as they come. */
    if (r->body.n + len > r->body_cap) {
        body_cap(c);
        return early(p, 413, "the request body is too large for this resource");
    }
    if (s->buffered + len > (size_t)s->cfg->http_max_buffered)
        return early(p, 503,
                     "the server holds too many request bodies now "
                     "(http.max_buffered); try again");
    sb_add(&r->body, at, len);
    c->held += len;
    s->buffered += len;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct conn *c = p->data;
    c->req.complete = 1;
    c->req.keep_alive = http_should_keep_alive(p);
    /* One request at a time: the rest of the input waits. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/*
 * Parse input.  Returns with either a request dispatched (c->busy), an
 * error answered, or everything consumed and more input wanted.  Input
 * after a complete request is kept in c->pending for conn_next.
 */
static void run_ready(struct conn *c);

static void conn_feed(struct conn *c, const char *data, size_t len)
{
    size_t n = http_parser_execute(&c->parser, &parser_settings, data, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);

    if (c->closed)
        return;
    if (e == HPE_PAUSED) {
        if (n < len) {
            char *rest = kn_xmalloc(len - n);
            memcpy(rest, data + n, len - n);
            free(c->pending);
            c->pending = rest;
            c->npending = len - n;
        }
        read_stop(c);
        c->busy = 1;
        if (c->req.early_status != 0) {
            c->close_after = 1;
            respond_error(c, c->req.early_status, NULL, "%s", c->req.early_msg);
            return;
        }
        if (c->req.ready)
            run_ready(c); /* checked at the head; the body is in */
        else
            dispatch(c);
        return;
    }
    if (e != HPE_OK) {
        read_stop(c);
        c->busy = 1;
        c->close_after = 1;
        respond_error(c, e == HPE_HEADER_OVERFLOW ? 431 : 400, NULL,
                      "malformed HTTP request: %s", http_errno_description(e));
    }
}

static void on_connection(uv_stream_t *l, int status)
{
    struct http_srv *s = l->data;
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    struct conn *c;

    if (status < 0) {
        kn_log(KN_LOG_WARN, "http", "accept failed", "error",
               uv_strerror(status), NULL);
        return;
    }
    c = kn_xcalloc(1, sizeof(*c));
    c->srv = s;
    s->live++;
    uv_tcp_init(s->d->loop, &c->tcp);
    uv_timer_init(s->d->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open_handles = 2;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    req_reset(&c->req);
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    if (s->nconns > (size_t)s->cfg->http_max_conns) {
        if (kn_mono_ms() - s->warned_full > 10000) {
            kn_log(KN_LOG_WARN, "http",
                   "too many connections (http.max_conns); refusing new "
                   "ones",
                   NULL);
            s->warned_full = kn_mono_ms();
        }
        conn_close(c);
        return;
    }
    snprintf(c->peer, sizeof(c->peer), "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)&ss, c->peer, sizeof(c->peer));
        else if (ss.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer, sizeof(c->peer));
    }
    /* An IPv4 client of a [::] listener is its IPv4 address. */
    if (strncmp(c->peer, "::ffff:", 7) == 0 && strchr(c->peer, '.') != NULL)
        memmove(c->peer, c->peer + 7, strlen(c->peer + 7) + 1);
    /* One address may not take every slot: closed at once, before a
     * byte is read, so that a flood costs an accept and a close. */
    if (!peer_is_proxy(s, c->peer) &&
        (c->slot = peer_take(s, c->peer)) == NULL) {
        if (kn_mono_ms() - s->warned_peer > 10000) {
            kn_log(KN_LOG_WARN, "http",
                   "too many connections from one address "
                   "(http.max_conns_per_peer); refusing new ones",
                   "source", c->peer, NULL);
            s->warned_peer = kn_mono_ms();
        }
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    /* A connection that sends nothing is closed after the head's time. */
    uv_timer_start(&c->timer, on_timer,
                   (uint64_t)s->cfg->http_header_timeout_ms, 0);
    read_start(c);
}

/* ------------------------------------------------------------ rate limit */

static unsigned addr_hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* Drop buckets that have refilled (they hold nothing worth keeping). */
static void rate_sweep(struct http_srv *s, int all)
{
    int64_t now = kn_mono_ms();
    double cap = (double)s->cfg->http_rate;
    for (size_t i = 0; i < RATE_SLOTS; i++) {
        struct rbucket **pp = &s->rl[i];
        while (*pp != NULL) {
            struct rbucket *b = *pp;
            double t = b->tokens + (double)(now - b->at) * cap / 1000.0;
            if (all || t >= cap) {
                *pp = b->next;
                free(b);
                s->rl_n--;
            } else {
                pp = &b->next;
            }
        }
    }
}

/*
 * Token bucket per source address: http.rate requests per second, bursts
 * of as many.  Returns 1 if the request may go on, else 0 with the
 * seconds to wait in *retry_after.
 */
static int rate_take(struct http_srv *s, const char *addr, int *retry_after)
{
    unsigned slot = addr_hash(addr) % RATE_SLOTS;
    double cap = (double)s->cfg->http_rate;
    int64_t now = kn_mono_ms();
    struct rbucket *b;

    for (b = s->rl[slot]; b != NULL; b = b->next) {
        if (strcmp(b->addr, addr) == 0)
            break;
    }
    if (b == NULL) {
        if (s->rl_n >= RATE_MAX)
            rate_sweep(s, 0);
        if (s->rl_n >= RATE_MAX)
            rate_sweep(s, 1); /* under a flood of addresses: start over */
        b = kn_xcalloc(1, sizeof(*b));
        snprintf(b->addr, sizeof(b->addr), "%s", addr);
        b->tokens = cap;
        b->at = now;
        b->next = s->rl[slot];
        s->rl[slot] = b;
        s->rl_n++;
    }
    b->tokens += (double)(now - b->at) * cap / 1000.0;
    if (b->tokens > cap)
        b->tokens = cap;
    b->at = now;
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return 1;
    }
    *retry_after = (int)((1.0 - b->tokens) / cap + 0.999);
    if (*retry_after < 1)
        *retry_after = 1;
    return 0;
}

/* ------------------------------------------------------------ batches */

/*
 * A batch: several Redis commands sent at once on d->cmd (pipelined) and
 * one callback when every reply is in.  Replies are copied (hiredis frees
 * its own when each callback returns).  done always runs, with b->c NULL
 * if the connection it answers closed meanwhile, so that it can free
 * b->arg.
 */
struct batch;
typedef void batch_done_cb(struct batch *b);

struct batch {
    struct http_srv *srv;
    struct conn *c; /* held; NULL for the server's own reads */
    batch_done_cb *done;
    void *arg;
    int n, cap, left, failed;
    redisReply **rep;
};

struct batch_slot {
    struct batch *b;
    int i;
};

static void batch_finish(struct batch *b)
{
    struct conn *c = b->c;
    if (c != NULL && !conn_release(c))
        b->c = NULL;
    b->done(b);
    for (int i = 0; i < b->n; i++)
        reply_free(b->rep[i]);
    free(b->rep);
    srv_unref(b->srv);
    free(b);
}

static struct batch *batch_new(struct http_srv *s, struct conn *c,
                               batch_done_cb *done, void *arg)
{
    struct batch *b = kn_xcalloc(1, sizeof(*b));
    b->srv = s;
    b->c = c;
    b->done = done;
    b->arg = arg;
    b->left = 1; /* until batch_end */
    s->live++;
    if (c != NULL)
        conn_hold(c);
    return b;
}

static void on_batch_reply(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct batch_slot *sl = arg;
    struct batch *b = sl->b;
    if (rep == NULL)
        b->failed = 1;
    else
        b->rep[sl->i] = reply_clone(rep);
    free(sl);
    if (--b->left == 0)
        batch_finish(b);
}

/* Send one command (a's strings; a is emptied). */
static void batch_add(struct batch *b, struct kn_argv *a)
{
    struct batch_slot *sl = kn_xmalloc(sizeof(*sl));
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 32;
        b->rep = kn_xrealloc(b->rep, (size_t)b->cap * sizeof(*b->rep));
    }
    sl->b = b;
    sl->i = b->n;
    b->rep[b->n++] = NULL;
    b->left++;
    if (kn_redis_argv(b->srv->d->cmd, on_batch_reply, sl, 0, a->n,
                      (const char **)a->v, a->len) < 0) {
        b->failed = 1;
        b->left--;
        free(sl);
    }
    kn_argv_clear(a);
}

/* Add a command from a NULL-terminated list of strings. */
static void batch_cmd(struct batch *b, const char *first, ...)
    __attribute__((sentinel));

static void batch_cmd(struct batch *b, const char *first, ...)
{
    struct kn_argv a;
    va_list ap;
    kn_argv_init(&a);
    va_start(ap, first);
    for (const char *s = first; s != NULL; s = va_arg(ap, const char *))
        kn_argv_add(&a, s);
    va_end(ap);
    batch_add(b, &a);
    kn_argv_free(&a);
}

static void batch_end(struct batch *b)
{
    if (--b->left == 0)
        batch_finish(b);
}

static const redisReply *brep(const struct batch *b, int i)
{
    return i >= 0 && i < b->n ? b->rep[i] : NULL;
}

/* ------------------------------------------------------------ queue gauges */

/* Commands 0..GATHER_N-1 of a batch: three per stream, then retry, dlq,
 * active.  The same reads as kairanctl status, and never more. */
#define GATHER_N (3 * KN_QUEUE_STREAMS + 3)

static void gather_add(struct batch *b)
{
    struct kn_daemon *d = b->srv->d;
    char *k;
    for (int i = 0; i < KN_QUEUE_STREAMS; i++) {
        k = kn__key(d, "q:%s", kn_queue_stream_name(i));
        batch_cmd(b, "XLEN", k, NULL);
        batch_cmd(b, "XPENDING", k, KN_GROUP, NULL);
        batch_cmd(b, "XRANGE", k, "-", "+", "COUNT", "1", NULL);
        free(k);
    }
    k = kn__key(d, "retry");
    batch_cmd(b, "ZCARD", k, NULL);
    free(k);
    k = kn__key(d, "dlq");
    batch_cmd(b, "XLEN", k, NULL);
    free(k);
    k = kn__key(d, "active");
    batch_cmd(b, "ZCARD", k, NULL);
    free(k);
}

static void gather_parse(const struct batch *b, struct qstats *q)
{
    memset(q, 0, sizeof(*q));
    q->ok = !b->failed;
    q->at_ms = kn_now_ms();
    for (int i = 0; i < KN_QUEUE_STREAMS; i++) {
        const redisReply *len = brep(b, 3 * i), *pend = brep(b, 3 * i + 1),
                         *first = brep(b, 3 * i + 2);
        q->len[i] = rnum(len);
        if (pend != NULL && pend->type == REDIS_REPLY_ARRAY &&
            pend->elements >= 1)
            q->pending[i] = rnum(pend->element[0]);
        if (first != NULL && first->type == REDIS_REPLY_ARRAY &&
            first->elements == 1 &&
            first->element[0]->type == REDIS_REPLY_ARRAY &&
            first->element[0]->elements >= 1)
            q->first_ms[i] =
                strtoll(first->element[0]->element[0]->str, NULL, 10);
    }
    q->retry = rnum(brep(b, 3 * KN_QUEUE_STREAMS));
    q->dlq = rnum(brep(b, 3 * KN_QUEUE_STREAMS + 1));
    q->active = rnum(brep(b, 3 * KN_QUEUE_STREAMS + 2));
}

static void metrics_render(struct conn *c);

static void on_gathered(struct batch *b)
{
    struct http_srv *s = b->srv;
    struct conn *w = s->waiters;
    int64_t now = kn_mono_ms();

    s->gathering = 0;
    s->waiters = NULL;
    gather_parse(b, &s->qs);
    s->qs_mono = now;
    if (s->qs.ok && now >= s->next_sample) {
        struct sample *sm = &s->hist[s->hist_head];
        memset(sm, 0, sizeof(*sm));
        sm->t = s->qs.at_ms;
        for (int i = 0; i < KN_QUEUE_STREAMS; i++)
            sm->jobs[i / 2] += s->qs.len[i];
        s->hist_head = (s->hist_head + 1) % HISTORY_N;
        if (s->hist_n < HISTORY_N)
            s->hist_n++;
        s->next_sample = now + HISTORY_EVERY_MS - 100;
    }
    while (w != NULL) {
        struct conn *next = w->wait_next;
        w->wait_next = NULL;
        if (conn_release(w))
            metrics_render(w);
        w = next;
    }
}

static void gather_start(struct http_srv *s)
{
    struct batch *b;
    if (s->gathering)
        return;
    s->gathering = 1;
    b = batch_new(s, NULL, on_gathered, NULL);
    gather_add(b);
    batch_end(b);
}

/* ------------------------------------------------------------ breakers */

struct breaker_view {
    const char *route;
    int state; /* 0 closed, 1 half-open, 2 open (as worker.c keeps it) */
};

static const char *breaker_state_name(int st)
{
    return st == 2 ? "open" : st == 1 ? "half-open" : "closed";
}

/*
 * The circuit breakers' states, per route: today one, the e-mail relay
 * ("smtp"), whose state the e-mail worker keeps in d->breaker_state.
 * When more routes get a breaker, this is the only place to change.
 */
static size_t breakers(const struct kn_daemon *d, struct breaker_view *out,
                       size_t max)
{
    if (max < 1)
        return 0;
    out[0].route = "smtp";
    out[0].state = d->breaker_state;
    return 1;
}

/* ------------------------------------------------------------ /metrics */

static void metric_head(struct sbuf *b, const char *name, const char *type,
                        const char *help)
{
    sb_addf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metrics_render(struct conn *c)
{
    static const double bounds[] = KN_LATENCY_BUCKETS;
    struct http_srv *s = c->srv;
    struct kn_daemon *d = s->d;
    const struct qstats *q = &s->qs;
    const struct kn_metrics *m = &d->metrics;
    struct breaker_view bv[8];
    size_t nb = breakers(d, bv, KN_ARRAY_SIZE(bv));
    int up = kn_redis_up(d->cmd) && q->ok;
    struct sbuf b = {0};

    metric_head(&b, "kairan_up", "gauge",
                "1 when this kairand reaches Redis and read the queues.");
    sb_addf(&b, "kairan_up %d\n", up);
    if (q->ok) {
        static const char *const fam[3][2] = {
            {"kairan_queue_depth",
             "Jobs in the stream not yet read by any worker."},
            {"kairan_queue_pending",
             "Jobs read by a worker and not yet finished."},
            {"kairan_queue_oldest_age_seconds",
             "Age of the oldest job still in the stream."}};
        for (int f = 0; f < 3; f++) {
            metric_head(&b, fam[f][0], "gauge", fam[f][1]);
            for (int i = 0; i < KN_QUEUE_STREAMS; i++) {
                const char *name = kn_queue_stream_name(i);
                const char *colon = strchr(name, ':');
                long long depth = q->len[i] - q->pending[i];
                double age = q->first_ms[i] > 0 && q->at_ms > q->first_ms[i]
                                 ? (double)(q->at_ms - q->first_ms[i]) / 1000.0
                                 : 0.0;
                sb_addf(&b, "%s{channel=\"%.*s\",priority=\"%s\"} ", fam[f][0],
                        (int)(colon - name), name, colon + 1);
                if (f == 0)
                    sb_addf(&b, "%lld\n", depth > 0 ? depth : 0);
                else if (f == 1)
                    sb_addf(&b, "%lld\n", q->pending[i]);
                else
                    sb_addf(&b, "%.3f\n", age);
            }
        }
        metric_head(&b, "kairan_retry_size", "gauge",
                    "Jobs waiting for their next attempt.");
        sb_addf(&b, "kairan_retry_size %lld\n", q->retry);
        metric_head(&b, "kairan_dlq_size", "gauge", "Dead-lettered jobs.");
        sb_addf(&b, "kairan_dlq_size %lld\n", q->dlq);
        metric_head(&b, "kairan_broadcasts_active", "gauge",
                    "Broadcasts not yet ended.");
        sb_addf(&b, "kairan_broadcasts_active %lld\n", q->active);
    }
    metric_head(&b, "kairan_in_flight", "gauge",
                "Sends in progress in this process.");
    sb_addf(&b, "kairan_in_flight %zu\n", kn__in_flight(d));
    metric_head(&b, "kairan_deliveries_total", "counter",
                "Delivery results recorded by this process.");
    for (size_t i = 0; i < m->nproviders; i++) {
        for (int st = 0; st < 3; st++)
            sb_addf(&b,
                    "kairan_deliveries_total{channel=\"%s\",provider=\"%s\","
                    "result=\"%s\"} %llu\n",
                    kn_channel_name(m->providers[i].channel),
                    m->providers[i].provider,
                    kn_status_name((enum kn_status)st),
                    (unsigned long long)m->providers[i].results[st]);
    }
    metric_head(&b, "kairan_delivery_latency_seconds", "histogram",
                "Submit to delivered, per channel.");
    for (int ch = 0; ch < KN_CH__COUNT; ch++) {
        unsigned long long cum = 0;
        for (int k = 0; k <= KN_NLATENCY; k++) {
            cum += m->latency[ch][k];
            if (k < KN_NLATENCY)
                sb_addf(&b,
                        "kairan_delivery_latency_seconds_bucket{channel="
                        "\"%s\",le=\"%g\"} %llu\n",
                        kn_channel_name((enum kn_channel)ch), bounds[k], cum);
            else
                sb_addf(&b,
                        "kairan_delivery_latency_seconds_bucket{channel="
                        "\"%s\",le=\"+Inf\"} %llu\n",
                        kn_channel_name((enum kn_channel)ch), cum);
        }
        sb_addf(&b,
                "kairan_delivery_latency_seconds_sum{channel=\"%s\"} "
                "%.6f\n",
                kn_channel_name((enum kn_channel)ch), m->latency_sum[ch]);
        sb_addf(&b,
                "kairan_delivery_latency_seconds_count{channel=\"%s\"} "
                "%llu\n",
                kn_channel_name((enum kn_channel)ch),
                (unsigned long long)m->latency_count[ch]);
    }
    metric_head(&b, "kairan_route_paused", "gauge",
                "Route paused: 0 no, 1 credentials refused, 2 quota used up.");
    for (int ch = 0; ch < KN_CH__COUNT; ch++)
        sb_addf(&b, "kairan_route_paused{channel=\"%s\"} %d\n",
                kn_channel_name((enum kn_channel)ch), d->route_paused[ch]);
    metric_head(&b, "kairan_breaker_state", "gauge",
                "Circuit breaker per route: 0 closed, 1 half-open, 2 open.");
    for (size_t i = 0; i < nb; i++)
        sb_addf(&b, "kairan_breaker_state{route=\"%s\"} %d\n", bv[i].route,
                bv[i].state);
    metric_head(&b, "kairan_rate_limit_waits_total", "counter",
                "Sends that waited for a token of a shared rate bucket.");
    for (int ch = 0; ch < KN_CH__COUNT; ch++) {
        const char *bn;
        uint64_t waits, slowed;
        for (size_t i = 0;
             d->workers[ch] &&
             kn__worker_rate(d->workers[ch], i, &bn, &waits, &slowed);
             i++)
            sb_addf(&b, "kairan_rate_limit_waits_total{bucket=\"%s\"} %llu\n",
                    bn, (unsigned long long)waits);
    }
    metric_head(&b, "kairan_rate_limit_slowdowns_total", "counter",
                "429s from a provider that halved a bucket for a minute.");
    for (int ch = 0; ch < KN_CH__COUNT; ch++) {
        const char *bn;
        uint64_t waits, slowed;
        for (size_t i = 0;
             d->workers[ch] &&
             kn__worker_rate(d->workers[ch], i, &bn, &waits, &slowed);
             i++)
            sb_addf(&b,
                    "kairan_rate_limit_slowdowns_total{bucket=\"%s\"} %llu\n",
                    bn, (unsigned long long)slowed);
    }
    metric_head(&b, "kairan_redis_reconnects_total", "counter",
                "Redis connections re-established by this process.");
    sb_addf(&b, "kairan_redis_reconnects_total %llu\n",
            (unsigned long long)kn__redis_reconnects(d));
    metric_head(&b, "kairan_token_refreshes_total", "counter",
                "Provider access tokens obtained.");
    sb_addf(&b, "kairan_token_refreshes_total %llu\n",
            (unsigned long long)m->token_refreshes);
    metric_head(&b, "kairan_token_refresh_failures_total", "counter",
                "Provider access tokens that could not be obtained.");
    sb_addf(&b, "kairan_token_refresh_failures_total %llu\n",
            (unsigned long long)m->token_refresh_failures);
    respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", b.s ? b.s : "",
            b.n, NULL, NULL);
    sb_free(&b);
}

static void run_metrics(struct conn *c)
{
    struct http_srv *s = c->srv;
    if (s->qs_mono != 0 && kn_mono_ms() - s->qs_mono < GATHER_FRESH_MS) {
        metrics_render(c);
        return;
    }
    conn_hold(c);
    c->wait_next = s->waiters;
    s->waiters = c;
    gather_start(s);
}

/* ------------------------------------------------------------ /healthz */

static void run_health(struct conn *c)
{
    struct kn_daemon *d = c->srv->d;
    struct breaker_view bv[8];
    size_t nb = breakers(d, bv, KN_ARRAY_SIZE(bv));
    int up = kn_redis_up(d->cmd), degraded = !up;
    json_t *j = json_object(), *br = json_object();

    for (size_t i = 0; i < nb; i++) {
        json_object_set_new(br, bv[i].route,
                            json_string(breaker_state_name(bv[i].state)));
        if (bv[i].state != 0)
            degraded = 1;
    }
    json_object_set_new(j, "status",
                        json_string(d->stopping ? "draining"
                                    : degraded  ? "degraded"
                                                : "ok"));
    json_object_set_new(j, "redis", json_boolean(up));
    json_object_set_new(j, "breakers", br);
    respond_json(c, !up || d->stopping ? 503 : 200, j, NULL);
}

/* ------------------------------------------------------------ /v1/queues */

static int tenant_visible(const struct conn *c, const char *tenant)
{
    if (c->req.tok.role != KN_ROLE_LIMITED_ADMIN)
        return 1;
    return tenant != NULL && c->req.tok.tenant != NULL &&
           strcmp(tenant, c->req.tok.tenant) == 0;
}

struct queues_ctx {
    json_t *root;
    struct kn_argv active, rejected;
};

/* The shared rate-limit buckets of dispatcher/worker.c. */
static const char *const rate_buckets[] = {"line:multicast", "line:push",
                                           "push:fcm", "push:apns", "sendgrid"};

static void queues_ctx_free(struct queues_ctx *q)
{
    json_decref(q->root);
    kn_argv_free(&q->active);
    kn_argv_free(&q->rejected);
    free(q);
}

static void on_queues_2(struct batch *b)
{
    struct queues_ctx *q = b->arg;
    json_t *act = json_array(), *rej = json_array();
    int k = 0;

    if (b->c == NULL) {
        queues_ctx_free(q);
        json_decref(act);
        json_decref(rej);
        return;
    }
    if (b->failed) {
        respond_error(b->c, 503, NULL, "Redis is unreachable; try again");
        queues_ctx_free(q);
        json_decref(act);
        json_decref(rej);
        return;
    }
    for (int i = 0; i < q->active.n; i++, k++) {
        const redisReply *h = brep(b, k);
        const char *st;
        json_t *o;
        if (h == NULL || h->type != REDIS_REPLY_ARRAY || h->elements != 4 ||
            !tenant_visible(b->c, rstr(h->element[3])))
            continue;
        st = rstr(h->element[0]);
        o = json_object();
        json_object_set_new(o, "id", json_string(q->active.v[i]));
        json_object_set_new(o, "status", json_string(st ? st : "?"));
        json_object_set_new(o, "jobs", json_integer(rnum(h->element[1])));
        json_object_set_new(o, "final", json_integer(rnum(h->element[2])));
        json_array_append_new(act, o);
    }
    for (int i = 0; i < q->rejected.n; i++, k++) {
        const redisReply *h = brep(b, k);
        const char *reason;
        json_t *o;
        if (h == NULL || h->type != REDIS_REPLY_ARRAY || h->elements != 3 ||
            !tenant_visible(b->c, rstr(h->element[2])))
            continue;
        reason = rstr(h->element[0]);
        o = json_object();
        json_object_set_new(o, "id", json_string(q->rejected.v[i]));
        json_object_set_new(o, "reason", json_string(reason ? reason : ""));
        json_object_set_new(o, "rejected_ms",
                            json_integer(rnum(h->element[1])));
        json_array_append_new(rej, o);
    }
    json_object_set_new(q->root, "active", act);
    json_object_set_new(q->root, "rejected", rej);
    {
        /* Last, in kairanctl's order. */
        json_t *cats = json_incref(json_object_get(q->root, "categories"));
        json_t *rate = json_incref(json_object_get(q->root, "rate"));
        json_object_del(q->root, "categories");
        json_object_del(q->root, "rate");
        json_object_set_new(q->root, "categories", cats);
        json_object_set_new(q->root, "rate", rate);
    }
    respond_json(b->c, 200, json_incref(q->root), NULL);
    queues_ctx_free(q);
}

static void on_queues_1(struct batch *b)
{
    struct http_srv *s = b->srv;
    struct queues_ctx *q;
    struct batch *b2;
    json_t *arr;
    const redisReply *ids;
    struct qstats qs;

    if (b->c == NULL)
        return;
    if (b->failed) {
        respond_error(b->c, 503, NULL, "Redis is unreachable; try again");
        return;
    }
    gather_parse(b, &qs);
    s->qs = qs; /* as fresh as it gets: the scrape cache may use it */
    s->qs_mono = kn_mono_ms();
    q = kn_xcalloc(1, sizeof(*q));
    kn_argv_init(&q->active);
    kn_argv_init(&q->rejected);
    q->root = json_object();
    arr = json_array();
    for (int i = 0; i < KN_QUEUE_STREAMS; i++) {
        const char *name = kn_queue_stream_name(i);
        const char *colon = strchr(name, ':');
        long long oldest = qs.first_ms[i] > 0 ? qs.at_ms - qs.first_ms[i] : 0;
        json_t *o = json_object();
        json_object_set_new(o, "channel",
                            json_stringn(name, (size_t)(colon - name)));
        json_object_set_new(o, "priority", json_string(colon + 1));
        json_object_set_new(o, "depth",
                            json_integer(qs.len[i] - qs.pending[i]));
        json_object_set_new(o, "pending", json_integer(qs.pending[i]));
        json_object_set_new(o, "oldest_age_ms",
                            json_integer(oldest > 0 ? oldest : 0));
        json_array_append_new(arr, o);
    }
    json_object_set_new(q->root, "queues", arr);
    json_object_set_new(q->root, "retry", json_integer(qs.retry));
    json_object_set_new(q->root, "dlq", json_integer(qs.dlq));
    {
        /* Broadcasts per category, as kairanctl status --json shows. */
        json_t *cats = json_object();
        const redisReply *h = brep(b, GATHER_N + 2);
        for (size_t i = 0;
             h && h->type == REDIS_REPLY_ARRAY && i + 1 < h->elements; i += 2)
            json_object_set_new(cats, h->element[i]->str,
                                json_integer(atoll(h->element[i + 1]->str)));
        json_object_set_new(q->root, "categories", cats);
    }
    {
        json_t *rate = json_object();
        long long now = kn_now_ms();
        for (size_t i = 0; i < KN_ARRAY_SIZE(rate_buckets); i++) {
            const redisReply *h = brep(b, GATHER_N + 3 + (int)i);
            json_t *o = json_object();
            const char *tk =
                h && h->type == REDIS_REPLY_ARRAY && h->elements == 2
                    ? rstr(h->element[0])
                    : NULL;
            const char *su =
                h && h->type == REDIS_REPLY_ARRAY && h->elements == 2
                    ? rstr(h->element[1])
                    : NULL;
            json_object_set_new(o, "tokens", json_real(tk ? atof(tk) : -1));
            json_object_set_new(o, "slowed",
                                json_boolean(su && atoll(su) > now));
            json_object_set_new(rate, rate_buckets[i], o);
        }
        json_object_set_new(q->root, "rate", rate);
    }

    b2 = batch_new(s, b->c, on_queues_2, q);
    ids = brep(b, GATHER_N);
    for (size_t i = 0;
         ids && ids->type == REDIS_REPLY_ARRAY && i < ids->elements; i++) {
        char *k = kn_key_bc(s->d->prefix, ids->element[i]->str, "");
        kn_argv_add(&q->active, ids->element[i]->str);
        batch_cmd(b2, "HMGET", k, "status", "jobs", "final", "tenant", NULL);
        free(k);
    }
    ids = brep(b, GATHER_N + 1);
    for (size_t i = 0;
         ids && ids->type == REDIS_REPLY_ARRAY && i < ids->elements; i++) {
        char *k = kn_key_bc(s->d->prefix, ids->element[i]->str, "");
        kn_argv_add(&q->rejected, ids->element[i]->str);
        batch_cmd(b2, "HMGET", k, "reason", "created_ms", "tenant", NULL);
        free(k);
    }
    batch_end(b2);
}

/* GET /v1/queues: exactly what kairanctl status --json prints (for a
 * limited_admin, the broadcast lists hold its tenant's only). */
static void run_queues(struct conn *c)
{
    struct kn_daemon *d = c->srv->d;
    struct batch *b = batch_new(c->srv, c, on_queues_1, NULL);
    char *k;
    gather_add(b);
    k = kn__key(d, "active");
    batch_cmd(b, "ZRANGE", k, "0", "49", NULL);
    free(k);
    k = kn__key(d, "rejected");
    batch_cmd(b, "ZREVRANGE", k, "0", "19", NULL);
    free(k);
    k = kn__key(d, "categories");
    batch_cmd(b, "HGETALL", k, NULL);
    free(k);
    for (size_t i = 0; i < KN_ARRAY_SIZE(rate_buckets); i++) {
        k = kn__key(d, "rate:%s", rate_buckets[i]);
        batch_cmd(b, "HMGET", k, "tokens", "slow_until", NULL);
        free(k);
    }
    batch_end(b);
}

/* GET /v1/queues/history: jobs per channel, one sample per 5 s. */
static void run_history(struct conn *c)
{
    struct http_srv *s = c->srv;
    json_t *j = json_object(), *arr = json_array(), *ch = json_array();
    size_t start = (s->hist_head + HISTORY_N - s->hist_n) % HISTORY_N;
    for (int k = 0; k < KN_CH__COUNT; k++)
        json_array_append_new(ch,
                              json_string(kn_channel_name((enum kn_channel)k)));
    for (size_t i = 0; i < s->hist_n; i++) {
        const struct sample *sm = &s->hist[(start + i) % HISTORY_N];
        json_t *o = json_object();
        json_object_set_new(o, "t", json_integer(sm->t));
        for (int k = 0; k < KN_CH__COUNT; k++)
            json_object_set_new(o, kn_channel_name((enum kn_channel)k),
                                json_integer(sm->jobs[k]));
        json_array_append_new(arr, o);
    }
    json_object_set_new(j, "interval_ms", json_integer(HISTORY_EVERY_MS));
    json_object_set_new(j, "capacity", json_integer(HISTORY_N));
    json_object_set_new(j, "channels", ch);
    json_object_set_new(j, "samples", arr);
    respond_json(c, 200, j, NULL);
}

/* ------------------------------------------------------------ broadcasts */

/* The fields of bc:<id> read for an answer (never subject or body). */
enum {
    F_STATUS,
    F_TENANT,
    F_CATEGORY,
    F_PRIORITY,
    F_DRILL,
    F_SENDER,
    F_SENDER_TOKEN,
    F_CREATED,
    F_SEND_AT,
    F_EXPIRES,
    F_FIRST,
    F_LAST,
    F_DONE,
    F_CANCELLED,
    F_JOBS,
    F_FINAL,
    F_EXPANDED,
    F_REASON,
    F_FIELD,
    F_KEY,
    F__FIXED
};
static const char *const bc_fixed[F__FIXED] = {
    "status",   "tenant",       "category",   "priority",     "drill",
    "sender",   "sender_token", "created_ms", "send_at_ms",   "expires_ms",
    "first_ms", "last_ms",      "done_ms",    "cancelled_ms", "jobs",
    "final",    "expanded",     "reason",     "field",        "key"};
#define NSTATES 5
static const char *const bc_states[NSTATES] = {"total", "delivered", "failed",
                                               "expired", "cancelled"};
#define BC_NFIELDS (F__FIXED + KN_CH__COUNT * NSTATES)

static void bc_hmget(struct batch *b, const struct kn_daemon *d, const char *id)
{
    struct kn_argv a;
    kn_argv_init(&a);
    kn_argv_add(&a, "HMGET");
    kn_argv_take(&a, kn_key_bc(d->prefix, id, ""));
    for (int i = 0; i < F__FIXED; i++)
        kn_argv_add(&a, bc_fixed[i]);
    for (int ch = 0; ch < KN_CH__COUNT; ch++) {
        for (int st = 0; st < NSTATES; st++)
            kn_argv_addf(&a, "n:%s:%s", kn_channel_name((enum kn_channel)ch),
                         bc_states[st]);
    }
    batch_add(b, &a);
    kn_argv_free(&a);
}

static const char *hf(const redisReply *h, int f)
{
    return h != NULL && h->type == REDIS_REPLY_ARRAY && (size_t)f < h->elements
               ? rstr(h->element[f])
               : NULL;
}

static long long hfi(const redisReply *h, int f)
{
    const char *s = hf(h, f);
    return s ? strtoll(s, NULL, 10) : 0;
}

static long long hcount(const redisReply *h, int ch, int st)
{
    return hfi(h, F__FIXED + ch * NSTATES + st);
}

/* May this token see this broadcast (by its hash)? */
static int bc_visible(const struct conn *c, const redisReply *h)
{
    const struct token *t = &c->req.tok;
    const char *tenant = hf(h, F_TENANT), *owner = hf(h, F_SENDER_TOKEN);
    switch (t->role) {
    case KN_ROLE_ADMIN:
    case KN_ROLE_OPERATOR: /* the active list only: routes decide */
        return 1;
    case KN_ROLE_LIMITED_ADMIN:
        return tenant != NULL && t->tenant != NULL &&
               strcmp(tenant, t->tenant) == 0;
    case KN_ROLE_SENDER:
        return owner != NULL && strcmp(owner, t->id) == 0;
    default:
        return 0;
    }
}

static int bc_ended(const redisReply *h)
{
    const char *st = hf(h, F_STATUS);
    return hf(h, F_DONE) != NULL || (st && strcmp(st, "rejected") == 0);
}

static int bc_percent(const redisReply *h)
{
    long long jobs = hfi(h, F_JOBS), fin = hfi(h, F_FINAL);
    int pct;
    if (bc_ended(h))
        return 100;
    if (jobs <= 0)
        return 0;
    pct = (int)(fin * 100 / jobs);
    return pct > 99 ? 99 : pct; /* 100 only once it has ended */
}

/*
 * A broadcast as JSON.  full: every field (GET /v1/broadcasts/{id});
 * else the summary for the active list (no sender name: operators see
 * the list too).
 */
static json_t *bc_json(const char *id, const redisReply *h, int full)
{
    json_t *o = json_object(), *counts = json_object();
    long long tot[NSTATES] = {0}, jobs = hfi(h, F_JOBS), fin = hfi(h, F_FINAL);
    const char *st = hf(h, F_STATUS);

    for (int ch = 0; ch < KN_CH__COUNT; ch++) {
        json_t *c;
        long long fin_ch = 0;
        if (hf(h, F__FIXED + ch * NSTATES) == NULL)
            continue; /* no job on this channel */
        c = json_object();
        for (int s = 0; s < NSTATES; s++) {
            long long v = hcount(h, ch, s);
            tot[s] += v;
            if (s > 0)
                fin_ch += v;
            json_object_set_new(c, bc_states[s], json_integer(v));
        }
        json_object_set_new(c, "pending",
                            json_integer(hcount(h, ch, 0) - fin_ch > 0
                                             ? hcount(h, ch, 0) - fin_ch
                                             : 0));
        json_object_set_new(counts, kn_channel_name((enum kn_channel)ch), c);
    }
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "status", json_string(st ? st : "?"));
    json_object_set_new(o, "tenant", jstr_or_null(hf(h, F_TENANT)));
    json_object_set_new(o, "category", jstr_or_null(hf(h, F_CATEGORY)));
    json_object_set_new(o, "priority", jstr_or_null(hf(h, F_PRIORITY)));
    json_object_set_new(o, "created", jtime(hfi(h, F_CREATED)));
    json_object_set_new(o, "expires", jtime(hfi(h, F_EXPIRES)));
    json_object_set_new(o, "jobs", json_integer(jobs));
    json_object_set_new(o, "final", json_integer(fin));
    json_object_set_new(o, "percent", json_integer(bc_percent(h)));
    json_object_set_new(o, "ended", json_boolean(bc_ended(h)));
    if (!full) {
        json_object_set_new(o, "delivered", json_integer(tot[1]));
        json_object_set_new(o, "failed", json_integer(tot[2]));
        json_object_set_new(o, "expired", json_integer(tot[3]));
        json_object_set_new(o, "cancelled", json_integer(tot[4]));
        json_object_set_new(o, "pending",
                            json_integer(jobs - fin > 0 ? jobs - fin : 0));
        json_decref(counts);
        return o;
    }
    json_object_set_new(
        o, "drill",
        json_boolean(hf(h, F_DRILL) && strcmp(hf(h, F_DRILL), "1") == 0));
    json_object_set_new(o, "sender", jstr_or_null(hf(h, F_SENDER)));
    json_object_set_new(o, "key", jstr_or_null(hf(h, F_KEY)));
    json_object_set_new(o, "send_at", jtime(hfi(h, F_SEND_AT)));
    json_object_set_new(o, "first_delivery", jtime(hfi(h, F_FIRST)));
    json_object_set_new(o, "last_delivery", jtime(hfi(h, F_LAST)));
    json_object_set_new(o, "done", jtime(hfi(h, F_DONE)));
    json_object_set_new(o, "cancelled", jtime(hfi(h, F_CANCELLED)));
    json_object_set_new(
        o, "expanded",
        json_boolean(hf(h, F_EXPANDED) && strcmp(hf(h, F_EXPANDED), "1") == 0));
    json_object_set_new(o, "counts", counts);
    if (st != NULL && strcmp(st, "rejected") == 0) {
        json_object_set_new(o, "reason", jstr_or_null(hf(h, F_REASON)));
        json_object_set_new(o, "field", jstr_or_null(hf(h, F_FIELD)));
    }
    return o;
}

/* ---- GET /v1/broadcasts/{id} ---- */

static void on_bc_get(struct batch *b)
{
    const redisReply *h = brep(b, 0);
    if (b->c == NULL)
        return;
    if (b->failed || h == NULL || h->type != REDIS_REPLY_ARRAY) {
        respond_error(b->c, 503, NULL, "Redis is unreachable; try again");
        return;
    }
    /* One answer whether it does not exist or this token may not see
     * it: a tenant learns nothing of another's broadcasts. */
    if (hf(h, F_STATUS) == NULL || !bc_visible(b->c, h)) {
        if (hf(h, F_STATUS) != NULL) /* the login log says so; not the answer */
            b->c->req.auth_result = "forbidden";
        respond_error(b->c, 404, "id", "no broadcast %s", b->c->req.param);
        return;
    }
    respond_json(b->c, 200, bc_json(b->c->req.param, h, 1), NULL);
}

/* ---- GET /v1/broadcasts?key=K[&tenant=T] ---- */

static void on_bc_by_key(struct batch *b)
{
    const redisReply *r = brep(b, 0);
    struct batch *b2;
    if (b->c == NULL)
        return;
    if (b->failed) {
        respond_error(b->c, 503, NULL, "Redis is unreachable; try again");
        return;
    }
    if (r == NULL || r->type != REDIS_REPLY_STRING) {
        respond_error(b->c, 404, "key", "no broadcast has this key");
        return;
    }
    /* From here it is GET /v1/broadcasts/{name}. */
    free(b->c->req.param);
    b->c->req.param = kn_xstrdup(r->str);
    b2 = batch_new(b->srv, b->c, on_bc_get, NULL);
    bc_hmget(b2, b->srv->d, b->c->req.param);
    batch_end(b2);
}

/* The percent-decoded value of name in the query, or NULL.  Heap. */
static char *query_get(const char *q, const char *name)
{
    size_t n = strlen(name);
    while (q != NULL && *q) {
        if (strncmp(q, name, n) == 0 && q[n] == '=') {
            const char *v = q + n + 1;
            size_t len = strcspn(v, "&"), o = 0;
            char *out = kn_xmalloc(len + 1);
            for (size_t i = 0; i < len; i++) {
                int hi = i + 2 < len ? hexval(v[i + 1]) : -1;
                int lo = i + 2 < len ? hexval(v[i + 2]) : -1;
                if (v[i] == '%' && hi >= 0 && lo >= 0) {
                    out[o++] = (char)(hi << 4 | lo);
                    i += 2;
                } else {
                    out[o++] = v[i] == '+' ? ' ' : v[i];
                }
            }
            out[o] = '\0';
            if (o != strlen(out)) { /* a NUL inside */
                free(out);
                return NULL;
            }
            return out;
        }
        q = strchr(q, '&');
        if (q != NULL)
            q++;
    }
    return NULL;
}

/*
 * A tenant's broadcast by the idempotency key its producer gave ("id" in
 * the submitted JSON).  The tenant is the token's; a token of no tenant
 * (admin, operator) names it with tenant=T.
 */
static void run_bc_by_key(struct conn *c)
{
    char *key = query_get(c->req.query, "key"), *tenant = NULL, *k;
    struct batch *b;
    if (key == NULL || !kn_id_valid(key)) {
        free(key);
        respond_error(c, 400, "key",
                      "give the key as ?key=K: the \"id\" the broadcast was "
                      "submitted with (1-128 letters, digits, '-', '_', '.', "
                      "':')");
        return;
    }
    if (c->req.tok.tenant != NULL && c->req.tok.tenant[0] != '\0')
        tenant = kn_xstrdup(c->req.tok.tenant);
    else
        tenant = query_get(c->req.query, "tenant");
    if (tenant == NULL || !kn_tenant_valid(tenant)) {
        free(key);
        free(tenant);
        respond_error(c, 400, "tenant",
                      "this token has no tenant: add &tenant=T");
        return;
    }
    b = batch_new(c->srv, c, on_bc_by_key, NULL);
    k = kn_key_idem(c->srv->d->prefix, tenant);
    batch_cmd(b, "HGET", k, key, NULL);
    free(k);
    free(key);
    free(tenant);
    batch_end(b);
}

static void run_bc_get(struct conn *c)
{
    struct batch *b;
    if (!kn_id_valid(c->req.param)) {
        respond_error(c, 404, "id", "no broadcast with such an id");
        return;
    }
    b = batch_new(c->srv, c, on_bc_get, NULL);
    bc_hmget(b, c->srv->d, c->req.param);
    batch_end(b);
}

/* ---- GET /v1/broadcasts?active=1 ---- */

static void on_bc_list_2(struct batch *b)
{
    struct kn_argv *ids = b->arg;
    json_t *j, *arr;
    if (b->c == NULL)
        goto out;
    if (b->failed) {
        respond_error(b->c, 503, NULL, "Redis is unreachable; try again");
        goto out;
    }
    j = json_object();
    arr = json_array();
    for (int i = 0; i < ids->n; i++) {
        const redisReply *h = brep(b, i);
        if (hf(h, F_STATUS) == NULL || !bc_visible(b->c, h))
            continue;
        json_array_append_new(arr, bc_json(ids->v[i], h, 0));
    }
    json_object_set_new(j, "broadcasts", arr);
    respond_json(b->c, 200, j, NULL);
out:
    kn_argv_free(ids);
    free(ids);
}

static int argv_has(const struct kn_argv *a, const char *s)
{
    for (int i = 0; i < a->n; i++) {
        if (strcmp(a->v[i], s) == 0)
            return 1;
    }
    return 0;
}

static void on_bc_list_1(struct batch *b)
{
    struct kn_argv *ids;
    struct batch *b2;
    if (b->c == NULL)
        return;
    if (b->failed) {
        respond_error(b->c, 503, NULL, "Redis is unreachable; try again");
        return;
    }
    ids = kn_xcalloc(1, sizeof(*ids));
    kn_argv_init(ids);
    for (int k = 0; k < 2; k++) {
        const redisReply *r = brep(b, k);
        for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY &&
                           i < r->elements && ids->n < LIST_MAX;
             i++) {
            if (rstr(r->element[i]) && !argv_has(ids, r->element[i]->str))
                kn_argv_add(ids, r->element[i]->str);
        }
    }
    b2 = batch_new(b->srv, b->c, on_bc_list_2, ids);
    for (int i = 0; i < ids->n; i++)
        bc_hmget(b2, b->srv->d, ids->v[i]);
    batch_end(b2);
}

static int query_has(const char *q, const char *kv)
{
    size_t n = strlen(kv);
    while (q != NULL && *q) {
        if (strncmp(q, kv, n) == 0 && (q[n] == '\0' || q[n] == '&'))
            return 1;
        q = strchr(q, '&');
        if (q != NULL)
            q++;
    }
    return 0;
}

/* Active broadcasts, and those created in the last minutes (so that one
 * that just ended still shows its final bar). */
static void run_bc_list(struct conn *c)
{
    struct kn_daemon *d = c->srv->d;
    struct batch *b;
    char *k, min[32];
    if (c->req.query != NULL && (strncmp(c->req.query, "key=", 4) == 0 ||
                                 strstr(c->req.query, "&key=") != NULL)) {
        run_bc_by_key(c);
        return;
    }
    if (!query_has(c->req.query, "active=1")) {
        respond_error(c, 400, "active",
                      "only the active list can be read: add ?active=1, or "
                      "find one broadcast by its key with ?key=K");
        return;
    }
    b = batch_new(c->srv, c, on_bc_list_1, NULL);
    k = kn__key(d, "active");
    batch_cmd(b, "ZRANGE", k, "0", "99", NULL);
    free(k);
    k = kn__key(d, "bcs");
    snprintf(min, sizeof(min), "%lld", (long long)(kn_now_ms() - RECENT_MS));
    batch_cmd(b, "ZREVRANGEBYSCORE", k, "+inf", min, "LIMIT", "0", "50", NULL);
    free(k);
    batch_end(b);
}

/* ---- POST /v1/broadcasts ---- */

static int is_json_type(const char *ct)
{
    size_t n;
    if (ct == NULL)
        return 0;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    n = strcspn(ct, "; \t");
    return n == strlen("application/json") &&
           strncasecmp(ct, "application/json", n) == 0;
}

static void audit_op(struct conn *c, const char *op, const char *id,
                     const char *tenant)
{
    json_t *j = json_object();
    char t[48], *line;
    json_object_set_new(j, "time",
                        json_string(kn_time_jst(kn_now_ms(), t, sizeof(t))));
    json_object_set_new(j, "op", json_string(op));
    json_object_set_new(j, "broadcast", json_string(id));
    json_object_set_new(j, "tenant", jstr_or_null(tenant));
    json_object_set_new(j, "token", json_string(c->req.tok.id));
    json_object_set_new(j, "role", json_string(kn_role_name(c->req.tok.role)));
    json_object_set_new(j, "name", jstr_or_null(c->req.tok.name));
    json_object_set_new(j, "source", json_string(c->req.source));
    json_object_set_new(j, "via", json_string("http"));
    line = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (kn_audit_append(c->srv->cfg->audit_dir, "operations.jsonl", line) < 0)
        kn_log(KN_LOG_WARN, "http", "cannot append to the operation log", "dir",
               c->srv->cfg->audit_dir, "error", strerror(errno), NULL);
    free(line);
}

static void on_dup_check(struct batch *b)
{
    struct conn *c = b->c;
    const redisReply *h = brep(b, 0);
    json_t *j;
    if (c == NULL)
        return;
    if (b->failed || hf(h, F_STATUS) == NULL) {
        respond_error(c, 503, "id",
                      "Redis is unreachable; submit again with the same id");
        return;
    }
    /* The key is the tenant's own (idem:<tenant>), so the broadcast found
     * is of the same tenant; checked all the same. */
    if (!bc_visible(c, h)) {
        respond_error(c, 500, NULL, "the broadcast could not be stored");
        return;
    }
    j = json_object();
    json_object_set_new(j, "id", json_string(c->req.bc_id));
    json_object_set_new(j, "key", jstr_or_null(c->req.bc_key));
    json_object_set_new(j, "duplicate", json_true());
    json_object_set_new(j, "status", json_string(hf(h, F_STATUS)));
    respond_json(c, 200, j, NULL);
}

static void on_submitted(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct conn *c = arg;
    struct batch *b;
    json_t *j;
    char loc[300];
    if (!conn_release(c))
        return;
    if (rep == NULL) {
        /* The script may or may not have run: the id makes a retry safe. */
        j = json_object();
        json_object_set_new(j, "error",
                            json_string("Redis did not answer; submit again "
                                        "with the same id (it is "
                                        "idempotent)"));
        json_object_set_new(j, "field", json_null());
        json_object_set_new(j, "id", json_string(c->req.bc_id));
        respond_json(c, 503, j, "Retry-After: 1\r\n");
        return;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER ||
        rep->element[1]->type != REDIS_REPLY_STRING) {
        kn_log(KN_LOG_ERROR, "http", "submit script failed", "error",
               rep->type == REDIS_REPLY_ERROR ? rep->str : "bad reply", NULL);
        respond_error(c, 500, NULL, "the broadcast could not be stored");
        return;
    }
    if (rep->element[0]->integer == 0) {
        /* The tenant's broadcast that already has this key. */
        free(c->req.bc_id);
        c->req.bc_id = kn_xstrdup(rep->element[1]->str);
        b = batch_new(c->srv, c, on_dup_check, NULL);
        bc_hmget(b, c->srv->d, c->req.bc_id);
        batch_end(b);
        return;
    }
    kn_log(KN_LOG_INFO, "http", "broadcast submitted", "bc", c->req.bc_id,
           "token", c->req.tok.id, NULL);
    audit_op(c, "broadcast.submit", c->req.bc_id, c->req.bc_tenant);
    j = json_object();
    json_object_set_new(j, "id", json_string(c->req.bc_id));
    json_object_set_new(j, "key", jstr_or_null(c->req.bc_key));
    snprintf(loc, sizeof(loc), "Location: /v1/broadcasts/%s\r\n", c->req.bc_id);
    respond_json(c, 202, j, loc);
}

/* 1 if group is in the comma list. */
static int group_allowed(const char *list, const char *group)
{
    size_t n = strlen(group);
    const char *p = list;
    while (p != NULL && *p) {
        size_t len = strcspn(p, ",");
        if (len == n && strncmp(p, group, n) == 0)
            return 1;
        p += len;
        if (*p == ',')
            p++;
    }
    return 0;
}

/*
 * Role rules for a submitted broadcast.  Returns 0 or answers 403 and
 * returns -1.
 *  1. limited_admin and sender: the tenant is their own (when the body
 *     names none, it was set to theirs before parsing).
 *  2. sender: no inline recipients and no directory ids, only groups its
 *     token lists.
 */
static int submit_allowed(struct conn *c, const struct kn_broadcast *b)
{
    const struct token *t = &c->req.tok;
    if (t->role == KN_ROLE_ADMIN)
        return 0;
    if (t->tenant == NULL || strcmp(b->tenant, t->tenant) != 0) {
        respond_error(c, 403, "tenant",
                      "this token may submit only for tenant \"%s\"",
                      t->tenant ? t->tenant : "");
        return -1;
    }
    if (t->role != KN_ROLE_SENDER)
        return 0;
    if (b->nrcpts > 0) {
        respond_error(c, 403, "recipients",
                      "a sender may not give inline recipients: a sender's "
                      "token may reach only the directory groups it lists, "
                      "and inline addresses would go around that; use "
                      "audience.groups");
        return -1;
    }
    if (b->nrcpt_ids > 0) {
        respond_error(c, 403, "audience.recipients",
                      "a sender may address only the groups its token "
                      "lists; use audience.groups");
        return -1;
    }
    for (size_t i = 0; i < b->ngroups; i++) {
        if (!group_allowed(t->groups, b->groups[i])) {
            char f[48];
            snprintf(f, sizeof(f), "audience.groups[%zu]", i);
            respond_error(c, 403, f,
                          "this token may not address group \"%s\"; it may "
                          "address: %s",
                          b->groups[i], t->groups ? t->groups : "(none)");
            return -1;
        }
    }
    return 0;
}

static void run_bc_submit(struct conn *c)
{
    struct http_srv *s = c->srv;
    struct kn_daemon *d = s->d;
    const struct kn_config *cfg = s->cfg;
    struct kn_limits lim = {cfg->max_subject, cfg->max_body,
                            cfg->max_recipients, cfg->default_ttl_ms};
    struct kn_broadcast b;
    struct kn_argv a;
    char err[600], field[128];
    const char *json = c->req.body.s ? c->req.body.s : "";
    size_t len = c->req.body.n;
    char *patched = NULL;
    json_t *root;
    int rc;

    if (!is_json_type(c->req.ctype)) {
        respond_error(c, 415, NULL,
                      "send the broadcast as Content-Type: application/json");
        return;
    }
    /* "tenant forced to its own": a body without one gets the token's. */
    if (c->req.tok.role != KN_ROLE_ADMIN && c->req.tok.tenant != NULL &&
        (root = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL)) != NULL) {
        if (json_is_object(root) && json_object_get(root, "tenant") == NULL) {
            json_object_set_new(root, "tenant", json_string(c->req.tok.tenant));
            patched = json_dumps(root, JSON_COMPACT);
            json = patched;
            len = strlen(patched);
        }
        json_decref(root);
    }
    rc = kn_broadcast_parse(json, len, &lim, &b, err, sizeof(err), field,
                            sizeof(field));
    free(patched);
    if (rc < 0) {
        respond_error(c, 400, field[0] ? field : NULL, "%s", err);
        return;
    }
    if (submit_allowed(c, &b) < 0) {
        kn_broadcast_free(&b);
        return;
    }
    if (!kn_redis_up(d->cmd)) {
        kn_broadcast_free(&b);
        respond_error(c, 503, NULL, "Redis is unreachable; try again");
        return;
    }
    b.id = kn_broadcast_new_id();
    /* The name is stored in the broadcast, so that it stays after the
     * token is revoked; "sender" from the body is not trusted. */
    free(b.sender);
    b.sender = kn_xstrdup(c->req.tok.name ? c->req.tok.name : c->req.tok.id);
    c->req.bc_id = kn_xstrdup(b.id);
    c->req.bc_tenant = kn_xstrdup(b.tenant);
    c->req.bc_key = b.key != NULL ? kn_xstrdup(b.key) : NULL;

    kn_argv_init(&a);
    {
        const char *extra[] = {"sender_token", c->req.tok.id, NULL};
        kn_broadcast_submit_call(&b, d->kr, d->prefix, extra, &a);
    }
    kn_broadcast_free(&b);
    conn_hold(c);
    if (kn_redis_eval(d->cmd, &kn_script_submit, on_submitted, c, 6, a.n,
                      (const char **)a.v, a.len) < 0) {
        c->refs--;
        respond_error(c, 503, NULL, "Redis is unreachable; try again");
    }
    for (int i = 0; i < a.n; i++)
        OPENSSL_cleanse(a.v[i], a.len[i]);
    kn_argv_free(&a);
}

/* ---- POST /v1/broadcasts/{id}/cancel ---- */

static void on_cancelled(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct conn *c = arg;
    json_t *j;
    if (!conn_release(c))
        return;
    if (rep == NULL || rep->type != REDIS_REPLY_STRING) {
        respond_error(c, 503, NULL, "Redis did not answer; cancel again");
        return;
    }
    if (rep->str[0] == '\0') {
        respond_error(c, 404, "id", "no broadcast %s", c->req.param);
        return;
    }
    if (strcmp(rep->str, "cancelled") != 0) {
        respond_error(c, 409, "id", "broadcast %s is already %s", c->req.param,
                      strncmp(rep->str, "already:", 8) == 0 ? rep->str + 8
                                                            : rep->str);
        return;
    }
    kn_log(KN_LOG_INFO, "http", "broadcast cancelled", "bc", c->req.param,
           "token", c->req.tok.id, NULL);
    audit_op(c, "broadcast.cancel", c->req.param, c->req.bc_tenant);
    j = json_object();
    json_object_set_new(j, "id", json_string(c->req.param));
    json_object_set_new(j, "status", json_string("cancelled"));
    respond_json(c, 200, j, NULL);
}

static void on_cancel_check(struct batch *b)
{
    struct conn *c = b->c;
    const redisReply *h = brep(b, 0);
    struct kn_daemon *d = b->srv->d;
    struct kn_argv a;
    if (c == NULL)
        return;
    if (b->failed || h == NULL) {
        respond_error(c, 503, NULL, "Redis is unreachable; try again");
        return;
    }
    if (hf(h, F_STATUS) == NULL || !bc_visible(c, h)) {
        if (hf(h, F_STATUS) != NULL) /* the login log says so; not the answer */
            c->req.auth_result = "forbidden";
        respond_error(c, 404, "id", "no broadcast %s", c->req.param);
        return;
    }
    free(c->req.bc_tenant);
    c->req.bc_tenant = dupstr(hf(h, F_TENANT));
    kn_argv_init(&a);
    kn_argv_take(&a, kn_key_bc(d->prefix, c->req.param, ""));
    kn_argv_take(&a, kn__key(d, "active"));
    kn_argv_add(&a, c->req.param);
    kn_argv_addi(&a, kn_now_ms());
    conn_hold(c);
    if (kn_redis_eval(d->cmd, &kn_script_cancel, on_cancelled, c, 2, a.n,
                      (const char **)a.v, a.len) < 0) {
        c->refs--;
        respond_error(c, 503, NULL, "Redis is unreachable; try again");
    }
    kn_argv_free(&a);
}

static void run_bc_cancel(struct conn *c)
{
    struct batch *b;
    if (c->req.body.n > 0 && !is_json_type(c->req.ctype)) {
        respond_error(c, 415, NULL,
                      "send no body, or Content-Type: application/json");
        return;
    }
    if (!kn_id_valid(c->req.param)) {
        respond_error(c, 404, "id", "no broadcast with such an id");
        return;
    }
    b = batch_new(c->srv, c, on_cancel_check, NULL);
    bc_hmget(b, c->srv->d, c->req.param);
    batch_end(b);
}

/* ------------------------------------------------------------ confirmations */

/*
 * GET and POST /a/{token}: the personal link of an "ack" broadcast.  No
 * bearer token: the signed link is the authentication, so a forged,
 * altered or unknown link (or one of a broadcast without "ack", or of a
 * recipient who is not in it) gets the same 404 and nothing is recorded.
 * GET only shows; POST records the confirmation once (idempotent).
 */
static void ack_invalid(struct conn *c)
{
    const char *p = kn__ack_page_invalid();
    respond(c, 404, "text/html; charset=utf-8", p, strlen(p), kn__ack_csp(),
            NULL);
}

static void ack_page(struct conn *c, const redisReply *rep, int thanks)
{
    char *page;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 4) {
        ack_invalid(c);
        return;
    }
    page =
        kn__ack_page(rstr(rep->element[0]) ? rstr(rep->element[0]) : "",
                     rstr(rep->element[1]) ? rstr(rep->element[1]) : "",
                     rnum(rep->element[2]) != 0, rnum(rep->element[3]), thanks);
    respond(c, 200, "text/html; charset=utf-8", page, strlen(page),
            kn__ack_csp(), NULL);
    free(page);
}

static void on_ack_viewed(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct conn *c = arg;
    if (!conn_release(c))
        return;
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
        respond_error(c, 503, NULL, "Redis is unreachable; try again");
        return;
    }
    ack_page(c, rep, c->req.method == HTTP_POST);
}

/* Run the view script (after a confirmation too: the thank-you page
 * shows the message and the recorded time). */
static void ack_view(struct conn *c)
{
    struct kn_daemon *d = c->srv->d;
    struct kn_argv a;
    kn_argv_init(&a);
    kn_argv_take(&a, kn_key_bc(d->prefix, c->req.bc_id, ""));
    kn_argv_take(&a, kn_key_bc(d->prefix, c->req.bc_id, ":r"));
    kn_argv_take(&a, kn_key_bc(d->prefix, c->req.bc_id, ":ack"));
    kn_argv_take(&a, kn_key_bc(d->prefix, c->req.bc_id, ":m"));
    kn_argv_add(&a, c->req.ack_rcpt);
    conn_hold(c);
    if (kn_redis_eval(d->cmd, &kn_script_ack_view, on_ack_viewed, c, 4, a.n,
                      (const char **)a.v, a.len) < 0) {
        c->refs--;
        respond_error(c, 503, NULL, "Redis is unreachable; try again");
    }
    kn_argv_free(&a);
}

static void on_ack_confirmed(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct conn *c = arg;
    if (!conn_release(c))
        return;
    if (rep == NULL || rep->type != REDIS_REPLY_INTEGER) {
        respond_error(c, 503, NULL, "Redis is unreachable; try again");
        return;
    }
    if (rep->integer < 0) {
        ack_invalid(c);
        return;
    }
    if (rep->integer == 1)
        kn_log(KN_LOG_INFO, "http", "confirmation recorded", "bc", c->req.bc_id,
               NULL);
    ack_view(c);
}

/* Check the link; 0 with bc_id and ack_rcpt set, or -1 (answered 404). */
static int ack_token(struct conn *c)
{
    char *bc = NULL, *rcpt = NULL;
    if (kn_ack_parse(c->srv->d->kr, c->req.param, &bc, &rcpt) < 0 ||
        !kn_id_valid(bc)) {
        free(bc);
        free(rcpt);
        ack_invalid(c);
        return -1;
    }
    c->req.bc_id = bc;
    c->req.ack_rcpt = rcpt;
    return 0;
}

static void run_ack_get(struct conn *c)
{
    if (ack_token(c) == 0)
        ack_view(c);
}

static void run_ack_post(struct conn *c)
{
    struct kn_daemon *d = c->srv->d;
    struct kn_argv a;
    char now[24];
    if (ack_token(c) < 0)
        return;
    snprintf(now, sizeof(now), "%lld", (long long)kn_now_ms());
    kn_argv_init(&a);
    kn_argv_take(&a, kn_key_bc(d->prefix, c->req.bc_id, ""));
    kn_argv_take(&a, kn_key_bc(d->prefix, c->req.bc_id, ":r"));
    kn_argv_take(&a, kn_key_bc(d->prefix, c->req.bc_id, ":ack"));
    kn_argv_take(&a, kn_key_bc(d->prefix, c->req.bc_id, ":m"));
    kn_argv_add(&a, c->req.ack_rcpt);
    kn_argv_add(&a, now);
    conn_hold(c);
    if (kn_redis_eval(d->cmd, &kn_script_ack_confirm, on_ack_confirmed, c, 4,
                      a.n, (const char **)a.v, a.len) < 0) {
        c->refs--;
        respond_error(c, 503, NULL, "Redis is unreachable; try again");
    }
    kn_argv_free(&a);
}

/* ------------------------------------------------------------ LINE webhook */

/*
 * POST /line/webhook: LINE tells us a user blocked (unfollow) or
 * unblocked / added (follow) the official account.  The X-Line-Signature
 * (HMAC of the raw body with line.channel_secret) is the authentication:
 * missing → 401, wrong → 403, and nothing changes.  An unfollowed user's
 * blind index goes into dead:line (the expander makes no job for it); a
 * follow takes it out, each in the order of the events' own timestamps
 * (kn_script_line_events: a redelivered old event changes nothing).
 * Answered 200 once Redis has it.
 */
struct line_marks {
    struct http_srv *srv;
    struct kn_argv events; /* "dead" | "alive", blind index, event ms */
    int dead;
};

static void on_line_event(const char *type, const char *user_id, int unblocked,
                          int64_t timestamp_ms, void *arg)
{
    struct line_marks *m = arg;
    char bi[33];
    int dead = strcmp(type, "unfollow") == 0;
    kn_blind_index(m->srv->d->kr, "line", user_id, bi);
    kn_argv_add(&m->events, dead ? "dead" : "alive");
    kn_argv_add(&m->events, bi);
    kn_argv_addi(&m->events, timestamp_ms);
    m->dead |= dead;
}

static void on_line_marked(struct batch *b)
{
    struct conn *c = b->c;
    if (c == NULL)
        return;
    if (b->failed) {
        respond_error(c, 500, NULL, "Redis is unreachable; send it again");
        return;
    }
    respond_json(c, 200, json_object(), NULL);
}

static void line_mark(struct batch *b, struct kn_argv *events)
{
    struct kn_argv a;
    kn_argv_init(&a);
    kn_argv_add(&a, "EVAL");
    kn_argv_add(&a, kn_script_line_events.src);
    kn_argv_add(&a, "2");
    kn_argv_take(&a, kn__key(b->srv->d, "dead:line"));
    kn_argv_take(&a, kn__key(b->srv->d, "line:event_ms"));
    kn_argv_extend(&a, events);
    batch_add(b, &a);
    kn_argv_free(&a);
}

static void run_line_hook(struct conn *c)
{
    const char *secret = c->srv->cfg->line_channel_secret;
    struct line_marks m;
    struct batch *b;
    int n;

    /* line_admit checked the secret, the header and the limits; the
     * body is at most line.webhook_max_body.  The signature first, then
     * the JSON. */
    if (!kn_line_webhook_verify(secret, c->req.body.s ? c->req.body.s : "",
                                c->req.body.n, c->req.line_sig)) {
        kn_log(KN_LOG_WARN, "http", "LINE webhook with a bad signature",
               "source", c->req.source, NULL);
        respond_error(c, 403, NULL, "bad X-Line-Signature");
        return;
    }
    memset(&m, 0, sizeof(m));
    m.srv = c->srv;
    kn_argv_init(&m.events);
    n = kn_line_webhook_events(c->req.body.s ? c->req.body.s : "",
                               c->req.body.n, on_line_event, &m);
    if (n < 0) {
        respond_error(c, 400, NULL, "the body is not a LINE webhook object");
    } else if (n == 0) {
        respond_json(c, 200, json_object(), NULL);
    } else {
        kn_log(KN_LOG_INFO, "http", "LINE follow/unfollow events", "unfollow",
               m.dead ? "yes" : "no", NULL);
        b = batch_new(c->srv, c, on_line_marked, NULL);
        line_mark(b, &m.events);
        batch_end(b);
    }
    kn_argv_free(&m.events);
}

/* ------------------------------------------------------------ the page */

/* The page's three files, web/status/index.html, status.css and
 * status.js, embedded at build time (scripts/embed.c; the Makefile's
 * WEB_STATUS).  Keep the script free of inline handlers (the CSP allows
 * only script-src 'self'). */
extern const char kn__web_status_html[], kn__web_status_css[],
    kn__web_status_js[];
extern const size_t kn__web_status_html_len, kn__web_status_css_len,
    kn__web_status_js_len;

static void run_page(struct conn *c)
{
    respond(c, 200, "text/html; charset=utf-8", kn__web_status_html,
            kn__web_status_html_len, csp_page, NULL);
}

static void run_css(struct conn *c)
{
    respond(c, 200, "text/css; charset=utf-8", kn__web_status_css,
            kn__web_status_css_len, csp_page, NULL);
}

/* Browsers ask for it; an empty answer keeps their consoles quiet. */
static void run_favicon(struct conn *c)
{
    respond(c, 204, "image/x-icon", "", 0, csp_page, NULL);
}

static void run_js(struct conn *c)
{
    respond(c, 200, "text/javascript; charset=utf-8", kn__web_status_js,
            kn__web_status_js_len, csp_page, NULL);
}

/* ------------------------------------------------------------ routing */

#define READERS                                                                \
    (ROLE(KN_ROLE_ADMIN) | ROLE(KN_ROLE_LIMITED_ADMIN) | ROLE(KN_ROLE_OPERATOR))

static const struct route routes[] = {
    {R_PAGE, HTTP_GET, "/", 0, 1, run_page},
    {R_JS, HTTP_GET, "/status.js", 0, 1, run_js},
    {R_CSS, HTTP_GET, "/status.css", 0, 1, run_css},
    {R_FAVICON, HTTP_GET, "/favicon.ico", 0, 1, run_favicon},
    {R_HEALTH, HTTP_GET, "/healthz", 0, 0, run_health},
    {R_METRICS, HTTP_GET, "/metrics",
     ROLE(KN_ROLE_ADMIN) | ROLE(KN_ROLE_OPERATOR), 1, run_metrics},
    {R_QUEUES, HTTP_GET, "/v1/queues", READERS, 1, run_queues},
    {R_HISTORY, HTTP_GET, "/v1/queues/history", READERS, 1, run_history},
    {R_BC_LIST, HTTP_GET, "/v1/broadcasts", READERS | ROLE(KN_ROLE_SENDER), 1,
     run_bc_list},
    {R_BC_SUBMIT, HTTP_POST, "/v1/broadcasts", STAFF | ROLE(KN_ROLE_SENDER), 1,
     run_bc_submit},
    {R_BC_GET, HTTP_GET, "/v1/broadcasts/{}", STAFF | ROLE(KN_ROLE_SENDER), 1,
     run_bc_get},
    {R_BC_CANCEL, HTTP_POST, "/v1/broadcasts/{}/cancel", STAFF, 1,
     run_bc_cancel},
    {R_ACK_GET, HTTP_GET, "/a/{}", 0, 1, run_ack_get},
    {R_ACK_POST, HTTP_POST, "/a/{}", 0, 1, run_ack_post},
    /* Not rate-limited: LINE's few servers carry every user's events;
     * the signature is checked before anything else. */
    {R_LINE_HOOK, HTTP_POST, "/line/webhook", 0, 0, run_line_hook},
};

/* Does path match pattern?  The {} segment is copied into *param. */
static int path_match(const char *pattern, const char *path, char **param)
{
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (p[0] == '{' && p[1] == '}') {
            size_t n = strcspn(s, "/");
            if (n == 0)
                return 0;
            if (param != NULL) {
                free(*param);
                *param = kn_xstrndup(s, n);
            }
            s += n;
            p += 2;
            continue;
        }
        if (*p != *s)
            return 0;
        p++;
        s++;
    }
    return *p == '\0' && *s == '\0';
}

/* Percent-decode a path; NULL if malformed or if it would hold NUL. */
static char *path_decode(const char *s, size_t n)
{
    char *out = kn_xmalloc(n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        hi = i + 2 < n ? hexval(s[i + 1]) : -1;
        lo = i + 2 < n ? hexval(s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            free(out);
            return NULL;
        }
        *o++ = (char)(hi * 16 + lo);
        i += 2;
    }
    *o = '\0';
    return out;
}

static int valid_ip(const char *s)
{
    unsigned char buf[16];
    return uv_inet_pton(AF_INET, s, buf) == 0 ||
           uv_inet_pton(AF_INET6, s, buf) == 0;
}

/* ---- authentication ---- */

static void refuse(struct conn *c, int status, const char *result,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void refuse(struct conn *c, int status, const char *result,
                   const char *fmt, ...)
{
    va_list ap;
    char msg[300];
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    c->req.auth_result = result;
    respond_error(c, status, NULL, "%s", msg);
}

static void go(struct conn *c);

static void authorized(struct conn *c)
{
    const struct route *rt = c->req.route;
    if (!(rt->roles & ROLE(c->req.tok.role))) {
        refuse(c, 403, "forbidden", "a %s token may not %s %s",
               kn_role_name(c->req.tok.role),
               rt->method == HTTP_POST ? "POST to" : "read", c->req.path);
        return;
    }
    c->req.auth_result = "ok";
    go(c);
}

static void on_tenant(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct conn *c = arg;
    if (!conn_release(c))
        return;
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
        respond_error(c, 503, NULL,
                      "Redis is unreachable: the token cannot be checked");
        return;
    }
    if (rnum(rep) > 0) {
        refuse(c, 403, "tenant_closed",
               "tenant %s is closed (kairanctl tenant close): its tokens no "
               "longer work",
               c->req.tok.tenant);
        return;
    }
    authorized(c);
}

/* A token of a closed tenant (kairanctl tenant close) stops working at
 * once: its tenant's record is read on every request. */
static void tenant_check(struct conn *c)
{
    struct kn_daemon *d = c->srv->d;
    char *key;
    if (c->req.tok.tenant == NULL || c->req.tok.tenant[0] == '\0') {
        authorized(c);
        return;
    }
    key = kn__key(d, "tenant:%s", c->req.tok.tenant);
    conn_hold(c);
    if (kn_redis_cmd(d->cmd, on_tenant, c, "HGET %s closed_ms", key) < 0) {
        c->refs--;
        respond_error(c, 503, NULL,
                      "Redis is unreachable: the token cannot be checked");
    }
    free(key);
}

static void on_token(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct conn *c = arg;
    struct token *t = &c->req.tok;
    const char *secret = NULL, *salt, *hash, *role;
    char id[KN_TOKEN_ID_MAX + 1], want[65];
    long long expires, revoked;

    if (!conn_release(c))
        return;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 8) {
        respond_error(c, 503, NULL,
                      "Redis is unreachable: the token cannot be checked");
        return;
    }
    role = rstr(rep->element[0]);
    salt = rstr(rep->element[6]);
    hash = rstr(rep->element[7]);
    if (role == NULL || salt == NULL || hash == NULL) {
        refuse(c, 401, "unknown", "invalid token");
        return;
    }
    /* The header was checked in auth_start; split it again for the
     * secret (it is never copied anywhere else). */
    if (kn_token_split(c->req.authz + 7, id, &secret) != 0) {
        refuse(c, 401, "malformed", "invalid token");
        return;
    }
    kn_token_hash(c->srv->d->kr, salt, secret, want);
    free_secret(&c->req.authz);
    if (strlen(hash) != 64 || CRYPTO_memcmp(want, hash, 64) != 0) {
        OPENSSL_cleanse(want, sizeof(want));
        refuse(c, 401, "wrong_secret", "invalid token");
        return;
    }
    OPENSSL_cleanse(want, sizeof(want));
    t->role = kn_role_parse(role);
    t->tenant = dupstr(rstr(rep->element[1]));
    t->name = dupstr(rstr(rep->element[2]));
    t->groups = dupstr(rstr(rep->element[3]));
    expires = rnum(rep->element[4]);
    revoked = rnum(rep->element[5]);
    if (revoked > 0) {
        refuse(c, 401, "revoked", "this token was revoked");
        return;
    }
    if (expires > 0 && kn_now_ms() >= expires) {
        refuse(c, 401, "expired", "this token has expired");
        return;
    }
    if (t->role < 0) {
        refuse(c, 401, "unknown_role", "this token has no valid role");
        return;
    }
    tenant_check(c);
}

/*
 * Check the bearer token of a request that needs one: its form here, its
 * record in Redis (on_token), then the route's roles.  Every outcome is
 * one login-log line (written with the answer).
 */
static void auth_start(struct conn *c)
{
    struct req *r = &c->req;
    struct kn_daemon *d = c->srv->d;
    const char *secret;
    char *key;
    int rc;

    if (r->authz == NULL) {
        refuse(c, 401, "missing",
               "this needs a token: send Authorization: Bearer kn_...");
        return;
    }
    if (r->dup_authz || strncasecmp(r->authz, "Bearer ", 7) != 0) {
        refuse(c, 401, "malformed",
               "malformed Authorization: send one \"Bearer kn_...\" "
               "header");
        return;
    }
    rc = kn_token_split(r->authz + 7, r->tok.id, &secret);
    if (rc == KN_EINVAL) {
        r->tok.id[0] = '\0';
        refuse(c, 401, "malformed",
               "malformed token: kairan tokens look like kn_<id>_<secret>");
        return;
    }
    if (rc == KN_EPERM) {
        refuse(c, 401, "too_weak",
               "token too weak: its secret must be %d characters (32 "
               "random bytes); create one with kairanctl token create",
               KN_TOKEN_SECRET_CHARS);
        return;
    }
    if (!kn_redis_up(d->cmd)) {
        respond_error(c, 503, NULL,
                      "Redis is unreachable: the token cannot be checked");
        return;
    }
    key = kn__key(d, "token:%s", r->tok.id);
    conn_hold(c);
    if (kn_redis_cmd(d->cmd, on_token, c,
                     "HMGET %s role tenant name groups expires_ms "
                     "revoked_ms salt hash",
                     key) < 0) {
        c->refs--;
        respond_error(c, 503, NULL,
                      "Redis is unreachable: the token cannot be checked");
    }
    free(key);
}

/* The route of the request's target (r->route NULL: none; r->path NULL:
 * a malformed target).  Called when the head is complete. */
static void route_find(struct conn *c)
{
    struct req *r = &c->req;
    const char *url = r->url.s ? r->url.s : "";
    const char *q = strchr(url, '?');
    size_t plen = q ? (size_t)(q - url) : strlen(url);

    r->allow[0] = '\0';
    r->route = NULL;
    if (url[0] != '/' || (r->path = path_decode(url, plen)) == NULL)
        return;
    if (q != NULL)
        r->query = kn_xstrdup(q + 1);
    for (size_t i = 0; i < KN_ARRAY_SIZE(routes); i++) {
        if (!path_match(routes[i].pattern, r->path, NULL))
            continue;
        if (routes[i].method == r->method) {
            r->route = &routes[i];
            path_match(r->route->pattern, r->path, &r->param);
            break;
        }
        snprintf(r->allow + strlen(r->allow),
                 sizeof(r->allow) - strlen(r->allow), "%s%s",
                 r->allow[0] ? ", " : "",
                 http_method_str((enum http_method)routes[i].method));
    }
}

/* The body is in: run the route. */
static void run_ready(struct conn *c)
{
    c->req.route->run(c);
}

/*
 * Every check passed.  A request without a body runs now; one with a
 * body (paused after its head) reads it now, and runs when it is in.
 */
static void go(struct conn *c)
{
    struct req *r = &c->req;
    char *p;
    size_t n;
    if (r->complete || !r->head_paused) {
        run_ready(c);
        return;
    }
    r->ready = 1;
    c->busy = 0;
    if (r->want_continue)
        send_continue(c);
    body_timer(c);
    http_parser_pause(&c->parser, 0);
    if (c->npending > 0) {
        p = c->pending;
        n = c->npending;
        c->pending = NULL;
        c->npending = 0;
        conn_feed(c, p, n);
        free(p);
        if (c->closed || c->busy)
            return;
    }
    read_start(c);
}

/*
 * The LINE webhook's own limits, for all of LINE's servers together (they
 * carry every user's events, so a limit per address would be no limit or
 * stop everyone): the signature header must be there (checked against
 * the body once it is in, before any parsing), line.webhook_rate requests
 * a second and line.webhook_concurrency at once.
 */
static int line_admit(struct conn *c)
{
    struct http_srv *s = c->srv;
    const struct kn_config *cfg = s->cfg;
    double cap = (double)cfg->line_webhook_rate;
    int64_t now = kn_mono_ms();

    if (cfg->line_channel_secret == NULL ||
        cfg->line_channel_secret[0] == '\0') {
        respond_error(c, 403, NULL,
                      "the LINE webhook is off: set line.channel_secret");
        return 0;
    }
    if (c->req.line_sig == NULL || c->req.line_sig[0] == '\0') {
        respond_error(c, 401, NULL, "missing X-Line-Signature");
        return 0;
    }
    if (s->line_at == 0)
        s->line_tokens = cap;
    else
        s->line_tokens += (double)(now - s->line_at) * cap / 1000.0;
    if (s->line_tokens > cap)
        s->line_tokens = cap;
    s->line_at = now;
    if (s->line_tokens < 1.0) {
        json_t *j = json_object();
        json_object_set_new(j, "error",
                            json_string("too many LINE webhook requests "
                                        "(line.webhook_rate); try again"));
        json_object_set_new(j, "field", json_null());
        respond_json(c, 429, j, "Retry-After: 1\r\n");
        return 0;
    }
    if (s->line_active >= cfg->line_webhook_concurrency) {
        respond_error(c, 503, NULL,
                      "too many LINE webhook requests at once "
                      "(line.webhook_concurrency); try again");
        return 0;
    }
    s->line_tokens -= 1.0;
    s->line_active++;
    c->req.line_slot = 1;
    return 1;
}

/*
 * A request whose head is complete (and, without a body, the whole of
 * it): its route (400, 404, 405), its source address's rate (429), its
 * token (401, 403), then go.  An answer given here before a body is read
 * closes the connection: the body is never read or held.
 */
static void dispatch(struct conn *c)
{
    struct http_srv *s = c->srv;
    struct req *r = &c->req;
    const struct route *found = r->route;
    int retry;

    snprintf(r->source, sizeof(r->source), "%s", c->peer);
    /* Behind the documented nginx, the client's address comes in
     * X-Real-IP; only a peer of http.trusted_proxies may set it. */
    if (r->real_ip != NULL && peer_is_proxy(s, c->peer) && valid_ip(r->real_ip))
        snprintf(r->source, sizeof(r->source), "%s", r->real_ip);
    if (c->parser.upgrade)
        c->close_after = 1;
    if (r->path == NULL) {
        respond_error(c, 400, NULL, "malformed request target");
        return;
    }
    if ((found == NULL || found->limited) &&
        !(found != NULL && found->id == R_METRICS &&
          s->cfg->http_metrics_open) &&
        !rate_take(s, r->source, &retry)) {
        char extra[48];
        json_t *j = json_object();
        snprintf(extra, sizeof(extra), "Retry-After: %d\r\n", retry);
        json_object_set_new(j, "error",
                            json_string("too many requests from this "
                                        "address; wait and try again"));
        json_object_set_new(j, "field", json_null());
        respond_json(c, 429, j, extra);
        return;
    }
    if (found == NULL && r->allow[0] != '\0') {
        char extra[96];
        json_t *j = json_object();
        snprintf(extra, sizeof(extra), "Allow: %s\r\n", r->allow);
        json_object_set_new(j, "error", json_string("method not allowed here"));
        json_object_set_new(j, "field", json_null());
        respond_json(c, 405, j, extra);
        return;
    }
    if (found == NULL) {
        respond_error(c, 404, NULL, "no such resource: %s", r->path);
        return;
    }
    if (found->id == R_LINE_HOOK && !line_admit(c))
        return;
    if (found->roles == 0 ||
        (found->id == R_METRICS && s->cfg->http_metrics_open)) {
        go(c);
        return;
    }
    auth_start(c);
}

/* ------------------------------------------------------------ module */

static void on_tick(uv_timer_t *t)
{
    struct http_srv *s = t->data;
    int64_t now = kn_mono_ms();
    if (s->closing)
        return;
    if (now >= s->next_sweep) {
        rate_sweep(s, 0);
        s->next_sweep = now + 10000;
    }
    if (now >= s->next_sample && kn_redis_up(s->d->cmd))
        gather_start(s);
}

/* "host:port" or "[v6]:port" into addr; 0 or KN_ECONFIG.  The parser is
 * config's, so that kairand --check accepts exactly what the start does. */
static int listen_addr(const char *spec, struct sockaddr_storage *addr)
{
    return kn_config_listen_parse(spec, addr);
}

/* http.trusted_proxies (checked by the config) as peer names read. */
static void proxies_parse(struct http_srv *s, const char *list)
{
    const char *p = list ? list : "";
    while (*p && s->nproxies < PROXIES_MAX) {
        char one[64];
        unsigned char buf[16];
        size_t n;
        p += strspn(p, " \t,");
        n = strcspn(p, " \t,");
        if (n == 0)
            break;
        snprintf(one, sizeof(one), "%.*s", (int)n, p);
        p += n;
        if (uv_inet_pton(AF_INET, one, buf) == 0)
            uv_inet_ntop(AF_INET, buf, s->proxies[s->nproxies++], 64);
        else if (uv_inet_pton(AF_INET6, one, buf) == 0)
            uv_inet_ntop(AF_INET6, buf, s->proxies[s->nproxies++], 64);
    }
}

static int http_open(struct kn_daemon *d, void **state)
{
    const struct kn_config *cfg = d->cfg;
    struct sockaddr_storage addr;
    struct http_srv *s;
    int rc;

    *state = NULL;
    if (cfg->http_listen == NULL || cfg->http_listen[0] == '\0') {
        kn_log(KN_LOG_INFO, "http", "HTTP is off (http.listen is empty)", NULL);
        return 0;
    }
    memset(&addr, 0, sizeof(addr));
    if (listen_addr(cfg->http_listen, &addr) < 0) {
        kn_log(KN_LOG_ERROR, "http", "cannot use http.listen", "listen",
               cfg->http_listen, "fix",
               "write host:port with a numeric address, e.g. "
               "127.0.0.1:8025 or [::1]:8025",
               NULL);
        return KN_ECONFIG;
    }
    http_parser_set_max_header_size(HTTP_MAX_HEADERS + 1024);
    kn__ack_scripts_init();
    s = kn_xcalloc(1, sizeof(*s));
    s->d = d;
    s->cfg = cfg;
    proxies_parse(s, cfg->http_trusted_proxies);
    uv_tcp_init(d->loop, &s->listener);
    uv_timer_init(d->loop, &s->tick);
    s->listener.data = s->tick.data = s;
    s->live = 2;
    rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc =
            uv_listen((uv_stream_t *)&s->listener, HTTP_BACKLOG, on_connection);
    if (rc != 0) {
        /* Several kairand processes on one host share one config: the
         * first serves HTTP, the others work the queues without it.  Any
         * other error is a configuration to fix. */
        int in_use = rc == UV_EADDRINUSE;
        kn_log(in_use ? KN_LOG_WARN : KN_LOG_ERROR, "http",
               in_use ? "http.listen is in use (another kairand on this "
                        "host?): this process serves no HTTP"
                      : "cannot listen",
               "listen", cfg->http_listen, "error", uv_strerror(rc), NULL);
        s->closing = 1;
        uv_close((uv_handle_t *)&s->listener, on_srv_handle_closed);
        uv_close((uv_handle_t *)&s->tick, on_srv_handle_closed);
        return in_use ? 0 : KN_ECONFIG;
    }
    uv_timer_start(&s->tick, on_tick, 200, 1000);
    kn_log(KN_LOG_INFO, "http", "listening", "listen", cfg->http_listen,
           "metrics", cfg->http_metrics_open ? "open" : "token", NULL);
    *state = s;
    return 0;
}

static void http_close(struct kn_daemon *d, void *state)
{
    struct http_srv *s = state;
    if (s == NULL)
        return;
    s->closing = 1;
    uv_timer_stop(&s->tick);
    uv_close((uv_handle_t *)&s->tick, on_srv_handle_closed);
    uv_close((uv_handle_t *)&s->listener, on_srv_handle_closed);
    while (s->conns != NULL)
        conn_close(s->conns);
}

struct kn_module kn_http_module = {
    .name = "http",
    .open = http_open,
    .close = http_close,
};
