/*
 * fuzz_broadcast.c - libFuzzer target for the broadcast wire contract:
 * kn_broadcast_parse with the default limits of a fresh config (as kairand
 * and kairanctl use them), and kn_broadcast_mask_json.  Properties: no
 * crash, no leak; a rejected broadcast always has an error text; an
 * accepted one respects the limits.
 */
#include "config/config.h"
#include "model/broadcast.h"
#include "tests/fuzz/fuzz.h"

static struct kn_limits lim;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct kn_config cfg;
    fz_quiet();
    if (kn_config_load(&cfg, NULL, stderr) < 0)
        abort();
    lim.max_subject = cfg.max_subject;
    lim.max_body = cfg.max_body;
    lim.max_recipients = cfg.max_recipients;
    lim.default_ttl_ms = 24 * 3600 * 1000LL;
    kn_config_free(&cfg);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256], field[128];
    struct kn_broadcast b;
    char *json = fz_str(data, size);
    char *masked;
    int rc;

    memset(&b, 0, sizeof(b));
    rc = kn_broadcast_parse(json, size, &lim, &b, err, sizeof(err), field,
                            sizeof(field));
    if (rc == 0) {
        FZ_CHECK(b.tenant != NULL && b.subject != NULL && b.body != NULL,
                 "accepted without tenant/subject/body");
        FZ_CHECK((int64_t)strlen(b.subject) <= lim.max_subject,
                 "subject of %zu bytes accepted", strlen(b.subject));
        FZ_CHECK((int64_t)strlen(b.body) <= lim.max_body,
                 "body of %zu bytes accepted", strlen(b.body));
        FZ_CHECK((int64_t)b.nrcpts <= lim.max_recipients,
                 "%zu inline recipients accepted", b.nrcpts);
        FZ_CHECK(b.nchannels > 0 && b.nchannels <= KN_CH__COUNT,
                 "%zu channels", b.nchannels);
        kn_broadcast_free(&b);
    } else {
        FZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL &&
                     memchr(field, '\0', sizeof(field)) != NULL,
                 "unterminated error");
        FZ_CHECK(err[0] != '\0', "rejected (%d) without a reason", rc);
    }
    masked = kn_broadcast_mask_json(json, size);
    free(masked);
    free(json);
    return 0;
}
