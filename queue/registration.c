/*
 * registration.c - retention and tenant close for registration sheets
 * and what guardians registered (registration.h).  Synchronous: run by
 * kairanctl and kairand's purge module off the event loop's hot path,
 * as queue/staff.c is.
 */
#include "queue/registration.h"

#include <stdlib.h>
#include <string.h>

#include "common/kn.h"
#include "queue/keys.h"

/* DEL key; adds the count to *n, or sets *n to -1 on a failure. */
static void del(redisContext *c, const char *key, long long *n)
{
    redisReply *d = redisCommand(c, "DEL %s", key);
    if (d == NULL || d->type != REDIS_REPLY_INTEGER)
        *n = -1;
    else if (*n >= 0)
        *n += d->integer;
    if (d != NULL)
        freeReplyObject(d);
}

/* SMEMBERS of key, or NULL after setting *n to -1. */
static redisReply *members(redisContext *c, const char *key, long long *n)
{
    redisReply *r = redisCommand(c, "SMEMBERS %s", key);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        if (r != NULL)
            freeReplyObject(r);
        *n = -1;
        return NULL;
    }
    return r;
}

long long kn_reg_void_sheets(redisContext *c, const char *prefix,
                             const char *tenant)
{
    char *k = kn_key_sheets(prefix, tenant);
    long long n = 0;
    redisReply *r = members(c, k, &n);
    for (size_t i = 0; r && i < r->elements; i++) {
        char *sk = kn_key_sheet(prefix, r->element[i]->str);
        del(c, sk, &n);
        free(sk);
    }
    if (r)
        freeReplyObject(r);
    free(k);
    return n;
}

/* The children with a sheet or a registration: the "r" of each sheet of
 * sheets:<T> and the members of regd:<T>, into ids (a JSON-free list of
 * heap strings, NULL-terminated; duplicates are harmless). */
static char **children(redisContext *c, const char *prefix, const char *tenant,
                       long long *n)
{
    char *sk = kn_key_sheets(prefix, tenant), *rk = kn_key_regd(prefix, tenant);
    redisReply *s = members(c, sk, n), *g = members(c, rk, n), *h;
    size_t cap = (s ? s->elements : 0) + (g ? g->elements : 0), m = 0;
    char **ids = kn_xcalloc(cap + 1, sizeof(*ids));
    for (size_t i = 0; s && i < s->elements; i++) {
        char *k = kn_key_sheet(prefix, s->element[i]->str);
        h = redisCommand(c, "HGET %s r", k);
        if (h != NULL && h->type == REDIS_REPLY_STRING)
            ids[m++] = kn_xstrdup(h->str);
        if (h != NULL)
            freeReplyObject(h);
        free(k);
    }
    for (size_t i = 0; g && i < g->elements; i++)
        ids[m++] = kn_xstrdup(g->element[i]->str);
    if (s)
        freeReplyObject(s);
    if (g)
        freeReplyObject(g);
    free(sk);
    free(rk);
    return ids;
}

static void free_list(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

long long kn_reg_erase_tenant(redisContext *c, const char *prefix,
                              const char *tenant)
{
    long long n = 0;
    char **ids = children(c, prefix, tenant, &n), *k;
    for (size_t i = 0; ids[i]; i++) {
        k = kn_key_reg(prefix, tenant, ids[i]);
        del(c, k, &n);
        free(k);
    }
    free_list(ids);
    {
        long long v = kn_reg_void_sheets(c, prefix, tenant);
        if (v < 0)
            n = -1;
        else if (n >= 0)
            n += v;
    }
    k = kn_key_reg_devices(prefix, tenant); /* the app's credentials */
    {
        redisReply *r = members(c, k, &n);
        for (size_t i = 0; r && i < r->elements; i++) {
            char *dk = kn_key_reg_device(prefix, r->element[i]->str);
            del(c, dk, &n);
            free(dk);
        }
        if (r)
            freeReplyObject(r);
    }
    del(c, k, &n);
    free(k);
    k = kn_key_sheets(prefix, tenant);
    del(c, k, &n);
    free(k);
    k = kn_key_regd(prefix, tenant);
    del(c, k, &n);
    free(k);
    return n;
}

/* One tenant's children that left the directory: their registration and
 * their sheet go. */
static void purge_tenant(redisContext *c, const char *prefix, const char *t,
                         long long *n)
{
    char **ids = children(c, prefix, t, n);
    for (size_t i = 0; ids[i]; i++) {
        char *rk = kn_key_rcpt(prefix, t, ids[i]);
        redisReply *e = redisCommand(c, "EXISTS %s", rk), *h;
        free(rk);
        if (e == NULL || e->type != REDIS_REPLY_INTEGER) {
            *n = -1;
        } else if (e->integer == 0) {
            char *gk = kn_key_reg(prefix, t, ids[i]);
            h = redisCommand(c, "HGET %s sheet", gk);
            if (h != NULL && h->type == REDIS_REPLY_STRING) {
                char *sk = kn_key_sheet(prefix, h->str),
                     *ss = kn_key_sheets(prefix, t);
                redisReply *x = redisCommand(c, "SREM %s %s", ss, h->str);
                if (x)
                    freeReplyObject(x);
                del(c, sk, n);
                free(sk);
                free(ss);
            }
            if (h != NULL)
                freeReplyObject(h);
            del(c, gk, n);
            free(gk);
            gk = kn_key_regd(prefix, t);
            h = redisCommand(c, "SREM %s %s", gk, ids[i]);
            if (h)
                freeReplyObject(h);
            free(gk);
        }
        if (e != NULL)
            freeReplyObject(e);
    }
    free_list(ids);
}

long long kn_reg_purge_orphans(redisContext *c, const char *prefix)
{
    char *k = kn_xasprintf("%stenants", prefix);
    long long n = 0;
    redisReply *r = members(c, k, &n);
    free(k);
    for (size_t i = 0; r && i < r->elements; i++)
        purge_tenant(c, prefix, r->element[i]->str, &n);
    if (r)
        freeReplyObject(r);
    return n;
}
