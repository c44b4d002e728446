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
#include "model/directory.h"
#include "model/job.h"
#include "queue/poison.h"
#include "queue/scripts.h"
#include "queue/submit.h"
#include "queue/keys.h"

struct xentry {
    char *id;  /* stream entry id */
    char *bc;  /* {id}: broadcast id */
    char *raw; /* {job}: raw JSON */
    size_t rawlen;
    int fails;      /* failures counted (Redis keeps the shared count) */
    int64_t due_ms; /* set aside after a failure: not before (monotonic) */
    struct xentry *next;
};

/* The keys a step touches with the type kairan keeps in each, so that a
 * failure can name the one that holds the wrong type. */
#define STEP_KEYS 24

struct kn_expander {
    struct kn_daemon *d;
    struct kn_redis *blk;
    char *stream;
    int started, closed, reading;
    struct xentry *queue, *cur;
    struct xentry *deferred; /* failed entries, by due time */
    uv_timer_t timer;        /* pause (depth), retry after errors */
    void (*timer_step)(struct kn_expander *);

    /* the broadcast being expanded */
    char *tenant;
    int urgent, preferred, ack;
    enum kn_channel chans[KN_CH__COUNT];
    size_t nchans;
    int64_t expires_ms;
    int64_t aud_n, page;
    /* the page being built */
    json_t **rj; /* recipient JSON per audience entry (NULL: skipped) */
    char **rid;
    size_t nrj, lookups;
    int page_lost; /* a lookup got no reply: the page is read again */
    int64_t heartbeat_ms;

    /* the step running on the current entry, for a failure's reason */
    const char *step;
    struct kn_argv step_keys;
    const char *step_want[STEP_KEYS];
    char *fail_err; /* the failure being counted: Redis' error text */
};

static void next_entry(struct kn_expander *e);
static void do_page(struct kn_expander *e);
static void read_more(struct kn_expander *e);

static void later(struct kn_expander *e, void (*step)(struct kn_expander *),
                  int64_t ms);

static void xentry_free(struct xentry *x)
{
    if (x == NULL)
        return;
    free(x->id);
    free(x->bc);
    free(x->raw);
    free(x);
}

static void page_clear(struct kn_expander *e)
{
    for (size_t i = 0; i < e->nrj; i++) {
        json_decref(e->rj[i]);
        free(e->rid[i]);
    }
    free(e->rj);
    free(e->rid);
    e->rj = NULL;
    e->rid = NULL;
    e->nrj = 0;
}

static void bc_clear(struct kn_expander *e)
{
    page_clear(e);
    free(e->tenant);
    e->tenant = NULL;
    e->nchans = 0;
}

/* ---- failures: count, set aside, park (queue/poison.h) ---- */

/* A new step on the current entry: what it does, for the log and the
 * reason. */
static void step_begin(struct kn_expander *e, const char *what)
{
    e->step = what;
    kn_argv_clear(&e->step_keys);
}

/* A key the step touches, and the types kairan keeps there. */
static void step_key(struct kn_expander *e, char *key, const char *want)
{
    if (e->step_keys.n >= STEP_KEYS) {
        free(key);
        return;
    }
    e->step_want[e->step_keys.n] = want;
    kn_argv_take(&e->step_keys, key);
}

static void ack_del(struct kn_expander *e);
static void defer_entry(struct kn_expander *e, int64_t delay_ms);
static void park_entry(struct kn_expander *e, const char *reason,
                       const char *field);

/* Redis' error text of a reply (NULL for none or a reply of no error). */
static const char *rep_error(const redisReply *rep)
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
        park_entry(e, reason, bad ? bad : "");
    } else {
        kn_log(KN_LOG_WARN, "expand",
               "broadcast failed; set aside and tried again later", "bc",
               x->bc ? x->bc : x->id, "tenant", e->tenant ? e->tenant : "",
               "attempts", attempts, "retry_in_ms", delay, "error",
               e->fail_err ? e->fail_err : "no reply", "key", bad ? bad : "",
               NULL);
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
static void entry_failed(struct kn_expander *e, const redisReply *rep)
{
    struct kn_daemon *d = e->d;
    const char *err =
        rep == NULL
            ? NULL
            : (rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
    struct kn_argv a;
    if (kn_poison_transient(err)) {
        kn_log(KN_LOG_WARN, "expand",
               "Redis failed (not the broadcast's fault); tried again later",
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
    kn__eval_reliable(d, &kn_script_failed, on_fail_counted, e,
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
    bc_clear(e);
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
    xentry_free(e->cur);
    e->cur = NULL;
    bc_clear(e);
    next_entry(e);
}

/*
 * Give up on the current entry: its broadcast becomes `rejected` with the
 * reason (kn_script_park), or, for a raw producer entry that could not be
 * stored, the DLQ gets it masked.  Then the next entry.
 */
static void park_entry(struct kn_expander *e, const char *reason,
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
        xentry_free(e->cur);
        e->cur = NULL;
        bc_clear(e);
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
    kn__eval_reliable(d, &kn_script_park, on_parked, e, 6, &a);
}

/* ---- finishing an entry ---- */

static void on_acked(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct kn_expander *e = arg;
    if (rep == NULL) {
        /* Redis gone mid-way: the entry stays pending; it is reclaimed
         * (by us or another process) and resumes at its checkpoint. */
    }
    xentry_free(e->cur);
    e->cur = NULL;
    bc_clear(e);
    next_entry(e);
}

/* The entry is handled: XACK + XDEL together, then the next one. */
static void ack_del(struct kn_expander *e)
{
    struct kn_daemon *d = e->d;
    kn_redis_cmd(d->cmd, NULL, NULL, "MULTI");
    kn_redis_cmd(d->cmd, NULL, NULL, "XACK %s " KN_GROUP " %s", e->stream,
                 e->cur->id);
    kn_redis_cmd(d->cmd, NULL, NULL, "XDEL %s %s", e->stream, e->cur->id);
    if (e->cur->fails > 0)
        kn_redis_cmd(d->cmd, NULL, NULL, "DEL %sfail:broadcasts:%s", d->prefix,
                     e->cur->id);
    if (kn_redis_cmd(d->cmd, on_acked, e, "EXEC") < 0)
        on_acked(d->cmd, NULL, e);
}

static void on_ignore(struct kn_redis *r, redisReply *rep, void *arg)
{
}

/* The keys the submit script touches (a raw entry stored). */
static void submit_keys(struct kn_expander *e, const char *id,
                        const char *tenant)
{
    struct kn_daemon *d = e->d;
    step_begin(e, "storing a producer's broadcast");
    step_key(e, kn_key_bc(d->prefix, id, ""), "hash");
    step_key(e, kn_key_bc(d->prefix, id, ":aud"), "list");
    step_key(e, kn__key(d, "broadcasts"), "stream");
    step_key(e, kn__key(d, "bcs"), "zset");
    step_key(e, kn__key(d, "active"), "zset");
    step_key(e, kn__key(d, "categories"), "hash");
    step_key(e, kn__key(d, "rejected"), "zset");
    if (tenant != NULL && kn_tenant_valid(tenant))
        step_key(e, kn_key_idem(d->prefix, tenant), "hash");
}

/* ---- raw XADD entries ---- */

static void on_raw_stored(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct kn_expander *e = arg;
    if (rep->type == REDIS_REPLY_ERROR) {
        /* Kept (pending) and counted: parked masked in the DLQ in the
         * end, never dropped without a trace. */
        entry_failed(e, rep);
        return;
    }
    ack_del(e);
}

/*
 * A producer XADDed the JSON itself.  Validate it like kairanctl would;
 * store it sealed (or rejected, masked) and delete the plaintext entry.
 */
static void handle_raw(struct kn_expander *e)
{
    struct kn_daemon *d = e->d;
    const struct kn_config *cfg = d->cfg;
    struct kn_limits lim = {cfg->max_subject, cfg->max_body,
                            cfg->max_recipients, cfg->default_ttl_ms};
    struct kn_broadcast b;
    char err[512], field[128];
    struct kn_argv a;
    int rc = kn_broadcast_parse(e->cur->raw, e->cur->rawlen, &lim, &b, err,
                                sizeof(err), field, sizeof(field));
    kn_argv_init(&a);
    if (rc < 0) {
        /* Keep it visible as rejected, under a name of kairan's made from
         * the stream entry id (so that reading the entry again after a
         * crash keeps it once): the producer's id is only a key within its
         * tenant, and this entry may not even have a valid tenant. */
        json_t *root = json_loadb(e->cur->raw, e->cur->rawlen, 0, NULL);
        json_t *tv;
        char id[64];
        snprintf(id, sizeof(id), "rejected-%s", e->cur->id);
        char *masked = kn_broadcast_mask_json(e->cur->raw, e->cur->rawlen);
        tv = json_object_get(root, "tenant");
        kn_log(KN_LOG_WARN, "expand", "broadcast rejected", "bc", id, "reason",
               err, NULL);
        kn_argv_take(&a, kn_key_bc(d->prefix, id, ""));
        kn_argv_take(&a, kn__key(d, "rejected"));
        kn_argv_take(&a, kn__key(d, "bcs"));
        kn_argv_add(&a, id);
        kn_argv_addi(&a, kn_now_ms());
        kn_argv_add(&a, err);
        kn_argv_add(&a, field);
        /* Not JSON: nothing of it is kept (it may hold anything). */
        if (masked == NULL)
            masked = kn_xasprintf("(not JSON: %zu bytes)", e->cur->rawlen);
        kn_argv_take(&a, masked);
        /* The tenant only when it is a valid one (it may be an address in
         * the wrong place). */
        kn_argv_add(&a,
                    json_is_string(tv) && kn_tenant_valid(json_string_value(tv))
                        ? json_string_value(tv)
                        : "");
        submit_keys(e, id, NULL);
        json_decref(root);
        kn__eval_reliable(d, &kn_script_reject, on_raw_stored, e, 3, &a);
        return;
    }
    /* The stream entry id is the key of an entry without one, so that
     * reading it again after a crash stores it once. */
    b.id = kn_broadcast_new_id();
    if (b.key == NULL)
        b.key = kn_xstrdup(e->cur->id);
    if (b.sender == NULL)
        b.sender = kn_xstrdup("xadd");
    kn_broadcast_submit_call(&b, d->kr, d->prefix, NULL, &a);
    submit_keys(e, b.id, b.tenant);
    kn_log(KN_LOG_INFO, "expand", "raw broadcast stored sealed", "bc", b.id,
           NULL);
    kn_broadcast_free(&b);
    kn__eval_reliable(d, &kn_script_submit, on_raw_stored, e, KN_SUBMIT_NKEYS,
                      &a);
}

/* ---- expansion ---- */

static void on_expand_done(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct kn_expander *e = arg;
    if (rep->type == REDIS_REPLY_ERROR) {
        entry_failed(e, rep);
        return;
    }
    kn_log(KN_LOG_INFO, "expand", "broadcast expanded", "bc", e->cur->bc,
           "status", rep->type == REDIS_REPLY_STRING ? rep->str : "", NULL);
    ack_del(e);
}

static void expand_done(struct kn_expander *e)
{
    struct kn_daemon *d = e->d;
    struct kn_argv a;
    kn_argv_init(&a);
    kn_argv_take(&a, kn_key_bc(d->prefix, e->cur->bc, ""));
    kn_argv_take(&a, kn__key(d, "active"));
    kn_argv_add(&a, e->cur->bc);
    kn_argv_addi(&a, kn_now_ms());
    step_begin(e, "ending the expansion");
    step_key(e, kn_key_bc(d->prefix, e->cur->bc, ""), "hash");
    step_key(e, kn__key(d, "active"), "zset");
    kn__eval_reliable(d, &kn_script_expand_done, on_expand_done, e, 2, &a);
}

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A job's JSON (without its recipients for a group job). */
static json_t *job_json(struct kn_expander *e, enum kn_channel ch,
                        const char *key, const char *platform, json_t *fallback)
{
    char q[32];
    snprintf(q, sizeof(q), "%s:%s", kn_channel_name(ch),
             e->urgent ? "urgent" : "normal");
    return kn_job_new(e->cur->bc, q, key, kn_now_ms(), e->expires_ms, platform,
                      fallback);
}

/* Append one single-recipient job to the commit arguments. */
static void add_job(struct kn_expander *e, struct kn_argv *a,
                    enum kn_channel ch, const char *rcpt, const char *sealed,
                    const char *bi, const char *platform, json_t *fallback)
{
    char key[96];
    json_t *j;
    snprintf(key, sizeof(key), "%s:%s", kn_channel_name(ch), bi);
    j = job_json(e, ch, key, platform, fallback);
    kn_job_set_rcpt(j, rcpt, sealed, bi);
    kn_argv_addi(a, (int)ch * 2 + (e->urgent ? 0 : 1));
    kn_argv_addf(a, "%s:%s", kn_channel_name(ch), bi);
    kn_argv_take(a, json_dumps(j, JSON_COMPACT));
    kn_argv_add(a, rcpt);
    json_decref(j);
}

/* The directory record's keys of an e-mail or LINE address. */
static const char *dir_addr(enum kn_channel ch)
{
    return ch == KN_CH_EMAIL ? KN_DIR_EMAIL : KN_DIR_LINE;
}

static const char *dir_index(enum kn_channel ch)
{
    return ch == KN_CH_EMAIL ? KN_DIR_EMAIL_INDEX : KN_DIR_LINE_INDEX;
}

/* LINE recipients of a page waiting to be grouped into multicast jobs. */
struct line_member {
    const char *rcpt, *sealed, *bi;
};

/* 1 if the recipient has a usable contact on channel ch. */
static int has_contact(json_t *r, enum kn_channel ch)
{
    switch (ch) {
    case KN_CH_EMAIL:
        return jstr(r, KN_DIR_EMAIL) && jstr(r, KN_DIR_EMAIL_INDEX);
    case KN_CH_LINE:
        return jstr(r, KN_DIR_LINE) && jstr(r, KN_DIR_LINE_INDEX) &&
               !json_is_true(json_object_get(r, KN_DIR_LINE_DEAD));
    case KN_CH_PUSH: {
        json_t *p = json_object_get(r, KN_DIR_PUSH), *t;
        size_t i;
        json_array_foreach(p, i, t)
        {
            if (jstr(t, KN_DIR_PUSH_TOKEN) && jstr(t, KN_DIR_PUSH_INDEX) &&
                !json_is_true(json_object_get(t, KN_DIR_PUSH_DEAD)))
                return 1;
        }
        return 0;
    }
    default:
        return 0;
    }
}

/* The contacts (sealed) of a recipient on channel ch, as fallbacks. */
static void add_fallbacks(json_t *fb, json_t *r, enum kn_channel ch)
{
    json_t *t;
    size_t j;
    switch (ch) {
    case KN_CH_EMAIL:
    case KN_CH_LINE:
        json_array_append_new(fb, kn_job_fallback(kn_channel_name(ch), NULL,
                                                  jstr(r, dir_addr(ch)),
                                                  jstr(r, dir_index(ch))));
        break;
    case KN_CH_PUSH:
        json_array_foreach(json_object_get(r, KN_DIR_PUSH), j, t)
        {
            const char *k = jstr(t, KN_DIR_PUSH_PLATFORM);
            if (!jstr(t, KN_DIR_PUSH_TOKEN) || !jstr(t, KN_DIR_PUSH_INDEX))
                continue;
            json_array_append_new(fb,
                                  kn_job_fallback("push", k ? k : "fcm",
                                                  jstr(t, KN_DIR_PUSH_TOKEN),
                                                  jstr(t, KN_DIR_PUSH_INDEX)));
        }
        break;
    default:
        break;
    }
}

/*
 * The jobs of one recipient.  policy all: one job per channel of the
 * broadcast the recipient can be reached on (push: per device token; LINE
 * recipients are collected into multicast groups by the caller).  policy
 * preferred: only the first such channel, in the recipient's own order if
 * the directory has one, with the other channels' contacts (sealed) kept
 * in the job as fallbacks for a permanent failure.  Returns the number of
 * jobs (and LINE members) added.
 */
static int recipient_jobs(struct kn_expander *e, struct kn_argv *a, json_t *r,
                          const char *rcpt, struct line_member *line,
                          size_t *nline)
{
    enum kn_channel order[KN_CH__COUNT];
    size_t n = 0;
    int added = 0, first = -1;
    json_t *pref = json_object_get(r, KN_DIR_CHANNELS), *v, *fb = json_array();
    size_t i;

    /* Order: the recipient's preference first, then the broadcast's. */
    json_array_foreach(pref, i, v)
    {
        int c = json_is_string(v) ? kn_channel_parse(json_string_value(v)) : -1;
        for (size_t k = 0; c >= 0 && k < e->nchans; k++) {
            int dup = 0;
            for (size_t m = 0; m < n; m++)
                dup |= (int)order[m] == c;
            if ((int)e->chans[k] == c && !dup)
                order[n++] = (enum kn_channel)c;
        }
    }
    for (size_t k = 0; k < e->nchans; k++) {
        int dup = 0;
        for (size_t m = 0; m < n; m++)
            dup |= order[m] == e->chans[k];
        if (!dup)
            order[n++] = e->chans[k];
    }
    if (e->preferred) {
        for (size_t k = 0; k < n; k++) {
            if (!has_contact(r, order[k]))
                continue;
            if (first < 0)
                first = (int)order[k];
            else
                add_fallbacks(fb, r, order[k]);
        }
    }
    for (size_t k = 0; k < n; k++) {
        enum kn_channel ch = order[k];
        if (!has_contact(r, ch) || (e->preferred && (int)ch != first))
            continue;
        if (ch == KN_CH_PUSH) {
            json_t *t;
            size_t j;
            json_array_foreach(json_object_get(r, KN_DIR_PUSH), j, t)
            {
                if (!jstr(t, KN_DIR_PUSH_TOKEN) ||
                    !jstr(t, KN_DIR_PUSH_INDEX) ||
                    json_is_true(json_object_get(t, KN_DIR_PUSH_DEAD)))
                    continue;
                add_job(e, a, ch, rcpt, jstr(t, KN_DIR_PUSH_TOKEN),
                        jstr(t, KN_DIR_PUSH_INDEX),
                        jstr(t, KN_DIR_PUSH_PLATFORM), fb);
                added++;
            }
        } else if (ch == KN_CH_LINE && !e->preferred && !e->ack) {
            /* (An ack broadcast gives each recipient a personal link, so
             * its LINE messages cannot be one multicast.) */
            line[*nline].rcpt = rcpt;
            line[*nline].sealed = jstr(r, KN_DIR_LINE);
            line[*nline].bi = jstr(r, KN_DIR_LINE_INDEX);
            (*nline)++;
            added++;
        } else {
            add_job(e, a, ch, rcpt, jstr(r, dir_addr(ch)),
                    jstr(r, dir_index(ch)), NULL, fb);
            added++;
        }
    }
    json_decref(fb);
    return added;
}

/*
 * LINE recipients of the page as multicast jobs of at most 500 user ids
 * (LINE's limit), one request each: group entries of commit_page.
 */
static void add_line_groups(struct kn_expander *e, struct kn_argv *a,
                            struct line_member *line, size_t nline)
{
    for (size_t off = 0, g = 0; off < nline; off += 500, g++) {
        size_t cnt = nline - off < 500 ? nline - off : 500;
        char key[64];
        json_t *j;
        if (cnt == 1) {
            add_job(e, a, KN_CH_LINE, line[off].rcpt, line[off].sealed,
                    line[off].bi, NULL, NULL);
            continue;
        }
        /* The key names the page and the group: stable across retries,
         * so the X-Line-Retry-Key derived from it is too. */
        snprintf(key, sizeof(key), "line:p%lld.%zu", (long long)e->page, g);
        j = job_json(e, KN_CH_LINE, key, NULL, NULL);
        kn_argv_addi(a, 100 + (int)KN_CH_LINE * 2 + (e->urgent ? 0 : 1));
        kn_argv_addi(a, (int64_t)cnt);
        kn_argv_take(a, json_dumps(j, JSON_COMPACT));
        kn_argv_add(a, "");
        json_decref(j);
        for (size_t k = off; k < off + cnt; k++) {
            kn_argv_addf(a, "line:%s", line[k].bi);
            kn_argv_add(a, line[k].rcpt);
            kn_argv_add(a, line[k].sealed);
            kn_argv_add(a, line[k].bi);
        }
    }
}

static void on_committed(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct kn_expander *e = arg;
    long long code;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
        page_clear(e);
        entry_failed(e, rep);
        return;
    }
    code = rep->element[0]->integer;
    page_clear(e);
    if (code < 0) {
        kn_log(KN_LOG_INFO, "expand", "broadcast cancelled during expansion",
               "bc", e->cur->bc, NULL);
        expand_done(e);
        return;
    }
    e->page++;
    /* Keep our claim on the entry fresh, so nobody takes over a long but
     * healthy expansion (XCLAIM with min-idle 0 resets its idle time). */
    if (kn_mono_ms() - e->heartbeat_ms > 1000) {
        e->heartbeat_ms = kn_mono_ms();
        kn_redis_cmd(e->d->cmd, on_ignore, NULL,
                     "XCLAIM %s " KN_GROUP " %s 0 %s JUSTID", e->stream,
                     e->d->consumer, e->cur->id);
    }
    do_page(e);
}

/* Every recipient of the page is known: build and commit its jobs. */
static void commit_page(struct kn_expander *e)
{
    struct kn_daemon *d = e->d;
    struct kn_argv a;
    struct line_member *line;
    size_t nline = 0;
    int unreachable = 0, unreachable_at;
    kn_argv_init(&a);
    kn_argv_take(&a, kn_key_bc(d->prefix, e->cur->bc, ""));
    kn_argv_take(&a, kn_key_bc(d->prefix, e->cur->bc, ":r"));
    step_begin(e, "enqueueing the broadcast's jobs");
    step_key(e, kn_key_bc(d->prefix, e->cur->bc, ""), "hash");
    step_key(e, kn_key_bc(d->prefix, e->cur->bc, ":r"), "hash");
    for (int i = 0; i < KN_QUEUE_STREAMS; i++) {
        kn_argv_take(&a, kn__key(d, "q:%s", kn_queue_stream_name(i)));
        step_key(e, kn__key(d, "q:%s", kn_queue_stream_name(i)), "stream");
    }
    for (size_t i = 0; i < e->nchans; i++)
        step_key(e, kn__key(d, "dead:%s", kn_channel_name(e->chans[i])), "set");
    kn_argv_take(&a, kn_key_bc(d->prefix, e->cur->bc, ":m"));
    step_key(e, kn_key_bc(d->prefix, e->cur->bc, ":m"), "set");
    kn_argv_addi(&a, e->page);
    unreachable_at = a.n;
    kn_argv_add(&a, "0"); /* unreachable count, set below */
    kn_argv_add(&a, d->prefix);
    line = kn_xcalloc(e->nrj + 1, sizeof(*line));
    for (size_t i = 0; i < e->nrj; i++) {
        if (e->rj[i] == NULL ||
            recipient_jobs(e, &a, e->rj[i], e->rid[i], line, &nline) == 0)
            unreachable++;
    }
    add_line_groups(e, &a, line, nline);
    free(line);
    free(a.v[unreachable_at]);
    a.v[unreachable_at] = kn_xasprintf("%d", unreachable);
    a.len[unreachable_at] = strlen(a.v[unreachable_at]);
    kn__eval_reliable(d, &kn_script_commit_page, on_committed, e,
                      3 + KN_QUEUE_STREAMS, &a);
}

struct lookup {
    struct kn_expander *e;
    size_t idx;
};

/*
 * A recipient whose directory record cannot be read (a key of the wrong
 * type) is skipped and counted unreachable, like a deleted one, but not
 * silently: the DLQ says which key, with the broadcast and its tenant,
 * so that the rest of the broadcast still goes out.
 */
static void rcpt_unreadable(struct kn_expander *e, size_t idx, const char *err)
{
    struct kn_daemon *d = e->d;
    char *key = kn_key_rcpt(d->prefix, e->tenant, e->rid[idx]);
    char *dlq = kn__key(d, "dlq"), reason[600], now[24];
    kn_poison_reason(reason, sizeof(reason),
                     "reading a recipient's directory record", err, key,
                     "key of another type", "hash", 1);
    snprintf(reason + strlen(reason), sizeof(reason) - strlen(reason),
             " (the recipient was skipped, counted unreachable)");
    snprintf(now, sizeof(now), "%lld", (long long)kn_now_ms());
    kn_log(KN_LOG_ERROR, "expand", "recipient skipped", "bc", e->cur->bc,
           "tenant", e->tenant, "rcpt", e->rid[idx], "reason", reason, NULL);
    kn_redis_cmd(d->cmd, on_ignore, NULL,
                 "XADD %s * bc %s tenant %s rcpt %s reason %s failed_ms %s",
                 dlq, e->cur->bc, e->tenant, e->rid[idx], reason, now);
    free(key);
    free(dlq);
}

static void on_rcpt(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct lookup *l = arg;
    struct kn_expander *e = l->e;
    if (kn_poison_transient(rep_error(rep)) &&
        (rep == NULL || rep->type == REDIS_REPLY_ERROR))
        e->page_lost = 1;
    else if (rep->type == REDIS_REPLY_ERROR)
        rcpt_unreadable(e, l->idx, rep->str);
    if (rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
        rep->element[0]->type == REDIS_REPLY_STRING &&
        !(rep->element[1]->type == REDIS_REPLY_STRING &&
          strcmp(rep->element[1]->str, "0") == 0)) {
        e->rj[l->idx] =
            json_loadb(rep->element[0]->str, rep->element[0]->len, 0, NULL);
    }
    /* Inactive (graduated) or deleted recipients get nothing. */
    free(l);
    if (--e->lookups == 0) {
        if (e->page_lost) {
            page_clear(e);
            entry_failed(e, NULL);
        } else {
            commit_page(e);
        }
    }
}

static void on_range(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct kn_expander *e = arg;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
        entry_failed(e, rep);
        return;
    }
    e->page_lost = 0;
    e->nrj = rep->elements;
    e->rj = kn_xcalloc(e->nrj + 1, sizeof(*e->rj));
    e->rid = kn_xcalloc(e->nrj + 1, sizeof(*e->rid));
    e->lookups = 1; /* held until every lookup is sent */
    for (size_t i = 0; i < rep->elements; i++) {
        const char *s = rep->element[i]->str;
        if (rep->element[i]->type != REDIS_REPLY_STRING) {
            e->rid[i] = kn_xstrdup("?");
        } else if (strncmp(s, "i:", 2) == 0) {
            e->rj[i] = json_loads(s + 2, 0, NULL);
            e->rid[i] = kn_xstrdup(
                jstr(e->rj[i], KN_DIR_ID) ? jstr(e->rj[i], KN_DIR_ID) : "?");
        } else if (strncmp(s, "d:", 2) == 0) {
            struct lookup *l = kn_xcalloc(1, sizeof(*l));
            char *key = kn_key_rcpt(e->d->prefix, e->tenant, s + 2);
            e->rid[i] = kn_xstrdup(s + 2);
            l->e = e;
            l->idx = i;
            e->lookups++;
            if (kn_redis_cmd(e->d->cmd, on_rcpt, l,
                             "HMGET %s " KN_DIR_HASH_FIELD " active",
                             key) < 0) {
                e->lookups--;
                e->page_lost = 1;
                free(l);
            }
            free(key);
        } else {
            e->rid[i] = kn_xstrdup("?");
        }
    }
    if (--e->lookups == 0)
        commit_page(e);
}

/*
 * Where page p starts in the audience list.  The first page is short (at
 * most 50 recipients), so that the first messages leave within
 * milliseconds of the submission; the others have dispatcher.expand_page.
 */
static long long page_start(const struct kn_expander *e, int64_t p)
{
    long long size = e->d->cfg->expand_page;
    long long first = size < 50 ? size : 50;
    return p == 0 ? 0 : first + (p - 1) * size;
}

struct depth {
    struct kn_expander *e;
    int left, deep;
    char *err; /* a stream that cannot be read: its error */
    int lost;
};

static void range_page(struct kn_expander *e)
{
    char *aud = kn_key_bc(e->d->prefix, e->cur->bc, ":aud");
    long long from = page_start(e, e->page);
    long long to = page_start(e, e->page + 1) - 1;
    step_begin(e, "reading the audience");
    step_key(e, kn_xstrdup(aud), "list");
    if (kn_redis_cmd(e->d->cmd, on_range, e, "LRANGE %s %lld %lld", aud, from,
                     to) < 0)
        entry_failed(e, NULL);
    free(aud);
}

static void on_depth(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct depth *dp = arg;
    struct kn_expander *e = dp->e;
    /* A stream that answers with an error is not "deep": waiting would
     * never end.  It is a failure of this entry (counted, parked). */
    if (rep == NULL)
        dp->lost = 1;
    else if (rep->type == REDIS_REPLY_ERROR && dp->err == NULL)
        dp->err = kn_xstrdup(rep->str);
    else if (rep->type == REDIS_REPLY_INTEGER &&
             rep->integer > e->d->cfg->max_depth)
        dp->deep = 1;
    if (--dp->left > 0)
        return;
    if (dp->err != NULL || dp->lost) {
        redisReply fake;
        memset(&fake, 0, sizeof(fake));
        fake.type = REDIS_REPLY_ERROR;
        fake.str = dp->err;
        fake.len = dp->err ? strlen(dp->err) : 0;
        entry_failed(e, dp->err ? &fake : NULL);
    } else if (dp->deep) {
        later(e, do_page, 200); /* backpressure: let the workers catch up */
    } else {
        range_page(e);
    }
    free(dp->err);
    free(dp);
}

/* Next page, or done.  Pauses while a target stream is too deep. */
static void do_page(struct kn_expander *e)
{
    struct depth *dp;
    if (e->closed)
        return;
    if (e->d->stopping) {
        /* Leave the entry pending: whoever takes it resumes here. */
        xentry_free(e->cur);
        e->cur = NULL;
        bc_clear(e);
        return;
    }
    if (page_start(e, e->page) >= e->aud_n) {
        expand_done(e);
        return;
    }
    dp = kn_xcalloc(1, sizeof(*dp));
    dp->e = e;
    dp->left = (int)e->nchans;
    step_begin(e, "measuring the queues it goes to");
    for (size_t i = 0; i < e->nchans; i++) {
        char *key = kn__key(e->d, "q:%s:%s", kn_channel_name(e->chans[i]),
                            e->urgent ? "urgent" : "normal");
        step_key(e, kn_xstrdup(key), "stream");
        if (kn_redis_cmd(e->d->cmd, on_depth, dp, "XLEN %s", key) < 0)
            on_depth(e->d->cmd, NULL, dp);
        free(key);
    }
}

static void on_resolved(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct kn_expander *e = arg;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER) {
        entry_failed(e, rep);
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
        park_entry(e, rep->element[1]->str, field);
        return;
    }
    if (rep->element[0]->integer == 2) {
        expand_done(e);
        return;
    }
    e->aud_n = rep->element[1]->integer;
    kn_log(KN_LOG_INFO, "expand", "expanding", "bc", e->cur->bc, NULL);
    do_page(e);
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
        entry_failed(e, rep);
        return;
    }
    for (size_t i = 0; i < rep->elements; i++) {
        if (rep->element[i]->type == REDIS_REPLY_ERROR) {
            entry_failed(e, rep->element[i]);
            return;
        }
    }
    ack_del(e);
}

static void on_meta(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct kn_expander *e = arg;
    struct kn_daemon *d = e->d;
    const char *st, *chans, *groups, *ids, *v;
    json_t *g, *ri, *x;
    struct kn_argv a;
    size_t i;
    int64_t send_at;

    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
        entry_failed(e, rep);
        return;
    }
    st = hget(rep, "status");
    if (st == NULL) {
        kn_log(KN_LOG_WARN, "expand", "announced broadcast not found", "bc",
               e->cur->bc, NULL);
        ack_del(e);
        return;
    }
    if (strcmp(st, "done") == 0 || strcmp(st, "rejected") == 0 ||
        ((v = hget(rep, "expanded")) && strcmp(v, "1") == 0)) {
        ack_del(e);
        return;
    }
    if (strcmp(st, "cancelled") == 0) {
        expand_done(e);
        return;
    }
    send_at = (v = hget(rep, "send_at_ms")) ? strtoll(v, NULL, 10) : 0;
    if (send_at > kn_now_ms()) {
        /* Scheduled: park it; the daemon's timer announces it again when
         * it is due. */
        char *sched = kn__key(d, "sched"),
             *bc = kn_key_bc(d->prefix, e->cur->bc, "");
        step_begin(e, "scheduling the broadcast");
        step_key(e, kn_xstrdup(sched), "zset");
        step_key(e, kn_xstrdup(bc), "hash");
        kn_redis_cmd(d->cmd, NULL, NULL, "MULTI");
        kn_redis_cmd(d->cmd, NULL, NULL, "ZADD %s %lld %s", sched,
                     (long long)send_at, e->cur->bc);
        kn_redis_cmd(d->cmd, NULL, NULL, "HSET %s status scheduled", bc);
        if (kn_redis_cmd(d->cmd, on_scheduled, e, "EXEC") < 0)
            entry_failed(e, NULL);
        free(sched);
        free(bc);
        return;
    }
    e->tenant = kn_xstrdup((v = hget(rep, "tenant")) ? v : "");
    e->urgent = (v = hget(rep, "priority")) && strcmp(v, "urgent") == 0;
    e->preferred = (v = hget(rep, "policy")) && strcmp(v, "preferred") == 0;
    e->ack = (v = hget(rep, "ack")) && strcmp(v, "1") == 0;
    e->expires_ms = (v = hget(rep, "expires_ms")) ? strtoll(v, NULL, 10) : 0;
    e->page = (v = hget(rep, "xc")) ? strtoll(v, NULL, 10) : 0;
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
    kn_argv_init(&a);
    kn_argv_take(&a, kn_key_bc(d->prefix, e->cur->bc, ""));
    kn_argv_take(&a, kn_key_bc(d->prefix, e->cur->bc, ":aud"));
    kn_argv_add(&a, d->prefix);
    kn_argv_add(&a, e->tenant);
    kn_argv_addi(&a, (int64_t)json_array_size(g));
    step_begin(e, "resolving the audience");
    step_key(e, kn_key_bc(d->prefix, e->cur->bc, ""), "hash");
    step_key(e, kn_key_bc(d->prefix, e->cur->bc, ":aud"), "list");
    json_array_foreach(g, i, x)
    {
        kn_argv_add(&a, json_string_value(x));
        step_key(e,
                 kn_key_grp(d->prefix, e->tenant,
                            json_string_value(x) ? json_string_value(x) : ""),
                 "set");
    }
    json_array_foreach(ri, i, x) kn_argv_add(&a, json_string_value(x));
    json_decref(g);
    json_decref(ri);
    kn__eval_reliable(d, &kn_script_resolve, on_resolved, e, 2, &a);
}

static void start_entry(struct kn_expander *e)
{
    char *key;
    if (e->cur->raw != NULL) {
        handle_raw(e);
        return;
    }
    if (e->cur->bc == NULL || !kn_id_valid(e->cur->bc)) {
        kn__poison(e->d, e->stream, e->cur->id, NULL, 0,
                   "broadcasts entry with neither a valid id nor a job");
        xentry_free(e->cur);
        e->cur = NULL;
        next_entry(e);
        return;
    }
    key = kn_key_bc(e->d->prefix, e->cur->bc, "");
    step_begin(e, "reading the broadcast");
    step_key(e, kn_xstrdup(key), "hash");
    /* Not the body: the expander needs only the routing fields. */
    if (kn_redis_cmd(e->d->cmd, on_meta, e, "HGETALL %s", key) < 0)
        entry_failed(e, NULL);
    free(key);
}

/* Take the next queued entry, or read more. */
static void next_entry(struct kn_expander *e)
{
    if (e->closed)
        return;
    if (e->cur != NULL) {
        start_entry(e); /* retrying the current one */
        return;
    }
    if (e->d->stopping)
        return;
    /* An entry set aside after a failure goes first once due (so that it
     * reaches its bound even under load), but never before: meanwhile
     * the others go on. */
    if (e->deferred != NULL && e->deferred->due_ms <= kn_mono_ms()) {
        e->cur = e->deferred;
        e->deferred = e->cur->next;
        e->cur->next = NULL;
        e->heartbeat_ms = kn_mono_ms();
        start_entry(e);
        return;
    }
    if (e->queue != NULL) {
        e->cur = e->queue;
        e->queue = e->cur->next;
        e->cur->next = NULL;
        e->heartbeat_ms = kn_mono_ms();
        start_entry(e);
        return;
    }
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
    return 0;
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
        if ((v = kn__entry_field(en, "id")) && v->type == REDIS_REPLY_STRING)
            x->bc = kn_xstrndup(v->str, v->len);
        if ((v = kn__entry_field(en, "job")) && v->type == REDIS_REPLY_STRING) {
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
            later(e, next_entry, 1000);
        }
        return;
    }
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1)
        enqueue_entries(e, rep->element[0]->element[1]);
    next_entry(e);
}

static void read_more(struct kn_expander *e)
{
    char block[24];
    int64_t wait = e->d->cfg->block_ms;
    if (e->reading || e->closed || e->d->stopping || !kn_redis_up(e->blk) ||
        e->cur != NULL)
        return;
    if (e->deferred != NULL) {
        /* Wake up in time for the first entry set aside. */
        int64_t left = e->deferred->due_ms - kn_mono_ms();
        if (left < wait)
            wait = left > 1 ? left : 1;
    }
    snprintf(block, sizeof(block), "%lld", (long long)wait);
    {
        const char *argv[] = {"XREADGROUP", "GROUP",   KN_GROUP, e->d->consumer,
                              "COUNT",      "10",      "BLOCK",  block,
                              "STREAMS",    e->stream, ">"};
        if (kn_redis_argv(e->blk, on_read, e, wait, (int)KN_ARRAY_SIZE(argv),
                          argv, NULL) == 0)
            e->reading = 1;
    }
}

static void on_timer(uv_timer_t *t)
{
    struct kn_expander *e = kn_container_of(t, struct kn_expander, timer);
    void (*step)(struct kn_expander *) = e->timer_step;
    e->timer_step = NULL;
    if (step != NULL && !e->closed)
        step(e);
}

static void later(struct kn_expander *e, void (*step)(struct kn_expander *),
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
    if (e->cur == NULL && !e->reading)
        next_entry(e);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct kn_expander *e = kn_container_of(h, struct kn_expander, timer);
    free(e);
}

void kn__expander_close(struct kn_expander *e)
{
    e->closed = 1;
    kn_redis_close(e->blk);
    xentry_free(e->cur);
    while (e->queue != NULL) {
        struct xentry *x = e->queue;
        e->queue = x->next;
        xentry_free(x);
    }
    while (e->deferred != NULL) {
        struct xentry *x = e->deferred;
        e->deferred = x->next;
        xentry_free(x);
    }
    bc_clear(e);
    kn_argv_free(&e->step_keys);
    free(e->fail_err);
    free(e->stream);
    uv_timer_stop(&e->timer);
    uv_close((uv_handle_t *)&e->timer, on_timer_closed);
}
