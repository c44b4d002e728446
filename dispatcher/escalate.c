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
 * With "escalate_to": "next_guardian" it goes in waves instead: wave w
 * (w = 1, 2, ...) is due at start + w * escalate_after; in it, every child
 * not confirmed yet gets the message sent to its next guardian reachable
 * on the broadcast's channels (model/guardian.h; the first wave, from the
 * expander, reached the first), on all that guardian's channels (policy
 * all) or its first (preferred), until the child's guardians are
 * exhausted.  bc:<id>:gs keeps per child whom it went to and when; "gw"
 * in bc counts the waves done.  A wave is safe to run twice (a restart in
 * the middle, two kairand processes): a child already holding w + 1
 * entries in bc:<id>:gs is not escalated again, and the fallback script
 * makes at most one job per address; "gw" moves on only after the whole
 * wave, so a wave cut short is run again.
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
#include "model/guardian.h"
#include "model/job.h"
#include "queue/scripts.h"
#include "queue/keys.h"
#include "queue/rstates.h"

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

/* Whether tenant t is closed (kairanctl tenant close): nothing more goes
 * out for it, an escalation neither (SECURITY-PROMISES.md row 9). */
static int tenant_closed(redisContext *c, const struct kn_config *cfg,
                         const char *t)
{
    char *k;
    redisReply *r;
    int closed;
    if (t == NULL || !kn_tenant_valid(t))
        return 0;
    k = pkey(cfg, "tenant:%s%s", t, "");
    r = redisCommand(c, "HEXISTS %s closed_ms", k);
    closed = r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    if (r != NULL)
        freeReplyObject(r);
    free(k);
    return closed;
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

/*
 * Enqueue one job of the recipient rid on channel ch for the contact
 * (a, i, pf) through the fallback script (one job per address and
 * broadcast); guardian: which of the child's (< 0: unnamed).  Returns 1
 * if a job was enqueued.
 */
static int enqueue(redisContext *c, const struct kn_config *cfg, const char *bc,
                   int ch, const char *rid, const char *a, const char *i,
                   const char *pf, int guardian, int urgent, long long expires,
                   long long now)
{
    char field[96], q[32];
    struct kn_argv av;
    json_t *j;
    redisReply *rep;
    int done;
    snprintf(field, sizeof(field), "%s:%s", kn_channel_name(ch), i);
    snprintf(q, sizeof(q), "%s:%s", kn_channel_name(ch),
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
    if (guardian >= 0)
        json_object_set_new(j, KN_JOB_GUARDIAN, json_integer(guardian));
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
    done = rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
    if (rep)
        freeReplyObject(rep);
    return done;
}

/* Escalate one recipient (guardian: which of the child's); returns 1 if a
 * job was enqueued. */
static int escalate_one(redisContext *c, const struct kn_config *cfg,
                        const char *bc, json_t *r, const char *rid,
                        redisReply *states, const char *const order_in[],
                        int urgent, long long expires, long long now,
                        int guardian)
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
        char field[96];
        int used = 0;
        if (!contact(r, order[k], &a, &i, &pf))
            continue;
        snprintf(field, sizeof(field), "%s:%s", kn_channel_name(order[k]), i);
        for (size_t s = 0; states && s + 1 < states->elements; s += 2) {
            if (strcmp(states->element[s]->str, field) == 0)
                used = 1;
        }
        if (used)
            continue;
        return enqueue(c, cfg, bc, order[k], rid, a, i, pf, guardian, urgent,
                       expires, now);
    }
    return 0;
}

/*
 * The broadcast is not done until the re-sent jobs are: before any is
 * queued it is made "not fully expanded" again (so a worker that finishes
 * the first re-sent job cannot end it while the others are still being
 * queued) and active; reopen_end ends it when every job is final.
 * (Undoing done_ms after queueing them raced with the workers and could
 * leave it never done.)  Returns the done_ms it had (a reply, or NULL).
 */
static redisReply *reopen(redisContext *c, const struct kn_config *cfg,
                          const char *bk, const char *bc, long long now)
{
    char *act = pkey(cfg, "active%s%s", "", "");
    redisReply *old_done = redisCommand(c, "HGET %s done_ms", bk), *ok;
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
    return old_done;
}

/* After re-sending n jobs: nothing re-sent, it ended when it had ended;
 * then expand_done ends it when every job is final.  Frees old_done. */
static void reopen_end(redisContext *c, const struct kn_config *cfg,
                       const char *bk, const char *bc, long long n,
                       redisReply *old_done, long long now)
{
    char *act = pkey(cfg, "active%s%s", "", "");
    char nows[24];
    redisReply *ok;
    if (n == 0 && old_done != NULL && old_done->type == REDIS_REPLY_STRING) {
        ok = redisCommand(c, "HSET %s done_ms %s", bk, old_done->str);
        if (ok)
            freeReplyObject(ok);
    }
    snprintf(nows, sizeof(nows), "%lld", now);
    ok = redisCommand(c, "EVAL %s 2 %s %s %s %s", kn_script_expand_done.src, bk,
                      act, bc, nows);
    if (ok)
        freeReplyObject(ok);
    free(act);
    if (old_done)
        freeReplyObject(old_done);
}

/*
 * The child of one audience entry e: its record with every guardian (for
 * a directory entry, what guardians registered themselves, reg:<T>:<id>
 * "g", appended to "g" as the expander does), or NULL (inactive,
 * deleted); *rid its id (heap).
 */
static json_t *entry_record(redisContext *c, const struct kn_config *cfg,
                            const char *tenant, const char *e, char **rid)
{
    json_t *r = NULL;
    *rid = NULL;
    if (strncmp(e, "i:", 2) == 0) {
        r = json_loads(e + 2, 0, NULL);
        *rid = kn_xstrdup(jstr(r, KN_DIR_ID) ? jstr(r, KN_DIR_ID) : "?");
    } else if (strncmp(e, "d:", 2) == 0) {
        char *k = kn_key_rcpt(cfg->redis_prefix, tenant, e + 2);
        redisReply *h =
            redisCommand(c, "HMGET %s " KN_DIR_HASH_FIELD " active", k);
        free(k);
        if (hv(h, 0) && !(hv(h, 1) && strcmp(hv(h, 1), "0") == 0))
            r = json_loads(hv(h, 0), 0, NULL);
        if (h)
            freeReplyObject(h);
        *rid = kn_xstrdup(e + 2);
        if (json_is_object(r)) {
            char *rk = kn_key_reg(cfg->redis_prefix, tenant, e + 2);
            redisReply *g = redisCommand(c, "HGET %s g", rk);
            json_t *reg = g && g->type == REDIS_REPLY_STRING
                              ? json_loads(g->str, 0, NULL)
                              : NULL,
                   *have = json_object_get(r, KN_DIR_GUARDIANS), *x;
            size_t i;
            free(rk);
            if (g)
                freeReplyObject(g);
            if (json_array_size(reg) > 0 && !json_is_array(have)) {
                have = json_array();
                json_object_set_new(r, KN_DIR_GUARDIANS, have);
            }
            json_array_foreach(reg, i, x)
            {
                if (json_is_object(x))
                    json_array_append(have, x);
            }
            json_decref(reg);
        }
    }
    return r;
}

/* 1 if rid is among the confirmed (HKEYS of bc:<id>:ack). */
static int confirmed(redisReply *acked, const char *rid)
{
    for (size_t a = 0;
         acked && acked->type == REDIS_REPLY_ARRAY && a < acked->elements;
         a++) {
        if (rid && strcmp(acked->element[a]->str, rid) == 0)
            return 1;
    }
    return 0;
}

/*
 * Send guardian k (the object g) of child rid its message: policy all,
 * on every channel of the broadcast (order_in) it has a contact on
 * (push: every token); preferred, on its first such channel in its own
 * order.  Returns the jobs enqueued.
 */
static int guardian_jobs(redisContext *c, const struct kn_config *cfg,
                         const char *bc, json_t *g, int k, const char *rid,
                         const char *const order_in[], int preferred,
                         int urgent, long long expires, long long now)
{
    int order[8], n = 0, jobs = 0;
    json_t *v;
    size_t idx;
    json_array_foreach(json_object_get(g, KN_DIR_CHANNELS), idx, v)
    {
        int ch =
            json_is_string(v) ? kn_channel_parse(json_string_value(v)) : -1;
        for (int b = 0; ch >= 0 && order_in[b] && n < 8; b++) {
            if (kn_channel_parse(order_in[b]) == ch)
                order[n++] = ch;
        }
    }
    for (int b = 0; order_in[b] && n < 8; b++) {
        int ch = kn_channel_parse(order_in[b]);
        if (ch >= 0)
            order[n++] = ch;
    }
    for (int o = 0; o < n; o++) {
        int seen = 0, any = 0;
        for (int p = 0; p < o; p++)
            seen |= order[p] == order[o];
        if (seen || !kn_guardian_reachable(g, 1u << order[o]))
            continue;
        if (order[o] == KN_CH_PUSH) {
            json_t *t;
            json_array_foreach(json_object_get(g, KN_DIR_PUSH), idx, t)
            {
                if (jstr(t, KN_DIR_PUSH_TOKEN) && jstr(t, KN_DIR_PUSH_INDEX) &&
                    !json_is_true(json_object_get(t, KN_DIR_PUSH_DEAD))) {
                    any = 1;
                    jobs += enqueue(
                        c, cfg, bc, KN_CH_PUSH, rid, jstr(t, KN_DIR_PUSH_TOKEN),
                        jstr(t, KN_DIR_PUSH_INDEX),
                        jstr(t, KN_DIR_PUSH_PLATFORM), k, urgent, expires, now);
                }
            }
        } else {
            const char *a, *i, *pf;
            if (contact(g, order[o], &a, &i, &pf)) {
                any = 1;
                jobs += enqueue(c, cfg, bc, order[o], rid, a, i, NULL, k,
                                urgent, expires, now);
            }
        }
        if (any && preferred)
            break;
    }
    return jobs;
}

/*
 * One wave of a next_guardian broadcast (wave = gw + 1, the file's
 * comment): per unconfirmed child, its next reachable guardian.  Sets
 * *more when some child still has a guardian after this wave.  Returns
 * the jobs enqueued.
 */
static long long guardian_wave(redisContext *c, const struct kn_config *cfg,
                               const char *bc, redisReply *m, long long wave,
                               long long start, const char *const order[],
                               int *more, long long now)
{
    char *ak = kn_key_bc(cfg->redis_prefix, bc, ":ack"),
         *uk = kn_key_bc(cfg->redis_prefix, bc, ":aud"),
         *gk = kn_key_bc(cfg->redis_prefix, bc, ":gs");
    redisReply *acked = redisCommand(c, "HKEYS %s", ak),
               *aud = redisCommand(c, "LRANGE %s 0 -1", uk);
    int urgent = hv(m, 7) && strcmp(hv(m, 7), "urgent") == 0,
        preferred = hv(m, 10) && strcmp(hv(m, 10), "preferred") == 0;
    long long expires = hv(m, 6) ? atoll(hv(m, 6)) : 0, n = 0;
    unsigned chans = 0;
    for (int b = 0; order[b]; b++)
        if (kn_channel_parse(order[b]) >= 0)
            chans |= 1u << kn_channel_parse(order[b]);
    *more = 0;
    for (size_t e = 0;
         aud && aud->type == REDIS_REPLY_ARRAY && e < aud->elements; e++) {
        char *rid, *list;
        json_t *r = entry_record(c, cfg, hv(m, 9) ? hv(m, 9) : "",
                                 aud->element[e]->str, &rid);
        redisReply *h;
        int last = -1, k, nx;
        int64_t ms;
        size_t cnt = 0;
        if (r == NULL || confirmed(acked, rid)) {
            json_decref(r);
            free(rid);
            continue;
        }
        h = redisCommand(c, "HGET %s %s", gk, rid);
        list = kn_xstrdup(h && h->type == REDIS_REPLY_STRING ? h->str : "");
        if (h)
            freeReplyObject(h);
        if (list[0] == '\0') {
            /* The expander's note was lost: its first wave, the same rule. */
            int f = kn_guardian_next(r, 0, chans);
            if (f >= 0) {
                free(list);
                list = kn_guardian_sent_add("", f, start);
                h = redisCommand(c, "HSETNX %s %s %s", gk, rid, list);
                if (h)
                    freeReplyObject(h);
            }
        }
        while (kn_guardian_sent_at(list, cnt, &k, &ms) == 0) {
            last = k > last ? k : last;
            cnt++;
        }
        nx = cnt > 0 ? kn_guardian_next(r, (size_t)last + 1, chans) : -1;
        if (nx >= 0 && cnt <= (size_t)wave) {
            char *nl;
            n += guardian_jobs(c, cfg, bc, kn_guardian_at(r, (size_t)nx), nx,
                               rid, order, preferred, urgent, expires, now);
            nl = kn_guardian_sent_add(list, nx, now);
            h = redisCommand(c, "HSET %s %s %s", gk, rid, nl);
            if (h)
                freeReplyObject(h);
            free(nl);
            if (kn_guardian_next(r, (size_t)nx + 1, chans) >= 0)
                *more = 1;
        } else if (nx >= 0) {
            *more = 1; /* escalated in this wave already (run again) */
        }
        free(list);
        json_decref(r);
        free(rid);
    }
    if (acked)
        freeReplyObject(acked);
    if (aud)
        freeReplyObject(aud);
    free(ak);
    free(uk);
    free(gk);
    return n;
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
            "status expires_ms priority channels tenant policy escalate_to "
            "gw",
            bk);
        long long esc = hv(m, 1) ? atoll(hv(m, 1)) : 0,
                  start = hv(m, 3) && atoll(hv(m, 3)) > 0 ? atoll(hv(m, 3))
                          : hv(m, 2)                      ? atoll(hv(m, 2))
                                                          : 0,
                  expires = hv(m, 6) ? atoll(hv(m, 6)) : 0, n = 0;
        const char *st = hv(m, 5);
        int by_guardian = hv(m, 11) && strcmp(hv(m, 11), "next_guardian") == 0;
        long long wave = hv(m, 12) ? atoll(hv(m, 12)) + 1 : 1;
        redisReply *ok, *acked, *states, *aud, *old_done = NULL;
        char *chans, *save = NULL;
        const char *order[4] = {NULL, NULL, NULL, NULL};
        int no = 0;
        if (!hv(m, 0) || strcmp(hv(m, 0), "1") != 0 || esc <= 0 ||
            (!by_guardian && hv(m, 4) != NULL) ||
            (by_guardian && (wave <= 0 || hv(m, 4) != NULL)) || st == NULL ||
            strcmp(st, "cancelled") == 0 || strcmp(st, "rejected") == 0 ||
            now < start + (by_guardian ? wave : 1) * esc ||
            (expires > 0 && now >= expires) ||
            tenant_closed(c, cfg, hv(m, 9))) {
            freeReplyObject(m);
            free(bk);
            continue;
        }
        chans = kn_xstrdup(hv(m, 8) ? hv(m, 8) : "");
        for (char *t = strtok_r(chans, ",", &save); t && no < 3;
             t = strtok_r(NULL, ",", &save))
            order[no++] = t;
        if (by_guardian) {
            /* A wave (the file's comment): any process may run it, and
             * run it again; gw moves on when it is whole.  escalated_ms
             * is set once no child has a guardian left. */
            int more = 0;
            old_done = reopen(c, cfg, bk, bc, now);
            n = guardian_wave(c, cfg, bc, m, wave, start, order, &more, now);
            ok = redisCommand(c, "HINCRBY %s escalated %lld", bk, n);
            if (ok)
                freeReplyObject(ok);
            ok = redisCommand(c, "HSET %s gw %lld", bk, wave);
            if (ok)
                freeReplyObject(ok);
            if (!more) {
                ok = redisCommand(c, "HSETNX %s escalated_ms %lld", bk, now);
                if (ok)
                    freeReplyObject(ok);
            }
            reopen_end(c, cfg, bk, bc, n, old_done, now);
            kn_logf(KN_LOG_INFO, "escalate",
                    "broadcast %s: wave %lld, %lld jobs to the next guardian "
                    "of unconfirmed children%s",
                    bc, wave, n, more ? "" : " (no guardian left)");
            total += n;
            free(chans);
            freeReplyObject(m);
            free(bk);
            continue;
        }
        ok = redisCommand(c, "HSETNX %s escalated_ms %lld", bk, now);
        if (ok == NULL || ok->type != REDIS_REPLY_INTEGER || ok->integer != 1) {
            if (ok)
                freeReplyObject(ok);
            free(chans);
            freeReplyObject(m);
            free(bk);
            continue; /* another process escalates it */
        }
        freeReplyObject(ok);
        old_done = reopen(c, cfg, bk, bc, now);
        ak = kn_key_bc(cfg->redis_prefix, bc, ":ack");
        rk = kn_key_bc(cfg->redis_prefix, bc, ":r");
        uk = kn_key_bc(cfg->redis_prefix, bc, ":aud");
        acked = redisCommand(c, "HKEYS %s", ak);
        states = redisCommand(c, "HGETALL %s", rk);
        kn_rstates_resolve(states); /* a multicast recorded once */
        aud = redisCommand(c, "LRANGE %s 0 -1", uk);
        for (size_t i = 0;
             aud && aud->type == REDIS_REPLY_ARRAY && i < aud->elements; i++) {
            char *rid = NULL;
            json_t *r = entry_record(c, cfg, hv(m, 9) ? hv(m, 9) : "",
                                     aud->element[i]->str, &rid);
            if (r != NULL && !confirmed(acked, rid)) {
                redisReply *sr =
                    states && states->type == REDIS_REPLY_ARRAY ? states : NULL;
                int urgent = hv(m, 7) && strcmp(hv(m, 7), "urgent") == 0;
                json_t *g;
                /* the child's guardians in order (model/guardian.h) */
                for (size_t k = 0; (g = kn_guardian_at(r, k)) != NULL; k++)
                    n += escalate_one(c, cfg, bc, g, rid, sr, order, urgent,
                                      expires, now, (int)k);
            }
            json_decref(r);
            free(rid);
        }
        ok = redisCommand(c, "HSET %s escalated %lld", bk, n);
        if (ok)
            freeReplyObject(ok);
        reopen_end(c, cfg, bk, bc, n, old_done, now);
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
