/*
 * totp.c - RFC 6238 TOTP codes (totp.h): HOTP (RFC 4226 section 5.3,
 * dynamic truncation) of the 30-second step counter.
 */
#include "model/totp.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

uint32_t kn_hotp(const unsigned char *key, size_t keylen, uint64_t step,
                 int digits)
{
    unsigned char msg[8], mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    uint32_t bin, mod = 1;
    int off;
    for (int i = 7; i >= 0; i--) {
        msg[i] = (unsigned char)(step & 0xff);
        step >>= 8;
    }
    HMAC(EVP_sha1(), key, (int)keylen, msg, sizeof(msg), mac, &maclen);
    off = mac[19] & 0x0f;
    bin = ((uint32_t)(mac[off] & 0x7f) << 24) | ((uint32_t)mac[off + 1] << 16) |
          ((uint32_t)mac[off + 2] << 8) | (uint32_t)mac[off + 3];
    for (int i = 0; i < digits; i++)
        mod *= 10;
    return bin % mod;
}

int64_t kn_totp_check(const unsigned char *key, size_t keylen, const char *code,
                      int64_t now_s, int64_t last_used)
{
    uint32_t want = 0;
    int64_t step = now_s / KN_TOTP_STEP_S, found = -1;
    if (code == NULL || strlen(code) != KN_TOTP_DIGITS)
        return -1;
    for (int i = 0; i < KN_TOTP_DIGITS; i++) {
        if (code[i] < '0' || code[i] > '9')
            return -1;
        want = want * 10 + (uint32_t)(code[i] - '0');
    }
    /* Every candidate is computed, so the time taken says nothing about
     * which one matched. */
    for (int64_t s = step - 1; s <= step + 1; s++) {
        if (s < 0)
            continue;
        if (kn_hotp(key, keylen, (uint64_t)s, KN_TOTP_DIGITS) == want &&
            s > last_used && found < 0)
            found = s;
    }
    return found;
}

void kn_base32_encode(const unsigned char *data, size_t len, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    uint32_t buf = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        buf = (buf << 8) | data[i];
        bits += 8;
        while (bits >= 5) {
            out[o++] = a[(buf >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits > 0)
        out[o++] = a[(buf << (5 - bits)) & 31];
    out[o] = '\0';
}
