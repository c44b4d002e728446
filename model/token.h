/*
 * token.h - the HTTP API's bearer tokens, shared by kairand's HTTP server
 * (dispatcher/http/auth.c) and kairanctl's token command (cli/token.c):
 * the token format, how its secret is hashed for storage, and the roles.
 *
 * Token: "kn_<id>_<secret>".  The id (lowercase hex) finds the record,
 * the Redis hash <prefix>token:<id> (role, tenant, name, groups,
 * created_ms, expires_ms, revoked_ms, salt, hash, alg); the secret is 32
 * random bytes in base64url (43 characters) and is never stored: only
 * hex(HMAC-SHA-256(pepper, salt || secret)), where the pepper is derived
 * from the key file (security.key_file).  Why a keyed hash and not
 * PBKDF2: see token.c above kn_token_hash.
 */
#ifndef KN_MODEL_TOKEN_H
#define KN_MODEL_TOKEN_H

#include <stddef.h>

struct kn_keyring;

enum kn_role {
    KN_ROLE_ADMIN,         /* everything, every tenant */
    KN_ROLE_LIMITED_ADMIN, /* broadcasts and status of its tenant */
    KN_ROLE_SENDER,        /* submit to its groups, read its broadcasts */
    KN_ROLE_OPERATOR,      /* read-only: queues, metrics, health */
    KN_ROLE__COUNT
};

/* "admin", "limited_admin", "sender", "operator"; "?" if out of range. */
const char *kn_role_name(int role);
/* The role for a name, or -1. */
int kn_role_parse(const char *s);

#define KN_TOKEN_SECRET_BYTES 32
#define KN_TOKEN_SECRET_CHARS 43 /* base64url of 32 bytes, no padding */
#define KN_TOKEN_ID_MAX       32
#define KN_TOKEN_SALT_BYTES   16
#define KN_TOKEN_ALG          "hmac-sha256-pepper1"

/*
 * Split a presented token "kn_<id>_<secret>".  Returns 0 with the id
 * copied into id (NUL-terminated) and *secret pointing into token;
 * KN_EINVAL when it is not of that form (id: 1-32 of [0-9a-f]; secret:
 * base64url characters); KN_EPERM when the form is right but the secret
 * is shorter than KN_TOKEN_SECRET_CHARS ("too weak": such a token was not
 * made by kairanctl and is refused whatever its record says).
 */
int kn_token_split(const char *token, char id[KN_TOKEN_ID_MAX + 1],
                   const char **secret);

/*
 * The stored hash of a secret: hex(HMAC-SHA-256(pepper, salt || secret))
 * into out (64 hex digits and a NUL).  salt_hex is the record's salt (hex);
 * the pepper is derived from the keyring's blind-index key, so it does
 * not change when the encryption key is rotated.
 */
void kn_token_hash(const struct kn_keyring *kr, const char *salt_hex,
                   const char *secret, char out[65]);

#endif
