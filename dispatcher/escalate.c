/*
 * escalate.c - escalation of unanswered confirmations (安否確認).
 *
 * A broadcast with "ack": true and "escalate_after" re-sends, once that
 * time has passed since it started, to every recipient who has not
 * confirmed yet, on the first channel the recipient has that this
 * broadcast has not used for them (their own channel order first, then
 * the broadcast's, then e-mail, LINE, push).  Each broadcast escalates
 * once: the first process to set escalated_ms (HSETNX) does it.  The new
 * jobs go through the fallback script, so one address still gets at most
 * one job per broadcast and channel, and the broadcast's counts grow
 * (n:<channel>:fallback, "escalated").
 *
 * It runs off the loop (uv_queue_work) every two seconds with its own short
 * synchronous connection, like the purge, and reads only broadcasts of the
 * last two days.
 */
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/argv.h"
#include "common/kn.h"
#include "common/log.h"
#include "config/config.h"
#include "dispatcher/daemon.h"
#include "dispatcher/module.h"
#include "model/directory.h"
#include "queue/scripts.h"
#include "queue/keys.h"

#define ESCALATE_EVERY_MS 2000
#define LOOKBACK_MS       (2 * 86400 * 1000LL)

struct escalator {
    struct kn_daemon *d;
    uv_timer_t timer;
    uv_work_t work;
    int running, closing;
    long long jobs;
    char err[200];
};

static char *pkey(const struct kn_config *cfg, const char *fmt, const char *a,
                  const char *b)
{
    char *tail = kn_xasprintf(fmt, a, b), *k;
    k = kn_xasprintf("%s%s", cfg->redis_prefix, tail);
    free(tail);
    return k;
}

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static const char *hv(redisReply *r, size_t i)
{
    return r && r->type == REDIS_REPLY_ARRAY && i < r->elements &&
                   r->element[i]->type == REDIS_REPLY_STRING
               ? r->element[i]->str
               : NULL;
}

/* The recipient's contact on channel ch: sealed address, bindex and (push)
 * platform; 0 if it has none. */
static int contact(json_t *r, int ch, const char **a, const char **i,
                   const char **k)
{
    *k = NULL;
    if (ch == KN_CH_EMAIL) {
        *a = jstr(r, KN_DIR_EMAIL);
        *i = jstr(r, KN_DIR_EMAIL_INDEX);
    } else if (ch == KN_CH_LINE) {
        *a = jstr(r, KN_DIR_LINE);
        *i = jstr(r, KN_DIR_LINE_INDEX);
    } else {
        json_t *t = json_array_get(json_object_get(r, KN_DIR_PUSH), 0);
        *a = jstr(t, KN_DIR_PUSH_TOKEN);
        *i = jstr(t, KN_DIR_PUSH_INDEX);
        *k = jstr(t, KN_DIR_PUSH_PLATFORM);
    }
    return *a != NULL && *i != NULL;
}

/* Escalate one recipient; returns 1 if a job was enqueued. */
static int escalate_one(redisContext *c, const struct kn_config *cfg,
                        const char *bc, json_t *r, const char *rid,
                        redisReply *states, const char *const order_in[],
                        int urgent, long long expires, long long now)
{
    int order[8], n = 0;
    json_t *pref = json_object_get(r, KN_DIR_CHANNELS), *v;
    size_t idx;
    if (json_is_true(json_object_get(r, KN_DIR_OFF)))
        return 0; /* a deactivated guardian (model/directory.h) */
    json_array_foreach(pref, idx, v)
    {
        int ch =
            json_is_string(v) ? kn_channel_parse(json_string_value(v)) : -1;
        if (ch >= 0 && n < 8)
            order[n++] = ch;
    }
    for (int k = 0; order_in[k] && n < 8; k++) {
        int ch = kn_channel_parse(order_in[k]);
        if (ch >= 0)
            order[n++] = ch;
    }
    for (int k = 0; k < KN_CH__COUNT && n < 8; k++)
        order[n++] = k;
    for (int k = 0; k < n; k++) {
        const char *a, *i, *pf;
        char field[96], q[32];
        int used = 0;
        struct kn_argv av;
        json_t *j;
        redisReply *rep;
        if (!contact(r, order[k], &a, &i, &pf))
            continue;
        snprintf(field, sizeof(field), "%s:%s", kn_channel_name(order[k]), i);
        for (size_t s = 0; states && s + 1 < states->elements; s += 2) {
            if (strcmp(states->element[s]->str, field) == 0)
                used = 1;
        }
        if (used)
            continue;
        snprintf(q, sizeof(q), "%s:%s", kn_channel_name(order[k]),
                 urgent ? "urgent" : "normal");
        j = json_object();
        json_object_set_new(j, "b", json_string(bc));
        json_object_set_new(j, "q", json_string(q));
        json_object_set_new(j, "key", json_string(field));
        json_object_set_new(j, "r", json_string(rid));
        json_object_set_new(j, "a", json_string(a));
        json_object_set_new(j, "i", json_string(i));
        json_object_set_new(j, "n", json_integer(0));
        json_object_set_new(j, "t", json_integer(now));
        json_object_set_new(j, "x", json_integer(expires));
        if (pf)
            json_object_set_new(j, "k", json_string(pf));
        kn_argv_init(&av);
        kn_argv_add(&av, "EVAL");
        kn_argv_add(&av, kn_script_fallback.src);
        kn_argv_add(&av, "3");
        kn_argv_take(&av, kn_key_bc(cfg->redis_prefix, bc, ""));
        kn_argv_take(&av, kn_key_bc(cfg->redis_prefix, bc, ":r"));
        kn_argv_take(&av, pkey(cfg, "q:%s%s", q, ""));
        kn_argv_add(&av, field);
        kn_argv_add(&av, rid);
        kn_argv_take(&av, json_dumps(j, JSON_COMPACT));
        json_decref(j);
        rep = redisCommandArgv(c, av.n, (const char **)av.v, av.len);
        kn_argv_free(&av);
        used = rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
        if (rep)
            freeReplyObject(rep);
        return used;
    }
    return 0;
}

/* Escalate every due broadcast; returns jobs enqueued or -1. */
static long long escalate_run(redisContext *c, const struct kn_config *cfg,
                              long long now)
{
    char *bcs = pkey(cfg, "bcs%s%s", "", "");
    redisReply *ids =
        redisCommand(c, "ZRANGEBYSCORE %s %lld +inf", bcs, now - LOOKBACK_MS);
    long long total = 0;
    free(bcs);
    if (ids == NULL || ids->type != REDIS_REPLY_ARRAY) {
        if (ids)
            freeReplyObject(ids);
        return -1;
    }
    for (size_t b = 0; b < ids->elements; b++) {
        const char *bc = ids->element[b]->str;
        char *bk = kn_key_bc(cfg->redis_prefix, bc, ""), *ak, *rk, *uk;
        redisReply *m = redisCommand(
            c,
            "HMGET %s ack escalate_ms created_ms send_at_ms escalated_ms "
            "status expires_ms priority channels tenant",
            bk);
        long long esc = hv(m, 1) ? atoll(hv(m, 1)) : 0,
                  start = hv(m, 3) && atoll(hv(m, 3)) > 0 ? atoll(hv(m, 3))
                          : hv(m, 2)                      ? atoll(hv(m, 2))
                                                          : 0,
                  expires = hv(m, 6) ? atoll(hv(m, 6)) : 0, n = 0;
        const char *st = hv(m, 5);
        redisReply *ok, *acked, *states, *aud, *old_done = NULL;
        char *chans, *save = NULL;
        const char *order[4] = {NULL, NULL, NULL, NULL};
        int no = 0;
        if (!hv(m, 0) || strcmp(hv(m, 0), "1") != 0 || esc <= 0 ||
            hv(m, 4) != NULL || st == NULL || strcmp(st, "cancelled") == 0 ||
            strcmp(st, "rejected") == 0 || now < start + esc ||
            (expires > 0 && now >= expires)) {
            freeReplyObject(m);
            free(bk);
            continue;
        }
        ok = redisCommand(c, "HSETNX %s escalated_ms %lld", bk, now);
        if (ok == NULL || ok->type != REDIS_REPLY_INTEGER || ok->integer != 1) {
            if (ok)
                freeReplyObject(ok);
            freeReplyObject(m);
            free(bk);
            continue; /* another process escalates it */
        }
        freeReplyObject(ok);
        /* The broadcast is not done until the re-sent jobs are: before any
         * is queued it is made "not fully expanded" again (so a worker that
         * finishes the first re-sent job cannot end it while the others are
         * still being queued) and active; expand_done below ends it when
         * every job is final.  (Undoing done_ms after queueing them raced
         * with the workers and could leave it never done.) */
        {
            char *act = pkey(cfg, "active%s%s", "", "");
            old_done = redisCommand(c, "HGET %s done_ms", bk);
            ok = redisCommand(c, "MULTI");
            if (ok)
                freeReplyObject(ok);
            ok = redisCommand(c, "HSET %s expanded 0", bk);
            if (ok)
                freeReplyObject(ok);
            ok = redisCommand(c, "HDEL %s done_ms", bk);
            if (ok)
                freeReplyObject(ok);
            ok = redisCommand(c, "ZADD %s NX %lld %s", act, now, bc);
            if (ok)
                freeReplyObject(ok);
            ok = redisCommand(c, "EXEC");
            if (ok)
                freeReplyObject(ok);
            free(act);
        }
        ak = kn_key_bc(cfg->redis_prefix, bc, ":ack");
        rk = kn_key_bc(cfg->redis_prefix, bc, ":r");
        uk = kn_key_bc(cfg->redis_prefix, bc, ":aud");
        acked = redisCommand(c, "HKEYS %s", ak);
        states = redisCommand(c, "HGETALL %s", rk);
        aud = redisCommand(c, "LRANGE %s 0 -1", uk);
        chans = kn_xstrdup(hv(m, 8) ? hv(m, 8) : "");
        for (char *t = strtok_r(chans, ",", &save); t && no < 3;
             t = strtok_r(NULL, ",", &save))
            order[no++] = t;
        for (size_t i = 0;
             aud && aud->type == REDIS_REPLY_ARRAY && i < aud->elements; i++) {
            const char *e = aud->element[i]->str;
            json_t *r = NULL;
            char *rid = NULL;
            int confirmed = 0;
            if (strncmp(e, "i:", 2) == 0) {
                r = json_loads(e + 2, 0, NULL);
                rid = kn_xstrdup(jstr(r, KN_DIR_ID) ? jstr(r, KN_DIR_ID) : "?");
            } else if (strncmp(e, "d:", 2) == 0) {
                char *k = kn_key_rcpt(cfg->redis_prefix,
                                      hv(m, 9) ? hv(m, 9) : "", e + 2);
                redisReply *h =
                    redisCommand(c, "HMGET %s " KN_DIR_HASH_FIELD " active", k);
                free(k);
                if (hv(h, 0) && !(hv(h, 1) && strcmp(hv(h, 1), "0") == 0))
                    r = json_loads(hv(h, 0), 0, NULL);
                if (h)
                    freeReplyObject(h);
                rid = kn_xstrdup(e + 2);
            }
            for (size_t a = 0; acked && acked->type == REDIS_REPLY_ARRAY &&
                               a < acked->elements;
                 a++) {
                if (rid && strcmp(acked->element[a]->str, rid) == 0)
                    confirmed = 1;
            }
            if (r != NULL && !confirmed) {
                redisReply *sr =
                    states && states->type == REDIS_REPLY_ARRAY ? states : NULL;
                int urgent = hv(m, 7) && strcmp(hv(m, 7), "urgent") == 0;
                json_t *g;
                size_t gi;
                n += escalate_one(c, cfg, bc, r, rid, sr, order, urgent,
                                  expires, now);
                /* the child's other guardians (model/directory.h "g") */
                json_array_foreach(json_object_get(r, KN_DIR_GUARDIANS), gi, g)
                {
                    if (json_is_object(g))
                        n += escalate_one(c, cfg, bc, g, rid, sr, order, urgent,
                                          expires, now);
                }
            }
            json_decref(r);
            free(rid);
        }
        ok = redisCommand(c, "HSET %s escalated %lld", bk, n);
        if (ok)
            freeReplyObject(ok);
        if (n == 0 && old_done != NULL &&
            old_done->type == REDIS_REPLY_STRING) {
            /* Nothing re-sent: it ended when it had ended. */
            ok = redisCommand(c, "HSET %s done_ms %s", bk, old_done->str);
            if (ok)
                freeReplyObject(ok);
        }
        {
            char *act = pkey(cfg, "active%s%s", "", "");
            char nows[24];
            snprintf(nows, sizeof(nows), "%lld", now);
            ok = redisCommand(c, "EVAL %s 2 %s %s %s %s",
                              kn_script_expand_done.src, bk, act, bc, nows);
            if (ok)
                freeReplyObject(ok);
            free(act);
        }
        if (old_done)
            freeReplyObject(old_done);
        kn_logf(KN_LOG_INFO, "escalate",
                "broadcast %s: %lld unconfirmed recipients re-sent on their "
                "next channel",
                bc, n);
        total += n;
        free(chans);
        if (acked)
            freeReplyObject(acked);
        if (states)
            freeReplyObject(states);
        if (aud)
            freeReplyObject(aud);
        freeReplyObject(m);
        free(ak);
        free(rk);
        free(uk);
        free(bk);
    }
    freeReplyObject(ids);
    return total;
}

static void esc_work(uv_work_t *w)
{
    struct escalator *e = kn_container_of(w, struct escalator, work);
    redisContext *c = kn__redis_sync(e->d->cfg);
    e->jobs = c != NULL ? escalate_run(c, e->d->cfg, kn_now_ms()) : -1;
    if (c != NULL)
        redisFree(c);
}

static void esc_done(uv_work_t *w, int status)
{
    struct escalator *e = kn_container_of(w, struct escalator, work);
    e->running = 0;
    if (e->closing == 2) {
        free(e);
        return;
    }
    if (e->jobs > 0) {
        for (int ch = 0; ch < KN_CH__COUNT; ch++) {
            if (e->d->workers[ch])
                kn__worker_kick(e->d->workers[ch]);
        }
    }
}

static void on_timer(uv_timer_t *t)
{
    struct escalator *e = t->data;
    if (e->running || e->closing || e->d->stopping)
        return;
    e->running = 1;
    if (uv_queue_work(e->d->loop, &e->work, esc_work, esc_done) != 0)
        e->running = 0;
}

static void on_closed(uv_handle_t *h)
{
    struct escalator *e = h->data;
    if (!e->running)
        free(e);
    else
        e->closing = 2; /* freed when the work returns */
}

static int esc_open(struct kn_daemon *d, void **state)
{
    struct escalator *e = kn_xcalloc(1, sizeof(*e));
    e->d = d;
    uv_timer_init(d->loop, &e->timer);
    e->timer.data = e;
    uv_timer_start(&e->timer, on_timer, ESCALATE_EVERY_MS, ESCALATE_EVERY_MS);
    uv_unref((uv_handle_t *)&e->timer);
    *state = e;
    return 0;
}

static void esc_close(struct kn_daemon *d, void *state)
{
    struct escalator *e = state;
    if (e == NULL)
        return;
    e->closing = 1;
    uv_timer_stop(&e->timer);
    uv_close((uv_handle_t *)&e->timer, on_closed);
}

struct kn_module kn_escalate_module = {
    .name = "escalate",
    .open = esc_open,
    .close = esc_close,
};
