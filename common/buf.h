/*
 * buf.h - the one growable byte buffer of the program, with a size cap
 * (in the spirit of curl's lib/dynbuf.c: Curl_dyn_init(&b, toobig)).
 *
 * A buffer is embedded by its owner and starts empty; it always holds a
 * NUL after its bytes once anything was added, so kn_buf_str() is a C
 * string.  Appending past the cap fails with KN_ETOOBIG and frees the
 * contents (a half-built text is never used by mistake); memory itself
 * never fails (kn_xrealloc aborts).  A zeroed struct (KN_BUF_INIT) is an
 * empty buffer without a cap.
 */
#ifndef KN_COMMON_BUF_H
#define KN_COMMON_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct kn_buf {
    char *_p;
    size_t _len;
    size_t _cap; /* allocated */
    size_t _max; /* the cap: at most _max bytes (NUL not counted) */
};

#define KN_BUF_INIT                                                            \
    {                                                                          \
        NULL, 0, 0, 0                                                          \
    }

/* Start empty; at most max bytes may ever be held (0: no cap). */
void kn_buf_init(struct kn_buf *b, size_t max);

/* Append n bytes (may hold NULs).  0, or KN_ETOOBIG (contents freed). */
int kn_buf_addn(struct kn_buf *b, const void *data, size_t n);

/* Append the C string s. */
int kn_buf_add(struct kn_buf *b, const char *s);

/* Append one byte. */
int kn_buf_addc(struct kn_buf *b, char c);

/* Append printf-style text. */
int kn_buf_addf(struct kn_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int kn_buf_vaddf(struct kn_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Empty it (keeps the memory for reuse). */
void kn_buf_reset(struct kn_buf *b);

/* Empty it and overwrite every byte it ever held (a header that may hold
 * a token): the memory is kept for reuse. */
void kn_buf_wipe(struct kn_buf *b);

/* Free the memory; the buffer is empty again (its cap kept). */
void kn_buf_free(struct kn_buf *b);

/*
 * Hand the bytes to the caller: a NUL-terminated heap string ("" when
 * empty), its length in *len if len is not NULL.  The buffer is empty
 * afterwards and may be used again.
 */
char *kn_buf_take(struct kn_buf *b, size_t *len);

/* The bytes so far as a C string (never NULL; valid until the next
 * call on b), and their number. */
const char *kn_buf_str(const struct kn_buf *b);
size_t kn_buf_len(const struct kn_buf *b);

#endif
