/*
 * parser.c - reading a request off a connection: http-parser's callbacks,
 * the size limits of the URL, headers and body (a body is refused with
 * 413 on its Content-Length before a byte of it is read, and checked
 * again on the running count), "100 Continue", and conn_feed, which hands
 * a complete head to the routing (routes.c).
 */
#include "dispatcher/http/http_int.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/kn.h"
#include "config/config.h"

/* ------------------------------------------------------------ parsing */

static void on_interim_written(uv_write_t *w, int status)
{
    struct wreq *wr = kn_container_of(w, struct wreq, w);
    struct conn *c = wr->c;
    free(wr);
    kn__httpd_conn_release(c);
}

/* "100 Continue": the client (curl, for large bodies) waits for it
 * before sending the body.  Written before the final answer (uv_write
 * keeps the order). */
void kn__httpd_send_continue(struct conn *c)
{
    static char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
    struct wreq *wr = kn_xcalloc(1, sizeof(*wr));
    uv_buf_t buf = uv_buf_init(line, sizeof(line) - 1);
    wr->c = c;
    kn__httpd_conn_hold(c);
    if (uv_write(&wr->w, (uv_stream_t *)&c->tcp, &buf, 1, on_interim_written) !=
        0) {
        free(wr);
        c->refs--;
    }
}

static int header_is(const struct kn_buf *f, const char *name)
{
    return kn_buf_len(f) == strlen(name) &&
           strcasecmp(kn_buf_str(f), name) == 0;
}

/* A Transfer-Encoding field line's value (OWS around it): 1 if it is
 * exactly "chunked", the only coding kairand understands. */
static int te_is_chunked(const char *v, size_t n)
{
    while (n > 0 && (v[0] == ' ' || v[0] == '\t')) {
        v++;
        n--;
    }
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    return n == 7 && strncasecmp(v, "chunked", 7) == 0;
}

static void header_done(struct req *r)
{
    char **slot = NULL;
    /* A trailer field (after a chunked body) is never taken as a header:
     * RFC 9110 6.5.1 forbids merging what no definition allows, and the
     * head was checked (route, token, CSRF) before the body was read. */
    if (kn_buf_len(&r->hfield) == 0 || r->trailer)
        goto out;
    if (header_is(&r->hfield, "transfer-encoding")) {
        /* http-parser reads only the last of several lines; another
         * reader may take the first.  One line, "chunked", is framed
         * the same by everyone (on_headers_complete refuses the rest). */
        r->te_lines++;
        if (!te_is_chunked(kn_buf_str(&r->hval), kn_buf_len(&r->hval)))
            r->te_other = 1;
    } else if (header_is(&r->hfield, "host")) {
        r->host_lines++;
    } else if (header_is(&r->hfield, "authorization")) {
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
    } else if (header_is(&r->hfield,
                         "x-twilio-email-event-webhook-signature")) {
        slot = &r->sg_sig;
    } else if (header_is(&r->hfield,
                         "x-twilio-email-event-webhook-timestamp")) {
        slot = &r->sg_ts;
    } else if (header_is(&r->hfield, "cookie")) {
        slot = &r->cookie;
    } else if (header_is(&r->hfield, "origin")) {
        slot = &r->origin;
    } else if (header_is(&r->hfield, "x-csrf-token")) {
        slot = &r->csrf;
    } else if (header_is(&r->hfield, "x-kairan-background")) {
        r->background =
            kn_buf_len(&r->hval) == 1 && kn_buf_str(&r->hval)[0] == '1';
    }
    if (slot != NULL) {
        kn__httpd_free_secret(slot);
        *slot = kn_xstrndup(kn_buf_str(&r->hval), kn_buf_len(&r->hval));
    }
out:
    kn_buf_wipe(&r->hval); /* may hold a token */
    kn_buf_reset(&r->hfield);
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
    kn__httpd_req_release(c);
    kn__httpd_req_reset(&c->req);
    c->req.started = 1;
    c->req.t0 = kn_mono_ms();
    /* The whole head (request line and headers) within this time, from
     * its first byte: against slowloris. */
    uv_timer_start(&c->timer, kn__httpd_on_timer,
                   (uint64_t)c->srv->cfg->http_header_timeout_ms, 0);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    if (kn_buf_len(&c->req.url) + len > HTTP_MAX_URL)
        return early(p, 414, "the URL is too long");
    kn_buf_addn(&c->req.url, at, len);
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
    if (kn_buf_len(&r->hfield) + len > 256 ||
        r->header_bytes > HTTP_MAX_HEADERS)
        return early(p, 431, "a request header is too large");
    kn_buf_addn(&r->hfield, at, len);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct req *r = &((struct conn *)p->data)->req;
    r->in_value = 1;
    r->header_bytes += len;
    if (kn_buf_len(&r->hval) + len > HTTP_MAX_HEADER_VALUE ||
        r->header_bytes > HTTP_MAX_HEADERS)
        return early(p, 431, "a request header is too large");
    kn_buf_addn(&r->hval, at, len);
    return 0;
}

/* The largest body of the request's route: http.max_body only for a
 * broadcast submit (and its preview, its "send to me", a template) and a
 * roster import, the LINE webhook's own, small for everything else. */
static const char *body_cap(struct conn *c)
{
    const struct route *rt = c->req.route;
    if (rt != NULL && (rt->id == R_BC_SUBMIT || rt->id == R_BC_PREVIEW ||
                       rt->id == R_BC_TEST || rt->id == R_TPL_PUT ||
                       rt->id == R_DIR_IMPORT)) {
        c->req.body_cap = (size_t)c->srv->cfg->http_max_body;
        return "the request body is larger than http.max_body";
    }
    if (rt != NULL && rt->id == R_LINE_HOOK) {
        c->req.body_cap = (size_t)c->srv->cfg->line_webhook_max_body;
        return "the request body is larger than line.webhook_max_body";
    }
    if (rt != NULL && rt->id == R_SG_HOOK) {
        c->req.body_cap = KN_SG_HOOK_MAX_BODY;
        return "the request body is larger than the 2 MiB of a SendGrid "
               "event batch";
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
    r->trailer = 1; /* any field from here on is a trailer's */
    r->method = p->method;
    r->keep_alive = http_should_keep_alive(p);
    /* Transfer-Encoding in an HTTP/1.0 request: its framing is faulty
     * (RFC 9112 6.1; a 1.0 hop in front may not have read it as
     * chunked): answered, then the connection is closed. */
    if ((p->flags & F_CHUNKED) && p->http_major == 1 && p->http_minor == 0)
        c->close_after = 1;
    kn__httpd_route_find(c);
    /* Transfer-Encoding: one line, "chunked" (http-parser has refused
     * a coding after chunked, and chunked with Content-Length). */
    if (r->te_lines > 1)
        return early(p, 400,
                     "malformed HTTP request: Transfer-Encoding on more "
                     "than one line");
    /* RFC 9112 3.2: an HTTP/1.1 request without Host, or any with more
     * than one, is answered 400 (kairand builds no link from Host, but a
     * proxy in front may route by the first or the last). */
    if (r->host_lines > 1 ||
        (r->host_lines == 0 && p->http_major == 1 && p->http_minor >= 1))
        return early(p, 400,
                     "malformed HTTP request: an HTTP/1.1 request carries "
                     "exactly one Host header (RFC 9112 3.2)");
    if (r->te_other)
        return early(p, 501,
                     "transfer coding not implemented: only chunked is "
                     "understood (RFC 9112 6.1)");
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

/* The body bytes one client address may hold at once: a quarter of the
 * server's budget, and always room for one largest body. */
static size_t peer_cap(const struct kn_config *cfg)
{
    size_t cap = (size_t)cfg->http_max_buffered / 4;
    size_t most[] = {(size_t)cfg->http_max_body,
                     (size_t)cfg->line_webhook_max_body, KN_SG_HOOK_MAX_BODY};
    for (size_t i = 0; i < KN_ARRAY_SIZE(most); i++)
        if (most[i] > cap)
            cap = most[i];
    return cap;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    struct http_srv *s = c->srv;
    struct req *r = &c->req;
    /* Chunked bodies have no length up front: count as they come. */
    if (kn_buf_len(&r->body) + len > r->body_cap) {
        body_cap(c);
        return early(p, 413, "the request body is too large for this resource");
    }
    if (s->buffered + len > (size_t)s->cfg->http_max_buffered)
        return early(p, 503,
                     "the server holds too many request bodies now "
                     "(http.max_buffered); try again");
    if (c->slot != NULL && c->slot->held + len > peer_cap(s->cfg))
        return early(p, 503,
                     "this address holds too many request bodies now (a "
                     "quarter of http.max_buffered, or http.max_body); try "
                     "again");
    kn_buf_addn(&r->body, at, len);
    c->held += len;
    s->buffered += len;
    if (c->slot != NULL)
        c->slot->held += len;
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

/* A request refused before it is whole is never read on: what it holds
 * of the server's and its address's body budget is given back now, not
 * when the answer is written and the connection has lingered (another
 * body from the same address arriving meanwhile would be refused for
 * bytes already thrown away). */
static void refuse_body(struct conn *c)
{
    kn__httpd_req_release(c);
    kn_buf_free(&c->req.body);
}

/*
 * Parse input.  Returns with either a request dispatched (c->busy), an
 * error answered, or everything consumed and more input wanted.  Input
 * after a complete request is kept in c->pending for conn_next.
 */
void kn__httpd_conn_feed(struct conn *c, const char *data, size_t len)
{
    size_t n = http_parser_execute(&c->parser, &parser_settings, data, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    const char *bad = NULL;

    if (c->closed)
        return;
    /* What the lax parser took, held to RFC 9112 (framing.c). */
    if (e == HPE_OK || e == HPE_PAUSED)
        bad = kn__httpd_frame_check(c, data, n);
    if (bad != NULL) {
        kn__httpd_read_stop(c);
        c->busy = 1;
        c->close_after = 1;
        kn__httpd_respond_error(c, 400, NULL, "malformed HTTP request: %s",
                                bad);
        return;
    }
    if (e == HPE_PAUSED) {
        if (n < len) {
            char *rest = kn_xmalloc(len - n);
            memcpy(rest, data + n, len - n);
            free(c->pending);
            c->pending = rest;
            c->npending = len - n;
        }
        kn__httpd_read_stop(c);
        c->busy = 1;
        if (c->req.early_status != 0) {
            refuse_body(c);
            c->close_after = 1;
            kn__httpd_respond_error(c, c->req.early_status, NULL, "%s",
                                    c->req.early_msg);
            return;
        }
        if (c->req.ready)
            kn__httpd_run_ready(c); /* checked at the head; the body is in */
        else
            kn__httpd_dispatch(c);
        return;
    }
    if (e != HPE_OK) {
        kn__httpd_read_stop(c);
        c->busy = 1;
        refuse_body(c);
        c->close_after = 1;
        kn__httpd_respond_error(c, e == HPE_HEADER_OVERFLOW ? 431 : 400, NULL,
                                "malformed HTTP request: %s",
                                http_errno_description(e));
    }
}
