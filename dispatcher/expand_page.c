/*
 * expand_page.c - a broadcast's audience into delivery jobs, a page
 * (dispatcher.expand_page recipients) at a time: each recipient's record
 * read and opened, one job per (recipient, channel) or, for policy
 * preferred, one job with the next channels as its fallbacks; LINE ids
 * grouped into multicast jobs of up to 500.  Each page is committed by one
 * script together with its checkpoint, so a crash neither loses nor
 * duplicates jobs; while a target stream is deeper than queue.max_depth,
 * paging pauses.  Reading the pages is expand_read.c.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/argv.h"
#include "common/json.h"
#include "common/kn.h"
#include "common/log.h"
#include "config/config.h"
#include "dispatcher/daemon.h"
#include "dispatcher/expand.h"
#include "model/directory.h"
#include "model/guardian.h"
#include "model/job.h"
#include "queue/poison.h"
#include "queue/queue.h"
#include "queue/scripts.h"
#include "queue/keys.h"

static void on_expand_done(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct kn_expander *e = arg;
    if (rep->type == REDIS_REPLY_ERROR) {
        kn__expand_failed(e, rep);
        return;
    }
    kn_log(KN_LOG_INFO, "expand", "broadcast expanded", "bc", e->cur->bc,
           "status", rep->type == REDIS_REPLY_STRING ? rep->str : "", NULL);
    kn__expand_ack_del(e);
}

void kn__expand_done(struct kn_expander *e)
{
    struct kn_daemon *d = e->d;
    struct kn_argv a;
    kn__expand_commits_abandon(e);
    kn_argv_init(&a);
    kn_argv_take(&a, kn_key_bc(d->prefix, e->cur->bc, ""));
    kn_argv_take(&a, kn__key(d, "active"));
    kn_argv_add(&a, e->cur->bc);
    kn_argv_addi(&a, kn_now_ms());
    kn__expand_step(e, "ending the expansion");
    kn__expand_step_key(e, kn_key_bc(d->prefix, e->cur->bc, ""), "hash");
    kn__expand_step_key(e, kn__key(d, "active"), "zset");
    kn__eval_reliable(d, &kn_script_expand_done, on_expand_done, e, NULL, 2,
                      &a);
}

static void on_ignore(struct kn_redis *r, redisReply *rep, void *arg)
{
}

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A job's JSON (without its recipients for a group job). */
static json_t *job_json(struct kn_expander *e, enum kn_channel ch,
                        const char *key, const char *platform, json_t *fallback,
                        const char *lang)
{
    char q[32];
    json_t *j;
    snprintf(q, sizeof(q), "%s:%s", kn_channel_name(ch),
             e->urgent ? "urgent" : "normal");
    j = kn_job_new(e->cur->bc, q, key, kn_now_ms(), e->expires_ms, platform,
                   fallback);
    if (lang != NULL && lang[0] != '\0') /* a translation (issue 16) */
        json_object_set_new(j, KN_JOB_LANG, json_string(lang));
    return j;
}

/* Append one single-recipient job to the commit arguments (guardian: of
 * the child, named in an ack broadcast's link; < 0 none). */
static void add_job(struct kn_expander *e, struct kn_argv *a,
                    enum kn_channel ch, const char *rcpt, const char *sealed,
                    const char *bi, const char *platform, json_t *fallback,
                    int guardian, const char *lang)
{
    char key[96];
    json_t *j;
    snprintf(key, sizeof(key), "%s:%s", kn_channel_name(ch), bi);
    j = job_json(e, ch, key, platform, fallback, lang);
    kn_job_set_rcpt(j, rcpt, sealed, bi);
    if (e->ack && guardian >= 0)
        json_object_set_new(j, KN_JOB_GUARDIAN, json_integer(guardian));
    if (e->inline_now)
        json_object_set_new(j, KN_JOB_INLINE, json_true());
    kn_argv_addi(a, kn__expand_stream(e, ch));
    e->qs[kn__expand_stream(e, ch)].pending++;
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
    int inl;       /* inline: no my-page foot (KN_JOB_INLINE) */
    char lang[16]; /* the translation it reads; "": Japanese */
};

/* A LINE recipient for the page's multicast groups (lang "" Japanese). */
static void add_line_member(struct kn_expander *e, struct line_member *line,
                            size_t *nline, const char *rcpt, const char *sealed,
                            const char *bi, const char *lang)
{
    struct line_member *m = &line[(*nline)++];
    m->rcpt = rcpt;
    m->sealed = sealed;
    m->bi = bi;
    m->inl = e->inline_now;
    snprintf(m->lang, sizeof(m->lang), "%s", lang);
}

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
 * A guardian left out for its own choice (issue 16): each of its contacts
 * on the broadcast's channels goes to commit_page as an entry 300, field,
 * rcpt, recorded "o|<rcpt>|0|opted_out" in bc:r and counted in
 * n:<channel>:opted_out: no job, never silently (the recipients list and
 * the report show 配信停止 (本人の希望)).
 */
static void add_opted_out(struct kn_expander *e, struct kn_argv *a, json_t *r,
                          const char *rcpt, const enum kn_channel *order,
                          size_t n)
{
    for (size_t k = 0; k < n; k++) {
        enum kn_channel ch = order[k];
        json_t *t;
        size_t j;
        if (!has_contact(r, ch))
            continue;
        if (ch != KN_CH_PUSH) {
            kn_argv_add(a, "300");
            kn_argv_addf(a, "%s:%s", kn_channel_name(ch),
                         jstr(r, dir_index(ch)));
            kn_argv_add(a, rcpt);
            continue;
        }
        json_array_foreach(json_object_get(r, KN_DIR_PUSH), j, t)
        {
            if (!jstr(t, KN_DIR_PUSH_TOKEN) || !jstr(t, KN_DIR_PUSH_INDEX) ||
                json_is_true(json_object_get(t, KN_DIR_PUSH_DEAD)))
                continue;
            kn_argv_add(a, "300");
            kn_argv_addf(a, "push:%s", jstr(t, KN_DIR_PUSH_INDEX));
            kn_argv_add(a, rcpt);
        }
    }
}

/*
 * The jobs of one recipient.  policy all: one job per channel of the
 * broadcast the recipient can be reached on (push: per device token; LINE
 * recipients are collected into multicast groups by the caller).  policy
 * preferred: only the first such channel, in the recipient's own order if
 * the directory has one, with the other channels' contacts (sealed) kept
 * in the job as fallbacks for a permanent failure.  guardian: which of
 * the child's guardians r is (model/guardian.h).  Returns the number of
 * jobs (and LINE members) added.
 *
 * What the guardian chose ("pf", model/directory.h) applies thus:
 *  1. its own channel order pf.ch wins over the import's "ch";
 *  2. a broadcast neither urgent nor of an emergency category leaves out a
 *     guardian who opted out of its category (pf.ox) and the channels it
 *     stopped (pf.xc); left out entirely, it is recorded (add_opted_out)
 *     and *opted set;
 *  3. an emergency category ignores pf.ox and, when pf.xc stops every
 *     channel the guardian can be reached on, still uses the first of
 *     them;
 *  4. an urgent broadcast ignores both.
 */
static int recipient_jobs(struct kn_expander *e, struct kn_argv *a, json_t *r,
                          const char *rcpt, struct line_member *line,
                          size_t *nline, int guardian, int *opted)
{
    enum kn_channel order[KN_CH__COUNT];
    int use[KN_CH__COUNT];
    size_t n = 0, nuse = 0;
    int added = 0, first = -1, choose = !e->urgent;
    json_t *pref = kn_dir_order(r), *v, *fb;
    size_t i;
    char lang[16] = ""; /* the guardian's language, if translated */

    if (json_is_true(json_object_get(r, KN_DIR_OFF)))
        return 0; /* a deactivated guardian (model/directory.h) */
    if (e->langs[0] != '\0')
        kn_translation_pick(e->langs, kn_dir_lang(r), lang, sizeof(lang));

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
    /* The guardian's choices (2-4 above).  Without a "pf" nothing here
     * costs more than one failed member look-up. */
    if (choose && json_object_get(r, KN_DIR_PREFS) == NULL)
        choose = 0;
    if (choose && !e->emergency && kn_dir_opted_out(r, e->category)) {
        add_opted_out(e, a, r, rcpt, order, n);
        *opted = 1;
        return 0;
    }
    for (size_t k = 0; k < n; k++) {
        use[k] = has_contact(r, order[k]) &&
                 !(choose && kn_dir_stopped(r, kn_channel_name(order[k])));
        nuse += (size_t)use[k];
    }
    if (nuse == 0 && choose) {
        for (size_t k = 0; k < n && e->emergency && nuse == 0; k++) {
            if (has_contact(r, order[k]))
                use[k] = 1, nuse = 1; /* 3: the first channel it has */
        }
        if (nuse == 0) {
            add_opted_out(e, a, r, rcpt, order, n);
            *opted = 1;
            return 0;
        }
    }
    fb = json_array();
    if (e->preferred) {
        for (size_t k = 0; k < n; k++) {
            if (!use[k])
                continue;
            if (first < 0)
                first = (int)order[k];
            else
                add_fallbacks(fb, r, order[k]);
        }
    }
    for (size_t k = 0; k < n; k++) {
        enum kn_channel ch = order[k];
        if (!use[k] || (e->preferred && (int)ch != first))
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
                        jstr(t, KN_DIR_PUSH_PLATFORM), fb, guardian, lang);
                added++;
            }
        } else if (ch == KN_CH_LINE && !e->preferred && !e->ack) {
            /* (An ack broadcast gives each recipient a personal link, so
             * its LINE messages cannot be one multicast.) */
            add_line_member(e, line, nline, rcpt, jstr(r, KN_DIR_LINE),
                            jstr(r, KN_DIR_LINE_INDEX), lang);
            added++;
        } else {
            add_job(e, a, ch, rcpt, jstr(r, dir_addr(ch)),
                    jstr(r, dir_index(ch)), NULL, fb, guardian, lang);
            added++;
        }
    }
    json_decref(fb);
    return added;
}

/*
 * The jobs of an inline recipient read flat (struct kn__flat): what
 * recipient_jobs does with a record that has no channel order, no
 * choices, no push tokens and no dead LINE id, without its JSON tree.
 * Its language is always Japanese (no "pf"), so a translated broadcast
 * sends it the original; policy preferred keeps the other channels'
 * contacts as fallbacks; guardian 0 (the recipient itself).
 * test_expand_flat compares the two on every shape.
 */
static int flat_jobs(struct kn_expander *e, struct kn_argv *a,
                     const struct kn__flat *r, const char *rcpt,
                     struct line_member *line, size_t *nline)
{
    enum kn_channel order[KN_CH__COUNT];
    const char *addr[KN_CH__COUNT], *idx[KN_CH__COUNT];
    size_t n = 0;
    int added = 0, first = -1;
    json_t *fb = NULL;

    for (size_t k = 0; k < e->nchans; k++) {
        int dup = 0;
        for (size_t m = 0; m < n; m++)
            dup |= order[m] == e->chans[k];
        if (dup)
            continue;
        order[n] = e->chans[k];
        addr[n] = order[n] == KN_CH_EMAIL  ? r->e
                  : order[n] == KN_CH_LINE ? r->l
                                           : NULL;
        idx[n] = order[n] == KN_CH_EMAIL  ? r->ei
                 : order[n] == KN_CH_LINE ? r->li
                                          : NULL;
        if (addr[n] == NULL || idx[n] == NULL)
            addr[n] = idx[n] = NULL; /* no contact on it */
        n++;
    }
    if (e->preferred) {
        for (size_t k = 0; k < n; k++) {
            if (addr[k] == NULL)
                continue;
            if (first < 0) {
                first = (int)order[k];
                continue;
            }
            if (fb == NULL)
                fb = json_array();
            json_array_append_new(fb, kn_job_fallback(kn_channel_name(order[k]),
                                                      NULL, addr[k], idx[k]));
        }
    }
    for (size_t k = 0; k < n; k++) {
        enum kn_channel ch = order[k];
        if (addr[k] == NULL || (e->preferred && (int)ch != first))
            continue;
        if (ch == KN_CH_LINE && !e->preferred && !e->ack) {
            add_line_member(e, line, nline, rcpt, addr[k], idx[k], "");
        } else {
            add_job(e, a, ch, rcpt, addr[k], idx[k], NULL, fb, 0, "");
        }
        added++;
    }
    json_decref(fb);
    return added;
}

/* "<a><b>|<c>" (c NULL: "<a><b>"), without printf: 500 a job. */
static char *join3(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = c != NULL ? strlen(c) : 0;
    char *s = kn_xmalloc(la + lb + lc + 2);
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    if (c != NULL) {
        s[la + lb] = '|';
        memcpy(s + la + lb + 1, c, lc);
        lc++;
    }
    s[la + lb + lc] = '\0';
    return s;
}

/* A group's members as commit_page reads them: the cnt fields, then the
 * cnt records to write ("q|<rcpt>", or "q|<rcpt>|<gid>"). */
static void add_group_members(struct kn_argv *a, const struct line_member *m,
                              size_t cnt, const char *gid)
{
    for (size_t k = 0; k < cnt; k++)
        kn_argv_take(a, join3("line:", m[k].bi, NULL));
    for (size_t k = 0; k < cnt; k++)
        kn_argv_take(a, join3("q|", m[k].rcpt, gid));
}

/* A group entry of commit_page whose job the script builds: base job
 * json j, the members' fields and records, then their sealed addresses
 * and their indexes. */
static void add_line_group_parts(struct kn_expander *e, struct kn_argv *a,
                                 json_t *j, const struct line_member *m,
                                 size_t cnt)
{
    kn_argv_addi(a, 100 + kn__expand_stream(e, KN_CH_LINE));
    e->qs[kn__expand_stream(e, KN_CH_LINE)].pending++;
    kn_argv_addi(a, (int64_t)cnt);
    kn_argv_take(a, json_dumps(j, JSON_COMPACT));
    kn_argv_add(a, "");
    add_group_members(a, m, cnt, NULL);
    for (size_t k = 0; k < cnt; k++)
        kn_argv_add(a, m[k].sealed);
    for (size_t k = 0; k < cnt; k++)
        kn_argv_add(a, m[k].bi);
}

/* Members by language, then by index (a stable order: issue 16). */
static int by_lang(const void *x, const void *y)
{
    const struct line_member *a = x, *b = y;
    int c = strcmp(a->lang, b->lang);
    return c != 0 ? c : strcmp(a->bi, b->bi);
}

/*
 * LINE recipients of the page as multicast jobs of at most 500 user ids
 * (LINE's limit), one request each: whole group entries of commit_page
 * (the job's JSON with every member, built here, so that the script
 * enqueues it as is unless it skips a member: Redis' one core is the
 * scarce one).  One multicast carries one text: members who read a
 * translation are grouped by language first (langs: the broadcast has
 * translations).
 */
static void add_line_groups(struct kn_expander *e, struct kn_argv *a,
                            struct line_member *line, size_t nline)
{
    if (e->langs[0] != '\0')
        qsort(line, nline, sizeof(*line), by_lang);
    for (size_t off = 0, g = 0, cnt; off < nline; off += cnt, g++) {
        char key[64], q[32], *js;
        struct kn_job_member m[500];
        int inl = 1;
        cnt = nline - off < 500 ? nline - off : 500;
        for (size_t k = 1; k < cnt; k++) { /* one language a job */
            if (strcmp(line[off + k].lang, line[off].lang) != 0)
                cnt = k;
        }
        if (cnt == 1) {
            e->inline_now = line[off].inl;
            add_job(e, a, KN_CH_LINE, line[off].rcpt, line[off].sealed,
                    line[off].bi, NULL, NULL, -1, line[off].lang);
            e->inline_now = 0;
            continue;
        }
        /* The key names the page and the group: stable across retries,
         * so the X-Line-Retry-Key derived from it is too. */
        snprintf(key, sizeof(key), "line:p%lld.%zu", (long long)e->page, g);
        snprintf(q, sizeof(q), "%s:%s", kn_channel_name(KN_CH_LINE),
                 e->urgent ? "urgent" : "normal");
        /* Written straight into one buffer (model/job.c), not a JSON tree
         * of 1,500 strings dumped again. */
        for (size_t k = 0; k < cnt; k++) {
            m[k].rcpt = line[off + k].rcpt;
            m[k].sealed = line[off + k].sealed;
            m[k].bi = line[off + k].bi;
            inl = inl && line[off + k].inl;
        }
        /* every member inline: no my-page foot (else the generic one) */
        /* "gr": commit_page records its members as "q|<rcpt>|<key>", so
         * that a delivery is recorded once (docs/multicast-record.md). */
        js = kn_job_group_json(e->cur->bc, q, key, kn_now_ms(), e->expires_ms,
                               line[off].lang, inl, 1, m, cnt);
        if (js == NULL) {
            /* A value that is not UTF-8 (JSON cannot carry it): the
             * script builds the job itself, as it always could. */
            json_t *j =
                job_json(e, KN_CH_LINE, key, NULL, NULL, line[off].lang);
            if (inl)
                json_object_set_new(j, KN_JOB_INLINE, json_true());
            add_line_group_parts(e, a, j, line + off, cnt);
            json_decref(j);
            continue;
        }
        kn_argv_addi(a, 200 + kn__expand_stream(e, KN_CH_LINE));
        e->qs[kn__expand_stream(e, KN_CH_LINE)].pending++;
        kn_argv_addi(a, (int64_t)cnt);
        kn_argv_take(a, js);
        kn_argv_add(a, key); /* the group the members' records name */
        add_group_members(a, line + off, cnt, key);
    }
}

/*
 * A page's commit on its way: what its answer settles.  While one
 * broadcast expands alone, the next page's commit is sent before this
 * one's answer (pipeline_next), so that Redis runs one while kairand
 * builds the other instead of each waiting for the other; the script's
 * checkpoint (xc) keeps them in order: a commit that arrives before the
 * page before it commits nothing ({-2}).  Anything that ends the entry's
 * turn otherwise (a failure, a cancel, done) abandons the commits on
 * their way: their answers are ignored (gen), and the entry, read again
 * from its checkpoint, goes on where Redis says.
 */
struct xcommit {
    struct kn_expander *e;
    uint64_t gen;
    int64_t cost;
    int64_t jobs[KN_QUEUE_STREAMS];
};

void kn__expand_commits_abandon(struct kn_expander *e)
{
    if (e->inflight == 0)
        return;
    e->cgen++;
    e->inflight = 0;
    memset(e->inflight_jobs, 0, sizeof(e->inflight_jobs));
}

static void commit_step(struct kn_expander *e);

static void on_committed(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct xcommit *x = arg;
    struct kn_expander *e = x->e;
    long long code;
    int64_t cost = x->cost;
    if (x->gen != e->cgen) {
        free(x); /* abandoned: the entry went on without it */
        return;
    }
    e->inflight--;
    for (int i = 0; i < KN_QUEUE_STREAMS; i++)
        e->inflight_jobs[i] -= x->jobs[i];
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 2 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER) {
        free(x);
        commit_step(e);
        kn__expand_failed(e, rep); /* abandons the commits on their way */
        return;
    }
    code = rep->element[0]->integer;
    if (code > 0) {
        for (int i = 0; i < KN_QUEUE_STREAMS; i++)
            e->qs[i].mine += x->jobs[i];
    }
    free(x);
    if (code == -2) {
        /* Out of order (a commit sent again after Redis came back): the
         * entry is read again from its checkpoint, not counted a
         * failure. */
        kn__expand_failed(e, NULL);
        return;
    }
    if (code < 0) {
        kn_log(KN_LOG_INFO, "expand", "broadcast cancelled during expansion",
               "bc", e->cur->bc, NULL);
        kn__expand_done(e); /* abandons the commits on their way */
        return;
    }
    if (rep->elements == 2 + KN_QUEUE_STREAMS) {
        for (int i = 0; i < KN_QUEUE_STREAMS; i++)
            e->clen[i] = rep->element[2 + i]->integer;
        e->clen_ms = kn_mono_ms();
        e->clen_fresh = 1;
    }
    /* Keep our claim on the entry fresh, so nobody takes over a long but
     * healthy expansion (XCLAIM with min-idle 0 resets its idle time). */
    if (kn_mono_ms() - e->cur->kept_ms > 1000) {
        e->cur->kept_ms = kn_mono_ms();
        kn_queue_keep(e->d->cmd, e->stream, e->d->consumer, e->cur->id);
    }
    if (e->inflight > 0) {
        /* The next page's commit is on its way: the turn goes on (and
         * the broadcasts stream is read meanwhile, or nothing would end
         * it). */
        kn__expand_fair_charge(e, cost);
        kn__expand_read_more(e);
        kn__expand_pipeline_next(e);
        return;
    }
    if (kn__expand_page_start(e, e->page) >= e->aud_n)
        kn__expand_done(e);
    else
        kn__expand_turn_over(e, cost); /* the next turn */
}

/*
 * "escalate_to": "next_guardian" (e->ack 2): the first wave goes to the
 * child's first guardian reachable on the broadcast's channels only
 * (model/guardian.h); escalate.c sends the next ones.  Which one is noted
 * in bc:<id>:gs before the page is committed (HSETNX on the same
 * connection: a page committed again, or escalated since, keeps what it
 * has; if this write is lost, escalate.c fills it in the same way).
 */
static void first_guardian(struct kn_expander *e, struct kn_argv *a, size_t i,
                           struct line_member *line, size_t *nline, int *added,
                           int *opted)
{
    unsigned chans = 0;
    int f;
    for (size_t k = 0; k < e->nchans; k++)
        chans |= 1u << e->chans[k];
    f = kn_guardian_next(e->rj[i], 0, chans);
    if (f < 0)
        return;
    *added = recipient_jobs(e, a, kn_guardian_at(e->rj[i], (size_t)f),
                            e->rid[i], line, nline, f, opted);
    if (*added > 0) {
        char *gs = kn_key_bc(e->d->prefix, e->cur->bc, ":gs");
        char v[48];
        snprintf(v, sizeof(v), "%d@%lld", f, (long long)kn_now_ms());
        kn_redis_cmd(e->d->cmd, on_ignore, NULL, "HSETNX %s %s %s", gs,
                     e->rid[i], v);
        free(gs);
    }
}

/* The step a page's commit is, with the keys it touches and their types
 * (a failure's reason names the one of the wrong type): set when the
 * commit is built, and again when it fails (another step may have begun
 * since it was sent). */
static void commit_step(struct kn_expander *e)
{
    struct kn_daemon *d = e->d;
    kn__expand_step(e, "enqueueing the broadcast's jobs");
    kn__expand_step_key(e, kn_key_bc(d->prefix, e->cur->bc, ""), "hash");
    kn__expand_step_key(e, kn_key_bc(d->prefix, e->cur->bc, ":r"), "hash");
    for (int i = 0; i < KN_QUEUE_STREAMS; i++)
        kn__expand_step_key(e, kn__key(d, "q:%s", kn_queue_stream_name(i)),
                            "stream");
    for (size_t i = 0; i < e->nchans; i++)
        kn__expand_step_key(
            e, kn__key(d, "dead:%s", kn_channel_name(e->chans[i])), "set");
    kn__expand_step_key(e, kn_key_bc(d->prefix, e->cur->bc, ":m"), "set");
    kn__expand_step_key(e, kn_key_bc(d->prefix, e->cur->bc, ":fam"), "hash");
}

/* Every recipient of the page is known: build and commit its jobs. */
void kn__expand_commit_page(struct kn_expander *e)
{
    struct kn_daemon *d = e->d;
    struct kn_argv a;
    struct line_member *line;
    struct xcommit *x;
    size_t nline = 0;
    int unreachable = 0, unreachable_at;
    kn_argv_init(&a);
    kn_argv_take(&a, kn_key_bc(d->prefix, e->cur->bc, ""));
    kn_argv_take(&a, kn_key_bc(d->prefix, e->cur->bc, ":r"));
    for (int i = 0; i < KN_QUEUE_STREAMS; i++)
        kn_argv_take(&a, kn__key(d, "q:%s", kn_queue_stream_name(i)));
    kn_argv_take(&a, kn_key_bc(d->prefix, e->cur->bc, ":m"));
    kn_argv_take(&a, kn_key_bc(d->prefix, e->cur->bc, ":fam"));
    commit_step(e);
    kn_argv_addi(&a, e->page);
    unreachable_at = a.n;
    kn_argv_add(&a, "0"); /* unreachable count, set below */
    kn_argv_add(&a, d->prefix);
    {
        size_t nguard = e->nrj; /* LINE members: one per guardian at most */
        for (size_t i = 0; i < e->nrj; i++)
            nguard +=
                json_array_size(json_object_get(e->rj[i], KN_DIR_GUARDIANS));
        line = kn_xcalloc(nguard + 1, sizeof(*line));
    }
    for (size_t i = 0; i < e->nrj; i++) {
        json_t *g;
        size_t k, gi;
        int added = 0, opted = 0;
        const struct kn__flat *fl =
            e->flat != NULL && e->flat[i].buf != NULL ? &e->flat[i] : NULL;
        if (e->rj[i] == NULL && fl == NULL) {
            unreachable++;
            continue;
        }
        e->inline_now = e->inl[i];
        if (fl != NULL && e->ack != 2) {
            if (flat_jobs(e, &a, fl, e->rid[i], line, &nline) == 0)
                unreachable++;
            continue;
        }
        if (fl != NULL)
            e->rj[i] = kn__flat_json(fl); /* the first guardian's own way */
        if (e->ack == 2) {
            first_guardian(e, &a, i, line, &nline, &added, &opted);
            if (added == 0 && !opted)
                unreachable++;
            continue;
        }
        added =
            recipient_jobs(e, &a, e->rj[i], e->rid[i], line, &nline, 0, &opted);
        /* Every guardian of the child gets the child's message (jobs
         * of one address are made once per broadcast: commit_page). */
        k = 0;
        json_array_foreach(json_object_get(e->rj[i], KN_DIR_GUARDIANS), gi, g)
        {
            if (json_is_object(g))
                added += recipient_jobs(e, &a, g, e->rid[i], line, &nline,
                                        (int)++k, &opted);
        }
        /* A child none of whose guardians wants this broadcast is not
         * unreachable: its guardians' rows say 配信停止 (本人の希望). */
        if (added == 0 && !opted)
            unreachable++;
    }
    e->inline_now = 0;
    add_line_groups(e, &a, line, nline);
    free(line);
    free(a.v[unreachable_at]);
    a.v[unreachable_at] = kn_xasprintf("%d", unreachable);
    a.len[unreachable_at] = strlen(a.v[unreachable_at]);
    x = kn_xcalloc(1, sizeof(*x));
    x->e = e;
    x->gen = e->cgen;
    x->cost = e->page_cost;
    for (int i = 0; i < KN_QUEUE_STREAMS; i++) {
        x->jobs[i] = e->qs[i].pending;
        e->inflight_jobs[i] += e->qs[i].pending;
        e->qs[i].pending = 0;
    }
    e->inflight++;
    e->page++; /* the next page is read and built while this one commits */
    kn__expand_page_clear(e);
    kn__eval_reliable(d, &kn_script_commit_page, on_committed, x, free,
                      4 + KN_QUEUE_STREAMS, &a);
}

struct depth {
    struct kn_expander *e;
    int left, deep;
    int si[KN_CH__COUNT], done; /* stream index of each reply, in order */
    char *err;                  /* a stream that cannot be read: its error */
    int lost;
};

/*
 * One stream's XLEN against the limit (kn__expand_depth_limit: about
 * queue.expand_ahead_ms of its drain rate, never above queue.max_depth).
 */
static void on_depth(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct depth *dp = arg;
    struct kn_expander *e = dp->e;
    int si = dp->si[dp->done++];
    /* A stream that answers with an error is not "deep": waiting would
     * never end.  It is a failure of this entry (counted, parked). */
    if (rep == NULL)
        dp->lost = 1;
    else if (rep->type == REDIS_REPLY_ERROR && dp->err == NULL)
        dp->err = kn_xstrdup(rep->str);
    else if (rep->type == REDIS_REPLY_INTEGER) {
        e->clen[si] = rep->integer;
        e->clen_ms = kn_mono_ms();
        if (rep->integer > kn__expand_depth_limit(e, si, rep->integer))
            dp->deep = 1;
    }
    if (--dp->left > 0)
        return;
    if (dp->err != NULL || dp->lost) {
        redisReply fake;
        memset(&fake, 0, sizeof(fake));
        fake.type = REDIS_REPLY_ERROR;
        fake.str = dp->err;
        fake.len = dp->err ? strlen(dp->err) : 0;
        kn__expand_failed(e, dp->err ? &fake : NULL);
    } else if (dp->deep) {
        kn__expand_blocked(e); /* its turn ends; the workers catch up */
    } else {
        kn__expand_range_page(e);
    }
    free(dp->err);
    free(dp);
}

/*
 * The depth check on the lengths the last commit returned, when it
 * returned them just now (the next page of the same turn, usually): the
 * XLEN a page saved, a round trip behind every worker's command.  1 too
 * deep, 0 room, -1 not known (then XLEN).  Used once: stale lengths
 * would only ever be longer than the streams (workers drain them).
 */
static int depth_known(struct kn_expander *e)
{
    int deep = 0;
    if (!e->clen_fresh || kn_mono_ms() - e->clen_ms > 5) {
        e->clen_fresh = 0;
        return -1;
    }
    e->clen_fresh = 0;
    for (size_t i = 0; i < e->nchans; i++) {
        int si = kn__expand_stream(e, e->chans[i]);
        if (e->clen[si] < 0)
            return -1; /* not a stream: XLEN says why */
    }
    for (size_t i = 0; i < e->nchans; i++) {
        int si = kn__expand_stream(e, e->chans[i]);
        if (e->clen[si] > kn__expand_depth_limit(e, si, e->clen[si]))
            deep = 1;
    }
    return deep;
}

/* Next page, or done.  Waits while a target stream is too deep. */
void kn__expand_page(struct kn_expander *e)
{
    struct depth *dp;
    int deep;
    if (e->closed)
        return;
    if (e->d->stopping) {
        /* Leave the entry pending: whoever takes it resumes here. */
        kn__expand_xentry_free(e->cur);
        e->cur = NULL;
        kn__expand_bc_clear(e);
        return;
    }
    if (e->resolving) {
        kn__expand_resolve_step(e); /* its turn: a step, not a page */
        return;
    }
    if (kn__expand_page_start(e, e->page) >= e->aud_n) {
        kn__expand_done(e);
        return;
    }
    if ((deep = depth_known(e)) >= 0) {
        if (deep)
            kn__expand_blocked(e); /* its turn ends; the workers catch up */
        else
            kn__expand_range_page(e);
        return;
    }
    dp = kn_xcalloc(1, sizeof(*dp));
    dp->e = e;
    dp->left = (int)e->nchans;
    kn__expand_step(e, "measuring the queues it goes to");
    for (size_t i = 0; i < e->nchans; i++) {
        char *key = kn__key(e->d, "q:%s:%s", kn_channel_name(e->chans[i]),
                            e->urgent ? "urgent" : "normal");
        dp->si[i] = kn__expand_stream(e, e->chans[i]);
        kn__expand_step_key(e, kn_xstrdup(key), "stream");
        if (kn_redis_cmd(e->d->cmd, on_depth, dp, "XLEN %s", key) < 0)
            on_depth(e->d->cmd, NULL, dp);
        free(key);
    }
}
