/*
 * broadcasts.c - the reads of /v1/broadcasts: one broadcast, one by its
 * producer's key, the active ones, the history (one tenant's from its
 * index tbcs:<tenant>).  The writes, submit and cancel, are in
 * bc_submit.c.
 */
#include "dispatcher/http/http_int.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/argv.h"
#include "common/kn.h"
#include "model/broadcast.h"
#include "queue/keys.h"

/* ------------------------------------------------------------ broadcasts */

/* The fields of bc:<id> read for an answer (subject and body only in the
 * full answer, bc_json). */
enum {
    F_STATUS,
    F_TENANT,
    F_CATEGORY,
    F_PRIORITY,
    F_DRILL,
    F_SENDER,
    F_SENDER_TOKEN,
    F_CREATED,
    F_SEND_AT,
    F_EXPIRES,
    F_FIRST,
    F_LAST,
    F_DONE,
    F_CANCELLED,
    F_JOBS,
    F_FINAL,
    F_EXPANDED,
    F_REASON,
    F_FIELD,
    F_KEY,
    F__FIXED
};
static const char *const bc_fixed[F__FIXED] = {
    "status",   "tenant",       "category",   "priority",     "drill",
    "sender",   "sender_token", "created_ms", "send_at_ms",   "expires_ms",
    "first_ms", "last_ms",      "done_ms",    "cancelled_ms", "jobs",
    "final",    "expanded",     "reason",     "field",        "key"};
/* bounced (issue 18) is final, within total; suppressed (not sent: the
 * address bounced before) is not a job, outside total; nor is opted_out
 * (issue 16: not sent, the guardian's own choice). */
#define NSTATES      8
#define S_SUPPRESSED 6
#define S_OPTED_OUT  7
static const char *const bc_states[NSTATES] = {
    "total",     "delivered", "failed",     "expired",
    "cancelled", "bounced",   "suppressed", "opted_out"};
#define BC_NFIELDS (F__FIXED + KN_CH__COUNT * NSTATES)
/* After the counts: the confirmation, its answers' tally, the text. */
enum {
    X_ACK,
    X_ACKED,
    X_CHOICES,
    X_SUBJECT,
    X_BODY,
    X_SEALED, /* "sb": the body is sealed (a guardian's one-time secret) */
    X_ANS0,
    X__N = X_ANS0 + KN_ACK_CHOICES_MAX
};
static const char *const bc_extra[X_ANS0] = {"ack",     "acked", "choices",
                                             "subject", "body",  "sb"};

/* HMGET of a broadcast's fields (above); the body (up to
 * dispatcher.max_body) only when with_body: lists read many at once. */
static void bc_hmget(struct batch *b, const struct kn_daemon *d, const char *id,
                     int with_body)
{
    struct kn_argv a;
    kn_argv_init(&a);
    kn_argv_add(&a, "HMGET");
    kn_argv_take(&a, kn_key_bc(d->prefix, id, ""));
    for (int i = 0; i < F__FIXED; i++)
        kn_argv_add(&a, bc_fixed[i]);
    for (int ch = 0; ch < KN_CH__COUNT; ch++) {
        for (int st = 0; st < NSTATES; st++)
            kn_argv_addf(&a, "n:%s:%s", kn_channel_name((enum kn_channel)ch),
                         bc_states[st]);
    }
    for (int i = 0; i < X__N; i++) {
        if (i == X_BODY && !with_body)
            kn_argv_add(&a, "~"); /* no such field: nil, same places */
        else if (i < X_ANS0)
            kn_argv_add(&a, bc_extra[i]);
        else
            kn_argv_addf(&a, "ans:%d", i - X_ANS0);
    }
    kn__httpd_batch_add(b, &a);
    kn_argv_free(&a);
}

static const char *hf(const redisReply *h, int f)
{
    return kn__httpd_relem(h, f);
}

static long long hfi(const redisReply *h, int f)
{
    const char *s = hf(h, f);
    return s ? strtoll(s, NULL, 10) : 0;
}

/* A count of the record (jobs, results, confirmations), within reason
 * (kn_bc_count). */
static long long hcnt(const redisReply *h, int f)
{
    return kn_bc_count(hf(h, f));
}

static long long hcount(const redisReply *h, int ch, int st)
{
    return hcnt(h, F__FIXED + ch * NSTATES + st);
}

/* May this token see this broadcast (by its hash)? */
static int bc_visible(const struct conn *c, const redisReply *h)
{
    return kn__httpd_bc_may_see(c, hf(h, F_TENANT), hf(h, F_SENDER_TOKEN));
}

int kn__httpd_bc_may_see(const struct conn *c, const char *tenant,
                         const char *owner)
{
    const struct token *t = &c->req.tok;
    switch (t->role) {
    case KN_ROLE_ADMIN:
    case KN_ROLE_OPERATOR: /* the active list only: routes decide */
        /* kairan-wide unless bound to a tenant (a staff session's
         * operator, a token made with --tenant): then its tenant only */
        return !kn__httpd_tok_scoped(t) ||
               (tenant != NULL && t->tenant != NULL &&
                strcmp(tenant, t->tenant) == 0);
    case KN_ROLE_LIMITED_ADMIN:
        return tenant != NULL && t->tenant != NULL &&
               strcmp(tenant, t->tenant) == 0;
    case KN_ROLE_SENDER:
        return owner != NULL && strcmp(owner, t->id) == 0;
    default:
        return 0;
    }
}

/* The tenant whose broadcasts are all this request may see (its index,
 * tbcs:<tenant>, then holds every one it can be shown), or NULL when it
 * may see other tenants' too (kn__httpd_bc_may_see). */
static const char *own_tenant(const struct conn *c)
{
    const struct token *t = &c->req.tok;
    if (t->tenant == NULL || t->tenant[0] == '\0')
        return NULL;
    switch (t->role) {
    case KN_ROLE_ADMIN:
    case KN_ROLE_OPERATOR: /* bound to a tenant (checked above) */
    case KN_ROLE_LIMITED_ADMIN:
    case KN_ROLE_SENDER: /* its own, which are its tenant's */
        return t->tenant;
    default:
        return NULL;
    }
}

static int bc_ended(const redisReply *h)
{
    const char *st = hf(h, F_STATUS);
    return hf(h, F_DONE) != NULL || (st && strcmp(st, "rejected") == 0);
}

static int bc_percent(const redisReply *h)
{
    long long jobs = hcnt(h, F_JOBS), fin = hcnt(h, F_FINAL);
    int pct;
    if (bc_ended(h))
        return 100;
    if (jobs <= 0)
        return 0;
    pct = (int)(fin * 100 / jobs);
    return pct > 99 ? 99 : pct; /* 100 only once it has ended */
}

/*
 * The confirmations of an ack broadcast (null without "ack"): members
 * (recipients with a personal link, -1 when unknown), confirmed and not,
 * and the tally of the answers, one {"choice", "count"} per choice in
 * their order, with "unanswered" the confirmations without one.
 */
static json_t *ack_json(const redisReply *h, long long members)
{
    json_t *o, *arr = json_array(), *ch;
    const char *ack = hf(h, BC_NFIELDS + X_ACK);
    long long acked = hcnt(h, BC_NFIELDS + X_ACKED), answered = 0;
    size_t i;
    if (ack == NULL || strcmp(ack, "1") != 0) {
        json_decref(arr);
        return json_null();
    }
    ch = hf(h, BC_NFIELDS + X_CHOICES)
             ? json_loads(hf(h, BC_NFIELDS + X_CHOICES), 0, NULL)
             : NULL;
    for (i = 0; i < json_array_size(ch) && i < KN_ACK_CHOICES_MAX; i++) {
        json_t *one = json_object();
        long long n = hcnt(h, BC_NFIELDS + X_ANS0 + (int)i);
        answered += n;
        json_object_set(one, "choice", json_array_get(ch, i));
        json_object_set_new(one, "count", json_integer(n));
        json_array_append_new(arr, one);
    }
    json_decref(ch);
    o = json_object();
    json_object_set_new(o, "recipients",
                        members >= 0 ? json_integer(members) : json_null());
    json_object_set_new(o, "confirmed", json_integer(acked));
    json_object_set_new(
        o, "unconfirmed",
        members >= 0 ? json_integer(members > acked ? members - acked : 0)
                     : json_null());
    json_object_set_new(o, "answers", arr);
    json_object_set_new(o, "unanswered",
                        json_integer(acked > answered ? acked - answered : 0));
    return o;
}

/*
 * A broadcast as JSON.  full: every field (GET /v1/broadcasts/{id});
 * else the summary for the active list (no sender name: operators see
 * the list too).
 */
static json_t *bc_json(const char *id, const redisReply *h, int full,
                       long long members)
{
    json_t *o = json_object(), *counts = json_object();
    long long tot[NSTATES] = {0}, jobs = hcnt(h, F_JOBS),
              fin = hcnt(h, F_FINAL);
    const char *st = hf(h, F_STATUS);

    for (int ch = 0; ch < KN_CH__COUNT; ch++) {
        json_t *c;
        long long fin_ch = 0;
        if (hf(h, F__FIXED + ch * NSTATES) == NULL &&
            hf(h, F__FIXED + ch * NSTATES + S_SUPPRESSED) == NULL &&
            hf(h, F__FIXED + ch * NSTATES + S_OPTED_OUT) == NULL)
            continue; /* no job on this channel */
        c = json_object();
        for (int s = 0; s < NSTATES; s++) {
            long long v = hcount(h, ch, s);
            tot[s] += v;
            if (s > 0 && s != S_SUPPRESSED && s != S_OPTED_OUT)
                fin_ch += v;
            json_object_set_new(c, bc_states[s], json_integer(v));
        }
        json_object_set_new(c, "pending",
                            json_integer(hcount(h, ch, 0) - fin_ch > 0
                                             ? hcount(h, ch, 0) - fin_ch
                                             : 0));
        json_object_set_new(counts, kn_channel_name((enum kn_channel)ch), c);
    }
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "status", json_string(st ? st : "?"));
    json_object_set_new(o, "tenant", kn__httpd_jstr_or_null(hf(h, F_TENANT)));
    json_object_set_new(o, "category",
                        kn__httpd_jstr_or_null(hf(h, F_CATEGORY)));
    json_object_set_new(o, "priority",
                        kn__httpd_jstr_or_null(hf(h, F_PRIORITY)));
    json_object_set_new(o, "created", kn__httpd_jtime(hfi(h, F_CREATED)));
    json_object_set_new(o, "expires", kn__httpd_jtime(hfi(h, F_EXPIRES)));
    json_object_set_new(o, "jobs", json_integer(jobs));
    json_object_set_new(o, "final", json_integer(fin));
    json_object_set_new(o, "percent", json_integer(bc_percent(h)));
    json_object_set_new(o, "ended", json_boolean(bc_ended(h)));
    if (!full) {
        json_object_set_new(o, "delivered", json_integer(tot[1]));
        json_object_set_new(o, "failed", json_integer(tot[2]));
        json_object_set_new(o, "expired", json_integer(tot[3]));
        json_object_set_new(o, "cancelled", json_integer(tot[4]));
        json_object_set_new(o, "bounced", json_integer(tot[5]));
        json_object_set_new(o, "suppressed", json_integer(tot[S_SUPPRESSED]));
        json_object_set_new(o, "opted_out", json_integer(tot[S_OPTED_OUT]));
        json_object_set_new(o, "pending",
                            json_integer(jobs - fin > 0 ? jobs - fin : 0));
        json_decref(counts);
        return o;
    }
    json_object_set_new(
        o, "drill",
        json_boolean(hf(h, F_DRILL) && strcmp(hf(h, F_DRILL), "1") == 0));
    json_object_set_new(o, "sender", kn__httpd_jstr_or_null(hf(h, F_SENDER)));
    json_object_set_new(o, "key", kn__httpd_jstr_or_null(hf(h, F_KEY)));
    json_object_set_new(o, "send_at", kn__httpd_jtime(hfi(h, F_SEND_AT)));
    json_object_set_new(o, "first_delivery", kn__httpd_jtime(hfi(h, F_FIRST)));
    json_object_set_new(o, "last_delivery", kn__httpd_jtime(hfi(h, F_LAST)));
    json_object_set_new(o, "done", kn__httpd_jtime(hfi(h, F_DONE)));
    json_object_set_new(o, "cancelled", kn__httpd_jtime(hfi(h, F_CANCELLED)));
    json_object_set_new(
        o, "expanded",
        json_boolean(hf(h, F_EXPANDED) && strcmp(hf(h, F_EXPANDED), "1") == 0));
    json_object_set_new(o, "counts", counts);
    json_object_set_new(o, "subject",
                        kn__httpd_jstr_text(hf(h, BC_NFIELDS + X_SUBJECT)
                                                ? hf(h, BC_NFIELDS + X_SUBJECT)
                                                : ""));
    if (hf(h, BC_NFIELDS + X_SEALED) != NULL) {
        /* a guardian's one-time link or code: not even staff read it */
        json_object_set_new(o, "body",
                            json_string("（本人確認のための一回限りのリンクや"
                                        "コードを含むため、表示しません）"));
        json_object_set_new(o, "body_withheld", json_true());
    } else {
        json_object_set_new(o, "body",
                            kn__httpd_jstr_text(hf(h, BC_NFIELDS + X_BODY)
                                                    ? hf(h, BC_NFIELDS + X_BODY)
                                                    : ""));
    }
    json_object_set_new(o, "ack", ack_json(h, members));
    if (st != NULL && strcmp(st, "rejected") == 0) {
        json_object_set_new(o, "reason",
                            kn__httpd_jstr_or_null(hf(h, F_REASON)));
        json_object_set_new(o, "field", kn__httpd_jstr_or_null(hf(h, F_FIELD)));
    }
    return o;
}

/* ---- GET /v1/broadcasts/{id} ---- */

static void on_bc_get(struct batch *b)
{
    const redisReply *h = kn__httpd_brep(b, 0), *m;
    if (b->c == NULL)
        return;
    if (b->failed || h == NULL || h->type != REDIS_REPLY_ARRAY) {
        kn__httpd_respond_error(b->c, 503, NULL,
                                "Redis is unreachable; try again");
        return;
    }
    /* One answer whether it does not exist or this token may not see
     * it: a tenant learns nothing of another's broadcasts. */
    if (hf(h, F_STATUS) == NULL || !bc_visible(b->c, h)) {
        if (hf(h, F_STATUS) != NULL) /* the login log says so; not the answer */
            b->c->req.auth_result = "forbidden";
        kn__httpd_respond_error(b->c, 404, "id", "no broadcast %s",
                                b->c->req.param);
        return;
    }
    m = kn__httpd_brep(b, 1);
    kn__httpd_respond_json(
        b->c, 200,
        bc_json(b->c->req.param, h, 1,
                m && m->type == REDIS_REPLY_INTEGER ? m->integer : -1),
        NULL);
}

/* The reads of GET /v1/broadcasts/{id} (c->req.param): the hash and the
 * number of members (recipients with a personal link). */
static void bc_get_start(struct conn *c)
{
    struct batch *b = kn__httpd_batch_new(c->srv, c, on_bc_get, NULL);
    char *k = kn_key_bc(c->srv->d->prefix, c->req.param, ":m");
    bc_hmget(b, c->srv->d, c->req.param, 1);
    kn__httpd_batch_cmd(b, "SCARD", k, NULL);
    free(k);
    kn__httpd_batch_end(b);
}

/* ---- GET /v1/broadcasts?key=K[&tenant=T] ---- */

static void on_bc_by_key(struct batch *b)
{
    const redisReply *r = kn__httpd_brep(b, 0);
    if (!kn__httpd_batch_usable(b))
        return;
    if (r == NULL || r->type != REDIS_REPLY_STRING) {
        kn__httpd_respond_error(b->c, 404, "key", "no broadcast has this key");
        return;
    }
    /* From here it is GET /v1/broadcasts/{name}. */
    free(b->c->req.param);
    b->c->req.param = kn_xstrdup(r->str);
    bc_get_start(b->c);
}

/*
 * A tenant's broadcast by the idempotency key its producer gave ("id" in
 * the submitted JSON).  The tenant is the token's; a token of no tenant
 * (admin, operator) names it with tenant=T.
 */
static void run_bc_by_key(struct conn *c)
{
    char *key = kn__httpd_query_get(c->req.query, "key"), *tenant = NULL, *k;
    struct batch *b;
    /* The list route lets an operator in for the active list (counts, no
     * names); a broadcast by key is the whole of it, as GET
     * /v1/broadcasts/{id}, which an operator may not read. */
    if (c->req.tok.role == KN_ROLE_OPERATOR) {
        free(key);
        c->req.auth_result = "forbidden";
        kn__httpd_respond_error(c, 403, "key",
                                "an operator reads the active list (counts, "
                                "no names), not a broadcast");
        return;
    }
    if (key == NULL || !kn_id_valid(key)) {
        free(key);
        kn__httpd_respond_error(
            c, 400, "key",
            "give the key as ?key=K: the \"id\" the broadcast was "
            "submitted with (1-128 letters, digits, '-', '_', '.', "
            "':')");
        return;
    }
    if (c->req.tok.tenant != NULL && c->req.tok.tenant[0] != '\0')
        tenant = kn_xstrdup(c->req.tok.tenant);
    else
        tenant = kn__httpd_query_get(c->req.query, "tenant");
    if (tenant == NULL || !kn_tenant_valid(tenant)) {
        free(key);
        free(tenant);
        kn__httpd_respond_error(c, 400, "tenant",
                                "this token has no tenant: add &tenant=T");
        return;
    }
    b = kn__httpd_batch_new(c->srv, c, on_bc_by_key, NULL);
    k = kn_key_idem(c->srv->d->prefix, tenant);
    kn__httpd_batch_cmd(b, "HGET", k, key, NULL);
    free(k);
    free(key);
    free(tenant);
    kn__httpd_batch_end(b);
}

void kn__httpd_run_bc_get(struct conn *c)
{
    if (!kn_id_valid(c->req.param)) {
        kn__httpd_respond_error(c, 404, "id", "no broadcast with such an id");
        return;
    }
    bc_get_start(c);
}

/* ---- GET /v1/broadcasts?active=1 ---- */

/* The ids ?active=1 looks at; filter: they came from a tenant's index
 * of all its broadcasts (tbcs), so keep only what the global reads would
 * give (active_or_recent). */
struct bc_list {
    struct kn_argv ids;
    int filter;
    long long active_total; /* the global reads: ZCARD of the index */
};

/* What the global reads give (the active index, bcs and ended of the
 * last RECENT_MS): not ended (done, cancelled, rejected), or created or
 * ended in the last RECENT_MS. */
static int active_or_recent(const redisReply *h, long long now)
{
    const char *st = hf(h, F_STATUS), *cr = hf(h, F_CREATED);
    const char *dn = hf(h, F_DONE);
    int ended = dn != NULL || hf(h, F_CANCELLED) != NULL ||
                (st != NULL &&
                 (strcmp(st, "done") == 0 || strcmp(st, "cancelled") == 0 ||
                  strcmp(st, "rejected") == 0));
    return !ended || (cr != NULL && atoll(cr) >= now - RECENT_MS) ||
           (dn != NULL && atoll(dn) >= now - RECENT_MS);
}

static void on_bc_list_2(struct batch *b)
{
    struct bc_list *l = b->arg;
    long long now = (long long)kn_now_ms();
    json_t *j, *arr;
    if (!kn__httpd_batch_usable(b))
        goto out;
    j = json_object();
    arr = json_array();
    for (int i = 0; i < l->ids.n; i++) {
        const redisReply *h = kn__httpd_brep(b, i);
        if (hf(h, F_STATUS) == NULL || !bc_visible(b->c, h) ||
            (l->filter && !active_or_recent(h, now)))
            continue;
        json_array_append_new(arr, bc_json(l->ids.v[i], h, 0, -1));
    }
    json_object_set_new(j, "broadcasts", arr);
    if (!l->filter) /* how many are active in all: the list shows 100 */
        json_object_set_new(j, "active_total", json_integer(l->active_total));
    kn__httpd_respond_json(b->c, 200, j, NULL);
out:
    kn_argv_free(&l->ids);
    free(l);
}

static int argv_has(const struct kn_argv *a, const char *s)
{
    for (int i = 0; i < a->n; i++) {
        if (strcmp(a->v[i], s) == 0)
            return 1;
    }
    return 0;
}

/* arg: the struct bc_list to fill; with filter set, the one read is a
 * tenant's index (tbcs), else the two global reads (active, and bcs of
 * the last RECENT_MS). */
static void on_bc_list_1(struct batch *b)
{
    struct bc_list *l = b->arg;
    struct batch *b2;
    if (!kn__httpd_batch_usable(b)) {
        free(l);
        return;
    }
    kn_argv_init(&l->ids);
    if (!l->filter) {
        const redisReply *n = kn__httpd_brep(b, 2);
        l->active_total =
            n != NULL && n->type == REDIS_REPLY_INTEGER ? n->integer : 0;
    }
    for (int k = 0; k < (l->filter ? 1 : 3); k++) {
        /* the global reads: active (0), the newest created (1), the just
         * ended (3; 2 is the ZCARD) */
        const redisReply *r = kn__httpd_brep(b, k == 2 ? 3 : k);
        /* The newest and the just ended come on top of a full active list
         * (an operator sees what started and ended in the last minutes
         * even when 100 are active, however many were created since). */
        int cap = LIST_MAX + k * LIST_RECENT;
        for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY &&
                           i < r->elements && l->ids.n < cap;
             i++) {
            if (kn__httpd_rstr(r->element[i]) &&
                !argv_has(&l->ids, r->element[i]->str))
                kn_argv_add(&l->ids, r->element[i]->str);
        }
    }
    b2 = kn__httpd_batch_new(b->srv, b->c, on_bc_list_2, l);
    for (int i = 0; i < l->ids.n; i++)
        bc_hmget(b2, b->srv->d, l->ids.v[i], 0);
    kn__httpd_batch_end(b2);
}

static int query_has(const char *q, const char *kv)
{
    size_t n = strlen(kv);
    while (q != NULL && *q) {
        if (strncmp(q, kv, n) == 0 && (q[n] == '\0' || q[n] == '&'))
            return 1;
        q = strchr(q, '&');
        if (q != NULL)
            q++;
    }
    return 0;
}

/* ---- GET /v1/broadcasts?from=&to=&cursor=&limit=[&tenant=T] ---- */

#define HIST_DEFAULT 50
#define HIST_MAX     200
#define HIST_SCAN    4 /* entries of bcs read per entry answered, at most */

/*
 * History: broadcasts by created time, newest first, in pages.  The
 * index is read in score order (tbcs:<tenant> when the token sees one
 * tenant's only, or &tenant=T names one; else bcs, every broadcast by
 * created ms) and filtered by what the token may see (a sender its own),
 * so a page may hold fewer than limit broadcasts while more follow: go on
 * while next_cursor is not null.  The cursor is opaque to clients: base64url of
 * "<score>:<skip>", the score to go on from and how many entries of that
 * score were already read.
 */
struct hist {
    struct kn_argv ids;
    long long *score;
    long long start; /* the score the read began at (LLONG_MAX: +inf) */
    long skip;       /* entries of that score skipped */
    long limit, scan;
    char *tenant; /* admin and operator: &tenant=T, or NULL */
};

static void hist_free(struct hist *h)
{
    kn_argv_free(&h->ids);
    free(h->score);
    free(h->tenant);
    free(h);
}

/* The cursor that goes on after entry j of this read. */
static char *hist_cursor(const struct hist *h, int j)
{
    long skip = 0;
    char plain[64];
    for (int i = 0; i <= j; i++) {
        if (h->score[i] == h->score[j])
            skip++;
    }
    if (h->score[j] == h->start)
        skip += h->skip;
    snprintf(plain, sizeof(plain), "%lld:%ld", h->score[j], skip);
    return kn_b64url_encode(plain, strlen(plain));
}

/* Read a cursor into h->start and h->skip: 0, or -1 if malformed. */
static int hist_cursor_parse(const char *cur, struct hist *h)
{
    unsigned char *plain = NULL;
    long n = kn_b64url_decode(cur, &plain);
    long long sc;
    long sk;
    char tail;
    int rc = -1;
    if (n > 0 && n < 60 && memchr(plain, '\0', (size_t)n) == NULL) {
        plain = kn_xrealloc(plain, (size_t)n + 1);
        plain[n] = '\0';
        if (sscanf((char *)plain, "%lld:%ld%c", &sc, &sk, &tail) == 2 &&
            sk >= 0 && sc >= 0) {
            h->start = sc;
            h->skip = sk;
            rc = 0;
        }
    }
    free(plain);
    return rc;
}

static void on_hist_2(struct batch *b)
{
    struct hist *h = b->arg;
    json_t *j, *arr;
    char *next = NULL;
    long n = 0;
    int last = -1;
    if (!kn__httpd_batch_usable(b))
        goto out;
    arr = json_array();
    for (int i = 0; i < h->ids.n; i++) {
        const redisReply *r = kn__httpd_brep(b, i);
        const char *t = hf(r, F_TENANT);
        if (hf(r, F_STATUS) == NULL || !bc_visible(b->c, r) ||
            (h->tenant != NULL && (t == NULL || strcmp(t, h->tenant) != 0))) {
            last = i;
            continue;
        }
        if (n == h->limit)
            break;
        json_t *o = bc_json(h->ids.v[i], r, 0, -1);
        if (b->c->req.tok.role != KN_ROLE_OPERATOR)
            json_object_set_new(
                o, "subject",
                kn__httpd_jstr_text(hf(r, BC_NFIELDS + X_SUBJECT)
                                        ? hf(r, BC_NFIELDS + X_SUBJECT)
                                        : ""));
        json_array_append_new(arr, o);
        n++;
        last = i;
    }
    /* More may follow when the read was full or stopped at the limit. */
    if (last >= 0 && (h->ids.n == h->scan || last < h->ids.n - 1))
        next = hist_cursor(h, last);
    j = json_object();
    json_object_set_new(j, "broadcasts", arr);
    json_object_set_new(j, "next_cursor", kn__httpd_jstr_or_null(next));
    kn__httpd_respond_json(b->c, 200, j, NULL);
    free(next);
out:
    hist_free(h);
}

static void on_hist_1(struct batch *b)
{
    struct hist *h = b->arg;
    const redisReply *r = kn__httpd_brep(b, 0);
    struct batch *b2;
    if (!kn__httpd_batch_usable(b)) {
        hist_free(h);
        return;
    }
    h->score =
        kn_xcalloc(r && r->type == REDIS_REPLY_ARRAY ? r->elements / 2 + 1 : 1,
                   sizeof(*h->score));
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements;
         i += 2) {
        if (kn__httpd_rstr(r->element[i]) == NULL)
            continue;
        h->score[h->ids.n] = kn__httpd_rnum(r->element[i + 1]);
        kn_argv_add(&h->ids, r->element[i]->str);
    }
    b2 = kn__httpd_batch_new(b->srv, b->c, on_hist_2, h);
    for (int i = 0; i < h->ids.n; i++)
        bc_hmget(b2, b->srv->d, h->ids.v[i], 0);
    kn__httpd_batch_end(b2);
}

/* A time of the query (RFC 3339); 0 and *ms, 1 when absent, or -1 with
 * 400 answered. */
static int hist_time(struct conn *c, const char *name, long long *ms)
{
    char *v = kn__httpd_query_get(c->req.query, name);
    int64_t t;
    if (v == NULL)
        return 1;
    if (kn_time_parse(v, &t) < 0) {
        free(v);
        kn__httpd_respond_error(c, 400, name,
                                "not an RFC 3339 time; write e.g. "
                                "2026-11-22T07:00:00+09:00");
        return -1;
    }
    free(v);
    *ms = t;
    return 0;
}

static void run_bc_history(struct conn *c)
{
    struct hist *h = kn_xcalloc(1, sizeof(*h));
    char *cur = kn__httpd_query_get(c->req.query, "cursor");
    char *lim = kn__httpd_query_get(c->req.query, "limit");
    char *k, max[32], min[32], skip[24], cnt[24];
    long long from = 0, to = LLONG_MAX;
    struct batch *b;
    int rc;

    kn_argv_init(&h->ids);
    h->limit = HIST_DEFAULT;
    if (lim != NULL) {
        char *end;
        h->limit = strtol(lim, &end, 10);
        if (lim[0] < '0' || lim[0] > '9' || *end != '\0' || h->limit < 1 ||
            h->limit > HIST_MAX) {
            kn__httpd_respond_error(c, 400, "limit",
                                    "give limit as a number from 1 to %d",
                                    HIST_MAX);
            goto fail;
        }
    }
    if ((rc = hist_time(c, "from", &from)) < 0 ||
        (rc = hist_time(c, "to", &to)) < 0)
        goto fail;
    h->start = to;
    if (cur != NULL && (hist_cursor_parse(cur, h) < 0 || h->start > to)) {
        kn__httpd_respond_error(c, 400, "cursor",
                                "give back the next_cursor of the previous "
                                "page as it was, with the same from and to");
        goto fail;
    }
    if (c->req.tok.tenant == NULL || c->req.tok.tenant[0] == '\0') {
        h->tenant = kn__httpd_query_get(c->req.query, "tenant");
        if (h->tenant != NULL && !kn_tenant_valid(h->tenant)) {
            kn__httpd_respond_error(c, 400, "tenant", "not a tenant name");
            goto fail;
        }
    }
    h->scan = h->limit * HIST_SCAN;
    if (h->start == LLONG_MAX)
        snprintf(max, sizeof(max), "+inf");
    else
        snprintf(max, sizeof(max), "%lld", h->start);
    snprintf(min, sizeof(min), "%lld", from);
    snprintf(skip, sizeof(skip), "%ld", h->skip);
    snprintf(cnt, sizeof(cnt), "%ld", h->scan);
    b = kn__httpd_batch_new(c->srv, c, on_hist_1, h);
    /* One school's history from its own index: in bcs (every school's)
     * a page of it could be nearly empty on a prefecture's instance. */
    if (own_tenant(c) != NULL)
        k = kn_key_tbcs(c->srv->d->prefix, own_tenant(c));
    else if (h->tenant != NULL)
        k = kn_key_tbcs(c->srv->d->prefix, h->tenant);
    else
        k = kn__key(c->srv->d, "bcs");
    kn__httpd_batch_cmd(b, "ZREVRANGEBYSCORE", k, max, min, "WITHSCORES",
                        "LIMIT", skip, cnt, NULL);
    free(k);
    kn__httpd_batch_end(b);
    free(cur);
    free(lim);
    return;
fail:
    hist_free(h);
    free(cur);
    free(lim);
}

/* ---- GET /v1/broadcasts?active=1&summary=tenant ---- */

/*
 * For a token that sees every school (an operator, an admin without a
 * tenant): the active broadcasts counted per school, with their jobs and
 * results summed, so that a prefecture's operator sees at a glance which
 * school has what running when the list of 100 is far too short.  Reads
 * up to SUMMARY_MAX of the active index (one pipelined HMGET each).
 */
#define SUMMARY_MAX     5000
#define SUMMARY_KEEP_MS 2000 /* the answer kept for the next asker */

struct tsum {
    const char *tenant; /* in the batch's replies */
    long long active, jobs, final;
};

static int tsum_by_tenant(const void *a, const void *b)
{
    return strcmp(((const struct tsum *)a)->tenant,
                  ((const struct tsum *)b)->tenant);
}

/* Most active first, then by name. */
static int tsum_by_active(const void *a, const void *b)
{
    const struct tsum *x = a, *y = b;
    if (x->active != y->active)
        return x->active < y->active ? 1 : -1;
    return strcmp(x->tenant, y->tenant);
}

struct summary {
    long long total; /* ZCARD */
    size_t n;        /* ids read */
};

static void on_summary_2(struct batch *b)
{
    struct summary *sm = b->arg;
    struct tsum *t;
    size_t nt = 0;
    json_t *j, *arr;
    if (!kn__httpd_batch_usable(b))
        goto out;
    /* One entry per active broadcast, sorted by school, then each
     * school's run summed into its first entry (n log n for 5,000). */
    t = kn_xcalloc(sm->n + 1, sizeof(*t));
    for (size_t i = 0; i < sm->n; i++) {
        const redisReply *h = kn__httpd_brep(b, (int)i);
        const char *tn = hf(h, 0), *st = hf(h, 1);
        long long jobs = hcnt(h, 2), fin = hcnt(h, 3);
        /* No record (gone since), or ended but not yet out of the index
         * (as active_or_recent sees an ended one). */
        if (tn == NULL || st == NULL || hf(h, 4) != NULL || hf(h, 5) != NULL ||
            strcmp(st, "done") == 0 || strcmp(st, "cancelled") == 0 ||
            strcmp(st, "rejected") == 0)
            continue;
        /* The sums of 5,000 never overflow (hcnt), and a result never
         * exceeds its jobs. */
        fin = fin > jobs ? jobs : fin;
        t[nt].tenant = tn;
        t[nt].active = 1;
        t[nt].jobs = jobs;
        t[nt].final = fin;
        nt++;
    }
    qsort(t, nt, sizeof(*t), tsum_by_tenant);
    {
        size_t w = 0;
        for (size_t i = 0; i < nt; i++) {
            if (w > 0 && strcmp(t[w - 1].tenant, t[i].tenant) == 0) {
                t[w - 1].active++;
                t[w - 1].jobs += t[i].jobs;
                t[w - 1].final += t[i].final;
            } else {
                t[w++] = t[i];
            }
        }
        nt = w;
    }
    qsort(t, nt, sizeof(*t), tsum_by_active);
    j = json_object();
    arr = json_array();
    for (size_t k = 0; k < nt; k++) {
        json_t *o = json_object();
        /* Below 100 %: these are still running (bc_percent says 99 too). */
        long long pct = t[k].jobs > 0 ? t[k].final * 100 / t[k].jobs : 0;
        json_object_set_new(o, "tenant", kn__httpd_jstr_text(t[k].tenant));
        json_object_set_new(o, "active", json_integer(t[k].active));
        json_object_set_new(o, "jobs", json_integer(t[k].jobs));
        json_object_set_new(o, "final", json_integer(t[k].final));
        json_object_set_new(o, "percent", json_integer(pct > 99 ? 99 : pct));
        json_array_append_new(arr, o);
    }
    json_object_set_new(j, "tenants", arr);
    json_object_set_new(j, "active_total", json_integer(sm->total));
    json_object_set_new(j, "counted", json_integer((json_int_t)sm->n));
    json_decref(b->srv->summary);
    b->srv->summary = json_incref(j);
    b->srv->summary_mono = kn_mono_ms();
    kn__httpd_respond_json(b->c, 200, j, NULL);
    free(t);
out:
    free(sm);
}

static void on_summary_1(struct batch *b)
{
    struct summary *sm = b->arg;
    const redisReply *ids = kn__httpd_brep(b, 0), *n = kn__httpd_brep(b, 1);
    struct batch *b2;
    if (!kn__httpd_batch_usable(b)) {
        free(sm);
        return;
    }
    sm->total = n != NULL && n->type == REDIS_REPLY_INTEGER ? n->integer : 0;
    b2 = kn__httpd_batch_new(b->srv, b->c, on_summary_2, sm);
    for (size_t i = 0; ids != NULL && ids->type == REDIS_REPLY_ARRAY &&
                       i < ids->elements && i < SUMMARY_MAX;
         i++) {
        const char *id = kn__httpd_rstr(ids->element[i]);
        char *k;
        if (id == NULL || !kn_id_valid(id))
            continue; /* never a key name made of what the index holds */
        k = kn_key_bc(b->srv->d->prefix, id, "");
        kn__httpd_batch_cmd(b2, "HMGET", k, "tenant", "status", "jobs", "final",
                            "done_ms", "cancelled_ms", NULL);
        free(k);
        sm->n++;
    }
    kn__httpd_batch_end(b2);
}

static void run_bc_summary(struct conn *c)
{
    struct kn_daemon *d = c->srv->d;
    struct batch *b;
    char *k, last[24];
    if (own_tenant(c) != NULL || (c->req.tok.role != KN_ROLE_OPERATOR &&
                                  c->req.tok.role != KN_ROLE_ADMIN)) {
        kn__httpd_respond_error(c, 400, "summary",
                                "the summary per school is for a token that "
                                "sees every school (an operator); a "
                                "school's own broadcasts: ?active=1");
        return;
    }
    if (c->srv->summary != NULL &&
        kn_mono_ms() - c->srv->summary_mono < SUMMARY_KEEP_MS) {
        kn__httpd_respond_json(c, 200, json_incref(c->srv->summary), NULL);
        return;
    }
    b = kn__httpd_batch_new(c->srv, c, on_summary_1,
                            kn_xcalloc(1, sizeof(struct summary)));
    k = kn__key(d, "active");
    snprintf(last, sizeof(last), "%d", SUMMARY_MAX - 1);
    kn__httpd_batch_cmd(b, "ZRANGE", k, "0", last, NULL);
    kn__httpd_batch_cmd(b, "ZCARD", k, NULL);
    free(k);
    kn__httpd_batch_end(b);
}

/* Active broadcasts, and those created in the last minutes (so that one
 * that just ended still shows its final bar); or the history. */
void kn__httpd_run_bc_list(struct conn *c)
{
    struct kn_daemon *d = c->srv->d;
    struct bc_list *l;
    struct batch *b;
    char *k, min[32];
    if (c->req.query != NULL && (strncmp(c->req.query, "key=", 4) == 0 ||
                                 strstr(c->req.query, "&key=") != NULL)) {
        run_bc_by_key(c);
        return;
    }
    if (!query_has(c->req.query, "active=1") && c->req.query != NULL &&
        (kn__httpd_query_has(c->req.query, "from") ||
         kn__httpd_query_has(c->req.query, "to") ||
         kn__httpd_query_has(c->req.query, "cursor") ||
         kn__httpd_query_has(c->req.query, "limit"))) {
        run_bc_history(c);
        return;
    }
    if (!query_has(c->req.query, "active=1")) {
        kn__httpd_respond_error(
            c, 400, "active",
            "say which list: ?active=1 (the active ones), the history "
            "with ?from=T&to=T (RFC 3339; either may be left out) and "
            "&cursor=C, or one broadcast by its key with ?key=K");
        return;
    }
    if (query_has(c->req.query, "summary=tenant")) {
        run_bc_summary(c);
        return;
    }
    l = kn_xcalloc(1, sizeof(*l));
    l->filter = own_tenant(c) != NULL;
    if (l->filter) {
        /* A school's console: its own newest broadcasts, of which the
         * active and the just ended are kept (the global index's first
         * LIST_MAX may all be other schools' when a typhoon makes every
         * school of a prefecture send at once). */
        b = kn__httpd_batch_new(c->srv, c, on_bc_list_1, l);
        k = kn_key_tbcs(d->prefix, own_tenant(c));
        kn__httpd_batch_cmd(b, "ZREVRANGE", k, "0", "99", NULL);
        free(k);
        kn__httpd_batch_end(b);
        return;
    }
    b = kn__httpd_batch_new(c->srv, c, on_bc_list_1, l);
    k = kn__key(d, "active");
    kn__httpd_batch_cmd(b, "ZRANGE", k, "0", "99", NULL);
    free(k);
    k = kn__key(d, "bcs");
    snprintf(min, sizeof(min), "%lld", (long long)(kn_now_ms() - RECENT_MS));
    kn__httpd_batch_cmd(b, "ZREVRANGEBYSCORE", k, "+inf", min, "LIMIT", "0",
                        "50", NULL); /* LIST_RECENT */
    free(k);
    k = kn__key(d, "active");
    kn__httpd_batch_cmd(b, "ZCARD", k, NULL);
    free(k);
    k = kn__key(d, "ended");
    kn__httpd_batch_cmd(b, "ZREVRANGEBYSCORE", k, "+inf", min, "LIMIT", "0",
                        "50", NULL); /* LIST_RECENT */
    free(k);
    kn__httpd_batch_end(b);
}
