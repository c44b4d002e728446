/*
 * fuzz_push.c - libFuzzer target for what kairan reads from the push
 * providers (adapters/fcm.c, adapters/apns.c, adapters/push.c).  The input
 * is "<mode byte><token>\0<Retry-After>\0" then an answer as in
 * fz_resp_parse (fuzz.h); the mode picks FCM or APNs:
 *   kn__fcm_classify / kn__apns_classify: a valid status, a NUL-terminated
 *   detail, the device token never in the detail of a failure, "dead" only
 *   with a permanent failure, delivered only with 2xx;
 *   kn__push_retry_after on the Retry-After text: never negative.
 */
#define KN_FUZZ_RESPONSES 1
#include <uv.h>

#include "adapters/push.h"
#include "tests/fuzz/fuzz.h"

#define NOW_MS 1790000000000LL

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_quiet();
    return 0;
}

/* 1 if t could be a token kairan sends to: printable ASCII, no space (the
 * adapter refuses anything else before sending). */
static int token_like(const char *t)
{
    for (; *t; t++)
        if (*t <= ' ' || *t > '~')
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_resp fr;
    struct kn_result r;
    char detail[400];
    char *token, *ra;
    int apns, ret;
    int64_t wait;

    if (size < 1)
        return 0;
    apns = data[0] & 1;
    data++;
    size--;
    token = fz_take(&data, &size, 0);
    ra = fz_take(&data, &size, 0);
    fz_resp_parse(data, size, &fr);

    wait = kn__push_retry_after(ra, NOW_MS);
    FZ_CHECK(wait >= 0, "Retry-After %s gave %lld", ra, (long long)wait);

    memset(detail, 'x', sizeof(detail));
    if (apns)
        ret = kn__apns_classify(fr.status, fr.body, ra, token, token, NOW_MS,
                                &r, detail, sizeof(detail));
    else
        ret = kn__fcm_classify(fr.status, fr.body, ra, token, NOW_MS, &r,
                               detail, sizeof(detail));
    FZ_CHECK(ret == 0 || ret == 1, "returned %d", ret);
    FZ_CHECK(r.status == KN_DELIVERED || r.status == KN_TEMPFAIL ||
                 r.status == KN_PERMFAIL,
             "status %d", (int)r.status);
    FZ_CHECK(r.status != KN_DELIVERED ||
                 (fr.status >= 200 && fr.status <= 299),
             "delivered with status %ld", fr.status);
    FZ_CHECK(!r.dead || r.status == KN_PERMFAIL, "dead but not permanent");
    FZ_CHECK(r.retry_after_ms >= 0, "negative wait");
    FZ_CHECK(r.detail != NULL, "no detail");
    FZ_CHECK(r.detail != detail || memchr(detail, '\0', sizeof(detail)),
             "detail not terminated");
    /* FCM: the token is scrubbed from the provider's text (APNs passes its
     * apns-id here, which is printed on success). */
    if (!apns && r.status != KN_DELIVERED && strlen(token) >= 8 &&
        token_like(token))
        FZ_CHECK(strstr(r.detail, token) == NULL, "token in detail: %s",
                 r.detail);
    fz_resp_free(&fr);
    free(token);
    free(ra);
    return 0;
}
