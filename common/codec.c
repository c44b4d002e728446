/*
 * codec.c - hex, base64 and base64url (codec.h).  Written out rather than
 * taken from OpenSSL's EVP_EncodeBlock/EVP_DecodeBlock, which know neither
 * base64url nor strictness, and pad decoded output with zero bytes.
 */
#include "codec.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/kn.h"

/* ---- hex ---------------------------------------------------------------- */

void kn_hex_encode(const void *data, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *in = data;
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

int kn_hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int kn_hex_decode(const char *s, size_t n, unsigned char *out, size_t len)
{
    if (n != 2 * len)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int hi = kn_hex_value((unsigned char)s[2 * i]);
        int lo = kn_hex_value((unsigned char)s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

/* ---- base64 ------------------------------------------------------------- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Base64 of data with alphabet; '=' padding when pad. */
static char *b64_encode(const void *data, size_t len, const char *alphabet,
                        int pad)
{
    const unsigned char *in = data;
    size_t i, o = 0;
    char *out;
    if (len > (SIZE_MAX - 4) / 4 * 3)
        KN_PANIC("base64: %zu bytes is too much", len);
    out = kn_xmalloc((len + 2) / 3 * 4 + 1);
    for (i = 0; i + 3 <= len; i += 3) {
        uint32_t v =
            (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = alphabet[v >> 6 & 63];
        out[o++] = alphabet[v & 63];
    }
    if (len - i > 0) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (len - i == 2)
            v |= (uint32_t)in[i + 1] << 8;
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        if (len - i == 2)
            out[o++] = alphabet[v >> 6 & 63];
        else if (pad)
            out[o++] = '=';
        if (pad)
            out[o++] = '=';
    }
    out[o] = '\0';
    return out;
}

char *kn_b64_encode(const void *data, size_t len)
{
    return b64_encode(data, len, b64_alphabet, 1);
}

/*
 * The value of each octet in the two alphabets, -1 for any other: a table
 * look-up, not a chain of range tests (kairand opens every LINE id of a
 * 500-id job through kn_b64url_decode; the tests were 5 % of its CPU).
 * Indexes 62 and 63 differ: '+' '/' for base64, '-' '_' for base64url.
 */
#define B64_NONE -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1
#define B64_LETTERS(base)                                                      \
    (base), (base) + 1, (base) + 2, (base) + 3, (base) + 4, (base) + 5,        \
        (base) + 6, (base) + 7, (base) + 8, (base) + 9, (base) + 10,           \
        (base) + 11, (base) + 12, (base) + 13, (base) + 14
/* 62 and 63 are not in it: b64_digit tests them first. */
static const signed char b64_tab[256] = {
    /* 0x00-0x2f */
    B64_NONE, B64_NONE, B64_NONE,
    /* '0'-'9' */
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
    /* '@', 'A'-'O' */
    -1, B64_LETTERS(0),
    /* 'P'-'Z' */
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, -1,
    /* '`', 'a'-'o' */
    -1, B64_LETTERS(26),
    /* 'p'-'z' */
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1, B64_NONE,
    B64_NONE, B64_NONE, B64_NONE, B64_NONE, B64_NONE, B64_NONE, B64_NONE};

/* The value of c in base64 whose last two digits are c62 and c63, or -1. */
static int b64_digit(unsigned char c, char c62, char c63)
{
    if (c == (unsigned char)c62)
        return 62;
    if (c == (unsigned char)c63)
        return 63;
    return b64_tab[c];
}

static int b64_value(unsigned char c)
{
    return b64_digit(c, '+', '/');
}

long kn_b64_decode(const char *s, size_t n, unsigned char **out)
{
    unsigned char *buf = kn_xmalloc(n / 4 * 3 + 4);
    size_t olen = 0, q = 0, pads = 0;
    unsigned long acc = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int v;
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            continue;
        if (c == '=') {
            pads++;
            continue;
        }
        v = b64_value(c);
        if (v < 0 || pads > 0)
            goto fail;
        acc = (acc << 6) | (unsigned long)v;
        q++;
        if (q == 4) {
            buf[olen++] = (unsigned char)(acc >> 16);
            buf[olen++] = (unsigned char)(acc >> 8);
            buf[olen++] = (unsigned char)acc;
            acc = 0;
            q = 0;
        }
    }
    if (q == 1 || (pads > 0 && (q < 2 || q + pads != 4)))
        goto fail;
    if (q == 2) {
        buf[olen++] = (unsigned char)(acc >> 4);
    } else if (q == 3) {
        buf[olen++] = (unsigned char)(acc >> 10);
        buf[olen++] = (unsigned char)(acc >> 2);
    }
    buf[olen] = '\0';
    *out = buf;
    return (long)olen;

fail:
    free(buf);
    *out = NULL;
    return -1;
}

/* ---- base64url ---------------------------------------------------------- */

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64url_value(unsigned char c)
{
    return b64_digit(c, '-', '_');
}

char *kn_b64url_encode(const void *data, size_t len)
{
    return b64_encode(data, len, b64url_alphabet, 0);
}

long kn_b64url_decode(const char *s, unsigned char **out)
{
    size_t n, rem, outlen, i, o = 0;
    unsigned char *buf;

    *out = NULL;
    if (s == NULL)
        return -1;
    n = strlen(s);
    rem = n % 4;
    if (rem == 1)
        return -1;
    outlen = n / 4 * 3 + (rem == 0 ? 0 : rem - 1);
    if (outlen > LONG_MAX)
        return -1;
    buf = kn_xmalloc(outlen);
    for (i = 0; i + 4 <= n; i += 4) {
        int a = b64url_value((unsigned char)s[i]);
        int b = b64url_value((unsigned char)s[i + 1]);
        int c = b64url_value((unsigned char)s[i + 2]);
        int d = b64url_value((unsigned char)s[i + 3]);
        uint32_t v;
        if (a < 0 || b < 0 || c < 0 || d < 0)
            goto fail;
        v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 |
            (uint32_t)d;
        buf[o++] = (unsigned char)(v >> 16);
        buf[o++] = (unsigned char)(v >> 8);
        buf[o++] = (unsigned char)v;
    }
    if (rem >= 2) {
        int a = b64url_value((unsigned char)s[i]);
        int b = b64url_value((unsigned char)s[i + 1]);
        int c = rem == 3 ? b64url_value((unsigned char)s[i + 2]) : 0;
        uint32_t v;
        if (a < 0 || b < 0 || c < 0)
            goto fail;
        v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6;
        if (rem == 2 && (v & 0xffff) != 0)
            goto fail;
        if (rem == 3 && (v & 0xff) != 0)
            goto fail;
        buf[o++] = (unsigned char)(v >> 16);
        if (rem == 3)
            buf[o++] = (unsigned char)(v >> 8);
    }
    *out = buf;
    return (long)outlen;

fail:
    free(buf);
    return -1;
}
