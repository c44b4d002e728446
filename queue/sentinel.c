/*
 * sentinel.c - Redis Sentinel discovery (see sentinel.h for the steps),
 * the synchronous connection every blocking caller uses (kairanctl,
 * kairand's purge and escalation steps), and kairand's +switch-master
 * watchers.
 *
 * The list of sentinels is shared by every connection of a process and
 * reordered by them (the first that answers moves to the front; one that
 * named a non-primary moves to the back), from the loop thread and from
 * the thread pool: a mutex guards the order.  The attached connections
 * and the watchers belong to the loop thread alone.
 *
 * What a sentinel says is not believed blindly: the address must be a
 * host name or a numeric address and a port, and the connection to it
 * must say ROLE master before anything is written.  Nothing here logs a
 * password; addresses of Redis servers and sentinels are host:port only.
 */
#include "sentinel.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/kn.h"
#include "common/log.h"
#include "config/config.h"
#include "queue/redis_uv.h"

struct sentinel_addr {
    int id; /* its place in redis.sentinels, for messages */
    int port;
    char host[256];
};

struct kn_sentinel {
    pthread_mutex_t mu; /* guards order[] */
    struct sentinel_addr order[KN_MAX_SENTINELS];
    int n;
    char *master_name;
    char *password; /* NULL: no AUTH (allowed explicitly) */
    int64_t timeout_ms;
    /* Loop thread only. */
    struct kn_redis **attached;
    size_t nattached, cap;
    struct kn_redis *watch[KN_MAX_SENTINELS];
    int nwatch;
    uint64_t switches;
};

struct kn_sentinel *kn_sentinel_new(const struct kn_config *cfg)
{
    struct kn_sentinel *s;
    const char *p = cfg->redis_sentinels;

    if (p == NULL || *p == '\0')
        return NULL;
    s = kn_xcalloc(1, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    while (s->n < KN_MAX_SENTINELS) {
        size_t len = strcspn(p, ",");
        struct sentinel_addr *a = &s->order[s->n];
        /* kn_config_load checked the list (kn__config_check_sentinels). */
        if (kn_hostport_parse(p, len, a->host, sizeof(a->host), &a->port) ==
            0) {
            a->id = s->n;
            s->n++;
        }
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
    s->master_name = kn_xstrdup(cfg->redis_master_name);
    s->password = cfg->redis_sentinel_password
                      ? kn_xstrdup(cfg->redis_sentinel_password)
                      : NULL;
    /* The guidelines' "short timeout": a sentinel that does not answer in
     * this time is skipped for the next one. */
    s->timeout_ms = cfg->redis_timeout_ms < 1000 ? cfg->redis_timeout_ms : 1000;
    return s;
}

void kn_sentinel_free(struct kn_sentinel *s)
{
    if (s == NULL)
        return;
    pthread_mutex_destroy(&s->mu);
    free(s->master_name);
    kn_free_secret(s->password);
    free(s->attached);
    free(s);
}

int64_t kn_sentinel_timeout_ms(const struct kn_sentinel *s)
{
    return s->timeout_ms;
}

uint64_t kn_sentinel_switches(const struct kn_sentinel *s)
{
    return s->switches;
}

void kn_sentinel_describe(struct kn_sentinel *s, int from, char *buf,
                          size_t len)
{
    snprintf(buf, len, "sentinel #%d", from + 1);
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->n; i++) {
        if (s->order[i].id == from) {
            snprintf(buf, len, "sentinel #%d (%s:%d)", from + 1,
                     s->order[i].host, s->order[i].port);
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
}

/* Move the sentinel with this id to position to (0 or s->n - 1). */
static void move_sentinel(struct kn_sentinel *s, int id, int front)
{
    struct sentinel_addr a;
    int i;
    pthread_mutex_lock(&s->mu);
    for (i = 0; i < s->n && s->order[i].id != id; i++)
        ;
    if (i < s->n) {
        a = s->order[i];
        if (front) {
            memmove(&s->order[1], &s->order[0], (size_t)i * sizeof(a));
            s->order[0] = a;
        } else {
            memmove(&s->order[i], &s->order[i + 1],
                    (size_t)(s->n - 1 - i) * sizeof(a));
            s->order[s->n - 1] = a;
        }
    }
    pthread_mutex_unlock(&s->mu);
}

void kn_sentinel_distrust(struct kn_sentinel *s, int from)
{
    move_sentinel(s, from, 0);
}

int kn_sentinel_role_is_master(const redisReply *rep)
{
    return rep != NULL && rep->type == REDIS_REPLY_ARRAY &&
           rep->elements >= 1 &&
           (rep->element[0]->type == REDIS_REPLY_STRING ||
            rep->element[0]->type == REDIS_REPLY_STATUS) &&
           strcmp(rep->element[0]->str, "master") == 0;
}

/* A host as a sentinel may name it: letters, digits, '.', '-', '_', ':'
 * (IPv6), 1-255 bytes. */
static int host_ok(const char *h, size_t len)
{
    if (len == 0 || len > 255)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (!isalnum((unsigned char)h[i]) && h[i] != '.' && h[i] != '-' &&
            h[i] != '_' && h[i] != ':')
            return 0;
    }
    return 1;
}

static struct timeval tv_of(int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

/*
 * Ask one sentinel.  Returns 1 with host and port, 0 with why (this one
 * cannot tell: unreachable, refused the password, does not know the name),
 * -1 with why (it answered nonsense).
 */
static int ask_one(struct kn_sentinel *s, const struct sentinel_addr *a,
                   char *host, size_t hostsz, int *port, char *why,
                   size_t whysz)
{
    redisContext *c;
    redisReply *r = NULL;
    int rc = 0;
    char *end;
    long p;

    c = redisConnectWithTimeout(a->host, a->port, tv_of(s->timeout_ms));
    if (c == NULL || c->err) {
        snprintf(why, whysz, "sentinel %s:%d: %s", a->host, a->port,
                 c ? c->errstr : "out of memory");
        goto out;
    }
    redisSetTimeout(c, tv_of(s->timeout_ms));
    if (s->password != NULL) {
        r = redisCommand(c, "AUTH %s", s->password);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            snprintf(why, whysz, "sentinel %s:%d: %s", a->host, a->port,
                     r ? "refused redis.sentinel_password_file's password"
                       : c->errstr);
            goto out;
        }
        freeReplyObject(r);
    }
    r = redisCommand(c, "SENTINEL get-master-addr-by-name %s", s->master_name);
    if (r == NULL) {
        snprintf(why, whysz, "sentinel %s:%d: %s", a->host, a->port, c->errstr);
        goto out;
    }
    if (r->type == REDIS_REPLY_NIL) {
        snprintf(why, whysz,
                 "sentinel %s:%d does not know a primary named "
                 "'%s' (redis.master_name)",
                 a->host, a->port, s->master_name);
        goto out;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(why, whysz, "sentinel %s:%d: %.80s", a->host, a->port, r->str);
        goto out;
    }
    rc = -1;
    snprintf(why, whysz, "sentinel %s:%d gave no usable address", a->host,
             a->port);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[1]->type != REDIS_REPLY_STRING ||
        !host_ok(r->element[0]->str, r->element[0]->len) ||
        r->element[0]->len >= hostsz)
        goto out;
    p = strtol(r->element[1]->str, &end, 10);
    if (*end != '\0' || end == r->element[1]->str || p < 1 || p > 65535)
        goto out;
    memcpy(host, r->element[0]->str, r->element[0]->len + 1);
    *port = (int)p;
    rc = 1;
out:
    if (r != NULL)
        freeReplyObject(r);
    if (c != NULL)
        redisFree(c);
    return rc;
}

int kn_sentinel_resolve(struct kn_sentinel *s, char *host, size_t hostsz,
                        int *port, int *from, char *why, size_t whysz)
{
    struct sentinel_addr order[KN_MAX_SENTINELS];
    int n, bad = 0;
    char one[200];

    pthread_mutex_lock(&s->mu);
    n = s->n;
    memcpy(order, s->order, sizeof(order));
    pthread_mutex_unlock(&s->mu);

    snprintf(why, whysz, "no sentinel configured");
    for (int i = 0; i < n; i++) {
        int rc = ask_one(s, &order[i], host, hostsz, port, one, sizeof(one));
        if (rc == 1) {
            if (i > 0)
                move_sentinel(s, order[i].id, 1);
            if (from != NULL)
                *from = order[i].id;
            return 0;
        }
        if (rc < 0)
            bad = 1;
        /* Keep the first reason: the front sentinel's. */
        if (i == 0)
            snprintf(why, whysz, "%s", one);
        else if (strlen(why) + strlen(one) + 3 < whysz)
            snprintf(why + strlen(why), whysz - strlen(why), "; %s", one);
    }
    return bad ? KN_EINVAL : KN_EAGAIN;
}

/* ---- the synchronous connection ---------------------------------------- */

static void pause_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/*
 * One attempt at host:port: connect, AUTH, SELECT, and with sentinels
 * ROLE.  Returns the context, or NULL with why and *retry (1: the world
 * may change, try again; 0: it will not, e.g. a wrong password).
 */
static redisContext *connect_once(const struct kn_config *cfg, const char *host,
                                  int port, int db, int check_role,
                                  int64_t timeout_ms, int *not_master,
                                  char *why, size_t whysz)
{
    redisContext *c = redisConnectWithTimeout(host, port, tv_of(timeout_ms));
    redisReply *r;

    *not_master = 0;
    if (c == NULL || c->err) {
        snprintf(why, whysz, "cannot reach Redis at %s:%d: %s", host, port,
                 c ? c->errstr : "out of memory");
        goto fail;
    }
    redisSetTimeout(c, tv_of(cfg->redis_timeout_ms));
    if (cfg->redis_user != NULL) {
        /* a Redis 6 ACL user ("nopass": any password, so "" for none) */
        r = redisCommand(c, "AUTH %s %s", cfg->redis_user,
                         cfg->redis_password ? cfg->redis_password : "");
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            snprintf(why, whysz, "Redis at %s:%d %s", host, port,
                     r ? "refused the user or its password"
                       : "did not answer AUTH");
            if (r != NULL)
                freeReplyObject(r);
            goto fail;
        }
        freeReplyObject(r);
    } else if (cfg->redis_password != NULL) {
        r = redisCommand(c, "AUTH %s", cfg->redis_password);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            snprintf(why, whysz, "Redis at %s:%d %s", host, port,
                     r ? "refused the password" : "did not answer AUTH");
            if (r != NULL)
                freeReplyObject(r);
            goto fail;
        }
        freeReplyObject(r);
    }
    if (db != 0) {
        r = redisCommand(c, "SELECT %d", db);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            snprintf(why, whysz, "cannot select Redis db %d", db);
            if (r != NULL)
                freeReplyObject(r);
            goto fail;
        }
        freeReplyObject(r);
    }
    if (check_role) {
        r = redisCommand(c, "ROLE");
        if (!kn_sentinel_role_is_master(r)) {
            *not_master = 1;
            snprintf(why, whysz,
                     "the sentinels named %s:%d, which is not a primary "
                     "(ROLE %s)",
                     host, port,
                     r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
                             r->element[0]->type == REDIS_REPLY_STRING
                         ? r->element[0]->str
                         : "gave no answer");
            if (r != NULL)
                freeReplyObject(r);
            goto fail;
        }
        freeReplyObject(r);
    }
    return c;
fail:
    if (c != NULL)
        redisFree(c);
    return NULL;
}

redisContext *kn_redis_connect_sync(const struct kn_config *cfg,
                                    struct kn_sentinel *s, int64_t timeout_ms,
                                    char *why, size_t whysz)
{
    char *urlhost = NULL, *pw = NULL;
    char host[256];
    int port = 6379, db = 0, from = -1, not_master;
    int64_t deadline = kn_mono_ms() + timeout_ms;
    redisContext *c = NULL;

    if (kn_redis_url_parse(cfg->redis_url, &urlhost, &port, &db, &pw) < 0) {
        snprintf(why, whysz, "redis.url cannot be parsed");
        return NULL;
    }
    kn_free_secret(pw);
    if (s == NULL) {
        c = connect_once(cfg, urlhost, port, db, 0, timeout_ms, &not_master,
                         why, whysz);
        free(urlhost);
        return c;
    }
    free(urlhost);
    if (s->password == NULL && !cfg->redis_sentinel_allow_no_password) {
        snprintf(why, whysz,
                 "redis.sentinels is set but there is no "
                 "redis.sentinel_password_file (or set "
                 "redis.sentinel_allow_no_password = yes on a closed "
                 "network)");
        return NULL;
    }
    /* Steps 1-3, again after a pause until the deadline: during a failover
     * the sentinels name the old primary until they have elected one. */
    for (;;) {
        int64_t left = deadline - kn_mono_ms();
        if (kn_sentinel_resolve(s, host, sizeof(host), &port, &from, why,
                                whysz) == 0) {
            c = connect_once(cfg, host, port, db, 1, left > 100 ? left : 100,
                             &not_master, why, whysz);
            if (c != NULL)
                return c;
            if (not_master)
                kn_sentinel_distrust(s, from);
        }
        if (kn_mono_ms() + 200 > deadline)
            return NULL;
        pause_ms(200);
    }
}

/* ---- kairand: attached connections and the watchers -------------------- */

void kn__sentinel_attach(struct kn_sentinel *s, struct kn_redis *r)
{
    if (s->nattached == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 8;
        s->attached = kn_xrealloc(s->attached, s->cap * sizeof(*s->attached));
    }
    s->attached[s->nattached++] = r;
}

void kn__sentinel_detach(struct kn_sentinel *s, struct kn_redis *r)
{
    for (size_t i = 0; i < s->nattached; i++) {
        if (s->attached[i] == r) {
            s->attached[i] = s->attached[--s->nattached];
            return;
        }
    }
}

/*
 * A message on +switch-master: "<name> <old-ip> <old-port> <new-ip>
 * <new-port>".  For our name, every attached connection is dropped: each
 * asks the sentinels again at once instead of writing to the old primary
 * (if it still runs, demoted) or waiting for a timeout.
 */
static void on_switch(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct kn_sentinel *s = arg;
    const char *msg;
    size_t nlen = strlen(s->master_name);
    char to[300] = "";

    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(rep->element[0]->str, "message") != 0 ||
        rep->element[2]->type != REDIS_REPLY_STRING)
        return; /* the subscribe confirmation, or the connection ended */
    msg = rep->element[2]->str;
    if (strncmp(msg, s->master_name, nlen) != 0 || msg[nlen] != ' ')
        return;
    {
        /* The new address, the last two words, for the log. */
        char ip[256];
        int port;
        if (sscanf(msg + nlen, " %*s %*d %255s %d", ip, &port) == 2 &&
            host_ok(ip, strlen(ip)))
            snprintf(to, sizeof(to), "%s:%d", ip, port);
    }
    s->switches++;
    kn_log(KN_LOG_WARN, "redis", "sentinels switched the primary; reconnecting",
           "to", to, NULL);
    for (size_t i = 0; i < s->nattached; i++)
        kn_redis_reset(s->attached[i], "sentinel: +switch-master");
}

static void on_watch_state(struct kn_redis *r, int up, void *arg)
{
    if (up && kn_redis_subscribe(r, "+switch-master", on_switch, arg) < 0)
        kn_log(KN_LOG_WARN, "redis", "cannot subscribe to +switch-master",
               NULL);
}

void kn_sentinel_watch(struct kn_sentinel *s, uv_loop_t *loop)
{
    struct sentinel_addr order[KN_MAX_SENTINELS];
    int n;

    pthread_mutex_lock(&s->mu);
    n = s->n;
    memcpy(order, s->order, sizeof(order));
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < n && s->nwatch < KN_MAX_SENTINELS; i++) {
        struct kn_redis_opts o;
        memset(&o, 0, sizeof(o));
        o.host = order[i].host;
        o.port = order[i].port;
        o.password = s->password;
        o.timeout_ms = s->timeout_ms > 500 ? s->timeout_ms : 500;
        o.name = "sentinel";
        s->watch[s->nwatch] = kn_redis_new(loop, &o, on_watch_state, s);
        kn_redis_start(s->watch[s->nwatch]);
        s->nwatch++;
    }
}

void kn_sentinel_unwatch(struct kn_sentinel *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < s->nwatch; i++)
        kn_redis_close(s->watch[i]);
    s->nwatch = 0;
}
