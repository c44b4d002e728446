/*
 * regsheet.c - registration sheet IDs and passcodes: drawing them,
 * normalising what a person typed, and the keyed hash that is all Redis
 * ever holds of a passcode (regsheet.h).  No I/O.
 */
#include "model/regsheet.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/kn.h"
#include "common/seal.h"

static void draw(char *out, size_t n)
{
    static const char alphabet[] = KN_REG_ALPHABET;
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[kn_random_below(sizeof(alphabet) - 1)];
    out[n] = '\0';
}

void kn_reg_id_new(char out[KN_REG_ID_LEN + 1])
{
    draw(out, KN_REG_ID_LEN);
}

void kn_reg_pass_new(char out[KN_REG_PASS_LEN + 1])
{
    draw(out, KN_REG_PASS_LEN);
}

void kn_reg_pass_print(const char *pass, char out[KN_REG_PASS_LEN + 3])
{
    snprintf(out, KN_REG_PASS_LEN + 3, "%.4s-%.4s-%.4s", pass, pass + 4,
             pass + 8);
}

/*
 * The next code point of s (UTF-8), its length in *len; -1 if invalid.
 * Only what normalising needs: no overlong or surrogate checks, since
 * anything that is not in the alphabet afterwards is refused anyway.
 */
static long next_cp(const unsigned char *s, size_t *len)
{
    if (s[0] < 0x80) {
        *len = 1;
        return s[0];
    }
    if ((s[0] & 0xE0) == 0xC0 && (s[1] & 0xC0) == 0x80) {
        *len = 2;
        return ((long)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
    }
    if ((s[0] & 0xF0) == 0xE0 && (s[1] & 0xC0) == 0x80 &&
        (s[2] & 0xC0) == 0x80) {
        *len = 3;
        return ((long)(s[0] & 0x0F) << 12) | ((long)(s[1] & 0x3F) << 6) |
               (s[2] & 0x3F);
    }
    return -1;
}

static int is_separator(long c)
{
    return c == ' ' || c == '\t' || c == '-' || c == 0x3000 ||
           (c >= 0x2010 && c <= 0x2015) || c == 0x2212 || c == 0x30FC ||
           c == 0xFF0D;
}

int kn_reg_normalise(const char *typed, size_t want, char *out, size_t outsz)
{
    const unsigned char *s = (const unsigned char *)typed;
    size_t n = 0, len;

    if (typed == NULL || outsz <= want)
        return -1;
    while (*s) {
        long c = next_cp(s, &len);
        if (c < 0)
            return -1;
        s += len;
        if (is_separator(c))
            continue;
        if (c >= 0xFF01 && c <= 0xFF5E) /* full-width ASCII */
            c -= 0xFEE0;
        if (c >= 'a' && c <= 'z')
            c -= 'a' - 'A';
        if (c <= 0 || c >= 0x80 || strchr(KN_REG_ALPHABET, (int)c) == NULL)
            return -1;
        if (n == want)
            return -1;
        out[n++] = (char)c;
    }
    if (n != want)
        return -1;
    out[n] = '\0';
    return (int)n;
}

void kn_reg_pass_hash(const struct kn_keyring *kr, const char *id,
                      const char *pass, char out[33])
{
    char *both = kn_xasprintf("%s:%s", id, pass);
    kn_blind_index(kr, "passcode", both, out);
    kn_free_secret(both);
}
