/*
 * bounce.c - the daemon's side of bounces (issue 18): each e-mail job's
 * VERP reference, and a refusal at RCPT recorded as a bounce at once.
 *
 * The reference is 16 characters of base32 from a keyed hash of
 * (broadcast, field), so a retry of the same job carries the same one and
 * no one without the key can make up another's.  What it names is kept in
 * bref:<ref> (queue/lua/bounce_ref.lua) with a salted HMAC of the address
 * and never the address in clear: `kairanctl bounce` compares a DSN's
 * Final-Recipient against it without any key that could unseal addresses.
 * It never logs an address.
 */
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "common/argv.h"
#include "common/kn.h"
#include "common/log.h"
#include "common/seal.h"
#include "config/config.h"
#include "dispatcher/daemon.h"
#include "dispatcher/worker.h"
#include "model/dsn.h"
#include "queue/keys.h"
#include "queue/scripts.h"

#define DAY_MS (24LL * 3600 * 1000)

static void hex(const unsigned char *b, size_t n, char *out)
{
    static const char h[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = h[b[i] >> 4];
        out[2 * i + 1] = h[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static void on_stored(struct kn_redis *r, redisReply *rep, void *arg)
{
    if (rep->type == REDIS_REPLY_ERROR)
        kn_log(KN_LOG_WARN, "bounce", "cannot store a bounce reference",
               "error", rep->str, NULL);
}

void kn__bounce_ref(struct kn_daemon *d, struct wjob *jb)
{
    const struct kn_config *cfg = d->cfg;
    char bi[33], *what, norm[320], salt_hex[33], mac_hex[65];
    unsigned char raw[10], salt[16], mac[32];
    struct kn_argv a;

    jb->job.bounce_ref = NULL;
    if (jb->naddr != 1 || jb->w->ch != KN_CH_EMAIL || jb->addr == NULL ||
        jb->addr[0] == NULL)
        return;
    jb->carrier = kn_dsn_carrier_domain(jb->addr[0]);
    if ((cfg->smtp_bounce_domain == NULL &&
         cfg->sendgrid_webhook_public_key == NULL))
        return;
    if (jb->bref[0] == '\0') {
        what = kn_xasprintf("%s\n%s", jb->bcast, jb->fields);
        kn_blind_index(d->kr, "bounce-ref", what, bi);
        free(what);
        for (int i = 0; i < 10; i++) {
            unsigned v;
            sscanf(bi + 2 * i, "%2x", &v);
            raw[i] = (unsigned char)v;
        }
        kn_bounce_ref_encode(raw, jb->bref);
    }
    jb->job.bounce_ref = jb->bref;
    if (kn_dsn_addr_norm(jb->addr[0], norm, sizeof(norm)) < 0 ||
        RAND_bytes(salt, sizeof(salt)) != 1)
        return; /* no record: a bounce of it is kept aside, not lost */
    kn_hmac_sha256(salt, sizeof(salt), norm, strlen(norm), mac);
    hex(salt, sizeof(salt), salt_hex);
    hex(mac, sizeof(mac), mac_hex);
    OPENSSL_cleanse(norm, sizeof(norm));
    kn_argv_init(&a);
    kn_argv_take(&a, kn_key_bref(d->prefix, jb->bref));
    kn_argv_addi(&a, cfg->retention_delivery_days * DAY_MS);
    kn_argv_add(&a, "bc");
    kn_argv_add(&a, jb->bcast);
    kn_argv_add(&a, "f");
    kn_argv_add(&a, jb->fields);
    kn_argv_add(&a, "r");
    kn_argv_add(&a, jb->rcpts[0]);
    kn_argv_add(&a, "t");
    kn_argv_add(&a, jb->msg->m.tenant ? jb->msg->m.tenant : "");
    kn_argv_add(&a, "s");
    kn_argv_add(&a, salt_hex);
    kn_argv_add(&a, "h");
    kn_argv_add(&a, mac_hex);
    kn_argv_add(&a, "c");
    kn_argv_add(&a, jb->carrier ? "1" : "0");
    kn_argv_add(&a, "a");
    kn_argv_add(&a, jb->sealed[0]);
    kn__eval_reliable(d, &kn_script_bounce_ref, on_stored, NULL, NULL, 1, &a);
}

void kn__bounce_refused(struct kn_daemon *d, struct wjob *jb,
                        const char *smtp_detail, char *out, size_t cap)
{
    /* smtp_detail: "smtp 550: 5.1.1 ... (RCPT)" (adapters/smtp.c) */
    const char *st = smtp_detail ? strstr(smtp_detail, ": ") : NULL;
    int carrier = jb->carrier; /* the address is wiped by now */
    int code = 0;
    char source[16];
    struct kn_argv a;
    if (smtp_detail != NULL)
        sscanf(smtp_detail, "smtp %3d", &code);
    snprintf(source, sizeof(source), "rcpt %d", code);
    kn_bounce_detail(out, cap, st ? st + 2 : "", carrier, source);
    if (out[0] == ';') /* no enhanced status code in the reply */
        kn_bounce_detail(out, cap, "5.0.0", carrier, source);
    if (jb->msg->m.tenant == NULL)
        return;
    kn_argv_init(&a);
    kn_argv_take(&a, kn_key_bc(d->prefix, jb->bcast, ""));
    kn_argv_take(&a, kn_key_bc(d->prefix, jb->bcast, ":r"));
    kn_argv_take(&a, kn_key_supp(d->prefix, jb->msg->m.tenant));
    kn_argv_take(&a, kn_key_soft(d->prefix, jb->msg->m.tenant));
    kn_argv_add(&a, jb->fields);
    kn_argv_add(&a, "hard");
    kn_argv_add(&a, out);
    kn_argv_addi(&a, kn_now_ms());
    kn_argv_add(&a, jb->rcpts[0]);
    kn_argv_add(&a, jb->bcast);
    kn_argv_add(&a, jb->sealed[0]);
    kn_argv_addi(&a, KN_BOUNCE_SOFT_WINDOW_MS);
    kn_argv_addi(&a, KN_BOUNCE_SOFT_LIMIT);
    kn_log(KN_LOG_INFO, "bounce", "refused at RCPT: suppressed", "bc",
           jb->bcast, "rcpt", jb->rcpts[0], "detail", out, NULL);
    kn__eval_reliable(d, &kn_script_bounce, on_stored, NULL, NULL, 4, &a);
}
