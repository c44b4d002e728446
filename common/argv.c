/*
 * argv.c - growable string lists for Redis commands.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "argv.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn.h"

void kn_argv_init(struct kn_argv *a)
{
    a->v = NULL;
    a->len = NULL;
    a->n = a->cap = 0;
}

void kn_argv_clear(struct kn_argv *a)
{
    for (int i = 0; i < a->n; i++)
        free(a->v[i]);
    a->n = 0;
}

void kn_argv_free(struct kn_argv *a)
{
    kn_argv_clear(a);
    free(a->v);
    free(a->len);
    kn_argv_init(a);
}

static void push(struct kn_argv *a, char *s, size_t n)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 16;
        a->v = kn_xrealloc(a->v, (size_t)a->cap * sizeof(*a->v));
        a->len = kn_xrealloc(a->len, (size_t)a->cap * sizeof(*a->len));
    }
    a->v[a->n] = s;
    a->len[a->n] = n;
    a->n++;
}

void kn_argv_addn(struct kn_argv *a, const char *s, size_t n)
{
    push(a, kn_xstrndup(s, n), n);
}

void kn_argv_add(struct kn_argv *a, const char *s)
{
    kn_argv_addn(a, s, strlen(s));
}

void kn_argv_take(struct kn_argv *a, char *s)
{
    push(a, s, strlen(s));
}

void kn_argv_addf(struct kn_argv *a, const char *fmt, ...)
{
    va_list ap;
    char *s;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        KN_PANIC("out of memory");
    va_end(ap);
    kn_argv_take(a, s);
}

void kn_argv_addi(struct kn_argv *a, int64_t v)
{
    kn_argv_addf(a, "%lld", (long long)v);
}

void kn_argv_extend(struct kn_argv *a, const struct kn_argv *b)
{
    for (int i = 0; i < b->n; i++)
        kn_argv_addn(a, b->v[i], b->len[i]);
}

void kn_argv_move(struct kn_argv *a, struct kn_argv *b)
{
    for (int i = 0; i < b->n; i++)
        push(a, b->v[i], b->len[i]);
    b->n = 0;
}
