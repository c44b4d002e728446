/*
 * kn.c - error strings, aborting allocators, clocks and time formatting.
 * Nothing here knows about Redis, providers or the event loop.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "kn.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

int64_t kn__fake_now_ms;

const char *kn_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
#define XX(code, text)                                                         \
    case KN_##code:                                                            \
        return text;
        KN_ERRNO_MAP(XX)
#undef XX
    default:
        return "unknown error";
    }
}

static void oom(size_t n)
{
    fprintf(stderr, "kairan: out of memory allocating %zu bytes\n", n);
    abort();
}

void *kn_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom(n);
    return p;
}

void *kn_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        oom(n * size);
    return p;
}

void *kn_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom(n);
    return q;
}

char *kn_xstrdup(const char *s)
{
    return kn_xstrndup(s, strlen(s));
}

char *kn_xstrndup(const char *s, size_t n)
{
    char *p = kn_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *kn_xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *s;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        oom(strlen(fmt));
    va_end(ap);
    return s;
}

void kn__panic(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "kairan: PANIC at %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

void kn_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

int64_t kn_now_ms(void)
{
    struct timespec ts;
    if (kn__fake_now_ms > 0)
        return kn__fake_now_ms;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t kn_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *kn_time_jst(int64_t ms, char *buf, size_t len)
{
    /* JST has no daylight saving: a fixed +09:00 offset, no tz database. */
    time_t t = (time_t)(ms / 1000) + 9 * 3600;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL) { /* a year past int: not a real time */
        snprintf(buf, len, "?");
        return buf;
    }
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03d+09:00",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    return buf;
}

static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)**p))
            return -1;
        v = v * 10 + (**p - '0');
        (*p)++;
    }
    *out = v;
    return 0;
}

int kn_time_parse(const char *s, int64_t *ms)
{
    int Y, M, D, h, m, sec, frac = 0, oh = 0, om = 0, sign = 1;
    const char *p = s;
    struct tm tm;

    if (digits(&p, 4, &Y) || *p++ != '-' || digits(&p, 2, &M) || *p++ != '-' ||
        digits(&p, 2, &D) || (*p != 'T' && *p != 't' && *p != ' '))
        return KN_EINVAL;
    p++;
    if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &m) || *p++ != ':' ||
        digits(&p, 2, &sec))
        return KN_EINVAL;
    if (*p == '.') {
        int scale = 100;
        p++;
        if (!isdigit((unsigned char)*p))
            return KN_EINVAL;
        while (isdigit((unsigned char)*p)) {
            frac += (*p - '0') * scale;
            scale /= 10;
            p++;
        }
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '-' ? -1 : 1;
        p++;
        if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om))
            return KN_EINVAL;
    } else {
        return KN_EINVAL;
    }
    if (*p != '\0' || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 ||
        sec > 60 || oh > 23 || om > 59)
        return KN_EINVAL;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    *ms = ((int64_t)timegm(&tm) - sign * (oh * 3600 + om * 60)) * 1000 + frac;
    return 0;
}

int kn_duration_parse(const char *s, int64_t *ms)
{
    char *end;
    long long v;
    int64_t mult;

    if (s == NULL || !isdigit((unsigned char)*s))
        return KN_EINVAL;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || v < 0)
        return KN_EINVAL;
    if (strcmp(end, "") == 0 || strcmp(end, "ms") == 0)
        mult = 1;
    else if (strcmp(end, "s") == 0)
        mult = 1000;
    else if (strcmp(end, "m") == 0)
        mult = 60 * 1000;
    else if (strcmp(end, "h") == 0)
        mult = 3600 * 1000;
    else if (strcmp(end, "d") == 0)
        mult = 86400LL * 1000;
    else
        return KN_EINVAL;
    if (v > INT64_MAX / mult)
        return KN_EINVAL;
    *ms = v * mult;
    return 0;
}

int kn_duration_parse_unit(const char *s, int64_t *ms)
{
    size_t n = s != NULL ? strspn(s, "0123456789") : 0;
    if (n == 0 || (s[n] == '\0' && strspn(s, "0") != n))
        return KN_EINVAL;
    return kn_duration_parse(s, ms);
}

void kn_random(void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            KN_PANIC("getrandom: %s", strerror(errno));
        }
        p += r;
        n -= (size_t)r;
    }
}

uint64_t kn_random_below(uint64_t n)
{
    uint64_t x, limit = UINT64_MAX - UINT64_MAX % n;
    do {
        kn_random(&x, sizeof(x));
    } while (x >= limit);
    return x % n;
}

static int key_safe(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

static int safe_name(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max || !key_safe((unsigned char)s[0]) || s[0] == '-' ||
        s[0] == '_' || s[0] == '.')
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!key_safe((unsigned char)s[i]))
            return 0;
    return 1;
}

int kn_tenant_valid(const char *s)
{
    return safe_name(s, 64);
}

int kn_name_valid(const char *s)
{
    return safe_name(s, 128);
}

char *kn_key_part(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s), o = 0;
    char *out = kn_xmalloc(3 * n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (key_safe(c)) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return out;
}

void kn_free_secret(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}
