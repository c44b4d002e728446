/*
 * roster_store.c - a checked class list written to Redis (roster.h
 * kn_roster_apply): each good row's storage form (the keyed hash that
 * decides "unchanged", the sealed contacts, the script's arguments), which
 * rows changed, the upsert in batches, and with replace the records the
 * file no longer has.  The checks are roster.c's; nothing here runs before
 * every row was checked.
 */
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/argv.h"
#include "common/kn.h"
#include "common/log.h"
#include "common/seal.h"
#include "model/broadcast.h"
#include "model/directory.h"
#include "queue/keys.h"
#include "queue/lua.h"
#include "queue/redis_uv.h"
#include "queue/roster.h"
#include "queue/roster_int.h"

/* ---- storage form ---- */

/* The keyed hash of the normalised row (what decides "unchanged"). */
static void row_hash(const struct kn_keyring *kr, struct rrow *r)
{
    size_t len = 16;
    char *s, *e; /* e: the end of s so far (strcat would be quadratic) */
    for (const struct rrow *g = r; g; g = g->next_guardian) {
        for (int c = 0; c < COL__COUNT; c++)
            len += strlen(g->v[c]) + 4;
    }
    s = kn_xmalloc(len);
    e = stpcpy(s, "kairan-row-v1");
    for (int c = 0; c < COL_ACTIVE; c++) {
        e = stpcpy(e, "\x1f");
        e = stpcpy(e, r->v[c]);
    }
    /* The class-list columns only when given: a row without them hashes
     * as it did before they existed (a re-import after the upgrade stays
     * a no-op). */
    for (int c = COL_ACTIVE + 1; c < COL__COUNT; c++) {
        if (r->v[c][0] != '\0') {
            char tag[4] = {'\x1e', (char)('a' + c), '=', '\0'};
            e = stpcpy(e, tag);
            e = stpcpy(e, r->v[c]);
        }
    }
    /* Each further guardian's own columns (a row without any hashes as
     * before). */
    for (const struct rrow *g = r->next_guardian; g; g = g->next_guardian) {
        static const int gcols[] = {COL_EMAIL, COL_LINE,     COL_FCM,
                                    COL_APNS,  COL_CHANNELS, COL_GUARDIAN,
                                    COL_PHONE};
        e = stpcpy(e, "\x1d");
        for (size_t k = 0; k < KN_ARRAY_SIZE(gcols); k++) {
            e = stpcpy(e, "\x1f");
            e = stpcpy(e, g->v[gcols[k]]);
        }
    }
    /*
     * Keyed (HMAC-SHA-256 under the blind-index key) rather than a bare
     * SHA-256: a plain hash of a row of personal data could be confirmed
     * by anyone who can guess the row.
     */
    kn_blind_index(kr, "row", s, r->hash);
    memset(s, 0, len);
    free(s);
}

/* The sealed value, or "" for an empty cell (the script then deletes the
 * field). */
static void seal_or_empty(const struct kn_keyring *kr, const char *purpose,
                          const char *v, struct kn_argv *a)
{
    if (v[0] != '\0')
        kn_argv_take(a, kn_seal(kr, purpose, v, strlen(v)));
    else
        kn_argv_add(a, "");
}

/* Append a row's NARGS script arguments (see upsert_script). */
/* A row's contacts (email, line, push, channels) sealed into the object
 * c, their blind indexes appended to bidx as "<channel>:<bi>". */
static void contacts_into(const struct kn_keyring *kr, const struct rrow *r,
                          json_t *c, struct kn_argv *bidx)
{
    char bi[33];
    if (r->v[COL_EMAIL][0]) {
        kn_dir_set_address(c, kr, "email", r->v[COL_EMAIL], bi);
        kn_argv_addf(bidx, "email:%s", bi);
    }
    if (r->v[COL_LINE][0]) {
        kn_dir_set_address(c, kr, "line", r->v[COL_LINE], bi);
        kn_argv_addf(bidx, "line:%s", bi);
    }
    if (r->v[COL_FCM][0] || r->v[COL_APNS][0]) /* "p" even if it stays [] */
        json_object_set_new(c, KN_DIR_PUSH, json_array());
    for (int col = COL_FCM; col <= COL_APNS; col++) {
        char **t;
        size_t n = kn__roster_split(r->v[col], ';', &t);
        for (size_t i = 0; i < n; i++) {
            kn_dir_add_push(c, kr, col == COL_FCM ? "fcm" : "apns", t[i], bi);
            kn_argv_addf(bidx, "push:%s", bi);
        }
        kn__roster_strv_free(t, n);
    }
    if (r->v[COL_CHANNELS][0]) {
        char **v;
        size_t n = kn__roster_split(r->v[COL_CHANNELS], ';', &v);
        json_object_set_new(c, KN_DIR_CHANNELS, json_array());
        for (size_t i = 0; i < n; i++)
            kn_dir_add_channel(c, v[i]);
        kn__roster_strv_free(v, n);
    }
}

static void row_args(const struct kn_keyring *kr, const struct rrow *r,
                     struct kn_argv *a)
{
    json_t *c = kn_dir_new(r->v[COL_ID]);
    struct kn_argv bidx;
    char *s, *bx, *e;
    size_t blen = 1;

    kn_argv_init(&bidx);
    contacts_into(kr, r, c, &bidx);
    /* The child's further guardians (model/directory.h "g"). */
    if (r->next_guardian != NULL) {
        json_t *gs = json_array();
        for (const struct rrow *g = r->next_guardian; g; g = g->next_guardian) {
            json_t *go = json_object();
            contacts_into(kr, g, go, &bidx);
            if (g->v[COL_GUARDIAN][0])
                kn_dir_set_name(go, kr, g->v[COL_GUARDIAN]);
            if (g->v[COL_PHONE][0]) {
                char *ph = kn_seal(kr, "phone", g->v[COL_PHONE],
                                   strlen(g->v[COL_PHONE]));
                json_object_set_new(go, KN_DIR_PHONE, json_string(ph));
                free(ph);
            }
            json_array_append_new(gs, go);
        }
        json_object_set_new(c, KN_DIR_GUARDIANS, gs);
    }
    s = json_dumps(c, JSON_COMPACT);
    json_decref(c);

    kn_argv_add(a, r->v[COL_ID]);
    kn_argv_add(a, r->hash);
    kn_argv_take(a, s);
    if (r->v[COL_NAME][0])
        kn_argv_take(
            a, kn_seal(kr, "name", r->v[COL_NAME], strlen(r->v[COL_NAME])));
    else
        kn_argv_add(a, "");
    kn_argv_add(a, r->v[COL_GRADE]);
    kn_argv_add(a, r->v[COL_CLASS]);
    kn_argv_add(a, r->v[COL_GROUPS]);
    for (int i = 0; i < bidx.n; i++)
        blen += bidx.len[i] + 1;
    bx = e = kn_xmalloc(blen);
    *e = '\0';
    for (int i = 0; i < bidx.n; i++) {
        if (i > 0)
            e = stpcpy(e, " ");
        e = stpcpy(e, bidx.v[i]);
    }
    kn_argv_take(a, bx);
    kn_argv_add(a, r->active < 0 ? "" : r->active ? "1" : "0");
    kn_argv_add(a, r->v[COL_NUMBER]);
    seal_or_empty(kr, "name", r->v[COL_KANA], a);
    seal_or_empty(kr, "name", r->v[COL_GUARDIAN], a);
    seal_or_empty(kr, "phone", r->v[COL_PHONE], a);
    kn_argv_free(&bidx);
}

/* ---- Redis (synchronous) ---- */

/* queue/lua/rcpt_upsert.lua and queue/lua/rcpt_delete.lua */
static const struct kn_redis_script upsert_script = {"rcpt_upsert",
                                                     kn_lua_rcpt_upsert, ""};
static const struct kn_redis_script delete_script = {"rcpt_delete",
                                                     kn_lua_rcpt_delete, ""};

/* What a failed call leaves: KN_ECLOSED, or KN_EREDIS for an error reply
 * (rep then freed). */
static int redis_failed(redisContext *c, redisReply *rep, const char *what,
                        char *err, size_t errlen)
{
    if (rep == NULL) {
        snprintf(err, errlen, "Redis connection lost: %s", c->errstr);
        return KN_ECLOSED;
    }
    snprintf(err, errlen, "Redis error in %s: %s", what, rep->str);
    freeReplyObject(rep);
    return KN_EREDIS;
}

/* EVAL s with no keys and the arguments a; *out the reply (caller frees). */
static int eval(redisContext *c, const struct kn_redis_script *s,
                struct kn_argv *a, redisReply **out, char *err, size_t errlen)
{
    struct kn_argv full;
    redisReply *r;
    kn_argv_init(&full);
    kn_argv_add(&full, "EVAL");
    kn_argv_add(&full, s->src);
    kn_argv_addi(&full, 0);
    kn_argv_extend(&full, a);
    r = redisCommandArgv(c, full.n, (const char **)full.v, full.len);
    kn_argv_free(&full);
    *out = NULL;
    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        return redis_failed(c, r, s->name, err, errlen);
    *out = r;
    return 0;
}

/* n commands in one round trip; rep[0..n) the replies (caller frees). */
static int pipeline(redisContext *c, struct kn_argv *cmds, size_t n,
                    redisReply **rep, char *err, size_t errlen)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++)
        redisAppendCommandArgv(c, cmds[i].n, (const char **)cmds[i].v,
                               cmds[i].len);
    for (size_t i = 0; i < n; i++) {
        void *r = NULL;
        if (rc == 0 && redisGetReply(c, &r) != REDIS_OK) {
            rc = redis_failed(c, NULL, "", err, errlen);
            r = NULL;
        }
        rep[i] = r;
    }
    return rc;
}

static void replies_free(redisReply **rep, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (rep[i] != NULL)
            freeReplyObject(rep[i]);
    }
}

static void add_prefix_tenant(struct kn_argv *a, const char *prefix,
                              const char *tenant)
{
    kn_argv_add(a, prefix);
    kn_argv_add(a, tenant);
}

/*
 * The rows that may need a write: those whose stored hash differs (or
 * whose active column asks for a change).  The script checks again; this
 * only keeps an unchanged re-import from writing, or sealing, anything.
 * *nnew counts those with no stored record (what a dry run calls added).
 */
static int select_changed(redisContext *c, const char *prefix,
                          const char *tenant, struct rrow **good, size_t n,
                          struct rrow **out, size_t *nout, size_t *nnew,
                          char *err, size_t errlen)
{
    size_t m = 0, fresh = 0;
    int rc = 0;
    for (size_t off = 0; off < n && rc == 0; off += 500) {
        size_t k = n - off < 500 ? n - off : 500;
        struct kn_argv *cmds = kn_xcalloc(k, sizeof(*cmds));
        redisReply **rep = kn_xcalloc(k, sizeof(*rep));
        for (size_t i = 0; i < k; i++) {
            kn_argv_init(&cmds[i]);
            kn_argv_add(&cmds[i], "HMGET");
            kn_argv_take(&cmds[i],
                         kn_key_rcpt(prefix, tenant, good[off + i]->v[COL_ID]));
            kn_argv_add(&cmds[i], "hash");
            kn_argv_add(&cmds[i], "active");
        }
        rc = pipeline(c, cmds, k, rep, err, errlen);
        for (size_t i = 0; i < k && rc == 0; i++) {
            const struct rrow *r = good[off + i];
            const redisReply *h = rep[i];
            int ok = h->type == REDIS_REPLY_ARRAY && h->elements == 2;
            int same = ok && h->element[0]->type == REDIS_REPLY_STRING &&
                       strcmp(h->element[0]->str, r->hash) == 0;
            if (same && r->active >= 0)
                same = h->element[1]->type == REDIS_REPLY_STRING &&
                       h->element[1]->str[0] == (r->active ? '1' : '0');
            if (!same) {
                out[m++] = good[off + i];
                if (ok && h->element[0]->type == REDIS_REPLY_NIL)
                    fresh++;
            }
        }
        for (size_t i = 0; i < k; i++)
            kn_argv_free(&cmds[i]);
        replies_free(rep, k);
        free(rep);
        free(cmds);
    }
    *nout = m;
    *nnew = fresh;
    return rc;
}

/* Delete ids[0..n) in batches; *deleted counts those that existed. */
static int delete_ids(redisContext *c, const char *prefix, const char *tenant,
                      char **ids, size_t n, long long *deleted, char *err,
                      size_t errlen)
{
    int rc = 0;
    *deleted = 0;
    for (size_t off = 0; off < n && rc == 0; off += BATCH) {
        struct kn_argv a;
        redisReply *r;
        kn_argv_init(&a);
        add_prefix_tenant(&a, prefix, tenant);
        for (size_t i = off; i < n && i < off + BATCH; i++)
            kn_argv_add(&a, ids[i]);
        rc = eval(c, &delete_script, &a, &r, err, errlen);
        if (rc == 0 && r->type == REDIS_REPLY_INTEGER)
            *deleted += r->integer;
        if (r != NULL)
            freeReplyObject(r);
        kn_argv_free(&a);
    }
    return rc;
}

/*
 * The deletions replace makes: every stored id that no row of the file
 * names.  Ids on bad rows that were skipped count as named (they stay as
 * they are); when a bad row has no usable id, nothing is deleted, since
 * that row might be anyone (held_back).  A dry run only counts.
 */
static int replace_rest(redisContext *c, const char *prefix,
                        struct kn_roster *ro, int dry_run, char *err,
                        size_t errlen)
{
    struct rrow *rows = ro->_rows;
    size_t n = ro->nrows, m = 0, ng = 0;
    char **named, **gone, *k;
    redisReply *all;
    int rc = 0;

    for (size_t i = 0; i < n; i++) {
        if (!kn_id_valid(rows[i].v[COL_ID])) {
            ro->held_back = 1;
            ro->held_back_line = rows[i].line;
            return 0;
        }
    }
    named = kn_xcalloc(n + 1, sizeof(*named));
    for (size_t i = 0; i < n; i++)
        named[m++] = rows[i].v[COL_ID];
    qsort(named, m, sizeof(*named), kn__roster_cmp_str);
    k = kn_xasprintf("%srcpts:%s", prefix, ro->_tenant);
    all = redisCommand(c, "SMEMBERS %s", k);
    free(k);
    if (all == NULL || all->type == REDIS_REPLY_ERROR) {
        free(named);
        return redis_failed(c, all, "SMEMBERS", err, errlen);
    }
    gone = kn_xcalloc(all->elements + 1, sizeof(*gone));
    for (size_t i = 0; all->type == REDIS_REPLY_ARRAY && i < all->elements;
         i++) {
        char *id = all->element[i]->str;
        if (bsearch(&id, named, m, sizeof(*named), kn__roster_cmp_str) == NULL)
            gone[ng++] = id;
    }
    qsort(gone, ng, sizeof(*gone), kn__roster_cmp_str);
    if (dry_run)
        ro->deleted = (long long)ng;
    else
        rc = delete_ids(c, prefix, ro->_tenant, gone, ng, &ro->deleted, err,
                        errlen);
    free(gone);
    freeReplyObject(all);
    free(named);
    return rc;
}

int kn_roster_apply(redisContext *c, const char *prefix,
                    const struct kn_keyring *kr, struct kn_roster *ro,
                    int dry_run, char *err, size_t errlen)
{
    struct rrow *rows = ro->_rows, **good, **changed;
    size_t ngood = 0, nchanged = 0, nnew = 0;
    int rc;

    ro->added = ro->updated = ro->unchanged = ro->deleted = 0;
    if (!dry_run && ro->stop != KN_ROSTER_OK) {
        snprintf(err, errlen, "the file has problems: nothing written");
        return KN_EINVAL;
    }
    good = kn_xcalloc(ro->nrows + 1, sizeof(*good));
    for (size_t i = 0; i < ro->nrows; i++) {
        if (rows[i].why == NULL && !rows[i].merged)
            good[ngood++] = &rows[i];
    }
    for (size_t i = 0; i < ngood; i++)
        row_hash(kr, good[i]);
    changed = kn_xcalloc(ngood + 1, sizeof(*changed));
    rc = select_changed(c, prefix, ro->_tenant, good, ngood, changed, &nchanged,
                        &nnew, err, errlen);
    ro->unchanged = (long long)(ngood - nchanged);
    if (dry_run) {
        ro->added = (long long)nnew;
        ro->updated = (long long)(nchanged - nnew);
    }
    for (size_t off = 0; !dry_run && rc == 0 && off < nchanged; off += BATCH) {
        struct kn_argv a;
        redisReply *r;
        kn_argv_init(&a);
        add_prefix_tenant(&a, prefix, ro->_tenant);
        kn_argv_addi(&a, kn_now_ms());
        for (size_t i = off; i < nchanged && i < off + BATCH; i++)
            row_args(kr, changed[i], &a);
        rc = eval(c, &upsert_script, &a, &r, err, errlen);
        if (rc == 0 && r->type == REDIS_REPLY_ARRAY && r->elements == 3) {
            ro->added += r->element[0]->integer;
            ro->updated += r->element[1]->integer;
            ro->unchanged += r->element[2]->integer;
        }
        if (r != NULL)
            freeReplyObject(r);
        kn_argv_free(&a);
    }
    if (rc == 0 && ro->_o.replace)
        rc = replace_rest(c, prefix, ro, dry_run, err, errlen);
    free(good);
    free(changed);
    return rc;
}
