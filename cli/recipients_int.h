/*
 * recipients_int.h - what the directory commands' files share (private to
 * cli/): recipients.c (the commands, deactivate/activate/delete, groups
 * list and the shared Redis and operation-log helpers), import.c (import)
 * and export.c (export).
 */
#ifndef KN_CLI_RECIPIENTS_INT_H
#define KN_CLI_RECIPIENTS_INT_H

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stddef.h>

#include "common/argv.h"
#include "queue/redis_uv.h"
#include "queue/roster.h"

/* The CSV columns (COL_*, kn_roster_columns): queue/roster.h. */

/* n commands in one round trip; the connection lost exits 3.  Caller frees
 * with kn__rcp_replies_free. */
redisReply **kn__rcp_pipeline(struct kn_argv *cmds, size_t n);
void kn__rcp_replies_free(redisReply **r, size_t n);
/* 1 if the tenant has ever had a directory (import), else 0. */
int kn__rcp_tenant_known(const char *tenant);
/* The operation log (model/audit.h): 0 if it can be written now, else -1
 * after saying so (then nothing is changed); then one line of fields
 * (taken; no address ever). */
int kn__rcp_oplog_open(void);
void kn__rcp_oplog_write(const char *op, const char *tenant, json_t *fields);
/* qsort/bsearch comparison of two char * */
int kn__rcp_cmp_str(const void *a, const void *b);
/* queue/lua/rcpt_delete.lua */
extern struct kn_redis_script kn__rcp_delete_script;
/* prefix and tenant, the first two arguments of the directory scripts */
void kn__rcp_add_prefix_tenant(struct kn_argv *a, const char *tenant);

struct import_opts {
    const char *tenant, *file;
    int skip_bad, replace;
    const char *const *ignore; /* --ignore-column NAMEs */
    size_t nignore;
    int ignore_unknown; /* --ignore-unknown */
    const char *shown;  /* file for messages (kn_text_safe) */
};
/* recipients import; an exit code */
int kn__rcp_import(const struct import_opts *o);
/* recipients export; an exit code */
int kn__rcp_export(const char *tenant, int bom);
/* recipients sheets (cli/sheets.c): group may be NULL; csv 0 = HTML; bom:
 * a UTF-8 BOM before the CSV (for Excel and Word); an exit code */
int kn__rcp_sheets(const char *tenant, const char *group, int reissue, int csv,
                   int bom);
/* recipients unregistered (cli/sheets.c): group may be NULL; an exit code */
int kn__rcp_unregistered(const char *tenant, const char *group);
/* recipients remind (cli/sheets.c): group may be NULL; an exit code */
int kn__rcp_remind(const char *tenant, const char *group, int dry_run);

#endif
