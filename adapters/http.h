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
};

struct kn_http_resp {
    CURLcode rc;      /* CURLE_OK if an HTTP answer came */
    long status;      /* HTTP status, 0 if none */
    const char *body; /* NUL-terminated (bodylen bytes) */
    size_t bodylen;
    const char *error;           /* transport error text when rc != CURLE_OK */
    struct curl_slist *_headers; /* "name: value" lines received */
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

#endif
