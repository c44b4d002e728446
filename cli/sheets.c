/*
 * sheets.c - kairanctl recipients sheets|unregistered|remind: the printed
 * registration sheets with which guardians sign themselves up, the
 * families not yet registered (未登録), and the reminder to them (issue
 * 15).  The work is queue/sheets.c's, shared with the console's 名簿
 * (dispatcher/http/sheets.c); this file parses, prints and logs.
 *
 *   recipients sheets --tenant T [--group G] [--reissue] [--format html|csv]
 *   recipients unregistered --tenant T [--group G]
 *   recipients remind --tenant T [--group G] [--dry-run]
 *
 * Sheets: one per active student of the tenant (or of group G), an A4
 * HTML page each, or CSV for mail merge with the columns id, name, url,
 * passcode (then student and group).  A passcode cannot be shown again,
 * so a student whose sheet is still live is skipped unless --reissue,
 * which voids the old sheet.  The counts go to stderr and the operation
 * log, never a passcode.
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/recipients_int.h"
#include "common/kn.h"
#include "common/seal.h"
#include "common/text.h"
#include "config/config.h"
#include "model/label.h"
#include "queue/sheets.h"

/* The group (normalised) and the key ring every command needs; an exit
 * code other than KN_EXIT_OK after saying what is wrong. */
static int prepare(const char *group_raw, char **group, struct kn_keyring **kr)
{
    char err[400];
    *group = NULL;
    *kr = NULL;
    if (group_raw && kn_label_norm(group_raw, group, err, sizeof(err)) < 0) {
        fprintf(stderr, "kairanctl: --group: %s\n", err);
        return KN_EXIT_USAGE;
    }
    if (kn_keyring_load(kn_cli_cfg.key_file, kr, err, sizeof(err)) < 0) {
        fprintf(stderr, "kairanctl: security.key_file: %s\n", err);
        free(*group);
        *group = NULL;
        return KN_EXIT_FAIL;
    }
    return KN_EXIT_OK;
}

/* queue/sheets.c's answer as an exit code (said on stderr). */
static int failed(int rc, const char *err, const char *tenant)
{
    char *e = kn_text_safe(err);
    if (rc == KN_ENOENT)
        fprintf(stderr, "kairanctl: %s (kairanctl groups list --tenant %s)\n",
                e, tenant);
    else
        fprintf(stderr, "kairanctl: %s\n", e);
    free(e);
    return rc == KN_ENOENT ? KN_EXIT_UNKNOWN : KN_EXIT_FAIL;
}

/* prepare, then the families not yet registered into u (free it with
 * kn_unreg_free whatever this returns); an exit code. */
static int load_unreg(const char *tenant, const char *group_raw, char **group,
                      struct kn_keyring **kr, struct kn_unreg *u)
{
    char err[400];
    int rc;

    memset(u, 0, sizeof(*u));
    rc = prepare(group_raw, group, kr);
    if (rc != KN_EXIT_OK)
        return rc;
    rc = kn_unreg_list(kn_cli_redis(), kn_cli_cfg.redis_prefix, *kr, tenant,
                       *group, u, err, sizeof(err));
    return rc < 0 ? failed(rc, err, tenant) : KN_EXIT_OK;
}

int kn__rcp_sheets(const char *tenant, const char *group_raw, int reissue,
                   int csv, int bom)
{
    struct kn_keyring *kr;
    struct kn_sheets s;
    char err[400], *group;
    int rc = prepare(group_raw, &group, &kr);

    if (rc != KN_EXIT_OK)
        return rc;
    if (kn__rcp_oplog_open() < 0) {
        rc = KN_EXIT_FAIL;
        goto out;
    }
    rc = kn_sheets_issue(kn_cli_redis(), kn_cli_cfg.redis_prefix, kr, tenant,
                         group, reissue, kn_cli_cfg.registration_max_guardians,
                         &s, err, sizeof(err));
    if (rc < 0 && s.n == 0) {
        kn_sheets_free(&s);
        rc = failed(rc, err, tenant);
        goto out;
    }
    if (rc < 0)
        failed(rc, err, tenant); /* print those issued: they are live */
    rc = rc < 0 ? KN_EXIT_FAIL : KN_EXIT_OK;
    if (csv && bom)
        fputs("\xef\xbb\xbf", stdout); /* for Excel and Word, as export */
    if (csv)
        kn_sheets_csv(stdout, &s, kn_cli_cfg.http_public_url);
    else
        kn_sheets_html(stdout, tenant, &s, kn_cli_cfg.http_public_url,
                       kn_cli_cfg.smtp_from,
                       (long long)kn_cli_cfg.registration_max_guardians);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr,
                "kairanctl: writing the sheets failed: %s (the "
                "passcodes issued are lost: run again with "
                "--reissue)\n",
                strerror(errno));
        rc = KN_EXIT_FAIL;
    }
    fprintf(stderr,
            "issued %zu, skipped %zu (passcode still live; "
            "--reissue voids them)\n",
            s.n, s.skipped);
    kn__rcp_oplog_write("recipients.sheets", tenant,
                        json_pack("{s:s?,s:b,s:I,s:I}", "group", group,
                                  "reissue", reissue, "issued", (json_int_t)s.n,
                                  "skipped", (json_int_t)s.skipped));
    kn_sheets_free(&s);
out:
    kn_keyring_free(kr);
    free(group);
    return rc;
}

/*
 * The families not yet registered (未登録), per class: tab-separated
 * lines class, id, name, and the channels the school already holds for
 * the student ("email", "line", "push", or "-": nobody to remind but by
 * the printed sheet).  The count per class goes to stderr.
 */
int kn__rcp_unregistered(const char *tenant, const char *group_raw)
{
    struct kn_keyring *kr = NULL;
    struct kn_unreg u;
    char *group = NULL;
    int rc = load_unreg(tenant, group_raw, &group, &kr, &u);

    if (rc != KN_EXIT_OK)
        goto out;
    for (size_t i = 0, start = 0; i < u.n; i++) {
        const struct kn_unreg_row *r = &u.v[i];
        char has[32] = "", *cls = kn_text_safe(r->cls),
             *id = kn_text_safe(r->id),
             *nm = kn_text_safe(r->name ? r->name : "");
        if (r->has & KN_UNREG_EMAIL)
            strcat(has, "email");
        if (r->has & KN_UNREG_LINE)
            strcat(has, has[0] ? ",line" : "line");
        if (r->has & KN_UNREG_PUSH)
            strcat(has, has[0] ? ",push" : "push");
        printf("%s\t%s\t%s\t%s\n", cls, id, nm, has[0] ? has : "-");
        if (i + 1 == u.n || strcmp(u.v[i + 1].cls, r->cls) != 0) {
            fprintf(stderr, "%s: %zu unregistered\n", cls[0] ? cls : "-",
                    i + 1 - start);
            start = i + 1;
        }
        free(cls);
        free(id);
        kn_free_secret(nm);
    }
    fprintf(stderr, "%zu unregistered of %zu\n", u.n, u.active);
    rc = KN_EXIT_OK;
out:
    kn_unreg_free(&u);
    kn_keyring_free(kr);
    free(group);
    return rc;
}

/*
 * recipients remind: one broadcast (category notice, sender "kairanctl")
 * to the unregistered students that have an imported contact, asking
 * their guardians to register; its id on stdout, the counts on stderr.
 * --dry-run counts and sends nothing.
 */
int kn__rcp_remind(const char *tenant, const char *group_raw, int dry_run)
{
    struct kn_keyring *kr = NULL;
    struct kn_unreg u;
    char *group = NULL, *json = NULL;
    size_t sent = 0, nocontact = 0;
    int rc = load_unreg(tenant, group_raw, &group, &kr, &u);

    if (rc != KN_EXIT_OK)
        goto out;
    json = kn_remind_json(&u, tenant, kn_cli_cfg.http_public_url, "kairanctl",
                          &sent, &nocontact);
    rc = KN_EXIT_OK;
    if (json != NULL && !dry_run) {
        if (kn__rcp_oplog_open() < 0) {
            rc = KN_EXIT_FAIL;
            goto out;
        }
        rc = kn_cli_submit_json(json, strlen(json));
        if (rc == KN_EXIT_OK)
            kn__rcp_oplog_write("recipients.remind", tenant,
                                json_pack("{s:s?,s:I,s:I}", "group", group,
                                          "sent", (json_int_t)sent,
                                          "no_contact", (json_int_t)nocontact));
    }
    fprintf(stderr,
            "%s%zu unregistered: %zu %s the reminder, %zu without a contact "
            "(give them a printed sheet: kairanctl recipients sheets)\n",
            dry_run ? "dry run: " : "", u.n, sent,
            dry_run ? "would get" : "get", nocontact);
out:
    free(json);
    kn_unreg_free(&u);
    kn_keyring_free(kr);
    free(group);
    return rc;
}
