/*
 * staff.c - ending staff sessions and erasing a tenant's accounts on the
 * synchronous connection (staff.h).
 */
#include "queue/staff.h"

#include <stdlib.h>

#include "common/kn.h"
#include "queue/keys.h"

long long kn_staff_end_sessions(redisContext *c, const char *prefix,
                                const char *tenant, const char *login)
{
    char *sk = kn_key_staff(prefix, tenant, login),
         *ss = kn_key_staff_sessions(prefix, tenant, login);
    redisReply *r;
    long long n = 0;

    r = redisCommand(c, "EXISTS %s", sk);
    if (r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
        freeReplyObject(r);
        r = redisCommand(c, "HINCRBY %s gen 1", sk);
    }
    if (r == NULL) {
        n = -1;
        goto out;
    }
    freeReplyObject(r);
    r = redisCommand(c, "SMEMBERS %s", ss);
    if (r == NULL) {
        n = -1;
        goto out;
    }
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        char *k = kn_key_session(prefix, r->element[i]->str);
        redisReply *d = redisCommand(c, "DEL %s", k);
        if (d != NULL && d->type == REDIS_REPLY_INTEGER)
            n += d->integer;
        if (d != NULL)
            freeReplyObject(d);
        free(k);
    }
    freeReplyObject(r);
    r = redisCommand(c, "DEL %s", ss);
    if (r != NULL)
        freeReplyObject(r);
out:
    free(sk);
    free(ss);
    return n;
}

long long kn_staff_end_tenant_sessions(redisContext *c, const char *prefix,
                                       const char *tenant)
{
    char *k = kn_key_staffs(prefix, tenant);
    redisReply *r = redisCommand(c, "SMEMBERS %s", k);
    long long n = 0;
    free(k);
    if (r == NULL)
        return -1;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        long long e =
            kn_staff_end_sessions(c, prefix, tenant, r->element[i]->str);
        if (e < 0) {
            n = -1;
            break;
        }
        n += e;
    }
    freeReplyObject(r);
    return n;
}

long long kn_staff_erase_tenant(redisContext *c, const char *prefix,
                                const char *tenant)
{
    char *k = kn_key_staffs(prefix, tenant);
    redisReply *r = redisCommand(c, "SMEMBERS %s", k), *d;
    long long n = 0;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements;
         i++) {
        const char *login = r->element[i]->str;
        char *sk = kn_key_staff(prefix, tenant, login);
        long long e = kn_staff_end_sessions(c, prefix, tenant, login);
        if (e > 0)
            n += e;
        d = redisCommand(c, "DEL %s", sk);
        if (d != NULL && d->type == REDIS_REPLY_INTEGER)
            n += d->integer;
        if (d != NULL)
            freeReplyObject(d);
        free(sk);
    }
    if (r != NULL)
        freeReplyObject(r);
    d = redisCommand(c, "DEL %s", k);
    if (d != NULL && d->type == REDIS_REPLY_INTEGER)
        n += d->integer;
    if (d != NULL)
        freeReplyObject(d);
    free(k);
    return n;
}
