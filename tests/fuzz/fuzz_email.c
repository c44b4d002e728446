/*
 * fuzz_email.c - libFuzzer target for what kairan reads from e-mail
 * providers: SendGrid's answers (kn__sendgrid_classify), the SMTP relay's
 * reply lines (adapters/smtp.c, included for its static header callback
 * and classify), and the masking of provider text (kn_mask_text,
 * kn_mask_address) that every detail goes through.  The first byte picks:
 *   0: a SendGrid answer as in fz_resp_parse (fuzz.h): a valid status,
 *      delivered only with 2xx, a NUL-terminated detail;
 *   1: SMTP reply lines (LF-separated) through on_header, then classify
 *      of a failed transfer: tempfail/permfail, detail terminated;
 *   2: kn_mask_text / kn_mask_address of the input into buffers of every
 *      small size: always terminated, never overrun.
 */
#define KN_FUZZ_RESPONSES 1
#include "adapters/smtp.c"

#include "adapters/http.h"
#include "adapters/sendgrid.h"
#include "tests/fuzz/fuzz.h"

static CURL *easy;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_quiet();
    easy = curl_easy_init();
    if (easy == NULL)
        abort();
    return 0;
}

static void sendgrid(const uint8_t *d, size_t n)
{
    struct fz_resp fr;
    struct kn_http_resp resp;
    struct kn_result r;
    struct curl_slist *h = NULL;
    char detail[512];

    fz_resp_parse(d, n, &fr);
    for (size_t i = 0; i < fr.nlines; i++)
        if (strchr(fr.lines[i], ':') != NULL)
            h = curl_slist_append(h, fr.lines[i]);
    memset(&resp, 0, sizeof(resp));
    resp.rc = fr.rc;
    resp.status = fr.rc == CURLE_OK ? fr.status : 0;
    resp.body = fr.body != NULL ? fr.body : "";
    resp.bodylen = fr.bodylen;
    resp.error = fr.rc == CURLE_OK ? NULL : curl_easy_strerror(fr.rc);
    resp._headers = h;
    memset(detail, 'x', sizeof(detail));
    kn__sendgrid_classify(&resp, 1790000000000LL, &r, detail,
                          sizeof(detail));
    FZ_CHECK(r.status == KN_DELIVERED || r.status == KN_TEMPFAIL ||
                 r.status == KN_PERMFAIL,
             "status %d", (int)r.status);
    FZ_CHECK(r.status != KN_DELIVERED ||
                 (fr.rc == CURLE_OK && fr.status >= 200 && fr.status <= 299),
             "delivered with rc %d status %ld", (int)fr.rc, fr.status);
    FZ_CHECK(r.retry_after_ms >= 0, "negative wait");
    FZ_CHECK(r.detail == NULL || r.detail != detail ||
                 memchr(detail, '\0', sizeof(detail)) != NULL,
             "detail not terminated");
    curl_slist_free_all(h);
    fz_resp_free(&fr);
}

static void smtp_reply(const uint8_t *d, size_t n)
{
    static const CURLcode rcs[] = {CURLE_SEND_ERROR, CURLE_RECV_ERROR,
                                   CURLE_OPERATION_TIMEDOUT,
                                   CURLE_PEER_FAILED_VERIFICATION,
                                   CURLE_ABORTED_BY_CALLBACK, CURLE_OK};
    struct smtp_send m;
    struct kn_result r;
    CURLcode rc;

    if (n < 1)
        return;
    rc = rcs[d[0] % (sizeof(rcs) / sizeof(rcs[0]))];
    d++;
    n--;
    memset(&m, 0, sizeof(m));
    while (n > 0) {
        const uint8_t *e = memchr(d, '\n', n);
        size_t l = e != NULL ? (size_t)(e - d) + 1 : n;
        FZ_CHECK(on_header((char *)d, 1, l, &m) == l, "reply refused");
        d += l;
        n -= l;
    }
    FZ_CHECK(memchr(m.last_reply, '\0', sizeof(m.last_reply)) != NULL,
             "last reply not terminated");
    classify(&m, easy, rc, &r);
    FZ_CHECK(r.detail != NULL, "no detail");
    FZ_CHECK(r.status == (rc == CURLE_OK ? KN_DELIVERED : KN_TEMPFAIL),
             "status %d for rc %d without a reply code", (int)r.status,
             (int)rc);
    FZ_CHECK(r.detail != m.detail ||
                 memchr(m.detail, '\0', sizeof(m.detail)) != NULL,
             "detail not terminated");
}

static void masking(const uint8_t *d, size_t n)
{
    char *s = fz_str(d, n);
    char buf[80];

    for (size_t len = 1; len <= sizeof(buf); len += 7) {
        memset(buf, 'x', sizeof(buf));
        kn_mask_text(s, buf, len);
        FZ_CHECK(memchr(buf, '\0', len) != NULL, "mask_text unterminated");
        for (size_t i = len; i < sizeof(buf); i++)
            FZ_CHECK(buf[i] == 'x', "mask_text wrote past %zu", len);
        memset(buf, 'x', sizeof(buf));
        kn_mask_address(s, buf, len);
        FZ_CHECK(memchr(buf, '\0', len) != NULL, "mask_address unterminated");
        for (size_t i = len; i < sizeof(buf); i++)
            FZ_CHECK(buf[i] == 'x', "mask_address wrote past %zu", len);
    }
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] % 3) {
    case 0:
        sendgrid(data + 1, size - 1);
        break;
    case 1:
        smtp_reply(data + 1, size - 1);
        break;
    default:
        masking(data + 1, size - 1);
        break;
    }
    return 0;
}
