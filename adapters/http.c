/*
 * http.c - HTTP requests for the provider adapters over net.c.
 *
 * Every request: TLS 1.2 or newer with the peer and host verified (or
 * plain http to a loopback address only, for tests), no proxy from the
 * environment, a total time limit, the body and headers captured in
 * memory (bodies are capped at 1 MiB: providers answer small JSON).
 *
 * Requests to providers without an idempotency key (req.once: FCM, APNs)
 * must never be sent twice by curl on its own: libcurl 7.88 silently
 * re-sends every request that was in flight on a reused connection that
 * died (Curl_retry_request), whether or not the server acted on it.  A
 * pre-request callback sees every attempt and refuses the second: the
 * request ends with maybe_sent set, and the adapter, not curl, decides.
 * (A body given through a read callback, whose rewind curl would have to
 * ask for, made curl 7.88 reset about half of the streams after their
 * answer in our runs: not used.)  libcurl 7.88 has no other way to
 * tell us what happened (no stream ids, no GOAWAY last-stream-id, no
 * connection id), so the pool below gives every
 * connection its own multi handle and counts what went on it.
 *
 * The pool also bounds the requests in flight over all its connections
 * to what the measured throughput needs (Little's law, kn__h2pool_limit):
 * a push is sent twice when its first copy was in the air as kairand was
 * killed (the process that takes the job over cannot know), or when it
 * waited in a busy server's queue past the timeout.  Keeping every stream
 * busy (90 per connection) did not make the server faster, it only made
 * that queue long: in the kill matrix it cost 32 % duplicate pushes.
 */
#include "http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/kn.h"

#define MAX_BODY (1 << 20)

struct http_xfer {
    kn_http_cb *cb;
    void *arg;
    char *body;
    size_t len, cap;
    struct curl_slist *req_headers;
    struct curl_slist *resp_headers;
    char *req_body;
    char errbuf[CURL_ERROR_SIZE];
    int once;     /* req.once: no blind re-send */
    int attempts; /* times curl was about to send it */
    int denied;   /* curl's own second attempt was refused */
    /* In a kn_h2pool: */
    struct h2_lane *lane;
    struct http_xfer *qnext;              /* waiting for a stream */
    uint64_t started_ns;                  /* uv_hrtime() when given to a lane */
    const char *(*header_now)(void *arg); /* req.header_now */
    CURL *easy;
};

static size_t on_body(char *data, size_t size, size_t n, void *userp)
{
    struct http_xfer *x = userp;
    size_t len = size * n;
    if (x->len + len > MAX_BODY)
        return 0; /* abort: no provider answers that much */
    if (x->len + len + 1 > x->cap) {
        x->cap = (x->len + len + 1) * 2;
        x->body = kn_xrealloc(x->body, x->cap);
    }
    memcpy(x->body + x->len, data, len);
    x->len += len;
    x->body[x->len] = '\0';
    return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *userp)
{
    struct http_xfer *x = userp;
    size_t len = size * n, l = len;
    char *line;
    while (l > 0 && (data[l - 1] == '\r' || data[l - 1] == '\n'))
        l--;
    if (l > 0 && memchr(data, ':', l) != NULL) {
        line = kn_xstrndup(data, l);
        x->resp_headers = curl_slist_append(x->resp_headers, line);
        free(line);
    } else if (l > 5 && strncmp(data, "HTTP/", 5) == 0) {
        /* A new response (after 100 Continue or a redirect): forget the
         * headers of the one before. */
        curl_slist_free_all(x->resp_headers);
        x->resp_headers = NULL;
    }
    return len;
}

const char *kn_http_header(const struct kn_http_resp *r, const char *name)
{
    size_t n = strlen(name);
    for (struct curl_slist *h = r->_headers; h != NULL; h = h->next) {
        if (strncasecmp(h->data, name, n) == 0 && h->data[n] == ':') {
            const char *v = h->data + n + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            return v;
        }
    }
    return NULL;
}

/*
 * curl calls this right before it sends the request, on every attempt.  A
 * second attempt is libcurl 7.88 sending a request again on its own after
 * the connection it was written on died (Curl_retry_request): the server
 * may have acted on the first one.  For req.once it is refused; the
 * transfer ends (maybe_sent) and the adapter decides.
 */
static int on_prereq(void *userp, char *primary_ip, char *local_ip,
                     int primary_port, int local_port)
{
    struct http_xfer *x = userp;
    (void)primary_ip;
    (void)local_ip;
    (void)primary_port;
    (void)local_port;
    if (x->attempts++ == 0)
        return CURL_PREREQFUNC_OK;
    x->denied = 1;
    return CURL_PREREQFUNC_ABORT;
}

static void on_done(CURL *easy, CURLcode rc, void *arg)
{
    struct http_xfer *x = arg;
    struct kn_http_resp r;
    memset(&r, 0, sizeof(r));
    if (x->denied) {
        /* Not an abort of ours: curl wanted to send it again. */
        rc = CURLE_SEND_ERROR;
        snprintf(x->errbuf, sizeof(x->errbuf),
                 "connection lost after the request was sent");
    }
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &r.status);
    if (rc != CURLE_OK && rc != CURLE_ABORTED_BY_CALLBACK && !x->denied &&
        r.status >= 200 && r.status <= 299) {
        /* A 2xx came, then the rest of the answer was lost (a reset, a
         * body dripping past the time limit or over MAX_BODY): the
         * provider took the request.  Reported as the answer it is, so
         * that it is never sent again (a second mail, a second push). */
        rc = CURLE_OK;
    }
    r.rc = rc;
    /* Sent (handed to the connection) and no answer: the server may have
     * acted on it. */
    if (x->once && rc != CURLE_OK)
        r.maybe_sent = x->attempts > 0;
    r.body = x->body ? x->body : "";
    r.bodylen = x->len;
    r.error = rc == CURLE_OK
                  ? NULL
                  : (x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
    r._headers = x->resp_headers;
    curl_easy_cleanup(easy);
    x->cb(&r, x->arg);
    curl_slist_free_all(x->req_headers);
    curl_slist_free_all(x->resp_headers);
    free(x->body);
    free(x->req_body);
    free(x);
}

/* A transfer for req, ready for a multi handle (x->easy). */
static struct http_xfer *xfer_new(const struct kn_http_req *req, kn_http_cb *cb,
                                  void *arg)
{
    struct http_xfer *x = kn_xcalloc(1, sizeof(*x));
    CURL *e = curl_easy_init();
    if (e == NULL)
        KN_PANIC("curl_easy_init failed");
    x->cb = cb;
    x->arg = arg;
    for (size_t i = 0; req->headers && req->headers[i]; i++)
        x->req_headers = curl_slist_append(x->req_headers, req->headers[i]);
    /* No "Expect: 100-continue" round trip before bodies. */
    x->req_headers = curl_slist_append(x->req_headers, "Expect:");
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https,http");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->req_headers);
    if (req->body != NULL) {
        x->req_body = kn_xstrndup(req->body, req->bodylen);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->req_body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)req->bodylen);
    }
    if (req->once) {
        x->once = 1;
        curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
        curl_easy_setopt(e, CURLOPT_PREREQDATA, x);
    }
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, req->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     req->timeout_ms < 10000 ? req->timeout_ms : 10000L);
    curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (req->ca_file != NULL)
        curl_easy_setopt(e, CURLOPT_CAINFO, req->ca_file);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                     req->http2 ? (long)CURL_HTTP_VERSION_2TLS
                                : (long)CURL_HTTP_VERSION_1_1);
    /* Wait for a multiplexed HTTP/2 connection rather than open another. */
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    x->easy = e;
    return x;
}

void kn__http_send(struct kn_net *net, const struct kn_http_req *req,
                   kn_http_cb *cb, void *arg)
{
    struct http_xfer *x = xfer_new(req, cb, arg);
    kn_net_add(net, x->easy, on_done, x);
}

/*
 * Whether the authority of an http:// URL (a, n bytes) names this host:
 * "localhost", "[::1]" or an IPv4 literal of 127.0.0.0/8, with an
 * optional ":port" of digits, and no "user@" (a prefix test took
 * "localhost.example.com" and "127.0.0.1@evil.example" for loopback, and
 * the bearer token would have crossed the network in clear).
 */
static int loopback_authority(const char *a, size_t n)
{
    const char *colon;
    size_t hl = n;
    char h[16];
    struct in_addr x;
    if (memchr(a, '@', n) != NULL)
        return 0;
    if (n >= 5 && memcmp(a, "[::1]", 5) == 0)
        hl = 5;
    else if ((colon = memchr(a, ':', n)) != NULL)
        hl = (size_t)(colon - a);
    if (hl < n) {
        if (a[hl] != ':' || hl + 1 == n)
            return 0;
        for (size_t i = hl + 1; i < n; i++)
            if (!isdigit((unsigned char)a[i]))
                return 0;
    }
    if ((hl == 9 && strncasecmp(a, "localhost", 9) == 0) ||
        (hl == 5 && memcmp(a, "[::1]", 5) == 0))
        return 1;
    if (hl < 5 || hl >= sizeof(h) || memcmp(a, "127.", 4) != 0)
        return 0;
    memcpy(h, a, hl);
    h[hl] = '\0';
    return inet_pton(AF_INET, h, &x) == 1;
}

int kn__http_url_ok(const char *url, const char **why)
{
    if (strncmp(url, "https://", 8) == 0)
        return 0;
    if (strncmp(url, "http://", 7) == 0) {
        const char *host = url + 7;
        if (loopback_authority(host, strcspn(host, "/?#")))
            return 0;
        *why = "plain http:// is allowed only to a loopback address "
               "(localhost, 127.x.y.z, [::1]); use https://";
        return KN_EINVAL;
    }
    *why = "the url must start with https://";
    return KN_EINVAL;
}

/* ---- the HTTP/2 pool: one multi handle per connection ---- */

struct h2_lane {
    struct kn_h2pool *pool;
    struct kn_net *net;   /* at most one connection */
    size_t started;       /* requests given to this lane */
    size_t active;        /* of them not yet answered */
    int retired;          /* at its budget: takes no more */
    struct h2_lane *next; /* in the pool's list of retired lanes */
};

/* Answers counted for one rate measurement; round trips: the least of
 * this window and the one before. */
#define RATE_WINDOW_NS (100 * 1000000ULL)
#define RTT_WINDOW_NS  (2000 * 1000000ULL)

struct kn_h2pool {
    uv_loop_t *loop;
    size_t nlanes, streams, budget;
    size_t inflight, limit; /* over all lanes; limit: kn__h2pool_limit */
    uint64_t rate_start_ns; /* this rate window began */
    size_t rate_done;       /* answers in it */
    uint64_t rtt_start_ns;  /* this round-trip window began */
    uint64_t rtt_min_ns, rtt_prev_ns; /* least round trip: now, before */
    struct h2_lane **lanes;           /* live lanes, NULL until first needed */
    struct h2_lane *retired;          /* draining, closed by the reaper */
    uv_timer_t reaper;                /* closes drained lanes outside curl */
    struct http_xfer *head, *tail;    /* waiting for a free stream */
    struct kn_h2pool_stats st;
    int closing;
};

static struct h2_lane *lane_new(struct kn_h2pool *p)
{
    struct h2_lane *l = kn_xcalloc(1, sizeof(*l));
    l->pool = p;
    l->net = kn_net_new(p->loop, 1, 1);
    p->st.lanes++;
    return l;
}

/*
 * A lane drained by a retired one's last answer cannot be closed there:
 * we are inside its own multi handle's callback.  The reaper closes it on
 * the next loop turn.
 */
static void on_reap(uv_timer_t *t)
{
    struct kn_h2pool *p = kn_container_of(t, struct kn_h2pool, reaper);
    struct h2_lane **pl = &p->retired;
    while (*pl != NULL) {
        struct h2_lane *l = *pl;
        if (l->active == 0) {
            *pl = l->next;
            kn_net_close(l->net);
            free(l);
        } else {
            pl = &l->next;
        }
    }
}

/* The lane with the fewest requests in flight that may take one more;
 * NULL when every lane is full. */
static struct h2_lane *pick_lane(struct kn_h2pool *p)
{
    struct h2_lane *best = NULL;
    for (size_t i = 0; i < p->nlanes; i++) {
        struct h2_lane *l = p->lanes[i];
        if (l == NULL)
            l = p->lanes[i] = lane_new(p);
        if (l->active < p->streams &&
            (best == NULL || l->active < best->active))
            best = l;
        if (best != NULL && best->active == 0)
            break;
    }
    return best;
}

static void pool_done(CURL *easy, CURLcode rc, void *arg);

/* Start waiting requests while a lane has a free stream. */
static void pump(struct kn_h2pool *p)
{
    struct http_xfer *x;
    struct h2_lane *l;
    while (!p->closing && p->head != NULL && p->inflight < p->limit &&
           (l = pick_lane(p)) != NULL) {
        x = p->head;
        p->head = x->qnext;
        if (p->head == NULL)
            p->tail = NULL;
        x->qnext = NULL;
        x->lane = l;
        l->started++;
        l->active++;
        p->inflight++;
        if (p->inflight > p->st.peak)
            p->st.peak = p->inflight;
        x->started_ns = uv_hrtime();
        if (x->header_now != NULL) {
            const char *h = x->header_now(x->arg);
            if (h != NULL) {
                x->req_headers = curl_slist_append(x->req_headers, h);
                curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->req_headers);
            }
        }
        p->st.requests++;
        if (p->budget > 0 && l->started >= p->budget) {
            /* Its last request: a fresh lane takes its place now, the old
             * one closes when its answers are in. */
            for (size_t i = 0; i < p->nlanes; i++) {
                if (p->lanes[i] == l)
                    p->lanes[i] = NULL;
            }
            l->retired = 1;
            l->next = p->retired;
            p->retired = l;
        }
        kn_net_add(l->net, x->easy, pool_done, x);
    }
}

size_t kn__h2pool_limit(double rate, double rtt_us, size_t floor, size_t cap)
{
    double want = 2.0 * rate * rtt_us / 1e6 + (double)floor;
    if (floor > cap)
        floor = cap;
    if (!(want < (double)cap)) /* also NaN */
        return cap;
    return want < (double)floor ? floor : (size_t)want;
}

/*
 * A request ended: measure.  Round trips only of 2xx answers: a transport
 * error's time says nothing of the server's queue, and a refusal (401 of
 * an expired access token, 429) may come at once while every accepted
 * request waits, which would make the least round trip, and so the
 * bound, far too small.  The rate counts every end.  Every
 * RATE_WINDOW_NS the bound is set again from the rate of that window and
 * the least round trip of the last two round-trip windows (a quiet
 * moment within 2-4 s).
 */
static void measure(struct kn_h2pool *p, const struct http_xfer *x,
                    int answered)
{
    uint64_t now = uv_hrtime(), rtt = now - x->started_ns, base;
    double rate;
    if (answered && x->attempts == 1 &&
        (p->rtt_min_ns == 0 || rtt < p->rtt_min_ns))
        p->rtt_min_ns = rtt;
    if (now - p->rtt_start_ns >= RTT_WINDOW_NS) {
        p->rtt_prev_ns = p->rtt_min_ns;
        p->rtt_min_ns = 0;
        p->rtt_start_ns = now;
    }
    p->rate_done++;
    if (now - p->rate_start_ns < RATE_WINDOW_NS)
        return;
    base = p->rtt_min_ns;
    if (base == 0 || (p->rtt_prev_ns != 0 && p->rtt_prev_ns < base))
        base = p->rtt_prev_ns;
    rate = (double)p->rate_done * 1e9 / (double)(now - p->rate_start_ns);
    if (base > 0)
        p->limit = kn__h2pool_limit(rate, (double)base / 1e3, KN_H2POOL_FLOOR,
                                    p->nlanes * p->streams);
    p->st.limit = p->limit;
    p->rate_done = 0;
    p->rate_start_ns = now;
}

static void pool_done(CURL *easy, CURLcode rc, void *arg)
{
    struct http_xfer *x = arg;
    struct h2_lane *l = x->lane;
    struct kn_h2pool *p = l->pool;
    long status = 0;
    l->active--;
    p->inflight--;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    measure(p, x, rc == CURLE_OK && status >= 200 && status < 300);
    if (x->denied || (rc != CURLE_OK && rc != CURLE_ABORTED_BY_CALLBACK &&
                      x->attempts > 0 && (status < 200 || status > 299)))
        p->st.unknown++;
    if (l->retired && l->active == 0 && !p->closing)
        uv_timer_start(&p->reaper, on_reap, 0, 0);
    on_done(easy, rc, x); /* the owner's callback; may send more */
    pump(p);
}

struct kn_h2pool *kn__h2pool_new(uv_loop_t *loop, size_t conns, size_t streams,
                                 size_t budget)
{
    struct kn_h2pool *p = kn_xcalloc(1, sizeof(*p));
    p->loop = loop;
    p->nlanes = conns > 0 ? conns : 1;
    p->streams = streams > 0 ? streams : 1;
    p->budget = budget;
    /* Start low: the measurements raise it (doubling at most every
     * RATE_WINDOW_NS while requests wait) within a second. */
    p->limit = KN_H2POOL_FLOOR;
    if (p->limit > p->nlanes * p->streams)
        p->limit = p->nlanes * p->streams;
    p->st.limit = p->limit;
    p->rate_start_ns = p->rtt_start_ns = uv_hrtime();
    p->lanes = kn_xcalloc(p->nlanes, sizeof(*p->lanes));
    uv_timer_init(loop, &p->reaper);
    uv_unref((uv_handle_t *)&p->reaper);
    return p;
}

void kn__h2pool_send(struct kn_h2pool *p, const struct kn_http_req *req,
                     kn_http_cb *cb, void *arg)
{
    struct kn_http_req once = *req;
    struct http_xfer *x;
    once.once = 1;
    x = xfer_new(&once, cb, arg);
    x->header_now = req->header_now;
    if (p->closing) {
        on_done(x->easy, CURLE_ABORTED_BY_CALLBACK, x);
        return;
    }
    if (p->tail != NULL)
        p->tail->qnext = x;
    else
        p->head = x;
    p->tail = x;
    pump(p);
}

void kn__h2pool_stats(const struct kn_h2pool *p, struct kn_h2pool_stats *st)
{
    *st = p->st;
}

static void on_pool_closed(uv_handle_t *h)
{
    struct kn_h2pool *p =
        kn_container_of((uv_timer_t *)h, struct kn_h2pool, reaper);
    free(p->lanes);
    free(p);
}

void kn__h2pool_close(struct kn_h2pool *p)
{
    p->closing = 1;
    /* Requests that never got a stream: aborted, never written. */
    while (p->head != NULL) {
        struct http_xfer *x = p->head;
        p->head = x->qnext;
        on_done(x->easy, CURLE_ABORTED_BY_CALLBACK, x);
    }
    p->tail = NULL;
    /* kn_net_close aborts what is in flight (pool_done, then on_done). */
    for (size_t i = 0; i < p->nlanes; i++) {
        if (p->lanes[i] != NULL) {
            kn_net_close(p->lanes[i]->net);
            free(p->lanes[i]);
            p->lanes[i] = NULL;
        }
    }
    while (p->retired != NULL) {
        struct h2_lane *l = p->retired;
        p->retired = l->next;
        kn_net_close(l->net);
        free(l);
    }
    uv_timer_stop(&p->reaper);
    uv_close((uv_handle_t *)&p->reaper, on_pool_closed);
}
