/*
 * totp.h - time-based one-time passwords (RFC 6238 over RFC 4226 HOTP):
 * HMAC-SHA-1, 30-second steps, 6 digits, the step before and after
 * accepted for clock drift.  Pure computation; that a code is accepted
 * only once is the caller's (the last step used is stored with the
 * account: dispatcher/http/session.c).
 */
#ifndef KN_MODEL_TOTP_H
#define KN_MODEL_TOTP_H

#include <stddef.h>
#include <stdint.h>

#define KN_TOTP_STEP_S     30
#define KN_TOTP_DIGITS     6
#define KN_TOTP_SECRET     20 /* bytes of a new secret (160 bits) */
#define KN_TOTP_SECRET_B32 32 /* base32 characters of 20 bytes */

/* The code (0..10^digits-1) of counter step for key (RFC 4226 HOTP with
 * HMAC-SHA-1); digits 6..8. */
uint32_t kn_hotp(const unsigned char *key, size_t keylen, uint64_t step,
                 int digits);

/*
 * Check a presented 6-digit code at unix time now_s.  Returns the step it
 * matched (now's, one before or one after), or -1 if the code is not 6
 * digits or matches none of them, or matches only a step <= last_used
 * (a code is accepted once: pass the last step accepted, or -1).
 */
int64_t kn_totp_check(const unsigned char *key, size_t keylen, const char *code,
                      int64_t now_s, int64_t last_used);

/* RFC 4648 base32 (no padding) of len bytes into out (8*len/5+2 bytes):
 * what authenticator apps take. */
void kn_base32_encode(const unsigned char *data, size_t len, char *out);

#endif
