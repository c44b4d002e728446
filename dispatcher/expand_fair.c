/*
 * expand_fair.c - whose broadcast the expander expands next: urgent
 * strictly before normal; within a priority, tenants take turns by
 * deficit round robin (Shreedhar and Varghese, 1995), so that a board of
 * education's 200,000 recipients never hold up a school's 30.
 *
 * A resolved broadcast waits here for its turn, its routing fields and
 * checkpoint kept in its entry (struct xbc); the expander restores it,
 * expands one page, and puts it back.  Each round a tenant gets a quantum
 * of dispatcher.expand_page recipients and spends it on pages of its
 * broadcasts (its own in arrival order); what it does not spend is kept
 * for its next turn while it has work, as DRR does.
 *
 * The job streams themselves stay shallow: a page waits while its stream
 * holds more than about queue.expand_ahead_ms of sending (the drain rate
 * measured from its XLEN and the jobs the expander added), so a tenant
 * whose turn comes finds its jobs read within about that time.  Nothing
 * here is state of Redis: a crash loses only the order of turns; every
 * entry is still pending in the broadcasts stream with its checkpoint.
 */
#include <stdlib.h>
#include <string.h>

#include "common/kn.h"
#include "config/config.h"
#include "dispatcher/daemon.h"
#include "dispatcher/expand.h"
#include "queue/queue.h"

/* A stream may always hold this many jobs, whatever its drain rate (a
 * stream idle until now has none measured yet).  Small: a LINE job is a
 * multicast of 500, and at a channel's 20 requests a second 64 of them
 * were 3 s of one tenant's sending ahead of every other tenant's (B's 30
 * recipients waited 1.5 s behind A's whole broadcast in test_fair).  The
 * first drain sample, 100 ms later, sets the rate. */
#define KN_EXPAND_MIN_AHEAD 16

/* How long the expander waits once every tenant found its stream full. */
#define FULL_WAIT_MS 20

static struct xtenant **ring_of(struct kn_expander *e, int urgent)
{
    return &e->ring[urgent ? 0 : 1];
}

/* The tenant of that name and priority, appended to its ring if new. */
static struct xtenant *tenant_get(struct kn_expander *e, const char *name,
                                  int urgent)
{
    struct xtenant **pp = ring_of(e, urgent);
    for (; *pp != NULL; pp = &(*pp)->next) {
        if (strcmp((*pp)->name, name) == 0)
            return *pp;
    }
    *pp = kn_xcalloc(1, sizeof(**pp));
    (*pp)->name = kn_xstrdup(name);
    return *pp;
}

/* The head of a ring goes to its tail, its turn over. */
static void rotate(struct xtenant **ring)
{
    struct xtenant *t = *ring, **pp;
    if (t == NULL || t->next == NULL) {
        if (t != NULL)
            t->in_turn = 0;
        return;
    }
    *ring = t->next;
    t->next = NULL;
    t->in_turn = 0;
    for (pp = ring; *pp != NULL; pp = &(*pp)->next)
        ;
    *pp = t;
}

static void tenant_free(struct xtenant *t)
{
    while (t->head != NULL) {
        struct xentry *x = t->head;
        t->head = x->next;
        free(x->saved.tenant);
        free(x->saved.category);
        kn__expand_xentry_free(x);
    }
    free(t->name);
    free(t);
}

/* Move the expander's broadcast fields into x (and back). */
static void save(struct kn_expander *e, struct xentry *x)
{
    x->saved.tenant = e->tenant;
    e->tenant = NULL;
    x->saved.urgent = e->urgent;
    x->saved.preferred = e->preferred;
    x->saved.emergency = e->emergency;
    x->saved.category = e->category;
    e->category = NULL;
    x->saved.ack = e->ack;
    memcpy(x->saved.chans, e->chans, sizeof(e->chans));
    x->saved.nchans = e->nchans;
    x->saved.expires_ms = e->expires_ms;
    x->saved.aud_n = e->aud_n;
    x->saved.page = e->page;
    x->saved.resolving = e->resolving;
    e->resolving = 0;
    memcpy(x->saved.langs, e->langs, sizeof(e->langs));
    e->nchans = 0;
}

static void restore(struct kn_expander *e, struct xentry *x)
{
    free(e->tenant);
    e->tenant = x->saved.tenant;
    x->saved.tenant = NULL;
    e->urgent = x->saved.urgent;
    e->preferred = x->saved.preferred;
    e->emergency = x->saved.emergency;
    free(e->category);
    e->category = x->saved.category;
    x->saved.category = NULL;
    e->ack = x->saved.ack;
    memcpy(e->chans, x->saved.chans, sizeof(e->chans));
    e->nchans = x->saved.nchans;
    e->expires_ms = x->saved.expires_ms;
    e->aud_n = x->saved.aud_n;
    e->page = x->saved.page;
    e->resolving = x->saved.resolving;
    memcpy(e->langs, x->saved.langs, sizeof(e->langs));
}

/* The current entry back into its tenant's line: at the head (first) if
 * it was in the middle of its turn, else at the tail. */
static struct xtenant *put_back(struct kn_expander *e, int first)
{
    struct xentry *x = e->cur;
    struct xtenant *t = tenant_get(e, e->tenant ? e->tenant : "", e->urgent);
    e->cur = NULL;
    kn__expand_page_clear(e);
    save(e, x);
    if (first) {
        x->next = t->head;
        t->head = x;
        if (t->tail == NULL)
            t->tail = x;
    } else {
        x->next = NULL;
        if (t->tail != NULL)
            t->tail->next = x;
        else
            t->head = x;
        t->tail = x;
    }
    return t;
}

/* Recipients of page p of x's audience (the first page is short). */
static int64_t page_cost(const struct kn_expander *e, const struct xbc *b)
{
    int64_t size = e->d->cfg->expand_page;
    int64_t first = size < 50 ? size : 50;
    int64_t from = b->page == 0 ? 0 : first + (b->page - 1) * size;
    int64_t n = b->page == 0 ? first : size;
    if (from + n > b->aud_n)
        n = b->aud_n - from;
    return n > 0 ? n : 1;
}

void kn__expand_admitted(struct kn_expander *e)
{
    put_back(e, 0);
    kn__expand_resume(e);
}

void kn__expand_fair_charge(struct kn_expander *e, int64_t cost)
{
    const char *name = e->tenant ? e->tenant : "";
    for (struct xtenant *t = *ring_of(e, e->urgent); t != NULL; t = t->next) {
        if (strcmp(t->name, name) == 0) {
            /* It expands alone (pipeline_next): the turns it would be
             * given meanwhile, one after the other, each add a quantum;
             * a debt kept here would freeze it once another tenant
             * comes, for as many pages as it pipelined. */
            t->deficit -= cost;
            while (t->deficit < 0)
                t->deficit += e->d->cfg->expand_page;
            return;
        }
    }
}

void kn__expand_turn_over(struct kn_expander *e, int64_t cost)
{
    struct xtenant *t = put_back(e, 1);
    t->deficit -= cost;
    e->deep_streak = 0;
    kn__expand_resume(e);
}

void kn__expand_blocked(struct kn_expander *e)
{
    int urgent = e->urgent, n = 0;
    struct xtenant **ring = ring_of(e, urgent), *t;
    put_back(e, 1);
    /* Its turn ends: the others may find room in theirs (another
     * channel's stream).  A quantum saved while blocked is capped, so
     * that a tenant cannot save up a burst. */
    if ((*ring)->deficit > e->d->cfg->expand_page)
        (*ring)->deficit = e->d->cfg->expand_page;
    rotate(ring);
    for (t = *ring; t != NULL; t = t->next)
        n++;
    if (++e->deep_streak >= n) {
        e->deep_streak = 0;
        kn__expand_later(e, kn__expand_resume, FULL_WAIT_MS);
        return;
    }
    kn__expand_resume(e);
}

/*
 * The next broadcast to expand a page of.
 *   1. Urgent tenants first; normal ones only when no urgent broadcast
 *      waits.
 *   2. The tenant at the head of the ring gets its quantum when its turn
 *      starts; it expands its first broadcast's next page if its deficit
 *      covers the page, else its turn is over and the next tenant's
 *      starts.
 *   3. A tenant left without broadcasts leaves the ring (its deficit
 *      with it).
 */
int kn__expand_fair_next(struct kn_expander *e)
{
    for (int p = 0; p < 2; p++) {
        struct xtenant **ring = &e->ring[p];
        while (*ring != NULL) {
            struct xtenant *t = *ring;
            struct xentry *x = t->head;
            if (x == NULL) {
                *ring = t->next;
                tenant_free(t);
                continue;
            }
            if (!t->in_turn) {
                t->in_turn = 1;
                t->deficit += e->d->cfg->expand_page;
            }
            if (page_cost(e, &x->saved) > t->deficit) {
                rotate(ring);
                continue;
            }
            t->head = x->next;
            if (t->head == NULL)
                t->tail = NULL;
            x->next = NULL;
            e->cur = x;
            restore(e, x);
            return 1;
        }
    }
    return 0;
}

int kn__expand_fair_has(const struct kn_expander *e, const char *id)
{
    for (int p = 0; p < 2; p++) {
        for (const struct xtenant *t = e->ring[p]; t != NULL; t = t->next) {
            for (const struct xentry *x = t->head; x != NULL; x = x->next) {
                if (strcmp(x->id, id) == 0)
                    return 1;
            }
        }
    }
    return 0;
}

size_t kn__expand_fair_count(const struct kn_expander *e)
{
    size_t n = 0;
    for (int p = 0; p < 2; p++) {
        for (const struct xtenant *t = e->ring[p]; t != NULL; t = t->next) {
            for (const struct xentry *x = t->head; x != NULL; x = x->next)
                n++;
        }
    }
    return n;
}

/* Waiting entries must stay ours: another process would otherwise take
 * them over after queue.claim_idle_ms (XAUTOCLAIM) and expand them too.
 * As the worker does for the jobs in its hands: every claim_idle_ms / 8,
 * those not renewed for claim_idle_ms / 4. */
void kn__expand_fair_keep(struct kn_expander *e)
{
    int64_t now = kn_mono_ms(), idle = e->d->cfg->claim_idle_ms / 4;
    if (now - e->swept_ms < idle / 2)
        return;
    e->swept_ms = now;
    for (int p = 0; p < 2; p++) {
        for (struct xtenant *t = e->ring[p]; t != NULL; t = t->next) {
            for (struct xentry *x = t->head; x != NULL; x = x->next) {
                if (now - x->kept_ms < idle)
                    continue;
                x->kept_ms = now;
                kn_queue_keep(e->d->cmd, e->stream, e->d->consumer, x->id);
            }
        }
    }
    for (struct xentry *x = e->queue; x != NULL; x = x->next) {
        if (now - x->kept_ms >= idle) {
            x->kept_ms = now;
            kn_queue_keep(e->d->cmd, e->stream, e->d->consumer, x->id);
        }
    }
}

void kn__expand_fair_clear(struct kn_expander *e)
{
    for (int p = 0; p < 2; p++) {
        while (e->ring[p] != NULL) {
            struct xtenant *t = e->ring[p];
            e->ring[p] = t->next;
            tenant_free(t);
        }
    }
}

int64_t kn__expand_depth_peek(const struct kn_expander *e, int i)
{
    int64_t limit =
        (int64_t)(e->qs[i].rate * (double)e->d->cfg->expand_ahead_ms);
    if (limit < KN_EXPAND_MIN_AHEAD)
        limit = KN_EXPAND_MIN_AHEAD;
    if (limit > e->d->cfg->max_depth)
        limit = e->d->cfg->max_depth;
    return limit;
}

int64_t kn__expand_depth_limit(struct kn_expander *e, int i, int64_t len)
{
    struct xstream *s = &e->qs[i];
    int64_t now = kn_mono_ms();
    if (s->at_ms == 0) {
        s->at_ms = now; /* first look */
        s->len = len;
        s->mine_then = s->mine;
    } else if (now - s->at_ms >= 100) {
        /* What left the stream since the last look, smoothed over about a
         * second (a stream idle for long starts again from its new
         * samples). */
        double drained = (double)(s->len + (s->mine - s->mine_then) - len);
        double r = drained > 0 ? drained / (double)(now - s->at_ms) : 0;
        double w = (double)(now - s->at_ms) / 1000.0;
        if (w > 1 || s->rate <= 0)
            w = 1; /* the first sample is the rate: no slow climb from 0 */
        s->rate = s->rate * (1 - w) + r * w;
        s->at_ms = now;
        s->len = len;
        s->mine_then = s->mine;
    }
    return kn__expand_depth_peek(e, i);
}
