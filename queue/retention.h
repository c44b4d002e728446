/*
 * retention.h - retention (SECURITY-PROMISES.md rows 7-9): what is deleted
 * when, shared by "kairanctl purge" and kairand's daily timer
 * (dispatcher/purge.c).
 *
 * The rules (docs/drills.md):
 *  - broadcasts (bc:<id>, :r, :aud, :ack, :m and their places in the bcs,
 *    rejected and active indexes) created before the first day of the
 *    oldest kept Japanese fiscal year (April-March, JST): the current one
 *    and retention.fiscal_years - 1 before it.  In April and May the
 *    previous window still holds: a fiscal year that has just fallen out
 *    is deleted from June 1 on ("deleted every June");
 *  - per-recipient delivery records (bc:<id>:r, which hold sealed data and
 *    blind indexes, and the member set bc:<id>:m of the personal links) of
 *    broadcasts older than retention.delivery_days, and the DLQ's entries
 *    (dead letters: jobs with sealed addresses) added before that;
 *  - audit-log lines (the .jsonl files in audit_dir) older than
 *    retention.audit_years calendar years;
 *  - every key of a tenant closed (kairanctl tenant close) at least
 *    retention.closed_tenant_days ago: directory, groups, indexes, tokens,
 *    broadcasts and their DLQ entries.  tenant:<T> itself stays
 *    (closed_ms, erased_ms) so that its name cannot silently come back to
 *    life.  Its registration sheets and guardians' registrations go with
 *    it (queue/registration.h);
 *  - the registrations and sheet of a child no longer in the directory.
 * One purge at a time across processes: <prefix>lock:purge (SET NX PX).
 */
#ifndef KN_QUEUE_RETENTION_H
#define KN_QUEUE_RETENTION_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

struct kn_config;

struct kn_purge_stats {
    long long broadcasts;       /* deleted whole */
    long long delivery_records; /* bc:<id>:r deleted */
    long long dlq_entries;      /* dead letters before delivery_cutoff_ms */
    long long audit_lines;      /* lines dropped */
    long long tenants;          /* closed tenants erased */
    long long tenant_keys;      /* keys deleted for them */
    long long staff_accounts;   /* deactivated before fy_cutoff_ms */
    long long registrations;    /* keys of children who left (issue 15) */
    int64_t fy_cutoff_ms;       /* broadcasts before this went */
    int64_t delivery_cutoff_ms;
    int64_t audit_cutoff_ms;
};

/*
 * Fill every tenant's index tbcs:<tenant> (queue/keys.h) from bcs, once:
 * the broadcasts stored before 0.5.0 (newer ones add themselves).  Marks
 * itself done in the hash migrations (field tbcs) and does nothing after.
 * Returns the entries added, or -1 with err set.
 */
long long kn_tbcs_fill(redisContext *c, const char *prefix, char *err,
                       size_t errlen);

/*
 * Run one purge as if the time were now (ms) on the synchronous
 * connection c.  Returns 0 and fills st; KN_EAGAIN if another purge holds
 * the lock; KN_EIO with a message in err on a Redis or file error.
 */
int kn_purge_run(redisContext *c, const struct kn_config *cfg, int64_t now,
                 struct kn_purge_stats *st, char *err, size_t errlen);

/* The first millisecond of the oldest kept fiscal year at now (see the
 * June rule above). */
int64_t kn_purge_fy_cutoff(int64_t now, int fiscal_years);

/* now minus years calendar years (JST dates; Feb 29 -> Feb 28). */
int64_t kn_purge_years_ago(int64_t now, int years);

#endif
