/*
 * expand_read.c - reading a broadcast's audience a page at a time: the
 * page's entries (LRANGE of bc:<id>:aud) and the directory records they
 * name, the next page read ahead while the current one commits, and that
 * page committed before the last commit's answer while one broadcast
 * expands alone (expand_page.c builds and commits a page).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/kn.h"
#include "common/log.h"
#include "config/config.h"
#include "dispatcher/daemon.h"
#include "dispatcher/expand.h"
#include "model/directory.h"
#include "queue/poison.h"
#include "queue/keys.h"

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/*
 * A page of the audience being read: its entries and the directory
 * records they name.  The page the expander is on is read into one; so is,
 * while a single broadcast expands, each of the pages after it ("ahead",
 * up to AHEAD_PAGES), read while this one is built and committed, so that
 * kairand parses a page while Redis runs the last one's commit instead of each
 * waiting for the other.  Reading is all it does: nothing is written for an
 * ahead page (a record of the wrong type is reported when its page is used), so
 * a page read ahead and then not used (another tenant's turn came, the
 * broadcast failed or stopped) is simply dropped, and a crash loses
 * nothing: the checkpoint moves only with a commit.  The pages read ahead
 * are a list (e->ahead, in page order): memory stays AHEAD_PAGES pages
 * more.
 */
struct xpage {
    struct kn_expander *e; /* not touched once dropped */
    char *id;              /* the stream entry (broadcast) it is of */
    int64_t page;
    json_t **rj;           /* as e->rj */
    struct kn__flat *flat; /* as e->flat */
    char **rid;
    char **err;        /* a record of the wrong type: Redis' error text */
    char *inl;         /* as e->inl: 1 for an inline entry */
    size_t n, lookups; /* replies still to come (the LRANGE counts one) */
    int ahead;         /* read ahead (a failure reads it again for real) */
    int lost, done, dropped, wanted;
    struct xpage *next; /* the page after it, also read ahead */
};

/*
 * How many pages are read ahead at most.  Two, so that a directory
 * page's lookups (sent only when its LRANGE answers) are queued in Redis
 * before the commit kairand waits on, not after it: with one, Redis ran
 * the lookups and the commit one after the other while kairand waited.
 */
#define AHEAD_PAGES 2

struct lookup {
    struct xpage *pg;
    size_t idx;
};

static void xpage_free(struct xpage *pg)
{
    for (size_t i = 0; i < pg->n; i++) {
        json_decref(pg->rj[i]);
        free(pg->rid[i]);
        free(pg->err[i]);
        if (pg->flat != NULL)
            free(pg->flat[i].buf);
    }
    free(pg->flat);
    free(pg->rj);
    free(pg->rid);
    free(pg->err);
    free(pg->inl);
    free(pg->id);
    free(pg);
}

/* The page being built, which page_use took from its xpage. */
void kn__expand_page_clear(struct kn_expander *e)
{
    for (size_t i = 0; i < e->nrj; i++) {
        json_decref(e->rj[i]);
        free(e->rid[i]);
        if (e->flat != NULL)
            free(e->flat[i].buf);
    }
    free(e->flat);
    e->flat = NULL;
    free(e->rj);
    free(e->rid);
    free(e->inl);
    e->inl = NULL;
    e->rj = NULL;
    e->rid = NULL;
    e->nrj = 0;
}

/* Forget the pages read ahead (each freed by its last reply if still
 * read). */
void kn__expand_ahead_drop(struct kn_expander *e)
{
    struct xpage *pg = e->ahead, *next;
    e->ahead = NULL;
    for (; pg != NULL; pg = next) {
        next = pg->next;
        pg->next = NULL;
        pg->dropped = 1;
        if (pg->done)
            xpage_free(pg);
    }
}

/* Take the first page read ahead off the list. */
static void ahead_pop(struct kn_expander *e, struct xpage *pg)
{
    if (e->ahead == pg) {
        e->ahead = pg->next;
        pg->next = NULL;
    }
}

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
    kn_redis_cmd(d->cmd, NULL, NULL,
                 "XADD %s * bc %s tenant %s rcpt %s reason %s failed_ms %s",
                 dlq, e->cur->bc, e->tenant, e->rid[idx], reason, now);
    free(key);
    free(dlq);
}

static void page_use(struct xpage *pg);

/* One reply of a page's reading came: the last one ends the reading. */
static void page_answered(struct xpage *pg)
{
    if (--pg->lookups > 0)
        return;
    pg->done = 1;
    if (pg->dropped)
        xpage_free(pg);
    else if (pg->wanted)
        page_use(pg);
    else
        kn__expand_pipeline_next(pg->e);
}

static void on_rcpt(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct lookup *l = arg;
    struct xpage *pg = l->pg;
    if (kn_poison_transient(kn__expand_rep_error(rep)) &&
        (rep == NULL || rep->type == REDIS_REPLY_ERROR))
        pg->lost = 1;
    else if (rep->type == REDIS_REPLY_ERROR && pg->err[l->idx] == NULL)
        pg->err[l->idx] = kn_xstrdup(rep->str);
    if (rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
        rep->element[0]->type == REDIS_REPLY_STRING &&
        !(rep->element[1]->type == REDIS_REPLY_STRING &&
          strcmp(rep->element[1]->str, "0") == 0)) {
        pg->rj[l->idx] =
            kn_json_load(rep->element[0]->str, rep->element[0]->len);
    }
    /* Inactive (graduated) or deleted recipients get nothing. */
    free(l);
    page_answered(pg);
}

/*
 * What guardians registered themselves (reg:<tenant>:<id> "g", issue 15:
 * the same guardian shape as the directory's "g", in a record of its own
 * that an import never touches) joins the child's further guardians.  Its
 * reply comes after the directory record's (one connection, in order), so
 * an inactive or deleted child (no record) gets nothing here either.
 */
static void on_reg(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct lookup *l = arg;
    struct xpage *pg = l->pg;
    if (rep == NULL || (rep->type == REDIS_REPLY_ERROR &&
                        kn_poison_transient(kn__expand_rep_error(rep))))
        pg->lost = 1;
    else if (rep->type == REDIS_REPLY_STRING &&
             json_is_object(pg->rj[l->idx])) {
        json_t *reg = kn_json_load(rep->str, rep->len), *g, *have;
        size_t i;
        have = json_object_get(pg->rj[l->idx], KN_DIR_GUARDIANS);
        if (!json_is_array(have)) {
            have = json_array();
            json_object_set_new(pg->rj[l->idx], KN_DIR_GUARDIANS, have);
        }
        json_array_foreach(reg, i, g)
        {
            if (json_is_object(g))
                json_array_append(have, g);
        }
        json_decref(reg);
    }
    free(l);
    page_answered(pg);
}

/* Send one lookup of entry idx: its directory record (reg 0) or what
 * its guardians registered (reg 1).  0, or -1 (the page is lost). */
static int lookup(struct xpage *pg, size_t idx, int reg, const char *key)
{
    struct lookup *l = kn_xcalloc(1, sizeof(*l));
    int rc;
    l->pg = pg;
    l->idx = idx;
    pg->lookups++;
    if (reg)
        rc = kn_redis_cmd(pg->e->d->cmd, on_reg, l, "HGET %s g", key);
    else
        rc = kn_redis_cmd(pg->e->d->cmd, on_rcpt, l,
                          "HMGET %s " KN_DIR_HASH_FIELD " active", key);
    if (rc < 0) {
        pg->lookups--;
        pg->lost = 1;
        free(l);
        return -1;
    }
    return 0;
}

static void on_range(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct xpage *pg = arg;
    struct kn_expander *e = pg->e;
    if (pg->dropped) {
        page_answered(pg);
        return;
    }
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
        if (pg->ahead) {
            /* Read it again for real when its turn comes: that read's
             * failure is the one counted, with its reason. */
            pg->lost = 1;
            page_answered(pg);
            return;
        }
        ahead_pop(e, pg);
        xpage_free(pg);
        kn__expand_failed(e, rep);
        return;
    }
    pg->n = rep->elements;
    pg->rj = kn_xcalloc(pg->n + 1, sizeof(*pg->rj));
    pg->rid = kn_xcalloc(pg->n + 1, sizeof(*pg->rid));
    pg->err = kn_xcalloc(pg->n + 1, sizeof(*pg->err));
    pg->inl = kn_xcalloc(pg->n + 1, 1);
    for (size_t i = 0; i < rep->elements; i++) {
        const char *s = rep->element[i]->str;
        if (rep->element[i]->type != REDIS_REPLY_STRING) {
            pg->rid[i] = kn_xstrdup("?");
        } else if (strncmp(s, "i:", 2) == 0) {
            const char *id;
            if (pg->flat == NULL)
                pg->flat = kn_xcalloc(pg->n + 1, sizeof(*pg->flat));
            if (kn__flat_read(&pg->flat[i], s + 2, rep->element[i]->len - 2) ==
                0) {
                id = pg->flat[i].id;
            } else {
                pg->rj[i] = kn_json_load(s + 2, rep->element[i]->len - 2);
                id = jstr(pg->rj[i], KN_DIR_ID);
            }
            pg->inl[i] = 1;
            pg->rid[i] = kn_xstrdup(id ? id : "?");
        } else if (strncmp(s, "d:", 2) == 0) {
            char *key = kn_key_rcpt(e->d->prefix, e->tenant, s + 2);
            pg->rid[i] = kn_xstrdup(s + 2);
            if (lookup(pg, i, 0, key) == 0) {
                char *rk = kn_key_reg(e->d->prefix, e->tenant, s + 2);
                lookup(pg, i, 1, rk);
                free(rk);
            }
            free(key);
        } else {
            pg->rid[i] = kn_xstrdup("?");
        }
    }
    page_answered(pg); /* the LRANGE's own */
}

/*
 * Start reading page p of the current entry's audience: for the page the
 * expander is on (ahead 0), or one after it (ahead 1, in e->ahead).
 * NULL if the read could not be sent.
 */
static struct xpage *page_read(struct kn_expander *e, int64_t p, int ahead)
{
    char *aud = kn_key_bc(e->d->prefix, e->cur->bc, ":aud");
    long long from = kn__expand_page_start(e, p);
    long long to = kn__expand_page_start(e, p + 1) - 1;
    struct xpage *pg = kn_xcalloc(1, sizeof(*pg));
    pg->e = e;
    pg->id = kn_xstrdup(e->cur->id);
    pg->page = p;
    pg->ahead = ahead;
    pg->wanted = !ahead;
    pg->lookups = 1;
    if (!ahead) {
        kn__expand_step(e, "reading the audience");
        kn__expand_step_key(e, kn_xstrdup(aud), "list");
    }
    if (kn_redis_cmd(e->d->cmd, on_range, pg, "LRANGE %s %lld %lld", aud, from,
                     to) < 0) {
        free(pg->id);
        free(pg);
        pg = NULL;
    }
    free(aud);
    return pg;
}

/*
 * Read the pages after the current one ahead (up to AHEAD_PAGES), when
 * it is worth it: the broadcast has them, and no other broadcast waits
 * for a turn (with several, the next turn is likely another's, and its
 * page would be read twice).
 */
static void read_ahead(struct kn_expander *e)
{
    struct xpage **tail = &e->ahead;
    int64_t p = e->page + 1;
    int n = 0;
    if (e->cur == NULL || e->d->stopping || kn__expand_fair_count(e) > 0)
        return;
    for (; *tail != NULL; tail = &(*tail)->next, n++)
        p = (*tail)->page + 1;
    for (; n < AHEAD_PAGES && kn__expand_page_start(e, p) < e->aud_n; n++) {
        if ((*tail = page_read(e, p++, 1)) == NULL)
            return;
        tail = &(*tail)->next;
    }
}

/*
 * The page read ahead, committed before the last page's commit answered
 * (struct xcommit): when one broadcast expands alone (no other waits for
 * a turn, none newly read from the stream nor set aside and due: its turn
 * ends at the next answer, and theirs come), the page is the entry's
 * next, it is read whole, and the streams it goes to have room for it by
 * the lengths last measured (a commit's answer or XLEN, within the
 * second) and the jobs of the commit on its way.
 */
void kn__expand_pipeline_next(struct kn_expander *e)
{
    struct xpage *pg = e->ahead;
    if (e->inflight != 1 || pg == NULL || !pg->done || pg->lost ||
        e->cur == NULL || e->closed || e->d->stopping || pg->page != e->page ||
        strcmp(pg->id, e->cur->id) != 0 || kn__expand_fair_count(e) > 0 ||
        e->queue != NULL ||
        (e->deferred != NULL && e->deferred->due_ms <= kn_mono_ms()) ||
        kn_mono_ms() - e->clen_ms > 1000)
        return;
    for (size_t i = 0; i < e->nchans; i++) {
        int si = kn__expand_stream(e, e->chans[i]);
        if (e->clen[si] < 0 ||
            e->clen[si] + e->inflight_jobs[si] > kn__expand_depth_peek(e, si))
            return;
    }
    pg->wanted = 1;
    page_use(pg);
}

/*
 * A page is read (and wanted): report the records of the wrong type, make
 * it the page being built, read the next one ahead, and commit this one.
 * A page read ahead that lost a reply is read again; the page itself
 * losing one fails the step, as before.
 */
static void page_use(struct xpage *pg)
{
    struct kn_expander *e = pg->e;
    ahead_pop(e, pg);
    if (pg->lost) {
        int again = pg->ahead;
        xpage_free(pg);
        if (!again) {
            kn__expand_failed(e, NULL);
        } else if ((pg = page_read(e, e->page, 0)) == NULL) {
            kn__expand_failed(e, NULL);
        }
        return;
    }
    kn__expand_page_clear(e);
    e->rj = pg->rj;
    e->flat = pg->flat;
    e->rid = pg->rid;
    e->inl = pg->inl;
    e->nrj = pg->n;
    e->page_cost = (int64_t)pg->n;
    for (size_t i = 0; i < pg->n; i++) {
        if (pg->err[i] != NULL)
            rcpt_unreadable(e, i, pg->err[i]);
        free(pg->err[i]);
    }
    free(pg->err);
    free(pg->id);
    free(pg);
    read_ahead(e); /* sent before the commit: read while it is built */
    kn__expand_commit_page(e);
}

/*
 * Where page p starts in the audience list.  The first page is short (at
 * most 50 recipients), so that the first messages leave within
 * milliseconds of the submission; the others have dispatcher.expand_page.
 */
long long kn__expand_page_start(const struct kn_expander *e, int64_t p)
{
    long long size = e->d->cfg->expand_page;
    long long first = size < 50 ? size : 50;
    return p == 0 ? 0 : first + (p - 1) * size;
}

/* The page the expander is on: the one read ahead if it is that page. */
void kn__expand_range_page(struct kn_expander *e)
{
    struct xpage *pg = e->ahead;
    if (pg != NULL && pg->page == e->page && strcmp(pg->id, e->cur->id) == 0) {
        pg->wanted = 1;
        if (pg->done)
            page_use(pg);
        return; /* else its last reply uses it */
    }
    kn__expand_ahead_drop(e);
    if (page_read(e, e->page, 0) == NULL)
        kn__expand_failed(e, NULL);
}
