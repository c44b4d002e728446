/*
 * smtp.c - e-mail through the school's relay with libcurl's SMTP client.
 *
 * One transfer is one message to one recipient.  Each of the
 * smtp.connections connections has its own thread with one easy handle
 * (libcurl keeps the connection open and reuses it); the loop thread hands
 * messages over through a queue and gets results back through a uv_async.
 * Not the multi_socket transport of the HTTP adapters (net.c): libcurl
 * waits for the reply to the final "." inside its "done" step, blocking
 * (curl issue 8555, a known limitation of every pingpong protocol), and a
 * relay may take minutes to answer it (RFC 5321 4.5.3.2.6: 10 minutes);
 * on the loop thread that froze the whole daemon, every channel and the
 * HTTP API with it, for as long as one relay took.  On its own thread
 * only that connection waits.
 *
 * TLS is
 * required by default (STARTTLS, or implicit TLS for smtps://), at least
 * TLS 1.2, with the peer verified; smtp.tls = none is an explicit opt-out
 * for a local relay and is logged at start.
 *
 * Classification (PROVIDERS.md 6.1): the reply code, not the CURLcode,
 * decides, since 4xx and 5xx give the same CURLcode: 2xx delivered, 4xx
 * and network/TLS errors tempfail, 5xx permfail.  The detail holds the code
 * and the server's text with any address in it masked.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <curl/curl.h>

#include "adapters/adapter.h"
#include "adapters/mime.h"
#include "common/kn.h"
#include "common/log.h"
#include "config/config.h"
#include "model/address.h"

/* Stack of a connection thread: libcurl and OpenSSL need far less. */
#define CONN_STACK (512 * 1024)

struct smtp_send;

struct smtp {
    struct kn_mail_conf mail;
    char *url; /* with the EHLO name as path */
    enum kn_smtp_tls tls;
    char *ca_file, *username, *password;
    long timeout_ms;
    size_t connections;
    size_t in_flight; /* loop thread only */
    /* Between the loop thread and the connection threads, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct smtp_send *queued, *queued_tail; /* waiting for a connection */
    struct smtp_send *done, *done_tail;     /* results for the loop thread */
    int stopping;
    atomic_int abort; /* cut running transfers short (progress callback) */
    uv_async_t *wake; /* a result is waiting in done */
    pthread_t *threads;
    size_t nthreads;
};

struct smtp_send {
    struct smtp_send *next;
    struct smtp *s;
    struct kn_job *job;
    kn_done_cb *done;
    void *arg;
    char *data;
    size_t len, off;
    struct curl_slist *rcpt;
    char last_reply[200];         /* last server reply line, raw */
    int have_error;               /* last_reply holds the first 4xx/5xx */
    char errbuf[CURL_ERROR_SIZE]; /* curl's own precise reason (TLS...) */
    char detail[320];
    struct kn_result result; /* set by the connection thread */
};

static size_t on_read(char *buf, size_t size, size_t nitems, void *userp)
{
    struct smtp_send *m = userp;
    size_t n = size * nitems, left = m->len - m->off;
    if (n > left)
        n = left;
    memcpy(buf, m->data + m->off, n);
    m->off += n;
    return n;
}

/*
 * Keep the server's last reply line so that the reason can quote it:
 * libcurl hands SMTP server responses to the header callback.  (The debug
 * callback would do too, but with VERBOSE on, curl formats every line it
 * sends, the message body included: a measurable cost per message.)
 */
static size_t on_header(char *data, size_t size, size_t nitems, void *userp)
{
    struct smtp_send *m = userp;
    size_t n;
    size *= nitems;
    /* The first 4xx/5xx reply is the reason; what follows it (RSET,
     * QUIT: "221 Bye") is not. */
    if (m->have_error)
        return size;
    if (size > 0 && (data[0] == '4' || data[0] == '5'))
        m->have_error = 1;
    n = size < sizeof(m->last_reply) - 1 ? size : sizeof(m->last_reply) - 1;
    memcpy(m->last_reply, data, n);
    while (n > 0 &&
           (m->last_reply[n - 1] == '\r' || m->last_reply[n - 1] == '\n'))
        n--;
    m->last_reply[n] = '\0';
    return size;
}

/*
 * Map a finished transfer to a result:
 *  1. CURLE_OK: delivered (the final "." got a 2xx).
 *  2. A 5xx reply anywhere: permanent for this recipient.
 *  3. A 4xx reply, a timeout, a refused or dropped connection, a TLS
 *     failure: temporary; the dispatcher retries or fails over.
 */
static void classify(struct smtp_send *m, CURL *easy, CURLcode rc,
                     struct kn_result *r)
{
    long code = 0;
    char masked[256];
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    kn_mask_text(m->last_reply, masked, sizeof(masked));
    r->retry_after_ms = 0;
    r->detail = m->detail;
    if (rc == CURLE_OK) {
        r->status = KN_DELIVERED;
        snprintf(m->detail, sizeof(m->detail), "smtp %s", masked);
        return;
    }
    if (rc == CURLE_ABORTED_BY_CALLBACK) {
        r->status = KN_TEMPFAIL;
        r->detail = kn_detail_aborted;
        return;
    }
    if (code >= 500 && code <= 599) {
        r->status = KN_PERMFAIL;
        snprintf(m->detail, sizeof(m->detail), "smtp %ld: %s", code, masked);
    } else if (code >= 400 && code <= 499) {
        r->status = KN_TEMPFAIL;
        snprintf(m->detail, sizeof(m->detail), "smtp %ld: %s", code, masked);
    } else {
        r->status = KN_TEMPFAIL;
        /* curl's error buffer says which TLS problem it was (expired,
         * unknown CA, host name, protocol version); the generic text
         * does not. */
        snprintf(m->detail, sizeof(m->detail), "smtp transport: %s",
                 m->errbuf[0] ? m->errbuf : curl_easy_strerror(rc));
    }
}

/* libcurl calls this at least once a second during a transfer (also
 * while it waits for a reply): a non-zero return aborts the transfer. */
static int on_progress(void *p, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow)
{
    struct smtp *s = p;
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    return atomic_load_explicit(&s->abort, memory_order_relaxed) ? 1 : 0;
}

/* Set the easy handle of a connection thread up for message m. */
static void setup_easy(struct smtp *s, CURL *e, struct smtp_send *m)
{
    curl_easy_setopt(e, CURLOPT_URL, s->url);
    /* Never through a proxy from the environment: the relay is named in
     * the config (and curl need not read the environment per message). */
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(e, CURLOPT_MAIL_FROM, s->mail.from_addr);
    curl_easy_setopt(e, CURLOPT_MAIL_RCPT, m->rcpt);
    curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(e, CURLOPT_READDATA, m);
    curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)m->len);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, s->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     s->timeout_ms < 10000 ? s->timeout_ms : 10000L);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, s);
    m->errbuf[0] = '\0';
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, m->errbuf);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, m);
    if (s->tls != KN_TLS_NONE) {
        curl_easy_setopt(e, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
        curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
        if (s->ca_file != NULL)
            curl_easy_setopt(e, CURLOPT_CAINFO, s->ca_file);
    }
    if (s->username != NULL) {
        curl_easy_setopt(e, CURLOPT_USERNAME, s->username);
        curl_easy_setopt(e, CURLOPT_PASSWORD, s->password);
    }
}

/* Add m at the end of a list (under s->mu). */
static void append(struct smtp_send **head, struct smtp_send **tail,
                   struct smtp_send *m)
{
    m->next = NULL;
    if (*tail != NULL)
        (*tail)->next = m;
    else
        *head = m;
    *tail = m;
}

/*
 * A connection thread: take a message, send it with the thread's easy
 * handle (which keeps its connection to the relay), hand the result back.
 * Nothing here touches the loop or logs: only m, the handle and the queues.
 */
static void *conn_main(void *arg)
{
    struct smtp *s = arg;
    CURL *e = curl_easy_init();
    if (e == NULL)
        KN_PANIC("curl_easy_init failed");
    for (;;) {
        struct smtp_send *m;
        CURLcode rc;
        pthread_mutex_lock(&s->mu);
        while (s->queued == NULL && !s->stopping)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->stopping) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        m = s->queued;
        s->queued = m->next;
        if (s->queued == NULL)
            s->queued_tail = NULL;
        pthread_mutex_unlock(&s->mu);

        setup_easy(s, e, m);
        rc = curl_easy_perform(e);
        classify(m, e, rc, &m->result);
        /* m is freed on the loop thread: the handle, which lives on with
         * its connection, must not keep pointers into it. */
        curl_easy_setopt(e, CURLOPT_MAIL_RCPT, NULL);
        curl_easy_setopt(e, CURLOPT_READDATA, NULL);
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, NULL);
        curl_easy_setopt(e, CURLOPT_HEADERDATA, NULL);
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);

        pthread_mutex_lock(&s->mu);
        append(&s->done, &s->done_tail, m);
        pthread_mutex_unlock(&s->mu);
        uv_async_send(s->wake);
    }
    /* Closing the connection sends QUIT and waits for the reply: at most
     * a second when shutting down. */
    curl_easy_setopt(e, CURLOPT_SERVER_RESPONSE_TIMEOUT, 1L);
    curl_easy_cleanup(e);
    return NULL;
}

/* On the loop thread: hand a result to the dispatcher. */
static void deliver(struct smtp *s, struct smtp_send *m)
{
    curl_slist_free_all(m->rcpt);
    s->in_flight--;
    m->done(m->job, &m->result, m->arg);
    free(m->data);
    free(m);
}

static void deliver_all(struct smtp *s, struct smtp_send *list)
{
    while (list != NULL) {
        struct smtp_send *m = list;
        list = m->next;
        deliver(s, m);
    }
}

static void on_wake(uv_async_t *h)
{
    struct smtp *s = h->data;
    struct smtp_send *list;
    pthread_mutex_lock(&s->mu);
    list = s->done;
    s->done = s->done_tail = NULL;
    pthread_mutex_unlock(&s->mu);
    deliver_all(s, list);
}

static void start_threads(struct smtp *s)
{
    pthread_attr_t attr;
    sigset_t all, old;
    int rc;
    s->threads = kn_xcalloc(s->connections, sizeof(*s->threads));
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, CONN_STACK);
    /* Signals are the loop thread's (uv_signal): the connection threads
     * start with all of them blocked. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (size_t i = 0; i < s->connections; i++) {
        rc = pthread_create(&s->threads[i], &attr, conn_main, s);
        if (rc != 0)
            KN_PANIC("cannot start an SMTP connection thread: %s",
                     strerror(rc));
        s->nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
}

static int smtp_open(struct kn_adapter *a, const struct kn_config *cfg)
{
    struct smtp *s = kn_xcalloc(1, sizeof(*s));
    const char *helo;
    int rc = kn__mail_conf_init(&s->mail, cfg);
    if (rc < 0) {
        free(s);
        return rc;
    }
    helo = cfg->smtp_helo ? cfg->smtp_helo : s->mail.domain;
    /* libcurl takes the EHLO name from the URL path. */
    s->url = kn_xasprintf("%s/%s", cfg->smtp_url, helo);
    s->tls = cfg->smtp_tls;
    s->ca_file = cfg->smtp_ca_file ? kn_xstrdup(cfg->smtp_ca_file) : NULL;
    s->username = cfg->smtp_username ? kn_xstrdup(cfg->smtp_username) : NULL;
    s->password = cfg->smtp_password ? kn_xstrdup(cfg->smtp_password) : NULL;
    s->timeout_ms = (long)cfg->smtp_timeout_ms;
    s->connections = (size_t)cfg->smtp_connections;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    atomic_init(&s->abort, 0);
    s->wake = kn_xcalloc(1, sizeof(*s->wake));
    uv_async_init(a->loop, s->wake, on_wake);
    s->wake->data = s;
    start_threads(s);
    a->priv = s;
    if (s->tls == KN_TLS_NONE)
        kn_log(KN_LOG_WARN, "smtp",
               "plaintext SMTP: smtp.tls = none was set explicitly; mail "
               "and credentials cross the network unencrypted",
               "url", cfg->smtp_url, NULL);
    kn_log(KN_LOG_INFO, "smtp", "relay configured", "url", cfg->smtp_url, "tls",
           s->tls == KN_TLS_STARTTLS   ? "starttls"
           : s->tls == KN_TLS_IMPLICIT ? "implicit"
                                       : "none",
           NULL);
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
        char *quoted, *path;
        m->s = s;
        m->job = job;
        m->done = done;
        m->arg = arg;
        if (kn_addr_check(job->addr, &why) < 0 ||
            kn__mail_build(&s->mail, job, &m->data, &m->len) < 0) {
            struct kn_result r = {.status = KN_PERMFAIL};
            snprintf(m->detail, sizeof(m->detail), "invalid message: %s",
                     why ? why : "control character or bad UTF-8");
            r.detail = m->detail;
            done(job, &r, arg);
            free(m);
            continue;
        }
        quoted = kn_addr_quote(job->addr);
        path = kn_xasprintf("<%s>", quoted);
        m->rcpt = curl_slist_append(NULL, path);
        free(quoted);
        free(path);
        s->in_flight++;
        pthread_mutex_lock(&s->mu);
        append(&s->queued, &s->queued_tail, m);
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
    return 0;
}

static size_t smtp_in_flight(struct kn_adapter *a)
{
    return ((struct smtp *)a->priv)->in_flight;
}

/*
 * One message waiting per connection besides the one it sends: a
 * connection thread takes its next message as soon as the last one ended,
 * without waiting for the loop thread to record the result and hand one
 * over (with only one per connection they slept on the queue between two
 * messages: bench 6.0k msg/s, now 8.9k).
 */
static size_t smtp_capacity(struct kn_adapter *a)
{
    return 2 * ((struct smtp *)a->priv)->connections;
}

static void on_wake_closed(uv_handle_t *h)
{
    free(h);
}

/*
 * Stop: transfers still running are cut short (within about a second, at
 * libcurl's next progress call) and end as tempfail "aborted", like those
 * not started; results that came in meanwhile are delivered as they are
 * (a message the relay accepted is recorded as delivered).
 */
static void smtp_close(struct kn_adapter *a)
{
    struct smtp *s = a->priv;
    struct smtp_send *unsent, *done;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    atomic_store(&s->abort, 1);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; i < s->nthreads; i++)
        pthread_join(s->threads[i], NULL);
    free(s->threads);
    unsent = s->queued;
    done = s->done;
    s->queued = s->queued_tail = s->done = s->done_tail = NULL;
    deliver_all(s, done);
    for (struct smtp_send *m = unsent; m != NULL; m = m->next) {
        m->result.status = KN_TEMPFAIL;
        m->result.detail = kn_detail_aborted;
    }
    deliver_all(s, unsent);
    uv_close((uv_handle_t *)s->wake, on_wake_closed);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    kn__mail_conf_free(&s->mail);
    free(s->url);
    free(s->ca_file);
    free(s->username);
    if (s->password != NULL) {
        memset(s->password, 0, strlen(s->password));
        free(s->password);
    }
    free(s);
    a->priv = NULL;
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
