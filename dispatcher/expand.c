/*
 * expand.c - the expander: turns each broadcast into delivery jobs.
 *
 * It reads kairan:broadcasts.  An entry is either {id} (written by the
 * submit script of kairanctl or the API, the broadcast already stored and
 * its addresses sealed) or {job: <raw JSON>} from a producer that XADDs
 * directly: that JSON is validated here, stored sealed like a kairanctl
 * submission (or kept as `rejected` with its reason, addresses masked),
 * and its plaintext entry deleted at once.
 *
 * Expansion is paged (dispatcher.expand_page recipients a page) over the
 * audience list bc:<id>:aud, built once by the resolve script.  Each page
 * is committed by one script together with its checkpoint (bc.xc): a crash
 * in the middle neither loses nor duplicates jobs, and a second process
 * that takes the entry over resumes at the checkpoint.  While a target
 * stream is deeper than queue.max_depth, expansion pauses.
 *
 * No entry holds the stream (queue/poison.h): an entry whose step fails
 * is set aside (still pending in Redis) and tried again after a backoff
 * while the entries behind it go on, urgent or not.  Its failures are
 * counted in Redis (fail:broadcasts:<entry>), so the count is the same
 * for every process and survives a restart; after KN_POISON_MAX the
 * broadcast is parked as `rejected` with a reason that names the key of
 * the wrong type (or in the DLQ, masked, when even its hash is unusable).
 * Failures of Redis itself (out of memory, loading, connection lost) are
 * waited out, never counted.
 *
 * This file reads the stream and walks its entries (failures, finishing);
 * expand_raw.c stores raw entries, expand_audience.c reads a broadcast and
 * resolves its audience, expand_page.c turns pages of it into jobs.
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
#include "queue/poison.h"
#include "queue/queue.h"
#include "queue/scripts.h"
#include "queue/keys.h"

static void next_entry(struct kn_expander *e);
static void read_more(struct kn_expander *e);

void kn__expand_xentry_free(struct xentry *x)
{
    if (x == NULL)
        return;
    free(x->id);
    free(x->bc);
    free(x->raw);
    free(x);
}

void kn__expand_bc_clear(struct kn_expander *e)
{
    kn__expand_commits_abandon(e);
    kn__expand_page_clear(e);
    kn__expand_ahead_drop(e);
    free(e->tenant);
    e->tenant = NULL;
    free(e->category);
    e->category = NULL;
    e->nchans = 0;
    e->langs[0] = '\0';
    e->resolving = 0;
}

/* ---- failures: count, set aside, park (queue/poison.h) ---- */

/* A new step on the current entry: what it does, for the log and the
 * reason. */
void kn__expand_step(struct kn_expander *e, const char *what)
{
    e->step = what;
    kn_argv_clear(&e->step_keys);
}

/* A key the step touches, and the types kairan keeps there. */
void kn__expand_step_key(struct kn_expander *e, char *key, const char *want)
{
    if (e->step_keys.n >= STEP_KEYS) {
        free(key);
        return;
    }
    e->step_want[e->step_keys.n] = want;
    kn_argv_take(&e->step_keys, key);
}

static void defer_entry(struct kn_expander *e, int64_t delay_ms);

/* Redis' error text of a reply (NULL for none or a reply of no error). */
const char *kn__expand_rep_error(const redisReply *rep)
{
    return rep != NULL && rep->type == REDIS_REPLY_ERROR ? rep->str : NULL;
}

static void on_fail_counted(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct kn_expander *e = arg;
    struct xentry *x = e->cur;
    struct kn_poison_verdict v;
    const char *bad = NULL, *have = NULL, *want = NULL;
    char reason[700], attempts[16], delay[24];
    int n = x->fails + 1;

    if (rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 &&
        rep->element[0]->type == REDIS_REPLY_INTEGER) {
        if (rep->element[0]->integer > n)
            n = (int)(rep->element[0]->integer < 1000 ? rep->element[0]->integer
                                                      : 1000);
        for (size_t i = 1; i < rep->elements && i <= (size_t)e->step_keys.n;
             i++) {
            const redisReply *t = rep->element[i];
            if ((t->type == REDIS_REPLY_STATUS ||
                 t->type == REDIS_REPLY_STRING) &&
                kn_poison_mismatch(t->str, e->step_want[i - 1])) {
                bad = e->step_keys.v[i - 1];
                have = t->str;
                want = e->step_want[i - 1];
                break;
            }
        }
    }
    x->fails = n;
    v = kn_poison_decide(n - 1, e->fail_err);
    snprintf(attempts, sizeof(attempts), "%d", n);
    snprintf(delay, sizeof(delay), "%lld", (long long)v.delay_ms);
    kn_poison_reason(reason, sizeof(reason), e->step, e->fail_err, bad, have,
                     want, n);
    if (v.park) {
        kn_log(KN_LOG_ERROR, "expand",
               "gave up on a broadcast: parked so that the others go on", "bc",
               x->bc ? x->bc : x->id, "tenant", e->tenant ? e->tenant : "",
               "attempts", attempts, "reason", reason, NULL);
        kn__expand_park(e, reason, bad ? bad : "");
    } else {
        kn_log(KN_LOG_WARN, "expand",
               "broadcast failed; set aside and tried again kn__expand_later",
               "bc", x->bc ? x->bc : x->id, "tenant",
               e->tenant ? e->tenant : "", "attempts", attempts, "retry_in_ms",
               delay, "error", e->fail_err ? e->fail_err : "no reply", "key",
               bad ? bad : "", NULL);
        defer_entry(e, v.delay_ms);
    }
    free(e->fail_err);
    e->fail_err = NULL;
}

/*
 * The current step failed with reply rep (NULL: none, Redis unreachable).
 * A failure of Redis itself sets the entry aside uncounted; any other is
 * counted in Redis (with the types of the step's keys), and the entry is
 * then set aside for a backoff or parked.  Either way the expander goes
 * on with the next entry at once.
 */
void kn__expand_failed(struct kn_expander *e, const redisReply *rep)
{
    struct kn_daemon *d = e->d;
    const char *err =
        rep == NULL
            ? NULL
            : (rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
    struct kn_argv a;
    kn__expand_commits_abandon(e);
    if (kn_poison_transient(err)) {
        kn_log(
            KN_LOG_WARN, "expand",
            "Redis failed (not the broadcast's fault); tried again kn__expand_later",
            "bc", e->cur->bc ? e->cur->bc : e->cur->id, "step", e->step,
            "error", err ? err : "no reply", NULL);
        defer_entry(e, KN_POISON_TRANSIENT_MS);
        return;
    }
    free(e->fail_err);
    e->fail_err = kn_xstrdup(err);
    kn_argv_init(&a);
    kn_argv_take(&a, kn__key(d, "fail:broadcasts:%s", e->cur->id));
    kn_argv_extend(&a, &e->step_keys);
    kn_argv_addi(&a, KN_POISON_TTL_MS);
    kn_argv_add(&a, "1");
    kn__eval_reliable(d, &kn_script_failed, on_fail_counted, e, NULL,
                      1 + (int)e->step_keys.n, &a);
}

/* Keep x aside until due (the list stays in order of due time). */
static void deferred_add(struct kn_expander *e, struct xentry *x)
{
    struct xentry **pp = &e->deferred;
    while (*pp != NULL && (*pp)->due_ms <= x->due_ms)
        pp = &(*pp)->next;
    x->next = *pp;
    *pp = x;
}

static void next_entry(struct kn_expander *e);

/* Set the current entry aside (pending in Redis) and go on. */
static void defer_entry(struct kn_expander *e, int64_t delay_ms)
{
    struct xentry *x = e->cur;
    e->cur = NULL;
    kn__expand_bc_clear(e);
    x->due_ms = kn_mono_ms() + delay_ms;
    deferred_add(e, x);
    next_entry(e);
}

static void on_parked(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct kn_expander *e = arg;
    if (rep->type == REDIS_REPLY_ERROR)
        kn_log(KN_LOG_ERROR, "expand", "parking a broadcast failed", "bc",
               e->cur->bc ? e->cur->bc : e->cur->id, "error", rep->str, NULL);
    kn__expand_xentry_free(e->cur);
    e->cur = NULL;
    kn__expand_bc_clear(e);
    next_entry(e);
}

/*
 * Give up on the current entry: its broadcast becomes `rejected` with the
 * reason (kn_script_park), or, for a raw producer entry that could not be
 * stored, the DLQ gets it masked.  Then the next entry.
 */
void kn__expand_park(struct kn_expander *e, const char *reason,
                     const char *field)
{
    struct kn_daemon *d = e->d;
    struct xentry *x = e->cur;
    struct kn_argv a;
    if (x->raw != NULL || x->bc == NULL) {
        char *masked =
            x->raw ? kn_broadcast_mask_json(x->raw, x->rawlen) : NULL;
        char *counter = kn__key(d, "fail:broadcasts:%s", x->id);
        kn__poison(d, e->stream, x->id, masked ? masked : "",
                   masked ? strlen(masked) : 0, reason);
        kn_redis_cmd(d->cmd, NULL, NULL, "DEL %s", counter);
        free(counter);
        free(masked);
        kn__expand_xentry_free(e->cur);
        e->cur = NULL;
        kn__expand_bc_clear(e);
        next_entry(e);
        return;
    }
    kn_argv_init(&a);
    kn_argv_take(&a, kn_key_bc(d->prefix, x->bc, ""));
    kn_argv_take(&a, kn__key(d, "rejected"));
    kn_argv_take(&a, kn__key(d, "active"));
    kn_argv_take(&a, kn__key(d, "dlq"));
    kn_argv_add(&a, e->stream);
    kn_argv_take(&a, kn__key(d, "fail:broadcasts:%s", x->id));
    kn_argv_add(&a, x->bc);
    kn_argv_addi(&a, kn_now_ms());
    kn_argv_add(&a, reason);
    kn_argv_add(&a, field);
    kn_argv_add(&a, KN_GROUP);
    kn_argv_add(&a, x->id);
    kn_argv_add(&a, e->tenant ? e->tenant : "");
    kn__eval_reliable(d, &kn_script_park, on_parked, e, NULL, 6, &a);
}

/* ---- finishing an entry ---- */

static void on_acked(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct kn_expander *e = arg;
    if (rep == NULL) {
        /* Redis gone mid-way: the entry stays pending; it is reclaimed
         * (by us or another process) and resumes at its checkpoint. */
    }
    kn__expand_xentry_free(e->cur);
    e->cur = NULL;
    kn__expand_bc_clear(e);
    next_entry(e);
}

/* The entry is handled: XACK + XDEL together, then the next one. */
void kn__expand_ack_del(struct kn_expander *e)
{
    struct kn_daemon *d = e->d;
    char *fail =
        e->cur->fails > 0 ? kn__key(d, "fail:broadcasts:%s", e->cur->id) : NULL;
    int rc = kn_queue_ack_del(d->cmd, e->stream, e->cur->id, fail, on_acked, e);
    free(fail);
    if (rc < 0)
        on_acked(d->cmd, NULL, e);
}

/* The keys the submit script touches (a raw entry stored). */
void kn__expand_submit_keys(struct kn_expander *e, const char *id,
                            const char *tenant)
{
    struct kn_daemon *d = e->d;
    kn__expand_step(e, "storing a producer's broadcast");
    kn__expand_step_key(e, kn_key_bc(d->prefix, id, ""), "hash");
    kn__expand_step_key(e, kn_key_bc(d->prefix, id, ":aud"), "list");
    kn__expand_step_key(e, kn__key(d, "broadcasts"), "stream");
    kn__expand_step_key(e, kn__key(d, "bcs"), "zset");
    kn__expand_step_key(e, kn__key(d, "active"), "zset");
    kn__expand_step_key(e, kn__key(d, "categories"), "hash");
    kn__expand_step_key(e, kn__key(d, "rejected"), "zset");
    if (tenant != NULL && kn_tenant_valid(tenant))
        kn__expand_step_key(e, kn_key_idem(d->prefix, tenant), "hash");
}

static void start_entry(struct kn_expander *e)
{
    char *key;
    if (e->cur->raw != NULL) {
        kn__expand_raw(e);
        return;
    }
    if (e->cur->bc == NULL || !kn_id_valid(e->cur->bc)) {
        kn__poison(e->d, e->stream, e->cur->id, NULL, 0,
                   "broadcasts entry with neither a valid id nor a job");
        kn__expand_xentry_free(e->cur);
        e->cur = NULL;
        next_entry(e);
        return;
    }
    key = kn_key_bc(e->d->prefix, e->cur->bc, "");
    kn__expand_step(e, "reading the broadcast");
    kn__expand_step_key(e, kn_xstrdup(key), "hash");
    /* Not the body: the expander needs only the routing fields. */
    if (kn_redis_cmd(e->d->cmd, kn__expand_on_meta, e, "HGETALL %s", key) < 0)
        kn__expand_failed(e, NULL);
    free(key);
}

/*
 * Go on with the expansion, unless a step of the current entry runs:
 *   1. an entry set aside after a failure, once due, then new entries:
 *      each is read and resolved, then waits for its turn (expand_fair.c);
 *   2. the next turn: a page of the broadcast whose turn it is;
 *   3. nothing to do: wait for new entries.
 * A read of the stream is kept outstanding meanwhile (on its own
 * connection), so that a new broadcast joins the turns within a page.
 */
static void next_entry(struct kn_expander *e)
{
    if (e->closed)
        return;
    if (e->cur != NULL)
        return; /* a step is running (a timer or a read came meanwhile) */
    if (e->d->stopping)
        return;
    kn__expand_fair_keep(e);
    read_more(e);
    /* An entry set aside after a failure goes first once due (so that it
     * reaches its bound even under load), but never before: meanwhile
     * the others go on. */
    if (e->deferred != NULL && e->deferred->due_ms <= kn_mono_ms()) {
        e->cur = e->deferred;
        e->deferred = e->cur->next;
        e->cur->next = NULL;
        e->cur->kept_ms = kn_mono_ms();
        start_entry(e);
        return;
    }
    if (e->queue != NULL) {
        e->cur = e->queue;
        e->queue = e->cur->next;
        e->cur->next = NULL;
        e->cur->kept_ms = kn_mono_ms();
        start_entry(e);
        return;
    }
    if (kn__expand_fair_next(e))
        kn__expand_page(e);
}

void kn__expand_resume(struct kn_expander *e)
{
    next_entry(e);
}

void kn__expand_read_more(struct kn_expander *e)
{
    read_more(e);
}

/* 1 if the entry id is in hand already (current, queued or set aside). */
static int known_entry(const struct kn_expander *e, const char *id)
{
    if (e->cur != NULL && strcmp(e->cur->id, id) == 0)
        return 1;
    for (const struct xentry *x = e->queue; x != NULL; x = x->next) {
        if (strcmp(x->id, id) == 0)
            return 1;
    }
    for (const struct xentry *x = e->deferred; x != NULL; x = x->next) {
        if (strcmp(x->id, id) == 0)
            return 1;
    }
    return kn__expand_fair_has(e, id);
}

static void enqueue_entries(struct kn_expander *e, const redisReply *entries)
{
    struct xentry **tail = &e->queue;
    while (*tail != NULL)
        tail = &(*tail)->next;
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *en = entries->element[i], *v;
        struct xentry *x;
        if (en->type != REDIS_REPLY_ARRAY || en->elements < 2 ||
            en->element[0]->type != REDIS_REPLY_STRING ||
            known_entry(e, en->element[0]->str))
            continue;
        x = kn_xcalloc(1, sizeof(*x));
        x->id = kn_xstrdup(en->element[0]->str);
        if ((v = kn_queue_entry_field(en, "id")) &&
            v->type == REDIS_REPLY_STRING)
            x->bc = kn_xstrndup(v->str, v->len);
        if ((v = kn_queue_entry_field(en, "job")) &&
            v->type == REDIS_REPLY_STRING) {
            x->raw = kn_xstrndup(v->str, v->len);
            x->rawlen = v->len;
        }
        *tail = x;
        tail = &x->next;
    }
}

static void on_read(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct kn_expander *e = arg;
    e->reading = 0;
    if (e->closed || rep == NULL)
        return; /* the state callback reads again when Redis is back */
    if (rep->type == REDIS_REPLY_ERROR) {
        if (kn_reply_is_error(rep, "NOGROUP")) {
            kn__ensure_groups(e->d, (void (*)(void *))read_more, e);
        } else {
            kn_log(KN_LOG_ERROR, "expand", "reading the broadcasts failed",
                   "stream", e->stream, "error", rep->str, NULL);
            e->read_after_ms = kn_mono_ms() + 1000;
            if (e->cur == NULL)
                kn__expand_later(e, next_entry, 1000);
        }
        return;
    }
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1)
        enqueue_entries(e, rep->element[0]->element[1]);
    /* Busy with a page: the new entries join at its end. */
    if (e->cur == NULL)
        next_entry(e);
    else
        read_more(e);
}

/* Entries in hand at most (a few hundred bytes each): new ones wait in
 * the stream beyond.  Large, because an urgent broadcast is read only
 * once there is room: every waiting broadcast holds a place until its
 * last page. */
#define MAX_IN_HAND 1024

static void read_more(struct kn_expander *e)
{
    int64_t wait = e->d->cfg->block_ms;
    size_t n = kn__expand_fair_count(e);
    if (e->reading || e->closed || e->d->stopping || !kn_redis_up(e->blk))
        return;
    if (kn_mono_ms() < e->read_after_ms) {
        /* A read failed a moment ago.  libuv's timer counts from the
         * loop's cached time, so the retry armed then may fire a little
         * before read_after_ms: arm it again, or nobody would read the
         * broadcasts stream any more (a page in hand reads at its end). */
        if (e->cur == NULL && e->timer_step == NULL)
            kn__expand_later(e, next_entry, e->read_after_ms - kn_mono_ms());
        return;
    }
    for (const struct xentry *x = e->queue; x != NULL; x = x->next)
        n++;
    for (const struct xentry *x = e->deferred; x != NULL; x = x->next)
        n++;
    if (n >= MAX_IN_HAND)
        return;
    if (e->deferred != NULL) {
        /* Wake up in time for the first entry set aside. */
        int64_t left = e->deferred->due_ms - kn_mono_ms();
        if (left < wait)
            wait = left > 1 ? left : 1;
    }
    if (kn_queue_read(e->blk, e->d->consumer, "10", wait, 1,
                      (const char *const *)&e->stream, on_read, e) == 0)
        e->reading = 1;
}

static void on_timer(uv_timer_t *t)
{
    struct kn_expander *e = kn_container_of(t, struct kn_expander, timer);
    void (*step)(struct kn_expander *) = e->timer_step;
    e->timer_step = NULL;
    if (step != NULL && !e->closed)
        step(e);
}

void kn__expand_later(struct kn_expander *e, void (*step)(struct kn_expander *),
                      int64_t ms)
{
    e->timer_step = step;
    uv_timer_start(&e->timer, on_timer, (uint64_t)ms, 0);
}

static void on_blk_state(struct kn_redis *r, int up, void *arg)
{
    struct kn_expander *e = arg;
    if (!up)
        e->reading = 0;
    else if (e->started && e->cur == NULL)
        next_entry(e);
    else if (e->started)
        read_more(e); /* busy: a pipeline's turn may not end for long */
}

/* ---- internal API ---- */

struct kn_expander *kn__expander_new(struct kn_daemon *d)
{
    struct kn_expander *e = kn_xcalloc(1, sizeof(*e));
    e->d = d;
    e->stream = kn__key(d, "broadcasts");
    kn_argv_init(&e->step_keys);
    uv_timer_init(d->loop, &e->timer);
    e->blk = kn__redis_open(d, "broadcasts", on_blk_state, e);
    return e;
}

void kn__expander_start(struct kn_expander *e)
{
    e->started = 1;
    kn_redis_start(e->blk);
}

struct kn_redis *kn__expander_redis(const struct kn_expander *e)
{
    return e->blk;
}

int kn__expander_idle(const struct kn_expander *e)
{
    return e->cur == NULL;
}

void kn__expander_claimed(struct kn_expander *e, const redisReply *entries)
{
    enqueue_entries(e, entries);
    if (e->cur == NULL)
        next_entry(e);
}

/*
 * The expander's memory goes only once the loop has closed its timer: the
 * daemon closes its command connection after the expander (shutdown_now),
 * and hiredis then calls the callbacks of the commands still on their way
 * (no reply: the drain time ended while Redis did not answer, a page's
 * read, an XLEN, an XACK): they find the expander closed but whole, its
 * entry still there (set aside, it stays pending in Redis), instead of
 * memory freed under them.
 */
static void on_timer_closed(uv_handle_t *h)
{
    struct kn_expander *e = kn_container_of(h, struct kn_expander, timer);
    kn__expand_xentry_free(e->cur);
    e->cur = NULL;
    while (e->queue != NULL) {
        struct xentry *x = e->queue;
        e->queue = x->next;
        kn__expand_xentry_free(x);
    }
    while (e->deferred != NULL) {
        struct xentry *x = e->deferred;
        e->deferred = x->next;
        kn__expand_xentry_free(x);
    }
    kn__expand_bc_clear(e);
    kn__expand_fair_clear(e);
    kn_argv_free(&e->step_keys);
    free(e->fail_err);
    free(e->stream);
    free(e);
}

void kn__expander_close(struct kn_expander *e)
{
    e->closed = 1;
    kn_redis_close(e->blk);
    uv_timer_stop(&e->timer);
    uv_close((uv_handle_t *)&e->timer, on_timer_closed);
}
