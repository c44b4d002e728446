/*
 * recipients.c - kairanctl's directory commands: a school's recipients and
 * groups, loaded from the CSV file its staff export from Excel.
 *
 *   recipients import --tenant T [--skip-bad] [--replace] FILE.csv
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
 *   rcpt:<T>:<id>   hash  c (compact JSON: id, e/ei, l/li, p[{k,t,ti}], ch),
 *                         active "1"|"0", name (sealed, purpose "name"),
 *                         grade, class, groups ("a;b"), hash, updated_ms
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
#include "cli/csv.h"
#include "common/argv.h"
#include "common/kn.h"
#include "common/log.h"
#include "common/seal.h"
#include "common/text.h"
#include "common/utf8.h"
#include "config/config.h"
#include "dispatcher/broadcast.h"
#include "model/address.h"
#include "queue/keys.h"
#include "queue/redis_uv.h"
#include "queue/lua.h"

#define MAX_FILE (64L * 1024 * 1024) /* a roster is a few hundred kB */
#define BATCH 100                    /* rows per Lua call */
#define NARGS 9                      /* script arguments per row */

/*
 * At most MAX_SHOWN problems are printed of a kind (header columns, bad
 * rows), then one line "... and N more": a file of two million unknown
 * columns must not print two million lines.  A row keeps at most
 * MAX_WHY reasons.
 */
#define MAX_SHOWN 20
#define MAX_WHY 10

/* ---- the CSV columns (README / docs/directory.md; keep them stable) ---- */

enum col {
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
    COL__COUNT
};

static const struct column {
    const char *en, *ja;
} columns[COL__COUNT] = {
    {"id", "ID"},
    {"name", "氏名"},
    {"grade", "学年"},
    {"class", "組"},
    {"groups", "グループ"},
    {"email", "メールアドレス"},
    {"line", "LINE"},
    {"fcm", "FCMトークン"},
    {"apns", "APNsトークン"},
    {"channels", "配信順"},
    {"active", "有効"},
};

/* One data row, normalised: v[c] is "" for an empty cell. */
struct rrow {
    long line;
    char *v[COL__COUNT];
    int active; /* -1: not given (new records become active) */
    char hash[33];
    char *why; /* NULL: good; else the reasons, joined by "; " */
    size_t nwhy, more_why; /* reasons kept, and those past MAX_WHY */
};

static void rrow_free(struct rrow *r)
{
    for (int c = 0; c < COL__COUNT; c++)
        free(r->v[c]);
    free(r->why);
}

static void why_add(struct rrow *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void why_add(struct rrow *r, const char *fmt, ...)
{
    va_list ap;
    char *s, *t;
    if (r->nwhy >= MAX_WHY) {
        r->more_why++;
        return;
    }
    r->nwhy++;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        KN_PANIC("out of memory");
    va_end(ap);
    if (r->why == NULL) {
        r->why = s;
        return;
    }
    t = kn_xasprintf("%s; %s", r->why, s);
    free(r->why);
    free(s);
    r->why = t;
}

/* ---- small helpers ---- */

static void usage_err(const char *msg)
{
    fprintf(stderr, "kairanctl: %s (see kairanctl -h)\n", msg);
}

/*
 * A value from the file as a message may quote it: at most max bytes (cut
 * at a character boundary) and through kn_text_safe(), so that escape
 * sequences and bidi controls in a cell are shown, not obeyed.  Heap.
 */
static char *quoted(const char *s, size_t max)
{
    size_t n = strlen(s);
    char *cut, *out;
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--;
    }
    cut = kn_xstrndup(s, n);
    out = kn_text_safe(cut);
    free(cut);
    return out;
}

/* Trim ASCII spaces, tabs and U+3000 (the ideographic space) at both ends. */
static char *trim(const char *s, size_t n)
{
    const char *b = s, *e = s + n;
    for (;;) {
        if (b < e && (*b == ' ' || *b == '\t'))
            b++;
        else if (e - b >= 3 && memcmp(b, "\xe3\x80\x80", 3) == 0)
            b += 3;
        else
            break;
    }
    for (;;) {
        if (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        else if (e - b >= 3 && memcmp(e - 3, "\xe3\x80\x80", 3) == 0)
            e -= 3;
        else
            break;
    }
    return kn_xstrndup(b, (size_t)(e - b));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Split s on sep into trimmed, non-empty heap strings. */
static size_t split(const char *s, char sep, char ***out)
{
    size_t n = 0, cap = 4;
    char **v = kn_xcalloc(cap, sizeof(*v));
    const char *p = s;
    for (;;) {
        const char *q = strchr(p, sep);
        size_t len = q ? (size_t)(q - p) : strlen(p);
        char *t = trim(p, len);
        if (t[0] != '\0') {
            if (n + 1 >= cap) {
                cap *= 2;
                v = kn_xrealloc(v, cap * sizeof(*v));
            }
            v[n++] = t;
        } else {
            free(t);
        }
        if (q == NULL)
            break;
        p = q + 1;
    }
    v[n] = NULL;
    *out = v;
    return n;
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* v[0..n) joined by ';' (heap). */
static char *join(char **v, size_t n)
{
    size_t len = 1;
    char *s;
    for (size_t i = 0; i < n; i++)
        len += strlen(v[i]) + 1;
    s = kn_xmalloc(len);
    s[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            strcat(s, ";");
        strcat(s, v[i]);
    }
    return s;
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
static redisReply **pipeline(struct kn_argv *cmds, size_t n)
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

static void replies_free(redisReply **r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        freeReplyObject(r[i]);
    free(r);
}

/* queue/lua/rcpt_upsert.lua */
static struct kn_redis_script upsert_script = {
    "rcpt_upsert", kn_lua_rcpt_upsert, ""};

/* queue/lua/rcpt_delete.lua */
static struct kn_redis_script delete_script = {
    "rcpt_delete", kn_lua_rcpt_delete, ""};

/* queue/lua/rcpt_active.lua */
static struct kn_redis_script active_script = {
    "rcpt_active", kn_lua_rcpt_active, ""};

/* 1 if the tenant has ever had a directory (import), else 0. */
static int tenant_known(const char *tenant)
{
    char *k = kn_cli_key("tenants");
    redisReply *r = kn_cli_cmd("SISMEMBER %s %s", k, tenant);
    int known = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    free(k);
    return known;
}

/* ---- the operation log ---- */

/* mkdir -p with mode 0750 for what it creates. */
static int mkdirs(const char *dir)
{
    char *p = kn_xstrdup(dir);
    int rc = 0;
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0750) < 0 && errno != EEXIST)
                rc = -1;
            *s = c;
            if (c == '\0')
                break;
        }
    }
    free(p);
    return rc;
}

/*
 * Open the operation log for appending before anything is changed: a
 * change that cannot be logged is not made.  Returns an fd, or -1 after
 * printing what to fix.
 */
static int oplog_open(void)
{
    const char *dir = kn_cli_cfg.audit_dir;
    char *path;
    int fd;
    if (dir == NULL || dir[0] == '\0') {
        fprintf(stderr, "kairanctl: retention.audit_dir is empty: the "
                        "operation log needs a directory\n");
        return -1;
    }
    if (mkdirs(dir) < 0) {
        fprintf(stderr, "kairanctl: cannot create %s (retention.audit_dir): "
                        "%s\n",
                dir, strerror(errno));
        return -1;
    }
    path = kn_xasprintf("%s/operations.jsonl", dir);
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        fprintf(stderr, "kairanctl: cannot open the operation log %s: %s\n",
                path, strerror(errno));
    free(path);
    return fd;
}

/*
 * Append one line {time, actor, op, tenant, ...fields} and close fd.
 * fields (may be NULL) is consumed.  The actor is "kairanctl", with the
 * login name after a colon when $SUDO_USER or $USER is set.
 */
static void oplog_write(int fd, const char *op, const char *tenant,
                        json_t *fields)
{
    json_t *o = json_object();
    const char *user = getenv("SUDO_USER");
    char t[48], *actor, *line, *s;
    size_t len;
    if (user == NULL || user[0] == '\0')
        user = getenv("USER");
    actor = user && user[0] ? kn_xasprintf("kairanctl:%s", user)
                            : kn_xstrdup("kairanctl");
    json_object_set_new(o, "time",
                        json_string(kn_time_jst(kn_now_ms(), t, sizeof(t))));
    json_object_set_new(o, "actor", json_string(actor));
    json_object_set_new(o, "op", json_string(op));
    json_object_set_new(o, "tenant", json_string(tenant));
    if (fields != NULL) {
        json_object_update(o, fields);
        json_decref(fields);
    }
    s = json_dumps(o, JSON_COMPACT);
    line = kn_xasprintf("%s\n", s);
    len = strlen(line);
    /* One write: concurrent appenders never interleave within a line. */
    if (write(fd, line, len) != (ssize_t)len)
        fprintf(stderr, "kairanctl: warning: the operation log was not "
                        "written completely: %s\n",
                strerror(errno));
    close(fd);
    free(s);
    free(line);
    free(actor);
    json_decref(o);
}

/* ---- import: the header ---- */

/*
 * Map each field of the header to a column (or -1 for an empty header
 * cell, which must stay empty below).  Returns 0, or -1 after printing
 * FILE:LINE: reason for an unknown, repeated or missing column.
 */
static int read_header(const char *file, const struct kn_csv_row *h,
                       int **map)
{
    int seen[COL__COUNT] = {0}, bad = 0;
    size_t nbad = 0;
    *map = kn_xcalloc(h->n + 1, sizeof(**map));
    if (h->err != NULL) {
        fprintf(stderr, "%s:%ld: %s\n", file, h->err_line, h->err);
        return -1;
    }
    for (size_t i = 0; i < h->n; i++) {
        char *name = trim(h->f[i], strlen(h->f[i]));
        int c = -1;
        for (int k = 0; k < COL__COUNT && c < 0; k++) {
            if (strcasecmp(name, columns[k].en) == 0 ||
                strcasecmp(name, columns[k].ja) == 0)
                c = k;
        }
        if (name[0] == '\0') {
            (*map)[i] = -1;
        } else if (c < 0) {
            if (nbad++ < MAX_SHOWN) {
                char *q = quoted(name, 80);
                fprintf(stderr,
                        "%s:%ld: unknown column \"%s\" (column %zu): the "
                        "columns are id (ID), name (氏名), grade (学年), "
                        "class (組), groups (グループ), email "
                        "(メールアドレス), line (LINE), fcm (FCMトークン), "
                        "apns (APNsトークン), channels (配信順), active "
                        "(有効)\n",
                        file, h->line, q, i + 1);
                free(q);
            }
            bad = 1;
        } else if (seen[c]) {
            if (nbad++ < MAX_SHOWN)
                fprintf(stderr, "%s:%ld: column %s appears twice\n", file,
                        h->line, columns[c].en);
            bad = 1;
        } else {
            seen[c] = 1;
            (*map)[i] = c;
        }
        free(name);
    }
    if (nbad > MAX_SHOWN)
        fprintf(stderr, "%s:%ld: ... and %zu more problems in the header\n",
                file, h->line, nbad - MAX_SHOWN);
    if (!bad && !seen[COL_ID]) {
        fprintf(stderr, "%s:%ld: no id (ID) column: every recipient needs "
                        "an id unique within the tenant\n",
                file, h->line);
        bad = 1;
    }
    return bad ? -1 : 0;
}

/* ---- import: one row ---- */

/* The characters a cell must not hold; NULL if it is clean. */
static const char *bad_chars(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\0')
            return "a NUL byte";
        if (c == '\r' || c == '\n')
            return "a line break (Alt+Enter in the cell?)";
        if (c < 0x20 || c == 0x7f)
            return "a control character";
    }
    return NULL;
}

/*
 * Groups: each name must be one a broadcast can address (kn_id_valid);
 * stored sorted and without repeats, so that the order in the cell does
 * not make a row look changed.
 */
static void check_groups(struct rrow *r)
{
    char **g;
    size_t n = split(r->v[COL_GROUPS], ';', &g), m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!kn_id_valid(g[i])) {
            char *q = quoted(g[i], 64);
            why_add(r,
                    "groups: \"%s\" is not a valid group name: use "
                    "1-128 letters, digits, '-', '_', '.', ':' (not first), "
                    "as broadcasts name it in audience.groups; separate "
                    "groups with ';'",
                    q);
            free(q);
        }
    }
    qsort(g, n, sizeof(*g), cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (m > 0 && strcmp(g[m - 1], g[i]) == 0)
            free(g[i]);
        else
            g[m++] = g[i];
    }
    free(r->v[COL_GROUPS]);
    r->v[COL_GROUPS] = join(g, m);
    strv_free(g, m);
}

/* Push tokens (fcm or apns column): checked, repeats dropped, order kept. */
static void check_tokens(struct rrow *r, int col)
{
    char **t;
    size_t n = split(r->v[col], ';', &t), m = 0;
    for (size_t i = 0; i < n; i++) {
        int dup = 0;
        const char *why = NULL;
        if ((col == COL_FCM ? kn_addr_fcm_check(t[i], &why)
                            : kn_addr_apns_check(t[i], &why)) < 0)
            why_add(r, "%s: %s", col == COL_FCM ? "fcm" : "apns", why);
        for (size_t k = 0; k < m; k++)
            dup |= strcmp(t[k], t[i]) == 0;
        if (dup)
            free(t[i]);
        else
            t[m++] = t[i];
    }
    free(r->v[col]);
    r->v[col] = join(t, m);
    strv_free(t, m);
}

/* The preferred channel order: known names, each once, lower case. */
static void check_channels(struct rrow *r)
{
    char **ch;
    size_t n = split(r->v[COL_CHANNELS], ';', &ch);
    for (size_t i = 0; i < n; i++) {
        for (char *p = ch[i]; *p; p++) {
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
        }
        char *q = quoted(ch[i], 32);
        if (kn_channel_parse(ch[i]) < 0)
            why_add(r,
                    "channels: \"%s\" is not a channel: use line, email "
                    "and push, in the order to try, joined by ';'",
                    q);
        for (size_t k = 0; k < i; k++) {
            if (strcmp(ch[k], ch[i]) == 0)
                why_add(r, "channels: %s is named twice", q);
        }
        free(q);
    }
    free(r->v[COL_CHANNELS]);
    r->v[COL_CHANNELS] = join(ch, n);
    strv_free(ch, n);
}

/*
 * Check and normalise one data record into r (r->why set if it is bad):
 *  1. field count: fewer fields than the header, or a value under an
 *     empty header cell, is an error (a line break in an unquoted cell
 *     splits a row in two);
 *  2. every cell is trimmed and must hold no NUL, line break or control
 *     character;
 *  3. each column's own rules (id, lengths, addresses, tokens, channels);
 *  4. at least one contact.
 * Addresses in messages are masked.
 */
static void check_row(const struct kn_csv_row *row, const int *map,
                      size_t nhdr, struct rrow *r)
{
    const char *why = NULL;
    unsigned broken = 0;
    char m[128];
    r->line = row->line;
    r->active = -1;
    for (int c = 0; c < COL__COUNT; c++)
        r->v[c] = kn_xstrdup("");
    if (row->err != NULL) {
        r->line = row->err_line;
        why_add(r, "%s", row->err);
        if (row->unclosed)
            return; /* the rest of the file is in one cell: no more noise */
    }
    if (row->n < nhdr)
        why_add(r, "%zu fields, the header has %zu (a line break inside a "
                   "cell that is not quoted?)",
                row->n, nhdr);
    for (size_t i = 0; i < row->n; i++) {
        int c = i < nhdr ? map[i] : -1;
        int nul = memchr(row->f[i], 0, row->len[i]) != NULL;
        char *v = nul ? kn_xstrdup("x") : trim(row->f[i], row->len[i]);
        if (!nul && kn_csv_unguard(v) != v)
            memmove(v, v + 1, strlen(v)); /* export's guard quote (csv.h) */
        const char *bad = nul ? "a NUL byte" : bad_chars(v, strlen(v));
        if (c < 0) {
            if (v[0] != '\0')
                why_add(r, "column %zu has a value but no header", i + 1);
            free(v);
            continue;
        }
        if (bad != NULL) {
            why_add(r, "%s: contains %s", columns[c].en, bad);
            broken |= 1u << c;
            free(v);
            continue;
        }
        free(r->v[c]);
        r->v[c] = v;
    }

    if (r->v[COL_ID][0] == '\0' && !(broken & (1u << COL_ID)))
        why_add(r, "id: missing");
    else if (r->v[COL_ID][0] != '\0' && !kn_id_valid(r->v[COL_ID])) {
        char *q = quoted(r->v[COL_ID], 64);
        why_add(r,
                "id: \"%s\" is not a valid id: use 1-128 letters, "
                "digits, '-', '_', '.', ':' (not first)",
                q);
        free(q);
    }
    if (strlen(r->v[COL_NAME]) > 200)
        why_add(r, "name: longer than 200 bytes");
    if (strlen(r->v[COL_GRADE]) > 64)
        why_add(r, "grade: longer than 64 bytes");
    if (strlen(r->v[COL_CLASS]) > 64)
        why_add(r, "class: longer than 64 bytes");
    check_groups(r);
    if (r->v[COL_EMAIL][0] != '\0') {
        if (strlen(r->v[COL_EMAIL]) > 320)
            why_add(r, "email: longer than 320 bytes");
        else if (kn_addr_check(r->v[COL_EMAIL], &why) < 0)
            why_add(r, "email: \"%s\" is not an address: %s",
                    kn_mask_address(r->v[COL_EMAIL], m, sizeof(m)), why);
    }
    if (r->v[COL_LINE][0] != '\0' &&
        kn_addr_line_check(r->v[COL_LINE], NULL) < 0)
        why_add(r, "line: \"%s\" is not a LINE user id: 'U' and 32 "
                   "lowercase hex digits",
                kn_mask_address(r->v[COL_LINE], m, sizeof(m)));
    check_tokens(r, COL_FCM);
    check_tokens(r, COL_APNS);
    check_channels(r);
    if (r->v[COL_ACTIVE][0] != '\0') {
        const char *a = r->v[COL_ACTIVE];
        if (strcmp(a, "1") == 0 || strcasecmp(a, "yes") == 0 ||
            strcasecmp(a, "true") == 0)
            r->active = 1;
        else if (strcmp(a, "0") == 0 || strcasecmp(a, "no") == 0 ||
                 strcasecmp(a, "false") == 0)
            r->active = 0;
        else
            why_add(r, "active: write 1 (deliver) or 0 (graduated, "
                       "transferred: no deliveries), or leave it empty");
    }
    if (r->v[COL_EMAIL][0] == '\0' && r->v[COL_LINE][0] == '\0' &&
        r->v[COL_FCM][0] == '\0' && r->v[COL_APNS][0] == '\0' &&
        (broken & (1u << COL_EMAIL | 1u << COL_LINE | 1u << COL_FCM |
                   1u << COL_APNS)) == 0)
        why_add(r, "no contact: give email, line, fcm or apns");
}

struct idref {
    const char *id;
    size_t idx;
};

static int cmp_idref(const void *a, const void *b)
{
    const struct idref *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    if (c != 0)
        return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Mark every row whose id an earlier row already uses. */
static void check_duplicates(struct rrow *rows, size_t n)
{
    struct idref *v = kn_xcalloc(n + 1, sizeof(*v));
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (kn_id_valid(rows[i].v[COL_ID])) {
            v[m].id = rows[i].v[COL_ID];
            v[m++].idx = i;
        }
    }
    qsort(v, m, sizeof(*v), cmp_idref);
    /* first: where the run of equal ids that i is in starts (the run is
     * walked once, not once per member: a file of one id a million times
     * stays linear after the sort) */
    for (size_t i = 1, first = 0; i < m; i++) {
        if (strcmp(v[i - 1].id, v[i].id) != 0) {
            first = i;
            continue;
        }
        why_add(&rows[v[i].idx], "id: %s is already used at line %ld",
                v[i].id, rows[v[first].idx].line);
    }
    free(v);
}

/* ---- import: storage form ---- */

/* The keyed hash of the normalised row (what decides "unchanged"). */
static void row_hash(const struct kn_keyring *kr, struct rrow *r)
{
    size_t len = 16;
    char *s;
    for (int c = 0; c < COL_ACTIVE; c++)
        len += strlen(r->v[c]) + 1;
    s = kn_xmalloc(len);
    strcpy(s, "kairan-row-v1");
    for (int c = 0; c < COL_ACTIVE; c++) {
        strcat(s, "\x1f");
        strcat(s, r->v[c]);
    }
    /*
     * Keyed (HMAC-SHA-256 under the blind-index key) rather than a bare
     * SHA-256: a plain hash of a row of personal data could be confirmed
     * by anyone who can guess the row.
     */
    kn_blind_index(kr, "row", s, r->hash);
    memset(s, 0, len);
    free(s);
}

static void seal_field(json_t *o, const struct kn_keyring *kr,
                       const char *purpose, const char *key,
                       const char *plain, struct kn_argv *bidx)
{
    char bi[33], kbi[8];
    char *sealed = kn_seal(kr, purpose, plain, strlen(plain));
    kn_blind_index(kr, purpose, plain, bi);
    json_object_set_new(o, key, json_string(sealed));
    snprintf(kbi, sizeof(kbi), "%si", key);
    json_object_set_new(o, kbi, json_string(bi));
    kn_argv_addf(bidx, "%s:%s", purpose, bi);
    free(sealed);
}

/* Append a row's NARGS script arguments (see upsert_script). */
static void row_args(const struct kn_keyring *kr, const struct rrow *r,
                     struct kn_argv *a)
{
    json_t *c = json_object();
    struct kn_argv bidx;
    char *s, *bx;
    size_t blen = 1;

    kn_argv_init(&bidx);
    json_object_set_new(c, "id", json_string(r->v[COL_ID]));
    if (r->v[COL_EMAIL][0])
        seal_field(c, kr, "email", "e", r->v[COL_EMAIL], &bidx);
    if (r->v[COL_LINE][0])
        seal_field(c, kr, "line", "l", r->v[COL_LINE], &bidx);
    if (r->v[COL_FCM][0] || r->v[COL_APNS][0]) {
        json_t *p = json_array();
        for (int col = COL_FCM; col <= COL_APNS; col++) {
            char **t;
            size_t n = split(r->v[col], ';', &t);
            for (size_t i = 0; i < n; i++) {
                json_t *o = json_object();
                json_object_set_new(o, "k", json_string(col == COL_FCM
                                                            ? "fcm"
                                                            : "apns"));
                seal_field(o, kr, "push", "t", t[i], &bidx);
                json_array_append_new(p, o);
            }
            strv_free(t, n);
        }
        json_object_set_new(c, "p", p);
    }
    if (r->v[COL_CHANNELS][0]) {
        json_t *ch = json_array();
        char **v;
        size_t n = split(r->v[COL_CHANNELS], ';', &v);
        for (size_t i = 0; i < n; i++)
            json_array_append_new(ch, json_string(v[i]));
        strv_free(v, n);
        json_object_set_new(c, "ch", ch);
    }
    s = json_dumps(c, JSON_COMPACT);
    json_decref(c);

    kn_argv_add(a, r->v[COL_ID]);
    kn_argv_add(a, r->hash);
    kn_argv_take(a, s);
    if (r->v[COL_NAME][0])
        kn_argv_take(a, kn_seal(kr, "name", r->v[COL_NAME],
                                strlen(r->v[COL_NAME])));
    else
        kn_argv_add(a, "");
    kn_argv_add(a, r->v[COL_GRADE]);
    kn_argv_add(a, r->v[COL_CLASS]);
    kn_argv_add(a, r->v[COL_GROUPS]);
    for (int i = 0; i < bidx.n; i++)
        blen += bidx.len[i] + 1;
    bx = kn_xmalloc(blen);
    bx[0] = '\0';
    for (int i = 0; i < bidx.n; i++) {
        if (i > 0)
            strcat(bx, " ");
        strcat(bx, bidx.v[i]);
    }
    kn_argv_take(a, bx);
    kn_argv_add(a, r->active < 0 ? "" : r->active ? "1" : "0");
    kn_argv_free(&bidx);
}

/*
 * The rows that may need a write: those whose stored hash differs (or
 * whose active column asks for a change).  The script checks again; this
 * only keeps an unchanged re-import from writing, or sealing, anything.
 */
static size_t select_changed(const char *tenant, struct rrow **good,
                             size_t n, struct rrow **out)
{
    size_t m = 0;
    for (size_t off = 0; off < n; off += 500) {
        size_t k = n - off < 500 ? n - off : 500;
        struct kn_argv *cmds = kn_xcalloc(k, sizeof(*cmds));
        redisReply **rep;
        for (size_t i = 0; i < k; i++) {
            kn_argv_init(&cmds[i]);
            kn_argv_add(&cmds[i], "HMGET");
            kn_argv_take(&cmds[i], kn_key_rcpt(kn_cli_cfg.redis_prefix, tenant, good[off + i]->v[COL_ID]));
            kn_argv_add(&cmds[i], "hash");
            kn_argv_add(&cmds[i], "active");
        }
        rep = pipeline(cmds, k);
        for (size_t i = 0; i < k; i++) {
            const struct rrow *r = good[off + i];
            const redisReply *h = rep[i];
            int same = h->type == REDIS_REPLY_ARRAY && h->elements == 2 &&
                       h->element[0]->type == REDIS_REPLY_STRING &&
                       strcmp(h->element[0]->str, r->hash) == 0;
            if (same && r->active >= 0)
                same = h->element[1]->type == REDIS_REPLY_STRING &&
                       h->element[1]->str[0] == (r->active ? '1' : '0');
            if (!same)
                out[m++] = good[off + i];
            kn_argv_free(&cmds[i]);
        }
        replies_free(rep, k);
        free(cmds);
    }
    return m;
}

static void add_prefix_tenant(struct kn_argv *a, const char *tenant)
{
    kn_argv_add(a, kn_cli_cfg.redis_prefix);
    kn_argv_add(a, tenant);
}

/* Delete ids[0..n) in batches; returns how many existed. */
static long long delete_ids(const char *tenant, char **ids, size_t n)
{
    long long deleted = 0;
    for (size_t off = 0; off < n; off += BATCH) {
        struct kn_argv a;
        redisReply *r;
        kn_argv_init(&a);
        add_prefix_tenant(&a, tenant);
        for (size_t i = off; i < n && i < off + BATCH; i++)
            kn_argv_add(&a, ids[i]);
        r = kn_cli_eval(&delete_script, 0, &a);
        if (r->type == REDIS_REPLY_INTEGER)
            deleted += r->integer;
        freeReplyObject(r);
        kn_argv_free(&a);
    }
    return deleted;
}

static char *read_file(const char *path, size_t *len, int *too_big)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0, r;
    *too_big = 0;
    if (f == NULL)
        return NULL;
    do {
        if (n + 65536 > cap) {
            cap = cap ? cap * 2 : 131072;
            buf = kn_xrealloc(buf, cap);
        }
        r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (n > (size_t)MAX_FILE) {
            *too_big = 1;
            break;
        }
    } while (r > 0);
    if (ferror(f)) {
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

struct import_opts {
    const char *tenant, *file;
    int skip_bad, replace;
    const char *shown; /* file for messages (kn_text_safe) */
};

/*
 * The deletions --replace makes: every stored id that no row of the file
 * names.  Ids on bad rows that were skipped count as named (they stay as
 * they are); when a bad row has no usable id, nothing is deleted, since
 * that row might be anyone.  Returns the count deleted.
 */
static long long replace_rest(const struct import_opts *o, struct rrow *rows,
                              size_t n, int *held_back)
{
    char **named = kn_xcalloc(n + 1, sizeof(*named)), **gone;
    char *k = kn_cli_key("rcpts:%s", o->tenant);
    redisReply *all;
    size_t m = 0, ng = 0;
    long long deleted;

    *held_back = 0;
    for (size_t i = 0; i < n; i++) {
        if (!kn_id_valid(rows[i].v[COL_ID])) {
            *held_back = 1;
            fprintf(stderr,
                    "kairanctl: --replace deletes nothing this time: "
                    "%s:%ld has no usable id, so it is not known who that "
                    "row is\n",
                    o->shown, rows[i].line);
            free(named);
            free(k);
            return 0;
        }
        named[m++] = rows[i].v[COL_ID];
    }
    qsort(named, m, sizeof(*named), cmp_str);
    all = kn_cli_cmd("SMEMBERS %s", k);
    free(k);
    gone = kn_xcalloc(all->elements + 1, sizeof(*gone));
    for (size_t i = 0; all->type == REDIS_REPLY_ARRAY && i < all->elements;
         i++) {
        char *id = all->element[i]->str;
        if (bsearch(&id, named, m, sizeof(*named), cmp_str) == NULL)
            gone[ng++] = id;
    }
    qsort(gone, ng, sizeof(*gone), cmp_str);
    deleted = delete_ids(o->tenant, gone, ng);
    free(gone);
    freeReplyObject(all);
    free(named);
    return deleted;
}

/*
 * recipients import.  Exit codes:
 *  0  every row was good and is stored; or, with --skip-bad, the good rows
 *     are stored (the bad ones are listed and counted as skipped);
 *  1  bad rows without --skip-bad (nothing written), no good row at all,
 *     a file that is neither UTF-8 nor CP932, a bad header, a key file or
 *     operation log that cannot be used;
 *  2  usage, or the file cannot be read.
 */
static int do_import(const struct import_opts *o)
{
    struct kn_csv csv;
    struct kn_csv_row row = {0};
    struct kn_keyring *kr = NULL;
    struct rrow *rows = NULL, **good = NULL, **changed = NULL;
    size_t nrows = 0, cap = 0, ngood = 0, nbad = 0, nchanged;
    long long added = 0, updated = 0, unchanged = 0, deleted = 0;
    char *raw, *text = NULL, *fname = NULL, err[400];
    size_t rawlen = 0, textlen = 0, nhdr = 0;
    int *map = NULL, too_big, fd = -1, held_back = 0,
        rc = KN_EXIT_FAIL;
    enum kn_csv_enc enc;
    json_t *counts;

    raw = read_file(o->file, &rawlen, &too_big);
    if (raw == NULL) {
        fprintf(stderr, "kairanctl: cannot read %s: %s\n", o->shown,
                strerror(errno));
        return KN_EXIT_USAGE;
    }
    if (too_big) {
        fprintf(stderr, "%s: larger than %ld MB: is this the roster?\n",
                o->shown, MAX_FILE / (1024 * 1024));
        free(raw);
        return KN_EXIT_FAIL;
    }
    if (kn_csv_decode(raw, rawlen, &text, &textlen, &enc, err,
                      sizeof(err)) < 0) {
        /* err is "line N: why": written as FILE:N: why */
        fprintf(stderr, "%s:%s\n", o->shown,
                strncmp(err, "line ", 5) == 0 ? err + 5 : err);
        free(raw);
        return KN_EXIT_FAIL;
    }
    free(raw);
    kn_csv_init(&csv, text, textlen);
    if (kn_csv_next(&csv, &row) == 0) {
        fprintf(stderr, "%s: empty file: the first line must name the "
                        "columns (id, name, email, ...)\n",
                o->shown);
        goto out;
    }
    if (read_header(o->shown, &row, &map) < 0)
        goto out;
    nhdr = row.n;

    /* Check the whole file before anything is written. */
    while (kn_csv_next(&csv, &row) == 1) {
        int empty = row.err == NULL;
        for (size_t i = 0; i < row.n && empty; i++) {
            char *t = trim(row.f[i], row.len[i]);
            empty = t[0] == '\0' && memchr(row.f[i], 0, row.len[i]) == NULL;
            free(t);
        }
        if (empty)
            continue; /* Excel writes ",,,," for a cleared row */
        if (nrows == cap) {
            cap = cap ? cap * 2 : 256;
            rows = kn_xrealloc(rows, cap * sizeof(*rows));
        }
        memset(&rows[nrows], 0, sizeof(*rows));
        check_row(&row, map, nhdr, &rows[nrows]);
        nrows++;
    }
    check_duplicates(rows, nrows);
    good = kn_xcalloc(nrows + 1, sizeof(*good));
    for (size_t i = 0; i < nrows; i++) {
        if (rows[i].why == NULL) {
            good[ngood++] = &rows[i];
        } else if (nbad++ < MAX_SHOWN) {
            if (rows[i].more_why > 0)
                fprintf(stderr, "%s:%ld: %s; ... and %zu more\n", o->shown,
                        rows[i].line, rows[i].why, rows[i].more_why);
            else
                fprintf(stderr, "%s:%ld: %s\n", o->shown, rows[i].line,
                        rows[i].why);
        }
    }
    if (nbad > MAX_SHOWN)
        fprintf(stderr, "%s: ... and %zu more bad rows (the first %d are "
                        "listed above)\n",
                o->shown, nbad - MAX_SHOWN, MAX_SHOWN);
    if (nbad > 0 && !o->skip_bad) {
        fprintf(stderr,
                "%s: nothing written: %zu bad row(s) of %zu; fix them, or "
                "give --skip-bad to import only the good ones\n",
                o->shown, nbad, nrows);
        goto out;
    }
    if (ngood == 0) {
        fprintf(stderr, "%s: %s: nothing written\n", o->shown,
                nrows == 0 ? "no rows under the header" : "no good row");
        goto out;
    }

    if ((fd = oplog_open()) < 0)
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
    for (size_t i = 0; i < ngood; i++)
        row_hash(kr, good[i]);
    changed = kn_xcalloc(ngood + 1, sizeof(*changed));
    nchanged = select_changed(o->tenant, good, ngood, changed);
    unchanged = (long long)(ngood - nchanged);
    for (size_t off = 0; off < nchanged; off += BATCH) {
        struct kn_argv a;
        redisReply *r;
        kn_argv_init(&a);
        add_prefix_tenant(&a, o->tenant);
        kn_argv_addi(&a, kn_now_ms());
        for (size_t i = off; i < nchanged && i < off + BATCH; i++)
            row_args(kr, changed[i], &a);
        r = kn_cli_eval(&upsert_script, 0, &a);
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3) {
            added += r->element[0]->integer;
            updated += r->element[1]->integer;
            unchanged += r->element[2]->integer;
        }
        freeReplyObject(r);
        kn_argv_free(&a);
    }
    if (o->replace)
        deleted = replace_rest(o, rows, nrows, &held_back);

    printf("%s: %s, %zu row(s)\n", o->shown, kn_csv_enc_name(enc), nrows);
    printf("added %lld, updated %lld, unchanged %lld, deleted %lld, "
           "skipped %zu\n",
           added, updated, unchanged, deleted, nbad);
    if (nbad > 0)
        fprintf(stderr, "%s: %zu bad row(s) skipped (listed above)\n",
                o->shown, nbad);
    counts = json_pack("{s:I, s:I, s:I, s:I, s:I, s:s, s:b}", "added",
                       (json_int_t)added, "updated", (json_int_t)updated,
                       "unchanged", (json_int_t)unchanged, "deleted",
                       (json_int_t)deleted, "skipped", (json_int_t)nbad,
                       "file", fname, "replace", o->replace);
    oplog_write(fd, "recipients.import", o->tenant, counts);
    fd = -1;
    rc = held_back ? KN_EXIT_FAIL : KN_EXIT_OK;

out:
    if (fd >= 0)
        close(fd);
    kn_csv_row_free(&row);
    for (size_t i = 0; i < nrows; i++)
        rrow_free(&rows[i]);
    free(rows);
    free(good);
    free(changed);
    free(map);
    free(text);
    free(fname);
    kn_keyring_free(kr);
    return rc;
}

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
    char *t = (*acc)[0] ? kn_xasprintf("%s;%s", *acc, plain)
                        : kn_xstrdup(plain);
    wipe_free(*acc);
    *acc = t;
}

/*
 * Print one stored recipient as a CSV line.  Returns 0, or KN_ECRYPTO
 * when something does not unseal (wrong key file).
 */
static int export_one(FILE *f, const struct kn_keyring *kr, const char *id,
                      const redisReply *h)
{
    const char *cj = h->element[0]->str, *nm = h->element[1]->str,
               *gr = h->element[2]->str, *cl = h->element[3]->str,
               *gs = h->element[4]->str, *ac = h->element[5]->str;
    char *name = NULL, *email = NULL, *line = NULL,
         *fcm = kn_xstrdup(""), *apns = kn_xstrdup(""), *chs = kn_xstrdup("");
    json_t *c = cj ? json_loads(cj, 0, NULL) : NULL, *v;
    size_t i;
    int rc = 0;

    if (unseal_str(kr, "name", nm, &name) < 0 ||
        unseal_str(kr, "email", json_string_value(json_object_get(c, "e")),
                   &email) < 0 ||
        unseal_str(kr, "line", json_string_value(json_object_get(c, "l")),
                   &line) < 0)
        rc = KN_ECRYPTO;
    json_array_foreach(json_object_get(c, "p"), i, v) {
        const char *k = json_string_value(json_object_get(v, "k"));
        char *t = NULL;
        if (rc < 0 || unseal_str(kr, "push",
                                 json_string_value(json_object_get(v, "t")),
                                 &t) < 0) {
            rc = KN_ECRYPTO;
            break;
        }
        acc_add(k && strcmp(k, "apns") == 0 ? &apns : &fcm, t);
        wipe_free(t);
    }
    json_array_foreach(json_object_get(c, "ch"), i, v) {
        if (json_is_string(v))
            acc_add(&chs, json_string_value(v));
    }
    if (c == NULL)
        rc = KN_ECRYPTO;
    if (rc == 0) {
        kn_csv_put_cell(f, id, 0);
        kn_csv_put_cell(f, name, 0);
        kn_csv_put_cell(f, gr ? gr : "", 0);
        kn_csv_put_cell(f, cl ? cl : "", 0);
        kn_csv_put_cell(f, gs ? gs : "", 0);
        kn_csv_put_cell(f, email, 0);
        kn_csv_put_cell(f, line, 0);
        kn_csv_put_cell(f, fcm, 0);
        kn_csv_put_cell(f, apns, 0);
        kn_csv_put_cell(f, chs, 0);
        kn_csv_put_cell(f, ac && strcmp(ac, "0") == 0 ? "0" : "1", 1);
    }
    wipe_free(name);
    wipe_free(email);
    wipe_free(line);
    wipe_free(fcm);
    wipe_free(apns);
    free(chs);
    json_decref(c);
    return rc;
}

static int do_export(const char *tenant, int bom)
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
    if (n == 0 && !tenant_known(tenant)) {
        fprintf(stderr, "kairanctl: no tenant %s (nothing was imported "
                        "for it)\n",
                tenant);
        freeReplyObject(ids);
        kn_keyring_free(kr);
        return KN_EXIT_UNKNOWN;
    }
    v = kn_xcalloc(n + 1, sizeof(*v));
    for (size_t i = 0; i < n; i++)
        v[i] = ids->element[i]->str;
    qsort(v, n, sizeof(*v), cmp_str);
    if (bom)
        fputs("\xef\xbb\xbf", stdout);
    for (int c = 0; c < COL__COUNT; c++)
        kn_csv_put_cell(stdout, columns[c].en, c == COL__COUNT - 1);
    for (size_t off = 0; off < n && rc == KN_EXIT_OK; off += 500) {
        size_t m = n - off < 500 ? n - off : 500;
        struct kn_argv *cmds = kn_xcalloc(m, sizeof(*cmds));
        redisReply **rep;
        for (size_t i = 0; i < m; i++) {
            kn_argv_init(&cmds[i]);
            kn_argv_add(&cmds[i], "HMGET");
            kn_argv_take(&cmds[i],
                         kn_key_rcpt(kn_cli_cfg.redis_prefix, tenant, v[off + i]));
            kn_argv_add(&cmds[i], "c");
            kn_argv_add(&cmds[i], "name");
            kn_argv_add(&cmds[i], "grade");
            kn_argv_add(&cmds[i], "class");
            kn_argv_add(&cmds[i], "groups");
            kn_argv_add(&cmds[i], "active");
        }
        rep = pipeline(cmds, m);
        for (size_t i = 0; i < m; i++) {
            kn_argv_free(&cmds[i]);
            if (rc != KN_EXIT_OK || rep[i]->type != REDIS_REPLY_ARRAY ||
                rep[i]->elements != 6 ||
                rep[i]->element[0]->type != REDIS_REPLY_STRING)
                continue; /* deleted meanwhile */
            if (export_one(stdout, kr, v[off + i], rep[i]) < 0) {
                fprintf(stderr, "kairanctl: recipient %s does not decrypt "
                                "with %s: is it the key file it was "
                                "imported with?\n",
                        v[off + i], kn_cli_cfg.key_file);
                rc = KN_EXIT_FAIL;
            }
        }
        replies_free(rep, m);
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

/* ---- deactivate, activate, delete ---- */

static int do_one(const char *verb, const char *tenant, const char *id)
{
    struct kn_argv a;
    redisReply *r;
    int fd, found;
    char op[48];

    if (!kn_id_valid(id)) {
        usage_err("a recipient id is 1-128 letters, digits, '-', '_', "
                  "'.', ':'");
        return KN_EXIT_USAGE;
    }
    if ((fd = oplog_open()) < 0)
        return KN_EXIT_FAIL;
    kn_argv_init(&a);
    add_prefix_tenant(&a, tenant);
    if (strcmp(verb, "delete") == 0) {
        kn_argv_add(&a, id);
        r = kn_cli_eval(&delete_script, 0, &a);
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
        close(fd);
        fprintf(stderr, "kairanctl: no recipient %s in tenant %s\n", id,
                tenant);
        return KN_EXIT_UNKNOWN;
    }
    snprintf(op, sizeof(op), "recipients.%s", verb);
    oplog_write(fd, op, tenant, json_pack("{s:s}", "id", id));
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
    if (n == 0 && !tenant_known(tenant)) {
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
    qsort(v, n, sizeof(*v), cmp_str);
    for (size_t i = 0; i < n; i++) {
        kn_argv_init(&cmds[i]);
        kn_argv_add(&cmds[i], "SCARD");
        kn_argv_take(&cmds[i], kn_key_grp(kn_cli_cfg.redis_prefix, tenant, v[i]));
    }
    rep = n ? pipeline(cmds, n) : NULL;
    for (size_t i = 0; i < n; i++) {
        printf("%s\t%lld\n", v[i], rep[i]->integer);
        kn_argv_free(&cmds[i]);
    }
    if (rep)
        replies_free(rep, n);
    free(cmds);
    free(v);
    freeReplyObject(g);
    return KN_EXIT_OK;
}

/* ---- argument parsing and the commands ---- */

struct args {
    const char *tenant, *format;
    int skip_bad, replace, bom;
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
        } else if (!dashdash && strcmp(s, "--bom") == 0) {
            a->bom = 1;
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
        struct import_opts o = {a.tenant, a.pos[0], a.skip_bad, a.replace,
                                NULL};
        char *shown;
        int rc;
        if (a.npos != 1 || a.format || a.bom) {
            usage_err("recipients import --tenant T [--skip-bad] "
                      "[--replace] FILE.csv");
            return KN_EXIT_USAGE;
        }
        shown = kn_text_safe(o.file);
        o.shown = shown;
        rc = do_import(&o);
        free(shown);
        return rc;
    }
    if (a.skip_bad || a.replace) {
        usage_err("--skip-bad and --replace are import options");
        return KN_EXIT_USAGE;
    }
    if (strcmp(verb, "export") == 0) {
        if (a.npos != 0 || (a.format && strcmp(a.format, "csv") != 0)) {
            usage_err("recipients export --tenant T [--format csv] [--bom]");
            return KN_EXIT_USAGE;
        }
        return do_export(a.tenant, a.bom);
    }
    if (strcmp(verb, "deactivate") == 0 || strcmp(verb, "activate") == 0 ||
        strcmp(verb, "delete") == 0) {
        if (a.npos != 1 || a.format || a.bom) {
            usage_err("recipients deactivate|activate|delete --tenant T ID");
            return KN_EXIT_USAGE;
        }
        return do_one(verb, a.tenant, a.pos[0]);
    }
    usage_err("recipients import|export|deactivate|activate|delete");
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
    "                         --replace deletes recipients not in the file\n"
    "  recipients export --tenant T [--format csv] [--bom]\n"
    "                         the directory as UTF-8 CSV on stdout, "
    "DECRYPTED:\n"
    "                         addresses and tokens in full (the only "
    "command that\n"
    "                         prints them; --bom for Excel)\n"
    "  recipients deactivate|activate --tenant T ID\n"
    "                         stop (or resume) deliveries, history kept\n"
    "  recipients delete --tenant T ID\n"
    "                         remove a recipient and its memberships\n",
    1, run_recipients};

const struct kn_cli_command kn_cli_cmd_groups = {
    "groups",
    "  groups list --tenant T  group names and member counts\n", 1,
    run_groups};
