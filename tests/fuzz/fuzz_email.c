/*
 * fuzz_email.c - libFuzzer target for what kairan reads from e-mail
 * providers: SendGrid's answers (kn__sendgrid_classify), the SMTP relay's
 * reply lines (adapters/smtp.c, included for its static classify), and the masking of provider text (kn_mask_text,
 * kn_mask_address) that every detail goes through.  The first byte picks:
 *   0: a SendGrid answer as in fz_resp_parse (fuzz.h): a valid status,
 *      delivered only with 2xx, a NUL-terminated detail;
 *   1: SMTP reply lines through the client's reply parser
 *      (kn_smtp_parse), each reply through classify: delivered only on
 *      2xx, permfail only on 5xx, the detail terminated;
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
    struct kn_smtp_parser p;
    struct kn_smtp_reply rep;
    struct kn_result r;
    const char *why;
    char detail[320];
    size_t used;
    enum kn_smtp_stage st;

    if (n < 1)
        return;
    st = (enum kn_smtp_stage)(d[0] % 4);
    d++;
    n--;
    kn_smtp_parser_init(&p);
    while (n > 0) {
        int rc = kn_smtp_parse(&p, (const char *)d, n, &used, &rep, &why);
        if (rc <= 0)
            break;
        d += used;
        n -= used;
        memset(detail, 'x', sizeof(detail));
        classify(rep.code, rep.text, st, &r, detail, sizeof(detail));
        FZ_CHECK(r.detail == detail, "no detail");
        FZ_CHECK(memchr(detail, '\0', sizeof(detail)) != NULL,
                 "detail not terminated");
        FZ_CHECK((r.status == KN_DELIVERED) == (rep.code / 100 == 2),
                 "status %d for %d", (int)r.status, rep.code);
        FZ_CHECK((r.status == KN_PERMFAIL) == (rep.code / 100 == 5),
                 "status %d for %d", (int)r.status, rep.code);
    }
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
