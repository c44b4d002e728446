/*
 * buf.c - the capped growable buffer (buf.h).  Capacity doubles from 64
 * bytes; the cap is checked before anything is written, so a buffer never
 * holds more than its owner allowed.
 */
#include "buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kn.h"

void kn_buf_init(struct kn_buf *b, size_t max)
{
    b->_p = NULL;
    b->_len = b->_cap = 0;
    b->_max = max;
}

/* Room for n more bytes and the NUL; KN_ETOOBIG over the cap. */
static int grow(struct kn_buf *b, size_t n)
{
    size_t need, cap, max = b->_max != 0 ? b->_max : SIZE_MAX - 1;
    if (n > max || b->_len > max - n) {
        kn_buf_free(b);
        return KN_ETOOBIG;
    }
    need = b->_len + n + 1;
    if (need <= b->_cap)
        return 0;
    cap = b->_cap ? b->_cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    b->_p = kn_xrealloc(b->_p, cap);
    b->_cap = cap;
    return 0;
}

int kn_buf_addn(struct kn_buf *b, const void *data, size_t n)
{
    int rc = grow(b, n);
    if (rc < 0)
        return rc;
    if (n > 0)
        memcpy(b->_p + b->_len, data, n);
    b->_len += n;
    b->_p[b->_len] = '\0';
    return 0;
}

int kn_buf_add(struct kn_buf *b, const char *s)
{
    return kn_buf_addn(b, s, strlen(s));
}

int kn_buf_addc(struct kn_buf *b, char c)
{
    return kn_buf_addn(b, &c, 1);
}

int kn_buf_vaddf(struct kn_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    int n, rc;
    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        KN_PANIC("vsnprintf failed for \"%s\"", fmt);
    rc = grow(b, (size_t)n);
    if (rc < 0)
        return rc;
    vsnprintf(b->_p + b->_len, (size_t)n + 1, fmt, ap);
    b->_len += (size_t)n;
    return 0;
}

int kn_buf_addf(struct kn_buf *b, const char *fmt, ...)
{
    va_list ap;
    int rc;
    va_start(ap, fmt);
    rc = kn_buf_vaddf(b, fmt, ap);
    va_end(ap);
    return rc;
}

void kn_buf_reset(struct kn_buf *b)
{
    b->_len = 0;
    if (b->_p != NULL)
        b->_p[0] = '\0';
}

void kn_buf_wipe(struct kn_buf *b)
{
    if (b->_p != NULL)
        explicit_bzero(b->_p, b->_cap);
    b->_len = 0;
}

void kn_buf_free(struct kn_buf *b)
{
    free(b->_p);
    b->_p = NULL;
    b->_len = b->_cap = 0;
}

char *kn_buf_take(struct kn_buf *b, size_t *len)
{
    char *p = b->_p != NULL ? b->_p : kn_xstrdup("");
    if (len != NULL)
        *len = b->_len;
    b->_p = NULL;
    b->_len = b->_cap = 0;
    return p;
}

const char *kn_buf_str(const struct kn_buf *b)
{
    return b->_p != NULL ? b->_p : "";
}

size_t kn_buf_len(const struct kn_buf *b)
{
    return b->_len;
}
