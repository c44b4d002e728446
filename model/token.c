/*
 * token.c - the HTTP API's bearer tokens and the roles they carry (see
 * token.h): the token's form, how its secret is hashed for storage, and
 * the role names.  Used by kairand's HTTP server (dispatcher/http/auth.c)
 * to check a presented token and by kairanctl (cli/token.c) to make one.
 * No I/O: the record itself is read and written by its callers.
 */
#include "model/token.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kn.h"
#include "common/seal.h"

static const char *const role_names[KN_ROLE__COUNT] = {"admin", "limited_admin",
                                                       "sender", "operator"};

const char *kn_role_name(int role)
{
    return role >= 0 && role < KN_ROLE__COUNT ? role_names[role] : "?";
}

int kn_role_parse(const char *s)
{
    for (int i = 0; s != NULL && i < KN_ROLE__COUNT; i++) {
        if (strcmp(s, role_names[i]) == 0)
            return i;
    }
    return -1;
}

int kn_token_split(const char *token, char id[KN_TOKEN_ID_MAX + 1],
                   const char **secret)
{
    const char *p, *us;
    size_t idlen, n;

    if (token == NULL || strncmp(token, "kn_", 3) != 0)
        return KN_EINVAL;
    p = token + 3;
    us = strchr(p, '_');
    if (us == NULL)
        return KN_EINVAL;
    idlen = (size_t)(us - p);
    if (idlen == 0 || idlen > KN_TOKEN_ID_MAX)
        return KN_EINVAL;
    for (size_t i = 0; i < idlen; i++) {
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return KN_EINVAL;
    }
    n = strlen(us + 1);
    if (n == 0 || n > 256)
        return KN_EINVAL;
    for (size_t i = 0; i < n; i++) {
        char c = us[1 + i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return KN_EINVAL;
    }
    memcpy(id, p, idlen);
    id[idlen] = '\0';
    *secret = us + 1;
    return n < KN_TOKEN_SECRET_CHARS ? KN_EPERM : 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * Why a keyed hash (HMAC-SHA-256 with a pepper from the key file) rather
 * than PBKDF2: the secrets are 32 random bytes, so there is nothing for
 * key stretching to protect (stretching slows the guessing of
 * low-entropy passwords; 2^256 guesses are out of reach either way).
 * What matters is that a copy of Redis (a dump, an AOF, a backup) is not
 * enough to check a guess at all: the pepper lives only in the key file.
 * And verification costs a microsecond on the single-threaded loop, where
 * 10,000 PBKDF2 rounds would cost milliseconds per request: a CPU lever
 * for anyone sending bad tokens, and a reason for a cache of verified
 * tokens that would delay a revocation.  Each record still has its own
 * salt, so equal secrets never give equal hashes.
 */
void kn_token_hash(const struct kn_keyring *kr, const char *salt_hex,
                   const char *secret, char out[65])
{
    char pepper_hex[33];
    unsigned char pepper[16], mac[32];
    unsigned char *buf;
    size_t slen = strlen(salt_hex) / 2, n = strlen(secret);

    kn_blind_index(kr, "api-token-pepper", "kairan api token pepper v1",
                   pepper_hex);
    for (int i = 0; i < 16; i++)
        pepper[i] = (unsigned char)(hexval(pepper_hex[2 * i]) * 16 +
                                    hexval(pepper_hex[2 * i + 1]));
    buf = kn_xmalloc(slen + n + 1);
    for (size_t i = 0; i < slen; i++) {
        int hi = hexval(salt_hex[2 * i]), lo = hexval(salt_hex[2 * i + 1]);
        buf[i] = (unsigned char)((hi < 0 ? 0 : hi) * 16 + (lo < 0 ? 0 : lo));
    }
    memcpy(buf + slen, secret, n);
    kn_hmac_sha256(pepper, sizeof(pepper), buf, slen + n, mac);
    OPENSSL_cleanse(buf, slen + n);
    OPENSSL_cleanse(pepper, sizeof(pepper));
    free(buf);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
}
