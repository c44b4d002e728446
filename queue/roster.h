/*
 * roster.h - importing a school's class list (CSV from Excel): read and
 * check every row, then compare with the stored directory and write the
 * rows that changed.  Shared by "kairanctl recipients import" (cli/) and
 * kairand's POST /v1/directory/import (dispatcher/http/roster.c), so that
 * a file means the same thing whichever way it arrives.  The format and
 * the rules: docs/directory.md.
 *
 * Two steps, so that a front end can speak between them:
 *  1. kn_roster_check: no I/O.  Decode (UTF-8 or CP932), read the header,
 *     check and normalise every row, merge a child's guardian rows.  What
 *     is wrong is kept as problems (line and reason, at most
 *     KN_ROSTER_MAX_SHOWN of a kind, the rest counted);
 *  2. kn_roster_apply: on a synchronous Redis connection (kairanctl's, or
 *     one of kairand's thread pool: it blocks).  Hash the good rows, read
 *     which changed, and write them with queue/lua/rcpt_upsert.lua (with
 *     replace, delete every stored id the file does not name); a dry run
 *     only reads, and counts what the write would do.
 * Messages quote cells only through kn_text_safe() and never an address
 * unmasked.  Each reason is kept in English (kairanctl, the API's
 * "reason") and in Japanese (the API's "reason_ja", the console): the
 * Japanese one names the row as a spreadsheet shows it and the column as
 * the file's own header writes it ("保護者メール", not "email").
 */
#ifndef KN_QUEUE_ROSTER_H
#define KN_QUEUE_ROSTER_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "common/csv.h"

struct kn_keyring;

/* The CSV columns (docs/directory.md; keep them stable). */
enum kn_roster_col {
    COL_ID,
    COL_NAME,
    COL_GRADE,
    COL_CLASS,
    COL_GROUPS,
    COL_EMAIL,
    COL_LINE,
    COL_FCM,
    COL_APNS,
    COL_CHANNELS,
    COL_ACTIVE, /* optional: what export writes, so that it round-trips */
    /* A class list's own columns (after active, so that the keyed hash of
     * a row without them stays what it was before they existed). */
    COL_NUMBER,   /* 出席番号, plain */
    COL_KANA,     /* ふりがな, sealed ("name") */
    COL_GUARDIAN, /* 保護者氏名, sealed ("name") */
    COL_PHONE, /* 電話番号, sealed ("phone"): for the list of whom to phone */
    COL__COUNT
};

/* The column names: English and the Japanese Excel users write. */
struct kn_roster_column {
    const char *en, *ja;
};
extern const struct kn_roster_column kn_roster_columns[COL__COUNT];

#define KN_ROSTER_MAX_SHOWN  20 /* problems kept of a kind */
#define KN_ROSTER_MAX_IGNORE 64 /* ignore[] names */
/* Rows of one import through kairand (POST /v1/directory/import): the
 * check holds about 700 bytes per row, and two schools may import at once
 * on kairand's shared thread pool, so a 10 MB body of tiny rows reached
 * 846 MB.  kairanctl has no limit (the operator's own process). */
#define KN_ROSTER_HTTP_MAX_ROWS 250000

struct kn_roster_opts {
    const char *tenant;
    int skip_bad; /* write the good rows even if some are bad */
    int replace;  /* delete the stored ids the file does not name */
    const char *const *ignore; /* header names to leave out */
    size_t nignore;
    int ignore_unknown; /* leave out every unknown column */
    size_t max_rows;    /* data rows at most (0: no limit) */
};

/* Why a check stopped short of "every row is good". */
enum kn_roster_stop {
    KN_ROSTER_OK,
    KN_ROSTER_DECODE,   /* neither UTF-8 nor CP932: decode_err */
    KN_ROSTER_EMPTY,    /* no header */
    KN_ROSTER_HEADER,   /* header problems (unknown, repeated, no id) */
    KN_ROSTER_BAD_ROWS, /* bad rows and no skip_bad */
    KN_ROSTER_NO_GOOD,  /* no good row (or no row) */
    KN_ROSTER_TOO_MANY  /* more than max_rows data rows: nothing checked */
};

struct kn_roster_problem {
    long line;       /* the line in the file, as an editor counts (kairanctl) */
    long row;        /* the row as a spreadsheet shows it: a record whose
                      * quoted cells hold line breaks is one row */
    char *text;      /* the reason, safe to show (heap) */
    char *text_ja;   /* the same in Japanese for an office clerk (heap):
                      * "5行目：「保護者メール」（E列）の…": the row, the
                      * column as the file's header names it, what to fix */
    char *unknown;   /* an unknown column: its name as written (heap), else
                      * NULL */
    size_t column;   /* 1-based, for unknown */
    char letter[16]; /* the same as a spreadsheet names it ("AA"), or "" */
};

/* A checked file.  The fields without '_' are the caller's to read. */
struct kn_roster {
    enum kn_roster_stop stop;
    enum kn_csv_enc enc;
    char decode_err[400];    /* KN_ROSTER_DECODE: "line N: why" */
    char decode_err_ja[600]; /* the same in Japanese: "N 行目：…" */
    long header_line;
    struct kn_roster_problem header[KN_ROSTER_MAX_SHOWN + 1];
    size_t nheader, header_more; /* kept, and those past them */
    struct kn_roster_problem bad[KN_ROSTER_MAX_SHOWN];
    size_t nbad_shown, nbad; /* bad rows kept, and all of them */
    size_t nrows;            /* data rows (cleared rows not counted) */
    size_t ngood;            /* students to write (guardian rows merged) */
    size_t nocontact;        /* of them, without e-mail, LINE or push: they need
                              * a registration sheet */
    /* kn_roster_apply's counts */
    long long added, updated, unchanged, deleted;
    int held_back;       /* replace deleted nothing: a row without id */
    long held_back_line; /* that row */
    struct kn_roster_opts _o;
    char *_colref[COL__COUNT]; /* "「保護者メール」（E列）": each column as
                                * the header names it, for text_ja */
    char *_tenant;
    void *_rows;
    char *_text;
};

/*
 * Check a file's bytes (raw, len; borrowed) with options o (copied).
 * Returns 0 if it may be written as it is (stop KN_ROSTER_OK), else -1
 * with stop saying why; either way *out is a new roster (free it with
 * kn_roster_free) holding the problems found.
 */
int kn_roster_check(const char *raw, size_t len, const struct kn_roster_opts *o,
                    struct kn_roster **out);

/*
 * Compare the good rows with the directory of r's tenant on c and, unless
 * dry_run, write them (added, updated, unchanged, deleted are set).  A
 * real write needs stop KN_ROSTER_OK, or KN_ROSTER_BAD_ROWS checked with
 * skip_bad (KN_EINVAL otherwise); a dry run counts any checked file's
 * good rows.  Returns 0, KN_ECLOSED (the connection failed) or KN_EREDIS
 * (Redis answered an error), with a reason in err.
 */
int kn_roster_apply(redisContext *c, const char *prefix,
                    const struct kn_keyring *kr, struct kn_roster *r,
                    int dry_run, char *err, size_t errlen);

void kn_roster_free(struct kn_roster *r);

#endif
