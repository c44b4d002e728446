/*
 * retention.c - deleting what is past retention (rules in retention.h).
 *
 * Synchronous hiredis code, so that "kairanctl purge" and kairand's daily
 * timer (dispatcher/purge.c, which runs it on a libuv worker thread with
 * its own short-lived connection) share it.  Several kairand processes
 * each try once a day; the lock <prefix>lock:purge (SET NX PX, released
 * only by its owner) makes them take turns, and a purge that finds nothing
 * to do costs a few reads.
 */
#include "queue/retention.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/kn.h"
#include "common/log.h"
#include "config/config.h"
#include "model/directory.h"
#include "queue/keys.h"
#include "queue/lua.h"
#include "queue/registration.h"
#include "queue/staff.h"

#define JST_MS  (9 * 3600 * 1000LL)
#define DAY_MS  (86400 * 1000LL)
#define LOCK_MS 600000

/* ---------------------------------------------------------------- dates */

static int64_t jst_midnight(int y, int mon, int mday)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = mday;
    return (int64_t)timegm(&tm) * 1000 - JST_MS;
}

static void jst_date(int64_t ms, int *y, int *mon, int *mday)
{
    time_t t = (time_t)((ms + JST_MS) / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    *y = tm.tm_year + 1900;
    *mon = tm.tm_mon + 1;
    *mday = tm.tm_mday;
}

int64_t kn_purge_fy_cutoff(int64_t now, int fiscal_years)
{
    int y, m, dd, fy, keep_from;
    jst_date(now, &y, &m, &dd);
    fy = m >= 4 ? y : y - 1;
    keep_from = fy - (fiscal_years - 1);
    if (m == 4 || m == 5)
        keep_from--; /* deleted from June on */
    return jst_midnight(keep_from, 4, 1);
}

int64_t kn_purge_years_ago(int64_t now, int years)
{
    int y, m, dd;
    int64_t into = 0;
    jst_date(now, &y, &m, &dd);
    into = (now + JST_MS) % DAY_MS;
    if (m == 2 && dd == 29)
        dd = 28;
    return jst_midnight(y - years, m, dd) + into;
}

/* ---------------------------------------------------------------- redis */

struct ctx {
    redisContext *c;
    const char *prefix;
    char *err;
    size_t errlen;
    int failed;
};

static redisReply *cmd(struct ctx *x, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;
    va_start(ap, fmt);
    r = redisvCommand(x->c, fmt, ap);
    va_end(ap);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        if (!x->failed)
            snprintf(x->err, x->errlen, "Redis: %s", r ? r->str : x->c->errstr);
        x->failed = 1;
        if (r != NULL)
            freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* Run a command for its effect only. */
static long long run(struct ctx *x, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;
    long long n = 0;
    va_start(ap, fmt);
    r = redisvCommand(x->c, fmt, ap);
    va_end(ap);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        if (!x->failed)
            snprintf(x->err, x->errlen, "Redis: %s", r ? r->str : x->c->errstr);
        x->failed = 1;
    } else if (r->type == REDIS_REPLY_INTEGER) {
        n = r->integer;
    }
    if (r != NULL)
        freeReplyObject(r);
    return n;
}

/* A broadcast with its records and its producer's idempotency key. */
static void delete_broadcast(struct ctx *x, const char *id)
{
    const char *p = x->prefix;
    char *k[8] = {kn_key_bc(p, id, ""),     kn_key_bc(p, id, ":r"),
                  kn_key_bc(p, id, ":aud"), kn_key_bc(p, id, ":ack"),
                  kn_key_bc(p, id, ":m"),   kn_key_bc(p, id, ":fam"),
                  kn_key_bc(p, id, ":gs"),  kn_key_bc(p, id, ":seen")};
    redisReply *h = cmd(x, "HMGET %s tenant key", k[0]);
    if (h && h->type == REDIS_REPLY_ARRAY && h->elements == 2 &&
        h->element[0]->type == REDIS_REPLY_STRING) {
        char *tk = kn_key_tbcs(p, h->element[0]->str);
        run(x, "ZREM %s %s", tk, id);
        free(tk);
    }
    if (h && h->type == REDIS_REPLY_ARRAY && h->elements == 2 &&
        h->element[0]->type == REDIS_REPLY_STRING &&
        h->element[1]->type == REDIS_REPLY_STRING) {
        char *ik = kn_key_idem(p, h->element[0]->str);
        /* Only if the key still names this broadcast. */
        redisReply *v = cmd(x, "HGET %s %s", ik, h->element[1]->str);
        if (v && v->type == REDIS_REPLY_STRING && strcmp(v->str, id) == 0)
            run(x, "HDEL %s %s", ik, h->element[1]->str);
        if (v)
            freeReplyObject(v);
        free(ik);
    }
    if (h)
        freeReplyObject(h);
    run(x, "DEL %s %s %s %s %s %s %s %s", k[0], k[1], k[2], k[3], k[4], k[5],
        k[6], k[7]);
    for (size_t i = 0; i < KN_ARRAY_SIZE(k); i++)
        free(k[i]);
    run(x, "ZREM %sbcs %s", p, id);
    run(x, "ZREM %srejected %s", p, id);
    run(x, "ZREM %sactive %s", p, id);
    run(x, "ZREM %sended %s", p, id);
}

/* Broadcasts created before cutoff: whole (whole != 0) or only their
 * delivery records. */
static long long purge_broadcasts(struct ctx *x, int64_t cutoff, int whole)
{
    static const char *const idx[] = {"bcs", "rejected"};
    long long n = 0;
    for (size_t k = 0; k < KN_ARRAY_SIZE(idx); k++) {
        redisReply *r = cmd(x, "ZRANGEBYSCORE %s%s -inf (%lld", x->prefix,
                            idx[k], (long long)cutoff);
        for (size_t i = 0; r && i < r->elements; i++) {
            const char *id = r->element[i]->str;
            if (whole) {
                delete_broadcast(x, id);
                n++;
            } else {
                char *bk = kn_key_bc(x->prefix, id, ""),
                     *rk = kn_key_bc(x->prefix, id, ":r"),
                     *mk = kn_key_bc(x->prefix, id, ":m"),
                     *fk = kn_key_bc(x->prefix, id, ":fam"),
                     *gk = kn_key_bc(x->prefix, id, ":gs");
                /* the personal links' member and family sets, and whom a
                 * next_guardian broadcast went to, go with the delivery
                 * records */
                run(x, "DEL %s %s", fk, gk);
                free(fk);
                free(gk);
                if (run(x, "DEL %s %s", rk, mk) > 0) {
                    run(x, "HSET %s r_purged_ms %lld", bk,
                        (long long)kn_now_ms());
                    n++;
                }
                free(bk);
                free(rk);
                free(mk);
            }
        }
        if (r != NULL)
            freeReplyObject(r);
    }
    return n;
}

/* The DLQ's entries of tenant t (named by their "tenant" field, or by the
 * tenant of the broadcast their "bc" field names: call this before the
 * broadcasts go); returns entries deleted. */
static long long erase_tenant_dlq(struct ctx *x, const char *t)
{
    long long n = 0;
    char from[48] = "-";
    for (;;) {
        redisReply *r = cmd(x, "XRANGE %sdlq %s + COUNT 500", x->prefix, from);
        size_t got = r && r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
        for (size_t i = 0; i < got; i++) {
            const redisReply *e = r->element[i], *kv;
            const char *bc = NULL, *tn = NULL;
            int mine = 0;
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
                e->element[0]->type != REDIS_REPLY_STRING)
                continue;
            kv = e->element[1];
            for (size_t j = 0;
                 kv->type == REDIS_REPLY_ARRAY && j + 1 < kv->elements;
                 j += 2) {
                if (kv->element[j]->type != REDIS_REPLY_STRING ||
                    kv->element[j + 1]->type != REDIS_REPLY_STRING)
                    continue;
                if (strcmp(kv->element[j]->str, "tenant") == 0)
                    tn = kv->element[j + 1]->str;
                else if (strcmp(kv->element[j]->str, "bc") == 0)
                    bc = kv->element[j + 1]->str;
            }
            if (tn != NULL && strcmp(tn, t) == 0) {
                mine = 1;
            } else if (bc != NULL && bc[0] != '\0') {
                char *bk = kn_key_bc(x->prefix, bc, "");
                redisReply *h = cmd(x, "HGET %s tenant", bk);
                mine = h && h->type == REDIS_REPLY_STRING &&
                       strcmp(h->str, t) == 0;
                if (h)
                    freeReplyObject(h);
                free(bk);
            }
            if (mine)
                n += run(x, "XDEL %sdlq %s", x->prefix, e->element[0]->str);
            /* the next page starts after this entry */
            snprintf(from, sizeof(from), "(%s", e->element[0]->str);
        }
        if (r)
            freeReplyObject(r);
        if (got < 500 || x->failed)
            break;
    }
    return n;
}

/* Erase every key of tenant t; returns keys deleted. */
static long long erase_tenant(struct ctx *x, const char *t, int64_t now)
{
    const char *p = x->prefix;
    long long n = 0;
    redisReply *r, *h;

    r = cmd(x, "SMEMBERS %srcpts:%s", p, t);
    for (size_t i = 0; r && i < r->elements; i++) {
        const char *id = r->element[i]->str;
        json_t *c = NULL;
        struct kn_dir_rec d;
        char *rk = kn_key_rcpt(p, t, id);
        h = cmd(x, "HGET %s " KN_DIR_HASH_FIELD, rk);
        if (h && h->type == REDIS_REPLY_STRING)
            c = json_loads(h->str, 0, NULL);
        if (h)
            freeReplyObject(h);
        /* the record, then each further guardian ("g"): their indexes */
        for (size_t gi = 0;; gi++) {
            json_t *one =
                gi == 0 ? c
                        : json_array_get(json_object_get(c, KN_DIR_GUARDIANS),
                                         gi - 1);
            if (gi > 0 && one == NULL)
                break;
            kn_dir_parse(one, &d); /* not a record: nothing indexed */
            if (d.email_index)
                n += run(x, "DEL %sbidx:%s:email:%s", p, t, d.email_index);
            if (d.line_index)
                n += run(x, "DEL %sbidx:%s:line:%s", p, t, d.line_index);
            for (size_t j = 0; j < d.npush; j++) {
                if (d.push[j].index)
                    n += run(x, "DEL %sbidx:%s:push:%s", p, t, d.push[j].index);
            }
            kn_dir_rec_free(&d);
            if (c == NULL)
                break;
        }
        json_decref(c);
        n += run(x, "DEL %s", rk);
        free(rk);
    }
    if (r)
        freeReplyObject(r);
    n += run(x, "DEL %srcpts:%s", p, t);
    r = cmd(x, "SMEMBERS %sgroups:%s", p, t);
    for (size_t i = 0; r && i < r->elements; i++) {
        char *gk = kn_key_grp(p, t, r->element[i]->str);
        n += run(x, "DEL %s", gk);
        free(gk);
    }
    if (r)
        freeReplyObject(r);
    n += run(x, "DEL %sgroups:%s", p, t);
    {
        char *ck = kn_key_cats(p, t); /* the tenant's category list */
        n += run(x, "DEL %s", ck);
        free(ck);
        ck = kn_key_templates(p, t); /* the console's templates */
        n += run(x, "DEL %s", ck);
        free(ck);
        ck = kn_key_tbcs(p, t); /* its index of broadcasts (my page) */
        n += run(x, "DEL %s", ck);
        free(ck);
    }
    {
        /* the suppressed addresses and soft bounces (issue 18) */
        char *sk = kn_key_supp(p, t), *fk = kn_key_soft(p, t);
        n += run(x, "DEL %s", sk);
        n += run(x, "DEL %s", fk);
        free(sk);
        free(fk);
    }
    run(x, "SREM %stenants %s", p, t);
    n += kn_staff_erase_tenant(x->c, p, t); /* accounts and sessions */
    {
        long long e = kn_reg_erase_tenant(x->c, p, t); /* sheets, reg: */
        if (e > 0)
            n += e;
    }

    r = cmd(x, "SMEMBERS %stokens", p);
    for (size_t i = 0; r && i < r->elements; i++) {
        const char *id = r->element[i]->str;
        h = cmd(x, "HGET %stoken:%s tenant", p, id);
        if (h && h->type == REDIS_REPLY_STRING && strcmp(h->str, t) == 0) {
            n += run(x, "DEL %stoken:%s", p, id);
            run(x, "SREM %stokens %s", p, id);
        }
        if (h)
            freeReplyObject(h);
    }
    if (r)
        freeReplyObject(r);

    /* its dead letters (which hold sealed addresses), while its
     * broadcasts still name their tenant */
    n += erase_tenant_dlq(x, t);

    for (int k = 0; k < 2; k++) {
        r = cmd(x, "ZRANGE %s%s 0 -1", p, k == 0 ? "bcs" : "rejected");
        for (size_t i = 0; r && i < r->elements; i++) {
            const char *id = r->element[i]->str;
            char *bk = kn_key_bc(p, id, "");
            h = cmd(x, "HGET %s tenant", bk);
            free(bk);
            if (h && h->type == REDIS_REPLY_STRING && strcmp(h->str, t) == 0) {
                delete_broadcast(x, id);
                n++;
            }
            if (h)
                freeReplyObject(h);
        }
        if (r)
            freeReplyObject(r);
    }
    run(x, "HSET %stenant:%s erased_ms %lld", p, t, (long long)now);
    run(x, "ZREM %stenants:closed %s", p, t);
    return n;
}

/* ---------------------------------------------------------------- audit */

/* Keep the lines of one JSON-lines file whose "time" is >= cutoff (and
 * every line that does not parse: an audit log loses nothing by doubt).
 * Rewritten through a temporary file and rename(2); lines appended by
 * other processes while it ran are carried over before the rename. */
static long long purge_file(const char *path, int64_t cutoff, char *err,
                            size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *line = NULL, *tmp;
    size_t cap = 0;
    ssize_t n;
    long long dropped = 0;
    long end;
    int fd;
    FILE *o;

    if (f == NULL)
        return 0;
    tmp = kn_xasprintf("%s.purge.%d", path, (int)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    o = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (o == NULL) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        fclose(f);
        free(tmp);
        return -1;
    }
    while ((n = getline(&line, &cap, f)) > 0) {
        json_t *j = json_loadb(line, (size_t)n, 0, NULL);
        const char *t = json_string_value(json_object_get(j, "time"));
        int64_t ms;
        if (t != NULL && kn_time_parse(t, &ms) == 0 && ms < cutoff)
            dropped++;
        else
            fwrite(line, 1, (size_t)n, o);
        json_decref(j);
    }
    end = ftell(f);
    if (dropped > 0) {
        /* Lines that arrived meanwhile. */
        char buf[8192];
        size_t r;
        fclose(f);
        f = fopen(path, "rb");
        if (f != NULL && fseek(f, end, SEEK_SET) == 0) {
            while ((r = fread(buf, 1, sizeof(buf), f)) > 0)
                fwrite(buf, 1, r, o);
        }
        fflush(o);
        fsync(fileno(o));
    }
    if (f != NULL)
        fclose(f);
    if (fclose(o) != 0 || (dropped > 0 && rename(tmp, path) != 0)) {
        snprintf(err, errlen, "cannot replace %s: %s", path, strerror(errno));
        unlink(tmp);
        dropped = -1;
    } else if (dropped == 0) {
        unlink(tmp);
    }
    free(line);
    free(tmp);
    return dropped;
}

static long long purge_audit(const char *dir, int64_t cutoff, char *err,
                             size_t errlen)
{
    DIR *dp;
    struct dirent *de;
    long long total = 0;
    if (dir == NULL || dir[0] == '\0' || (dp = opendir(dir)) == NULL)
        return 0;
    while ((de = readdir(dp)) != NULL) {
        size_t l = strlen(de->d_name);
        char *path;
        long long n;
        if (l < 7 || strcmp(de->d_name + l - 6, ".jsonl") != 0)
            continue;
        path = kn_xasprintf("%s/%s", dir, de->d_name);
        n = purge_file(path, cutoff, err, errlen);
        free(path);
        if (n < 0) {
            total = -1;
            break;
        }
        total += n;
    }
    closedir(dp);
    return total;
}

/* ---------------------------------------------------------------- run */

int kn_purge_run(redisContext *c, const struct kn_config *cfg, int64_t now,
                 struct kn_purge_stats *st, char *err, size_t errlen)
{
    struct ctx x = {c, cfg->redis_prefix, err, errlen, 0};
    char owner[64], aerr[300] = "";
    redisReply *r;
    int rc = 0;

    memset(st, 0, sizeof(*st));
    err[0] = '\0';
    snprintf(owner, sizeof(owner), "%d:%lld", (int)getpid(),
             (long long)kn_mono_ms());
    r = cmd(&x, "SET %slock:purge %s NX PX %d", x.prefix, owner, LOCK_MS);
    if (r == NULL)
        return KN_EIO;
    if (r->type == REDIS_REPLY_NIL) {
        freeReplyObject(r);
        return KN_EAGAIN;
    }
    freeReplyObject(r);

    st->fy_cutoff_ms =
        kn_purge_fy_cutoff(now, (int)cfg->retention_fiscal_years);
    st->delivery_cutoff_ms = now - cfg->retention_delivery_days * DAY_MS;
    st->audit_cutoff_ms =
        kn_purge_years_ago(now, (int)cfg->retention_audit_years);

    st->broadcasts = purge_broadcasts(&x, st->fy_cutoff_ms, 1);
    st->delivery_records = purge_broadcasts(&x, st->delivery_cutoff_ms, 0);
    /* Dead letters are delivery records too (a job with its sealed
     * addresses, a reason): those added before the cutoff go (a stream
     * entry's id is the time it was added). */
    st->dlq_entries = run(&x, "XTRIM %sdlq MINID %lld", x.prefix,
                          (long long)st->delivery_cutoff_ms);

    /* Staff accounts deactivated before the oldest kept fiscal year go as
     * their broadcasts do; the broadcasts keep the sender's name. */
    st->staff_accounts =
        kn_staff_purge_deactivated(c, x.prefix, st->fy_cutoff_ms);
    if (st->staff_accounts < 0) {
        st->staff_accounts = 0;
        if (!x.failed)
            snprintf(err, errlen, "Redis: staff accounts could not be read");
        x.failed = 1;
    }

    st->registrations = kn_reg_purge_orphans(c, x.prefix);
    if (st->registrations < 0) {
        st->registrations = 0;
        if (!x.failed)
            snprintf(err, errlen, "Redis: registrations could not be read");
        x.failed = 1;
    }

    r = cmd(&x, "ZRANGEBYSCORE %stenants:closed -inf %lld", x.prefix,
            (long long)(now - cfg->retention_closed_tenant_days * DAY_MS));
    for (size_t i = 0; r && i < r->elements; i++) {
        st->tenant_keys += erase_tenant(&x, r->element[i]->str, now);
        st->tenants++;
    }
    if (r)
        freeReplyObject(r);

    st->audit_lines =
        purge_audit(cfg->audit_dir, st->audit_cutoff_ms, aerr, sizeof(aerr));
    if (st->audit_lines < 0 && !x.failed)
        snprintf(err, errlen, "%s", aerr);
    if (x.failed || st->audit_lines < 0)
        rc = KN_EIO;
    if (st->audit_lines < 0)
        st->audit_lines = 0;

    run(&x, "EVAL %s 1 %slock:purge %s", kn_lua_purge_unlock, x.prefix, owner);
    return rc;
}

/* ---- tbcs:<tenant>, filled once from bcs (0.5.0) ---- */

long long kn_tbcs_fill(redisContext *c, const char *prefix, char *err,
                       size_t errlen)
{
    struct ctx x = {c, prefix, err, errlen, 0};
    long long added = 0;
    redisReply *r = cmd(&x, "HEXISTS %smigrations tbcs", prefix);
    if (r == NULL)
        return -1;
    if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
        freeReplyObject(r);
        return 0; /* done before */
    }
    freeReplyObject(r);
    /* By rank, 500 at a time: new broadcasts land at the end and add
     * themselves (submit.lua); ZADD of one already there changes nothing. */
    for (long long from = 0;; from += 500) {
        redisReply *z = cmd(&x, "ZRANGE %sbcs %lld %lld WITHSCORES", prefix,
                            from, from + 499);
        size_t n;
        if (z == NULL)
            return -1;
        n = z->type == REDIS_REPLY_ARRAY ? z->elements / 2 : 0;
        for (size_t i = 0; i < n; i++) {
            char *k = kn_key_bc(prefix, z->element[2 * i]->str, "");
            redisAppendCommand(c, "HGET %s tenant", k);
            free(k);
        }
        {
            /* Every HGET's answer first, then the ZADDs, pipelined too. */
            redisReply **t = kn_xcalloc(n + 1, sizeof(*t));
            size_t sent = 0;
            int bad = 0;
            for (size_t i = 0; i < n; i++) {
                void *v = NULL;
                if (redisGetReply(c, &v) != REDIS_OK) {
                    bad = 1;
                    break;
                }
                t[i] = v;
            }
            for (size_t i = 0; !bad && i < n; i++) {
                char *tk;
                if (t[i]->type != REDIS_REPLY_STRING ||
                    !kn_tenant_valid(t[i]->str))
                    continue;
                tk = kn_key_tbcs(prefix, t[i]->str);
                redisAppendCommand(c, "ZADD %s %s %s", tk,
                                   z->element[2 * i + 1]->str,
                                   z->element[2 * i]->str);
                free(tk);
                sent++;
            }
            for (size_t i = 0; !bad && i < sent; i++) {
                void *v = NULL;
                if (redisGetReply(c, &v) != REDIS_OK) {
                    bad = 1;
                    break;
                }
                if (((redisReply *)v)->type == REDIS_REPLY_INTEGER)
                    added += ((redisReply *)v)->integer;
                freeReplyObject(v);
            }
            for (size_t i = 0; i < n; i++)
                if (t[i] != NULL)
                    freeReplyObject(t[i]);
            free(t);
            if (bad) {
                snprintf(err, errlen, "Redis: %s", c->errstr);
                freeReplyObject(z);
                return -1;
            }
        }
        freeReplyObject(z);
        if (x.failed)
            return -1;
        if (n < 500)
            break;
    }
    run(&x, "HSET %smigrations tbcs %lld", prefix, (long long)kn_now_ms());
    return x.failed ? -1 : added;
}
