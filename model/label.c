/*
 * label.c - group and category names: NFKC through libunistring
 * (u8_normalize), then the rules of label.h.
 *
 * libunistring rather than ICU: it is a small C library already in
 * Debian's base system (GnuTLS and wget use it), takes and returns UTF-8
 * directly, and NFKC is the one thing needed here; ICU's C API works in
 * UTF-16 and is a 30 MB dependency for it.
 */
#include "label.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unictype.h>
#include <uninorm.h>

#include "common/kn.h"
#include "common/utf8.h"
#include "model/gaiji.h"

/*
 * 1 if the code point may not be part of a name: controls, the line and
 * paragraph separators, and every format character (Unicode's Cf: the
 * bidi marks, embeddings and isolates, zero-width spaces and joiners,
 * U+2060-2064, U+FEFF, the soft hyphen...): invisible, they would let two
 * names that look the same be two groups, categories or templates.
 */
static int refused_cp(unsigned long cp, int strict)
{
    if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || /* C0, DEL, C1 */
        cp == 0x2028 || cp == 0x2029 || cp == 0x200e || cp == 0x200f ||
        (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) ||
        cp == 0x061c || cp == 0xfeff) /* bidi controls, BOM: always */
        return 1;
    /* The zero-width (non-)joiners shape emoji and scripts: kept. */
    return strict && cp != 0x200c && cp != 0x200d &&
           uc_is_general_category((ucs4_t)cp, UC_CATEGORY_Cf);
}

/*
 * Normalise, then check.  In order:
 *  1. the bytes must be UTF-8 (a CP932 file is converted before this);
 *  2. NFKC (u8_normalize allocates the result);
 *  3. ASCII spaces at both ends removed (U+3000 became U+0020 in 2);
 *  4. empty, too long, or a refused character (with strict, a private-use
 *     one too: model/gaiji.h): KN_EINVAL.
 */
static int label_norm(const char *s, char **out, char *err, size_t errlen,
                      char *ja, size_t jalen, int strict);

int kn_label_norm(const char *s, char **out, char *err, size_t errlen)
{
    return label_norm(s, out, err, errlen, NULL, 0, 1);
}

int kn_label_norm_ja(const char *s, char **out, char *err, size_t errlen,
                     char *err_ja, size_t errlen_ja)
{
    return label_norm(s, out, err, errlen, err_ja, errlen_ja, 1);
}

int kn_label_norm_existing(const char *s, char **out, char *err, size_t errlen)
{
    return label_norm(s, out, err, errlen, NULL, 0, 0);
}

static int label_norm(const char *s, char **out, char *err, size_t errlen,
                      char *ja, size_t jalen, int strict)
{
    size_t n = strlen(s), len = 0, chars = 0;
    uint8_t *nf;
    char *p, ja_none[4];
    *out = NULL;
    if (ja == NULL) { /* one path below, whether asked for or not */
        ja = ja_none;
        jalen = sizeof(ja_none);
    }
    if (!kn_utf8_valid(s, n)) {
        snprintf(err, errlen, "is not UTF-8 text");
        snprintf(ja, jalen, "読み取れない文字があります");
        return KN_EINVAL;
    }
    nf = u8_normalize(UNINORM_NFKC, (const uint8_t *)s, n, NULL, &len);
    if (nf == NULL) /* valid input: only out of memory fails */
        KN_PANIC("u8_normalize: out of memory");
    p = kn_xmalloc(len + 1);
    memcpy(p, nf, len);
    p[len] = '\0';
    free(nf);
    while (len > 0 && p[len - 1] == ' ')
        p[--len] = '\0';
    n = 0;
    while (p[n] == ' ')
        n++;
    memmove(p, p + n, len - n + 1);
    len -= n;
    if (len == 0) {
        snprintf(err, errlen, "is empty: give a name of 1-%d characters",
                 KN_LABEL_MAX_CHARS);
        snprintf(ja, jalen, "名前が空です。1〜%d 文字の名前にしてください",
                 KN_LABEL_MAX_CHARS);
        free(p);
        return KN_EINVAL;
    }
    for (size_t i = 0; i < len;) {
        unsigned long cp = 0;
        size_t k = kn_utf8_decode(p + i, len - i, &cp);
        if (k == 0)
            KN_PANIC("u8_normalize returned bytes that are not UTF-8");
        if (refused_cp(cp, strict)) {
            snprintf(err, errlen,
                     "holds a control character or an invisible one "
                     "(U+%04lX): remove it (line breaks and tabs included)",
                     cp);
            snprintf(ja, jalen,
                     "目に見えない文字（U+%04lX）が含まれています。改行や"
                     "タブも含めて取り除いてください",
                     cp);
            free(p);
            return KN_EINVAL;
        }
        if (strict && kn_gaiji_is(cp)) {
            snprintf(err, errlen,
                     "holds a user-defined character (gaiji: U+%04lX, "
                     "private use) at character %zu: use a standard kanji "
                     "or kana",
                     cp, chars + 1);
            snprintf(ja, jalen,
                     "%zu 文字目が外字（機種依存文字、U+%04lX）で、保護者の"
                     "スマートフォンでは正しく表示されません。通常の漢字や"
                     "かなにしてください",
                     chars + 1, cp);
            free(p);
            return KN_EINVAL;
        }
        if (cp == ';' || cp == ',') {
            snprintf(err, errlen,
                     "holds '%c', which separates names in lists: use "
                     "another character in the name itself",
                     (int)cp);
            snprintf(ja, jalen,
                     "「%c」（全角の「%s」も同じ）は名前の区切りに使う文字な"
                     "ので、名前の中には使えません。別の文字にしてください",
                     (int)cp, cp == ';' ? "；" : "，");
            free(p);
            return KN_EINVAL;
        }
        chars++;
        i += k;
    }
    if (chars > KN_LABEL_MAX_CHARS) {
        snprintf(err, errlen, "is %zu characters long: at most %d are allowed",
                 chars, KN_LABEL_MAX_CHARS);
        snprintf(ja, jalen, "%zu 文字あります。%d 文字までにしてください",
                 chars, KN_LABEL_MAX_CHARS);
        free(p);
        return KN_EINVAL;
    }
    *out = p;
    return 0;
}

int kn_label_is_norm(const char *s)
{
    char err[8], *n = NULL;
    int same = kn_label_norm(s, &n, err, sizeof(err)) == 0 && strcmp(n, s) == 0;
    free(n);
    return same;
}

enum kn_category_kind kn_category_builtin(const char *name)
{
    if (strcmp(name, "emergency") == 0)
        return KN_CAT_EMERGENCY;
    if (strcmp(name, "notice") == 0 || strcmp(name, "event") == 0 ||
        strcmp(name, "drill") == 0)
        return KN_CAT_BUILTIN;
    return KN_CAT_OWN;
}

int kn_category_emergency(const char *name, const char *flags)
{
    if (name != NULL && kn_category_builtin(name) == KN_CAT_EMERGENCY)
        return 1;
    return flags != NULL && strstr(flags, "emergency") != NULL;
}
