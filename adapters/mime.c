/*
 * mime.c - Internet messages for Japanese schools: RFC 5322 headers with
 * RFC 2047 encoded-words (UTF-8, B encoding), a UTF-8 text/plain body in
 * base64, deterministic Message-IDs and JST dates.  Addresses are checked
 * and quoted by model/address.c (Japanese carrier addresses such as
 * "taro..yamada.@docomo.ne.jp" included).
 *
 * This module owns no state: every function takes borrowed strings and
 * returns heap strings the caller frees.  It must never let CR, LF or NUL
 * from its input reach a header (mail header injection), never split a
 * UTF-8 character between two encoded-words, and never write a line of
 * more than 76 octets (CRLF not counted) with one exception: an address or
 * Message-ID cannot be folded, so one longer than a line can hold (about
 * 70 octets) makes its line longer.  RFC 5322 allows that (998 is the hard
 * limit) and RFC 2047's 76 only binds lines holding encoded-words, which
 * such a line never does.
 *
 * Folding model.  A header is "Name:" followed by tokens, each written as
 * one space and the token.  Before a token that does not fit, the line is
 * folded (CRLF, and the token's own leading space is the folding white
 * space).  A token is either literal text (an ASCII word, an address, a
 * Message-ID) or a run of text to encode, which becomes as many
 * "=?UTF-8?B?...?=" words as needed, each cut at a UTF-8 character
 * boundary and sized to the room left on the line.  Decoders drop the
 * white space between adjacent encoded-words, so spaces inside an encoded
 * run are encoded too; spaces between a literal word and an encoded-word
 * stay literal and survive decoding.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* gmtime_r, strncasecmp (the Makefile also sets it) */
#endif
#include "adapters/mime.h"

#include "common/buf.h"
#include "common/codec.h"
#include "common/kn.h"
#include "common/utf8.h"
#include "model/address.h"
#include "model/directory.h"
#include "model/message.h"

#include <openssl/evp.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Longest header line we write, CRLF not counted (RFC 2047 section 2). */
#define MIME_LINE_MAX 76
/* Longest encoded-word (RFC 2047 section 2). */
#define MIME_EW_MAX 75
/* "=?UTF-8?B?" + "?=" */
#define MIME_EW_OVERHEAD 12
/* Raw bytes per base64 body line: 57 bytes -> 76 characters. */
#define MIME_B64_LINE_RAW 57

/* ------------------------------------------------------------------------
 * Header safety (kn_header_safe: model/message.c)
 * ------------------------------------------------------------------------ */

/* A NUL-terminated field that may go into a header: no CR/LF, UTF-8. */
static int field_ok(const char *s)
{
    size_t n;
    if (s == NULL)
        return 0;
    n = strlen(s);
    return kn_header_safe(s, n) && kn_utf8_valid(s, n);
}

/* ------------------------------------------------------------------------
 * Base64
 * ------------------------------------------------------------------------ */

/* Base64 of at most 48 bytes into out (>= 65 bytes); returns its length. */
static size_t b64_small(const unsigned char *in, size_t n, char *out)
{
    return (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

char *kn_mime_base64_lines(const void *data, size_t len)
{
    const unsigned char *in = data;
    size_t lines = (len + MIME_B64_LINE_RAW - 1) / MIME_B64_LINE_RAW;
    char *out = kn_xmalloc(lines * 78 + 1);
    size_t pos = 0;

    for (size_t off = 0; off < len; off += MIME_B64_LINE_RAW) {
        size_t chunk =
            len - off < MIME_B64_LINE_RAW ? len - off : MIME_B64_LINE_RAW;
        /* EVP_EncodeBlock writes a NUL after the text; CRLF overwrites it. */
        pos += (size_t)EVP_EncodeBlock((unsigned char *)out + pos, in + off,
                                       (int)chunk);
        out[pos++] = '\r';
        out[pos++] = '\n';
    }
    out[pos] = '\0';
    return out;
}

/* ------------------------------------------------------------------------
 * Header folding and RFC 2047 encoding
 * ------------------------------------------------------------------------ */

/* Where we are in the header being written. */
struct folder {
    struct kn_buf *sb;
    size_t col;    /* octets on the current line so far */
    int first;     /* still on the "Name:" line */
    int has_token; /* the current line holds a token after the name */
};

static void fold_start(struct folder *f, struct kn_buf *sb, const char *name)
{
    f->sb = sb;
    kn_buf_add(sb, name);
    kn_buf_addc(sb, ':');
    f->col = strlen(name) + 1;
    f->first = 1;
    f->has_token = 0;
}

static void fold_newline(struct folder *f)
{
    kn_buf_add(f->sb, "\r\n");
    f->col = 0;
    f->first = 0;
    f->has_token = 0;
}

static void fold_end(struct folder *f)
{
    kn_buf_add(f->sb, "\r\n");
}

/*
 * Write a literal token (it must not be cut).  If it does not fit on the
 * current line, fold first; on the "Name:" line fold only when the token
 * then fits (otherwise folding gains nothing and leaves an empty line).
 */
static void fold_literal(struct folder *f, const char *tok, size_t n)
{
    if (f->col + 1 + n > MIME_LINE_MAX &&
        (f->has_token || 1 + n <= MIME_LINE_MAX))
        fold_newline(f);
    kn_buf_addc(f->sb, ' ');
    kn_buf_addn(f->sb, tok, n);
    f->col += 1 + n;
    f->has_token = 1;
}

/*
 * Bytes of s[0..n) that make whole characters and fit in max bytes.  An
 * invalid byte counts as a character of its own, so any input terminates.
 */
static size_t utf8_fit(const char *s, size_t n, size_t max)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t used = 0;

    while (used < n) {
        size_t l = kn_utf8_char_len(u + used, n - used);
        if (l == 0)
            l = 1;
        if (used + l > max)
            break;
        used += l;
    }
    return used;
}

/*
 * Write text[0..n) as B encoded-words.  Each word takes as much text as
 * fits both in 75 characters and in the room left on the line, cut at a
 * character boundary; when not even one character fits, fold first.
 */
static void fold_encoded(struct folder *f, const char *text, size_t n)
{
    size_t pos = 0;

    while (pos < n) {
        size_t room = f->col < MIME_LINE_MAX ? MIME_LINE_MAX - f->col : 0;
        size_t b64 = 0, raw, chunk, elen;
        char enc[72];

        if (room > 1 + MIME_EW_OVERHEAD)
            b64 = room - 1 - MIME_EW_OVERHEAD;
        if (b64 > MIME_EW_MAX - MIME_EW_OVERHEAD)
            b64 = MIME_EW_MAX - MIME_EW_OVERHEAD;
        raw = b64 / 4 * 3;
        chunk = utf8_fit(text + pos, n - pos, raw);
        if (chunk == 0) {
            /* A continuation line always has room for a whole character
             * (45 bytes), so this folds at most once in a row. */
            if (f->col == 0)
                KN_PANIC("no room for an encoded-word on an empty line");
            fold_newline(f);
            continue;
        }
        elen = b64_small((const unsigned char *)text + pos, chunk, enc);
        kn_buf_add(f->sb, " =?UTF-8?B?");
        kn_buf_addn(f->sb, enc, elen);
        kn_buf_add(f->sb, "?=");
        f->col += 1 + MIME_EW_OVERHEAD + elen;
        f->has_token = 1;
        pos += chunk;
    }
}

/* A word that may be written as itself: printable ASCII, not "=?". */
static int plain_word(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x21 || s[i] > 0x7e)
            return 0;
        if (s[i] == '=' && i + 1 < n && s[i + 1] == '?')
            return 0;
    }
    return 1;
}

/* 1 if s[0..n) is printable ASCII, spaces included. */
static int printable_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e)
            return 0;
    return 1;
}

struct word {
    size_t off;
    size_t len;
    int enc;
};

/*
 * Write an unstructured value (Subject and the like).  The value is cut
 * into words at each single space; then:
 *  1. a word is written as itself when it is non-empty printable ASCII
 *     without "=?" and fits on a line (on the "Name:" line for the first
 *     word);
 *  2. every other word is encoded, and so are the neighbours of an empty
 *     word (leading, trailing or repeated spaces), so that those spaces end
 *     up inside an encoded-word where no transport can eat them;
 *  3. consecutive encoded words form one run, encoded together with the
 *     spaces between them.
 * A pure ASCII value thus stays readable and is folded at its spaces.
 */
static void fold_unstructured(struct folder *f, const char *value)
{
    size_t n = strlen(value), nw = 1, i, j;
    struct word *w;

    for (i = 0; i < n; i++)
        if (value[i] == ' ')
            nw++;
    w = kn_xcalloc(nw, sizeof(*w));
    for (i = 0, j = 0; j < nw; j++) {
        size_t start = i;
        while (i < n && value[i] != ' ')
            i++;
        w[j].off = start;
        w[j].len = i - start;
        w[j].enc = w[j].len == 0 || !plain_word(value + start, w[j].len) ||
                   1 + w[j].len > MIME_LINE_MAX ||
                   (j == 0 && f->col + 1 + w[j].len > MIME_LINE_MAX);
        i++; /* past the space */
    }
    for (j = 0; j < nw; j++) {
        if (w[j].len != 0)
            continue;
        if (j > 0)
            w[j - 1].enc = 1;
        if (j + 1 < nw)
            w[j + 1].enc = 1;
    }
    for (j = 0; j < nw; j = i) {
        i = j + 1;
        if (!w[j].enc) {
            fold_literal(f, value + w[j].off, w[j].len);
            continue;
        }
        while (i < nw && w[i].enc)
            i++;
        fold_encoded(f, value + w[j].off,
                     w[i - 1].off + w[i - 1].len - w[j].off);
    }
    free(w);
}

char *kn_mime_header(const char *name, const char *value)
{
    struct kn_buf sb = KN_BUF_INIT;
    struct folder f;

    fold_start(&f, &sb, name);
    fold_unstructured(&f, value != NULL ? value : "");
    fold_end(&f);
    return kn_buf_take(&sb, NULL);
}

/* 1 if s is a phrase of atoms: atext words joined by single spaces. */
static int atom_phrase(const char *s)
{
    size_t word = 0;

    if (s[0] == '\0' || strstr(s, "=?") != NULL)
        return 0;
    for (const char *p = s; *p; p++) {
        if (*p == ' ') {
            if (word == 0)
                return 0;
            word = 0;
        } else {
            word++;
            if (!kn_addr_atext((unsigned char)*p) || word > 75)
                return 0;
        }
    }
    return word > 0;
}

/*
 * Write a display name (an RFC 5322 phrase):
 *  1. atoms only ("Taro Yamada"): as is, one token per word;
 *  2. other printable ASCII ("Yamada, Taro"): one quoted-string, if it fits
 *     on a line;
 *  3. anything else (Japanese, control characters, very long): encoded.
 */
static void fold_phrase(struct folder *f, const char *name)
{
    size_t n = strlen(name);
    struct kn_buf q = KN_BUF_INIT;

    if (atom_phrase(name)) {
        for (const char *p = name; *p;) {
            size_t l = strcspn(p, " ");
            fold_literal(f, p, l);
            p += l;
            if (*p == ' ')
                p++;
        }
        return;
    }
    if (printable_ascii(name, n) && strstr(name, "=?") == NULL) {
        kn_buf_addc(&q, '"');
        for (const char *p = name; *p; p++) {
            if (*p == '"' || *p == '\\')
                kn_buf_addc(&q, '\\');
            kn_buf_addc(&q, *p);
        }
        kn_buf_addc(&q, '"');
        if (1 + kn_buf_len(&q) <= MIME_LINE_MAX) {
            fold_literal(f, kn_buf_str(&q), kn_buf_len(&q));
            kn_buf_free(&q);
            return;
        }
        kn_buf_free(&q);
    }
    fold_encoded(f, name, n);
}

/* ------------------------------------------------------------------------
 * RFC 2047 decoding
 * ------------------------------------------------------------------------ */

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/*
 * Try to read one encoded-word "=?charset?X?text?=" at s[0..n).  Returns
 * 1 and appends the decoded bytes to out (setting *used), 0 if s does not
 * start with an encoded-word (the caller treats it as text), or KN_EINVAL
 * for a well-formed word that cannot be decoded:
 *  1. a charset other than UTF-8 or US-ASCII (any case; an RFC 2231
 *     language suffix "*ja" is ignored);
 *  2. bad base64 in a B word, or '=' not followed by two hex digits in a
 *     Q word.
 */
static int decode_word(const char *s, size_t n, size_t *used,
                       struct kn_buf *out)
{
    size_t i = 2, cs_end, text, end, cs_len;
    char enc;

    if (n < 8 || s[0] != '=' || s[1] != '?')
        return 0;
    while (i < n && s[i] != '?' && s[i] > 0x20 && s[i] < 0x7f)
        i++;
    if (i == 2 || i + 3 >= n || s[i] != '?' || s[i + 2] != '?')
        return 0;
    cs_end = i;
    enc = s[i + 1];
    if (enc != 'B' && enc != 'b' && enc != 'Q' && enc != 'q')
        return 0;
    text = i + 3;
    for (end = text; end < n && s[end] != '?'; end++)
        if (s[end] <= 0x20 || s[end] >= 0x7f)
            return 0;
    if (end + 1 >= n || s[end + 1] != '=')
        return 0;

    cs_len = strcspn(s + 2, "*?");
    if (cs_len > cs_end - 2)
        cs_len = cs_end - 2;
    if (!((cs_len == 5 && strncasecmp(s + 2, "UTF-8", 5) == 0) ||
          (cs_len == 4 && strncasecmp(s + 2, "UTF8", 4) == 0) ||
          (cs_len == 8 && strncasecmp(s + 2, "US-ASCII", 8) == 0)))
        return KN_EINVAL;

    if (enc == 'B' || enc == 'b') {
        unsigned char *bytes;
        long l = kn_b64_decode(s + text, end - text, &bytes);
        if (l < 0)
            return KN_EINVAL;
        kn_buf_addn(out, bytes, (size_t)l);
        free(bytes);
    } else {
        for (size_t k = text; k < end; k++) {
            if (s[k] == '_') {
                kn_buf_addc(out, ' ');
            } else if (s[k] == '=') {
                int hi, lo;
                if (k + 2 >= end)
                    return KN_EINVAL;
                hi = hex_value((unsigned char)s[k + 1]);
                lo = hex_value((unsigned char)s[k + 2]);
                if (hi < 0 || lo < 0)
                    return KN_EINVAL;
                kn_buf_addc(out, (char)(hi * 16 + lo));
                k += 2;
            } else {
                kn_buf_addc(out, s[k]);
            }
        }
    }
    *used = end + 2;
    return 1;
}

/*
 * Unfold a header value: CRLF (or a bare LF) followed by SP or HT is
 * removed, and one CRLF at the very end is ignored.  Any other CR or LF
 * makes the value invalid (returns NULL).
 */
static char *unfold(const char *v)
{
    size_t n = strlen(v);
    struct kn_buf b = KN_BUF_INIT;

    kn_buf_addn(&b, "", 0);
    for (size_t i = 0; i < n; i++) {
        if (v[i] == '\r' && v[i + 1] == '\n' &&
            (v[i + 2] == ' ' || v[i + 2] == '\t' || v[i + 2] == '\0')) {
            i++;
            continue;
        }
        if (v[i] == '\n' && (v[i + 1] == ' ' || v[i + 1] == '\t'))
            continue;
        if (v[i] == '\r' || v[i] == '\n') {
            kn_buf_free(&b);
            return NULL;
        }
        kn_buf_addc(&b, v[i]);
    }
    return kn_buf_take(&b, NULL);
}

/*
 * Decode a header value.  Encoded-words are recognised wherever one parses
 * completely (as most mail readers do), white space between two adjacent
 * encoded-words is dropped (RFC 2047 section 6.2), and all other text is
 * copied.  The result must be valid UTF-8 without NUL; otherwise, or if
 * decode_word() or unfold() fails, the answer is KN_EINVAL and *out NULL.
 */
int kn_mime_header_decode(const char *value, char **out)
{
    struct kn_buf b = KN_BUF_INIT;
    char *v = NULL;
    size_t n, i = 0, used;
    int last_ew = 0, rc;

    *out = NULL;
    if (value == NULL)
        return KN_EINVAL;
    v = unfold(value);
    if (v == NULL)
        return KN_EINVAL;
    n = strlen(v);
    kn_buf_addn(&b, "", 0);
    while (i < n) {
        if (v[i] == ' ' || v[i] == '\t') {
            size_t ws = i;
            while (i < n && (v[i] == ' ' || v[i] == '\t'))
                i++;
            if (last_ew) {
                /* Adjacent encoded-words: drop the space between them. */
                rc = decode_word(v + i, n - i, &used, &b);
                if (rc < 0)
                    goto fail;
                if (rc == 1) {
                    i += used;
                    continue;
                }
            }
            kn_buf_addn(&b, v + ws, i - ws);
            last_ew = 0;
            continue;
        }
        rc = decode_word(v + i, n - i, &used, &b);
        if (rc < 0)
            goto fail;
        if (rc == 1) {
            i += used;
            last_ew = 1;
            continue;
        }
        kn_buf_addc(&b, v[i]);
        i++;
        last_ew = 0;
    }
    if (!kn_utf8_valid(kn_buf_str(&b), kn_buf_len(&b)) ||
        memchr(kn_buf_str(&b), '\0', kn_buf_len(&b)) != NULL)
        goto fail;
    free(v);
    *out = kn_buf_take(&b, NULL);
    return 0;

fail:
    free(v);
    kn_buf_free(&b);
    return KN_EINVAL;
}

/* ------------------------------------------------------------------------
 * Message-ID, date, mailboxes
 * ------------------------------------------------------------------------ */

char *kn_mime_message_id(const char *bcast, const char *bindex,
                         const char *domain)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char hex[17];

    if (EVP_Digest(bcast, strlen(bcast), md, &mdlen, EVP_sha256(), NULL) != 1 ||
        mdlen < 8)
        KN_PANIC("EVP_Digest(SHA-256) failed");
    kn_hex_encode(md, 8, hex);
    return kn_xasprintf("<kn.%s.%s@%s>", hex, bindex, domain);
}

/*
 * Format ms as an RFC 5322 date in JST.  Japan has no daylight saving time,
 * so a fixed +09:00 offset is exact and no time zone database is involved;
 * names of days and months are fixed English, whatever the locale.
 */
void kn_mime_date(int64_t ms, char *buf, size_t len)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed",
                                    "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr",
                                       "May", "Jun", "Jul", "Aug",
                                       "Sep", "Oct", "Nov", "Dec"};
    int64_t secs = ms / 1000 - (ms % 1000 < 0 ? 1 : 0);
    time_t t = (time_t)(secs + 9 * 3600);
    struct tm tm;

    if (len == 0)
        return;
    if (gmtime_r(&t, &tm) == NULL) {
        buf[0] = '\0';
        return;
    }
    snprintf(buf, len, "%s, %02d %s %04d %02d:%02d:%02d +0900",
             days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
             tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static void trim(const char **s, const char **e)
{
    while (*s < *e && (**s == ' ' || **s == '\t'))
        (*s)++;
    while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
        (*e)--;
}

/*
 * Split a mailbox.  Quoted-strings are respected while looking for the
 * brackets, so '<' or '>' inside a quoted name or local part is text.
 *  1. No '<' or '>' outside quotes: the whole (trimmed) text is the
 *     address and the name is NULL.
 *  2. Otherwise exactly one "<...>" pair, last in the text: the address is
 *     inside, the name before it (NULL if empty; a fully quoted name is
 *     unquoted and unescaped).
 *  3. A lone bracket, a second pair, text after '>', an empty address or
 *     an unterminated quote: KN_EINVAL.
 */
int kn_mime_split_mailbox(const char *mailbox, char **name, char **addr)
{
    const char *s, *e, *lt = NULL, *gt = NULL, *ns, *ne, *as, *ae;
    int inq = 0;

    *name = NULL;
    *addr = NULL;
    if (mailbox == NULL)
        return KN_EINVAL;
    s = mailbox;
    e = mailbox + strlen(mailbox);
    trim(&s, &e);
    for (const char *p = s; p < e; p++) {
        if (inq && *p == '\\') {
            p++;
            if (p == e)
                return KN_EINVAL;
        } else if (*p == '"') {
            inq = !inq;
        } else if (!inq && *p == '<') {
            if (lt != NULL)
                return KN_EINVAL;
            lt = p;
        } else if (!inq && *p == '>') {
            if (lt == NULL || gt != NULL)
                return KN_EINVAL;
            gt = p;
        }
    }
    if (inq || (lt != NULL && gt == NULL))
        return KN_EINVAL;
    if (lt == NULL) {
        if (s == e)
            return KN_EINVAL;
        *addr = kn_xstrndup(s, (size_t)(e - s));
        return 0;
    }
    if (gt != e - 1)
        return KN_EINVAL;
    as = lt + 1;
    ae = gt;
    trim(&as, &ae);
    if (as == ae)
        return KN_EINVAL;
    ns = s;
    ne = lt;
    trim(&ns, &ne);
    if (ne - ns >= 2 && ns[0] == '"' && ne[-1] == '"') {
        struct kn_buf b = KN_BUF_INIT;
        kn_buf_addn(&b, "", 0);
        for (const char *p = ns + 1; p < ne - 1; p++) {
            if (*p == '\\' && p + 1 < ne - 1)
                p++;
            kn_buf_addc(&b, *p);
        }
        *name = kn_buf_take(&b, NULL);
    } else if (ne > ns) {
        *name = kn_xstrndup(ns, (size_t)(ne - ns));
    }
    *addr = kn_xstrndup(as, (size_t)(ae - as));
    return 0;
}

/* ------------------------------------------------------------------------
 * Whole messages
 * ------------------------------------------------------------------------ */

/*
 * Write "Hname: mailbox" for a From- or Reply-To-style mailbox.  Returns 0,
 * or KN_EINVAL if the mailbox does not split or its address fails
 * kn_addr_check().  The address is quoted with kn_addr_quote().
 */
static int add_mailbox(struct kn_buf *sb, const char *hname,
                       const char *mailbox)
{
    char *name = NULL, *addr = NULL, *q = NULL, *br = NULL;
    struct folder f;
    int rc;

    rc = kn_mime_split_mailbox(mailbox, &name, &addr);
    if (rc < 0)
        goto out;
    rc = kn_addr_check(addr, NULL);
    if (rc < 0)
        goto out;
    q = kn_addr_quote(addr);
    fold_start(&f, sb, hname);
    if (name != NULL && name[0] != '\0') {
        fold_phrase(&f, name);
        br = kn_xasprintf("<%s>", q);
        fold_literal(&f, br, strlen(br));
    } else {
        fold_literal(&f, q, strlen(q));
    }
    fold_end(&f);
out:
    free(br);
    free(q);
    free(addr);
    free(name);
    return rc;
}

/* 1 if id is "<left@right>" in printable ASCII without spaces. */
static int msgid_ok(const char *id)
{
    size_t n = strlen(id);

    if (n < 5 || id[0] != '<' || id[n - 1] != '>')
        return 0;
    for (size_t i = 1; i + 1 < n; i++)
        if (id[i] < 0x21 || id[i] > 0x7e || id[i] == '<' || id[i] == '>')
            return 0;
    return strchr(id, '@') != NULL && id[1] != '@' && id[n - 2] != '@';
}

/*
 * Normalise line ends to CRLF (CRLF stays, a lone LF or CR becomes CRLF).
 * Returns a heap buffer and its length in *n.
 */
static char *crlf_normalise(const char *s, size_t *n)
{
    size_t len = strlen(s);
    char *out = kn_xmalloc(2 * len + 1);
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\r') {
            out[o++] = '\r';
            out[o++] = '\n';
            if (s[i + 1] == '\n')
                i++;
        } else if (s[i] == '\n') {
            out[o++] = '\r';
            out[o++] = '\n';
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    *n = o;
    return out;
}

int kn_mime_unsub_url_ok(const char *url)
{
    return kn_unsub_url_ok(url);
}

/*
 * Build the message.  Every field is checked before anything is written:
 *  1. from, to and message_id are required; subject and body may be NULL
 *     (empty);
 *  2. from, reply_to, to, subject and message_id must be free of CR, LF
 *     (and, being C strings, NUL) and valid UTF-8; the body must be valid
 *     UTF-8 and may hold any line ends;
 *  3. the addresses in from, reply_to and to must pass kn_addr_check();
 *     message_id must be "<left@right>" in printable ASCII.
 * On failure returns KN_EINVAL with *out NULL and *len 0.
 */
int kn_mime_build(const struct kn_mime_msg *m, char **out, size_t *len)
{
    struct kn_buf sb = KN_BUF_INIT;
    struct folder f;
    const char *subject, *body;
    char date[64], *h = NULL, *to = NULL, *crlf = NULL, *b64 = NULL;
    size_t blen = 0;
    int rc = KN_EINVAL;

    *out = NULL;
    *len = 0;
    if (m == NULL)
        return KN_EINVAL;
    subject = m->subject != NULL ? m->subject : "";
    body = m->body != NULL ? m->body : "";
    if (!field_ok(m->from) || !field_ok(m->to) || !field_ok(subject) ||
        !field_ok(m->message_id) ||
        (m->reply_to != NULL && !field_ok(m->reply_to)) ||
        !kn_utf8_valid(body, strlen(body)) || !msgid_ok(m->message_id) ||
        (m->lang != NULL && !kn_lang_valid(m->lang)) ||
        kn_addr_check(m->to, NULL) < 0 ||
        (m->unsub != NULL && !kn_mime_unsub_url_ok(m->unsub)))
        goto fail;

    kn_mime_date(m->date_ms, date, sizeof(date));
    kn_buf_add(&sb, "Date: ");
    kn_buf_add(&sb, date);
    kn_buf_add(&sb, "\r\n");
    rc = add_mailbox(&sb, "From", m->from);
    if (rc < 0)
        goto fail;
    if (m->reply_to != NULL) {
        rc = add_mailbox(&sb, "Reply-To", m->reply_to);
        if (rc < 0)
            goto fail;
    }
    to = kn_addr_quote(m->to);
    fold_start(&f, &sb, "To");
    fold_literal(&f, to, strlen(to));
    fold_end(&f);
    h = kn_mime_header("Subject", subject);
    kn_buf_add(&sb, h);
    fold_start(&f, &sb, "Message-ID");
    fold_literal(&f, m->message_id, strlen(m->message_id));
    fold_end(&f);
    kn_buf_add(&sb, "MIME-Version: 1.0\r\n"
                    "Content-Type: text/plain; charset=UTF-8\r\n"
                    "Content-Transfer-Encoding: base64\r\n");
    if (m->lang != NULL)
        kn_buf_addf(&sb, "Content-Language: %s\r\n", m->lang);
    if (m->urgent)
        kn_buf_add(&sb, "Importance: high\r\n"
                        "X-Priority: 1\r\n");
    if (m->unsub != NULL) {
        /* RFC 8058 section 3: both, and the DKIM signer must cover both
         * (README "One-click unsubscribe"). */
        kn_buf_add(&sb, "List-Unsubscribe: <");
        kn_buf_add(&sb, m->unsub);
        kn_buf_add(&sb, ">\r\n" KN_MIME_UNSUB_POST_HEADER "\r\n");
    }
    kn_buf_add(&sb, "\r\n");
    crlf = crlf_normalise(body, &blen);
    b64 = kn_mime_base64_lines(crlf, blen);
    kn_buf_add(&sb, b64);

    *out = kn_buf_take(&sb, len);
    rc = 0;
fail:
    free(b64);
    free(crlf);
    free(h);
    free(to);
    kn_buf_free(&sb);
    return rc;
}
