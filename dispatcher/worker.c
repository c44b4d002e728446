/*
 * worker.c - one worker per channel: reads delivery jobs from its streams
 * (urgent before normal, as many as it has free send slots), checks each
 * against its broadcast (cancelled? expired? already delivered?), decrypts
 * the address just before handing the job to the adapter, and records the
 * result atomically (finish / retry scripts) before the job leaves its
 * stream.
 *
 * A job's life: read -> message -> (precheck) -> ready -> send -> record
 * -> gone.  busy counts jobs between read and recorded and never exceeds
 * twice the adapter's send slots, so memory stays flat whatever the
 * broadcast size; the jobs beyond the slots wait, checked and ready, in a
 * local queue (urgent first), so that a slot whose send ends starts the
 * next one at once instead of after three Redis round trips.
 *
 * The precheck (cancelled? expired? already delivered?) asks Redis only
 * for jobs that may have been tried before (attempt > 0: retried,
 * reclaimed, re-queued from the DLQ).  A first attempt read from its
 * stream cannot have been delivered (the expander enqueues each address
 * once), so it is checked against the cached broadcast: its expiry, and
 * its status, which the daemon refreshes every 500 ms (a cancel takes
 * effect within that).
 *
 * Decisions are made here, not in adapters: a tempfail is retried with
 * full-jitter backoff (or the provider's Retry-After) until
 * queue.max_attempts, then dead-lettered; a permfail is dead-lettered at
 * once with the adapter's reason.
 *
 * No job holds its stream (queue/poison.h): streams are read with ">",
 * so a job is only seen again when it is parked for a retry or taken
 * over, and either counts an attempt.  A step whose Redis keys hold the
 * wrong type dead-letters the job with a reason naming the key instead
 * of leaving it pending for ever; a stream key of the wrong type is
 * skipped (and logged) for a while, so that the other stream is read.
 *
 * Reading and keeping the jobs in hand are in worker_read.c, recording
 * the results in worker_finish.c, retries, giving up and failing over in
 * worker_retry.c; where a job
 * goes (breaker, failover, route pauses) in route.c; rate buckets in
 * rate.c.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/argv.h"
#include "common/buf.h"
#include "common/kn.h"
#include "common/log.h"
#include "common/seal.h"
#include "config/config.h"
#include "dispatcher/daemon.h"
#include "dispatcher/rate.h"
#include "dispatcher/route.h"
#include "dispatcher/worker.h"
#include "model/gtoken.h"
#include "model/directory.h"
#include "model/job.h"
#include "queue/poison.h"
#include "queue/scripts.h"
#include "queue/keys.h"

static void pump(struct kn_worker *w);

/* ---- job bookkeeping ---- */

static void wipe_addrs(struct wjob *jb)
{
    if (jb->addr == NULL)
        return;
    for (size_t i = 0; i < jb->naddr; i++) {
        if (jb->addr[i] != NULL) {
            memset(jb->addr[i], 0, strlen(jb->addr[i]));
            free(jb->addr[i]);
        }
    }
    free(jb->addr);
    jb->addr = NULL;
    jb->job.addr = NULL;
    jb->job.addrs = NULL;
}

static void job_free(struct wjob *jb)
{
    kn__worker_held_del(jb->w, jb);
    wipe_addrs(jb);
    if (jb->msg != NULL)
        kn__msg_put(jb->msg);
    json_decref(jb->j);
    free(jb->plain);
    free(jb->sealed);
    free(jb->bindex);
    free(jb->rcpts);
    free(jb->stream);
    free(jb->entry);
    free(jb->raw);
    free(jb->fields);
    free(jb->rcpt_list);
    free(jb->key);
    free(jb->link);
    free(jb->unsub);
    free(jb->mypage);
    free(jb->fin_detail);
    free(jb);
}

/* The job is out of our hands (recorded, or left pending). */
void kn__worker_job_done(struct wjob *jb)
{
    struct kn_worker *w = jb->w;
    job_free(jb);
    w->busy--;
    kn__worker_fill(w);
}

/* ---- sending ---- */

/* Whose credentials a refusal of jb's send names: the failover adapter's
 * own, or those of the route's provider for the job (route.h). */
static int pause_scope(const struct kn_worker *w, const struct wjob *jb)
{
    if (jb->via == &w->rt.alt)
        return KN__ROUTE_SCOPE_ALT;
    return kn__route_scope(jb->job.platform);
}

static void on_sent(struct kn_job *job, const struct kn_result *r, void *arg)
{
    struct wjob *jb = job->_owner;
    struct kn_worker *w = jb->w;
    struct kn_daemon *d = w->d;
    struct kn__bucket *b = arg;
    char why[400];
    if (jb->via == &w->ad)
        w->sending--;
    if (b != NULL && r->status == KN_TEMPFAIL && r->retry_after_ms > 0)
        kn__rates_slow_down(&w->rates, b);
    wipe_addrs(jb);
    if (r->status == KN_TEMPFAIL && r->detail == kn_detail_aborted) {
        /* Shutting down mid-send: the entry stays pending in Redis and
         * another process takes it over; no attempt is counted. */
        kn__worker_job_done(jb);
        return;
    }
    if (!w->closed)
        pump(w);
    if (jb->via == &w->ad)
        kn__route_result(&w->rt, jb->probe, r);
    kn__metrics_result(
        d, w->ch, jb->via->ops->name, r->status,
        jb->msg->m.created_ms > 0 ? kn_now_ms() - jb->msg->m.created_ms : -1);
    if (r->auth && r->status == KN_PERMFAIL) {
        /* A configuration error the provider will refuse every time (an
         * APNs topic that is not the app's, say): pause the route so the
         * operator sees it, but end this job instead of looping. */
        kn__route_pause_auth(&w->rt, pause_scope(w, jb), jb->via->ops->name,
                             r->detail, 1);
        kn__worker_fail(jb, r->detail);
        return;
    }
    if (r->auth) {
        /* Our credentials were refused: not the recipients' fault.  Pause
         * the route, keep the job (no attempt counted). */
        kn__route_pause_auth(&w->rt, pause_scope(w, jb), jb->via->ops->name,
                             r->detail, 0);
        kn__worker_retry(jb, 30000, r->detail, 0);
        return;
    }
    if (r->quota) {
        /* The provider's quota is used up (LINE's monthly limit): stop
         * the route for every process, move recipients on. */
        kn__route_pause_quota(&w->rt, r->detail);
        kn__worker_fail(jb, r->detail);
        return;
    }
    if (r->dead)
        kn__worker_mark_dead(jb);
    switch (r->status) {
    case KN_DELIVERED:
        d->delivered++;
        kn__worker_finish(jb, "delivered", r->detail);
        break;
    case KN_PERMFAIL:
        d->permfailed++;
        if (r->refused && w->ch == KN_CH_EMAIL && jb->naddr == 1) {
            /* 5xx at RCPT: a bounce at once, suppressed (issue 18) */
            kn__bounce_refused(d, jb, r->detail, why, sizeof(why));
            kn__worker_fall_back(jb);
            kn__worker_finish(jb, "bounced", why);
        } else if (r->dead) {
            snprintf(why, sizeof(why), "dead address: %s",
                     r->detail ? r->detail : "");
            kn__worker_fail(jb, why);
        } else {
            kn__worker_fail(jb, r->detail);
        }
        break;
    case KN_TEMPFAIL:
        d->tempfailed++;
        kn__worker_retry_or_give_up(jb, r->retry_after_ms, r->detail);
        break;
    }
}

static void send_batch(struct wjob *jb, struct kn__bucket *b);

/* Decrypt the job's addresses; 0, or the failure already recorded. */
static int open_addrs(struct wjob *jb)
{
    struct kn_worker *w = jb->w;
    size_t bad;
    /* One cipher context for the job's addresses (a LINE job has 500). */
    jb->addr = kn_xcalloc(jb->naddr + 1, sizeof(char *));
    if (kn_unseal_many(w->d->kr, w->chname, jb->sealed, jb->naddr, jb->addr,
                       &bad) < 0) {
        char why[160];
        snprintf(why, sizeof(why),
                 "cannot decrypt the address (sealed with key id %d: is "
                 "it in security.key_file?)",
                 kn_sealed_kid(jb->sealed[bad]));
        wipe_addrs(jb);
        kn__worker_finish(jb, "failed", why);
        return -1;
    }
    return 0;
}

/*
 * The guardian's personal my-page link for an e-mail (issue 16,
 * docs/mypage.md): <public_url>/m#t=<token>, the token naming the tenant,
 * the child (the job's recipient id) and the address' blind index, valid
 * KN_GTOKEN_MYPAGE_MS; one HMAC.  NULL without a public URL, or when a part
 * cannot be named in a token (an inline recipient's id, say).
 */
static char *mypage_link(struct kn_daemon *d, const char *tenant,
                         const char *child, const char *index)
{
    const char *base = d->cfg->http_public_url;
    char *t, *url;
    if (base == NULL || base[0] == '\0' || tenant == NULL || child == NULL ||
        index == NULL)
        return NULL;
    t = kn_gtoken_make(d->kr, KN_GTOKEN_MYPAGE, tenant, child, index,
                       kn_now_ms() + KN_GTOKEN_MYPAGE_MS, "");
    if (t == NULL)
        return NULL;
    url = kn_xasprintf("%s/m#t=%s", base, t);
    free(t);
    return url;
}

/* Fill in what the adapter reads of a job. */
static void prepare(struct wjob *jb, struct kn_adapter *via)
{
    struct kn_worker *w = jb->w;
    jb->job.msg = kn__msg_lang(jb->msg, jb->lang);
    jb->job.channel = w->chname;
    jb->job.rcpt = jb->rcpts[0];
    jb->job.bindex = jb->bindex[0];
    jb->job.addr = jb->addr[0];
    jb->job.addrs = (const char *const *)jb->addr;
    jb->job.naddr = jb->naddr;
    jb->job.attempt = jb->n + 1;
    jb->job.key = jb->key;
    if (jb->msg->m.ack && jb->naddr == 1 && jb->link == NULL) {
        /* The link names the guardian the job reaches (model/job.h "g"),
         * so that the confirmation says who confirmed. */
        json_t *g = json_object_get(jb->j, KN_JOB_GUARDIAN);
        char *t = kn_ack_token_guardian(w->d->kr, jb->bcast, jb->rcpts[0],
                                        json_is_integer(g) &&
                                                json_integer_value(g) >= 0 &&
                                                json_integer_value(g) < 100
                                            ? (int)json_integer_value(g)
                                            : -1);
        /* A translation's reader gets its page in the same language
         * (the tag passed kn_lang_valid: nothing to escape). */
        jb->link = kn_xasprintf("%s/a/%s%s%s", w->d->cfg->http_public_url, t,
                                jb->lang != NULL ? "?l=" : "",
                                jb->lang != NULL ? jb->lang : "");
        free(t);
    }
    jb->job.link = jb->link;
    /* RFC 8058 one-click unsubscribe: e-mail of a broadcast neither
     * urgent nor of an emergency category, for the guardian of this
     * address and this child (one HMAC per job); a translation's reader
     * gets its page in the same language, as for the ack link. */
    if (jb->unsub == NULL && jb->naddr == 1 && !jb->msg->m.urgent &&
        !jb->msg->m.emergency && strcmp(w->chname, "email") == 0 && !jb->inl) {
        jb->unsub = kn_gtoken_unsub_url(
            w->d->kr, w->d->cfg->http_public_url, jb->msg->m.tenant,
            jb->rcpts[0], jb->bindex[0], jb->msg->m.category, kn_now_ms());
        if (jb->unsub != NULL && jb->lang != NULL) {
            char *u = kn_xasprintf("%s?lang=%s", jb->unsub, jb->lang);
            free(jb->unsub);
            jb->unsub = u;
        }
    }
    jb->job.unsub = jb->unsub;
    if (jb->mypage == NULL && !jb->inl) {
        if (w->ch == KN_CH_EMAIL && jb->naddr == 1)
            jb->mypage = mypage_link(w->d, jb->msg->m.tenant, jb->rcpts[0],
                                     jb->bindex[0]);
        else if (w->ch == KN_CH_LINE && w->d->cfg->http_public_url != NULL)
            /* a multicast cannot be personal: the "send me my link"
             * form */
            jb->mypage = kn_xasprintf("%s/m", w->d->cfg->http_public_url);
    }
    jb->job.mypage = jb->mypage;
    kn__bounce_ref(w->d, jb); /* e-mail: the VERP reference (bounce.c) */
    jb->job._owner = jb;
    jb->via = via;
}

/*
 * The failover adapter (SendGrid) takes up to sendgrid.batch recipients
 * of one broadcast in one request: take the other ready jobs of the same
 * broadcast and priority along with jb (one rate-limit token for all).
 */
static void send_batch(struct wjob *jb, struct kn__bucket *b)
{
    struct kn_worker *w = jb->w;
    size_t max = (size_t)w->d->cfg->sendgrid_batch, n = 0, nc = 0;
    struct kn_job **jobs = kn_xcalloc(max, sizeof(*jobs));
    struct wjob **cand = kn_xcalloc(max, sizeof(*cand));
    struct wjob **pp = &w->ready[jb->prio], *t;

    /* jb is already off the ready list.  Unlink the candidates too before
     * anything else: any of them may end (and be freed) below, so none
     * may stay in the list meanwhile. */
    while (*pp != NULL && nc + 1 < max) {
        struct wjob *c = *pp;
        /* (One request carries one text: the same language only.) */
        if (strcmp(c->bcast, jb->bcast) == 0 && c->naddr == 1 &&
            strcmp(c->lang ? c->lang : "", jb->lang ? jb->lang : "") == 0) {
            *pp = c->next;
            c->next = NULL;
            cand[nc++] = c;
        } else {
            pp = &c->next;
        }
    }
    for (t = w->ready[jb->prio]; t != NULL && t->next != NULL; t = t->next)
        ;
    w->ready_tail[jb->prio] = t;
    prepare(jb, &w->rt.alt);
    jobs[n++] = &jb->job;
    for (size_t i = 0; i < nc; i++) {
        struct wjob *c = cand[i];
        if (open_addrs(c) < 0)
            continue; /* recorded as failed */
        if (!kn__route_alt_accepts(&w->rt, c->addr[0])) {
            wipe_addrs(c);
            kn__worker_retry(
                c, w->d->cfg->failover_probe_ms,
                "address not accepted by SendGrid: waits for the relay", 0);
            continue;
        }
        prepare(c, &w->rt.alt);
        jobs[n++] = &c->job;
    }
    w->rt.alt.ops->send(&w->rt.alt, jobs, n, on_sent, b);
    free(jobs);
    free(cand);
}

/*
 * Hand the job to an adapter: the main one, or the failover adapter while
 * the relay's breaker is open.  Returns 0 when sent (or recorded), or
 * KN_EAGAIN when it must wait for a rate-limit token (job untouched).
 */
static int send_now(struct wjob *jb)
{
    struct kn_worker *w = jb->w;
    struct kn_adapter *via = &w->ad;
    struct kn_job *jobs[1];
    struct kn__bucket *b;
    const char *why;
    int64_t wait;

    if (jb->lost) {
        /* Claimed by another process while it waited here (this one was
         * stalled): that process sends it. */
        kn_log(KN_LOG_WARN, "worker",
               "job taken over by another process "
               "before it was sent; left to it",
               "bc", jb->bcast, "job", jb->entry, NULL);
        kn__worker_job_done(jb);
        return 0;
    }
    switch (kn__route_choose(&w->rt, jb->prio,
                             kn__route_scope(jb->job.platform), &wait, &why)) {
    case KN__ROUTE_FAIL:
        kn__worker_fail(jb, why);
        return 0;
    case KN__ROUTE_WAIT:
        kn__worker_retry(jb, wait, why, 0);
        return 0;
    case KN__ROUTE_PROBE:
        jb->probe = 1;
        break;
    case KN__ROUTE_FAILOVER:
        via = &w->rt.alt;
        break;
    case KN__ROUTE_MAIN:
        break;
    }
    jb->job.naddr = jb->naddr;
    b = kn__rates_for(&w->rates, via, &jb->job);
    if (!kn__rates_spend(&w->rates, b))
        return KN_EAGAIN;
    if (open_addrs(jb) < 0)
        return 0;
    if (via == &w->rt.alt && !kn__route_alt_accepts(&w->rt, jb->addr[0])) {
        /* SendGrid refuses RFC-violating carrier addresses (and one fails
         * its whole request): this one waits for the relay. */
        wipe_addrs(jb);
        kn__worker_retry(
            jb, w->d->cfg->failover_probe_ms,
            "address not accepted by SendGrid: waits for the relay", 0);
        return 0;
    }
    if (via == &w->rt.alt) {
        send_batch(jb, b);
        return 0;
    }
    prepare(jb, via);
    jobs[0] = &jb->job;
    if (via == &w->ad)
        w->sending++;
    via->ops->send(via, jobs, 1, on_sent, b);
    return 0;
}

/*
 * Start ready jobs while the adapter has free slots, urgent first.  A job
 * leaves the ready list before it is handed on: an adapter may finish it
 * inside send() and that completion pumps again (re-entry), which must not
 * find the same job still at the head.
 */
static void pump(struct kn_worker *w)
{
    while (w->sending < w->slots && !w->closed) {
        struct wjob *jb;
        int q = w->ready[0] != NULL ? 0 : 1;
        if (w->ready[q] == NULL)
            return;
        jb = w->ready[q];
        w->ready[q] = jb->next;
        if (w->ready[q] == NULL)
            w->ready_tail[q] = NULL;
        jb->next = NULL;
        if (send_now(jb) == KN_EAGAIN) {
            /* Rate limit: back at the head; on_take or the tick pumps
             * again. */
            jb->next = w->ready[q];
            w->ready[q] = jb;
            if (w->ready_tail[q] == NULL)
                w->ready_tail[q] = jb;
            return;
        }
    }
}

/* The job passed its checks: queue it for a send slot. */
static void send_job(struct wjob *jb)
{
    struct kn_worker *w = jb->w;
    int q = jb->prio;
    jb->next = NULL;
    if (w->ready_tail[q] != NULL)
        w->ready_tail[q]->next = jb;
    else
        w->ready[q] = jb;
    w->ready_tail[q] = jb;
    pump(w);
}

static void on_precheck(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct wjob *jb = arg;
    const char *status, *rstate;
    int64_t expires;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3) {
        kn_log(KN_LOG_ERROR, "worker", "precheck failed", "error",
               rep->type == REDIS_REPLY_ERROR ? rep->str : "bad reply", "bc",
               jb->bcast, NULL);
        kn__worker_step_failed(
            jb, "checking the broadcast before sending",
            rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
        return;
    }
    status = rep->element[0]->str;
    expires = strtoll(rep->element[1]->str, NULL, 10);
    rstate = rep->element[2]->str;
    if (jb->naddr == 1 && rstate[0] != '\0' && rstate[0] != 'q' &&
        rstate[0] != 'r') {
        /* Already final (a reclaimed duplicate): only let it leave.  (A
         * multicast job is made safe by its retry key instead.) */
        kn__worker_finish(jb, "delivered", "duplicate");
    } else if (strcmp(status, "cancelled") == 0) {
        kn__worker_finish(jb, "cancelled", "broadcast cancelled");
    } else if (expires > 0 && kn_now_ms() >= expires) {
        kn__worker_finish(jb, "expired",
                          "broadcast expired before it could be sent");
    } else {
        send_job(jb);
    }
}

static void on_msg(struct kn__msg *m, void *arg)
{
    struct wjob *jb = arg;
    struct kn_daemon *d = jb->w->d;
    struct kn_argv a;
    char *first;
    jb->msg = m;
    if (m->failed == 2) {
        /* Redis did not answer: not the job's fault; it stays pending. */
        kn__worker_job_done(jb);
        return;
    }
    if (m->failed) {
        char why[300];
        if (m->failed == 3)
            snprintf(why, sizeof(why),
                     "the broadcast's record %sbc:%.100s holds the wrong "
                     "type (not a hash): delete the stray key",
                     d->prefix, jb->bcast);
        kn__poison(d, jb->stream, jb->entry, jb->raw, strlen(jb->raw),
                   m->failed == 3
                       ? why
                       : "broadcast not found (purged or never stored)");
        kn__worker_job_done(jb);
        return;
    }
    if (jb->claimed) {
        /* Taken over from a process that stopped while holding it: count
         * the attempt, so a job that kills its worker every time ends in
         * the DLQ after queue.max_attempts instead of looping. */
        kn__worker_retry_or_give_up(jb, 0, "taken over from a stopped worker");
        return;
    }
    if (jb->n == 0) {
        /* A first attempt: checked against the cached broadcast. */
        if (m->cancelled)
            kn__worker_finish(jb, "cancelled", "broadcast cancelled");
        else if (m->m.expires_ms > 0 && kn_now_ms() >= m->m.expires_ms)
            kn__worker_finish(jb, "expired",
                              "broadcast expired before it could be "
                              "sent");
        else
            send_job(jb);
        return;
    }
    first = kn_xasprintf("%s:%s", jb->w->chname, jb->bindex[0]);
    kn_argv_init(&a);
    kn_argv_take(&a, kn_key_bc(d->prefix, jb->bcast, ""));
    kn_argv_take(&a, kn_key_bc(d->prefix, jb->bcast, ":r"));
    kn_argv_take(&a, first);
    kn__eval_reliable(d, &kn_script_precheck, on_precheck, jb, NULL, 2, &a);
}

/*
 * Take a job's recipients from its record (model/job.c) and name them for
 * the finish script: "line:<bi>,line:<bi>..." and "r-1,r-2..."
 */
static void take_recipients(struct wjob *jb, struct kn_job_rec *rec)
{
    struct kn_buf f = KN_BUF_INIT, rl = KN_BUF_INIT;
    jb->naddr = rec->n;
    jb->rcpts = rec->rcpts;
    jb->sealed = rec->sealed;
    jb->bindex = rec->bindex;
    rec->rcpts = rec->sealed = rec->bindex = NULL;
    /* A buffer, not a string rebuilt per recipient: a LINE job holds 500. */
    for (size_t k = 0; k < jb->naddr; k++) {
        if (k > 0) {
            kn_buf_addc(&f, ',');
            kn_buf_addc(&rl, ',');
        }
        kn_buf_add(&f, jb->w->chname); /* (no printf: 2 % of kairand) */
        kn_buf_addc(&f, ':');
        kn_buf_add(&f, jb->bindex[k]);
        kn_buf_add(&rl, jb->rcpts[k]);
    }
    jb->fields = jb->naddr ? kn_buf_take(&f, NULL) : NULL;
    jb->rcpt_list = jb->naddr ? kn_buf_take(&rl, NULL) : NULL;
    kn_buf_free(&f);
    kn_buf_free(&rl);
}

/* Take one stream entry: parse it and start its life. */
void kn__worker_take(struct kn_worker *w, const char *stream,
                     const redisReply *e, int claimed)
{
    struct wjob *jb;
    const redisReply *jv = kn_queue_entry_field(e, KN_JOB_ENTRY_FIELD);
    struct kn_job_rec rec;
    if (e == NULL || e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
        e->element[0]->type != REDIS_REPLY_STRING)
        return; /* deleted entry (nil) in a claim reply */
    jb = kn_xcalloc(1, sizeof(*jb));
    jb->w = w;
    jb->stream = kn_xstrdup(stream);
    jb->entry = kn_xstrndup(e->element[0]->str, e->element[0]->len);
    jb->claimed = claimed;
    jb->prio = strstr(stream, ":urgent") != NULL ? 0 : 1;
    w->busy++;
    kn__worker_held_add(w, jb);
    if (jv == NULL || jv->type != REDIS_REPLY_STRING) {
        kn__poison(w->d, stream, jb->entry, NULL, 0, "entry has no job");
        kn__worker_job_done(jb);
        return;
    }
    jb->raw = kn_xstrndup(jv->str, jv->len);
    /* The plain shape without a JSON tree (a LINE job holds 1,500
     * strings); anything else (fallbacks, a key it does not know)
     * through jansson, which also decides what is not a job. */
    jb->plain = kn_xstrndup(jv->str, jv->len);
    if (kn_job_read_plain(jb->plain, jv->len, &rec) < 0) {
        free(jb->plain);
        jb->plain = NULL;
        jb->j = json_loadb(jv->str, jv->len, 0, NULL);
    }
    if (jb->plain == NULL && kn_job_parse(jb->j, &rec) < 0) {
        kn__poison(w->d, stream, jb->entry, jb->raw, strlen(jb->raw),
                   "unreadable job (not the JSON kairand writes)");
        kn__worker_job_done(jb);
        return;
    }
    jb->bcast = rec.bcast;
    jb->n = rec.attempts;
    jb->expires_ms = rec.expires_ms;
    take_recipients(jb, &rec);
    jb->key = kn_xasprintf("%s/%s", jb->bcast, rec.key ? rec.key : jb->fields);
    jb->job.platform = rec.platform;
    /* (What the expander wrote; checked, it reaches a link.) */
    jb->lang = kn_lang_valid(rec.lang) ? rec.lang : NULL;
    jb->inl = rec.inl;
    jb->grec = rec.grec && rec.key != NULL;
    jb->job.first_ms = rec.first_ms;
    kn__msg_get(w->d, jb->bcast, on_msg, jb);
}

/* ---- public (internal) API ---- */

/* Rate-limit tokens came (or the shared bucket failed): go on. */
static void rates_ready(void *arg)
{
    struct kn_worker *w = arg;
    if (!w->closed)
        pump(w);
}

/* Once a second: the shared pause flag, rate-limit waits, expired auth
 * pauses. */
static void on_tick(uv_timer_t *t)
{
    struct kn_worker *w = kn_container_of(t, struct kn_worker, tick);
    if (w->closed || !w->started)
        return;
    kn__route_tick(&w->rt);
    pump(w);
}

/* The i-th rate bucket of the worker (for /metrics); 0 past the end. */
int kn__worker_rate(const struct kn_worker *w, size_t i, const char **name,
                    uint64_t *waits, uint64_t *slowed)
{
    return kn__rates_get(&w->rates, i, name, waits, slowed);
}

/* Provider access tokens this worker's adapter issued (for /metrics). */
void kn__worker_tokens(const struct kn_worker *w, uint64_t *issued,
                       uint64_t *failed)
{
    kn_adapter_tokens(&w->ad, issued, failed);
}

struct kn_worker *kn__worker_new(struct kn_daemon *d, enum kn_channel ch,
                                 const char *adapter)
{
    const struct kn_config *cfg = d->cfg;
    struct kn_worker *w;
    int rc;
    if (kn_adapter_find(adapter) == NULL) {
        kn_log(KN_LOG_WARN, "worker",
               "no adapter of that name in this build; jobs of this channel "
               "wait in their streams",
               "channel", kn_channel_name(ch), "route", adapter, NULL);
        return NULL;
    }
    w = kn_xcalloc(1, sizeof(*w));
    w->d = d;
    w->ch = ch;
    w->chname = kn_channel_name(ch);
    w->route = kn_xstrdup(adapter);
    rc = kn_adapter_open(&w->ad, adapter, d->loop, cfg, &d->host);
    if (rc < 0)
        kn_fatal("cannot open the %s adapter for %s: %s", adapter, w->chname,
                 kn_strerror(rc));
    kn__route_init(&w->rt, d, ch, &w->ad);
    w->slots = w->ad.ops->capacity(&w->ad);
    w->limit = 4 * w->slots;
    kn__rates_init(&w->rates, d, &w->ad, &w->rt.alt,
                   w->slots < 50 ? w->slots : 50, rates_ready, w);
    w->streams[0] = kn__key(d, "q:%s:urgent", w->chname);
    w->streams[1] = kn__key(d, "q:%s:normal", w->chname);
    uv_timer_init(d->loop, &w->again);
    uv_timer_init(d->loop, &w->tick);
    w->blk = kn__redis_open(d, w->chname, kn__worker_blk_state, w);
    kn_argv_init(&w->fin_keys);
    kn_argv_init(&w->fin_args);
    w->fin_jobs = kn_xcalloc(KN__FINISH_BATCH, sizeof(*w->fin_jobs));
    uv_timer_init(d->loop, &w->fin_timer);
    uv_timer_init(d->loop, &w->keep_timer);
    return w;
}

void kn__worker_start(struct kn_worker *w)
{
    uint64_t every = (uint64_t)w->d->cfg->claim_idle_ms / 8;
    w->started = 1;
    uv_timer_start(&w->tick, on_tick, 1000, 1000);
    uv_timer_start(&w->keep_timer, kn__worker_keep, every, every);
    kn_log(KN_LOG_INFO, "worker", "started", "channel", w->chname, "adapter",
           w->route, NULL);
    kn_redis_start(w->blk);
}

size_t kn__worker_busy(const struct kn_worker *w)
{
    return w->busy;
}

size_t kn__worker_sending(const struct kn_worker *w)
{
    return w->sending;
}

const char *kn__worker_route(const struct kn_worker *w)
{
    return w->route;
}

struct kn_redis *kn__worker_redis(const struct kn_worker *w)
{
    return w->blk;
}

void kn__worker_kick(struct kn_worker *w)
{
    kn__worker_fill(w);
}

void kn__worker_claimed(struct kn_worker *w, const char *stream,
                        const redisReply *entries)
{
    for (size_t i = 0; i < entries->elements; i++)
        kn__worker_take(w, stream, entries->element[i], 1);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct kn_worker *w = h->data;
    if (--w->handles == 0) {
        /* Jobs still in hand (a result or retry whose call was dropped
         * unanswered at the exit) stay pending in Redis; their memory
         * goes with the worker. */
        while (w->held != NULL)
            job_free(w->held);
        kn_argv_free(&w->fin_keys);
        kn_argv_free(&w->fin_args);
        free(w->fin_jobs);
        free(w);
    }
}

void kn__worker_close(struct kn_worker *w)
{
    w->closed = 1;
    /* Sends still running are aborted: each gets a tempfail that we leave
     * pending in Redis (no attempt counted).  Results that came in just
     * before are recorded with the rest of the batch. */
    w->ad.ops->close(&w->ad);
    kn__route_close(&w->rt);
    kn__worker_flush_finished(w);
    kn_redis_close(w->blk);
    free(w->streams[0]);
    free(w->streams[1]);
    free(w->route);
    /* Ready jobs never started stay pending in Redis. */
    for (int q = 0; q < 2; q++) {
        while (w->ready[q] != NULL) {
            struct wjob *jb = w->ready[q];
            w->ready[q] = jb->next;
            job_free(jb);
        }
    }
    w->handles = 4;
    w->again.data = w;
    w->tick.data = w;
    w->fin_timer.data = w;
    w->keep_timer.data = w;
    uv_timer_stop(&w->tick);
    uv_close((uv_handle_t *)&w->fin_timer, on_handle_closed);
    uv_close((uv_handle_t *)&w->keep_timer, on_handle_closed);
    uv_close((uv_handle_t *)&w->again, on_handle_closed);
    uv_close((uv_handle_t *)&w->tick, on_handle_closed);
}
