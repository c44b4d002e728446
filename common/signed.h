/*
 * signed.h - a signed token: "<base64url of the payload>.<32 hex>", the
 * hex being the keyring's blind index of the payload under a purpose
 * (common/seal.h kn_blind_index), so that nobody without the index key
 * makes or alters one.  The ack links (model/ack.c) and the guardians'
 * links (model/gtoken.c) are such tokens, each with its purpose.
 */
#ifndef KN_COMMON_SIGNED_H
#define KN_COMMON_SIGNED_H

#include "common/seal.h"

/* The token of payload under purpose.  Returns a heap string. */
char *kn_signed_make(const struct kn_keyring *kr, const char *purpose,
                     const char *payload);

/*
 * The payload of token if its signature under purpose is right (compared
 * in constant time) and it decodes to text without NUL; else NULL.
 * Returns a heap string.
 */
char *kn_signed_open(const struct kn_keyring *kr, const char *purpose,
                     const char *token);

#endif
