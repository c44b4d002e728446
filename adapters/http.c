/*
 * http.c - HTTP requests for the provider adapters over net.c.
 *
 * Every request: TLS 1.2 or newer with the peer and host verified (or
 * plain http to a loopback address only, for tests), no proxy from the
 * environment, a total time limit, the body and headers captured in
 * memory (bodies are capped at 1 MiB: providers answer small JSON).
 */
#include "http.h"

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

static void on_done(CURL *easy, CURLcode rc, void *arg)
{
    struct http_xfer *x = arg;
    struct kn_http_resp r;
    memset(&r, 0, sizeof(r));
    r.rc = rc;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &r.status);
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

void kn__http_send(struct kn_net *net, const struct kn_http_req *req,
                   kn_http_cb *cb, void *arg)
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
    kn_net_add(net, e, on_done, x);
}

int kn__http_url_ok(const char *url, const char **why)
{
    static const char *const loopback[] = {"127.", "localhost", "[::1]"};
    if (strncmp(url, "https://", 8) == 0)
        return 0;
    if (strncmp(url, "http://", 7) == 0) {
        const char *host = url + 7;
        for (size_t i = 0; i < KN_ARRAY_SIZE(loopback); i++) {
            if (strncmp(host, loopback[i], strlen(loopback[i])) == 0)
                return 0;
        }
        *why = "plain http:// is allowed only to a loopback address; use "
               "https://";
        return KN_EINVAL;
    }
    *why = "the url must start with https://";
    return KN_EINVAL;
}
