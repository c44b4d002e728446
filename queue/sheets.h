/*
 * sheets.h - registration sheets issued, the families not yet registered
 * (未登録) and the reminder to them (issue 15), on a synchronous Redis
 * connection (kairanctl's, or one of kairand's thread pool: it blocks).
 * Shared by "kairanctl recipients sheets|unregistered|remind" (cli/) and
 * the console's POST /v1/directory/sheets, GET /v1/directory/unregistered
 * and POST /v1/directory/remind (dispatcher/http/sheets.c), so that a
 * sheet, a list and a reminder are the same whichever way they are asked
 * for.  Passcodes exist in clear only in a struct kn_sheets and the page
 * or CSV written from it; the caller wipes them with kn_sheets_free.
 */
#ifndef KN_QUEUE_SHEETS_H
#define KN_QUEUE_SHEETS_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdio.h>

#include "model/regsheet.h"

struct kn_keyring;

/* One sheet issued: the student's record id, its name (unsealed, or the
 * id), its class (or first group, or ""), the sheet ID and the passcode
 * in its printed form. */
struct kn_sheet {
    char *student, *name, *group;
    char id[KN_REG_ID_LEN + 1];
    char pass[KN_REG_PASS_LEN + 3];
};

struct kn_sheets {
    struct kn_sheet *v; /* the issued ones, by student id */
    size_t n;
    size_t skipped; /* students whose sheet is still live */
};

/*
 * Issue a sheet to every active student of tenant (or of group, already
 * normalised by kn_label_norm; NULL for the whole school), with at most
 * max_guardians guardians a passcode; a student whose sheet is still live
 * is skipped unless reissue (which voids the old sheet).  Returns 0 (out
 * filled; free with kn_sheets_free even after an error), KN_ENOENT (no
 * such tenant or group: err says which), KN_ECLOSED or KN_EREDIS.
 */
int kn_sheets_issue(redisContext *c, const char *prefix,
                    const struct kn_keyring *kr, const char *tenant,
                    const char *group, int reissue, long long max_guardians,
                    struct kn_sheets *out, char *err, size_t errlen);

/* Wipe the names and passcodes and free them. */
void kn_sheets_free(struct kn_sheets *s);

/*
 * Write the sheets to f: the printable A4 HTML page (no script; its only
 * style is KN_SHEETS_CSS, inline) or the CSV for mail merge (UTF-8, no
 * BOM: the HTTP download and kairanctl's --bom write one first so that
 * Japanese Excel and Word read it as UTF-8, not CP932; columns id, name,
 * url, passcode, student, group).  public_url: http.public_url;
 * smtp_from: the sender whose domain guardians allow in their carrier's
 * filter.  Everything from outside is HTML-escaped.
 */
void kn_sheets_html(FILE *f, const char *tenant, const struct kn_sheets *s,
                    const char *public_url, const char *smtp_from,
                    long long max_guardians);
void kn_sheets_csv(FILE *f, const struct kn_sheets *s, const char *public_url);
extern const char kn_sheets_css[];

/* What the school already holds for a student: its imported contacts. */
#define KN_UNREG_EMAIL 1u
#define KN_UNREG_LINE  2u
#define KN_UNREG_PUSH  4u

struct kn_unreg_row {
    char *cls, *id, *name; /* name: unsealed, or NULL */
    unsigned has;          /* KN_UNREG_* */
};

struct kn_unreg {
    struct kn_unreg_row *v; /* by class, then id */
    size_t n;
    size_t active; /* active students looked at */
};

/*
 * The active students of tenant (or of group) with no guardian
 * registered through a sheet (reg:<T>:<id> "g" empty), by class then id.
 * Returns 0, KN_ENOENT (no such tenant or group: err says which),
 * KN_ECLOSED or KN_EREDIS; free out with kn_unreg_free either way.
 */
int kn_unreg_list(redisContext *c, const char *prefix,
                  const struct kn_keyring *kr, const char *tenant,
                  const char *group, struct kn_unreg *out, char *err,
                  size_t errlen);
void kn_unreg_free(struct kn_unreg *u);

/*
 * The reminder broadcast to the students of u that have a contact
 * (*sent: how many; *nocontact: the others, who need a printed sheet):
 * its JSON text (heap; category notice, the shipped Japanese text naming
 * the school and the registration URL <public_url>/r), or NULL when
 * nobody has a contact.  sender: the staff member's name, or NULL.
 */
char *kn_remind_json(const struct kn_unreg *u, const char *tenant,
                     const char *public_url, const char *sender, size_t *sent,
                     size_t *nocontact);

#endif
