/*
 * utf8.h - UTF-8 text: validity, character boundaries, and lengths in
 * UTF-16 code units (the unit LINE counts its text limit in).
 *
 * Pure functions over borrowed bytes; nothing allocates.
 */
#ifndef KN_COMMON_UTF8_H
#define KN_COMMON_UTF8_H

#include <stddef.h>

/*
 * Length of the well-formed UTF-8 character at s (at most n bytes
 * available, n >= 1), or 0 if the bytes there are not one: no overlong
 * forms, no surrogates D800..DFFF, nothing above U+10FFFF.
 */
size_t kn_utf8_char_len(const unsigned char *s, size_t n);

/*
 * The same, and the character's code point in *cp: the one UTF-8 decoder.
 * Returns 0 (and leaves *cp alone) if s[0..n) does not start with a
 * well-formed character, or n == 0.
 */
size_t kn_utf8_decode(const char *s, size_t n, unsigned long *cp);

/* 1 if s[0..n) is valid UTF-8 (no overlongs, surrogates or > U+10FFFF). */
int kn_utf8_valid(const char *s, size_t n);

/*
 * The largest k <= n such that s[0..k) ends on a character boundary (the
 * byte at s[k] is not a continuation byte).  s must hold at least n + 1
 * bytes when n < strlen(s) (it reads s[n]); for n == strlen(s) it reads
 * the terminating NUL.
 */
size_t kn_utf8_floor(const char *s, size_t n);

/*
 * The largest k <= n at which UTF-8 text s[0..len) may be cut without
 * splitting a user-perceived character (an extended grapheme cluster,
 * Unicode UAX #29: an emoji ZWJ sequence, a flag, a skin tone, a base and
 * its combining marks).  When the cluster holding n starts at 0 (one
 * cluster longer than n), the answer is kn_utf8_floor(s, n): a cut must
 * keep something.  n >= len returns len.
 */
size_t kn_utf8_grapheme_floor(const char *s, size_t len, size_t n);

/* UTF-16 code units of UTF-8 text s[0..n) (astral characters count 2; a
 * stray byte counts 1). */
size_t kn_utf16_len(const char *s, size_t n);

/*
 * How many bytes of s[0..n) fit into limit UTF-16 code units, ending on a
 * character boundary (a surrogate pair is never split).
 */
size_t kn_utf16_prefix(const char *s, size_t n, size_t limit);

/*
 * Characters (code points) of s[0..n) when it is one line of plain text:
 * valid UTF-8 with no control character (C0 including TAB, CR and LF,
 * DEL, C1).  Returns the count, or -1 for invalid UTF-8 or a control.
 * For short outside texts (an answer's choice, a guardian's comment)
 * whose limit is in characters, not bytes.
 */
long kn_utf8_plain_chars(const char *s, size_t n);

#endif
