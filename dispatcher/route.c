/*
 * route.c - where a channel worker's jobs go: the main adapter, or the
 * failover adapter while the relay's circuit breaker is open, or nowhere
 * for now while the route is paused.
 *
 * The breaker watches the e-mail relay when a failover adapter exists
 * (the relay's table row names it: SendGrid): failover.failures tempfails
 * within failover.window open it, and every failover.probe_ms one job
 * probes the relay (half-open) while the others fail over (or wait, if
 * failover.mode does not let their broadcast fail over).  Its decisions
 * are the pure functions kn__breaker_*; this file adds the logging
 * (every change "from -> to" with its reason) and the daemon's gauge.
 *
 * Route pauses: credentials refused (401/403) pause a route for 30 s in
 * this process (the push route per provider: FCM's and APNs' credentials
 * are not each other's); a provider quota used up (LINE's monthly limit) pauses
 * it in every process through the Redis flag paused:<channel> for an
 * hour.  This file never sends and never records a result: worker.c
 * does, as route.c tells it.
 */
#include "dispatcher/route.h"

#include <stdlib.h>
#include <string.h>

#include "common/kn.h"
#include "common/log.h"
#include "config/config.h"
#include "dispatcher/daemon.h"

/* How long refused credentials pause a route. */
#define AUTH_PAUSE_MS 30000

/* ---- the breaker (pure) ---- */

const char *kn__breaker_state_name(enum kn__breaker_state s)
{
    static const char *const names[] = {"closed", "half-open", "open"};
    return (unsigned)s < KN_ARRAY_SIZE(names) ? names[s] : "unknown";
}

/* The one place the state changes (STYLE 7), with its entry actions. */
static void breaker_enter(struct kn__breaker *b, enum kn__breaker_state s,
                          int64_t now)
{
    if (b->state == s)
        return;
    b->state = s;
    if (s == KN__BREAKER_OPEN)
        b->opened = now;
    if (s == KN__BREAKER_CLOSED)
        b->fails = 0;
}

enum kn__breaker_way kn__breaker_choose(struct kn__breaker *b,
                                        const struct kn__breaker_conf *c,
                                        int may_fail_over, int64_t now,
                                        int64_t *wait_ms, const char **why)
{
    int64_t left;
    *why = NULL;
    *wait_ms = 0;
    if (b->state == KN__BREAKER_CLOSED)
        return KN__WAY_RELAY;
    if (b->state == KN__BREAKER_OPEN && !b->probing &&
        now >= b->opened + c->probe_ms) {
        breaker_enter(b, KN__BREAKER_HALF_OPEN, now);
        b->probing = 1;
        *why = "probing the relay";
        return KN__WAY_PROBE;
    }
    if (may_fail_over)
        return KN__WAY_FAILOVER;
    left = b->opened + c->probe_ms - now;
    *wait_ms = left > 1000 ? left : 1000;
    return KN__WAY_WAIT;
}

const char *kn__breaker_result(struct kn__breaker *b,
                               const struct kn__breaker_conf *c,
                               enum kn_status st, int probe, const char *detail,
                               int64_t now)
{
    enum kn__breaker_state old = b->state;
    if (probe)
        b->probing = 0;
    if (st != KN_TEMPFAIL) {
        /* Delivered, or refused for the recipient (5xx): the relay
         * answers. */
        breaker_enter(b, KN__BREAKER_CLOSED, now);
        b->fails = 0;
        return b->state != old ? "the relay answers again" : NULL;
    }
    if (probe) {
        breaker_enter(b, KN__BREAKER_OPEN, now);
        b->opened = now;
        return b->state != old ? "the probe failed" : NULL;
    }
    if (b->fails == 0 || now - b->first_fail > c->window_ms) {
        b->first_fail = now;
        b->fails = 0;
    }
    if (++b->fails >= c->failures && b->state == KN__BREAKER_CLOSED) {
        breaker_enter(b, KN__BREAKER_OPEN, now);
        return detail ? detail : "relay failures";
    }
    return NULL;
}

/* ---- a worker's route ---- */

static struct kn__breaker_conf breaker_conf(const struct kn__route *rt)
{
    const struct kn_config *cfg = rt->d->cfg;
    struct kn__breaker_conf c = {
        .failures = cfg->failover_failures,
        .window_ms = cfg->failover_window_ms,
        .probe_ms = cfg->failover_probe_ms,
    };
    return c;
}

/* Log a change of the breaker's state (from old) and show it. */
static void breaker_changed(struct kn__route *rt, enum kn__breaker_state old,
                            const char *why)
{
    enum kn__breaker_state s = rt->br.state;
    if (s == old)
        return;
    kn_log(s == KN__BREAKER_OPEN ? KN_LOG_WARN : KN_LOG_INFO, "route",
           "relay breaker", "from", kn__breaker_state_name(old), "to",
           kn__breaker_state_name(s), "why", why, NULL);
    rt->d->breaker_state = (int)s;
}

void kn__route_init(struct kn__route *rt, struct kn_daemon *d,
                    enum kn_channel ch, const struct kn_adapter *main)
{
    const struct kn_config *cfg = d->cfg;
    const char *alt = main->ops->failover;
    const struct kn_adapter_ops *ops;
    int rc;
    memset(rt, 0, sizeof(*rt));
    rt->d = d;
    rt->ch = ch;
    rt->chname = kn_channel_name(ch);
    /* The relay fails over (to SendGrid) when its row names a failover,
     * that provider is set up and failover.mode allows it. */
    if (alt == NULL || cfg->failover_mode == KN_FAILOVER_NEVER)
        return;
    ops = kn_adapter_find(alt);
    if (ops == NULL || (ops->configured != NULL && !ops->configured(cfg)))
        return;
    rc = kn_adapter_open(&rt->alt, alt, d->loop, cfg, &d->host);
    if (rc < 0)
        kn_fatal("cannot open the %s adapter: %s", alt, kn_strerror(rc));
    kn_log(KN_LOG_INFO, "route", "failover ready", "to", alt, "mode",
           cfg->failover_mode == KN_FAILOVER_ALWAYS ? "always"
                                                    : "emergency-only",
           NULL);
}

/* May a job of priority prio go to the failover adapter? */
static int may_fail_over(const struct kn__route *rt, int prio)
{
    switch (rt->d->cfg->failover_mode) {
    case KN_FAILOVER_ALWAYS:
        return 1;
    case KN_FAILOVER_EMERGENCY_ONLY:
        return prio == 0;
    default:
        return 0;
    }
}

int kn__route_scope(const char *platform)
{
    return platform != NULL && strcmp(platform, "apns") == 0 ? 1 : 0;
}

enum kn__route_way kn__route_choose(struct kn__route *rt, int prio, int scope,
                                    int64_t *wait_ms, const char **why)
{
    struct kn__breaker_conf c;
    enum kn__breaker_state old = rt->br.state;
    const char *change;
    int64_t now = kn_mono_ms();

    *wait_ms = 0;
    *why = NULL;
    if (rt->quota_paused) {
        *why = "route paused: the provider's quota is used up";
        return KN__ROUTE_FAIL;
    }
    if (scope < 0 || scope >= KN__ROUTE_SCOPES)
        scope = 0;
    if (now < rt->auth_paused_until[scope]) {
        *wait_ms = rt->auth_paused_until[scope] - now;
        *why = "route paused: credentials were refused";
        return KN__ROUTE_WAIT;
    }
    if (rt->alt.ops == NULL)
        return KN__ROUTE_MAIN;
    c = breaker_conf(rt);
    switch (kn__breaker_choose(&rt->br, &c, may_fail_over(rt, prio), now,
                               wait_ms, &change)) {
    case KN__WAY_RELAY:
        return KN__ROUTE_MAIN;
    case KN__WAY_PROBE:
        breaker_changed(rt, old, change);
        return KN__ROUTE_PROBE;
    case KN__WAY_FAILOVER:
        if (now < rt->auth_paused_until[KN__ROUTE_SCOPE_ALT]) {
            /* back by the next probe of the relay at the latest */
            *wait_ms = rt->auth_paused_until[KN__ROUTE_SCOPE_ALT] - now;
            if (*wait_ms > c.probe_ms)
                *wait_ms = c.probe_ms;
            *why = "failover paused: the failover provider refused the "
                   "credentials";
            return KN__ROUTE_WAIT;
        }
        return KN__ROUTE_FAILOVER;
    case KN__WAY_WAIT:
        break;
    }
    *why = "the relay is down (breaker open); this broadcast may not fail "
           "over (failover.mode)";
    return KN__ROUTE_WAIT;
}

int kn__route_alt_accepts(const struct kn__route *rt, const char *addr)
{
    return kn_adapter_accepts(&rt->alt, addr);
}

void kn__route_result(struct kn__route *rt, int probe,
                      const struct kn_result *r)
{
    struct kn__breaker_conf c;
    enum kn__breaker_state old = rt->br.state;
    const char *why;
    if (rt->alt.ops == NULL)
        return;
    c = breaker_conf(rt);
    why = kn__breaker_result(&rt->br, &c, r->status, probe, r->detail,
                             kn_mono_ms());
    breaker_changed(rt, old, why);
}

void kn__route_pause_auth(struct kn__route *rt, int scope, const char *provider,
                          const char *detail, int final)
{
    if (scope < 0 || scope >= KN__ROUTE_SCOPES)
        scope = 0;
    rt->auth_paused_until[scope] = kn_mono_ms() + AUTH_PAUSE_MS;
    rt->d->route_paused[rt->ch] = KN__PAUSE_AUTH;
    if (final)
        kn_log(KN_LOG_ERROR, "route",
               "refused as misconfigured: route paused for 30 s", "channel",
               rt->chname, "provider", provider, "reason", detail, NULL);
    else
        kn_log(KN_LOG_ERROR, "route",
               "credentials refused: route paused for 30 s; fix the "
               "token or key",
               "channel", rt->chname, "provider", provider, "reason", detail,
               NULL);
}

static void on_set(struct kn_redis *r, redisReply *rep, void *arg)
{
}

void kn__route_pause_quota(struct kn__route *rt, const char *detail)
{
    struct kn_daemon *d = rt->d;
    char *k = kn__key(d, "paused:%s", rt->chname);
    kn_redis_cmd(d->cmd, on_set, NULL, "SET %s quota EX 3600", k);
    free(k);
    if (!rt->quota_paused)
        kn_log(KN_LOG_ERROR, "route",
               "quota used up: route paused; recipients move to their "
               "next channel",
               "channel", rt->chname, "reason", detail, NULL);
    rt->quota_paused = 1;
    d->route_paused[rt->ch] = KN__PAUSE_QUOTA;
}

static void on_paused(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct kn__route *rt = arg;
    int paused = rep != NULL && rep->type == REDIS_REPLY_STRING;
    if (rt->quota_paused && !paused) {
        kn_log(KN_LOG_INFO, "route", "quota pause over: route resumes",
               "channel", rt->chname, NULL);
        rt->d->route_paused[rt->ch] = KN__PAUSE_NONE;
    }
    rt->quota_paused = paused;
    if (paused)
        rt->d->route_paused[rt->ch] = KN__PAUSE_QUOTA;
}

void kn__route_tick(struct kn__route *rt)
{
    char *k;
    int paused = 0;
    for (int i = 0; i < KN__ROUTE_SCOPES; i++) {
        if (rt->auth_paused_until[i] != 0 &&
            kn_mono_ms() >= rt->auth_paused_until[i])
            rt->auth_paused_until[i] = 0;
        paused |= rt->auth_paused_until[i] != 0;
    }
    if (!paused && rt->d->route_paused[rt->ch] == KN__PAUSE_AUTH)
        rt->d->route_paused[rt->ch] = KN__PAUSE_NONE;
    k = kn__key(rt->d, "paused:%s", rt->chname);
    kn_redis_cmd(rt->d->cmd, on_paused, rt, "GET %s", k);
    free(k);
}

void kn__route_close(struct kn__route *rt)
{
    if (rt->alt.ops != NULL)
        rt->alt.ops->close(&rt->alt);
}
