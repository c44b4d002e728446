/*
 * codec.h - the byte <-> text codecs of the program, in one place: hex,
 * base64 (RFC 4648 section 4) and base64url (section 5, no padding).
 *
 * Encoders never fail (memory aborts); decoders return the number of
 * bytes or -1 and never accept what they would not write back the same
 * way, except base64 (kn_b64_decode), which is what mail and providers
 * send us and so skips white space and accepts a missing padding.
 */
#ifndef KN_COMMON_CODEC_H
#define KN_COMMON_CODEC_H

#include <stddef.h>

/* Lower-case hex of data[0..len) into out (2 * len digits and a NUL). */
void kn_hex_encode(const void *data, size_t len, char *out);

/* The value of one hex digit (either case), or -1. */
int kn_hex_value(int c);

/*
 * Exactly 2 * len hex digits of s (either case) into out[0..len).
 * Returns 0, or -1 (wrong length, not a hex digit; out is then undefined).
 */
int kn_hex_decode(const char *s, size_t n, unsigned char *out, size_t len);

/* Standard base64 with '=' padding, no line breaks: heap string. */
char *kn_b64_encode(const void *data, size_t len);

/*
 * Decode base64, skipping white space (SP, HT, CR, LF) anywhere.  Returns
 * the number of bytes and a NUL-terminated heap buffer in *out, or -1 (and
 * *out = NULL) when:
 *  1. a character is outside the alphabet;
 *  2. anything but '=' or white space follows the first '=';
 *  3. the last group is one character long, or padding does not complete
 *     the group.  Unpadded final groups of 2 or 3 characters are accepted.
 */
long kn_b64_decode(const char *s, size_t n, unsigned char **out);

/* base64url without padding: heap string. */
char *kn_b64url_encode(const void *data, size_t len);

/*
 * Decode base64url strictly, so that every byte string has exactly one
 * encoding and a changed character can never decode to the same bytes:
 *   1. only the 64 base64url characters, no padding, no white space;
 *   2. a length of 4n+1 characters is refused (it cannot end a quantum);
 *   3. the unused low bits of the last character must be zero.
 * Returns the number of bytes and a heap buffer in *out, or -1 (*out NULL).
 */
long kn_b64url_decode(const char *s, unsigned char **out);

#endif
