/*
 * expand.h - the expander's insides, shared by its files: expand.c (the
 * broadcasts stream: entries, failures, finishing), expand_raw.c (raw
 * entries XADDed by a producer), expand_audience.c (reading a broadcast,
 * scheduling it, resolving its audience) and expand_page.c (a page of the
 * audience into delivery jobs, paused while a queue is too deep).  Not a
 * public API: names are kn__ (internal, several files); the daemon sees
 * struct kn_expander only through daemon.h.
 */
#ifndef KN_DISPATCHER_EXPAND_H
#define KN_DISPATCHER_EXPAND_H

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "common/argv.h"
#include "dispatcher/daemon.h"
#include "queue/scripts.h"

/*
 * An inline audience entry of the simplest shape, read without building
 * a JSON tree (the expander's largest cost at 200,000 recipients): a
 * compact object of printable-ASCII strings without escapes, of these
 * keys only (model/directory.h: no push tokens, no choices, no
 * guardians).  The values point into buf.  buf NULL: not read so (the
 * entry's rj, or nothing).  Anything else goes through jansson as before.
 */
struct kn__flat {
    char *buf;
    const char *id, *nm, *e, *ei, *l, *li;
};

/* Read s[0..n) as a struct kn__flat: 0, or -1 (f untouched) if it is not
 * of that shape. */
int kn__flat_read(struct kn__flat *f, const char *s, size_t n);

/* The same record as the JSON tree jansson reads from it. */
json_t *kn__flat_json(const struct kn__flat *f);

/* What an entry keeps of its broadcast between two of its turns
 * (expand_fair.c): the routing fields read by kn__expand_on_meta and the
 * checkpoint of its expansion. */
/* The broadcast's translations' languages ("en,pt", the field "langs" of
 * bc:<id>; "" none): at most KN_TRANSLATIONS_MAX tags of 15 bytes. */
#define KN_EXPAND_LANGS 136

struct xbc {
    char langs[KN_EXPAND_LANGS];
    char *tenant;
    int urgent, preferred, ack;
    int emergency; /* of an emergency category (resolve.lua "emg") */
    char *category;
    enum kn_channel chans[KN_CH__COUNT];
    size_t nchans;
    int64_t expires_ms;
    int64_t aud_n, page;
    int resolving; /* its audience is being resolved in steps */
};

struct xentry {
    char *id;  /* stream entry id */
    char *bc;  /* {id}: broadcast id */
    char *raw; /* {job}: raw JSON */
    size_t rawlen;
    int fails;        /* failures counted (Redis keeps the shared count) */
    int64_t due_ms;   /* set aside after a failure: not before (monotonic) */
    int64_t kept_ms;  /* our claim on it last renewed (monotonic) */
    struct xbc saved; /* its broadcast, while it waits for its turn */
    struct xentry *next;
};

/* A tenant with broadcasts waiting for their turn (expand_fair.c). */
struct xtenant {
    char *name;
    int64_t deficit;            /* recipients it may still expand (DRR) */
    int in_turn;                /* its quantum has been given for this round */
    struct xentry *head, *tail; /* its broadcasts, in arrival order */
    struct xtenant *next;
};

/* One job stream as the expander sees it: the entries it added (at most:
 * commit_page skips an address already queued), what the stream held at
 * the last look and how many it had added by then, when, and how fast the
 * stream drains (jobs per ms). */
struct xstream {
    int64_t mine, pending; /* added by committed pages / the page in work */
    int64_t len, mine_then, at_ms;
    double rate;
};

/* The keys a step touches with the type kairan keeps in each, so that a
 * failure can name the one that holds the wrong type. */
#define STEP_KEYS 24

/* Audience ids the resolve script writes in one call (resolve.lua), in
 * dispatcher.expand_page: a larger directory audience takes several calls,
 * one a turn, so that Redis answers others between them (one call of
 * 1,000,000 ids held it 1.2-3 s) and other tenants' pages go on. */
#define KN_RESOLVE_PAGES 10

struct kn_expander {
    struct kn_daemon *d;
    struct kn_redis *blk;
    char *stream;
    int started, closed, reading;
    int64_t read_after_ms; /* a read failed: not again before (monotonic) */
    struct xentry *queue, *cur;
    struct xentry *deferred; /* failed entries, by due time */
    uv_timer_t timer;        /* pause (depth), retry after errors */
    void (*timer_step)(struct kn_expander *);

    /* broadcasts being expanded, waiting for their turn: per priority
     * (0 urgent, 1 normal), a round of tenants (expand_fair.c) */
    struct xtenant *ring[2];
    int deep_streak;  /* turns in a row that found their stream full */
    int64_t swept_ms; /* claims of the waiting entries last renewed */
    struct xstream qs[KN_QUEUE_STREAMS];
    /* the streams' lengths as the last page's commit returned them, and
     * when (fresh: not used yet; expand_page.c) */
    int64_t clen[KN_QUEUE_STREAMS], clen_ms;
    int clen_fresh;
    /* pages whose commit was sent and not answered yet (at most 2: the
     * next page's commit is sent before the last one's answer while one
     * broadcast expands alone), their jobs per stream, and the commits'
     * generation (an answer of an older one is ignored: expand_page.c) */
    int inflight;
    int64_t inflight_jobs[KN_QUEUE_STREAMS];
    uint64_t cgen;

    /* the broadcast being expanded (ack: 1, or 2 when it escalates to the
     * next guardian: the first wave reaches each child's first guardian) */
    char langs[KN_EXPAND_LANGS];
    char *tenant;
    int urgent, preferred, ack;
    int emergency;  /* of an emergency category: opt-outs do not apply */
    char *category; /* the broadcast's category (guardians' opt-outs) */
    enum kn_channel chans[KN_CH__COUNT];
    size_t nchans;
    int64_t expires_ms;
    int64_t aud_n, page;
    /* its directory audience is being resolved in steps (resolve.lua): a
     * turn makes the next step instead of a page */
    int resolving;
    int64_t page_cost; /* recipients of the page being expanded */
    /* the page being built */
    json_t **rj; /* recipient JSON per audience entry (NULL: skipped) */
    char **rid;
    size_t nrj;
    /* per entry, NULL if the page has none: an inline entry read without
     * jansson (struct kn__flat; rj[i] is NULL then) */
    struct kn__flat *flat;
    /* per entry: 1 if inline ("i:"), and the entry being expanded's:
     * its jobs are marked KN_JOB_INLINE */
    char *inl;
    int inline_now;
    struct xpage *ahead; /* the next pages, read ahead (expand_read.c) */

    /* the step running on the current entry, for a failure's reason */
    const char *step;
    struct kn_argv step_keys;
    const char *step_want[STEP_KEYS];
    char *fail_err; /* the failure being counted: Redis' error text */
};

/* ---- expand_audience.c ---- */

/* The next step of a resolution in steps (e->resolving), in its turn. */
void kn__expand_resolve_step(struct kn_expander *e);

/* ---- expand.c ---- */

void kn__expand_xentry_free(struct xentry *x);
/* Forget the page being built / the broadcast being expanded. */
void kn__expand_page_clear(struct kn_expander *e);
void kn__expand_bc_clear(struct kn_expander *e);

/* A new step on the current entry: what it does, for the log and the
 * reason. */
void kn__expand_step(struct kn_expander *e, const char *what);
/* A key the step touches (taken), and the types kairan keeps there. */
void kn__expand_step_key(struct kn_expander *e, char *key, const char *want);
/* The keys the submit script touches (a raw entry stored). */
void kn__expand_submit_keys(struct kn_expander *e, const char *id,
                            const char *tenant);

/* Redis' error text of a reply (NULL for none or a reply of no error). */
const char *kn__expand_rep_error(const redisReply *rep);

/* The current step failed (rep: Redis' answer, or NULL): the entry is set
 * aside or counted and parked; the expander goes on. */
void kn__expand_failed(struct kn_expander *e, const redisReply *rep);

/* Give up on the current entry: its broadcast becomes `rejected` with the
 * reason naming field (or the DLQ gets a raw entry, masked). */
void kn__expand_park(struct kn_expander *e, const char *reason,
                     const char *field);

/* The entry is handled: XACK + XDEL together, then the next one. */
void kn__expand_ack_del(struct kn_expander *e);

/* Go on: the current entry again, an entry due or new, or the next turn
 * (expand_fair.c); else read the stream. */
void kn__expand_resume(struct kn_expander *e);

/* Run step(e) after ms (one timer: replaces a step waiting). */
void kn__expand_later(struct kn_expander *e, void (*step)(struct kn_expander *),
                      int64_t ms);

/* ---- expand_raw.c ---- */

/* A producer XADDed the JSON itself: validate it, store it sealed (or
 * rejected, masked) and delete the plaintext entry. */
void kn__expand_raw(struct kn_expander *e);

/* ---- expand_audience.c ---- */

/* The reply of HGETALL bc:<id> for the current entry: skip it, schedule
 * it, or resolve its audience and start paging. */
void kn__expand_on_meta(struct kn_redis *r, redisReply *rep, void *arg);

/* Read the broadcasts stream if no read is on its way (expand.c): while
 * a pipeline's turn goes on, nothing else would (a lost read, a failed
 * one waited out). */
void kn__expand_read_more(struct kn_expander *e);
/* Forget the pages read ahead, if any (expand_read.c). */
void kn__expand_ahead_drop(struct kn_expander *e);
/* Abandon the page commits on their way: their answers are ignored (the
 * entry failed, is done, or leaves the expander; expand_page.c). */
void kn__expand_commits_abandon(struct kn_expander *e);

/* ---- expand_fair.c ---- */

/* The current entry's broadcast is resolved: it joins its tenant's
 * broadcasts waiting for their turn, and the expander goes on. */
void kn__expand_admitted(struct kn_expander *e);
/* A page of the current entry is committed (cost: its recipients): the
 * entry goes back to the head of its tenant's line, and the next turn
 * (perhaps its own) starts. */
void kn__expand_turn_over(struct kn_expander *e, int64_t cost);
/* The current entry's streams are full: its tenant's turn ends without a
 * page; after a whole round of full streams the expander waits a little. */
void kn__expand_blocked(struct kn_expander *e);
/* Start the next turn: the next broadcast by priority and DRR, restored
 * into the expander.  Returns 0 when no broadcast waits. */
int kn__expand_fair_next(struct kn_expander *e);
/* 1 if entry id waits for its turn here. */
int kn__expand_fair_has(const struct kn_expander *e, const char *id);
/* Entries waiting for a turn (for the cap on entries in hand). */
size_t kn__expand_fair_count(const struct kn_expander *e);
/* Renew our claim on the waiting entries (every claim_idle_ms / 8, those
 * not renewed for claim_idle_ms / 4). */
void kn__expand_fair_keep(struct kn_expander *e);
/* Forget every waiting entry (they stay pending in Redis). */
void kn__expand_fair_clear(struct kn_expander *e);
/* How deep stream i may be before expansion waits: about
 * queue.expand_ahead_ms of its measured drain rate, at least
 * KN_EXPAND_MIN_AHEAD jobs, at most queue.max_depth.  The sample (its
 * XLEN) updates the drain rate: what left it is what it held, plus what
 * this expander added since, less what it holds now (another process'
 * expander adding to it too makes the rate look lower: the stream only
 * gets shallower). */
int64_t kn__expand_depth_limit(struct kn_expander *e, int i, int64_t len);
/* The same limit from the drain rate measured so far (no sample). */
int64_t kn__expand_depth_peek(const struct kn_expander *e, int i);
/* The current entry's tenant spends cost of its quantum without its turn
 * ending (a page committed while the next one's commit is on its way). */
void kn__expand_fair_charge(struct kn_expander *e, int64_t cost);

/* The index of the job stream of channel ch at the current broadcast's
 * priority (scripts.h order: email, line, push; urgent, normal). */
static inline int kn__expand_stream(const struct kn_expander *e,
                                    enum kn_channel ch)
{
    return (int)ch * 2 + (e->urgent ? 0 : 1);
}

/* ---- expand_page.c ---- */

/* Next page of the audience, or the end of the expansion. */
void kn__expand_page(struct kn_expander *e);
/* The expansion is over (or the broadcast cancelled): record it, ack. */
void kn__expand_done(struct kn_expander *e);
/* The page in e->rj..: build its jobs and send its commit (e->page moves
 * on to the next page at once). */
void kn__expand_commit_page(struct kn_expander *e);

/* ---- expand_read.c ---- */

/* Where page p starts in the audience list (the first page is short). */
long long kn__expand_page_start(const struct kn_expander *e, int64_t p);
/* Read the page the expander is on (or use the one read ahead), then
 * commit it. */
void kn__expand_range_page(struct kn_expander *e);
/* Commit the page read ahead before the last commit's answer, when one
 * broadcast expands alone and its streams have room. */
void kn__expand_pipeline_next(struct kn_expander *e);

#endif
