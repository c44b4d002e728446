/*
 * fuzz_line.c - libFuzzer target for what kairan reads from LINE
 * (adapters/line.c) and the HTTP transport's header parsing
 * (adapters/http.c, included so that its static header callback can be
 * driven).  The first byte picks the mode:
 *   0: an answer to push/multicast (fz_resp_parse in fuzz.h), its headers
 *      fed through http.c's header callback, then kn__line_classify: a
 *      valid status, a NUL-terminated detail, no LINE id unmasked in it,
 *      and every header looked up with kn_http_header;
 *   1: a webhook body through kn_line_webhook_events (the callback gets a
 *      valid type and a non-empty user id);
 *   2: kn_line_webhook_verify with secret and signature from the input
 *      (split at NUL bytes): garbage is never accepted.
 */
#define KN_FUZZ_RESPONSES 1
#include "adapters/http.c"

#include "adapters/adapter.h"
#include "adapters/line.h"
#include "model/line_event.h"
#include "tests/fuzz/fuzz.h"

#include <jansson.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_quiet();
    return 0;
}

/* The fuzzer's own reading of LINE's 409 message (jansson, not line.c). */
static int says_accepted(const char *body, size_t n)
{
    json_t *j = json_loadb(body, n, 0, NULL);
    const char *m = json_string_value(json_object_get(j, "message"));
    int yes = m != NULL && strstr(m, "retry key is already accepted") != NULL;
    json_decref(j);
    return yes;
}

static void classify(const uint8_t *d, size_t n)
{
    struct fz_resp fr;
    struct http_xfer x;
    struct kn_http_resp resp;
    struct kn_result r;
    char detail[512];

    fz_resp_parse(d, n, &fr);
    memset(&x, 0, sizeof(x));
    for (size_t i = 0; i < fr.nlines; i++) {
        size_t l = strlen(fr.lines[i]);
        FZ_CHECK(on_header(fr.lines[i], 1, l, &x) == l, "header refused");
    }
    memset(&resp, 0, sizeof(resp));
    resp.rc = fr.rc;
    resp.status = fr.rc == CURLE_OK ? fr.status : 0;
    resp.body = fr.body != NULL ? fr.body : "";
    resp.bodylen = fr.bodylen;
    resp.error = fr.rc == CURLE_OK ? NULL : curl_easy_strerror(fr.rc);
    resp._headers = x.resp_headers;
    for (size_t i = 0; i < fr.nlines; i++) {
        char name[64];
        size_t l = strcspn(fr.lines[i], ":");
        if (l < sizeof(name)) {
            memcpy(name, fr.lines[i], l);
            name[l] = '\0';
            (void)kn_http_header(&resp, name);
        }
    }
    memset(detail, 'x', sizeof(detail));
    kn__line_classify(&resp, &r, detail, sizeof(detail));
    FZ_CHECK(r.status == KN_DELIVERED || r.status == KN_TEMPFAIL ||
                 r.status == KN_PERMFAIL,
             "status %d", (int)r.status);
    /* Delivered: a 2xx, or 409 with the id of the request LINE accepted
     * earlier under the same retry key or, without it, LINE's JSON
     * message saying so. */
    FZ_CHECK(
        r.status != KN_DELIVERED ||
            (fr.rc == CURLE_OK &&
             ((fr.status >= 200 && fr.status <= 299) ||
              (fr.status == 409 &&
               (kn_http_header(&resp, "X-Line-Accepted-Request-Id") != NULL ||
                says_accepted(resp.body, resp.bodylen))))),
        "delivered on rc %d status %ld", (int)fr.rc, fr.status);
    FZ_CHECK(r.retry_after_ms >= 0, "negative wait");
    if (r.detail != NULL) {
        FZ_CHECK(r.detail != detail || memchr(detail, '\0', sizeof(detail)),
                 "detail not terminated");
        FZ_CHECK(!fz_has_line_id(r.detail), "LINE id in detail: %s", r.detail);
    }
    curl_slist_free_all(x.resp_headers);
    fz_resp_free(&fr);
}

static void on_event(const char *type, const char *user_id, int unblocked,
                     int64_t ts, void *arg)
{
    FZ_CHECK(ts >= 0, "negative event time %lld", (long long)ts);
    FZ_CHECK(type != NULL &&
                 (strcmp(type, "follow") == 0 || strcmp(type, "unfollow") == 0),
             "event type %s", type ? type : "(null)");
    FZ_CHECK(user_id != NULL && user_id[0] != '\0', "empty user id");
    (*(int *)arg)++;
}

static void events(const uint8_t *d, size_t n)
{
    char *body = fz_str(d, n);
    int calls = 0;
    int rc = kn_line_webhook_events(body, n, on_event, &calls);
    FZ_CHECK(rc < 0 || rc == calls, "returned %d after %d calls", rc, calls);
    free(body);
}

static void verify(const uint8_t *d, size_t n)
{
    char *secret = fz_take(&d, &n, 0);
    char *sig = fz_take(&d, &n, 0);
    char *body = fz_str(d, n);
    /* A random signature matching an HMAC-SHA256 is a forgery. */
    FZ_CHECK(kn_line_webhook_verify(secret, body, n, sig) == 0,
             "garbage signature accepted");
    free(secret);
    free(sig);
    free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] % 3) {
    case 0:
        classify(data + 1, size - 1);
        break;
    case 1:
        events(data + 1, size - 1);
        break;
    default:
        verify(data + 1, size - 1);
        break;
    }
    return 0;
}
