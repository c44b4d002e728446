/*
 * expand_audience.c - the start of a broadcast's expansion: its routing
 * fields (HGETALL bc:<id>, never the body), a broadcast that is done,
 * cancelled or scheduled for later, and its audience resolved once by the
 * resolve script into the list bc:<id>:aud (groups and recipient ids of
 * its tenant), which expand_page.c then pages through.  An unknown group
 * or recipient rejects the broadcast with a reason naming the field.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/argv.h"
#include "common/kn.h"
#include "common/log.h"
#include "config/config.h"
#include "dispatcher/daemon.h"
#include "dispatcher/expand.h"
#include "queue/scripts.h"
#include "queue/keys.h"

static void on_resolved(struct kn_redis *r, redisReply *rep, void *arg);

/* Ids a step writes: KN_RESOLVE_PAGES pages; also what its turn costs. */
static int64_t step_ids(const struct kn_expander *e)
{
    return KN_RESOLVE_PAGES * e->d->cfg->expand_page;
}

/* The resolve script's keys (bc, bc:aud, cats, bc:seen) and the ARGV all
 * its calls share (prefix, tenant, step), with the step's keys named. */
static void resolve_args(struct kn_expander *e, struct kn_argv *a)
{
    struct kn_daemon *d = e->d;
    kn_argv_init(a);
    kn_argv_take(a, kn_key_bc(d->prefix, e->cur->bc, ""));
    kn_argv_take(a, kn_key_bc(d->prefix, e->cur->bc, ":aud"));
    kn_argv_take(a, kn_key_cats(d->prefix, e->tenant));
    kn_argv_take(a, kn_key_bc(d->prefix, e->cur->bc, ":seen"));
    kn_argv_add(a, d->prefix);
    kn_argv_add(a, e->tenant);
    kn_argv_addi(a, step_ids(e));
    kn__expand_step(e, "resolving the audience");
    kn__expand_step_key(e, kn_key_bc(d->prefix, e->cur->bc, ""), "hash");
    kn__expand_step_key(e, kn_key_bc(d->prefix, e->cur->bc, ":aud"), "list");
    kn__expand_step_key(e, kn_key_cats(d->prefix, e->tenant), "hash");
    kn__expand_step_key(e, kn_key_bc(d->prefix, e->cur->bc, ":seen"), "set");
}

/* A large audience is written in calls of KN_RESOLVE_PAGES pages of ids
 * (resolve.lua), one in each of its turns (kn__expand_page calls this
 * while e->resolving): other tenants' pages go on between them.  A stop
 * leaves the entry pending; whoever takes it goes on from where the last
 * call left it (the script keeps its place in bc). */
void kn__expand_resolve_step(struct kn_expander *e)
{
    struct kn_argv a;
    resolve_args(e, &a);
    kn__eval_reliable(e->d, &kn_script_resolve, on_resolved, e, NULL, 4, &a);
}

static void on_resolved(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct kn_expander *e = arg;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 2 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER) {
        kn__expand_failed(e, rep);
        return;
    }
    if (rep->element[0]->integer == 0 &&
        rep->element[1]->type == REDIS_REPLY_STRING) {
        /* Unknown group or recipient: the broadcast cannot be sent as
         * written; keep it as rejected with the reason. */
        char field[32];
        kn_log(KN_LOG_WARN, "expand", "broadcast rejected", "bc", e->cur->bc,
               "tenant", e->tenant, "reason", rep->element[1]->str, NULL);
        /* The reason starts with the field: "audience.groups: ...". */
        snprintf(field, sizeof(field), "%.*s",
                 (int)strcspn(rep->element[1]->str, ":"), rep->element[1]->str);
        kn__expand_park(e, rep->element[1]->str, field);
        return;
    }
    if (rep->element[0]->integer == 2) {
        kn__expand_done(e);
        return;
    }
    if (rep->element[0]->integer == 3) {
        /* More steps to come, one a turn: it waits for the next. */
        if (e->resolving) {
            kn__expand_turn_over(e, step_ids(e));
        } else {
            e->resolving = 1;
            kn__expand_admitted(e);
        }
        return;
    }
    e->aud_n = rep->element[1]->integer;
    /* Of an emergency category (resolve.lua decides it once): guardians'
     * opt-outs do not apply (expand_page.c). */
    e->emergency = rep->elements > 2 &&
                   rep->element[2]->type == REDIS_REPLY_INTEGER &&
                   rep->element[2]->integer == 1;
    kn_log(KN_LOG_INFO, "expand", "expanding", "bc", e->cur->bc, NULL);
    if (e->resolving) {
        /* The last step: its pages from its next turn on. */
        e->resolving = 0;
        kn__expand_turn_over(e, step_ids(e));
        return;
    }
    kn__expand_admitted(e); /* it waits for its turn */
}

static const char *hget(const redisReply *h, const char *k)
{
    for (size_t i = 0; h && i + 1 < h->elements; i += 2) {
        if (strcmp(h->element[i]->str, k) == 0)
            return h->element[i + 1]->str;
    }
    return NULL;
}

/* A scheduled broadcast parked in sched (MULTI ZADD + HSET). */
static void on_scheduled(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct kn_expander *e = arg;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
        kn__expand_failed(e, rep);
        return;
    }
    for (size_t i = 0; i < rep->elements; i++) {
        if (rep->element[i]->type == REDIS_REPLY_ERROR) {
            kn__expand_failed(e, rep->element[i]);
            return;
        }
    }
    kn__expand_ack_del(e);
}

void kn__expand_on_meta(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct kn_expander *e = arg;
    struct kn_daemon *d = e->d;
    const char *st, *chans, *groups, *ids, *v;
    json_t *g, *ri, *x;
    struct kn_argv a;
    size_t i;
    int64_t send_at;

    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
        kn__expand_failed(e, rep);
        return;
    }
    st = hget(rep, "status");
    if (st == NULL) {
        kn_log(KN_LOG_WARN, "expand", "announced broadcast not found", "bc",
               e->cur->bc, NULL);
        kn__expand_ack_del(e);
        return;
    }
    if (strcmp(st, "done") == 0 || strcmp(st, "rejected") == 0 ||
        ((v = hget(rep, "expanded")) && strcmp(v, "1") == 0)) {
        kn__expand_ack_del(e);
        return;
    }
    if (strcmp(st, "cancelled") == 0) {
        if (hget(rep, "res_g") != NULL) {
            /* Cancelled between two steps of a resolution: the script
             * drops the seen set and answers "cancelled". */
            e->tenant = kn_xstrdup((v = hget(rep, "tenant")) ? v : "");
            kn__expand_resolve_step(e);
            return;
        }
        kn__expand_done(e);
        return;
    }
    send_at = (v = hget(rep, "send_at_ms")) ? strtoll(v, NULL, 10) : 0;
    if (send_at > kn_now_ms()) {
        /* Scheduled: park it; the daemon's timer announces it again when
         * it is due. */
        char *sched = kn__key(d, "sched"),
             *bc = kn_key_bc(d->prefix, e->cur->bc, "");
        kn__expand_step(e, "scheduling the broadcast");
        kn__expand_step_key(e, kn_xstrdup(sched), "zset");
        kn__expand_step_key(e, kn_xstrdup(bc), "hash");
        kn_redis_cmd(d->cmd, NULL, NULL, "MULTI");
        kn_redis_cmd(d->cmd, NULL, NULL, "ZADD %s %lld %s", sched,
                     (long long)send_at, e->cur->bc);
        kn_redis_cmd(d->cmd, NULL, NULL, "HSET %s status scheduled", bc);
        if (kn_redis_cmd(d->cmd, on_scheduled, e, "EXEC") < 0)
            kn__expand_failed(e, NULL);
        free(sched);
        free(bc);
        return;
    }
    e->tenant = kn_xstrdup((v = hget(rep, "tenant")) ? v : "");
    free(e->category);
    e->category = kn_xstrdup((v = hget(rep, "category")) ? v : "");
    e->urgent = (v = hget(rep, "priority")) && strcmp(v, "urgent") == 0;
    e->preferred = (v = hget(rep, "policy")) && strcmp(v, "preferred") == 0;
    e->ack = (v = hget(rep, "ack")) && strcmp(v, "1") == 0;
    if (e->ack && (v = hget(rep, "escalate_to")) &&
        strcmp(v, "next_guardian") == 0)
        e->ack = 2; /* the first guardian only (expand_page.c) */
    e->expires_ms = (v = hget(rep, "expires_ms")) ? strtoll(v, NULL, 10) : 0;
    e->page = (v = hget(rep, "xc")) ? strtoll(v, NULL, 10) : 0;
    v = hget(rep, "langs"); /* translations (model/broadcast.h) */
    snprintf(e->langs, sizeof(e->langs), "%s",
             v != NULL && strlen(v) < sizeof(e->langs) ? v : "");
    e->nchans = 0;
    chans = hget(rep, "channels");
    if (chans != NULL) {
        char *c = kn_xstrdup(chans), *save = NULL;
        for (char *t = strtok_r(c, ",", &save); t && e->nchans < KN_CH__COUNT;
             t = strtok_r(NULL, ",", &save)) {
            int ch = kn_channel_parse(t);
            if (ch >= 0)
                e->chans[e->nchans++] = (enum kn_channel)ch;
        }
        free(c);
    }
    groups = hget(rep, "groups");
    ids = hget(rep, "rcpt_ids");
    g = groups ? json_loads(groups, 0, NULL) : NULL;
    ri = ids ? json_loads(ids, 0, NULL) : NULL;
    resolve_args(e, &a);
    kn_argv_addi(&a, (int64_t)json_array_size(g));
    json_array_foreach(g, i, x)
    {
        kn_argv_add(&a, json_string_value(x));
        kn__expand_step_key(
            e,
            kn_key_grp(d->prefix, e->tenant,
                       json_string_value(x) ? json_string_value(x) : ""),
            "set");
    }
    json_array_foreach(ri, i, x) kn_argv_add(&a, json_string_value(x));
    json_decref(g);
    json_decref(ri);
    kn__eval_reliable(d, &kn_script_resolve, on_resolved, e, NULL, 4, &a);
}
