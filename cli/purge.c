/*
 * purge.c - retention commands:
 *
 *   kairanctl purge [--now ISO8601]       delete what is past retention
 *   kairanctl tenant close T [--now ISO8601]
 *
 * purge runs the same code as kairand's daily timer (queue/retention.c,
 * rules in queue/retention.h and docs/drills.md).  tenant close stops
 * T's API tokens and staff sessions at once (kairand's HTTP reads tenant:<T>
 * closed_ms on every request) and schedules T's data for erasure by the purge
 * after retention.closed_tenant_days.  --now fixes the clock (tests, and to see
 * in advance what a purge on that day would delete... by doing it: there
 * is no dry run).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/argv.h"
#include "common/kn.h"
#include "model/broadcast.h"
#include "queue/keys.h"
#include "queue/registration.h"
#include "queue/retention.h"
#include "queue/scripts.h"
#include "queue/staff.h"

/* Take "--now ISO8601" out of argv (sets the fixed clock); returns the
 * new argc, or -1 on a bad time. */
static int take_now(int argc, char **argv)
{
    int j = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--now") == 0 && i + 1 < argc) {
            int64_t ms;
            if (kn_time_parse(argv[i + 1], &ms) < 0) {
                fprintf(stderr,
                        "kairanctl: --now %s: write an RFC 3339 "
                        "time, e.g. 2027-06-01T03:00:00+09:00\n",
                        argv[i + 1]);
                return -1;
            }
            kn__fake_now_ms = ms;
            i++;
            continue;
        }
        argv[j++] = argv[i];
    }
    return j;
}

static int do_purge(int argc, char **argv)
{
    struct kn_purge_stats st;
    char err[300], t1[48], t2[48], t3[48];
    int rc;

    argc = take_now(argc, argv);
    if (argc != 1) {
        fprintf(stderr, "usage: kairanctl purge [--now ISO8601]\n");
        return KN_EXIT_USAGE;
    }
    rc = kn_purge_run(kn_cli_redis(), &kn_cli_cfg, kn_now_ms(), &st, err,
                      sizeof(err));
    if (rc == KN_EAGAIN) {
        fprintf(stderr, "kairanctl: another purge is running (lock:purge); "
                        "try again later\n");
        return KN_EXIT_FAIL;
    }
    printf("broadcasts deleted: %lld (created before %s)\n", st.broadcasts,
           kn_time_jst(st.fy_cutoff_ms, t1, sizeof(t1)));
    printf("delivery records deleted: %lld (broadcasts before %s)\n",
           st.delivery_records,
           kn_time_jst(st.delivery_cutoff_ms, t2, sizeof(t2)));
    printf("dead letters deleted: %lld (added before %s)\n", st.dlq_entries,
           t2);
    printf("audit lines deleted: %lld (before %s)\n", st.audit_lines,
           kn_time_jst(st.audit_cutoff_ms, t3, sizeof(t3)));
    printf("closed tenants erased: %lld (%lld keys)\n", st.tenants,
           st.tenant_keys);
    printf("staff accounts deleted: %lld (deactivated before %s)\n",
           st.staff_accounts, t1);
    printf("registrations deleted: %lld keys (children no longer in the "
           "directory)\n",
           st.registrations);
    if (rc < 0) {
        fprintf(stderr, "kairanctl: purge incomplete: %s\n", err);
        return KN_EXIT_FAIL;
    }
    return KN_EXIT_OK;
}

const struct kn_cli_command kn_cli_cmd_purge = {
    .name = "purge",
    .usage = "  purge [--now ISO8601]  delete what is past retention\n",
    .needs_config = 1,
    .run = do_purge,
};

/*
 * Cancel every broadcast of tenant that has not ended (the index active:
 * scheduled, expanding, sending, waiting for a retry): nothing goes out for
 * a closed school after its close.  Each one is in the operation log
 * (broadcast.cancel, via tenant.close).  Returns how many.
 */
static long long cancel_unfinished(const char *tenant)
{
    char *ak = kn_cli_key("active");
    redisReply *r = kn_cli_cmd("ZRANGE %s 0 -1", ak);
    long long n = 0;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const char *id = r->element[i]->str;
        char *bk = kn_key_bc(kn_cli_cfg.redis_prefix, id, "");
        redisReply *t = kn_cli_cmd("HGET %s tenant", bk);
        if (t->type == REDIS_REPLY_STRING && strcmp(t->str, tenant) == 0) {
            struct kn_argv a;
            redisReply *c;
            kn_argv_init(&a);
            kn_argv_add(&a, bk);
            kn_argv_add(&a, ak);
            kn_argv_add(&a, id);
            kn_argv_addi(&a, kn_now_ms());
            c = kn_cli_eval(&kn_script_cancel, 2, &a);
            kn_argv_free(&a);
            if (c->type == REDIS_REPLY_STRING &&
                strcmp(c->str, "cancelled") == 0) {
                json_t *f = json_pack("{s:s, s:s, s:s}", "broadcast", id,
                                      "tenant", tenant, "via", "tenant.close");
                kn_cli_audit_fields("broadcast.cancel", f);
                n++;
            }
            freeReplyObject(c);
        }
        freeReplyObject(t);
        free(bk);
    }
    freeReplyObject(r);
    free(ak);
    return n;
}

static int do_tenant(int argc, char **argv)
{
    redisReply *r;
    char *k, t[48];
    int64_t closed, erase;
    long long cancelled;
    const char *tenant;

    argc = take_now(argc, argv);
    if (argc != 3 || strcmp(argv[1], "close") != 0) {
        fprintf(stderr, "usage: kairanctl tenant close T [--now ISO8601]\n");
        return KN_EXIT_USAGE;
    }
    tenant = argv[2];
    if (!kn_tenant_valid(tenant)) {
        fprintf(stderr,
                "kairanctl: '%s' is not a tenant name (1-64 letters, "
                "digits, '-', '_', '.')\n",
                tenant);
        return KN_EXIT_USAGE;
    }
    if (kn_cli_audit_ready() < 0)
        return KN_EXIT_FAIL;
    k = kn_cli_key("tenant:%s", tenant);
    r = kn_cli_cmd("HSETNX %s closed_ms %lld", k, (long long)kn_now_ms());
    freeReplyObject(r);
    r = kn_cli_cmd("HGET %s closed_ms", k);
    closed =
        r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : kn_now_ms();
    freeReplyObject(r);
    free(k);
    k = kn_cli_key("tenants:closed");
    r = kn_cli_cmd("ZADD %s NX %lld %s", k, (long long)closed, tenant);
    freeReplyObject(r);
    free(k);
    /* Its staff sessions end now (kairand also refuses any session of a
     * closed tenant); the accounts go with its data. */
    kn_staff_end_tenant_sessions(kn_cli_redis(), kn_cli_cfg.redis_prefix,
                                 tenant);
    /* Its registration sheets' passcodes stop working now too. */
    kn_reg_void_sheets(kn_cli_redis(), kn_cli_cfg.redis_prefix, tenant);
    /* Nothing more goes out for it (a broadcast scheduled for next
     * week, one still sending). */
    cancelled = cancel_unfinished(tenant);
    kn_cli_audit_op("tenant.close", NULL, tenant);
    erase = closed + kn_cli_cfg.retention_closed_tenant_days * 86400000LL;
    printf("tenant %s closed at %s: its tokens and staff sessions no longer "
           "work; %lld unfinished broadcast(s) cancelled; its data is "
           "erased by the first purge on or after %s\n",
           tenant, kn_time_jst(closed, t, sizeof(t)), cancelled,
           kn_time_jst(erase, (char[48]){0}, 48));
    return KN_EXIT_OK;
}

const struct kn_cli_command kn_cli_cmd_tenant = {
    .name = "tenant",
    .usage = "  tenant close T [--now ISO8601]\n"
             "                         stop T's tokens now, erase its data "
             "after retention.closed_tenant_days\n",
    .needs_config = 1,
    .run = do_tenant,
};
