/*
 * import.c - kairanctl recipients import: read a school's CSV and hand it
 * to queue/roster.c, which checks every row and writes the changed ones
 * (the format: docs/directory.md; what the commands share:
 * recipients_int.h).  This file only reads the file and prints: the
 * problems as FILE:LINE: reason, then the counts.
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/recipients_int.h"
#include "common/argv.h"
#include "common/csv.h"
#include "common/file.h"
#include "common/kn.h"
#include "common/seal.h"
#include "common/text.h"
#include "config/config.h"
#include "queue/roster.h"

#define MAX_FILE (64L * 1024 * 1024) /* a roster is a few hundred kB */

void kn__rcp_add_prefix_tenant(struct kn_argv *a, const char *tenant)
{
    kn_argv_add(a, kn_cli_cfg.redis_prefix);
    kn_argv_add(a, tenant);
}

/* The problems the check kept, as FILE:LINE: reason on stderr. */
static void print_problems(const struct import_opts *o,
                           const struct kn_roster *ro)
{
    const char *shown = o->shown;
    switch (ro->stop) {
    case KN_ROSTER_DECODE:
        /* decode_err is "line N: why": written as FILE:N: why */
        fprintf(stderr, "%s:%s\n", shown,
                strncmp(ro->decode_err, "line ", 5) == 0 ? ro->decode_err + 5
                                                         : ro->decode_err);
        return;
    case KN_ROSTER_EMPTY:
        fprintf(stderr,
                "%s: empty file: the first line must name the "
                "columns (id, name, email, ...)\n",
                shown);
        return;
    default:
        break;
    }
    for (size_t i = 0; i < ro->nheader; i++)
        fprintf(stderr, "%s:%ld: %s\n", shown, ro->header[i].line,
                ro->header[i].text);
    if (ro->header_more > 0)
        fprintf(stderr, "%s:%ld: ... and %zu more problems in the header\n",
                shown, ro->header_line, ro->header_more);
    if (ro->stop == KN_ROSTER_HEADER)
        return;
    for (size_t i = 0; i < ro->nbad_shown; i++)
        fprintf(stderr, "%s:%ld: %s\n", shown, ro->bad[i].line,
                ro->bad[i].text);
    if (ro->nbad > KN_ROSTER_MAX_SHOWN)
        fprintf(stderr,
                "%s: ... and %zu more bad rows (the first %d are "
                "listed above)\n",
                shown, ro->nbad - KN_ROSTER_MAX_SHOWN, KN_ROSTER_MAX_SHOWN);
    if (ro->stop == KN_ROSTER_BAD_ROWS)
        fprintf(stderr,
                "%s: nothing written: %zu bad row(s) of %zu; fix them, or "
                "give --skip-bad to import only the good ones\n",
                shown, ro->nbad, ro->nrows);
    else if (ro->stop == KN_ROSTER_NO_GOOD)
        fprintf(stderr, "%s: %s: nothing written\n", shown,
                ro->nrows == 0 ? "no rows under the header" : "no good row");
}

/*
 * recipients import.  Exit codes:
 *  0  every row was good and is stored; or, with --skip-bad, the good rows
 *     are stored (the bad ones are listed and counted as skipped);
 *  1  bad rows without --skip-bad (nothing written), no good row at all,
 *     a file that is neither UTF-8 nor CP932, a bad header, a key file or
 *     operation log that cannot be used;
 *  2  usage, or the file cannot be read;
 *  3  the Redis connection was lost.
 */
int kn__rcp_import(const struct import_opts *o)
{
    struct kn_roster_opts ro_o = {o->tenant, o->skip_bad, o->replace,
                                  o->ignore, o->nignore,  o->ignore_unknown,
                                  0 /* no row limit here */};
    struct kn_roster *ro = NULL;
    struct kn_keyring *kr = NULL;
    char *raw, *fname = NULL, err[400];
    size_t rawlen = 0;
    int rd, rc = KN_EXIT_FAIL, arc;
    json_t *counts;

    rd = kn_file_read(o->file, (size_t)MAX_FILE, &raw, &rawlen);
    if (rd == KN_ETOOBIG) {
        fprintf(stderr, "%s: larger than %ld MB: is this the roster?\n",
                o->shown, MAX_FILE / (1024 * 1024));
        return KN_EXIT_FAIL;
    }
    if (rd < 0) {
        fprintf(stderr, "kairanctl: cannot read %s: %s\n", o->shown,
                strerror(errno));
        return KN_EXIT_USAGE;
    }
    /* Check the whole file before anything is written. */
    kn_roster_check(raw, rawlen, &ro_o, &ro);
    free(raw);
    print_problems(o, ro);
    if (ro->stop != KN_ROSTER_OK)
        goto out;

    if (kn__rcp_oplog_open() < 0)
        goto out;
    /*
     * The file's name for the log: JSON needs UTF-8 and a path may not be
     * UTF-8; its other bytes are written as \\xNN, never dropped.
     */
    fname = kn_text_utf8(o->file, strlen(o->file));
    if (kn_keyring_load(kn_cli_cfg.key_file, &kr, err, sizeof(err)) < 0) {
        fprintf(stderr, "kairanctl: security.key_file: %s\n", err);
        goto out;
    }
    arc = kn_roster_apply(kn_cli_redis(), kn_cli_cfg.redis_prefix, kr, ro, 0,
                          err, sizeof(err));
    if (arc < 0) {
        fprintf(stderr, "kairanctl: %s\n", err);
        rc = arc == KN_ECLOSED ? KN_EXIT_UNKNOWN : KN_EXIT_FAIL;
        goto out;
    }
    if (ro->held_back)
        fprintf(stderr,
                "kairanctl: --replace deletes nothing this time: "
                "%s:%ld has no usable id, so it is not known who that "
                "row is\n",
                o->shown, ro->held_back_line);

    printf("%s: %s, %zu row(s)\n", o->shown, kn_csv_enc_name(ro->enc),
           ro->nrows);
    printf("added %lld, updated %lld, unchanged %lld, deleted %lld, "
           "skipped %zu\n",
           ro->added, ro->updated, ro->unchanged, ro->deleted, ro->nbad);
    if (ro->nbad > 0)
        fprintf(stderr, "%s: %zu bad row(s) skipped (listed above)\n", o->shown,
                ro->nbad);
    if (ro->nocontact > 0)
        fprintf(stderr,
                "連絡先なし %zu 名: 登録用紙を配ってください (%zu student(s) "
                "without e-mail, LINE or app: print their registration "
                "sheets with kairanctl recipients sheets --tenant %s)\n",
                ro->nocontact, ro->nocontact, o->tenant);
    counts = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:s, s:b}", "added", (json_int_t)ro->added,
        "updated", (json_int_t)ro->updated, "unchanged",
        (json_int_t)ro->unchanged, "deleted", (json_int_t)ro->deleted,
        "skipped", (json_int_t)ro->nbad, "file", fname, "replace", o->replace);
    kn__rcp_oplog_write("recipients.import", o->tenant, counts);
    rc = ro->held_back ? KN_EXIT_FAIL : KN_EXIT_OK;

out:
    kn_roster_free(ro);
    free(fname);
    kn_keyring_free(kr);
    return rc;
}
