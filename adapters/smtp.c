/*
 * smtp.c - e-mail through the school's relay with kairan's own SMTP client
 * on the uv loop: no threads, no libcurl (smtp_client.c is the protocol).
 *
 * Up to smtp.connections connections to the relay, each a uv_tcp_t with a
 * uv_timer_t for the RFC 5321 4.5.3.2 reply timeouts, and, with TLS, an
 * OpenSSL SSL object over two memory BIOs (the socket stays libuv's).  A
 * connection carries one message at a time, one recipient per transaction,
 * and is reused for the next (PIPELINING when the relay offers it).
 * Messages wait in one queue; the connection idle longest takes the next,
 * so they spread evenly.  A new connection is opened only with a message
 * for it: if it cannot be set up (refused, TLS, greeting 421, AUTH), that
 * message ends tempfail with the reason.  A slow relay reply holds only its
 * own connection: nothing here ever waits.
 *
 * TLS is required by default (STARTTLS, or implicit TLS for smtps://), at
 * least TLS 1.2, with the peer verified (smtp.ca_file, else the system's
 * store; host name or IP address checked); smtp.tls = none is an explicit
 * opt-out for a local relay and is logged at start: with it, mail goes
 * only to a relay whose address (the one connected to, not its name) is
 * loopback or on a local network (common/ipscope.c), and smtp.username's
 * password only to a loopback address (plain_refusal, smtp_connect.c,
 * with the relay name's addresses tried in turn); else the
 * connection ends before a byte is sent, a configuration fault that fails
 * the message tempfail like a relay that is down.
 *
 * Classification (PROVIDERS.md 6.1): the reply to the final "." 2xx
 * delivered; a refused MAIL, RCPT, DATA or "." 4xx tempfail, 5xx permfail;
 * a connection or TLS failure, a timeout or a session-level refusal
 * (greeting, EHLO, STARTTLS, AUTH) tempfail.  The detail holds the code
 * and the server's text with any address in it masked.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "adapters/adapter.h"
#include "adapters/mime.h"
#include "adapters/smtp_client.h"
#include "adapters/smtp_int.h"
#include "common/ipscope.h"
#include "common/kn.h"
#include "common/log.h"
#include "config/config.h"
#include "model/address.h"

static void pump(struct smtp *s);

/* ---- messages ---- */

static void msg_free(struct smtp_send *m)
{
    free(m->rcpt);
    free(m->from);
    free(m->data);
    free(m);
}

static void finish(struct smtp *s, struct smtp_send *m,
                   const struct kn_result *r)
{
    s->in_flight--;
    m->done(m->job, r, m->arg);
    msg_free(m);
}

static void finish_status(struct smtp *s, struct smtp_send *m,
                          enum kn_status st, const char *detail)
{
    struct kn_result r = {.status = st, .detail = detail};
    finish(s, m, &r);
}

static void enqueue(struct smtp *s, struct smtp_send *m, int head)
{
    if (head) {
        m->next = s->queued;
        s->queued = m;
        if (s->queued_tail == NULL)
            s->queued_tail = m;
        return;
    }
    m->next = NULL;
    if (s->queued_tail != NULL)
        s->queued_tail->next = m;
    else
        s->queued = m;
    s->queued_tail = m;
}

static struct smtp_send *dequeue(struct smtp *s)
{
    struct smtp_send *m = s->queued;
    if (m != NULL) {
        s->queued = m->next;
        if (s->queued == NULL)
            s->queued_tail = NULL;
        m->next = NULL;
    }
    return m;
}

/* ---- lifetime ---- */

static void smtp_unref(struct smtp *s)
{
    if (--s->refs > 0)
        return;
    SSL_CTX_free(s->ssl_ctx);
    kn__mail_conf_free(&s->mail);
    free(s->host);
    free(s->helo);
    free(s->bounce_local);
    free(s->bounce_domain);
    free(s->username);
    if (s->password != NULL) {
        explicit_bzero(s->password, strlen(s->password));
        free(s->password);
    }
    free(s);
}

void kn__smtp_conn_unref(struct conn *c)
{
    struct smtp *s = c->s;
    if (--c->refs > 0)
        return;
    if (c->sess != NULL)
        kn_smtp_session_free(c->sess);
    SSL_free(c->ssl); /* frees the BIOs */
    free(c->wbuf);
    free(c->pend);
    free(c);
    smtp_unref(s);
}

static void on_handle_closed(uv_handle_t *h)
{
    kn__smtp_conn_unref(h->data);
}

static void idle_remove(struct conn *c)
{
    struct smtp *s = c->s;
    struct conn **pp = &s->idle, *prev = NULL;
    if (!c->in_idle)
        return;
    while (*pp != NULL && *pp != c) {
        prev = *pp;
        pp = &(*pp)->inext;
    }
    if (*pp == c) {
        *pp = c->inext;
        if (s->idle_tail == c)
            s->idle_tail = prev;
    }
    c->inext = NULL;
    c->in_idle = 0;
}

/* Close the connection (no callback of it runs after this). */
static void conn_close(struct conn *c)
{
    struct smtp *s = c->s;
    if (c->dead)
        return;
    c->dead = 1;
    if (c->sess != NULL)
        kn_smtp_abort(c->sess);
    idle_remove(c);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    s->nconns--;
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

/* ---- output ---- */

static void on_written(uv_write_t *req, int status);

static void start_write(struct conn *c)
{
    uv_buf_t b;
    int r;
    if (c->writing || c->pend_len == 0 || c->dead)
        return;
    c->wbuf = c->pend;
    b = uv_buf_init(c->wbuf, (unsigned)c->pend_len);
    c->pend = NULL;
    c->pend_len = c->pend_cap = 0;
    c->writing = 1;
    c->refs++;
    r = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_written);
    if (r < 0) {
        /* Refused at once (the socket is gone): as on_written would have
         * been told, but now; the connection fails and is let go. */
        char why[120];
        free(c->wbuf);
        c->wbuf = NULL;
        c->writing = 0;
        snprintf(why, sizeof(why), "write to the relay failed: %s",
                 uv_strerror(r));
        kn__smtp_conn_fail(c, 0, why);
        kn__smtp_conn_unref(c);
    }
}

static void on_written(uv_write_t *req, int status)
{
    struct conn *c = kn_container_of(req, struct conn, wreq);
    free(c->wbuf);
    c->wbuf = NULL;
    c->writing = 0;
    if (!c->dead) {
        if (status < 0) {
            char why[120];
            snprintf(why, sizeof(why), "write to the relay failed: %s",
                     uv_strerror(status));
            kn__smtp_conn_fail(c, 0, why);
        } else {
            start_write(c);
            kn__smtp_conn_timer(c);
        }
    }
    kn__smtp_conn_unref(c);
}

/* Bytes for the socket: written at once if it takes them, else queued. */
static void net_write(struct conn *c, const char *p, size_t n)
{
    if (c->dead || n == 0)
        return;
    if (!c->writing && c->pend_len == 0) {
        uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
        int r = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (r == (int)n)
            return;
        if (r < 0 && r != UV_EAGAIN) {
            char why[120];
            snprintf(why, sizeof(why), "write to the relay failed: %s",
                     uv_strerror(r));
            kn__smtp_conn_fail(c, 0, why);
            return;
        }
        if (r > 0) {
            p += r;
            n -= (size_t)r;
        }
    }
    if (c->pend_len + n > c->pend_cap) {
        c->pend_cap = (c->pend_len + n) * 2;
        c->pend = kn_xrealloc(c->pend, c->pend_cap);
    }
    memcpy(c->pend + c->pend_len, p, n);
    c->pend_len += n;
    start_write(c);
}

/* What OpenSSL wrote into the network BIO goes to the socket. */
static void flush_tls(struct conn *c)
{
    char *p;
    long n;
    if (c->wbio == NULL)
        return;
    n = BIO_get_mem_data(c->wbio, &p);
    if (n > 0) {
        net_write(c, p, (size_t)n);
        (void)BIO_reset(c->wbio);
    }
}

/* ---- TLS ---- */

/* Why a handshake failed, as precisely as OpenSSL says. */
static void tls_reason(struct conn *c, char *buf, size_t len)
{
    long vr = SSL_get_verify_result(c->ssl);
    unsigned long e = ERR_peek_last_error();
    if (vr == X509_V_ERR_HOSTNAME_MISMATCH ||
        vr == X509_V_ERR_IP_ADDRESS_MISMATCH) {
        snprintf(buf, len,
                 "TLS: certificate verify failed: no subject alternative "
                 "name of the certificate matches the relay's host name %s "
                 "(smtp.url): %s",
                 c->s->host, X509_verify_cert_error_string(vr));
    } else if (vr != X509_V_OK) {
        snprintf(buf, len, "TLS: certificate verify failed: %s",
                 X509_verify_cert_error_string(vr));
    } else if (e != 0) {
        char es[200];
        ERR_error_string_n(e, es, sizeof(es));
        snprintf(buf, len, "TLS handshake failed: %s", es);
    } else {
        snprintf(buf, len,
                 "TLS handshake failed: the relay closed the "
                 "connection");
    }
    ERR_clear_error();
}

static void tls_handshake(struct conn *c)
{
    int r, e;
    ERR_clear_error();
    r = SSL_do_handshake(c->ssl);
    flush_tls(c);
    if (r == 1) {
        c->handshaking = 0;
        if (SSL_version(c->ssl) < TLS1_2_VERSION) {
            kn__smtp_conn_fail(c, 0,
                               "TLS: unsupported protocol version below 1.2");
            return;
        }
        if (c->dead)
            return;
        if (c->s->tls == KN_TLS_IMPLICIT)
            kn_smtp_set_tls(c->sess); /* the greeting comes next */
        else
            kn_smtp_tls_done(c->sess);
        kn__smtp_conn_timer(c);
        return;
    }
    e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return;
    {
        char why[300];
        tls_reason(c, why, sizeof(why));
        kn__smtp_conn_fail(c, 0, why);
    }
}

void kn__smtp_tls_start(struct conn *c)
{
    struct smtp *s = c->s;
    struct in6_addr a6;
    struct in_addr a4;
    c->ssl = SSL_new(s->ssl_ctx);
    if (c->ssl == NULL) {
        kn__smtp_conn_fail(c, 0,
                           "TLS: cannot create a connection (out of memory)");
        return;
    }
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_connect_state(c->ssl);
    if (inet_pton(AF_INET, s->host, &a4) == 1 ||
        inet_pton(AF_INET6, s->host, &a6) == 1) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), s->host);
    } else {
        SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        SSL_set1_host(c->ssl, s->host);
        SSL_set_tlsext_host_name(c->ssl, s->host);
    }
    c->handshaking = 1;
    kn__smtp_conn_timer(c);
    tls_handshake(c);
}

/* ---- session callbacks ---- */

/*
 * Bytes from the session to the relay.  With TLS, SSL_write takes at most
 * one record (16 KiB) per call in SSL_MODE_ENABLE_PARTIAL_WRITE: it is
 * called until all of buf is in the memory BIO (which never refuses), or
 * a message's content past its first record would be lost.
 */
static void sess_write(void *ctx, const char *buf, size_t len)
{
    struct conn *c = ctx;
    if (c->dead)
        return;
    if (c->ssl != NULL && !c->handshaking) {
        size_t off = 0;
        while (off < len) {
            int n;
            ERR_clear_error();
            n = SSL_write(c->ssl, buf + off, (int)(len - off));
            if (n <= 0) {
                char why[300];
                tls_reason(c, why, sizeof(why));
                kn__smtp_conn_fail(c, 0, why);
                return;
            }
            off += (size_t)n;
        }
        flush_tls(c);
        return;
    }
    net_write(c, buf, len);
}

static void sess_starttls(void *ctx)
{
    kn__smtp_tls_start(ctx);
}

static void start_msg(struct conn *c)
{
    c->m->msg.from = c->m->from ? c->m->from : c->s->mail.from_addr;
    c->m->msg.rcpt = c->m->rcpt;
    c->m->msg.data = c->m->data;
    kn_smtp_send(c->sess, &c->m->msg);
    kn__smtp_conn_timer(c);
}

static void sess_ready(void *ctx)
{
    struct conn *c = ctx;
    struct smtp *s = c->s;
    if (c->dead)
        return;
    if (!c->ready) {
        /* An address that greets and takes EHLO (and TLS) works; one that
         * only takes the TCP connection does not. */
        c->ready = 1;
        s->good = c->addrs[c->ai];
        s->have_good = 1;
    }
    if (c->m != NULL) { /* the message this connection was opened for */
        start_msg(c);
        return;
    }
    c->inext = NULL;
    c->in_idle = 1;
    if (s->idle_tail != NULL)
        s->idle_tail->inext = c;
    else
        s->idle = c;
    s->idle_tail = c;
    kn__smtp_conn_timer(c);
    pump(s);
}

static const char *stage_name(enum kn_smtp_stage st)
{
    switch (st) {
    case KN_SMTP_STAGE_MAIL:
        return "MAIL";
    case KN_SMTP_STAGE_RCPT:
        return "RCPT";
    case KN_SMTP_STAGE_DATA:
        return "DATA";
    default:
        return "end of DATA";
    }
}

/*
 * A transaction's end to a result: 2xx delivered, 5xx permfail, else
 * tempfail; the detail has the code, the server's text with any address
 * masked, and the step ("smtp 550: 5.1.1 u***@example.jp unknown (RCPT)").
 */
static void classify(int code, const char *text, enum kn_smtp_stage stage,
                     struct kn_result *r, char *detail, size_t len)
{
    char masked[256];
    kn_mask_text(text, masked, sizeof(masked));
    memset(r, 0, sizeof(*r));
    r->detail = detail;
    if (code / 100 == 2) {
        r->status = KN_DELIVERED;
        snprintf(detail, len, "smtp %d %s", code, masked);
    } else {
        r->status = code / 100 == 5 ? KN_PERMFAIL : KN_TEMPFAIL;
        r->refused = code / 100 == 5 && stage == KN_SMTP_STAGE_RCPT;
        snprintf(detail, len, "smtp %d: %s (%s)", code, masked,
                 stage_name(stage));
    }
}

static void sess_result(void *ctx, int code, const char *text,
                        enum kn_smtp_stage stage)
{
    struct conn *c = ctx;
    struct smtp_send *m = c->m;
    struct kn_result r;
    if (m == NULL)
        return;
    c->m = NULL;
    c->txns++;
    classify(code, text, stage, &r, m->detail, sizeof(m->detail));
    finish(c->s, m, &r);
}

static void sess_fail(void *ctx, int code, const char *why)
{
    kn__smtp_conn_fail(ctx, code, why);
}

const struct kn_smtp_cbs kn__smtp_session_cbs = {
    .write = sess_write,
    .starttls = sess_starttls,
    .ready = sess_ready,
    .result = sess_result,
    .fail = sess_fail,
};

/*
 * The connection is over.  Its message, if any, ends tempfail with the
 * reason; except on a reused connection that died before any reply to the
 * message (the relay closed it while idle): then it is taken again, once.
 */
void kn__smtp_conn_fail(struct conn *c, int code, const char *why)
{
    struct smtp *s = c->s;
    struct smtp_send *m = c->m;
    char all[512];
    /* Before its session was ready, on a connection opened for m: the
     * TCP connect, the greeting, EHLO or TLS failed (no reply, or 421),
     * and nothing of m was sent: RFC 5321 5.1, the next address.  Not on
     * another reply (a 5xx greeting, an AUTH refusal: the same relay
     * behind each address would say the same, and a password is not
     * tried against every one). */
    int early =
        m != NULL && !c->ready && c->txns == 0 && (code == 0 || code == 421);
    if (c->dead)
        return;
    c->m = NULL;
    conn_close(c);
    if (early && s->have_good && kn_sockaddr_same(&c->addrs[c->ai], &s->good))
        s->have_good = 0; /* the address that worked no longer does */
    if (early && c->naddrs > 1)
        kn__smtp_note_tried(c, code, why);
    if (early && c->ai + 1 < c->naddrs && !s->closing) {
        /* The message goes to the name's next address, on a new
         * connection. */
        char addr[INET6_ADDRSTRLEN];
        kn_ip_text((const struct sockaddr *)&c->addrs[c->ai], addr,
                   sizeof(addr));
        kn_log(KN_LOG_INFO, "smtp",
               "a relay address failed; trying the next one of its name",
               "host", s->host, "address", addr, "reason", why, NULL);
        kn__smtp_conn_new(s, m, c);
        return;
    }
    if (early && c->naddrs > 1) {
        snprintf(all, sizeof(all), "%s (each of the %d addresses of %s: %s)",
                 why, c->naddrs, s->host, c->tried);
        why = all;
    }
    if (m != NULL) {
        char masked[256];
        if (c->txns > 0 && !kn_smtp_answered(c->sess) && !m->requeued &&
            !s->closing) {
            /* No reply yet: nothing of it reached the relay's queue. */
            m->requeued = 1;
            enqueue(s, m, 1);
        } else {
            kn_mask_text(why, masked, sizeof(masked));
            snprintf(m->detail, sizeof(m->detail), "smtp: %s", masked);
            kn_log(KN_LOG_WARN, "smtp", "relay connection failed", "reason",
                   m->detail, NULL);
            finish_status(s, m, KN_TEMPFAIL, m->detail);
        }
    }
    if (!s->closing)
        pump(s);
}

/* ---- timers ---- */

static void on_timeout(uv_timer_t *t)
{
    struct conn *c = t->data;
    char why[160];
    const char *what = "the relay";
    int64_t ms = c->s->connect_ms;
    if (c->in_idle) { /* idle too long: QUIT, closed after its reply */
        idle_remove(c);
        kn_smtp_quit(c->sess);
        kn__smtp_conn_timer(c);
        return;
    }
    if (!c->connected) {
        what = "the TCP connection (smtp.timeout_ms)";
    } else if (c->handshaking) {
        what = "the TLS handshake (smtp.timeout_ms)";
    } else if (c->writing) {
        what = "the relay to take the message (smtp.data_xfer_timeout_ms)";
        ms = c->s->data_xfer_ms;
    } else {
        switch (kn_smtp_waiting(c->sess)) {
        case KN_SMTP_WAIT_GREETING:
            what = "the greeting (smtp.greeting_timeout_ms)";
            ms = c->s->greeting_ms;
            break;
        case KN_SMTP_WAIT_RCPT:
            what = "the reply to RCPT (smtp.rcpt_timeout_ms)";
            ms = c->s->rcpt_ms;
            break;
        case KN_SMTP_WAIT_DATA_INIT:
            what = "the reply to DATA (smtp.data_init_timeout_ms)";
            ms = c->s->data_init_ms;
            break;
        case KN_SMTP_WAIT_DATA_DONE:
            what = "the reply to the end of DATA (smtp.data_done_timeout_ms)";
            ms = c->s->data_done_ms;
            break;
        default:
            what = "a reply (smtp.mail_timeout_ms)";
            ms = c->s->mail_ms;
            break;
        }
    }
    snprintf(why, sizeof(why),
             "timeout: nothing complete within %lld ms waiting for %s",
             (long long)ms, what);
    kn__smtp_conn_fail(c, 0, why);
}

/* (Re)start the timer for what the connection waits for now. */
void kn__smtp_conn_timer(struct conn *c)
{
    struct smtp *s = c->s;
    int64_t ms;
    if (c->dead)
        return;
    if (!c->connected || c->handshaking) {
        ms = s->connect_ms;
    } else if (c->writing) {
        ms = s->data_xfer_ms;
    } else {
        switch (kn_smtp_waiting(c->sess)) {
        case KN_SMTP_WAIT_NONE:
            if (c->in_idle)
                uv_timer_start(&c->timer, on_timeout, IDLE_MS, 0);
            else
                uv_timer_stop(&c->timer);
            return;
        case KN_SMTP_WAIT_GREETING:
            ms = s->greeting_ms;
            break;
        case KN_SMTP_WAIT_RCPT:
            ms = s->rcpt_ms;
            break;
        case KN_SMTP_WAIT_DATA_INIT:
            ms = s->data_init_ms;
            break;
        case KN_SMTP_WAIT_DATA_DONE:
            ms = s->data_done_ms;
            break;
        case KN_SMTP_WAIT_TLS:
            ms = s->connect_ms;
            break;
        default:
            ms = s->mail_ms;
            break;
        }
    }
    uv_timer_start(&c->timer, on_timeout, (uint64_t)ms, 0);
}

/* ---- input ---- */

void kn__smtp_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct conn *c = h->data;
    (void)hint;
    *b = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

/*
 * Bytes from the relay.  A reply's timeout (kn__smtp_conn_timer) restarts only
 * when a whole reply has come (RFC 5321 4.5.3.2 times the reply, not each
 * read): a relay trickling a long reply a byte at a time cannot hold a
 * message and its connection for ever.
 */
void kn__smtp_on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    struct conn *c = st->data;
    unsigned long seen;
    if (c->dead || n == 0)
        return;
    if (n < 0) {
        char why[160];
        if (c->handshaking) {
            tls_reason(c, why, sizeof(why));
        } else if (n == UV_EOF) {
            snprintf(why, sizeof(why), "the relay closed the connection");
        } else {
            snprintf(why, sizeof(why), "reading from the relay failed: %s",
                     uv_strerror((int)n));
        }
        kn__smtp_conn_fail(c, 0, why);
        return;
    }
    seen = kn_smtp_replies(c->sess);
    if (c->ssl == NULL) {
        kn_smtp_input(c->sess, b->base, (size_t)n);
        if (kn_smtp_replies(c->sess) != seen)
            kn__smtp_conn_timer(c);
        return;
    }
    BIO_write(c->rbio, b->base, (int)n);
    if (c->handshaking) {
        tls_handshake(c);
        if (c->dead || c->handshaking)
            return;
    }
    for (;;) {
        int r, e;
        ERR_clear_error();
        r = SSL_read(c->ssl, c->plain, sizeof(c->plain));
        if (r > 0) {
            if (kn_smtp_input(c->sess, c->plain, (size_t)r) < 0 || c->dead)
                return;
            continue;
        }
        e = SSL_get_error(c->ssl, r);
        flush_tls(c);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            kn__smtp_conn_fail(c, 0, "the relay closed the TLS connection");
        } else {
            char why[300];
            tls_reason(c, why, sizeof(why));
            kn__smtp_conn_fail(c, 0, why);
        }
        return;
    }
    if (kn_smtp_replies(c->sess) != seen)
        kn__smtp_conn_timer(c);
}

/* Hand queued messages to idle connections, or open new ones. */
static void pump(struct smtp *s)
{
    while (s->queued != NULL && !s->closing) {
        struct conn *c = s->idle;
        if (c != NULL) {
            idle_remove(c);
            c->m = dequeue(s);
            start_msg(c);
        } else if (s->nconns < s->connections) {
            kn__smtp_conn_new(s, dequeue(s), NULL);
        } else {
            break;
        }
    }
}

/* ---- the adapter ---- */

/* "smtp://host[:port]" / "smtps://…" (checked by config): host and port. */
static int parse_url(const char *url, char **host, int *port)
{
    const char *h = strstr(url, "://"), *end, *colon;
    int implicit = strncmp(url, "smtps:", 6) == 0;
    if (h == NULL)
        return -1;
    h += 3;
    if (*h == '[') {
        end = strchr(h, ']');
        if (end == NULL)
            return -1;
        *host = kn_xasprintf("%.*s", (int)(end - h - 1), h + 1);
        colon = end[1] == ':' ? end + 1 : NULL;
    } else {
        colon = strrchr(h, ':');
        end = colon != NULL ? colon : h + strlen(h);
        *host = kn_xasprintf("%.*s", (int)(end - h), h);
    }
    *port = colon != NULL ? atoi(colon + 1) : implicit ? 465 : 25;
    return *port > 0 && *port < 65536 ? 0 : -1;
}

/* The EHLO name: smtp.helo, else this host's own name. */
static char *own_name(void)
{
    char name[256];
    size_t n;
    if (gethostname(name, sizeof(name)) != 0)
        return kn_xstrdup("localhost");
    name[sizeof(name) - 1] = '\0';
    n = strlen(name);
    if (n == 0 || strspn(name, "abcdefghijklmnopqrstuvwxyz"
                               "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != n)
        return kn_xstrdup("localhost");
    return kn_xstrdup(name);
}

static int tls_setup(struct smtp *s, const struct kn_config *cfg)
{
    s->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (s->ssl_ctx == NULL)
        KN_PANIC("SSL_CTX_new failed");
    SSL_CTX_set_min_proto_version(s->ssl_ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(s->ssl_ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(s->ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (cfg->smtp_ca_file != NULL) {
        if (SSL_CTX_load_verify_locations(s->ssl_ctx, cfg->smtp_ca_file,
                                          NULL) != 1) {
            char es[200];
            ERR_error_string_n(ERR_get_error(), es, sizeof(es));
            ERR_clear_error();
            kn_log(KN_LOG_ERROR, "smtp",
                   "smtp.ca_file: cannot read the CA certificates (PEM "
                   "expected)",
                   "file", cfg->smtp_ca_file, "error", es, NULL);
            return KN_ECONFIG;
        }
    } else if (SSL_CTX_set_default_verify_paths(s->ssl_ctx) != 1) {
        ERR_clear_error();
        kn_log(KN_LOG_WARN, "smtp",
               "the system's CA store cannot be read: set smtp.ca_file", NULL);
    }
    return 0;
}

static int smtp_open(struct kn_adapter *a, const struct kn_config *cfg)
{
    struct smtp *s = kn_xcalloc(1, sizeof(*s));
    int rc = kn__mail_conf_init(&s->mail, cfg);
    if (rc < 0) {
        free(s);
        return rc;
    }
    s->refs = 1;
    s->loop = a->loop;
    if (parse_url(cfg->smtp_url, &s->host, &s->port) < 0) {
        kn_log(KN_LOG_ERROR, "smtp",
               "smtp.url: expected smtp://host[:port] or smtps://host[:port]",
               NULL);
        smtp_unref(s);
        return KN_ECONFIG;
    }
    s->tls = cfg->smtp_tls;
    if (s->tls != KN_TLS_NONE && (rc = tls_setup(s, cfg)) < 0) {
        smtp_unref(s);
        return rc;
    }
    s->helo = cfg->smtp_helo ? kn_xstrdup(cfg->smtp_helo) : own_name();
    if (cfg->smtp_bounce_local != NULL && cfg->smtp_bounce_domain != NULL) {
        s->bounce_local = kn_xstrdup(cfg->smtp_bounce_local);
        s->bounce_domain = kn_xstrdup(cfg->smtp_bounce_domain);
    }
    s->username = cfg->smtp_username ? kn_xstrdup(cfg->smtp_username) : NULL;
    s->password = cfg->smtp_password ? kn_xstrdup(cfg->smtp_password) : NULL;
    s->sconf.helo = s->helo;
    s->sconf.username = s->username;
    s->sconf.password = s->password ? s->password : "";
    s->sconf.starttls = s->tls == KN_TLS_STARTTLS;
    s->connect_ms = cfg->smtp_timeout_ms;
    s->greeting_ms = cfg->smtp_greeting_timeout_ms;
    s->mail_ms = cfg->smtp_mail_timeout_ms;
    s->rcpt_ms = cfg->smtp_rcpt_timeout_ms;
    s->data_init_ms = cfg->smtp_data_init_timeout_ms;
    s->data_xfer_ms = cfg->smtp_data_xfer_timeout_ms;
    s->data_done_ms = cfg->smtp_data_done_timeout_ms;
    s->connections = (size_t)cfg->smtp_connections;
    a->priv = s;
    if (s->tls == KN_TLS_NONE)
        kn_log(KN_LOG_WARN, "smtp",
               "plaintext SMTP: smtp.tls = none was set explicitly; mail "
               "goes unencrypted, so only to a relay on this host or a local "
               "network (credentials only to this host)",
               "url", cfg->smtp_url, NULL);
    kn_log(KN_LOG_INFO, "smtp", "relay configured", "url", cfg->smtp_url, "tls",
           s->tls == KN_TLS_STARTTLS   ? "starttls"
           : s->tls == KN_TLS_IMPLICIT ? "implicit"
                                       : "none",
           "helo", s->helo, NULL);
    return 0;
}

static int smtp_send(struct kn_adapter *a, struct kn_job **jobs, size_t n,
                     kn_done_cb *done, void *arg)
{
    struct smtp *s = a->priv;
    for (size_t i = 0; i < n; i++) {
        struct kn_job *job = jobs[i];
        struct smtp_send *m = kn_xcalloc(1, sizeof(*m));
        const char *why = NULL;
        char *raw = NULL;
        size_t len = 0;
        m->job = job;
        m->done = done;
        m->arg = arg;
        s->in_flight++;
        if (s->closing) {
            finish_status(s, m, KN_TEMPFAIL, kn_detail_aborted);
            continue;
        }
        if (kn_addr_check(job->addr, &why) < 0 ||
            kn__mail_build(&s->mail, job, &raw, &len) < 0) {
            snprintf(m->detail, sizeof(m->detail), "invalid message: %s",
                     why ? why : "control character or bad UTF-8");
            finish_status(s, m, KN_PERMFAIL, m->detail);
            continue;
        }
        if (kn_smtp_dot_stuff(raw, len, &m->data, &m->msg.len) < 0) {
            free(raw);
            snprintf(m->detail, sizeof(m->detail),
                     "invalid message: a line longer than 998 octets or a "
                     "NUL");
            finish_status(s, m, KN_PERMFAIL, m->detail);
            continue;
        }
        free(raw);
        m->rcpt = kn_addr_quote(job->addr);
        if (job->bounce_ref != NULL && s->bounce_local != NULL &&
            s->bounce_domain != NULL)
            m->from = kn_xasprintf("%s+%s@%s", s->bounce_local, job->bounce_ref,
                                   s->bounce_domain);
        enqueue(s, m, 0);
    }
    pump(s);
    return 0;
}

static size_t smtp_in_flight(struct kn_adapter *a)
{
    return ((struct smtp *)a->priv)->in_flight;
}

/*
 * One message waiting per connection besides the one it sends: a
 * connection that ends a transaction takes the next at once, without
 * waiting for the worker to record the result and hand one over.
 */
static size_t smtp_capacity(struct kn_adapter *a)
{
    return 2 * ((struct smtp *)a->priv)->connections;
}

/*
 * Stop: every message not finished ends tempfail "aborted" (a message the
 * relay accepted was already recorded as delivered); idle plaintext
 * connections get a QUIT; the memory goes when the last handle is closed.
 */
static void smtp_close(struct kn_adapter *a)
{
    struct smtp *s = a->priv;
    struct smtp_send *m;
    s->closing = 1;
    while ((m = dequeue(s)) != NULL)
        finish_status(s, m, KN_TEMPFAIL, kn_detail_aborted);
    while (s->conns != NULL) {
        struct conn *c = s->conns;
        m = c->m;
        c->m = NULL;
        if (m == NULL && c->ssl == NULL && c->connected &&
            kn_smtp_waiting(c->sess) == KN_SMTP_WAIT_NONE && !c->writing &&
            c->pend_len == 0) {
            uv_buf_t b = uv_buf_init((char *)"QUIT\r\n", 6);
            (void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        }
        conn_close(c);
        if (m != NULL)
            finish_status(s, m, KN_TEMPFAIL, kn_detail_aborted);
    }
    a->priv = NULL;
    smtp_unref(s);
}

const struct kn_adapter_ops kn_adapter_smtp = {
    .name = "smtp",
    .max_batch = 1,
    .open = smtp_open,
    .send = smtp_send,
    .in_flight = smtp_in_flight,
    .capacity = smtp_capacity,
    .close = smtp_close,
    .failover = "sendgrid",
};
