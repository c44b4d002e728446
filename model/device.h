/*
 * device.h - the staff console's device cookies (pure rules, no I/O; the
 * Redis records and the throttling are dispatcher/http/session.c's).
 *
 * OWASP's "device cookie" against online password guessing: a browser in
 * which an account has logged in (password, and the TOTP code when the
 * account has one) gets a long-lived cookie naming that account.  Failed
 * logins of an account from clients without one ("untrusted") are
 * counted together, from every address; past KN_LOGIN_UNTRUSTED_FAILS in
 * KN_LOGIN_LOCK_MS untrusted attempts are refused before any hash, while
 * a browser with the account's device cookie keeps its own budget of
 * KN_DEVICE_LOCK_FAILS failures (model/session.h, "Throttling of
 * logins").
 *
 * A device cookie proves nothing but "this browser once logged in to
 * this account": it never logs anyone in, it only decides which counter
 * an attempt is judged by.
 *
 * Cookie: one per account, so that the teachers who share a staff-room
 * PC each keep theirs:
 *   name   "__Host-kairan_device_<16 hex>" with Secure when
 *          http.public_url is https, "kairan_device_<16 hex>" otherwise
 *          (as the session cookie, model/session.h); the hex is the
 *          first 16 of kn_blind_index(purpose "device-name",
 *          "<tenant>|<login>"), so the name does not show the login;
 *   value  "<nonce>.<expires ms>.<mac>": 128 random bits in base64url
 *          (22 characters), the expiry in ms since the epoch, and 32 hex
 *          digits of kn_blind_index(purpose "device",
 *          "d1|<tenant>|<login>|<nonce>|<expires ms>") (the key file's
 *          index key, as the guardians' signed links: a rotation of the
 *          encryption key keeps devices trusted);
 *   always HttpOnly, SameSite=Strict, Path=/, Max-Age KN_DEVICE_MAX_MS.
 * A cookie of another account, altered, forged or expired is no device
 * cookie: the attempt is untrusted.
 */
#ifndef KN_MODEL_DEVICE_H
#define KN_MODEL_DEVICE_H

#include <stddef.h>
#include <stdint.h>

struct kn_keyring;

/* How long a device stays trusted after its last successful login (each
 * success issues a new cookie). */
#define KN_DEVICE_MAX_MS (180LL * 24 * 60 * 60 * 1000)

#define KN_DEVICE_NONCE_CHARS 22
/* "__Host-kairan_device_" + 16 hex + NUL */
#define KN_DEVICE_NAME_MAX 40

struct kn_device {
    char nonce[KN_DEVICE_NONCE_CHARS + 1];
    int64_t expires_ms;
};

/* The cookie's name for (tenant, login) under this public_url into out. */
void kn_device_cookie_name(const struct kn_keyring *kr, const char *public_url,
                           const char *tenant, const char *login,
                           char out[KN_DEVICE_NAME_MAX]);

/*
 * A new device of (tenant, login), made at now_ms: fills dev (a fresh
 * nonce, expiry now_ms + KN_DEVICE_MAX_MS) and returns the value of a
 * Set-Cookie header (without "Set-Cookie: " and CRLF).  Heap string.
 */
char *kn_device_cookie(const struct kn_keyring *kr, const char *public_url,
                       const char *tenant, const char *login, int64_t now_ms,
                       struct kn_device *dev);

/*
 * The device cookie of (tenant, login) in a Cookie header value, checked
 * at now_ms: 0 and *dev; KN_ENOENT when there is none; KN_EINVAL when it
 * is malformed, present twice, altered, forged or another account's;
 * KN_ETIMEDOUT when it is genuine but expired.
 */
int kn_device_from_cookie(const struct kn_keyring *kr, const char *header,
                          const char *public_url, const char *tenant,
                          const char *login, int64_t now_ms,
                          struct kn_device *dev);

#endif
