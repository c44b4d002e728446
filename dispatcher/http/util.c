/*
 * util.c - small helpers shared by the HTTP files: a growable string
 * buffer, wiping secrets, hex digits, and JSON values built from outside
 * text or times.
 */
#include "dispatcher/http/http_int.h"

#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kn.h"
#include "common/text.h"

/* ------------------------------------------------------------ helpers */

int kn__httpd_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

void kn__httpd_sb_add(struct sbuf *b, const char *p, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        b->s = kn_xrealloc(b->s, cap);
        b->cap = cap;
    }
    memcpy(b->s + b->n, p, n);
    b->n += n;
    b->s[b->n] = '\0';
}

void kn__httpd_sb_addf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    char *s;
    int n;
    va_start(ap, fmt);
    n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        KN_PANIC("out of memory");
    kn__httpd_sb_add(b, s, (size_t)n);
    free(s);
}

void kn__httpd_sb_free(struct sbuf *b)
{
    free(b->s);
    memset(b, 0, sizeof(*b));
}

void kn__httpd_free_secret(char **s)
{
    kn_free_secret(*s);
    *s = NULL;
}

json_t *kn__httpd_jtime(long long ms)
{
    char buf[48];
    if (ms <= 0)
        return json_null();
    return json_string(kn_time_jst(ms, buf, sizeof(buf)));
}

char *kn__httpd_dupstr(const char *s)
{
    return s != NULL ? kn_xstrdup(s) : NULL;
}

json_t *kn__httpd_jstr_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

/*
 * A JSON string of outside text (a request path, a message that quotes
 * one): bytes that are not UTF-8 become \\xNN instead of the value being
 * dropped (json_string() refuses invalid UTF-8 and returns NULL).
 */
json_t *kn__httpd_jstr_text(const char *s)
{
    char *t = kn_text_utf8(s, strlen(s));
    json_t *j = json_string(t);
    free(t);
    return j;
}
