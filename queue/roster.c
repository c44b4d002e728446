/*
 * roster.c - a school's class list, checked (roster.h; written by
 * roster_store.c).  The checks are those "kairanctl recipients import" has
 * always made; they moved here from cli/ so that kairand's console can run
 * them too.
 *
 * What it owns: the file's text and its rows, for one import.  What it
 * must never do: write anything before every row was checked (a file is
 * written whole, or with skip_bad its good rows, never half), or quote an
 * address unmasked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/csv.h"
#include "common/kn.h"
#include "common/log.h"
#include "common/text.h"
#include "common/utf8.h"
#include "model/address.h"
#include "model/broadcast.h"
#include "model/directory.h"
#include "model/gaiji.h"
#include "model/label.h"
#include "queue/roster.h"
#include "queue/roster_int.h"

const struct kn_roster_column kn_roster_columns[COL__COUNT] = {
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
    {"number", "出席番号"},
    {"kana", "ふりがな"},
    {"guardian", "保護者氏名"},
    {"phone", "電話番号"},
};

int kn__roster_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void rrow_free(struct rrow *r)
{
    for (int c = 0; c < COL__COUNT; c++)
        free(r->v[c]);
    free(r->why);
    free(r->why_ja);
}

/* *to, then sep and s (s taken; *to NULL: s alone). */
static void append(char **to, const char *sep, char *s)
{
    char *t;
    if (*to == NULL) {
        *to = s;
        return;
    }
    t = kn_xasprintf("%s%s%s", *to, sep, s);
    free(*to);
    free(s);
    *to = t;
}

/*
 * Add a reason to a row, in English (en: kairanctl's line and the API's
 * "reason", "column: what") and in Japanese (ja: the console's, for an
 * office clerk: whole sentences that name the column as the file's header
 * does, through ref[], and say what to change).  Both heap, taken.  At
 * most MAX_WHY are kept, the rest counted.
 */
static void why_add(struct rrow *r, char *en, char *ja)
{
    if (r->nwhy >= MAX_WHY) {
        r->more_why++;
        free(en);
        free(ja);
        return;
    }
    r->nwhy++;
    append(&r->why, "; ", en);
    append(&r->why_ja, " ", ja);
}

/* The spreadsheet's name of column n (1-based): A, B, ... Z, AA, AB ... */
static void col_letters(size_t n, char out[16])
{
    char t[16];
    size_t k = 0;
    while (n > 0 && k < sizeof(t) - 1) {
        n--;
        t[k++] = (char)('A' + n % 26);
        n /= 26;
    }
    for (size_t i = 0; i < k; i++)
        out[i] = t[k - 1 - i];
    out[k] = '\0';
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

/* Split s on sep into trimmed, non-empty heap strings. */
size_t kn__roster_split(const char *s, char sep, char ***out)
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

void kn__roster_strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* v[0..n) joined by ';' (heap); appended at the end, not strcat'ed (a
 * cell of a million values). */
static char *join(char **v, size_t n)
{
    size_t len = 1;
    char *s, *e;
    for (size_t i = 0; i < n; i++)
        len += strlen(v[i]) + 1;
    s = e = kn_xmalloc(len);
    *e = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            e = stpcpy(e, ";");
        e = stpcpy(e, v[i]);
    }
    return s;
}

/* Sort order of the values' indexes: by value, then by place. */
static int cmp_at(const void *a, const void *b, void *arg)
{
    char **v = arg;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    int c = strcmp(v[x], v[y]);
    return c != 0 ? c : (x > y) - (x < y);
}

/* ---- the header ---- */

/*
 * Other names a class list uses for a column (docs/directory.md lists
 * them).  Compared after NFKC and without regard to ASCII case, so that
 * "ＩＤ", "Ｅメール" and "TEL" are found too.
 */
static const struct {
    const char *name;
    int col;
} aliases[] = {
    {"生徒ID", COL_ID},
    {"名前", COL_NAME},
    {"生徒氏名", COL_NAME},
    {"児童氏名", COL_NAME},
    {"クラス", COL_CLASS},
    {"メール", COL_EMAIL},
    {"Eメール", COL_EMAIL},
    {"e-mail", COL_EMAIL},
    {"mail", COL_EMAIL},
    {"保護者メール", COL_EMAIL},
    {"保護者メールアドレス", COL_EMAIL},
    {"番号", COL_NUMBER},
    {"フリガナ", COL_KANA},
    {"よみがな", COL_KANA},
    {"ヨミガナ", COL_KANA},
    {"保護者名", COL_GUARDIAN},
    {"保護者", COL_GUARDIAN},
    {"電話", COL_PHONE},
    {"TEL", COL_PHONE},
    {"連絡先電話番号", COL_PHONE},
    {"携帯電話", COL_PHONE},
    {"携帯電話番号", COL_PHONE},
};

/* The column a header cell names, or -1. */
static int column_of(const char *raw)
{
    char err[8], *name = NULL;
    int c = -1;
    if (kn_label_norm(raw, &name, err, sizeof(err)) < 0)
        name = kn_xstrdup(raw);
    for (int k = 0; k < COL__COUNT && c < 0; k++) {
        if (strcasecmp(name, kn_roster_columns[k].en) == 0 ||
            strcasecmp(name, kn_roster_columns[k].ja) == 0)
            c = k;
    }
    for (size_t k = 0; k < KN_ARRAY_SIZE(aliases) && c < 0; k++) {
        if (strcasecmp(name, aliases[k].name) == 0)
            c = aliases[k].col;
    }
    free(name);
    return c;
}

/* 1 if the header cell name is one --ignore-column gave. */
static int ignored(const struct kn_roster_opts *o, const char *name)
{
    for (size_t i = 0; i < o->nignore; i++) {
        char *t = trim(o->ignore[i], strlen(o->ignore[i]));
        int same = strcmp(t, name) == 0;
        free(t);
        if (same)
            return 1;
    }
    return o->ignore_unknown;
}

#define COL_IGNORED (-2) /* map: a column left out by ignore */

/* One problem of the header (kept up to MAX_SHOWN, then counted); text
 * and ja (the Japanese, without the row: added here) are taken. */
static void header_problem(struct kn_roster *ro, long line, char *text,
                           char *ja, const char *unknown, size_t column)
{
    struct kn_roster_problem *p;
    if (ro->nheader >= MAX_SHOWN) {
        ro->header_more++;
        free(text);
        free(ja);
        return;
    }
    p = &ro->header[ro->nheader++];
    p->line = line;
    p->row = ro->header_line; /* the first record: nothing above it */
    p->text = text;
    p->text_ja = kn_xasprintf("%ld行目（見出し）：%s", p->row, ja);
    free(ja);
    p->unknown = unknown != NULL ? quoted(unknown, 256) : NULL;
    p->column = column;
    if (column > 0)
        col_letters(column, p->letter);
}

/*
 * Map each field of the header to a column, -1 for an empty header cell
 * (which must stay empty below) or COL_IGNORED.  Returns 0, or -1 after
 * keeping the problems (an unknown, repeated or missing column).  An
 * unknown column is never skipped on its own: a typo ("メールアドレ")
 * would turn every row into one without a contact.
 */
static int read_header(struct kn_roster *ro, const struct kn_csv_row *h,
                       int **map)
{
    const struct kn_roster_opts *o = &ro->_o;
    int seen[COL__COUNT] = {0}, bad = 0;
    *map = kn_xcalloc(h->n + 1, sizeof(**map));
    ro->header_line = h->line;
    if (h->err != NULL) {
        header_problem(ro, h->err_line, kn_xstrdup(h->err),
                       kn_xstrdup(h->err_ja), NULL, 0);
        return -1;
    }
    for (size_t i = 0; i < h->n; i++) {
        char *name = trim(h->f[i], strlen(h->f[i]));
        int c = name[0] == '\0' ? -1 : column_of(name);
        char letters[16];
        col_letters(i + 1, letters);
        if (name[0] == '\0') {
            (*map)[i] = -1;
        } else if (c < 0 && ignored(o, name)) {
            (*map)[i] = COL_IGNORED;
        } else if (c < 0) {
            char *q = quoted(name, 80);
            header_problem(
                ro, h->line,
                kn_xasprintf(
                    "unknown column \"%s\" (column %zu, letter %s): check "
                    "its spelling, or leave it out with --ignore-column "
                    "\"%s\" (or all unknown columns with "
                    "--ignore-unknown); the columns are id (ID), name "
                    "(氏名), grade (学年), class (組, クラス), groups "
                    "(グループ), email (メールアドレス, メール), line "
                    "(LINE), fcm (FCMトークン), apns (APNsトークン), "
                    "channels (配信順), active (有効), number (出席番号), "
                    "kana (ふりがな), guardian (保護者氏名), phone "
                    "(電話番号)",
                    q, i + 1, letters, q),
                kn_xasprintf(
                    "見出し「%s」（%s列）は名簿の項目ではありません。"
                    "つづりを確かめて直すか、この列を無視して取り込んで"
                    "ください。名簿の項目：ID、氏名、学年、組（クラス）、"
                    "グループ、メールアドレス（メール）、LINE、FCMトークン、"
                    "APNsトークン、配信順、有効、出席番号、ふりがな、"
                    "保護者氏名、電話番号。",
                    q, letters),
                name, i + 1);
            free(q);
            bad = 1;
        } else if (seen[c]) {
            char *q = quoted(name, 80);
            header_problem(
                ro, h->line,
                kn_xasprintf("column %s appears twice",
                             kn_roster_columns[c].en),
                kn_xasprintf("見出し「%s」（%s列）は%sと同じ項目（%s）です。"
                             "どちらか 1 つの列にまとめてください。",
                             q, letters, ro->_colref[c],
                             kn_roster_columns[c].ja),
                NULL, 0);
            free(q);
            bad = 1;
        } else {
            char *q = quoted(name, 80);
            seen[c] = 1;
            (*map)[i] = c;
            ro->_colref[c] = kn_xasprintf("「%s」（%s列）", q, letters);
            free(q);
        }
        free(name);
    }
    if (!bad && !seen[COL_ID]) {
        header_problem(ro, h->line,
                       kn_xstrdup("no id (ID) column: every recipient needs "
                                  "an id unique within the tenant"),
                       kn_xstrdup("「ID」の列がありません。児童・生徒ごとに"
                                  "学校で決めた番号を入れる列を作り、見出し"
                                  "を「ID」にしてください。"),
                       NULL, 0);
        bad = 1;
    }
    /* A column the file does not have is named as the guide names it
     * (a reason about it comes only from a merged guardian row). */
    for (int c = 0; c < COL__COUNT; c++) {
        if (ro->_colref[c] == NULL)
            ro->_colref[c] = kn_xasprintf("「%s」", kn_roster_columns[c].ja);
    }
    return bad ? -1 : 0;
}

/* ---- one row ---- */

/* What a cell must not hold (bad_chars). */
enum cell_bad { CELL_OK, CELL_NUL, CELL_BREAK, CELL_CONTROL, CELL_NOT_TEXT };

/* The characters a cell must not hold: the first kind found, or CELL_OK. */
static enum cell_bad bad_chars(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\0')
            return CELL_NUL;
        if (c == '\r' || c == '\n')
            return CELL_BREAK;
        if (c < 0x20 || c == 0x7f)
            return CELL_CONTROL;
    }
    return kn_text_plain(s) ? CELL_OK : CELL_NOT_TEXT;
}

/* The reason for a cell of column c (ref: as the header names it) that
 * holds what kind says. */
static void why_cell(struct rrow *r, int c, const char *ref, enum cell_bad kind)
{
    const char *col = kn_roster_columns[c].en;
    switch (kind) {
    case CELL_NUL:
        why_add(r, kn_xasprintf("%s: contains a NUL byte", col),
                kn_xasprintf("%sに読み取れない文字（NUL）が含まれています。"
                             "そのセルを入力し直してください。",
                             ref));
        break;
    case CELL_BREAK:
        why_add(r,
                kn_xasprintf("%s: contains a line break (Alt+Enter in the "
                             "cell?)",
                             col),
                kn_xasprintf("%sのセルの中で改行されています（Alt+Enter）。"
                             "改行を消して 1 行にしてください。",
                             ref));
        break;
    case CELL_CONTROL:
        why_add(r, kn_xasprintf("%s: contains a control character", col),
                kn_xasprintf("%sに目に見えない制御文字が含まれています。"
                             "そのセルを入力し直してください。",
                             ref));
        break;
    default:
        why_add(r,
                kn_xasprintf("%s: contains a character that is not text (a "
                             "C1 control, a direction control such as "
                             "U+202E, a line separator, or an invisible "
                             "U+200B or U+FEFF: a BOM, from two files "
                             "pasted into one?)",
                             col),
                kn_xasprintf("%sに目に見えない特殊な文字（文字の向きを変える"
                             "記号、幅のない空白、別のファイルの先頭の印など）"
                             "が含まれています。ほかのファイルや Web ページ"
                             "から貼り付けると入ることがあります。そのセルを"
                             "入力し直してください。",
                             ref));
        break;
    }
}

/* Columns whose values are never quoted back: addresses, tokens and the
 * phone number (personal data; an address is shown masked at most). */
static int unquoted_col(int c)
{
    return c == COL_EMAIL || c == COL_LINE || c == COL_FCM || c == COL_APNS ||
           c == COL_PHONE;
}

/* The reason for a cell holding a private-use character (gaiji,
 * model/gaiji.h); 1 if it does, else 0.  In a name, what to write
 * instead; in an address, token or number (never a place for kanji) only
 * that it must be typed again, never quoted. */
static int why_gaiji(struct rrow *r, int c, const char *ref, const char *v)
{
    char *en, *ja;
    if (kn_gaiji_check(v, unquoted_col(c) ? KN_GAIJI_SECRET : KN_GAIJI_NAME,
                       kn_roster_columns[c].en, ref, &en, &ja, NULL, NULL) == 0)
        return 0;
    why_add(r, en, ja);
    return 1;
}

/*
 * Groups: each name NFKC-normalised (model/label.h), as a broadcast's
 * audience.groups is, so that "２年Ａ組" here and "2年A組" there are one
 * group; stored sorted and without repeats, so that the order in the cell
 * does not make a row look changed.
 */
static void check_groups(struct rrow *r, char *const *ref)
{
    char **g;
    size_t n = kn__roster_split(r->v[COL_GROUPS], ';', &g), m = 0;
    for (size_t i = 0; i < n; i++) {
        char why[160], why_ja[400], *norm;
        if (kn_label_norm_ja(g[i], &norm, why, sizeof(why), why_ja,
                             sizeof(why_ja)) < 0) {
            char *q = quoted(g[i], 64);
            why_add(r,
                    kn_xasprintf("groups: \"%s\" %s (a group name is 1-%d "
                                 "characters; separate groups with ';')",
                                 q, why, KN_LABEL_MAX_CHARS),
                    kn_xasprintf("%sの「%s」はグループ名に使えません。%s。"
                                 "グループがいくつかあるときは「;」で区切り"
                                 "ます（例：2年A組;サッカー部）。",
                                 ref[COL_GROUPS], q, why_ja));
            free(q);
        } else {
            free(g[i]);
            g[i] = norm;
        }
    }
    qsort(g, n, sizeof(*g), kn__roster_cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (m > 0 && strcmp(g[m - 1], g[i]) == 0)
            free(g[i]);
        else
            g[m++] = g[i];
    }
    free(r->v[COL_GROUPS]);
    r->v[COL_GROUPS] = join(g, m);
    kn__roster_strv_free(g, m);
}

/*
 * A phone number, for the list of whom to phone: NFKC (full-width digits
 * become ASCII), then digits, '+', '-', '(', ')' and spaces, 2 to 32 of
 * them with at least 2 digits.  Never quoted in a message (it is personal
 * data, like an address).
 */
static void check_phone(struct rrow *r, char *const *ref)
{
    char err[8], *norm = NULL;
    size_t digits = 0, n;
    int ok;
    if (r->v[COL_PHONE][0] == '\0')
        return;
    ok = kn_label_norm(r->v[COL_PHONE], &norm, err, sizeof(err)) == 0;
    n = ok ? strlen(norm) : 0;
    for (size_t i = 0; ok && i < n; i++) {
        char c = norm[i];
        if (c >= '0' && c <= '9')
            digits++;
        else if (c != '+' && c != '-' && c != '(' && c != ')' && c != ' ')
            ok = 0;
    }
    if (!ok || digits < 2 || n > 32) {
        why_add(r,
                kn_xstrdup("phone: not a phone number: use digits, '-', "
                           "'+', '(', ')' and spaces (at most 32), such as "
                           "090-1234-5678"),
                kn_xasprintf("%sが電話番号になっていません。数字と「-」「+」"
                             "「(」「)」と空白だけで、32 文字までにして"
                             "ください（例：090-1234-5678）。",
                             ref[COL_PHONE]));
        free(norm);
        return;
    }
    free(r->v[COL_PHONE]);
    r->v[COL_PHONE] = norm;
}

/* Push tokens (fcm or apns column): checked, repeats dropped, order kept. */
static void check_tokens(struct rrow *r, int col, char *const *ref)
{
    char **t;
    size_t n = kn__roster_split(r->v[col], ';', &t), m = 0;
    size_t *at = kn_xcalloc(n + 1, sizeof(*at));
    for (size_t i = 0; i < n; i++) {
        const char *why = NULL;
        if ((col == COL_FCM ? kn_addr_fcm_check(t[i], &why)
                            : kn_addr_apns_check(t[i], &why)) < 0)
            why_add(
                r, kn_xasprintf("%s: %s", col == COL_FCM ? "fcm" : "apns", why),
                kn_xasprintf("%sの %zu 個目のトークンが正しくありません"
                             "（%s）。アプリの管理画面から書き出した値を"
                             "そのまま入れてください。いくつかあるときは"
                             "「;」で区切ります。",
                             ref[col], i + 1, kn_addr_why_ja(why)));
        at[i] = i;
    }
    /* repeats found by sorting, not against every token before (a cell of
     * a million tokens); the first of each is kept, in the cell's order */
    qsort_r(at, n, sizeof(*at), cmp_at, t);
    for (size_t i = 1, first = 0; i < n; i++) {
        if (strcmp(t[at[first]], t[at[i]]) != 0) {
            first = i;
        } else {
            free(t[at[i]]);
            t[at[i]] = NULL;
        }
    }
    free(at);
    for (size_t i = 0; i < n; i++) {
        if (t[i] != NULL)
            t[m++] = t[i];
    }
    free(r->v[col]);
    r->v[col] = join(t, m);
    kn__roster_strv_free(t, m);
}

/* The preferred channel order: known names, each once, lower case. */
static void check_channels(struct rrow *r, char *const *ref)
{
    char **ch;
    size_t n = kn__roster_split(r->v[COL_CHANNELS], ';', &ch);
    unsigned seen = 0; /* the channels named so far, one bit each */
    for (size_t i = 0; i < n; i++) {
        int k;
        for (char *p = ch[i]; *p; p++) {
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
        }
        char *q = quoted(ch[i], 32);
        if ((k = kn_channel_parse(ch[i])) < 0)
            why_add(r,
                    kn_xasprintf("channels: \"%s\" is not a channel: use "
                                 "line, email and push, in the order to "
                                 "try, joined by ';'",
                                 q),
                    kn_xasprintf("%sの「%s」は使えません。line（LINE）、"
                                 "email（メール）、push（アプリ）を試す順に"
                                 "「;」で区切って書いてください（例："
                                 "line;email）。",
                                 ref[COL_CHANNELS], q));
        else if (seen & (1u << k))
            why_add(r, kn_xasprintf("channels: %s is named twice", q),
                    kn_xasprintf("%sに %s が 2 回書かれています。1 回だけに"
                                 "してください。",
                                 ref[COL_CHANNELS], q));
        else
            seen |= 1u << k;
        free(q);
    }
    free(r->v[COL_CHANNELS]);
    r->v[COL_CHANNELS] = join(ch, n);
    kn__roster_strv_free(ch, n);
}

/* A column's value longer than max bytes: "name: longer than 200 bytes". */
static void too_long(struct rrow *r, int c, size_t max, char *const *ref)
{
    if (strlen(r->v[c]) <= max)
        return;
    why_add(
        r,
        kn_xasprintf("%s: longer than %zu bytes", kn_roster_columns[c].en, max),
        kn_xasprintf("%sが長すぎます。半角 %zu 文字（全角ならおよそ %zu "
                     "文字）までにしてください。",
                     ref[c], max, max / 3));
}

/*
 * Check and normalise one data record into r (r->why set if it is bad):
 *  1. field count: fewer fields than the header, or a value under an
 *     empty header cell, is an error (a line break in an unquoted cell
 *     splits a row in two);
 *  2. every cell is trimmed and must hold no NUL, line break or control
 *     character, nor a private-use character (CP932's gaiji);
 *  3. each column's own rules (id, lengths, addresses, tokens, channels);
 *  4. at least one contact.
 * Addresses in messages are masked.  ref names each column as the header
 * does (for the Japanese reasons); xrow is the record's row as a
 * spreadsheet shows it.
 */
static void check_row(const struct kn_csv_row *row, const int *map, size_t nhdr,
                      char *const *ref, long xrow, struct rrow *r)
{
    const char *why = NULL;
    unsigned broken = 0;
    char m[128];
    r->line = row->line;
    r->row = xrow;
    r->active = -1;
    for (int c = 0; c < COL__COUNT; c++)
        r->v[c] = kn_xstrdup("");
    if (row->err != NULL) {
        r->line = row->err_line;
        why_add(r, kn_xstrdup(row->err), kn_xstrdup(row->err_ja));
        if (row->unclosed)
            return; /* the rest of the file is in one cell: no more noise */
    }
    if (row->n < nhdr)
        why_add(r,
                kn_xasprintf("%zu fields, the header has %zu (a line break "
                             "inside a cell that is not quoted?)",
                             row->n, nhdr),
                kn_xasprintf("この行は %zu 列しかなく、見出しの %zu 列より"
                             "少なくなっています。セルの途中で行が分かれて"
                             "いないか確かめてください。",
                             row->n, nhdr));
    for (size_t i = 0; i < row->n; i++) {
        int c = i < nhdr ? map[i] : -1;
        if (c == COL_IGNORED)
            continue; /* never stored, so never checked */
        int nul = memchr(row->f[i], 0, row->len[i]) != NULL;
        char *v = nul ? kn_xstrdup("x") : trim(row->f[i], row->len[i]);
        if (!nul && kn_csv_unguard(v) != v)
            memmove(v, v + 1, strlen(v)); /* export's guard quote (csv.h) */
        enum cell_bad bad = nul ? CELL_NUL : bad_chars(v, strlen(v));
        if (c < 0) {
            if (v[0] != '\0') {
                char letters[16];
                col_letters(i + 1, letters);
                why_add(
                    r,
                    kn_xasprintf("column %zu has a value but no header", i + 1),
                    kn_xasprintf("%s列に値がありますが、見出し（1行目）"
                                 "にこの列の名前がありません。見出しを"
                                 "付けるか、値を消してください。",
                                 letters));
            }
            free(v);
            continue;
        }
        if (bad != CELL_OK) {
            why_cell(r, c, ref[c], bad);
            broken |= 1u << c;
            free(v);
            continue;
        }
        if (why_gaiji(r, c, ref[c], v)) {
            broken |= 1u << c;
            free(v);
            continue;
        }
        free(r->v[c]);
        r->v[c] = v;
    }

    if (r->v[COL_ID][0] == '\0' && !(broken & (1u << COL_ID)))
        why_add(r, kn_xstrdup("id: missing"),
                kn_xasprintf("%sが空です。児童・生徒ごとに学校で決めた番号"
                             "を入れてください。",
                             ref[COL_ID]));
    else if (r->v[COL_ID][0] != '\0' && !kn_id_valid(r->v[COL_ID])) {
        char *q = quoted(r->v[COL_ID], 64);
        why_add(r,
                kn_xasprintf("id: \"%s\" is not a valid id: use 1-128 "
                             "letters, digits, '-', '_', '.', ':' (not "
                             "first)",
                             q),
                kn_xasprintf("%sの「%s」は ID に使えません。半角の英字・数字と"
                             "「-」「_」「.」「:」で 128 文字までにしてくだ"
                             "さい（記号から始めることはできません。全角や"
                             "空白も使えません）。",
                             ref[COL_ID], q));
        free(q);
    }
    too_long(r, COL_NAME, 200, ref);
    too_long(r, COL_GRADE, 64, ref);
    too_long(r, COL_CLASS, 64, ref);
    check_groups(r, ref);
    too_long(r, COL_NUMBER, 16, ref);
    too_long(r, COL_KANA, 200, ref);
    too_long(r, COL_GUARDIAN, 200, ref);
    check_phone(r, ref);
    if (r->v[COL_EMAIL][0] != '\0') {
        if (strlen(r->v[COL_EMAIL]) > 320)
            why_add(r, kn_xstrdup("email: longer than 320 bytes"),
                    kn_xasprintf("%sのアドレスが長すぎます（半角 320 文字"
                                 "まで）。正しいアドレスか確かめてください。",
                                 ref[COL_EMAIL]));
        else if (kn_addr_check(r->v[COL_EMAIL], &why) < 0) {
            kn_mask_address(r->v[COL_EMAIL], m, sizeof(m));
            why_add(r,
                    kn_xasprintf("email: \"%s\" is not an address: %s", m, why),
                    kn_xasprintf("%sの「%s」はメールアドレスになっていません"
                                 "（%s）。正しいアドレスに直してください。",
                                 ref[COL_EMAIL], m, kn_addr_why_ja(why)));
        }
    }
    if (r->v[COL_LINE][0] != '\0' &&
        kn_addr_line_check(r->v[COL_LINE], NULL) < 0) {
        kn_mask_address(r->v[COL_LINE], m, sizeof(m));
        why_add(r,
                kn_xasprintf("line: \"%s\" is not a LINE user id: 'U' and "
                             "32 lowercase hex digits",
                             m),
                kn_xasprintf("%sの「%s」は LINE のユーザー ID ではありません。"
                             "LINE のユーザー ID は「U」と半角の小文字英数字 "
                             "32 文字です。LINE の管理画面から書き出した値を"
                             "そのまま入れてください。",
                             ref[COL_LINE], m));
    }
    check_tokens(r, COL_FCM, ref);
    check_tokens(r, COL_APNS, ref);
    check_channels(r, ref);
    if (r->v[COL_ACTIVE][0] != '\0') {
        const char *a = r->v[COL_ACTIVE];
        if (strcmp(a, "1") == 0 || strcasecmp(a, "yes") == 0 ||
            strcasecmp(a, "true") == 0)
            r->active = 1;
        else if (strcmp(a, "0") == 0 || strcasecmp(a, "no") == 0 ||
                 strcasecmp(a, "false") == 0)
            r->active = 0;
        else
            why_add(r,
                    kn_xstrdup("active: write 1 (deliver) or 0 (graduated, "
                               "transferred: no deliveries), or leave it "
                               "empty"),
                    kn_xasprintf("%sには 1（配信する）か 0（卒業・転出など"
                                 "で配信しない）を入れるか、空にしてくだ"
                                 "さい。",
                                 ref[COL_ACTIVE]));
    }
    /* A child without any contact is kept (issue 15): with registration
     * sheets a school imports a class list with no addresses at all, and
     * the guardians register their own (kn_roster nocontact counts them,
     * so that the summary says who needs a sheet). */
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

/* The student's own columns: a guardian row repeats them or leaves them
 * empty. */
static const int student_cols[] = {COL_NAME,   COL_GRADE,  COL_CLASS,
                                   COL_GROUPS, COL_NUMBER, COL_KANA};

/*
 * Several guardians of one child: one row per guardian, the child's id
 * repeated (the shape simplest in Excel: copy the child's row, change the
 * guardian's columns).  The first row of an id is the child with its
 * first guardian; each later row with the same id adds a guardian, its
 * contact columns (email, line, fcm, apns, channels, guardian, phone)
 * being that guardian's.  A later row must repeat the child's columns
 * (name, kana, number, grade, class, groups, active) or leave them empty:
 * a different value is an error naming the first row (two children given
 * one id by mistake).  A later row of a bad first row is bad too.
 */
static void merge_guardians(struct rrow *rows, size_t n, char *const *ref)
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
     * stays linear after the sort); tail: the first row's last guardian,
     * kept as the run goes (walking the list for it was quadratic) */
    struct rrow *tail = m > 0 ? &rows[v[0].idx] : NULL;
    for (size_t i = 1, first = 0; i < m; i++) {
        struct rrow *p, *x = &rows[v[i].idx];
        int diff = -1; /* the student's column that differs */
        if (strcmp(v[i - 1].id, v[i].id) != 0) {
            first = i;
            tail = x;
            continue;
        }
        p = &rows[v[first].idx];
        if (x->why != NULL)
            continue; /* listed with its own reasons */
        if (p->why != NULL) {
            why_add(x,
                    kn_xasprintf("id: %s is already used at line %ld, which "
                                 "is bad: a row repeating an id adds a "
                                 "guardian to that row's student",
                                 x->v[COL_ID], p->line),
                    kn_xasprintf("%sの %s は %ld行目でも使われていて、その行"
                                 "に誤りがあります。同じ ID の行はその児童・"
                                 "生徒に保護者を加える行なので、先に %ld行目"
                                 "を直してください。",
                                 ref[COL_ID], x->v[COL_ID], p->row, p->row));
            continue;
        }
        for (size_t k = 0; k < KN_ARRAY_SIZE(student_cols) && diff < 0; k++) {
            int c = student_cols[k];
            if (x->v[c][0] != '\0' && strcmp(x->v[c], p->v[c]) != 0)
                diff = c;
        }
        if (diff < 0 && x->active >= 0 && x->active != p->active)
            diff = COL_ACTIVE;
        if (diff >= 0) {
            why_add(x,
                    kn_xasprintf("id: %s is already used at line %ld with "
                                 "another %s: a row repeating an id adds a "
                                 "guardian of that student, so repeat the "
                                 "student's columns or leave them empty (two "
                                 "students need two ids)",
                                 x->v[COL_ID], p->line,
                                 kn_roster_columns[diff].en),
                    kn_xasprintf(
                        "%sの %s は %ld行目でも使われていますが、%s"
                        "が違います。同じ ID が 2 回目以降に出てくる行は、その"
                        "児童・生徒の別の保護者の行として読みます。"
                        "同じ児童・生徒なら%sを %ld行目と同じにする"
                        "か空にし、別の児童・生徒なら別の ID にして"
                        "ください。",
                        ref[COL_ID], x->v[COL_ID], p->row, ref[diff], ref[diff],
                        p->row));
            continue;
        }
        x->merged = 1;
        tail->next_guardian = x;
        tail = x;
    }
    free(v);
}

/* ---- the two steps ---- */

static void bad_row(struct kn_roster *ro, const struct rrow *r)
{
    struct kn_roster_problem *p;
    if (ro->nbad++ >= MAX_SHOWN)
        return;
    p = &ro->bad[ro->nbad_shown++];
    p->line = r->line;
    p->row = r->row;
    p->text = r->more_why > 0
                  ? kn_xasprintf("%s; ... and %zu more", r->why, r->more_why)
                  : kn_xstrdup(r->why);
    if (r->more_why > 0)
        p->text_ja = kn_xasprintf("%ld行目：%s ほかに %zu 件の誤りがあります。",
                                  r->row, r->why_ja, r->more_why);
    else
        p->text_ja = kn_xasprintf("%ld行目：%s", r->row, r->why_ja);
}

/* 1 if a student (its first row and the guardian rows merged into it)
 * has an address to deliver to: e-mail, LINE or a push token. */
static int has_contact(const struct rrow *r)
{
    for (; r != NULL; r = r->next_guardian) {
        if (r->v[COL_EMAIL][0] || r->v[COL_LINE][0] || r->v[COL_FCM][0] ||
            r->v[COL_APNS][0])
            return 1;
    }
    return 0;
}

int kn_roster_check(const char *raw, size_t len, const struct kn_roster_opts *o,
                    struct kn_roster **out)
{
    struct kn_roster *ro = kn_xcalloc(1, sizeof(*ro));
    struct kn_csv csv;
    struct kn_csv_row row = {0};
    struct rrow *rows = NULL;
    size_t cap = 0, textlen = 0, nhdr;
    long extra; /* line breaks inside quoted cells so far */
    int *map = NULL;

    *out = ro;
    ro->_o = *o;
    ro->_tenant = kn_xstrdup(o->tenant);
    ro->_o.tenant = ro->_tenant;
    ro->_o.ignore = NULL; /* borrowed: used only during this call */
    ro->_o.nignore = 0;
    if (kn_csv_decode(raw, len, &ro->_text, &textlen, &ro->enc, ro->decode_err,
                      sizeof(ro->decode_err), ro->decode_err_ja,
                      sizeof(ro->decode_err_ja)) < 0) {
        ro->stop = KN_ROSTER_DECODE;
        return -1;
    }
    kn_csv_init(&csv, ro->_text, textlen);
    if (kn_csv_next(&csv, &row) == 0) {
        ro->stop = KN_ROSTER_EMPTY;
        kn_csv_row_free(&row);
        return -1;
    }
    ro->_o.ignore = o->ignore;
    ro->_o.nignore = o->nignore;
    if (read_header(ro, &row, &map) < 0) {
        ro->_o.ignore = NULL;
        ro->_o.nignore = 0;
        ro->stop = KN_ROSTER_HEADER;
        kn_csv_row_free(&row);
        free(map);
        return -1;
    }
    ro->_o.ignore = NULL;
    ro->_o.nignore = 0;
    nhdr = row.n;
    extra = row.end_line - row.line;

    while (kn_csv_next(&csv, &row) == 1) {
        int empty = row.err == NULL;
        /* A spreadsheet shows a record as one row however many line breaks
         * its quoted cells hold (and an empty line as an empty row). */
        long xrow = row.line - extra;
        extra += row.end_line - row.line;
        for (size_t i = 0; i < row.n && empty; i++) {
            char *t = trim(row.f[i], row.len[i]);
            empty = t[0] == '\0' && memchr(row.f[i], 0, row.len[i]) == NULL;
            free(t);
        }
        if (empty)
            continue; /* Excel writes ",,,," for a cleared row */
        if (o->max_rows > 0 && ro->nrows == o->max_rows) {
            ro->stop = KN_ROSTER_TOO_MANY;
            kn_csv_row_free(&row);
            free(map);
            ro->_rows = rows;
            return -1;
        }
        if (ro->nrows == cap) {
            cap = cap ? cap * 2 : 256;
            rows = kn_xrealloc(rows, cap * sizeof(*rows));
        }
        memset(&rows[ro->nrows], 0, sizeof(*rows));
        check_row(&row, map, nhdr, ro->_colref, xrow, &rows[ro->nrows]);
        ro->nrows++;
    }
    kn_csv_row_free(&row);
    free(map);
    ro->_rows = rows;
    merge_guardians(rows, ro->nrows, ro->_colref);
    for (size_t i = 0; i < ro->nrows; i++) {
        if (rows[i].why == NULL) {
            if (!rows[i].merged) { /* written with its student's first row */
                ro->ngood++;
                ro->nocontact += !has_contact(&rows[i]);
            }
        } else {
            bad_row(ro, &rows[i]);
        }
    }
    if (ro->nbad > 0 && !o->skip_bad)
        ro->stop = KN_ROSTER_BAD_ROWS;
    else if (ro->ngood == 0)
        ro->stop = KN_ROSTER_NO_GOOD;
    return ro->stop == KN_ROSTER_OK ? 0 : -1;
}

void kn_roster_free(struct kn_roster *ro)
{
    struct rrow *rows;
    if (ro == NULL)
        return;
    rows = ro->_rows;
    for (size_t i = 0; i < ro->nrows; i++)
        rrow_free(&rows[i]);
    free(rows);
    for (size_t i = 0; i < ro->nheader; i++) {
        free(ro->header[i].text);
        free(ro->header[i].text_ja);
        free(ro->header[i].unknown);
    }
    for (size_t i = 0; i < ro->nbad_shown; i++) {
        free(ro->bad[i].text);
        free(ro->bad[i].text_ja);
    }
    for (int c = 0; c < COL__COUNT; c++)
        free(ro->_colref[c]);
    if (ro->_text != NULL)
        free(ro->_text);
    free(ro->_tenant);
    free(ro);
}
