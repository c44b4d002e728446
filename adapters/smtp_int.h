/*
 * smtp_int.h - what adapters/smtp.c (messages, sessions, TLS, timers) and
 * adapters/smtp_connect.c (a relay name's addresses, the connect, the
 * plain-text refusal) share: the adapter's state, one connection's, and
 * the functions each calls in the other.  Internal to the SMTP adapter.
 */
#ifndef KN_ADAPTERS_SMTP_INT_H
#define KN_ADAPTERS_SMTP_INT_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include <openssl/ssl.h>

#include "adapters/adapter.h"
#include "adapters/mime.h"
#include "adapters/smtp_client.h"
#include "config/config.h"

#define RBUF_SIZE (64 * 1024)
/* A connection idle this long is closed with QUIT (Postfix's smtp(8)
 * keeps a cached connection 2 s; a relay closes idle ones after 5 min). */
#define IDLE_MS 10000

struct smtp_send {
    struct smtp_send *next;
    struct kn_job *job;
    kn_done_cb *done;
    void *arg;
    char *rcpt; /* envelope recipient, quoted as needed */
    char *from; /* VERP envelope sender, or NULL: smtp.from's address */
    char *data; /* dot-stuffed content */
    struct kn_smtp_msg msg;
    int requeued; /* taken again after a reused connection died */
    char detail[320];
};

struct conn;

/* Addresses of the relay's name tried in turn for one connection (RFC
 * 5321 5.1: the client tries each address; Postfix's smtp_mx_address_limit
 * is 5). */
#define MAX_ADDRS 5

struct smtp {
    uv_loop_t *loop;
    struct kn_mail_conf mail;
    char *host;
    int port;
    enum kn_smtp_tls tls;
    SSL_CTX *ssl_ctx;
    struct kn_smtp_conf sconf;
    char *helo, *username, *password;
    char *bounce_local, *bounce_domain; /* VERP, or NULL */
    int64_t connect_ms, greeting_ms, mail_ms, rcpt_ms, data_init_ms,
        data_xfer_ms, data_done_ms;
    size_t connections;
    size_t in_flight;
    struct smtp_send *queued, *queued_tail;
    struct conn *conns;            /* every live connection */
    struct conn *idle, *idle_tail; /* ready, without a message, FIFO */
    size_t nconns;
    int closing;
    int plain_auth_logged;   /* plain_refusal: a password refused, logged */
    int plain_remote_logged; /* plain_refusal: a remote relay, logged */
    /* The address a connection last reached: tried first while the name
     * still gives it, so that an address that does not answer (an IPv6
     * route that is not there) costs one timeout, not one per
     * connection. */
    struct sockaddr_storage good;
    int have_good;
    size_t refs; /* 1 + connections not yet freed */
};

struct conn {
    struct smtp *s;
    struct conn *next, *prev; /* s->conns */
    struct conn *inext;       /* s->idle */
    int in_idle;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t creq;
    uv_getaddrinfo_t gai;
    uv_write_t wreq;
    int refs; /* handles and requests not yet closed / called back */
    int connected, dead, txns;
    int ready; /* the session got through its greeting and EHLO once */
    struct kn_smtp_session *sess;
    SSL *ssl;
    BIO *rbio, *wbio; /* network -> SSL, SSL -> network */
    int handshaking;  /* a TLS handshake runs */
    struct smtp_send *m;
    /* The relay's addresses (one for an IP literal) and the one tried. */
    struct sockaddr_storage addrs[MAX_ADDRS];
    int naddrs, ai;
    /* How the addresses before this one failed ("192.0.2.1 timed out,
     * ..."), for the reason when every one does. */
    char tried[200];
    /* Output: wbuf is being written by uv_write; pend waits behind it. */
    char *wbuf;
    char *pend;
    size_t pend_len, pend_cap;
    int writing;
    char rbuf[RBUF_SIZE];
    char plain[16384];
};

/* smtp_connect.c: a new connection, opened for message m: to the relay's
 * name (resolved now), or, if from is not NULL (a connection that failed
 * before its session was ready), to the next of from's addresses. */
void kn__smtp_conn_new(struct smtp *s, struct smtp_send *m,
                       const struct conn *from);

/* smtp_connect.c: note how the address c tried failed (code: the reply,
 * 0 none), after the ones before it, in c->tried. */
void kn__smtp_note_tried(struct conn *c, int code, const char *why);

/* smtp.c: the connection is over (its message tempfails with why, or
 * moves to the next address); a handle or request of it is done; the
 * timer for what it waits for now; TLS from the first byte (smtps://);
 * its reads; the session's callbacks. */
void kn__smtp_conn_fail(struct conn *c, int code, const char *why);
void kn__smtp_conn_unref(struct conn *c);
void kn__smtp_conn_timer(struct conn *c);
void kn__smtp_tls_start(struct conn *c);
void kn__smtp_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b);
void kn__smtp_on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b);
extern const struct kn_smtp_cbs kn__smtp_session_cbs;

#endif
