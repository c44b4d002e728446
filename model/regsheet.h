/*
 * regsheet.h - the registration sheet's ID and passcode (issue 15): what a
 * family types at <public_url>/r to register its own contacts.
 *
 * Both are drawn from one alphabet without look-alikes (no 0/O/D, 1/I/L,
 * 2/Z, 5/S, 8/B, U/V), so that a printed sheet read aloud or typed on a
 * phone cannot be misread: KN_REG_ALPHABET.  The ID is KN_REG_ID_LEN
 * characters (not a secret: it names the sheet); the passcode
 * KN_REG_PASS_LEN, printed in groups of four ("XXXX-XXXX-XXXX").  What a
 * person types is normalised before it is compared: full-width letters and
 * digits become ASCII, lower case upper case, and spaces and dashes
 * ('-', U+2010..U+2015, U+2212, U+30FC, U+FF0D) are dropped.
 *
 * The passcode is stored only as a keyed hash: HMAC-SHA-256 under the
 * key file's index key (common/seal.h, purpose "passcode") of
 * "<ID>:<passcode>", so the same passcode on two sheets hashes apart and a
 * copy of Redis without the key file cannot test guesses.
 */
#ifndef KN_MODEL_REGSHEET_H
#define KN_MODEL_REGSHEET_H

#include <stddef.h>

struct kn_keyring;

#define KN_REG_ALPHABET "34679ACEFGHJKMNPQRTWXY"
#define KN_REG_ID_LEN   8
#define KN_REG_PASS_LEN 12

/* A fresh random ID: KN_REG_ID_LEN characters and a NUL into out. */
void kn_reg_id_new(char out[KN_REG_ID_LEN + 1]);

/* A fresh random passcode: KN_REG_PASS_LEN characters and a NUL. */
void kn_reg_pass_new(char out[KN_REG_PASS_LEN + 1]);

/* A passcode for print: "XXXX-XXXX-XXXX" (15 bytes with the NUL). */
void kn_reg_pass_print(const char *pass, char out[KN_REG_PASS_LEN + 3]);

/*
 * What a person typed, normalised (see above) into out (outsz bytes).
 * Returns the length, or -1 if the result is not want characters of the
 * alphabet (want: KN_REG_ID_LEN or KN_REG_PASS_LEN) or does not fit.
 */
int kn_reg_normalise(const char *typed, size_t want, char *out, size_t outsz);

/* The keyed hash of a sheet's passcode: 32 hex digits and a NUL. */
void kn_reg_pass_hash(const struct kn_keyring *kr, const char *id,
                      const char *pass, char out[33]);

#endif
