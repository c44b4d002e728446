/*
 * signed.c - signed tokens: a payload in base64url and its blind index
 * (common/signed.h).
 */
#include "common/signed.h"

#include <stdlib.h>
#include <string.h>

#include "common/codec.h"
#include "common/kn.h"

char *kn_signed_make(const struct kn_keyring *kr, const char *purpose,
                     const char *payload)
{
    char mac[33], *b64, *t;
    kn_blind_index(kr, purpose, payload, mac);
    b64 = kn_b64url_encode(payload, strlen(payload));
    t = kn_xasprintf("%s.%s", b64, mac);
    free(b64);
    return t;
}

char *kn_signed_open(const struct kn_keyring *kr, const char *purpose,
                     const char *token)
{
    const char *dot = strchr(token, '.');
    char *b64, mac[33];
    unsigned char *plain = NULL;
    long n;
    int diff = 0;
    if (dot == NULL || strlen(dot + 1) != 32)
        return NULL;
    b64 = kn_xstrndup(token, (size_t)(dot - token));
    n = kn_b64url_decode(b64, &plain);
    free(b64);
    if (n <= 0 || memchr(plain, '\0', (size_t)n) != NULL) {
        free(plain);
        return NULL;
    }
    plain = kn_xrealloc(plain, (size_t)n + 1);
    plain[n] = '\0';
    kn_blind_index(kr, purpose, (char *)plain, mac);
    for (int i = 0; i < 32; i++) /* constant time */
        diff |= mac[i] ^ dot[1 + i];
    if (diff != 0) {
        free(plain);
        return NULL;
    }
    return (char *)plain;
}
