/*
 * bounce.c - what comes back to the bounce address, and the tenant's
 * suppression list (issue 18).
 *
 *   kairanctl bounce [RECIPIENT] < message
 *   kairanctl suppression list TENANT [--json]
 *   kairanctl suppression clear TENANT ADDRESS|--all
 *
 * `bounce` is run by Postfix's pipe(8) for the bounce domain
 * (docs/runbook.md, "Bounces"), one message on standard input, at most
 * KN_DSN_MAX_INPUT bytes.  RECIPIENT is the envelope recipient
 * (<smtp.bounce_local>+<ref>@<smtp.bounce_domain>, pipe's ${recipient});
 * without it the Delivered-To, X-Original-To or To header is read.  It
 * needs Redis and the config, never security.key_file: the DSN's
 * Final-Recipient is compared with the salted HMAC stored with the
 * reference (dispatcher/bounce.c), so the user Postfix runs it as holds no
 * key that could unseal an address.
 *
 * Exit codes: 0 the message was recorded (a bounce, or an auto-reply or
 * other message of a known reference, counted on its broadcast and kept
 * aside); 1 it could not be attributed (no or unknown reference, a
 * Final-Recipient that is not the address kairan sent to, too big): kept
 * aside with the reason; 2 usage or config; 3 Redis unreachable.  What is
 * kept aside (stream bounce:aside, at most ~10,000 entries, and the
 * counters in hash bounce:stats) holds the reason, the kind, the reference
 * and the broadcast, never the message or an address.
 */
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include "cli/cli.h"
#include "common/kn.h"
#include "common/log.h"
#include "common/seal.h"
#include "common/text.h"
#include "model/dsn.h"
#include "queue/keys.h"
#include "queue/scripts.h"

/* Read stdin up to cap bytes (the rest is read and dropped); *too_big
 * says whether there was more. */
static char *read_capped(size_t cap, size_t *len, int *too_big)
{
    char *buf = kn_xmalloc(cap + 1), sink[8192];
    size_t n = 0, r;
    *too_big = 0;
    while (n < cap && (r = fread(buf + n, 1, cap - n, stdin)) > 0)
        n += r;
    while ((r = fread(sink, 1, sizeof(sink), stdin)) > 0)
        *too_big = 1;
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* The value of the first top-level header `name` (lower-case, with ':'). */
static int header(const char *msg, size_t len, const char *name, char *out,
                  size_t cap)
{
    size_t nl = strlen(name);
    const char *p = msg, *end = msg + len;
    while (p < end) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        size_t ll = e ? (size_t)(e - p) : (size_t)(end - p);
        if (ll > 0 && p[ll - 1] == '\r')
            ll--;
        if (ll == 0)
            return 0; /* end of the header block */
        if (ll > nl && strncasecmp(p, name, nl) == 0) {
            size_t o = 0, i = nl;
            while (i < ll && (p[i] == ' ' || p[i] == '\t'))
                i++;
            for (; i < ll && o + 1 < cap; i++)
                out[o++] = p[i];
            out[o] = '\0';
            return 1;
        }
        p = e ? e + 1 : end;
    }
    return 0;
}

/* The reference from RECIPIENT or the message's headers; 0 or -1. */
static int find_ref(const char *rcpt, const char *msg, size_t len, char *ref)
{
    static const char *const names[] = {
        "delivered-to:", "x-original-to:", "to:", NULL};
    const char *local = kn_cli_cfg.smtp_bounce_local;
    char v[400];
    if (rcpt != NULL)
        return kn_bounce_ref_from_addr(rcpt, local, ref);
    for (size_t i = 0; names[i]; i++) {
        if (header(msg, len, names[i], v, sizeof(v))) {
            /* "Name <addr>" or addr */
            char *lt = strchr(v, '<'), *gt;
            if (lt != NULL && (gt = strchr(lt, '>')) != NULL) {
                *gt = '\0';
                memmove(v, lt + 1, strlen(lt + 1) + 1);
            }
            if (kn_bounce_ref_from_addr(v, local, ref) == 0)
                return 0;
        }
    }
    return -1;
}

/* A Redis error reply: said, and freed (then 1).  Nothing was recorded:
 * kairanctl bounce exits 75 (EX_TEMPFAIL) for Postfix to deliver the
 * message to it again later. */
static int redis_failed(redisReply *r, const char *what)
{
    if (r->type != REDIS_REPLY_ERROR)
        return 0;
    fprintf(stderr,
            "kairanctl bounce: Redis error in %s: %s (Postfix "
            "will try again)\n",
            what, r->str);
    freeReplyObject(r);
    return 1;
}

/* Keep the message's outcome aside (never its content) and count it.
 * Returns 0, or -1 when Redis refused it (nothing kept). */
static int aside(const char *kind, const char *reason, const char *ref,
                 const char *bc, size_t bytes)
{
    char *stream = kn_cli_key("bounce:aside");
    char *stats = kn_cli_key("bounce:stats");
    char n[32], ms[32];
    const char *argv[] = {"XADD", stream, "MAXLEN", "~",    "10000", "*",
                          "kind", kind,   "reason", reason, "ref",   ref,
                          "bc",   bc,     "bytes",  n,      "ms",    ms};
    struct kn_argv a = {(char **)argv, NULL, (int)KN_ARRAY_SIZE(argv), 0};
    redisReply *r;
    int rc = -1;
    snprintf(n, sizeof(n), "%zu", bytes);
    snprintf(ms, sizeof(ms), "%lld", (long long)kn_now_ms());
    r = kn_cli_cmdargv(&a);
    if (!redis_failed(r, "XADD bounce:aside")) {
        freeReplyObject(r);
        r = kn_cli_cmd("HINCRBY %s %s 1", stats, kind);
        freeReplyObject(r);
        rc = 0;
    }
    free(stream);
    free(stats);
    return rc;
}

/* Keep a message that cannot be attributed aside (kind, reason) and say
 * why on stderr: exit 1, or 75 when Redis would not keep it (Postfix tries
 * again). */
static int not_attributed(const char *kind, const char *reason, const char *ref,
                          const char *bc, size_t bytes, const char *say)
{
    if (aside(kind, reason, ref, bc, bytes) < 0)
        return EX_TEMPFAIL;
    fprintf(stderr, "kairanctl bounce: kept aside: %s\n", say);
    return KN_EXIT_FAIL;
}

static const char *hfield(const redisReply *h, const char *k)
{
    for (size_t i = 0; h && h->type == REDIS_REPLY_ARRAY && i + 1 < h->elements;
         i += 2) {
        if (strcmp(h->element[i]->str, k) == 0)
            return h->element[i + 1]->str;
    }
    return NULL;
}

/* 1 if addr (normalised) is the address whose HMAC is stored. */
static int same_address(const redisReply *h, const char *addr)
{
    const char *salt_hex = hfield(h, "s"), *mac_hex = hfield(h, "h");
    unsigned char salt[16], mac[32], want[32];
    if (salt_hex == NULL || mac_hex == NULL || strlen(salt_hex) != 32 ||
        strlen(mac_hex) != 64)
        return 0;
    for (int i = 0; i < 32; i++) {
        unsigned v;
        if (i < 16) {
            if (sscanf(salt_hex + 2 * i, "%2x", &v) != 1)
                return 0;
            salt[i] = (unsigned char)v;
        }
        if (sscanf(mac_hex + 2 * i, "%2x", &v) != 1)
            return 0;
        want[i] = (unsigned char)v;
    }
    kn_hmac_sha256(salt, sizeof(salt), addr, strlen(addr), mac);
    return CRYPTO_memcmp(mac, want, sizeof(mac)) == 0;
}

static int do_bounce(int argc, char **argv)
{
    char ref[KN_BOUNCE_REF_LEN + 1], detail[64];
    const char *rcpt = NULL, *bc, *field, *tenant;
    size_t len;
    int too_big, rc = KN_EXIT_FAIL;
    char *msg, *key;
    struct kn_dsn d;
    redisReply *h = NULL, *r;
    struct kn_argv a;

    if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
        fprintf(stderr, "usage: kairanctl bounce [RECIPIENT] < message\n");
        return KN_EXIT_USAGE;
    }
    if (argc == 2)
        rcpt = argv[1];
    /* From here, Redis unreachable or failing is "try again later" for
     * Postfix's pipe(8), never 3 or 1: those make it bounce the DSN (to
     * no one: a DSN's sender is empty), and the address stays live. */
    kn_cli_tempfail_exit = EX_TEMPFAIL;
    if (kn_cli_cfg.smtp_bounce_local == NULL) {
        fprintf(stderr, "kairanctl bounce: smtp.bounce_local and "
                        "smtp.bounce_domain are not set in the config: "
                        "kairan sends no VERP address to attribute\n");
        return KN_EXIT_USAGE;
    }
    msg = read_capped(KN_DSN_MAX_INPUT, &len, &too_big);
    if (too_big) {
        rc = not_attributed("too-big", "larger than the 1 MiB a bounce may be",
                            "", "", len, "larger than 1 MiB");
        goto out;
    }
    if (find_ref(rcpt, msg, len, ref) < 0) {
        rc = not_attributed("unattributed",
                            "no bounce reference in the recipient", "", "", len,
                            "the recipient is not <bounce_local>+<ref>@...");
        goto out;
    }
    key = kn_key_bref(kn_cli_cfg.redis_prefix, ref);
    h = kn_cli_cmd("HGETALL %s", key);
    free(key);
    if (redis_failed(h, "HGETALL bounce reference")) {
        h = NULL;
        rc = EX_TEMPFAIL;
        goto out;
    }
    bc = hfield(h, "bc");
    field = hfield(h, "f");
    tenant = hfield(h, "t");
    if (bc == NULL || field == NULL || tenant == NULL) {
        rc = not_attributed("unattributed", "unknown or expired reference", ref,
                            "", len, "unknown or expired reference");
        goto out;
    }
    kn_dsn_parse(msg, len, &d);
    if (d.kind == KN_DSN_AUTOREPLY || d.kind == KN_DSN_OTHER) {
        char *bk = kn_key_bc(kn_cli_cfg.redis_prefix, bc, "");
        r = kn_cli_cmd("HINCRBY %s %s 1", bk,
                       d.kind == KN_DSN_AUTOREPLY ? "n:email:autoreply"
                                                  : "n:email:other");
        if (redis_failed(r, "HINCRBY")) {
            free(bk);
            rc = EX_TEMPFAIL;
            goto out;
        }
        freeReplyObject(r);
        free(bk);
        if (aside(kn_dsn_kind_name(d.kind), d.why, ref, bc, len) < 0) {
            rc = EX_TEMPFAIL;
            goto out;
        }
        printf("not a bounce (%s): counted, kept aside\n", d.why);
        rc = KN_EXIT_OK;
        goto out;
    }
    if (!same_address(h, d.final_rcpt)) {
        rc = not_attributed("unattributed",
                            "the Final-Recipient is not the address kairan "
                            "sent to (a forwarding target?)",
                            ref, bc, len,
                            "the DSN's Final-Recipient is not the address "
                            "kairan sent to");
        goto out;
    }
    kn_bounce_detail(detail, sizeof(detail), d.status,
                     strcmp(hfield(h, "c") ? hfield(h, "c") : "0", "1") == 0,
                     "dsn");
    kn_argv_init(&a);
    kn_argv_take(&a, kn_key_bc(kn_cli_cfg.redis_prefix, bc, ""));
    kn_argv_take(&a, kn_key_bc(kn_cli_cfg.redis_prefix, bc, ":r"));
    kn_argv_take(&a, kn_key_supp(kn_cli_cfg.redis_prefix, tenant));
    kn_argv_take(&a, kn_key_soft(kn_cli_cfg.redis_prefix, tenant));
    kn_argv_add(&a, field);
    kn_argv_add(&a, d.kind == KN_DSN_DELAYED       ? "delayed"
                    : kn_dsn_status_hard(d.status) ? "hard"
                                                   : "soft");
    kn_argv_add(&a, detail);
    kn_argv_addi(&a, kn_now_ms());
    kn_argv_add(&a, hfield(h, "r") ? hfield(h, "r") : "");
    kn_argv_add(&a, bc);
    kn_argv_add(&a, hfield(h, "a") ? hfield(h, "a") : "");
    kn_argv_addi(&a, KN_BOUNCE_SOFT_WINDOW_MS);
    kn_argv_addi(&a, KN_BOUNCE_SOFT_LIMIT);
    r = kn_cli_eval(&kn_script_bounce, 4, &a);
    kn_argv_free(&a);
    printf("%s %s: %s%s\n", kn_dsn_kind_name(d.kind),
           d.status[0] ? d.status : "(no status)", detail,
           r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                   r->element[1]->integer == 1
               ? ", address suppressed"
               : "");
    freeReplyObject(r);
    rc = KN_EXIT_OK;
out:
    OPENSSL_cleanse(&d, sizeof(d));
    freeReplyObject(h);
    free(msg);
    return rc;
}

const struct kn_cli_command kn_cli_cmd_bounce = {
    .name = "bounce",
    .usage = "  bounce [RECIPIENT]     one returned message on stdin (run "
             "by Postfix pipe(8)):\n"
             "                         0 recorded, 1 not attributed (kept "
             "aside),\n"
             "                         75 Redis unreachable or failing "
             "(Postfix tries again)\n",
    .needs_config = 1,
    .run = do_bounce,
};

/* ---- suppression list ---- */

static int supp_list(const char *tenant, int as_json)
{
    char *key = kn_key_supp(kn_cli_cfg.redis_prefix, tenant), err[200];
    redisReply *r = kn_cli_cmd("HGETALL %s", key);
    struct kn_keyring *kr = NULL;
    json_t *arr = json_array();
    free(key);
    if (kn_keyring_load(kn_cli_cfg.key_file, &kr, err, sizeof(err)) < 0)
        kr = NULL; /* list without the masked addresses */
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements;
         i += 2) {
        /* "<h|s>|<ms>|<detail>|<rcpt>|<bcast>|<sealed>" */
        char *v = kn_xstrdup(r->element[i + 1]->str), *parts[6] = {0};
        char *p = v, *plain = NULL, m[128] = "", st[16] = "";
        int np = 0, carrier = 0;
        while (np < 6 && p != NULL) {
            parts[np++] = p;
            p = np < 6 ? strchr(p, '|') : NULL;
            if (p != NULL)
                *p++ = '\0';
        }
        if (np >= 3)
            kn_bounce_detail_parse(parts[2], st, sizeof(st), &carrier);
        if (kr != NULL && np == 6 &&
            kn_unseal(kr, "email", parts[5], &plain, NULL) == 0) {
            kn_mask_address(plain, m, sizeof(m));
            OPENSSL_cleanse(plain, strlen(plain));
            free(plain);
        }
        json_array_append_new(
            arr,
            json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:s}", "id",
                      r->element[i]->str, "kind", v[0] == 'h' ? "hard" : "soft",
                      "address", m, "since_ms",
                      (json_int_t)(np > 1 ? strtoll(parts[1], NULL, 10) : 0),
                      "status", st, "recipient", np > 3 ? parts[3] : "",
                      "broadcast", np > 4 ? parts[4] : "", "reason",
                      kn_dsn_reason(st, carrier, 0), "reason_ja",
                      kn_dsn_reason(st, carrier, 1)));
        free(v);
    }
    freeReplyObject(r);
    kn_keyring_free(kr);
    if (as_json) {
        json_t *safe = kn_cli_safe_json(arr);
        json_dumpf(safe, stdout, JSON_INDENT(2));
        printf("\n");
        json_decref(safe);
    } else {
        size_t i;
        json_t *e;
        json_array_foreach(arr, i, e)
        {
            char *line = kn_text_safe(
                json_string_value(json_object_get(e, "recipient")));
            printf("%s  %s  %s  %s  %s\n",
                   json_string_value(json_object_get(e, "kind")),
                   json_string_value(json_object_get(e, "status")),
                   json_string_value(json_object_get(e, "address")), line,
                   json_string_value(json_object_get(e, "reason")));
            free(line);
        }
        printf("%zu suppressed\n", json_array_size(arr));
    }
    json_decref(arr);
    return KN_EXIT_OK;
}

static int supp_clear(const char *tenant, const char *addr)
{
    char *supp = kn_key_supp(kn_cli_cfg.redis_prefix, tenant);
    char *soft = kn_key_soft(kn_cli_cfg.redis_prefix, tenant);
    char bi[33], err[200];
    struct kn_keyring *kr = NULL;
    long long n = 0;
    redisReply *r;
    int rc = KN_EXIT_OK;
    if (kn_cli_audit_ready() < 0) {
        rc = KN_EXIT_FAIL;
        goto out;
    }
    if (strcmp(addr, "--all") == 0) {
        /* HKEYS, not HLEN: the commands kairan's Redis user may run
         * (contrib/redis-kairan.conf) */
        r = kn_cli_cmd("HKEYS %s", supp);
        n = r->type == REDIS_REPLY_ARRAY ? (long long)r->elements : 0;
        freeReplyObject(r);
        freeReplyObject(kn_cli_cmd("DEL %s %s", supp, soft));
    } else {
        if (kn_keyring_load(kn_cli_cfg.key_file, &kr, err, sizeof(err)) < 0) {
            fprintf(stderr, "kairanctl: security.key_file: %s\n", err);
            rc = KN_EXIT_FAIL;
            goto out;
        }
        kn_blind_index(kr, "email", addr, bi);
        kn_keyring_free(kr);
        r = kn_cli_cmd("HDEL %s %s", supp, bi);
        n = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
        freeReplyObject(r);
        freeReplyObject(kn_cli_cmd("HDEL %s %s", soft, bi));
    }
    kn_cli_audit_fields("suppression clear",
                        json_pack("{s:s, s:I, s:b}", "tenant", tenant,
                                  "cleared", (json_int_t)n, "all",
                                  strcmp(addr, "--all") == 0));
    printf("%lld cleared\n", n);
    if (n == 0 && strcmp(addr, "--all") != 0) {
        fprintf(stderr,
                "kairanctl: that address is not suppressed for "
                "%s\n",
                tenant);
        rc = KN_EXIT_UNKNOWN;
    }
out:
    free(supp);
    free(soft);
    return rc;
}

static int do_suppression(int argc, char **argv)
{
    if (argc >= 3 && !kn_tenant_valid(argv[2])) {
        fprintf(stderr,
                "kairanctl: '%s' is not a tenant name (letters, "
                "digits, '.', '_', '-', starting with a letter or digit)\n",
                argv[2]);
        return KN_EXIT_USAGE;
    }
    if (argc >= 3 && argc <= 4 && strcmp(argv[1], "list") == 0) {
        int as_json = argc == 4 && strcmp(argv[3], "--json") == 0;
        if (argc == 4 && !as_json)
            goto usage;
        return supp_list(argv[2], as_json);
    }
    if (argc == 4 && strcmp(argv[1], "clear") == 0)
        return supp_clear(argv[2], argv[3]);
usage:
    fprintf(stderr, "usage: kairanctl suppression list TENANT [--json]\n"
                    "       kairanctl suppression clear TENANT "
                    "ADDRESS|--all\n");
    return KN_EXIT_USAGE;
}

const struct kn_cli_command kn_cli_cmd_supp = {
    .name = "suppression",
    .usage = "  suppression list TENANT [--json]\n"
             "  suppression clear TENANT ADDRESS|--all\n"
             "                         bounced addresses that are skipped\n",
    .needs_config = 1,
    .run = do_suppression,
};
