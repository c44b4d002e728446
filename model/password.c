/*
 * password.c - the staff password policy and its Argon2id storage
 * (password.h).  The list of common passwords is model/common-passwords.txt,
 * embedded at build time ($(BUILD)/gen/pwlist.c, kn__common_passwords):
 * a '#' line is a comment, every other line one lowercase entry.
 */
#include "model/password.h"

#include <argon2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/kn.h"

extern const char kn__common_passwords[];
extern const size_t kn__common_passwords_len;

int kn_password_common(const char *s)
{
    size_t n = strlen(s);
    const char *p = kn__common_passwords, *end = p + kn__common_passwords_len;
    if (n == 0 || n > 200)
        return 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (len == n && p[0] != '#') {
            size_t i = 0;
            for (; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c >= 'A' && c <= 'Z')
                    c = (unsigned char)(c - 'A' + 'a');
                if (c != (unsigned char)p[i])
                    break;
            }
            if (i == n)
                return 1;
        }
        p += len + 1;
    }
    return 0;
}

/* Code points of valid UTF-8 without control characters, or -1. */
static long text_chars(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    long n = 0;
    while (*p) {
        unsigned c = *p, need, cp;
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return -1;
            p++;
            n++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return -1;
        }
        p++;
        for (unsigned i = 0; i < need; i++, p++) {
            if ((*p & 0xc0) != 0x80)
                return -1;
            cp = (cp << 6) | (*p & 0x3f);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
            (cp >= 0x80 && cp < 0xa0))
            return -1;
        n++;
    }
    return n;
}

int kn_password_check(const char *pw, const char *login, char *err,
                      size_t errlen)
{
    long n;
    if (strlen(pw) > KN_PW_MAX_BYTES) {
        snprintf(err, errlen, "the password is too long: at most %d bytes",
                 KN_PW_MAX_BYTES);
        return KN_EINVAL;
    }
    n = text_chars(pw);
    if (n < 0) {
        snprintf(err, errlen,
                 "the password must be UTF-8 text without "
                 "control characters");
        return KN_EINVAL;
    }
    if (n < KN_PW_MIN_CHARS) {
        snprintf(err, errlen,
                 "the password is too short: use at least %d characters "
                 "(a few words make a good one)",
                 KN_PW_MIN_CHARS);
        return KN_EINVAL;
    }
    if (login != NULL && strcasecmp(pw, login) == 0) {
        snprintf(err, errlen, "the password must not be the login");
        return KN_EINVAL;
    }
    if (kn_password_common(pw)) {
        snprintf(err, errlen,
                 "this password is in the list of common "
                 "passwords that attackers try first: "
                 "choose another");
        return KN_EINVAL;
    }
    return 0;
}

int kn_password_hash(const char *pw, char out[KN_PW_ENCODED])
{
    unsigned char salt[KN_PW_SALT];
    int rc;
    if (strlen(pw) > KN_PW_MAX_BYTES)
        return KN_EINVAL;
    kn_random(salt, sizeof(salt));
    rc = argon2id_hash_encoded(KN_PW_T, KN_PW_M_KIB, KN_PW_P, pw, strlen(pw),
                               salt, sizeof(salt), KN_PW_TAG, out,
                               KN_PW_ENCODED);
    if (rc != ARGON2_OK)
        KN_PANIC("argon2id_hash_encoded: %s", argon2_error_message(rc));
    return 0;
}

int kn_password_verify(const char *encoded, const char *pw)
{
    unsigned m, t, p;
    if (encoded == NULL || strlen(pw) > KN_PW_MAX_BYTES ||
        kn_password_params(encoded, &m, &t, &p) < 0)
        return 0;
    return argon2id_verify(encoded, pw, strlen(pw)) == ARGON2_OK;
}

int kn_password_params(const char *encoded, unsigned *m_kib, unsigned *t,
                       unsigned *p)
{
    int used = 0;
    if (sscanf(encoded, "$argon2id$v=19$m=%u,t=%u,p=%u$%n", m_kib, t, p,
               &used) != 3 ||
        used == 0)
        return KN_EINVAL;
    /* Bounds: a hash from elsewhere must not make verify take 4 GiB. */
    if (*m_kib < 8 || *m_kib > 262144 || *t < 1 || *t > 10 || *p < 1 || *p > 8)
        return KN_EINVAL;
    return 0;
}

static char dummy[KN_PW_ENCODED];

static void dummy_make(void)
{
    char pw[21];
    kn_password_initial(pw);
    kn_password_hash(pw, dummy);
}

const char *kn_password_dummy(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, dummy_make);
    return dummy;
}

void kn_password_initial(char out[21])
{
    static const char alphabet[] =
        "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    for (int i = 0; i < 20; i++)
        out[i] = alphabet[kn_random_below(sizeof(alphabet) - 1)];
    out[20] = '\0';
}
