/*
 * gaiji.c - private-use characters (外字) found, shown and refused
 * (gaiji.h).  Moved here from queue/roster.c, which refused them in the
 * directory import's cells alone, so that every place that takes a name
 * or a message from outside refuses them the same way.
 */
#include "model/gaiji.h"

#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/kn.h"
#include "common/text.h"
#include "common/utf8.h"

#define EXCERPT_WHOLE 120 /* bytes: a text this long is quoted whole */
#define EXCERPT_SIDE  15  /* characters either side of the gaiji */

int kn_gaiji_is(unsigned long cp)
{
    return (cp >= 0xe000 && cp <= 0xf8ff) || (cp >= 0xf0000 && cp <= 0x10ffff);
}

/* The length of the character at s[0..n) (n >= 1) and its code point in
 * *cp: a byte that is not UTF-8 is one character of its own, code point
 * 0xFFFD (never a gaiji). */
static size_t next_char(const char *s, size_t n, unsigned long *cp)
{
    size_t k = kn_utf8_decode(s, n, cp);
    if (k == 0) {
        *cp = 0xfffd;
        k = 1;
    }
    return k;
}

unsigned long kn_gaiji_find(const char *s, size_t *at)
{
    size_t n = strlen(s), i = 0, place = 0;
    unsigned long cp = 0;
    *at = 0;
    while (i < n) {
        size_t k = next_char(s + i, n - i, &cp);
        place++;
        if (kn_gaiji_is(cp)) {
            *at = place;
            return cp;
        }
        i += k;
    }
    return 0;
}

char *kn_gaiji_excerpt(const char *s)
{
    struct kn_buf b = KN_BUF_INIT;
    size_t n = strlen(s), i = 0, place = 0, first = 0, from = 1, to, len;
    unsigned long cp = 0;
    char *t, *out;
    (void)kn_gaiji_find(s, &first);
    if (n > EXCERPT_WHOLE && first > 0) {
        from = first > EXCERPT_SIDE ? first - EXCERPT_SIDE : 1;
        to = first + EXCERPT_SIDE;
    } else {
        to = n; /* every character: there are at most n */
    }
    if (from > 1)
        kn_buf_add(&b, "…");
    while (i < n) {
        size_t k = next_char(s + i, n - i, &cp);
        place++;
        if (place > to)
            break;
        if (place >= from) {
            if (kn_gaiji_is(cp))
                kn_buf_addn(&b, "\xe3\x80\x93", 3); /* U+3013 〓 */
            else
                kn_buf_addn(&b, s + i, k);
        }
        i += k;
    }
    if (i < n)
        kn_buf_add(&b, "…");
    t = kn_buf_take(&b, &len);
    out = kn_text_safe(t);
    free(t);
    return out;
}

int kn_gaiji_check(const char *s, enum kn_gaiji_kind kind, const char *field_en,
                   const char *field_ja, char **en, char **ja, size_t *at,
                   char **excerpt)
{
    size_t place;
    unsigned long cp = kn_gaiji_find(s, &place);
    char *q = NULL, *en_q, *ja_q;
    const char *fix_en, *fix_ja;
    *en = NULL;
    *ja = NULL;
    if (at != NULL)
        *at = place;
    if (excerpt != NULL)
        *excerpt = NULL;
    if (cp == 0)
        return 0;
    if (kind != KN_GAIJI_SECRET)
        q = kn_gaiji_excerpt(s);
    en_q = q != NULL ? kn_xasprintf(" (\"%s\")", q) : kn_xstrdup("");
    ja_q = q != NULL ? kn_xasprintf("「%s」の〓の所、", q) : kn_xstrdup("");
    switch (kind) {
    case KN_GAIJI_NAME:
        fix_en = "replace it with a standard kanji or kana";
        fix_ja = "通常の漢字やかなに置き換えてください（「髙」「﨑」などは"
                 "外字ではないので、そのまま使えます）。";
        break;
    case KN_GAIJI_TEXT:
        fix_en = "replace it with a standard character or remove it (a "
                 "symbol or icon pasted from a web page or another program "
                 "can be one)";
        fix_ja = "通常の文字に置き換えるか、消してください（Web ページや"
                 "ほかのソフトから貼り付けた記号やアイコンが外字のことが"
                 "あります）。";
        break;
    default:
        fix_en = "type it again";
        fix_ja = "半角で入力し直してください。";
        break;
    }
    *en = kn_xasprintf("%s: contains a user-defined character (gaiji: "
                       "U+%04lX, private use) at character %zu%s: it shows "
                       "as a box or another character on guardians' phones; "
                       "%s",
                       field_en, cp, place, en_q, fix_en);
    *ja = kn_xasprintf("%sに外字（機種依存文字）が含まれています（%s%zu 文字"
                       "目）。外字は保護者のスマートフォンでは正しく表示"
                       "されません。%s",
                       field_ja, ja_q, place, fix_ja);
    free(en_q);
    free(ja_q);
    if (excerpt != NULL)
        *excerpt = q;
    else
        free(q);
    return KN_EINVAL;
}
