/*
 * http.h - one HTTP(S) request on the shared curl multi/uv transport, for
 * the HTTP providers (LINE, FCM, APNs, SendGrid).  An adapter builds its
 * request and parses the answer; this file does the transfer: TLS >= 1.2
 * with the peer verified, HTTP/2 when asked (APNs, FCM), a time limit, the
 * response body and headers captured.
 */
#ifndef KN_ADAPTERS_HTTP_H
#define KN_ADAPTERS_HTTP_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "adapters/net.h"

struct kn_http_req {
    const char *method; /* "POST", "GET" */
    const char *url;
    const char *const
        *headers;     /* "Name: value", NULL-terminated; may be NULL */
    const char *body; /* may be NULL */
    size_t bodylen;
    long timeout_ms;
    const char *ca_file; /* NULL: the system's CAs */
    int http2;           /* require HTTP/2 (APNs) */
    /* 1: the provider has no idempotency key (FCM, APNs): curl must never
     * send the request again by itself (libcurl 7.88 re-sends what was in
     * flight on a connection that died, processed or not, even what the
     * server refused unprocessed: it cannot tell them apart for us).  Any
     * such loss ends the request with maybe_sent set instead. */
    int once;
    /* kn__h2pool_send only, may be NULL: called with the callback's arg
     * as the request leaves the pool's queue; the header it returns (if
     * not NULL) is sent too.  An access token renewed while the request
     * waited for room is then the one it carries. */
    const char *(*header_now)(void *arg);
};

struct kn_http_resp {
    CURLcode rc;      /* CURLE_OK if an HTTP answer came (a 2xx whose
                         body was then cut counts: the provider took the
                         request; body holds what came of it) */
    long status;      /* HTTP status, 0 if none */
    const char *body; /* NUL-terminated (bodylen bytes) */
    size_t bodylen;
    const char *error;           /* transport error text when rc != CURLE_OK */
    struct curl_slist *_headers; /* "name: value" lines received */
    /* With req.once and no answer: 1 when the request had been handed to
     * a connection, so the provider may have acted on it (sending it again
     * may duplicate); 0 when it never left. */
    int maybe_sent;
};

/* Value of a response header (case-insensitive name), or NULL. */
const char *kn_http_header(const struct kn_http_resp *r, const char *name);

/* Called once; the response is valid only during the call. */
typedef void kn_http_cb(const struct kn_http_resp *r, void *arg);

/* Start a request; cb is called exactly once (also on kn_net_close). */
void kn__http_send(struct kn_net *net, const struct kn_http_req *req,
                   kn_http_cb *cb, void *arg);

/*
 * 0 if url may be used for a provider: https://, or http:// to a loopback
 * address (tests).  Else KN_EINVAL with the reason in *why.
 */
int kn__http_url_ok(const char *url, const char **why);

/*
 * A pool of HTTP/2 connections for a provider without idempotency keys
 * (FCM, APNs): kairan, not curl, decides what goes on which connection.
 * Each connection is a curl multi handle of its own holding at most one
 * connection ("lane"), so every request is known to have been written on
 * exactly one connection; a lane carries at most `streams` requests at
 * once and `budget` requests in its life (0: no limit).  At its budget a
 * lane takes no more requests and a fresh lane replaces it at once; the
 * old one closes when its last answer came.  This keeps a connection well
 * below a server's reset limit (nghttp2 >= 1.57 sends GOAWAY after 1,000
 * RST_STREAMs, and libcurl 7.88 may reset a stream after its answer), so
 * no GOAWAY ever strands requests in flight.  Requests beyond the free
 * streams wait in the pool, in order.
 *
 * The requests in flight over all lanes are bounded by what throughput
 * needs (Little's law: kn__h2pool_limit), not by the lanes' streams
 * alone: a request in the air when kairand is killed may reach the phone
 * and is sent again by the process that takes the job over, and one
 * queued at a busy server may outlast the timeout and be retried.  A
 * waiting request costs nothing of the kind.
 */
struct kn_h2pool;

/* Fewest requests in flight a pool allows (when idle, or slow to start). */
#define KN_H2POOL_FLOOR 2

/*
 * The bound on requests in flight: rate (answers per second lately) times
 * the least round trip seen lately (rtt_us), twice (so that the server's
 * queue may hold as much again as the wire: the rate can double in one
 * measurement when requests are waiting), plus floor; at most cap, at
 * least floor.  At a steady state the round trip is then at most twice
 * the quiet one.
 */
size_t kn__h2pool_limit(double rate, double rtt_us, size_t floor, size_t cap);

struct kn_h2pool *kn__h2pool_new(uv_loop_t *loop, size_t conns, size_t streams,
                                 size_t budget);

/* As kn__http_send (req.once is implied); cb is called exactly once. */
void kn__h2pool_send(struct kn_h2pool *p, const struct kn_http_req *req,
                     kn_http_cb *cb, void *arg);

/* What the pool did so far. */
struct kn_h2pool_stats {
    uint64_t lanes;    /* connections (lanes) opened */
    uint64_t requests; /* requests started */
    uint64_t unknown;  /* written, then no answer (maybe_sent) */
    uint64_t limit;    /* requests allowed in flight now (all lanes) */
    uint64_t peak;     /* most requests in flight at once */
};
void kn__h2pool_stats(const struct kn_h2pool *p, struct kn_h2pool_stats *st);

/*
 * Abort every request (callbacks with CURLE_ABORTED_BY_CALLBACK), close
 * the connections; the pool frees itself once its handles are closed.
 */
void kn__h2pool_close(struct kn_h2pool *p);

#endif
