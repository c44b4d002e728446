/*
 * csvcell.c - CSV cells for spreadsheets (see csvcell.h).
 */
#include "common/csvcell.h"

#include <errno.h>
#include <iconv.h>
#include <stdlib.h>
#include <string.h>

#include "common/kn.h"
#include "common/utf8.h"

/* Length of the space at s that a spreadsheet skips before it looks for
 * a formula: ' ' or U+3000 (the full-width space), else 0. */
static size_t lead_space(const char *s)
{
    if (*s == ' ')
        return 1;
    return strncmp(s, "\xe3\x80\x80", 3) == 0 ? 3 : 0;
}

/* The characters that start a formula, in UTF-8: = + - @ TAB CR, their
 * full-width forms (Japanese Excel reads them as the ASCII ones), and
 * U+2212 MINUS SIGN (CP932 writes it as the full-width minus). */
static int formula_start(const char *s)
{
    static const char *const wide[] = {
        "\xef\xbc\x9d", /* U+FF1D ＝ */
        "\xef\xbc\x8b", /* U+FF0B ＋ */
        "\xef\xbc\x8d", /* U+FF0D － */
        "\xef\xbc\xa0", /* U+FF20 ＠ */
        "\xe2\x88\x92", /* U+2212 − */
    };
    if (*s != '\0' && strchr("=+-@\t\r", *s) != NULL)
        return 1;
    for (size_t i = 0; i < KN_ARRAY_SIZE(wide); i++)
        if (strncmp(s, wide[i], 3) == 0)
            return 1;
    return 0;
}

int kn_csv_needs_guard(const char *s)
{
    size_t n;
    while (*s == '\'')
        s++;
    while ((n = lead_space(s)) > 0)
        s += n;
    return formula_start(s);
}

void kn_csv_put_cell(FILE *f, const char *s, int last)
{
    size_t n = strlen(s);
    int guard = kn_csv_needs_guard(s);
    int q = guard || strpbrk(s, ",\"\r\n") != NULL ||
            (n > 0 && (s[0] == ' ' || s[n - 1] == ' '));
    if (q) {
        fputc('"', f);
        if (guard)
            fputc('\'', f);
        for (const char *p = s; *p; p++) {
            if (*p == '"')
                fputc('"', f);
            fputc(*p, f);
        }
        fputc('"', f);
    } else {
        fputs(s, f);
    }
    fputs(last ? "\r\n" : ",", f);
}

const char *kn_csv_unguard(const char *s)
{
    return s[0] == '\'' && kn_csv_needs_guard(s + 1) ? s + 1 : s;
}

char *kn_csv_cp932(const char *s, size_t n, size_t *outlen)
{
    iconv_t cd = iconv_open("CP932", "UTF-8");
    size_t cap = 2 * n + 1, left = n;
    char *out = kn_xmalloc(cap), *o = out, *in = (char *)s;
    size_t oleft = cap - 1;

    if (cd == (iconv_t)-1)
        KN_PANIC("iconv cannot convert UTF-8 to CP932 (glibc gconv "
                 "modules missing?)");
    while (left > 0) {
        size_t r = iconv(cd, &in, &left, &o, &oleft);
        if (r != (size_t)-1)
            break;
        if (errno == EILSEQ || errno == EINVAL) {
            /* not in CP932, or not UTF-8: one '?' for the character */
            size_t len = kn_utf8_char_len((const unsigned char *)in, left);
            if (len == 0)
                len = 1;
            in += len;
            left -= len;
            *o++ = '?';
            oleft--;
        } else { /* E2BIG: cannot happen, CP932 is at most 2 bytes a
                  * character and UTF-8 at least as long */
            KN_PANIC("CP932 output larger than twice the input");
        }
    }
    iconv_close(cd);
    *o = '\0';
    *outlen = (size_t)(o - out);
    return out;
}
