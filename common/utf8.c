/*
 * utf8.c - UTF-8 validity (Unicode 15, table 3-7), character boundaries
 * and UTF-16 lengths.  Moved here from adapters/mime.c and adapters/line.c
 * so that model/ (address checks, message text) can use them.
 */
#include "common/utf8.h"

size_t kn_utf8_char_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xBF;
    size_t len, i;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
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
