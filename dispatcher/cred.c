/*
 * cred.c - the adapters' shared credentials (adapter.h, struct
 * kn_adapter_host): a provider token that the provider wants one of for
 * every connection and process (APNs), kept in Redis, sealed, in the hash
 * cred:<provider>:<account> (model/cred.h), on the daemon's "cmd"
 * connection.
 *
 * A read is one HMGET; an offer is queue/lua/cred_offer.lua, a
 * compare-and-set on the record's generation, so that exactly one of the
 * processes renewing at once stores its credential and the others get
 * that one in the reply.  Nothing here waits for Redis: when it is not
 * connected the call is refused at once (the adapter keeps its own token
 * meanwhile), and a call cut short by a timeout answers an error.  This
 * file never logs a credential; the adapter logs what it does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"
#include "common/argv.h"
#include "common/kn.h"
#include "common/log.h"
#include "dispatcher/daemon.h"
#include "model/cred.h"
#include "queue/keys.h"
#include "queue/scripts.h"

struct cred_call {
    struct kn_daemon *d;
    char *name; /* "<provider>:<account>": bound inside the sealed value */
    kn_shared_cred_cb *cb;
    void *arg;
};

static struct cred_call *call_new(struct kn_daemon *d, const char *provider,
                                  const char *account, kn_shared_cred_cb *cb,
                                  void *arg)
{
    struct cred_call *c = kn_xcalloc(1, sizeof(*c));
    c->d = d;
    c->name = kn_xasprintf("%s:%s", provider, account);
    c->cb = cb;
    c->arg = arg;
    return c;
}

static void call_free(struct cred_call *c)
{
    free(c->name);
    free(c);
}

static const char *rstr(const redisReply *r)
{
    return r != NULL && r->type == REDIS_REPLY_STRING ? r->str : NULL;
}

/*
 * Answer a call from the record's four fields (n, iat, early, v as
 * replied): nothing stored, or the credential opened.  A record that is
 * not one, or does not open with this key file (another installation's
 * under the same prefix), is an error: the adapter keeps its own.
 */
static void answer(struct cred_call *c, const redisReply *const f[4])
{
    struct kn_cred_record rec;
    struct kn_shared_cred sc;
    char *value = NULL;
    int rc = kn_cred_record_parse(rstr(f[0]), rstr(f[1]), rstr(f[2]),
                                  rstr(f[3]), &rec);
    memset(&sc, 0, sizeof(sc));
    if (rc == KN_ENOENT) {
        c->cb(0, &sc, c->arg);
        return;
    }
    if (rc == 0)
        rc = kn_cred_open(c->d->kr, c->name, rec.iat_ms, rec.sealed, &value);
    if (rc < 0) {
        kn_log(KN_LOG_ERROR, "cred",
               "the shared credential cannot be used (another key file? "
               "written by hand?)",
               "name", c->name, "error", kn_strerror(rc), NULL);
        c->cb(rc, NULL, c->arg);
        return;
    }
    sc.value = value;
    sc.iat_ms = rec.iat_ms;
    sc.gen = rec.gen;
    sc.early = rec.early;
    c->cb(0, &sc, c->arg);
    kn_free_secret(value);
}

/* A reply that is no answer: NULL (timeout, connection lost, shutting
 * down) or an error.  Returns its code, or 0 when rep is a reply. */
static int failed(const struct cred_call *c, const redisReply *rep)
{
    if (rep == NULL)
        return KN_ETIMEDOUT;
    if (rep->type == REDIS_REPLY_ERROR) {
        kn_log(KN_LOG_ERROR, "cred", "Redis refused the shared credential",
               "name", c->name, "error", rep->str, NULL);
        return KN_EREDIS;
    }
    return 0;
}

static void on_read(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct cred_call *c = arg;
    int rc = failed(c, rep);
    if (rc == 0 && (rep->type != REDIS_REPLY_ARRAY || rep->elements != 4))
        rc = KN_EREDIS;
    if (rc < 0)
        c->cb(rc, NULL, c->arg);
    else
        answer(c, (const redisReply *const *)rep->element);
    call_free(c);
}

static int cred_get(void *ctx, const char *provider, const char *account,
                    kn_shared_cred_cb *cb, void *arg)
{
    struct kn_daemon *d = ctx;
    struct cred_call *c = call_new(d, provider, account, cb, arg);
    char *key = kn_key_cred(d->prefix, provider, account);
    int rc = kn_redis_cmd(d->cmd, on_read, c, "HMGET %s n iat early v", key);
    free(key);
    if (rc < 0)
        call_free(c);
    return rc;
}

/* cred_offer.lua's reply: {stored, n, iat, early, v}.  n is a number;
 * an n of 0 (nothing stored) answers "none". */
static void on_offered(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct cred_call *c = arg;
    int rc = failed(c, rep);
    if (rc == 0 && (rep->type != REDIS_REPLY_ARRAY || rep->elements != 5 ||
                    rep->element[1]->type != REDIS_REPLY_INTEGER))
        rc = KN_EREDIS;
    if (rc < 0) {
        c->cb(rc, NULL, c->arg);
    } else {
        char n[24];
        redisReply nr = {.type = REDIS_REPLY_STRING, .str = n};
        const redisReply *f[4] = {&nr, rep->element[2], rep->element[3],
                                  rep->element[4]};
        snprintf(n, sizeof(n), "%lld", rep->element[1]->integer);
        nr.len = strlen(n);
        if (rep->element[1]->integer == 0) {
            struct kn_shared_cred none = {0};
            c->cb(0, &none, c->arg);
        } else {
            answer(c, f);
        }
    }
    call_free(c);
}

static int cred_offer(void *ctx, const char *provider, const char *account,
                      const struct kn_shared_cred *sc, kn_shared_cred_cb *cb,
                      void *arg)
{
    struct kn_daemon *d = ctx;
    struct cred_call *c;
    struct kn_argv a;
    int rc;
    if (!kn_redis_up(d->cmd))
        return KN_ECLOSED; /* not sealed for nothing */
    c = call_new(d, provider, account, cb, arg);
    kn_argv_init(&a);
    kn_argv_take(&a, kn_key_cred(d->prefix, provider, account));
    kn_argv_addi(&a, (int64_t)sc->gen);
    kn_argv_addi(&a, sc->iat_ms);
    kn_argv_add(&a, sc->early ? "1" : "0");
    kn_argv_take(&a, kn_cred_seal(d->kr, c->name, sc->iat_ms, sc->value));
    kn_argv_addi(&a, sc->ttl_ms > 0 ? sc->ttl_ms : 2 * 3600 * 1000);
    rc = kn_redis_eval(d->cmd, &kn_script_cred_offer, on_offered, c, 1, a.n,
                       (const char **)a.v, a.len);
    kn_argv_free(&a);
    if (rc < 0)
        call_free(c);
    return rc;
}

void kn__cred_host_init(struct kn_daemon *d)
{
    d->host.ctx = d;
    d->host.cred_get = cred_get;
    d->host.cred_offer = cred_offer;
}
