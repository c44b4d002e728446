/*
 * export.c - kairanctl recipients export: the tenant's directory as CSV,
 * decrypted (the one command that prints addresses; recipients_int.h).
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

/* ---- export ---- */

static void wipe_free(char *s)
{
    if (s != NULL) {
        memset(s, 0, strlen(s));
        free(s);
    }
}

static int unseal_str(const struct kn_keyring *kr, const char *purpose,
                      const char *sealed, char **out)
{
    *out = NULL;
    if (sealed == NULL || sealed[0] == '\0') {
        *out = kn_xstrdup("");
        return 0;
    }
    return kn_unseal(kr, purpose, sealed, out, NULL);
}

/* Append plain to a ';' list held in *acc. */
static void acc_add(char **acc, const char *plain)
{
    char *t =
        (*acc)[0] ? kn_xasprintf("%s;%s", *acc, plain) : kn_xstrdup(plain);
    wipe_free(*acc);
    *acc = t;
}

/* One guardian's contacts (the record itself, or an element of its "g"),
 * unsealed into heap strings.  Returns 0 or KN_ECRYPTO. */
struct gcells {
    char *email, *line, *fcm, *apns, *chs, *guardian, *phone;
};

static void gcells_free(struct gcells *g)
{
    wipe_free(g->email);
    wipe_free(g->line);
    wipe_free(g->fcm);
    wipe_free(g->apns);
    free(g->chs);
    wipe_free(g->guardian);
    wipe_free(g->phone);
}

static int gcells_of(const struct kn_keyring *kr, json_t *o,
                     const char *sealed_guardian, const char *sealed_phone,
                     struct gcells *g)
{
    struct kn_dir_rec d;
    int rc = 0;
    memset(g, 0, sizeof(*g));
    g->fcm = kn_xstrdup("");
    g->apns = kn_xstrdup("");
    g->chs = kn_xstrdup("");
    kn_dir_parse(o, &d); /* not an object: all empty */
    if (unseal_str(kr, "email", d.email, &g->email) < 0 ||
        unseal_str(kr, "line", d.line, &g->line) < 0 ||
        unseal_str(kr, "name", sealed_guardian, &g->guardian) < 0 ||
        unseal_str(kr, "phone", sealed_phone, &g->phone) < 0)
        rc = KN_ECRYPTO;
    for (size_t i = 0; i < d.npush && rc == 0; i++) {
        const char *k = d.push[i].platform;
        char *t = NULL;
        if (unseal_str(kr, "push", d.push[i].token, &t) < 0) {
            rc = KN_ECRYPTO;
            break;
        }
        acc_add(k && strcmp(k, "apns") == 0 ? &g->apns : &g->fcm, t);
        wipe_free(t);
    }
    for (size_t i = 0; i < d.nchannels; i++)
        acc_add(&g->chs, d.channels[i]);
    kn_dir_rec_free(&d);
    return rc;
}

/*
 * Print one stored recipient as CSV: one line per guardian (the shape the
 * import reads: further guardians repeat the child's id and columns).
 * Returns 0, or KN_ECRYPTO when something does not unseal (wrong key
 * file); then nothing of the recipient is printed.
 */
static int export_one(FILE *f, const struct kn_keyring *kr, const char *id,
                      const redisReply *h)
{
    const char *cj = h->element[0]->str, *nm = h->element[1]->str,
               *gr = h->element[2]->str, *cl = h->element[3]->str,
               *gs = h->element[4]->str, *ac = h->element[5]->str,
               *no = h->element[6]->str;
    char *name = NULL, *kana = NULL;
    json_t *c = cj ? json_loads(cj, 0, NULL) : NULL,
           *more = json_object_get(c, KN_DIR_GUARDIANS);
    size_t n = 1 + json_array_size(more);
    struct gcells *g = kn_xcalloc(n, sizeof(*g));
    int rc = 0;

    if (c == NULL || unseal_str(kr, "name", nm, &name) < 0 ||
        unseal_str(kr, "name", h->element[7]->str, &kana) < 0)
        rc = KN_ECRYPTO;
    for (size_t i = 0; i < n; i++) {
        json_t *o = i == 0 ? c : json_array_get(more, i - 1);
        if (gcells_of(
                kr, o,
                i == 0 ? h->element[8]->str
                       : json_string_value(json_object_get(o, KN_DIR_NAME)),
                i == 0 ? h->element[9]->str
                       : json_string_value(json_object_get(o, KN_DIR_PHONE)),
                &g[i]) < 0)
            rc = KN_ECRYPTO;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        kn_csv_put_cell(f, id, 0);
        kn_csv_put_cell(f, name, 0);
        kn_csv_put_cell(f, gr ? gr : "", 0);
        kn_csv_put_cell(f, cl ? cl : "", 0);
        kn_csv_put_cell(f, gs ? gs : "", 0);
        kn_csv_put_cell(f, g[i].email, 0);
        kn_csv_put_cell(f, g[i].line, 0);
        kn_csv_put_cell(f, g[i].fcm, 0);
        kn_csv_put_cell(f, g[i].apns, 0);
        kn_csv_put_cell(f, g[i].chs, 0);
        kn_csv_put_cell(f, ac && strcmp(ac, "0") == 0 ? "0" : "1", 0);
        kn_csv_put_cell(f, no ? no : "", 0);
        kn_csv_put_cell(f, kana, 0);
        kn_csv_put_cell(f, g[i].guardian, 0);
        kn_csv_put_cell(f, g[i].phone, 1);
    }
    for (size_t i = 0; i < n; i++)
        gcells_free(&g[i]);
    free(g);
    wipe_free(name);
    wipe_free(kana);
    json_decref(c);
    return rc;
}

/*
 * The operation log's line of an export (who printed which school's
 * directory in clear, how many recipients), written before the first row:
 * an export that cannot be logged is not made (0 or -1 after saying so).
 */
static int export_audit(const char *tenant, size_t n)
{
    char *actor = kn_audit_cli_actor();
    json_t *f = json_pack("{s:s, s:I, s:s}", "tenant", tenant, "recipients",
                          (json_int_t)n, "via", "kairanctl");
    int rc = kn_audit_op(kn_cli_cfg.audit_dir, actor, "recipients.export", f);
    free(actor);
    if (rc < 0)
        fprintf(stderr,
                "kairanctl: cannot write the operation log %s/"
                "operations.jsonl (retention.audit_dir): %s; nothing was "
                "exported (an export that cannot be logged is not made)\n",
                kn_cli_cfg.audit_dir, strerror(errno));
    return rc;
}

int kn__rcp_export(const char *tenant, int bom)
{
    struct kn_keyring *kr = NULL;
    char err[400], *k;
    redisReply *ids;
    char **v;
    size_t n;
    int rc = KN_EXIT_OK;

    if (kn_keyring_load(kn_cli_cfg.key_file, &kr, err, sizeof(err)) < 0) {
        fprintf(stderr, "kairanctl: security.key_file: %s\n", err);
        return KN_EXIT_FAIL;
    }
    k = kn_cli_key("rcpts:%s", tenant);
    ids = kn_cli_cmd("SMEMBERS %s", k);
    free(k);
    n = ids->type == REDIS_REPLY_ARRAY ? ids->elements : 0;
    if (n == 0 && !kn__rcp_tenant_known(tenant)) {
        fprintf(stderr,
                "kairanctl: no tenant %s (nothing was imported "
                "for it)\n",
                tenant);
        freeReplyObject(ids);
        kn_keyring_free(kr);
        return KN_EXIT_UNKNOWN;
    }
    if (export_audit(tenant, n) < 0) {
        freeReplyObject(ids);
        kn_keyring_free(kr);
        return KN_EXIT_FAIL;
    }
    v = kn_xcalloc(n + 1, sizeof(*v));
    for (size_t i = 0; i < n; i++)
        v[i] = ids->element[i]->str;
    qsort(v, n, sizeof(*v), kn__rcp_cmp_str);
    if (bom)
        fputs("\xef\xbb\xbf", stdout);
    for (int c = 0; c < COL__COUNT; c++)
        kn_csv_put_cell(stdout, kn_roster_columns[c].en, c == COL__COUNT - 1);
    for (size_t off = 0; off < n && rc == KN_EXIT_OK; off += 500) {
        size_t m = n - off < 500 ? n - off : 500;
        struct kn_argv *cmds = kn_xcalloc(m, sizeof(*cmds));
        redisReply **rep;
        for (size_t i = 0; i < m; i++) {
            kn_argv_init(&cmds[i]);
            kn_argv_add(&cmds[i], "HMGET");
            kn_argv_take(&cmds[i], kn_key_rcpt(kn_cli_cfg.redis_prefix, tenant,
                                               v[off + i]));
            kn_argv_add(&cmds[i], KN_DIR_HASH_FIELD);
            kn_argv_add(&cmds[i], "name");
            kn_argv_add(&cmds[i], "grade");
            kn_argv_add(&cmds[i], "class");
            kn_argv_add(&cmds[i], "groups");
            kn_argv_add(&cmds[i], "active");
            kn_argv_add(&cmds[i], "number");
            kn_argv_add(&cmds[i], "kana");
            kn_argv_add(&cmds[i], "guardian");
            kn_argv_add(&cmds[i], "phone");
        }
        rep = kn__rcp_pipeline(cmds, m);
        for (size_t i = 0; i < m; i++) {
            kn_argv_free(&cmds[i]);
            if (rc != KN_EXIT_OK || rep[i]->type != REDIS_REPLY_ARRAY ||
                rep[i]->elements != 10 ||
                rep[i]->element[0]->type != REDIS_REPLY_STRING)
                continue; /* deleted meanwhile */
            if (export_one(stdout, kr, v[off + i], rep[i]) < 0) {
                fprintf(stderr,
                        "kairanctl: recipient %s does not decrypt "
                        "with %s: is it the key file it was "
                        "imported with?\n",
                        v[off + i], kn_cli_cfg.key_file);
                rc = KN_EXIT_FAIL;
            }
        }
        kn__rcp_replies_free(rep, m);
        free(cmds);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "kairanctl: writing the export failed: %s\n",
                strerror(errno));
        rc = KN_EXIT_FAIL;
    }
    free(v);
    freeReplyObject(ids);
    kn_keyring_free(kr);
    return rc;
}
