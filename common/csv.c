/*
 * csv.c - the encoding and the records of a CSV file from Excel (csv.h).
 *
 * Decoding works on the whole file at once: school rosters are small (a
 * few thousand rows), and CP932 must be converted before the quotes and
 * commas are looked at anyway (its second bytes never collide with '"',
 * ',', CR or LF, but they do with '\', which CSV does not care about).
 * The reader then walks the UTF-8 text once, copying each field.  It never
 * fails on content: what is wrong is reported per record, so that one
 * broken row does not hide the ones after it.
 */
#include <errno.h>
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/csv.h"
#include "common/buf.h"
#include "common/kn.h"

const char *kn_csv_enc_name(enum kn_csv_enc e)
{
    switch (e) {
    case KN_CSV_UTF8:
        return "UTF-8";
    case KN_CSV_UTF8_BOM:
        return "UTF-8 with BOM";
    case KN_CSV_CP932:
        return "CP932";
    }
    return "?";
}

/*
 * Length of the longest valid UTF-8 prefix of s[0..n): n when all of it is
 * valid.  Overlong forms, surrogates and code points above U+10FFFF are
 * invalid, as are sequences cut short by the end.
 */
static size_t utf8_prefix(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t l;
        unsigned lo = 0x80, hi = 0xbf;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            l = 2;
        else if (c >= 0xe0 && c <= 0xef)
            l = 3;
        else if (c >= 0xf0 && c <= 0xf4)
            l = 4;
        else
            return i;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates */
        else if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* > U+10FFFF */
        if (i + l > n || s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (size_t k = 2; k < l; k++) {
            if (s[i + k] < 0x80 || s[i + k] > 0xbf)
                return i;
        }
        i += l;
    }
    return n;
}

/* Length of the line break at buf[off] (CRLF 2, LF or CR 1), 0 if none. */
static size_t eol_len_raw(const char *buf, size_t len, size_t off)
{
    if (off >= len)
        return 0;
    if (buf[off] == '\n')
        return 1;
    if (buf[off] == '\r')
        return off + 1 < len && buf[off + 1] == '\n' ? 2 : 1;
    return 0;
}

/* The physical line (1-based) of byte offset off: CRLF, LF, CR end one. */
static long line_of(const char *s, size_t len, size_t off)
{
    long line = 1;
    for (size_t i = 0; i < off; i++) {
        int cr_alone = s[i] == '\r' && (i + 1 >= len || s[i + 1] != '\n');
        if (s[i] == '\n' || cr_alone)
            line++;
    }
    return line;
}

/* "0x81 0x20" for up to two bytes at s[off..). */
static void show_bytes(const char *s, size_t len, size_t off, char *buf,
                       size_t n)
{
    if (off + 1 < len)
        snprintf(buf, n, "0x%02X 0x%02X", (unsigned char)s[off],
                 (unsigned char)s[off + 1]);
    else
        snprintf(buf, n, "0x%02X", (unsigned char)s[off]);
}

/*
 * CP932 to UTF-8 with iconv.  Returns 0, or KN_EUTF8 with *bad set to the
 * offset of the first byte CP932 does not define (or of a character cut
 * short by the end of the file).
 */
static int from_cp932(const char *buf, size_t len, char **out, size_t *outlen,
                      size_t *bad)
{
    iconv_t cd = iconv_open("UTF-8", "CP932");
    size_t cap = len * 3 / 2 + 16, used = 0;
    char *dst, *in = (char *)buf;
    size_t inleft = len;
    int rc = 0;

    if (cd == (iconv_t)-1)
        KN_PANIC("iconv cannot convert CP932 to UTF-8 (glibc gconv "
                 "modules missing?)");
    dst = kn_xmalloc(cap + 1);
    while (inleft > 0) {
        char *o = dst + used;
        size_t oleft = cap - used;
        size_t r = iconv(cd, &in, &inleft, &o, &oleft);
        used = (size_t)(o - dst);
        if (r != (size_t)-1)
            break;
        if (errno == E2BIG) {
            cap *= 2;
            dst = kn_xrealloc(dst, cap + 1);
            continue;
        }
        /* EILSEQ (undefined sequence) or EINVAL (cut short at the end). */
        *bad = (size_t)(in - buf);
        rc = KN_EUTF8;
        break;
    }
    iconv_close(cd);
    if (rc < 0) {
        free(dst);
        return rc;
    }
    dst[used] = '\0';
    *out = dst;
    *outlen = used;
    return 0;
}

/*
 * A file whose lines are in two encodings: some lines valid UTF-8 with
 * Japanese in them (3- or 4-byte characters: a line of only 2-byte forms
 * can be CP932 half-width kana by chance, "ﾃｽ" is C3 BD), others not UTF-8
 * at all.  Read whole as CP932, the UTF-8 lines would become mojibake
 * without a word (山田 stored as 螻ｱ逕ｰ).  Returns 1 and names in *bad the
 * first line of the smaller kind (the lines someone pasted in) and in
 * *other the first line of the other kind; 0 if the file is not mixed.
 */
static int mixed_lines(const char *buf, size_t len, long *bad, int *bad_utf8,
                       long *other)
{
    const unsigned char *u = (const unsigned char *)buf;
    size_t i = 0;
    long line = 1, first_u = 0, first_x = 0, nu = 0, nx = 0;

    while (i < len) {
        size_t b = i, e = i, l;
        int wide = 0, ascii = 1;
        while (e < len && buf[e] != '\n' && buf[e] != '\r')
            e++;
        for (size_t k = b; k < e; k++) {
            if (u[k] >= 0x80)
                ascii = 0;
            if (u[k] >= 0xe0)
                wide = 1;
        }
        if (!ascii) {
            if (utf8_prefix(u + b, e - b) == e - b) {
                if (wide && nu++ == 0)
                    first_u = line;
            } else if (nx++ == 0) {
                first_x = line;
            }
        }
        l = eol_len_raw(buf, len, e);
        i = e + l;
        if (l > 0)
            line++;
    }
    if (nu == 0 || nx == 0)
        return 0;
    *bad_utf8 = nu < nx;
    *bad = nu < nx ? first_u : first_x;
    *other = nu < nx ? first_x : first_u;
    return 1;
}

/*
 * Decide the encoding (csv.h lists the rules in order).  A file that is
 * neither valid UTF-8 nor valid CP932 is reported at the first byte that
 * breaks UTF-8, since that is the more likely intent once the BOM or
 * plain ASCII is seen, unless CP932 got further.
 */
int kn_csv_decode(const char *buf, size_t len, char **out, size_t *outlen,
                  enum kn_csv_enc *enc, char *err, size_t errlen, char *err_ja,
                  size_t errlen_ja)
{
    const unsigned char *u = (const unsigned char *)buf;
    size_t ok, bad = 0;
    char b[32], ja_dummy[4];

    *out = NULL;
    *outlen = 0;
    if (err_ja == NULL) { /* one path below, whether asked for or not */
        err_ja = ja_dummy;
        errlen_ja = sizeof(ja_dummy);
    }
    if (len >= 2 &&
        ((u[0] == 0xff && u[1] == 0xfe) || (u[0] == 0xfe && u[1] == 0xff))) {
        snprintf(err, errlen,
                 "line 1: the file is UTF-16 (Excel's \"Unicode text\"); "
                 "save it as \"CSV UTF-8\" or \"CSV\" instead");
        snprintf(err_ja, errlen_ja,
                 "ファイルが UTF-16（Excel の「Unicode テキスト」）で保存"
                 "されています。Excel で「CSV UTF-8」か「CSV」を選んで保存し"
                 "直してください。");
        return KN_EUTF8;
    }
    if (len >= 3 && u[0] == 0xef && u[1] == 0xbb && u[2] == 0xbf) {
        ok = utf8_prefix(u + 3, len - 3);
        if (ok != len - 3) {
            show_bytes(buf, len, ok + 3, b, sizeof(b));
            snprintf(err, errlen,
                     "line %ld: the file starts with a UTF-8 BOM but has "
                     "bytes that are not UTF-8 (%s): save it again as "
                     "\"CSV UTF-8\"",
                     line_of(buf, len, ok + 3), b);
            snprintf(err_ja, errlen_ja,
                     "%ld行目：UTF-8 のファイルのはずですが、読み取れない"
                     "文字があります（%s）。Excel で「CSV UTF-8」を選んで"
                     "保存し直してください。",
                     line_of(buf, len, ok + 3), b);
            return KN_EUTF8;
        }
        *out = kn_xstrndup(buf + 3, len - 3);
        *outlen = len - 3;
        *enc = KN_CSV_UTF8_BOM;
        return 0;
    }
    ok = utf8_prefix(u, len);
    if (ok == len) {
        *out = kn_xmalloc(len + 1);
        memcpy(*out, buf, len);
        (*out)[len] = '\0';
        *outlen = len;
        *enc = KN_CSV_UTF8;
        return 0;
    }
    {
        long bl, ol;
        int bad_is_utf8;
        if (mixed_lines(buf, len, &bl, &bad_is_utf8, &ol)) {
            snprintf(err, errlen,
                     "line %ld: the file mixes two encodings: this line is "
                     "%s but line %ld is %s (lines pasted from another "
                     "file?); save the whole file as one encoding, from "
                     "Excel as \"CSV UTF-8\" or \"CSV\"",
                     bl, bad_is_utf8 ? "UTF-8" : "not UTF-8 (CP932?)", ol,
                     bad_is_utf8 ? "not UTF-8 (CP932?)" : "UTF-8");
            snprintf(err_ja, errlen_ja,
                     "%ld行目：ファイルの中で文字コードが混ざっています"
                     "（この行は %s、%ld行目は %s）。別のファイルから行を"
                     "貼り付けませんでしたか。Excel でファイル全体を「CSV "
                     "UTF-8」か「CSV」で保存し直してください。",
                     bl, bad_is_utf8 ? "UTF-8" : "Shift_JIS", ol,
                     bad_is_utf8 ? "Shift_JIS" : "UTF-8");
            return KN_EUTF8;
        }
    }
    if (from_cp932(buf, len, out, outlen, &bad) == 0) {
        *enc = KN_CSV_CP932;
        return 0;
    }
    if (bad < ok)
        bad = ok;
    show_bytes(buf, len, bad, b, sizeof(b));
    snprintf(err, errlen,
             "line %ld: the file is neither UTF-8 nor CP932 (Shift_JIS): "
             "bytes %s are valid in neither; save it from Excel as \"CSV "
             "UTF-8\" or \"CSV\"",
             line_of(buf, len, bad), b);
    snprintf(err_ja, errlen_ja,
             "%ld行目：文字コードが UTF-8 でも Shift_JIS でもないため読み"
             "取れません（%s）。Excel で「CSV UTF-8」か「CSV」を選んで保存"
             "し直してください。",
             line_of(buf, len, bad), b);
    return KN_EUTF8;
}

/* ---- records ---- */

void kn_csv_init(struct kn_csv *c, const char *text, size_t len)
{
    c->_p = text;
    c->_end = text + len;
    c->_line = 1;
}

void kn_csv_row_free(struct kn_csv_row *row)
{
    for (size_t i = 0; i < row->n; i++)
        free(row->f[i]);
    free(row->f);
    free(row->len);
    memset(row, 0, sizeof(*row));
}

static void row_push(struct kn_csv_row *row, struct kn_buf *b)
{
    if (row->n == row->_cap) {
        row->_cap = row->_cap ? row->_cap * 2 : 16;
        row->f = kn_xrealloc(row->f, row->_cap * sizeof(*row->f));
        row->len = kn_xrealloc(row->len, row->_cap * sizeof(*row->len));
    }
    row->f[row->n] = kn_buf_take(b, &row->len[row->n]);
    row->n++;
}

/* Length of the line break at p (CRLF 2, LF or CR 1), 0 if none. */
static size_t eol_len(const char *p, const char *end)
{
    if (p >= end)
        return 0;
    if (*p == '\n')
        return 1;
    if (*p == '\r')
        return p + 1 < end && p[1] == '\n' ? 2 : 1;
    return 0;
}

static void set_err(struct kn_csv_row *row, const char *why, const char *why_ja,
                    long line)
{
    if (row->err == NULL) {
        row->err = why;
        row->err_ja = why_ja;
        row->err_line = line;
    }
}

/*
 * Read one record:
 *  1. empty lines before it are skipped (they are not records);
 *  2. a field that starts with '"' is quoted: up to the next lone '"',
 *     with "" standing for one '"', and commas and line breaks (counted)
 *     taken literally; after the closing quote must come ',', a line
 *     break or the end, else "text after a closing quote" (the text is
 *     kept, as Excel does, and reading goes on);
 *  3. a quote inside an unquoted field is an ordinary character (Excel
 *     writes ab"c for that cell when it is not first);
 *  4. the end of the text inside a quoted field: "quote never closed",
 *     reported at the line the field opened on.
 */
int kn_csv_next(struct kn_csv *c, struct kn_csv_row *row)
{
    struct kn_buf b = KN_BUF_INIT;
    const char *p = c->_p, *end = c->_end;
    size_t el;

    kn_csv_row_free(row);
    while ((el = eol_len(p, end)) > 0) {
        p += el;
        c->_line++;
    }
    if (p >= end) {
        c->_p = p;
        return 0;
    }
    row->line = c->_line;
    for (;;) {
        /* one field */
        if (p < end && *p == '"') {
            long open_line = c->_line;
            p++;
            for (;;) {
                const char *q = p;
                while (q < end && *q != '"' && *q != '\r' && *q != '\n')
                    q++;
                kn_buf_addn(&b, p, (size_t)(q - p));
                p = q;
                if (p >= end) {
                    set_err(row,
                            "a quoted field is never closed (a '\"' "
                            "is missing)",
                            "「\"」で始まるセルが閉じられていません（「\"」"
                            "が 1 つ足りません）。ここから後ろが 1 つのセル"
                            "として読まれています。「\"」を足すか、Excel で"
                            "開いて保存し直してください。",
                            open_line);
                    row->unclosed = 1;
                    break;
                }
                if ((el = eol_len(p, end)) > 0) {
                    kn_buf_addn(&b, p, el);
                    p += el;
                    c->_line++;
                    continue;
                }
                /* a quote: doubled, or the end of the field */
                if (p + 1 < end && p[1] == '"') {
                    kn_buf_addn(&b, "\"", 1);
                    p += 2;
                    continue;
                }
                p++;
                break;
            }
            if (p < end && *p != ',' && eol_len(p, end) == 0) {
                const char *q = p;
                set_err(row,
                        "text after a closing quote (write \"\" for "
                        "a quote inside a quoted field)",
                        "「\"」で囲んだセルの後ろに文字があります。セルの"
                        "中で「\"」を使うときは「\"\"」と 2 つ重ねて"
                        "ください。",
                        c->_line);
                while (q < end && *q != ',' && *q != '\r' && *q != '\n')
                    q++;
                kn_buf_addn(&b, p, (size_t)(q - p));
                p = q;
            }
        } else {
            const char *q = p;
            while (q < end && *q != ',' && *q != '\r' && *q != '\n')
                q++;
            kn_buf_addn(&b, p, (size_t)(q - p));
            p = q;
        }
        row_push(row, &b);
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        break;
    }
    row->end_line = c->_line;
    if ((el = eol_len(p, end)) > 0) {
        p += el;
        c->_line++;
    }
    c->_p = p;
    return 1;
}
