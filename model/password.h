/*
 * password.h - staff passwords: the policy a new password must meet and
 * how it is stored (Argon2id, Debian's libargon2).  Pure computation, no
 * I/O: kairand runs kn_password_hash/verify on the libuv thread pool
 * (dispatcher/http/session.c), kairanctl directly.
 *
 * Cost (OWASP's minimum for Argon2id): 19 MiB of memory (m = 19456 KiB),
 * 2 passes (t = 2), 1 lane (p = 1), a 16-byte random salt, a 32-byte tag.
 * The stored form is libargon2's encoded string
 * "$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>", so the parameters of
 * every hash can be read back (and raised later without a migration).
 */
#ifndef KN_MODEL_PASSWORD_H
#define KN_MODEL_PASSWORD_H

#include <stddef.h>

#define KN_PW_M_KIB     19456 /* 19 MiB */
#define KN_PW_T         2
#define KN_PW_P         1
#define KN_PW_SALT      16
#define KN_PW_TAG       32
#define KN_PW_MIN_CHARS 12
#define KN_PW_MAX_BYTES 256
#define KN_PW_ENCODED   128 /* room for the encoded string and its NUL */

/*
 * Is pw acceptable as a new password for login?  Returns 0, or KN_EINVAL
 * with a sentence saying what to fix in err: fewer than 12 characters
 * (Unicode code points, so "パスワード" counts 5), more than 256 bytes,
 * not UTF-8, control characters, the login itself, or an entry of the
 * bundled list of common passwords (model/common-passwords.txt, compared
 * with ASCII letters lowered).
 */
int kn_password_check(const char *pw, const char *login, char *err,
                      size_t errlen);

/* 1 if s (any case) is in the bundled common-password list. */
int kn_password_common(const char *s);

/* Hash pw with a fresh salt into out (KN_PW_ENCODED bytes).  Returns 0 or
 * KN_EINVAL (too long). */
int kn_password_hash(const char *pw, char out[KN_PW_ENCODED]);

/* 1 if pw matches the encoded hash, 0 if not (or malformed). */
int kn_password_verify(const char *encoded, const char *pw);

/*
 * The cost parameters of an encoded Argon2id hash: 0 and *m_kib, *t, *p,
 * or KN_EINVAL when it is not "$argon2id$v=19$m=..,t=..,p=..$..$..".
 */
int kn_password_params(const char *encoded, unsigned *m_kib, unsigned *t,
                       unsigned *p);

/*
 * An encoded hash of a random password, made once per process: what an
 * unknown login is verified against, so that it costs the same time as
 * a known one.  Thread-safe (made once, by the first caller: kairand's
 * first login, on the thread pool).
 */
const char *kn_password_dummy(void);

/* A random initial password: 20 characters of an alphabet without look-
 * alikes (no 0/O, 1/l/I), about 110 bits.  out holds 21 bytes. */
void kn_password_initial(char out[21]);

#endif
