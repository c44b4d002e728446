/*
 * seal.h - encryption at rest for contact addresses (SECURITY-PROMISES #1).
 *
 * A keyring is loaded from security.key_file: either exactly 32 raw bytes
 * (key id 1), or text lines "<kid>:<64 hex digits>" (kid 1..9999; the
 * highest kid is the current key used for new writes; older ones still
 * decrypt) and optionally one line "index:<64 hex digits>" giving the
 * blind-index key.  Without an index line, the index key is derived (HKDF-
 * SHA-256, info "kairan blind index v1") from the lowest kid, so rotation
 * does not change look-ups.  The file must not be readable or writable by
 * group or others: loading refuses it otherwise.
 *
 * Sealed form: "k<kid>.<base64url(nonce[12] || ciphertext || tag[16])>",
 * AES-256-GCM with the caller's purpose string ("email", "line", "push")
 * as additional authenticated data.  Only OpenSSL 3 EVP interfaces.
 */
#ifndef KN_COMMON_SEAL_H
#define KN_COMMON_SEAL_H

#include <stddef.h>

struct kn_keyring;

/*
 * Load a key file.  Returns 0 and *out, or a negative KN_E* code and a
 * one-line reason in err (e.g. "key file /x is readable by group or others
 * (mode 0644): chmod 600 /x").
 */
int kn_keyring_load(const char *path, struct kn_keyring **out, char *err,
                    size_t errlen);
void kn_keyring_free(struct kn_keyring *kr);
/* The kid new writes use. */
int kn_keyring_current(const struct kn_keyring *kr);

/*
 * Create a new key file with one fresh random key (text form, kid 1) and
 * mode 0600.  Refuses (KN_EEXIST) to overwrite an existing file.
 */
int kn_keyfile_generate(const char *path);

/*
 * Append a new key (kid = highest + 1) to an existing text key file
 * (converting a raw 32-byte file to the text form first, keeping its key as
 * kid 1 and pinning the index key).  Returns the new kid or a negative code.
 */
int kn_keyfile_add_key(const char *path);

/* Encrypt len bytes; returns a heap string the caller frees. */
char *kn_seal(const struct kn_keyring *kr, const char *purpose,
              const void *plain, size_t len);

/*
 * Decrypt a sealed string.  Returns 0 and a heap, NUL-terminated *plain
 * (length in *len if len != NULL), or KN_ECRYPTO (tampered, wrong purpose,
 * unknown kid, malformed).
 */
int kn_unseal(const struct kn_keyring *kr, const char *purpose,
              const char *sealed, char **plain, size_t *len);

/*
 * Open n sealed strings (all of one purpose, e.g. the user ids of a LINE
 * multicast job) with one cipher context: the key schedule is made once
 * per key id, not once per string.  Returns 0 and plain[0..n-1], heap
 * strings the caller frees; or KN_ECRYPTO with *bad the index of the first
 * string that did not open, and every plain[] NULL (those opened before
 * it are wiped and freed).
 */
int kn_unseal_many(const struct kn_keyring *kr, const char *purpose,
                   const char *const *sealed, size_t n, char **plain,
                   size_t *bad);

/* The kid a sealed string was written with, or -1 if malformed. */
int kn_sealed_kid(const char *sealed);

/*
 * Blind index of an address: hex of the first 16 bytes of
 * HMAC-SHA-256(index key, purpose || 0x00 || normalised address), written
 * into out (33 bytes with the NUL).  E-mail addresses are normalised by
 * trimming surrounding spaces and lowering ASCII case; other purposes are
 * taken as given.
 */
void kn_blind_index(const struct kn_keyring *kr, const char *purpose,
                    const char *addr, char out[33]);

/* HMAC-SHA-256 helper (for signatures elsewhere): out must hold 32 bytes. */
void kn_hmac_sha256(const void *key, size_t keylen, const void *data,
                    size_t len, unsigned char out[32]);

/* kn_b64url_encode / kn_b64url_decode moved to common/codec.h; included
 * here for the files that still look for them in this header. */
#include "common/codec.h"

#endif
