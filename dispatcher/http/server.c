/*
 * server.c - kairand's HTTP server: the listener, the connections and
 * their life (keep-alive, pipelining, timeouts, lingering close) and the
 * "http" module (dispatcher/module.h) that opens and closes it all.
 *
 * Library: http-parser 2.9 (Debian's libhttp-parser-dev) over uv_tcp_t.
 * llhttp is not packaged in Debian 12, and h2o 2.2 would bring its own
 * event-loop layer, TLS and HTTP/2 stacks for a dozen routes that sit
 * behind a TLS reverse proxy anyway.  http-parser only parses (parser.c);
 * this file owns the connections: keep-alive, pipelining (the parser is
 * paused after each request and the socket is not read again until the
 * answer is written, so answers leave in order and a client cannot make
 * us buffer without bound), the connection count and timeouts.  The
 * limits per address are in limits.c, the routing table in routes.c.
 *
 * The whole folder never blocks the loop: every Redis access goes
 * through the shared "cmd" connection (d->cmd) asynchronously and
 * pipelined (batch.c).  It must never log or answer a secret: a token's
 * secret is compared in constant time and wiped (auth.c); only the token
 * id reaches the login log; addresses are sealed (kn_broadcast_submit_args)
 * before they reach Redis; the status page shows data through textContent
 * only.
 */
#include "dispatcher/http/http_int.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kn.h"
#include "common/log.h"
#include "config/config.h"
#include "dispatcher/ack.h"
#include "dispatcher/module.h"

/* ------------------------------------------------------------ server life */

void kn__httpd_srv_unref(struct http_srv *s)
{
    if (--s->live > 0 || !s->closing)
        return;
    kn__httpd_rate_free(&s->rl_api);
    kn__httpd_rate_free(&s->rl_file);
    kn__httpd_rate_free(&s->rl_hookbad);
    for (size_t i = 0; i < KN_ARRAY_SIZE(s->job_tenant); i++)
        free(s->job_tenant[i]); /* NULL unless a job outlived the server */
    json_decref(s->summary);
    json_decref(s->reg_langs);
    free(s->reg_qr);
    free(s->reg_qr_url);
    free(s);
}

static void on_srv_handle_closed(uv_handle_t *h)
{
    kn__httpd_srv_unref(h->data);
}

/* ------------------------------------------------------------ connections */

void kn__httpd_req_reset(struct req *r)
{
    kn_buf_free(&r->url);
    kn_buf_free(&r->hfield);
    kn_buf_wipe(&r->hval);
    kn_buf_free(&r->hval);
    kn_buf_free(&r->body);
    kn__httpd_free_secret(&r->authz);
    free(r->ctype);
    free(r->real_ip);
    free(r->expect);
    free(r->line_sig);
    free(r->sg_sig);
    free(r->sg_ts);
    kn__httpd_free_secret(&r->cookie);
    free(r->origin);
    kn__httpd_free_secret(&r->csrf);
    free(r->ack_rcpt);
    free(r->ack_lang);
    free(r->ack_error);
    free(r->path);
    free(r->query);
    free(r->param);
    free(r->bc_id);
    free(r->bc_tenant);
    free(r->bc_key);
    free(r->resend_of);
    json_decref(r->remind);
    kn__httpd_token_reset(&r->tok);
    memset(r, 0, sizeof(*r));
    r->tok.role = -1;
}

/* Give back what the request holds of the server's shared limits: its
 * body bytes and its LINE webhook slot. */
void kn__httpd_req_release(struct conn *c)
{
    struct http_srv *s = c->srv;
    s->buffered -= c->held;
    if (c->slot != NULL)
        c->slot->held -= c->held;
    c->held = 0;
    if (c->req.line_slot) {
        s->line_active--;
        c->req.line_slot = 0;
    }
    if (c->req.sg_slot) {
        s->sg_active--;
        c->req.sg_slot = 0;
    }
}

static void conn_maybe_free(struct conn *c)
{
    struct http_srv *s = c->srv;
    if (!c->closed || c->open_handles > 0 || c->refs > 0)
        return;
    kn__httpd_req_reset(&c->req);
    free(c->pending);
    free(c);
    kn__httpd_srv_unref(s);
}

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    c->open_handles--;
    conn_maybe_free(c);
}

void kn__httpd_conn_close(struct conn *c)
{
    struct http_srv *s = c->srv;
    if (c->closed)
        return;
    c->closed = 1;
    kn__httpd_req_release(c);
    kn__httpd_peer_give(s, c->slot);
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
void kn__httpd_conn_hold(struct conn *c)
{
    c->refs++;
}

int kn__httpd_conn_release(struct conn *c)
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
    buf->base = c->srv->rbuf;
    buf->len = sizeof(c->srv->rbuf);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

void kn__httpd_read_start(struct conn *c)
{
    if (!c->reading && !c->closed) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->reading = 1;
        else
            kn__httpd_conn_close(c);
    }
}

void kn__httpd_read_stop(struct conn *c)
{
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

void kn__httpd_on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->closed)
        return;
    /* An answer not taken within send_timeout_ms: the client does not
     * read (its window and our socket buffer are full).  Drop it. */
    if (c->writing || c->lingering || (!c->busy && !c->req.started)) {
        kn__httpd_conn_close(c);
        return;
    }
    if (c->busy)
        return; /* waiting for Redis, which has its own deadline */
    kn__httpd_read_stop(c);
    c->close_after = 1;
    c->busy = 1;
    if (c->req.ready)
        kn__httpd_respond_error(c, 408, NULL,
                                "the request body did not arrive in time");
    else
        kn__httpd_respond_error(
            c, 408, NULL, "the request head did not arrive within %lld ms",
            (long long)c->srv->cfg->http_header_timeout_ms);
}

/* While a body arrives: the next read within body_timeout_ms, the whole
 * request within HTTP_REQUEST_MS. */
void kn__httpd_body_timer(struct conn *c)
{
    int64_t left = c->req.t0 + HTTP_REQUEST_MS - kn_mono_ms();
    int64_t ms = c->srv->cfg->http_body_timeout_ms;
    if (left < ms)
        ms = left > 0 ? left : 1;
    uv_timer_start(&c->timer, kn__httpd_on_timer, (uint64_t)ms, 0);
}

static void on_shutdown(uv_shutdown_t *sh, int status)
{
    struct conn *c = sh->data;
    kn__httpd_conn_release(c);
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
    uv_timer_start(&c->timer, kn__httpd_on_timer, HTTP_LINGER_MS, 0);
    c->shut.data = c;
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        kn__httpd_conn_close(c);
        return;
    }
    kn__httpd_conn_hold(c);
    kn__httpd_read_start(c);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = st->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        kn__httpd_conn_close(c);
        return;
    }
    if (c->lingering) {
        /* A refused body (401, 413 before it was read) is not drained
         * whole: a client that sends it without waiting for 100 Continue
         * may lose the answer to the reset. */
        c->linger_bytes += (size_t)nread;
        if (c->linger_bytes >
            (c->req.complete ? HTTP_LINGER_BYTES : HTTP_LINGER_UNREAD))
            kn__httpd_conn_close(c);
        return;
    }
    if (c->req.ready && !c->req.complete)
        kn__httpd_body_timer(c);
    kn__httpd_conn_feed(c, buf->base, (size_t)nread);
}

/* After an answer is written: the next pipelined request, or wait. */
static void conn_next(struct conn *c)
{
    kn__httpd_req_release(c);
    kn__httpd_req_reset(&c->req);
    c->busy = 0;
    uv_timer_start(&c->timer, kn__httpd_on_timer, HTTP_IDLE_MS, 0);
    kn__httpd_resume(c);
}

void kn__httpd_resume(struct conn *c)
{
    char *p;
    size_t n;
    http_parser_pause(&c->parser, 0);
    if (c->npending > 0) {
        p = c->pending;
        n = c->npending;
        c->pending = NULL;
        c->npending = 0;
        kn__httpd_conn_feed(c, p, n);
        free(p);
        if (c->closed || c->busy)
            return;
    }
    kn__httpd_read_start(c);
}

void kn__httpd_on_written(uv_write_t *w, int status)
{
    struct wreq *wr = kn_container_of(w, struct wreq, w);
    struct conn *c = wr->c;
    free(wr->data);
    free(wr);
    c->writing = 0;
    if (!kn__httpd_conn_release(c))
        return;
    if (status < 0) {
        kn__httpd_conn_close(c);
        return;
    }
    if (c->close_after) {
        conn_linger(c);
        return;
    }
    conn_next(c);
}

static void on_connection(uv_stream_t *l, int status)
{
    struct http_srv *s = l->data;
    struct sockaddr_storage ss;
    char net[72];
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
    kn__httpd_req_reset(&c->req);
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
        kn__httpd_conn_close(c);
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
        kn__httpd_conn_close(c);
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
    kn__httpd_source_net(c->peer, net, sizeof(net));
    if (!kn__httpd_peer_is_proxy(s, c->peer) &&
        (c->slot = kn__httpd_peer_take(s, net)) == NULL) {
        if (kn_mono_ms() - s->warned_peer > 10000) {
            kn_log(KN_LOG_WARN, "http",
                   "too many connections from one address "
                   "(http.max_conns_per_peer); refusing new ones",
                   "source", c->peer, NULL);
            s->warned_peer = kn_mono_ms();
        }
        kn__httpd_conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    /* A connection that sends nothing is closed after the head's time. */
    uv_timer_start(&c->timer, kn__httpd_on_timer,
                   (uint64_t)s->cfg->http_header_timeout_ms, 0);
    kn__httpd_read_start(c);
}

/* ------------------------------------------------------------ module */

static void on_tick(uv_timer_t *t)
{
    struct http_srv *s = t->data;
    int64_t now = kn_mono_ms();
    if (s->closing)
        return;
    if (now >= s->next_sweep) {
        kn__httpd_rate_sweep(&s->rl_api, s->cfg->http_rate, 0);
        kn__httpd_rate_sweep(&s->rl_file, s->cfg->http_file_rate, 0);
        kn__httpd_rate_sweep(&s->rl_hookbad, KN__HOOK_BAD_RATE, 0);
        s->next_sweep = now + 10000;
    }
    if (now >= s->next_sample && kn_redis_up(s->d->cmd))
        kn__httpd_gather_start(s);
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
    /* its embedded strings checked at start, not at the first guardian's
     * request (a bad file stops kairand here, before it serves) */
    kn__httpd_unsub_init();
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
    if (cfg->redis_wait_replicas > 0) {
        s->wait = kn__redis_open(d, "wait", NULL, NULL);
        kn_redis_start(s->wait);
    }
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
        kn__httpd_conn_close(s->conns);
    if (s->wait != NULL)
        kn_redis_close(s->wait); /* pending submits get NULL replies */
    kn__httpd_line_reply_close(s);
}

struct kn_module kn_http_module = {
    .name = "http",
    .open = http_open,
    .close = http_close,
};
