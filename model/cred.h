/*
 * cred.h - a provider credential shared by every kairand process (APNs'
 * provider token today; a LINE channel access token could be one too): its
 * stored form, the hash cred:<provider>:<account> (queue/keys.h
 * kn_key_cred), written by queue/lua/cred_offer.lua and read by
 * dispatcher/cred.c.
 *
 *   field  holds
 *   n      the record's generation: 1 for the first credential stored,
 *          one more at each replacement (the compare-and-set of
 *          cred_offer.lua is on it)
 *   iat    when the credential was issued, ms since the epoch, in clear:
 *          every process judges its age without opening it
 *   early  "1" when it replaced a credential younger than the provider's
 *          floor (APNs: 20 minutes) because the provider refused that one;
 *          "0" otherwise
 *   v      the credential sealed (common/seal.h, purpose "cred") together
 *          with its name and iat: JSON {"c": "<provider>:<account>",
 *          "iat": <ms>, "v": "<credential>"}.  A value copied under
 *          another name, or an iat changed beside it, does not open.
 *
 * No I/O here: the record's rules only (unit test tests/unit/test_cred.c).
 * kairanctl rekey re-seals v under the current key (it needs no more than
 * the purpose).
 */
#ifndef KN_MODEL_CRED_H
#define KN_MODEL_CRED_H

#include <stdint.h>

struct kn_keyring;

#define KN_CRED_PURPOSE "cred"

/* The fields of a stored record, as read (borrowed strings). */
struct kn_cred_record {
    uint64_t gen;       /* n: 0 when nothing is stored */
    int64_t iat_ms;     /* iat */
    int early;          /* early = "1" */
    const char *sealed; /* v */
};

/*
 * Read a record from its four fields as stored (NULL for an absent field):
 * n, iat, early, v.  Returns 0 and fills out; KN_ENOENT when nothing is
 * stored (every field absent: out->gen 0); KN_EINVAL when the record is
 * not one (a field missing or not a number, n or iat not above 0).
 */
int kn_cred_record_parse(const char *n, const char *iat, const char *early,
                         const char *v, struct kn_cred_record *out);

/*
 * Seal value as the credential named name ("<provider>:<account>") issued
 * at iat_ms: the "v" field.  A heap string.
 */
char *kn_cred_seal(const struct kn_keyring *kr, const char *name,
                   int64_t iat_ms, const char *value);

/*
 * Open a "v" field: 0 and *value (heap; wipe it with kn_free_secret) when
 * it opens with this key file and names this name and this iat_ms;
 * KN_ECRYPTO when it does not open, KN_EINVAL when it opens but is another
 * credential's (name or iat not these) or not the JSON above.
 */
int kn_cred_open(const struct kn_keyring *kr, const char *name, int64_t iat_ms,
                 const char *sealed, char **value);

#endif
