/*
 * route.h - where a channel worker's jobs go (route.c): the relay's
 * circuit breaker, the failover adapter behind it (SendGrid while the
 * SMTP relay is down) and the route pauses (credentials refused, quota
 * used up).  Internal to dispatcher/ (names kn__).
 *
 * The breaker's decisions are pure functions over struct kn__breaker
 * (no loop, no Redis, the time passed in), so that tests/unit/test_route.c
 * drives every edge; struct kn__route wraps them with the logging, the
 * daemon's gauges and the Redis pause flag.
 */
#ifndef KN_DISPATCHER_ROUTE_H
#define KN_DISPATCHER_ROUTE_H

#include <stdint.h>

#include "adapters/adapter.h"
#include "model/broadcast.h"

struct kn_daemon;

/* ---- the breaker (pure) ---- */

/* The values are those of /metrics' kairan_breaker_state. */
enum kn__breaker_state {
    KN__BREAKER_CLOSED,
    KN__BREAKER_HALF_OPEN,
    KN__BREAKER_OPEN,
};

/* "closed", "half-open", "open". */
const char *kn__breaker_state_name(enum kn__breaker_state s);

struct kn__breaker {
    enum kn__breaker_state state;
    int fails;          /* relay tempfails counted in the current window */
    int probing;        /* the one probe is out */
    int64_t first_fail; /* monotonic ms: the window's first tempfail */
    int64_t opened;     /* monotonic ms: when it last opened */
};

struct kn__breaker_conf {
    int64_t failures;  /* tempfails within window_ms that open it */
    int64_t window_ms; /* failover.window */
    int64_t probe_ms;  /* open -> one probe of the relay after this */
};

/* What to do with a job sent while a failover adapter exists. */
enum kn__breaker_way {
    KN__WAY_RELAY,    /* breaker closed: through the relay */
    KN__WAY_PROBE,    /* through the relay, as the probe (now half-open) */
    KN__WAY_FAILOVER, /* through the failover adapter */
    KN__WAY_WAIT,     /* may not fail over: park it for *wait_ms */
};

/*
 * Choose the way of a job at time now (monotonic ms); may_fail_over: the
 * job's broadcast may go to the failover adapter (failover.mode).
 *   1. closed: the relay.
 *   2. open, no probe out and probe_ms passed since it opened: this job
 *      is the probe; the breaker goes half-open.
 *   3. otherwise (open, or half-open with the probe out): the failover
 *      adapter if allowed, else wait until the next probe is due, at
 *      least 1 s (*wait_ms).
 * Returns the way; *why is the reason of a state change, or NULL.
 */
enum kn__breaker_way kn__breaker_choose(struct kn__breaker *b,
                                        const struct kn__breaker_conf *c,
                                        int may_fail_over, int64_t now,
                                        int64_t *wait_ms, const char **why);

/*
 * Count the result of a send through the relay (probe: it was the probe)
 * at time now.
 *   1. Delivered or permfail: the relay answers; closed, count reset.
 *   2. The probe's tempfail: open again (the next probe after probe_ms).
 *   3. Another tempfail: counted in a window of window_ms from the first
 *      one; the failures-th within the window opens a closed breaker.
 * Returns the reason of a state change (detail for 3, if given), or NULL
 * if the state stays.
 */
const char *kn__breaker_result(struct kn__breaker *b,
                               const struct kn__breaker_conf *c,
                               enum kn_status st, int probe, const char *detail,
                               int64_t now);

/* ---- a worker's route ---- */

/* Route pauses, as /metrics' kairan_route_paused shows them. */
enum { KN__PAUSE_NONE, KN__PAUSE_AUTH, KN__PAUSE_QUOTA };

/*
 * Credentials pauses are kept per provider of a route: the push route
 * serves FCM (scope 0) and APNs (scope 1), whose credentials have nothing
 * to do with each other; every other route has scope 0 only.  The
 * failover adapter (SendGrid behind the SMTP relay) has a scope of its
 * own: its refused API key stops the failover, never the relay.
 */
#define KN__ROUTE_SCOPES    3
#define KN__ROUTE_SCOPE_ALT 2

/* The pause scope of a job of this push platform (NULL: not push). */
int kn__route_scope(const char *platform);

struct kn__route {
    struct kn_daemon *d;
    enum kn_channel ch;
    const char *chname;
    struct kn_adapter alt; /* failover adapter; alt.ops NULL if none */
    struct kn__breaker br;
    int64_t auth_paused_until[KN__ROUTE_SCOPES]; /* monotonic ms */
    int quota_paused;
};

/* What kn__route_choose decided for a job. */
enum kn__route_way {
    KN__ROUTE_MAIN,     /* send through the main adapter */
    KN__ROUTE_PROBE,    /* the same, as the breaker's probe */
    KN__ROUTE_FAILOVER, /* send through rt->alt */
    KN__ROUTE_WAIT,     /* park the job *wait_ms (no attempt counted) */
    KN__ROUTE_FAIL,     /* fail it for good */
};

/*
 * Set up the route of channel ch whose main adapter is main: opens the
 * failover adapter that main's table row names, if the config sets it up
 * and failover.mode allows (kn_fatal if it cannot be opened).
 */
void kn__route_init(struct kn__route *rt, struct kn_daemon *d,
                    enum kn_channel ch, const struct kn_adapter *main);

/*
 * Where a job of priority prio (0 urgent) and pause scope scope
 * (kn__route_scope) goes now: a quota pause fails it, a credentials pause
 * of its scope parks it until the pause ends, an open breaker sends it to
 * the failover adapter or parks it.  *why (a literal) is the reason of a
 * FAIL or WAIT.
 */
enum kn__route_way kn__route_choose(struct kn__route *rt, int prio, int scope,
                                    int64_t *wait_ms, const char **why);

/* 1 if rt->alt takes the job's address (else it waits for the relay). */
int kn__route_alt_accepts(const struct kn__route *rt, const char *addr);

/* A send through the main adapter ended (probe: it was the probe). */
void kn__route_result(struct kn__route *rt, int probe,
                      const struct kn_result *r);

/* Credentials refused by provider: pause the route's scope for 30 s.
 * final: the job ends anyway (a misconfiguration refused every time). */
void kn__route_pause_auth(struct kn__route *rt, int scope, const char *provider,
                          const char *detail, int final);

/* The provider's quota is used up: pause the route in every process. */
void kn__route_pause_quota(struct kn__route *rt, const char *detail);

/* Once a second: end a credentials pause that is over, re-read the
 * shared quota pause flag. */
void kn__route_tick(struct kn__route *rt);

/* Close the failover adapter (its sends end with tempfail). */
void kn__route_close(struct kn__route *rt);

#endif
