/*
 * utf8.c - UTF-8 validity (Unicode 15, table 3-7), character boundaries
 * and UTF-16 lengths.  Moved here from adapters/mime.c and adapters/line.c
 * so that model/ (address checks, message text) can use them; the one
 * decoder of the program (common/text.c used to have its own).
 */
#include "common/utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <unigbrk.h>

#include "common/kn.h"

size_t kn_utf8_decode(const char *s, size_t n, unsigned long *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    unsigned lo = 0x80, hi = 0xbf;
    size_t l;
    unsigned long v;

    if (n == 0)
        return 0;
    if (u[0] < 0x80) {
        *cp = u[0];
        return 1;
    }
    if (u[0] >= 0xc2 && u[0] <= 0xdf) {
        l = 2;
        v = u[0] & 0x1f;
    } else if (u[0] >= 0xe0 && u[0] <= 0xef) {
        l = 3;
        v = u[0] & 0x0f;
    } else if (u[0] >= 0xf0 && u[0] <= 0xf4) {
        l = 4;
        v = u[0] & 0x07;
    } else {
        return 0;
    }
    if (u[0] == 0xe0)
        lo = 0xa0; /* overlong */
    else if (u[0] == 0xed)
        hi = 0x9f; /* surrogates */
    else if (u[0] == 0xf0)
        lo = 0x90; /* overlong */
    else if (u[0] == 0xf4)
        hi = 0x8f; /* above U+10FFFF */
    if (n < l || u[1] < lo || u[1] > hi)
        return 0;
    for (size_t k = 1; k < l; k++) {
        if (u[k] < 0x80 || u[k] > 0xbf)
            return 0;
        v = v << 6 | (u[k] & 0x3f);
    }
    *cp = v;
    return l;
}

size_t kn_utf8_char_len(const unsigned char *s, size_t n)
{
    unsigned long cp;
    return kn_utf8_decode((const char *)s, n, &cp);
}

int kn_utf8_valid(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;

    while (i < n) {
        size_t l = kn_utf8_char_len(u + i, n - i);
        if (l == 0)
            return 0;
        i += l;
    }
    return 1;
}

size_t kn_utf8_floor(const char *s, size_t n)
{
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

/*
 * Where grapheme clusters break, from libunistring (Debian's, as
 * model/label.c's categories): the breaks of s[0..m), m the end of the
 * character at n, decide whether n itself is one; a break before n is
 * looked for from n down.
 */
size_t kn_utf8_grapheme_floor(const char *s, size_t len, size_t n)
{
    size_t m, k;
    char *br;

    if (n >= len)
        return len;
    m = n + 4 < len ? n + 4 : len;
    br = kn_xmalloc(m);
    u8_grapheme_breaks((const uint8_t *)s, m, br);
    for (k = n; k > 0 && !br[k]; k--)
        ;
    free(br);
    return k > 0 ? k : kn_utf8_floor(s, n);
}

/* Length of the UTF-8 sequence at s as LINE counts it (1 for a stray
 * byte), its UTF-16 units in *units. */
static size_t utf8_char(const unsigned char *s, size_t n, size_t *units)
{
    size_t len = 1;
    *units = 1;
    if (s[0] >= 0xF0 && s[0] <= 0xF4)
        len = 4, *units = 2;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF)
        len = 3;
    else if (s[0] >= 0xC2 && s[0] <= 0xDF)
        len = 2;
    if (len > n)
        return 1;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *units = 1;
            return 1;
        }
    }
    return len;
}

size_t kn_utf16_len(const char *s, size_t n)
{
    size_t units = 0, u;
    for (size_t i = 0; i < n;) {
        i += utf8_char((const unsigned char *)s + i, n - i, &u);
        units += u;
    }
    return units;
}

size_t kn_utf16_prefix(const char *s, size_t n, size_t limit)
{
    size_t units = 0, u, i = 0;
    while (i < n) {
        size_t len = utf8_char((const unsigned char *)s + i, n - i, &u);
        if (units + u > limit)
            break;
        units += u;
        i += len;
    }
    return i;
}

long kn_utf8_plain_chars(const char *s, size_t n)
{
    long chars = 0;
    for (size_t i = 0; i < n;) {
        unsigned long cp;
        size_t len = kn_utf8_decode(s + i, n - i, &cp);
        if (len == 0 || cp < 0x20 || (cp >= 0x7F && cp <= 0x9F))
            return -1;
        i += len;
        chars++;
    }
    return chars;
}
