/*
 * staff.c - ending staff sessions, erasing a tenant's accounts and the
 * accounts deactivated long ago, on the synchronous connection (staff.h).
 */
#include "queue/staff.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/codec.h"
#include "common/kn.h"
#include "model/password.h"
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

/* One tenant's accounts deactivated before cutoff_ms; -1 on a Redis
 * failure. */
static long long purge_tenant(redisContext *c, const char *prefix,
                              const char *tenant, long long cutoff_ms)
{
    char *k = kn_key_staffs(prefix, tenant);
    redisReply *r = redisCommand(c, "SMEMBERS %s", k), *h, *d;
    long long n = 0;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        if (r != NULL)
            freeReplyObject(r);
        free(k);
        return -1;
    }
    for (size_t i = 0; i < r->elements && n >= 0; i++) {
        const char *login = r->element[i]->str;
        char *sk = kn_key_staff(prefix, tenant, login);
        long long off;
        h = redisCommand(c, "HMGET %s active deactivated_ms", sk);
        if (h == NULL || h->type != REDIS_REPLY_ARRAY || h->elements != 2) {
            n = -1;
        } else if (h->element[0]->type == REDIS_REPLY_STRING &&
                   strcmp(h->element[0]->str, "0") == 0 &&
                   h->element[1]->type == REDIS_REPLY_STRING &&
                   (off = strtoll(h->element[1]->str, NULL, 10)) > 0 &&
                   off < cutoff_ms) {
            if (kn_staff_end_sessions(c, prefix, tenant, login) < 0)
                n = -1;
            d = redisCommand(c, "DEL %s", sk);
            if (d != NULL)
                freeReplyObject(d);
            d = redisCommand(c, "SREM %s %s", k, login);
            if (d == NULL)
                n = -1;
            else
                freeReplyObject(d);
            if (n >= 0)
                n++;
        }
        if (h != NULL)
            freeReplyObject(h);
        free(sk);
    }
    freeReplyObject(r);
    free(k);
    return n;
}

long long kn_staff_purge_deactivated(redisContext *c, const char *prefix,
                                     long long cutoff_ms)
{
    char cursor[32] = "0";
    size_t plen = strlen(prefix) + strlen("staffs:");
    long long n = 0;
    do {
        redisReply *r = redisCommand(c, "SCAN %s MATCH %sstaffs:* COUNT 200",
                                     cursor, prefix);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            if (r != NULL)
                freeReplyObject(r);
            return -1;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            const redisReply *key = r->element[1]->element[i];
            long long m;
            /* Tenants are checked names (no encoding, no ':'), so the
             * key's tail is the tenant; anything else is not ours. */
            if (key->type != REDIS_REPLY_STRING || key->len <= plen ||
                !kn_tenant_valid(key->str + plen))
                continue;
            m = purge_tenant(c, prefix, key->str + plen, cutoff_ms);
            if (m < 0) {
                freeReplyObject(r);
                return -1;
            }
            n += m;
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return n;
}

/* ---- account changes (staff.h) ---- */

/* One command; 0, or KN_EIO when Redis failed or answered an error. */
static int run(redisContext *c, redisReply *r)
{
    int rc = r != NULL && r->type != REDIS_REPLY_ERROR ? 0 : KN_EIO;
    (void)c;
    if (r != NULL)
        freeReplyObject(r);
    return rc;
}

int kn_staff_exists(redisContext *c, const char *prefix, const char *tenant,
                    const char *login)
{
    char *k = kn_key_staff(prefix, tenant, login);
    redisReply *r = redisCommand(c, "EXISTS %s", k);
    int e = r == NULL || r->type != REDIS_REPLY_INTEGER ? -1 : r->integer == 1;
    if (r != NULL)
        freeReplyObject(r);
    free(k);
    return e;
}

int kn_staff_add(redisContext *c, const char *prefix, const char *tenant,
                 const char *login, const char *name, const char *role,
                 const char *groups, char pw[21])
{
    char enc[KN_PW_ENCODED], id[17];
    unsigned char rid[8];
    char *k = kn_key_staff(prefix, tenant, login), *ks;
    redisReply *r;
    int rc;

    /* Logins are unique per tenant: the record is claimed first. */
    r = redisCommand(c, "HSETNX %s login %s", k, login);
    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        rc = run(c, r);
        free(k);
        return rc < 0 ? rc : KN_EIO;
    }
    rc = r->integer == 1 ? 0 : KN_EEXIST;
    freeReplyObject(r);
    if (rc < 0) {
        free(k);
        return rc;
    }
    kn_password_initial(pw);
    kn_password_hash(pw, enc);
    kn_random(rid, sizeof(rid));
    kn_hex_encode(rid, sizeof(rid), id);
    rc = run(c, redisCommand(c,
                             "HSET %s id %s name %s role %s groups %s active 1 "
                             "hash %s must_change 1 created_ms %lld gen 1",
                             k, id, name, role, groups ? groups : "", enc,
                             (long long)kn_now_ms()));
    free(k);
    ks = kn_key_staffs(prefix, tenant);
    if (rc == 0)
        rc = run(c, redisCommand(c, "SADD %s %s", ks, login));
    free(ks);
    return rc;
}

/* The account's field changes, then every session ended. */
static int change(redisContext *c, const char *prefix, const char *tenant,
                  const char *login, const char *fmt, const char *a,
                  const char *b)
{
    char *k;
    int rc, e = kn_staff_exists(c, prefix, tenant, login);
    if (e <= 0)
        return e < 0 ? KN_EIO : KN_ENOENT;
    k = kn_key_staff(prefix, tenant, login);
    rc = run(c, redisCommand(c, fmt, k, a, b));
    free(k);
    if (rc == 0 && kn_staff_end_sessions(c, prefix, tenant, login) < 0)
        rc = KN_EIO;
    return rc;
}

int kn_staff_deactivate(redisContext *c, const char *prefix, const char *tenant,
                        const char *login)
{
    char now[24];
    snprintf(now, sizeof(now), "%lld", (long long)kn_now_ms());
    return change(c, prefix, tenant, login,
                  "HSET %s active %s deactivated_ms %s", "0", now);
}

int kn_staff_reset(redisContext *c, const char *prefix, const char *tenant,
                   const char *login, char pw[21])
{
    char enc[KN_PW_ENCODED];
    int e = kn_staff_exists(c, prefix, tenant, login);
    if (e <= 0)
        return e < 0 ? KN_EIO : KN_ENOENT;
    kn_password_initial(pw);
    kn_password_hash(pw, enc);
    return change(c, prefix, tenant, login, "HSET %s hash %s must_change %s",
                  enc, "1");
}

int kn_staff_set_role(redisContext *c, const char *prefix, const char *tenant,
                      const char *login, const char *role, const char *groups)
{
    return change(c, prefix, tenant, login, "HSET %s role %s groups %s", role,
                  groups ? groups : "");
}
