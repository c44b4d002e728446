/*
 * recipients.c - kairanctl's directory commands: a school's recipients and
 * groups, loaded from the CSV file its staff export from Excel.
 *
 *   recipients import --tenant T [--skip-bad] [--replace]
 *                     [--ignore-column NAME]... [--ignore-unknown] FILE.csv
 *   recipients export --tenant T [--format csv] [--bom]
 *   recipients deactivate|activate|delete --tenant T ID
 *   groups list --tenant T
 *
 * Import checks the whole file before it writes anything: every bad row
 * is listed as FILE:LINE: reason, and nothing is written unless every row
 * is good (or --skip-bad).  Re-importing the same file writes nothing: each
 * record keeps a keyed hash of its normalised row, and rows whose hash did
 * not change are not even sent.  Addresses are sealed here (common/seal.h),
 * so plaintext never reaches Redis; export is the one command that prints
 * them, in full, because it is the operator's way to get the data back.
 *
 * Storage (the expander, dispatcher/expand.c, reads it; keep it so):
 *   rcpt:<T>:<id>   hash  c (compact JSON: id, e/ei, l/li, p[{k,t,ti}], ch,
 *                         g[] further guardians: model/directory.h),
 *                         active "1"|"0", name (sealed, purpose "name"),
 *                         grade, class, groups ("a;b", NFKC names), number,
 *                         kana, guardian (sealed "name"), phone (sealed
 *                         "phone"), hash, updated_ms
 *   grp:<T>:<g>     set   member ids        groups:<T>  set  group names
 *   rcpts:<T>       set   every id          tenants     set  tenant names
 *   bidx:<T>:<purpose>:<blind index>  set   ids having that address
 * Every recipient is written or deleted by one Lua script together with
 * its group and index entries, a batch of rows per call, so that a crash
 * never leaves one half-written; running the import again finishes it.
 *
 * Imports, deletions and (de)activations append a line to the operation
 * log <retention.audit_dir>/operations.jsonl; it never holds an address.
 */
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/csv.h"
#include "cli/recipients_int.h"
#include "common/argv.h"
#include "common/file.h"
#include "common/kn.h"
#include "common/log.h"
#include "common/seal.h"
#include "common/text.h"
#include "common/utf8.h"
#include "config/config.h"
#include "model/broadcast.h"
#include "model/directory.h"
#include "model/address.h"
#include "model/audit.h"
#include "queue/keys.h"
#include "queue/redis_uv.h"
#include "queue/lua.h"


int kn__rcp_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}



/* ---- small helpers ---- */

static void usage_err(const char *msg)
{
    fprintf(stderr, "kairanctl: %s (see kairanctl -h)\n", msg);
}

/* ---- Redis ---- */

static void redis_lost(void)
{
    redisContext *rc = kn_cli_redis();
    fprintf(stderr, "kairanctl: Redis connection lost: %s\n", rc->errstr);
    exit(KN_EXIT_UNKNOWN);
}

/*
 * Send n commands in one round trip and read their replies (in order;
 * the caller frees each and the array).  Exits 3 if Redis is gone.
 */
redisReply **kn__rcp_pipeline(struct kn_argv *cmds, size_t n)
{
    redisContext *rc = kn_cli_redis();
    redisReply **out = kn_xcalloc(n + 1, sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        if (redisAppendCommandArgv(rc, cmds[i].n, (const char **)cmds[i].v,
                                   cmds[i].len) != REDIS_OK)
            redis_lost();
    }
    for (size_t i = 0; i < n; i++) {
        void *r = NULL;
        if (redisGetReply(rc, &r) != REDIS_OK || r == NULL)
            redis_lost();
        out[i] = r;
    }
    return out;
}

void kn__rcp_replies_free(redisReply **r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        freeReplyObject(r[i]);
    free(r);
}

/* queue/lua/rcpt_delete.lua */
struct kn_redis_script kn__rcp_delete_script = {
    "rcpt_delete", kn_lua_rcpt_delete, ""};

/* queue/lua/rcpt_active.lua */
static struct kn_redis_script active_script = {
    "rcpt_active", kn_lua_rcpt_active, ""};

/* 1 if the tenant has ever had a directory (import), else 0. */
int kn__rcp_tenant_known(const char *tenant)
{
    char *k = kn_cli_key("tenants");
    redisReply *r = kn_cli_cmd("SISMEMBER %s %s", k, tenant);
    int known = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    free(k);
    return known;
}

/* ---- the operation log ---- */

/*
 * The operation log, as every writer keeps it (model/audit.h): checked
 * before a change (a change that cannot be logged is not made; 0 or -1
 * after saying so), then one line {time, actor, op, tenant, ...fields}
 * (fields taken).
 */
int kn__rcp_oplog_open(void)
{
    return kn_cli_audit_ready();
}

void kn__rcp_oplog_write(const char *op, const char *tenant, json_t *fields)
{
    char *actor = kn_audit_cli_actor();
    json_t *f = fields != NULL ? fields : json_object();
    json_object_set_new(f, "tenant", json_string(tenant));
    if (kn_audit_op(kn_cli_cfg.audit_dir, actor, op, f) < 0)
        fprintf(stderr, "kairanctl: warning: the operation log %s/"
                        "operations.jsonl could not be written: %s\n",
                kn_cli_cfg.audit_dir, strerror(errno));
    free(actor);
}

/* ---- deactivate, activate, delete ---- */

static int do_one(const char *verb, const char *tenant, const char *id)
{
    struct kn_argv a;
    redisReply *r;
    int found;
    char op[48];

    if (!kn_id_valid(id)) {
        usage_err("a recipient id is 1-128 letters, digits, '-', '_', "
                  "'.', ':'");
        return KN_EXIT_USAGE;
    }
    if (kn__rcp_oplog_open() < 0)
        return KN_EXIT_FAIL;
    kn_argv_init(&a);
    kn__rcp_add_prefix_tenant(&a, tenant);
    if (strcmp(verb, "delete") == 0) {
        kn_argv_add(&a, id);
        r = kn_cli_eval(&kn__rcp_delete_script, 0, &a);
    } else {
        kn_argv_add(&a, id);
        kn_argv_add(&a, strcmp(verb, "activate") == 0 ? "1" : "0");
        kn_argv_addi(&a, kn_now_ms());
        r = kn_cli_eval(&active_script, 0, &a);
    }
    found = r->type == REDIS_REPLY_INTEGER && r->integer > 0;
    freeReplyObject(r);
    kn_argv_free(&a);
    if (!found) {
        fprintf(stderr, "kairanctl: no recipient %s in tenant %s\n", id,
                tenant);
        return KN_EXIT_UNKNOWN;
    }
    snprintf(op, sizeof(op), "recipients.%s", verb);
    kn__rcp_oplog_write(op, tenant, json_pack("{s:s}", "id", id));
    printf("%s %sd\n", id, verb); /* deleted, deactivated, activated */
    return KN_EXIT_OK;
}

/* ---- groups list ---- */

static int do_groups_list(const char *tenant)
{
    char *k = kn_cli_key("groups:%s", tenant);
    redisReply *g = kn_cli_cmd("SMEMBERS %s", k), **rep;
    struct kn_argv *cmds;
    size_t n = g->type == REDIS_REPLY_ARRAY ? g->elements : 0;
    char **v;

    free(k);
    if (n == 0 && !kn__rcp_tenant_known(tenant)) {
        fprintf(stderr, "kairanctl: no tenant %s (nothing was imported "
                        "for it)\n",
                tenant);
        freeReplyObject(g);
        return KN_EXIT_UNKNOWN;
    }
    v = kn_xcalloc(n + 1, sizeof(*v));
    cmds = kn_xcalloc(n + 1, sizeof(*cmds));
    for (size_t i = 0; i < n; i++)
        v[i] = g->element[i]->str;
    qsort(v, n, sizeof(*v), kn__rcp_cmp_str);
    for (size_t i = 0; i < n; i++) {
        kn_argv_init(&cmds[i]);
        kn_argv_add(&cmds[i], "SCARD");
        kn_argv_take(&cmds[i], kn_key_grp(kn_cli_cfg.redis_prefix, tenant, v[i]));
    }
    rep = n ? kn__rcp_pipeline(cmds, n) : NULL;
    for (size_t i = 0; i < n; i++) {
        printf("%s\t%lld\n", v[i], rep[i]->integer);
        kn_argv_free(&cmds[i]);
    }
    if (rep)
        kn__rcp_replies_free(rep, n);
    free(cmds);
    free(v);
    freeReplyObject(g);
    return KN_EXIT_OK;
}

/* ---- argument parsing and the commands ---- */

struct args {
    const char *tenant, *format;
    int skip_bad, replace, bom;
    const char *group; /* sheets */
    int reissue;       /* sheets */
    int dry_run;       /* remind */
    const char *ignore[64]; /* --ignore-column */
    size_t nignore;
    int ignore_unknown;
    const char *pos[4];
    int npos;
};

/* Options may come anywhere after the verb.  Returns 0 or -1 (printed). */
static int parse_args(int argc, char **argv, struct args *a)
{
    int dashdash = 0;
    memset(a, 0, sizeof(*a));
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (!dashdash && strcmp(s, "--") == 0) {
            dashdash = 1;
        } else if (!dashdash && strcmp(s, "--tenant") == 0 && i + 1 < argc) {
            a->tenant = argv[++i];
        } else if (!dashdash && strncmp(s, "--tenant=", 9) == 0) {
            a->tenant = s + 9;
        } else if (!dashdash && strcmp(s, "--format") == 0 && i + 1 < argc) {
            a->format = argv[++i];
        } else if (!dashdash && strncmp(s, "--format=", 9) == 0) {
            a->format = s + 9;
        } else if (!dashdash && strcmp(s, "--skip-bad") == 0) {
            a->skip_bad = 1;
        } else if (!dashdash && strcmp(s, "--replace") == 0) {
            a->replace = 1;
        } else if (!dashdash && strcmp(s, "--ignore-column") == 0 &&
                   i + 1 < argc) {
            if (a->nignore == KN_ARRAY_SIZE(a->ignore)) {
                usage_err("--ignore-column: at most 64 columns");
                return -1;
            }
            a->ignore[a->nignore++] = argv[++i];
        } else if (!dashdash && strcmp(s, "--ignore-unknown") == 0) {
            a->ignore_unknown = 1;
        } else if (!dashdash && strcmp(s, "--bom") == 0) {
            a->bom = 1;
        } else if (!dashdash && strcmp(s, "--group") == 0 && i + 1 < argc) {
            a->group = argv[++i];
        } else if (!dashdash && strcmp(s, "--reissue") == 0) {
            a->reissue = 1;
        } else if (!dashdash && strcmp(s, "--dry-run") == 0) {
            a->dry_run = 1;
        } else if (!dashdash && s[0] == '-' && s[1] != '\0') {
            fprintf(stderr, "kairanctl: unknown option %s\n", s);
            return -1;
        } else if (a->npos < (int)KN_ARRAY_SIZE(a->pos)) {
            a->pos[a->npos++] = s;
        } else {
            usage_err("too many arguments");
            return -1;
        }
    }
    if (a->tenant == NULL) {
        usage_err("--tenant T is required");
        return -1;
    }
    if (!kn_tenant_valid(a->tenant)) {
        usage_err("--tenant: 1-64 letters, digits, '-', '_', '.' (starting "
                  "with a letter or digit)");
        return -1;
    }
    return 0;
}

static int run_recipients(int argc, char **argv)
{
    struct args a;
    const char *verb = argc > 1 ? argv[1] : "";
    if (parse_args(argc - 2 > 0 ? argc - 2 : 0, argv + 2, &a) < 0)
        return KN_EXIT_USAGE;
    if (strcmp(verb, "import") == 0) {
        struct import_opts o = {a.tenant,   a.pos[0],         a.skip_bad,
                                a.replace,  a.ignore,         a.nignore,
                                a.ignore_unknown, NULL};
        char *shown;
        int rc;
        if (a.npos != 1 || a.format || a.bom || a.dry_run) {
            usage_err("recipients import --tenant T [--skip-bad] "
                      "[--replace] [--ignore-column NAME]... "
                      "[--ignore-unknown] FILE.csv");
            return KN_EXIT_USAGE;
        }
        shown = kn_text_safe(o.file);
        o.shown = shown;
        rc = kn__rcp_import(&o);
        free(shown);
        return rc;
    }
    if (a.skip_bad || a.replace || a.nignore || a.ignore_unknown) {
        usage_err("--skip-bad, --replace, --ignore-column and "
                  "--ignore-unknown are import options");
        return KN_EXIT_USAGE;
    }
    if (strcmp(verb, "sheets") == 0) {
        int csv = a.format && strcmp(a.format, "csv") == 0;
        if (a.npos != 0 || (a.bom && !csv) || a.dry_run ||
            (a.format && !csv && strcmp(a.format, "html") != 0)) {
            usage_err("recipients sheets --tenant T [--group G] [--reissue] "
                      "[--format html|csv [--bom]]");
            return KN_EXIT_USAGE;
        }
        return kn__rcp_sheets(a.tenant, a.group, a.reissue, csv, a.bom);
    }
    if (strcmp(verb, "unregistered") == 0) {
        if (a.npos != 0 || a.bom || a.format || a.reissue || a.dry_run) {
            usage_err("recipients unregistered --tenant T [--group G]");
            return KN_EXIT_USAGE;
        }
        return kn__rcp_unregistered(a.tenant, a.group);
    }
    if (strcmp(verb, "remind") == 0) {
        if (a.npos != 0 || a.bom || a.format || a.reissue) {
            usage_err("recipients remind --tenant T [--group G] [--dry-run]");
            return KN_EXIT_USAGE;
        }
        return kn__rcp_remind(a.tenant, a.group, a.dry_run);
    }
    if (a.dry_run) {
        usage_err("--dry-run is a remind option");
        return KN_EXIT_USAGE;
    }
    if (a.group || a.reissue) {
        usage_err("--group and --reissue are sheets options");
        return KN_EXIT_USAGE;
    }
    if (strcmp(verb, "export") == 0) {
        if (a.npos != 0 || (a.format && strcmp(a.format, "csv") != 0)) {
            usage_err("recipients export --tenant T [--format csv] [--bom]");
            return KN_EXIT_USAGE;
        }
        return kn__rcp_export(a.tenant, a.bom);
    }
    if (strcmp(verb, "deactivate") == 0 || strcmp(verb, "activate") == 0 ||
        strcmp(verb, "delete") == 0) {
        if (a.npos != 1 || a.format || a.bom) {
            usage_err("recipients deactivate|activate|delete --tenant T ID");
            return KN_EXIT_USAGE;
        }
        return do_one(verb, a.tenant, a.pos[0]);
    }
    usage_err("recipients import|export|sheets|unregistered|remind|"
              "deactivate|activate|delete");
    return KN_EXIT_USAGE;
}

static int run_groups(int argc, char **argv)
{
    struct args a;
    if (argc < 2 || strcmp(argv[1], "list") != 0 ||
        parse_args(argc - 2, argv + 2, &a) < 0 || a.npos != 0 || a.format ||
        a.bom || a.skip_bad || a.replace) {
        usage_err("groups list --tenant T");
        return KN_EXIT_USAGE;
    }
    return do_groups_list(a.tenant);
}

const struct kn_cli_command kn_cli_cmd_recipients = {
    "recipients",
    "  recipients import --tenant T [--skip-bad] [--replace] FILE.csv\n"
    "                         load the directory from a CSV file (UTF-8, "
    "with or\n"
    "                         without BOM, or CP932 from Excel); every bad "
    "row is\n"
    "                         listed and nothing is written unless "
    "--skip-bad;\n"
    "                         --replace deletes recipients not in the file;\n"
    "                         a column kairan does not know is refused "
    "unless\n"
    "                         --ignore-column NAME (repeatable) or "
    "--ignore-unknown\n"
    "                         leaves it out\n"
    "  recipients export --tenant T [--format csv] [--bom]\n"
    "                         the directory as UTF-8 CSV on stdout, "
    "DECRYPTED:\n"
    "                         addresses and tokens in full (the only "
    "command that\n"
    "                         prints them; --bom for Excel)\n"
    "  recipients sheets --tenant T [--group G] [--reissue] "
    "[--format html|csv [--bom]]\n"
    "                         registration sheets (A4 HTML, or CSV: id, "
    "name, url,\n"
    "                         passcode) with a new ID and passcode per "
    "student;\n"
    "                         students whose passcode is still live are "
    "skipped\n"
    "                         unless --reissue (the old one stops working)\n"
    "  recipients unregistered --tenant T [--group G]\n"
    "                         per class, the students no guardian has "
    "registered\n"
    "                         for yet (未登録): class, id, name, the "
    "channels the\n"
    "                         school holds (to send a reminder)\n"
    "  recipients remind --tenant T [--group G] [--dry-run]\n"
    "                         one broadcast asking the unregistered "
    "families that\n"
    "                         have an imported contact to register; "
    "counts those\n"
    "                         without one (they need a printed sheet)\n"
    "  recipients deactivate|activate --tenant T ID\n"
    "                         stop (or resume) deliveries, history kept\n"
    "  recipients delete --tenant T ID\n"
    "                         remove a recipient and its memberships\n",
    1, run_recipients};

const struct kn_cli_command kn_cli_cmd_groups = {
    "groups",
    "  groups list --tenant T  group names and member counts\n", 1,
    run_groups};
