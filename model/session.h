/*
 * session.h - a staff session's id, cookie and CSRF token (pure rules, no
 * I/O; the Redis records are dispatcher/http/session.c's and cli/staff.c's).
 *
 * The id is 256 random bits in base64url (43 characters), sent only in a
 * cookie: "__Host-kairan_session" with Secure when http.public_url is
 * https, "kairan_session" otherwise (plain http on a test or demo
 * host cannot carry a Secure cookie); always HttpOnly, SameSite=Strict,
 * Path=/.  Redis holds only hex(SHA-256(id)), so a dump of Redis opens no
 * session.  The CSRF token is another 256 random bits, returned by the
 * login and sent back in the X-CSRF-Token header of every state-changing
 * request, together with an Origin equal to public_url's origin.
 *
 * Lifetime: 30 minutes idle, 12 hours at most.
 */
#ifndef KN_MODEL_SESSION_H
#define KN_MODEL_SESSION_H

#include <stddef.h>
#include <stdint.h>

#define KN_SESSION_ID_CHARS 43
#define KN_SESSION_IDLE_MS  (30LL * 60 * 1000)
#define KN_SESSION_MAX_MS   (12LL * 60 * 60 * 1000)

/* A fresh random id (or CSRF token): 43 base64url characters + NUL. */
void kn_session_new_id(char out[KN_SESSION_ID_CHARS + 1]);

/* hex(SHA-256(id)) into out (65 bytes). */
void kn_session_hash(const char *id, char out[65]);

/* The cookie's name for this public_url. */
const char *kn_session_cookie_name(const char *public_url);

/*
 * The value of a Set-Cookie header (without "Set-Cookie: " and CRLF) for
 * id, or for ending the session when id is NULL (empty value, Max-Age=0).
 * Heap string.
 */
char *kn_session_cookie(const char *public_url, const char *id);

/* The value of the cookie name in a Cookie header: 0 and v, vl (into
 * header, trailing blanks cut), KN_ENOENT if absent, KN_EINVAL if it comes
 * twice (which one would be the browser's?). */
int kn_cookie_value(const char *header, const char *name, const char **v,
                    size_t *vl);

/* 1 if c is a base64url digit. */
int kn_b64url_char(int c);

/*
 * The session id in a Cookie header value: 0 and out, or KN_ENOENT when
 * the cookie is absent, KN_EINVAL when it is present but not 43 base64url
 * characters, or present twice.
 */
int kn_session_from_cookie(const char *header, const char *public_url,
                           char out[KN_SESSION_ID_CHARS + 1]);

/* The origin ("scheme://host[:port]", lowercase scheme and host) of
 * public_url into out; "" when it is not an http(s) URL. */
void kn_session_origin(const char *public_url, char *out, size_t len);

/* 0 when the session is still alive at now (idle and absolute limits),
 * else KN_ETIMEDOUT. */
int kn_session_alive(int64_t created_ms, int64_t seen_ms, int64_t now);

/*
 * A staff login: 1-64 of a-z, 0-9, '.', '_', '-', starting with a letter
 * or digit (lowercase only, so "Sato" and "sato" cannot be two accounts).
 */
int kn_staff_login_valid(const char *s);

/* A staff member's display name: 1-100 bytes of UTF-8 text without
 * control characters or private-use ones (gaiji, model/gaiji.h). */
int kn_staff_name_valid(const char *s);

/* A sender's groups "a,b": no empty item, none over 64 bytes, no control
 * characters or ';', valid UTF-8. */
int kn_staff_groups_valid(const char *s);

/* Throttling of logins (dispatcher/http/session.c):
 *  - from one address, KN_LOGIN_LOCK_FAILS failures lock that account for
 *    that address for KN_LOGIN_LOCK_MS;
 *  - from anywhere, past KN_LOGIN_SPREAD_FREE failures within
 *    KN_LOGIN_LOCK_MS every further attempt at that account is answered
 *    only after kn_login_delay_ms;
 *  - from clients without the account's device cookie (model/device.h),
 *    from anywhere: KN_LOGIN_UNTRUSTED_FAILS failures within
 *    KN_LOGIN_LOCK_MS refuse every further such attempt (429) before any
 *    hash until that many ms after the last counted one.  The delays
 *    alone never bounded a guesser who runs attempts at once: the hash
 *    pool did (~25 a second, 2 million a day); now one account yields
 *    at most KN_LOGIN_UNTRUSTED_FAILS guesses per KN_LOGIN_LOCK_MS to
 *    untrusted clients (960 a day).  An untrusted try is counted when
 *    its hash is about to start, before it is judged, and taken off again
 *    when the password is right: logins sent at once that all passed the
 *    first check are not all judged;
 *  - a browser with the account's device cookie skips the per-address
 *    lock, this one and the delay, and has its own budget instead:
 * KN_DEVICE_LOCK_FAILS failures of one cookie, since it was issued (the next
 * success issues a new one), lock that cookie until its expiry; it is then
 * untrusted;
 *  - wrong TOTP codes (tried only after the right password), from
 *    anywhere: KN_TOTP_LOCK_FAILS within KN_LOGIN_LOCK_MS lock the
 *    account's codes for the rest of that time (429), so that someone who
 *    has the password cannot guess the code from many addresses (one
 *    right code in 1,000,000 / 3 a try). */
#define KN_LOGIN_LOCK_FAILS   5
#define KN_TOTP_LOCK_FAILS    10
#define KN_LOGIN_LOCK_MS      (15LL * 60 * 1000)
#define KN_LOGIN_SPREAD_FREE  10
#define KN_LOGIN_DELAY_MAX_MS 4000
/* 10 in 15 minutes: a teacher who forgot the password tries a few times,
 * not 10 (and, once the 10 are spent by someone else, still logs in from
 * the browser used before); an attacker gets 960 guesses a day instead
 * of 2 million. */
#define KN_LOGIN_UNTRUSTED_FAILS 10
#define KN_DEVICE_LOCK_FAILS     5

/* The delay before answering an attempt when the account has had
 * spread_failures failures (all addresses) in the window: 0 up to
 * KN_LOGIN_SPREAD_FREE, then 250 ms doubling per 5 more, at most
 * KN_LOGIN_DELAY_MAX_MS. */
long long kn_login_delay_ms(long long spread_failures);

#endif
