/*
 * report.c - the drill report and the drill command.
 *
 *   kairanctl report ID [--format text|json|html]
 *   kairanctl drill FILE|-
 *
 * The report reads one broadcast's per-recipient states (bc:<id>:r), its
 * confirmations (bc:<id>:ack) and its audience (for names and masked
 * addresses, unsealed here and never printed whole).  "Reached" means
 * accepted by the relay or the provider (SMTP 250, an HTTP 200): it is not
 * proof that anyone read the message; only a confirmation is.
 *
 * A drill is an ordinary submit with "drill" and "ack" forced on, so that
 * every message says it is a drill (【訓練】) and carries a personal link.
 */
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/report_int.h"
#include "common/kn.h"
#include "common/log.h"
#include "common/seal.h"
#include "common/text.h"
#include "model/broadcast.h"
#include "model/child.h"
#include "model/directory.h"
#include "model/dsn.h"
#include "model/guardian.h"
#include "queue/keys.h"
#include "queue/rstates.h"

static const int within_s[] = {60, 300, 900};
#define NWITHIN 3
#define NCH     3
static const char *const ch_names[NCH] = {"email", "line", "push"};

struct rcpt {
    char *id;
    int64_t reached_ms;   /* first delivery on any channel; 0 none */
    int64_t ch_ms[NCH];   /* first delivery per channel; 0 none */
    int on_ch[NCH];       /* has a state on that channel */
    int64_t confirmed_ms; /* 0: not confirmed */
    char *name;
    json_t *addrs; /* masked */
    /* Every child of the audience is a row, with or without a delivery
     * of its own (the guardian of siblings gets one message: the others
     * have no state; a child with no contact on the channels neither). */
    int in_aud;       /* 1: an entry of bc:<id>:aud */
    int no_contact;   /* no contact on the broadcast's channels */
    char *via;        /* reached through this sibling's contact */
    char *phone;      /* masked, for the list of whom to phone */
    char bcode;       /* 'b' an e-mail bounced, 's' suppressed */
    char bdetail[48]; /* the bounce's detail (model/dsn.h) */
    int cby;          /* the guardian who confirmed; -1 unknown */
    char *gs;         /* bc:<id>:gs: whom it went to (guardian.h) */
    json_t *gnames;   /* guardian k's name (opened) or null */
};

struct report {
    char *bid;
    redisReply *h;
    json_t *states; /* "<channel>:<blind index>" -> "<code>|<rcpt>|<ms>|.." */
    int64_t t0;
    struct rcpt *r;
    size_t n, cap;
    size_t *slot; /* while loading: hash index, 1 + position in r, 0 free */
    size_t nslot; /* a power of two, at least 2 * n */
    json_t *fail; /* reason -> count */
    size_t nbounced, nsuppressed; /* deliveries bounced, suppressed */
    size_t nopted; /* addresses left out: the guardian opted out (issue 16) */
};

/*
 * A JSON string of text from Redis or a provider: bytes that are not
 * UTF-8 become \\xNN (json_string() would return NULL and the value, or
 * the whole key, would be lost).
 */
static json_t *jstr(const char *s)
{
    char *t = kn_text_utf8(s ? s : "", s ? strlen(s) : 0);
    json_t *j = json_string(t);
    free(t);
    return j;
}

static const char *hget(const redisReply *h, const char *k)
{
    for (size_t i = 0; h && h->type == REDIS_REPLY_ARRAY && i + 1 < h->elements;
         i += 2) {
        if (strcmp(h->element[i]->str, k) == 0)
            return h->element[i + 1]->str;
    }
    return NULL;
}

static int ch_index(const char *field)
{
    for (int i = 0; i < NCH; i++) {
        size_t l = strlen(ch_names[i]);
        if (strncmp(field, ch_names[i], l) == 0 && field[l] == ':')
            return i;
    }
    return -1;
}

static int by_id(const void *a, const void *b)
{
    return strcmp(((const struct rcpt *)a)->id, ((const struct rcpt *)b)->id);
}

/* The recipient with that id (rp->r sorted by id after load). */
static struct rcpt *find(struct report *rp, const char *id)
{
    struct rcpt key = {.id = (char *)id};
    return bsearch(&key, rp->r, rp->n, sizeof(*rp->r), by_id);
}

/* FNV-1a, for the index of ids while loading. */
static size_t id_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return (size_t)(h ^ h >> 32);
}

/* The slot of id in the index: where it is, or the free one to take. */
static size_t *slot_of(const struct report *rp, const char *id)
{
    size_t mask = rp->nslot - 1, i = id_hash(id) & mask;
    while (rp->slot[i] != 0 && strcmp(rp->r[rp->slot[i] - 1].id, id) != 0)
        i = (i + 1) & mask;
    return &rp->slot[i];
}

/*
 * The recipient with that id, added if new.  States arrive in hash order,
 * one per (channel, address): an open-addressing index keeps each look-up
 * O(1), so loading n states is O(n) (it was a linear scan, O(n^2): 1.7 s
 * at 30,000 recipients).  rp->r is sorted by id once loading is done.
 */
static struct rcpt *find_or_add(struct report *rp, const char *id)
{
    size_t *sl;
    if (2 * (rp->n + 1) > rp->nslot) {
        size_t n = rp->nslot ? rp->nslot * 2 : 1024;
        free(rp->slot);
        rp->slot = kn_xcalloc(n, sizeof(*rp->slot));
        rp->nslot = n;
        for (size_t i = 0; i < rp->n; i++)
            *slot_of(rp, rp->r[i].id) = i + 1;
    }
    sl = slot_of(rp, id);
    if (*sl != 0)
        return &rp->r[*sl - 1];
    if (rp->n == rp->cap) {
        rp->cap = rp->cap ? rp->cap * 2 : 256;
        rp->r = kn_xrealloc(rp->r, rp->cap * sizeof(*rp->r));
    }
    memset(&rp->r[rp->n], 0, sizeof(*rp->r));
    rp->r[rp->n].id = kn_xstrdup(id);
    rp->r[rp->n].cby = -1;
    rp->r[rp->n].addrs = json_array();
    *sl = ++rp->n;
    return &rp->r[rp->n - 1];
}

/* Parse one state "<code>|<rcpt>|<ms>|<detail>". */
static void load_state(struct report *rp, const char *field, const char *v)
{
    char code = v[0];
    const char *p = v + 2, *q;
    char *id;
    int64_t ms = 0;
    const char *detail = "";
    struct rcpt *r;
    int ch = ch_index(field);

    if (strlen(v) < 3 || v[1] != '|')
        return;
    json_object_set_new(rp->states, field, json_string(v));
    q = strchr(p, '|');
    id = q ? kn_xstrndup(p, (size_t)(q - p)) : kn_xstrdup(p);
    if (q != NULL) {
        ms = strtoll(q + 1, NULL, 10);
        q = strchr(q + 1, '|');
        if (q != NULL)
            detail = q + 1;
    }
    r = find_or_add(rp, id);
    free(id);
    if (ch >= 0)
        r->on_ch[ch] = 1;
    if (code == 'd' && ms > 0) {
        if (r->reached_ms == 0 || ms < r->reached_ms)
            r->reached_ms = ms;
        if (ch >= 0 && (r->ch_ms[ch] == 0 || ms < r->ch_ms[ch]))
            r->ch_ms[ch] = ms;
    } else if (code == 'o') {
        /* issue 16: the guardian opted out of the category (or stopped
         * the channel): no job, 配信停止 (本人の希望) */
        rp->nopted++;
        if (r->bcode == 0)
            r->bcode = 'o';
    } else if (code == 'b' || code == 's') {
        /* issue 18: bounced after delivery (or refused at RCPT), or
         * skipped because the address bounced before */
        if (code == 'b') {
            rp->nbounced++;
            r->bcode = 'b';
            snprintf(r->bdetail, sizeof(r->bdetail), "%s", detail);
        } else {
            rp->nsuppressed++;
            if (r->bcode != 'b')
                r->bcode = 's';
        }
    } else if (code == 'f' || code == 'x') {
        const char *key = code == 'x' ? (detail[0] ? detail : "expired")
                                      : (detail[0] ? detail : "failed");
        char reason[160], *ok;
        json_t *v0;
        snprintf(reason, sizeof(reason), "%s%s", code == 'x' ? "expired: " : "",
                 key);
        /* valid UTF-8 (the cut above may split a character), or the
         * count would be lost */
        ok = kn_text_utf8(reason, strlen(reason));
        v0 = json_object_get(rp->fail, ok);
        json_object_set_new(rp->fail, ok,
                            json_integer(json_integer_value(v0) + 1));
        free(ok);
    }
}

static void add_masked(json_t *addrs, const struct kn_keyring *kr,
                       const char *purpose, const char *sealed)
{
    char *plain = NULL, m[128];
    if (sealed == NULL || kn_unseal(kr, purpose, sealed, &plain, NULL) < 0)
        return;
    json_array_append_new(addrs, jstr(kn_mask_address(plain, m, sizeof(m))));
    OPENSSL_cleanse(plain, strlen(plain));
    free(plain);
}

/* Names and masked addresses of one audience entry's recipient. */
static void load_contact(struct rcpt *r, const struct kn_keyring *kr, json_t *c,
                         const char *sealed_name)
{
    struct kn_dir_rec d;
    char *plain = NULL;
    if (r->name == NULL && sealed_name != NULL &&
        kn_unseal(kr, "name", sealed_name, &plain, NULL) == 0)
        r->name = plain;
    if (json_array_size(r->addrs) > 0)
        return;
    /* the record, then its further guardians (model/directory.h "g") */
    for (size_t g = 0;; g++) {
        json_t *o =
            g == 0
                ? c
                : json_array_get(json_object_get(c, KN_DIR_GUARDIANS), g - 1);
        if (o == NULL || kn_dir_parse(o, &d) < 0)
            break;
        add_masked(r->addrs, kr, "email", d.email);
        add_masked(r->addrs, kr, "line", d.line);
        for (size_t i = 0; i < d.npush; i++)
            add_masked(r->addrs, kr, "push", d.push[i].token);
        kn_dir_rec_free(&d);
    }
}

/* The child's contacts on the broadcast's channels (model/child.h, the
 * record and its further guardians) looked up among the states; returns
 * 1 if it has any. */
static int resolve_contacts(struct report *rp, struct rcpt *r, json_t *c)
{
    struct kn_child_contact k[KN_CHILD_MAX_CONTACTS];
    const char *vals[KN_CHILD_MAX_CONTACTS];
    struct kn_child_seen seen;
    struct kn_child_st st;
    size_t nk =
        kn_child_contacts(c, hget(rp->h, "channels"), k, KN_CHILD_MAX_CONTACTS);
    for (size_t i = 0; i < nk; i++)
        vals[i] = json_string_value(json_object_get(rp->states, k[i].field));
    kn_child_resolve(r->id, vals, nk, &seen);
    if (seen.via >= 0 && kn_child_st_parse(vals[seen.via], &st) == 0) {
        free(r->via);
        r->via = kn_xstrndup(st.rcpt, st.rcpt_len);
        r->reached_ms = seen.reached_ms;
    }
    return nk > 0;
}

/*
 * A child with no delivery state of its own: its contacts on the
 * broadcast's channels looked up among the states by blind index.  Sets
 * r->via and r->reached_ms (a sibling's guardian was reached: the same
 * address got the one message), or r->no_contact (nothing to send to).
 * A contact whose state is not delivered leaves the child not reached.
 */
static void resolve_child(struct report *rp, struct rcpt *r, json_t *c)
{
    r->no_contact = !resolve_contacts(rp, r, c);
}

/* Append a sealed phone number, masked, to r->phone. */
static void add_phone(struct rcpt *r, const struct kn_keyring *kr,
                      const char *sealed)
{
    char *plain = NULL, *m, *t;
    if (sealed == NULL || kn_unseal(kr, "phone", sealed, &plain, NULL) < 0)
        return;
    m = kn_child_mask_phone(plain);
    OPENSSL_cleanse(plain, strlen(plain));
    free(plain);
    t = r->phone ? kn_xasprintf("%s, %s", r->phone, m) : kn_xstrdup(m);
    free(r->phone);
    free(m);
    r->phone = t;
}

/* One child of the audience: a row, its name, masked contacts and phone,
 * and (without a state of its own) how it was reached. */
static void add_child(struct report *rp, const struct kn_keyring *kr,
                      const char *id, json_t *c, const char *sealed_name,
                      const char *sealed_phone, const char *sealed_guardian)
{
    struct rcpt *r = find_or_add(rp, id);
    int own = 0;
    r->in_aud = 1;
    load_contact(r, kr, c, sealed_name);
    if (r->gnames == NULL) {
        /* Each guardian's name, to say who confirmed (model/guardian.h):
         * the record's "guardian", then "nm" of each of "g". */
        json_t *g;
        r->gnames = json_array();
        for (size_t k = 0; (g = kn_guardian_at(c, k)) != NULL; k++) {
            const char *sealed =
                k == 0 ? sealed_guardian
                       : json_string_value(json_object_get(g, KN_DIR_NAME));
            char *plain = NULL;
            if (sealed != NULL &&
                kn_unseal(kr, "name", sealed, &plain, NULL) == 0) {
                json_array_append_new(r->gnames, jstr(plain));
                OPENSSL_cleanse(plain, strlen(plain));
                free(plain);
            } else {
                json_array_append_new(r->gnames, json_null());
            }
        }
    }
    if (r->phone == NULL) {
        /* the record's phone, then its further guardians' ("g"), masked,
         * joined by ", " */
        json_t *g;
        size_t i;
        add_phone(r, kr, sealed_phone);
        json_array_foreach(json_object_get(c, KN_DIR_GUARDIANS), i, g)
            add_phone(r, kr,
                      json_string_value(json_object_get(g, KN_DIR_PHONE)));
    }
    for (int i = 0; i < NCH; i++)
        own |= r->on_ch[i];
    if (!own && r->via == NULL && !r->no_contact)
        resolve_child(rp, r, c);
}

/*
 * Every entry of the audience (inline "i:<json>", directory "d:<id>"),
 * before the rows are sorted: each child becomes a row even without a
 * delivery of its own.  Inactive directory recipients were not sent to
 * and are not children of this broadcast.
 */
static void load_audience(struct report *rp, const struct kn_keyring *kr)
{
    const char *tenant = hget(rp->h, "tenant");
    char *k = kn_key_bc(kn_cli_cfg.redis_prefix, rp->bid, ":aud");
    redisReply *a = kn_cli_cmd("LRANGE %s 0 -1", k);
    free(k);
    for (size_t i = 0; a->type == REDIS_REPLY_ARRAY && i < a->elements; i++) {
        const char *e = a->element[i]->str;
        if (e == NULL)
            continue;
        if (strncmp(e, "i:", 2) == 0) {
            json_t *j = json_loads(e + 2, 0, NULL);
            const char *id = json_string_value(json_object_get(j, KN_DIR_ID));
            if (id != NULL)
                add_child(rp, kr, id, j,
                          json_string_value(json_object_get(j, KN_DIR_NAME)),
                          NULL, NULL);
            json_decref(j);
        } else if (strncmp(e, "d:", 2) == 0 && tenant != NULL) {
            redisReply *h;
            json_t *c;
            k = kn_key_rcpt(kn_cli_cfg.redis_prefix, tenant, e + 2);
            h = kn_cli_cmd(
                "HMGET %s name " KN_DIR_HASH_FIELD " active phone guardian", k);
            free(k);
            if (h->type == REDIS_REPLY_ARRAY && h->elements == 5 &&
                h->element[1]->str != NULL &&
                !(h->element[2]->str && strcmp(h->element[2]->str, "0") == 0)) {
                c = json_loads(h->element[1]->str, 0, NULL);
                add_child(rp, kr, e + 2, c, h->element[0]->str,
                          h->element[3]->str, h->element[4]->str);
                json_decref(c);
            }
            freeReplyObject(h);
        }
    }
    freeReplyObject(a);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[0..n) in seconds; null if n == 0. */
static json_t *pct(const int64_t *v, size_t n, int p)
{
    size_t rank;
    if (n == 0)
        return json_null();
    rank = (size_t)((p * n + 99) / 100);
    if (rank < 1)
        rank = 1;
    return json_real((double)v[rank - 1] / 1000.0);
}

static json_t *within(const struct report *rp, int ch)
{
    json_t *o = json_object();
    for (int w = 0; w < NWITHIN; w++) {
        long long n = 0;
        char key[16];
        for (size_t i = 0; i < rp->n; i++) {
            int64_t ms = ch < 0 ? rp->r[i].reached_ms : rp->r[i].ch_ms[ch];
            if (ms > 0 && ms - rp->t0 <= (int64_t)within_s[w] * 1000)
                n++;
        }
        snprintf(key, sizeof(key), "%d", within_s[w]);
        json_object_set_new(o, key, json_integer(n));
    }
    return o;
}

/* The state of a row: 0 no contact on these channels (the first to
 * phone), 1 not reached, 2 reached through a sibling's guardian, 3
 * reached. */
static int child_state(const struct rcpt *r)
{
    return (int)kn_child_classify(r->reached_ms, r->via != NULL, r->no_contact);
}

/* The state of a listed recipient: the child's (model/child.h), but a
 * child not reached whose e-mail bounced or was suppressed says so. */
static const char *listed_state(const struct rcpt *r)
{
    int st = child_state(r);
    if (st == KN_CHILD_NOT_REACHED && r->bcode == 'b')
        return "bounced";
    if (st == KN_CHILD_NOT_REACHED && r->bcode == 's')
        return "suppressed";
    if (st == KN_CHILD_NOT_REACHED && r->bcode == 'o')
        return "opted_out";
    return kn_child_state_name((enum kn_child_state)st);
}

/* No contact first, then not reached, then by id. */
static int unconfirmed_order(const void *a, const void *b)
{
    const struct rcpt *x = *(struct rcpt *const *)a,
                      *y = *(struct rcpt *const *)b;
    int sx = child_state(x) >= 2 ? 2 : child_state(x),
        sy = child_state(y) >= 2 ? 2 : child_state(y);
    if (sx != sy)
        return sx < sy ? -1 : 1;
    return strcmp(x->id, y->id);
}

/* Cumulative counts over time, for the chart: [[s, reached, confirmed]]. */
static json_t *timeline(const struct report *rp)
{
    int64_t *ev = kn_xcalloc(2 * rp->n + 1, sizeof(*ev));
    size_t ne = 0, reached = 0, conf = 0;
    json_t *arr = json_array();
    /* Encode kind in the low bit of 2*ms so one sort orders both. */
    for (size_t i = 0; i < rp->n; i++) {
        if (rp->r[i].reached_ms > 0)
            ev[ne++] = (rp->r[i].reached_ms - rp->t0) * 2;
        if (rp->r[i].confirmed_ms > 0)
            ev[ne++] = (rp->r[i].confirmed_ms - rp->t0) * 2 + 1;
    }
    qsort(ev, ne, sizeof(*ev), cmp_i64);
    json_array_append_new(arr, json_pack("[f,i,i]", 0.0, 0, 0));
    for (size_t i = 0; i < ne; i++) {
        int64_t v = ev[i] >= 0 ? ev[i] : ev[i] - 1;
        if (ev[i] & 1)
            conf++;
        else
            reached++;
        json_array_append_new(arr,
                              json_pack("[f,I,I]", (double)(v / 2) / 1000.0,
                                        (json_int_t)reached, (json_int_t)conf));
    }
    free(ev);
    return arr;
}

/* The answers' tally of a broadcast with "choices" (bc:<id> keeps them
 * and ans:<index>): [{"choice", "count"}], [] without choices. */
static json_t *answers(const struct report *rp)
{
    const char *c = hget(rp->h, "choices");
    json_t *ch = c ? json_loads(c, 0, NULL) : NULL, *arr = json_array(), *x;
    size_t i;
    json_array_foreach(ch, i, x)
    {
        char f[32];
        const char *n;
        json_t *one = json_object();
        snprintf(f, sizeof(f), "ans:%zu", i);
        n = hget(rp->h, f);
        json_object_set_new(
            one, "choice", jstr(json_is_string(x) ? json_string_value(x) : ""));
        json_object_set_new(one, "count",
                            json_integer(n ? strtoll(n, NULL, 10) : 0));
        json_array_append_new(arr, one);
    }
    json_decref(ch);
    return arr;
}

/* How the report names guardian k of child r (model/guardian.h). */
static json_t *guardian_name(const struct rcpt *r, int k)
{
    char label[200];
    return jstr(kn_guardian_label(
        k, json_string_value(json_array_get(r->gnames, (size_t)k)), label,
        sizeof(label)));
}

/* Whom child r's message went to, in order, and when (next_guardian
 * broadcasts: bc:<id>:gs), as [{"guardian": name, "at": time}]. */
static json_t *sent_to(const struct rcpt *r)
{
    json_t *arr = json_array();
    int k;
    int64_t ms;
    for (size_t i = 0; kn_guardian_sent_at(r->gs, i, &k, &ms) == 0; i++) {
        char t[48];
        json_array_append_new(arr, json_pack("{s:o,s:s}", "guardian",
                                             guardian_name(r, k), "at",
                                             kn_time_jst(ms, t, sizeof(t))));
    }
    return arr;
}

/* Every confirmed child: who confirmed (the guardian's name, else
 * "保護者<n>"; null for a link that named none) and when. */
static json_t *confirmations(const struct report *rp)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < rp->n; i++) {
        const struct rcpt *r = &rp->r[i];
        json_t *c;
        char t[48];
        if (r->confirmed_ms <= 0)
            continue;
        c = json_object();
        json_object_set_new(c, "id", jstr(r->id));
        json_object_set_new(c, "name", r->name ? jstr(r->name) : json_null());
        json_object_set_new(
            c, "confirmed_at",
            json_string(kn_time_jst(r->confirmed_ms, t, sizeof(t))));
        json_object_set_new(c, "confirmed_by",
                            r->cby >= 0 ? guardian_name(r, r->cby)
                                        : json_null());
        if (r->gs != NULL)
            json_object_set_new(c, "sent_to", sent_to(r));
        json_array_append_new(arr, c);
    }
    return arr;
}

static json_t *build(struct report *rp)
{
    json_t *o = json_object(), *per = json_object(), *un = json_array();
    int64_t *ct = kn_xcalloc(rp->n + 1, sizeof(*ct));
    struct rcpt **list = kn_xcalloc(rp->n + 1, sizeof(*list));
    size_t nconf = 0, reached = 0, nl = 0;
    json_t *cs;

    size_t by_state[4] = {0};
    for (size_t i = 0; i < rp->n; i++) {
        by_state[child_state(&rp->r[i])]++;
        if (rp->r[i].reached_ms > 0)
            reached++;
        if (rp->r[i].confirmed_ms > 0)
            ct[nconf++] = rp->r[i].confirmed_ms - rp->t0;
        else
            list[nl++] = &rp->r[i];
    }
    qsort(ct, nconf, sizeof(*ct), cmp_i64);
    qsort(list, nl, sizeof(*list), unconfirmed_order);
    json_object_set_new(o, "id", jstr(rp->bid));
    json_object_set_new(o, "tenant", jstr(hget(rp->h, "tenant")));
    json_object_set_new(o, "subject", jstr(hget(rp->h, "subject")));
    json_object_set_new(o, "drill",
                        json_boolean(hget(rp->h, "drill") &&
                                     strcmp(hget(rp->h, "drill"), "1") == 0));
    json_object_set_new(o, "status", jstr(hget(rp->h, "status")));
    json_object_set_new(o, "start_ms", json_integer(rp->t0));
    json_object_set_new(o, "recipients", json_integer((json_int_t)rp->n));
    json_object_set_new(o, "reached", json_integer((json_int_t)reached));
    json_object_set_new(o, "reached_note",
                        json_string("reached = accepted by the relay or "
                                    "provider, not proof of reading"));
    json_object_set_new(o, "reached_within_s", within(rp, -1));
    /* Every child of the audience: "reached" above counts those reached
     * through a sibling's guardian too (the same address got the one
     * message); here they are told apart. */
    cs = json_object();
    json_object_set_new(cs, "total", json_integer((json_int_t)rp->n));
    for (int st = 0; st < 4; st++)
        json_object_set_new(cs, kn_child_state_name((enum kn_child_state)st),
                            json_integer((json_int_t)by_state[st]));
    json_object_set_new(o, "children", cs);
    for (int c = 0; c < NCH; c++) {
        json_t *co;
        size_t n = 0, rc = 0;
        for (size_t i = 0; i < rp->n; i++) {
            n += rp->r[i].on_ch[c] != 0;
            rc += rp->r[i].ch_ms[c] > 0;
        }
        if (n == 0)
            continue;
        co = json_object();
        json_object_set_new(co, "recipients", json_integer((json_int_t)n));
        json_object_set_new(co, "reached", json_integer((json_int_t)rc));
        json_object_set_new(co, "reached_within_s", within(rp, c));
        json_object_set_new(per, ch_names[c], co);
    }
    json_object_set_new(o, "channels", per);
    json_object_set_new(o, "confirmed", json_integer((json_int_t)nconf));
    json_object_set_new(o, "confirm_p50_s", pct(ct, nconf, 50));
    json_object_set_new(o, "confirm_p90_s", pct(ct, nconf, 90));
    json_object_set_new(o, "failures", json_incref(rp->fail));
    json_object_set_new(o, "bounced", json_integer((json_int_t)rp->nbounced));
    json_object_set_new(o, "suppressed",
                        json_integer((json_int_t)rp->nsuppressed));
    json_object_set_new(o, "opted_out", json_integer((json_int_t)rp->nopted));
    json_object_set_new(o, "answers", answers(rp));
    for (size_t i = 0; i < nl; i++) {
        json_t *u = json_object();
        json_object_set_new(u, "id", jstr(list[i]->id));
        json_object_set_new(u, "name",
                            list[i]->name ? jstr(list[i]->name) : json_null());
        json_object_set_new(u, "reached",
                            json_boolean(list[i]->reached_ms > 0));
        json_object_set_new(u, "addresses", json_incref(list[i]->addrs));
        json_object_set_new(u, "state", json_string(listed_state(list[i])));
        if (list[i]->bcode == 'o' &&
            child_state(list[i]) == KN_CHILD_NOT_REACHED) {
            json_object_set_new(u, "reason",
                                json_string("opted out: the guardian asked "
                                            "not to get this category"));
            json_object_set_new(u, "reason_ja",
                                json_string("配信停止 (本人の希望)"));
        } else if (list[i]->bcode != 0 &&
                   child_state(list[i]) == KN_CHILD_NOT_REACHED) {
            char st[16] = "";
            int carrier = 0;
            kn_bounce_detail_parse(list[i]->bdetail, st, sizeof(st), &carrier);
            json_object_set_new(u, "status", json_string(st));
            json_object_set_new(
                u, "reason",
                json_string(list[i]->bcode == 's'
                                ? "skipped: this address bounced before "
                                  "(suppressed) — ask the family for a new "
                                  "address, or clear it"
                                : kn_dsn_reason(st, carrier, 0)));
            json_object_set_new(
                u, "reason_ja",
                json_string(list[i]->bcode == 's'
                                ? "以前届かなかったアドレスのため送信を止めて"
                                  "います。ご家庭に新しいアドレスを確認して"
                                  "ください"
                                : kn_dsn_reason(st, carrier, 1)));
        }
        json_object_set_new(u, "via",
                            list[i]->via ? jstr(list[i]->via) : json_null());
        json_object_set_new(
            u, "phone", list[i]->phone ? jstr(list[i]->phone) : json_null());
        if (list[i]->gs != NULL)
            json_object_set_new(u, "sent_to", sent_to(list[i]));
        json_array_append_new(un, u);
    }
    json_object_set_new(o, "unconfirmed", un);
    json_object_set_new(o, "confirmations", confirmations(rp));
    json_object_set_new(o, "timeline", timeline(rp));
    free(ct);
    free(list);
    return o;
}

static int do_report(int argc, char **argv)
{
    struct report rp;
    struct kn_keyring *kr = NULL;
    const char *format = "text", *id = NULL;
    redisReply *r;
    char err[300], *k;
    const char *s;
    json_t *o;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--format") == 0 && i + 1 < argc)
            format = argv[++i];
        else if (strncmp(argv[i], "--format=", 9) == 0)
            format = argv[i] + 9;
        else if (id == NULL && argv[i][0] != '-')
            id = argv[i];
        else
            id = NULL, format = "";
    }
    if (id == NULL ||
        (strcmp(format, "text") != 0 && strcmp(format, "json") != 0 &&
         strcmp(format, "html") != 0)) {
        fprintf(stderr, "usage: kairanctl report ID [--format "
                        "text|json|html]\n");
        return KN_EXIT_USAGE;
    }
    memset(&rp, 0, sizeof(rp));
    rp.bid = kn_xstrdup(id);
    k = kn_key_bc(kn_cli_cfg.redis_prefix, id, "");
    rp.h = kn_cli_cmd("HGETALL %s", k);
    free(k);
    if (hget(rp.h, "status") == NULL) {
        fprintf(stderr, "kairanctl: no broadcast %s\n", id);
        freeReplyObject(rp.h);
        free(rp.bid);
        return KN_EXIT_UNKNOWN;
    }
    if (kn_keyring_load(kn_cli_cfg.key_file, &kr, err, sizeof(err)) < 0) {
        fprintf(stderr, "kairanctl: security.key_file: %s\n", err);
        freeReplyObject(rp.h);
        free(rp.bid);
        return KN_EXIT_FAIL;
    }
    s = hget(rp.h, "send_at_ms");
    rp.t0 = s && strtoll(s, NULL, 10) > 0 ? strtoll(s, NULL, 10) : 0;
    if (rp.t0 == 0 && (s = hget(rp.h, "created_ms")) != NULL)
        rp.t0 = strtoll(s, NULL, 10);
    rp.fail = json_object();
    rp.states = json_object();

    k = kn_key_bc(kn_cli_cfg.redis_prefix, id, ":r");
    r = kn_cli_cmd("HGETALL %s", k);
    free(k);
    kn_rstates_resolve(r); /* a multicast recorded once: per member */
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements;
         i += 2)
        load_state(&rp, r->element[i]->str, r->element[i + 1]->str);
    freeReplyObject(r);
    load_audience(&rp, kr); /* every child a row, before the sort */
    free(rp.slot); /* the index dies with the sort; find() bisects now */
    rp.slot = NULL;
    qsort(rp.r, rp.n, sizeof(*rp.r), by_id);

    k = kn_key_bc(kn_cli_cfg.redis_prefix, id, ":ack");
    r = kn_cli_cmd("HGETALL %s", k);
    free(k);
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements;
         i += 2) {
        struct rcpt *x = find(&rp, r->element[i]->str);
        int answer;
        /* {"t","a","c"} or, stored before answers, a plain time */
        if (x != NULL) {
            kn_ack_value_parse(r->element[i + 1]->str, &x->confirmed_ms,
                               &answer, NULL);
            x->cby = kn_ack_value_guardian_of(r->element[i + 1]->str);
        }
    }
    freeReplyObject(r);

    /* whom each child's message went to (next_guardian: guardian.h) */
    k = kn_key_bc(kn_cli_cfg.redis_prefix, id, ":gs");
    r = kn_cli_cmd("HGETALL %s", k);
    free(k);
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements;
         i += 2) {
        struct rcpt *x = find(&rp, r->element[i]->str);
        if (x != NULL && x->gs == NULL)
            x->gs = kn_xstrdup(r->element[i + 1]->str);
    }
    freeReplyObject(r);

    o = build(&rp);
    if (strcmp(format, "json") == 0) {
        /* JSON escapes, with C1 and bidi controls escaped too */
        char *out = json_dumps(o, JSON_INDENT(2)), *safe = kn_text_json(out);
        printf("%s\n", safe);
        free(safe);
        free(out);
    } else {
        json_t *shown = kn_cli_safe_json(o);
        if (strcmp(format, "html") == 0)
            kn__report_print_html(shown);
        else
            kn__report_print_text(shown);
        json_decref(shown);
    }
    json_decref(o);
    for (size_t i = 0; i < rp.n; i++) {
        free(rp.r[i].id);
        if (rp.r[i].name != NULL) {
            OPENSSL_cleanse(rp.r[i].name, strlen(rp.r[i].name));
            free(rp.r[i].name);
        }
        json_decref(rp.r[i].addrs);
        free(rp.r[i].via);
        free(rp.r[i].phone);
        free(rp.r[i].gs);
        json_decref(rp.r[i].gnames);
    }
    free(rp.r);
    free(rp.slot);
    json_decref(rp.fail);
    json_decref(rp.states);
    freeReplyObject(rp.h);
    free(rp.bid);
    kn_keyring_free(kr);
    return KN_EXIT_OK;
}

const struct kn_cli_command kn_cli_cmd_report = {
    .name = "report",
    .usage = "  report ID [--format text|json|html]\n"
             "                         drill report: reached, confirmed, "
             "who to phone\n",
    .needs_config = 1,
    .run = do_report,
};

/* ---- drill ---- */

static int do_drill(int argc, char **argv)
{
    size_t len = 0;
    char *json, *out;
    json_t *j;
    json_error_t e;
    int rc;

    if (argc != 2) {
        fprintf(stderr, "usage: kairanctl drill FILE|-\n");
        return KN_EXIT_USAGE;
    }
    json = kn_cli_read_file(argv[1], &len);
    if (json == NULL) {
        fprintf(stderr, "kairanctl: cannot read %s\n", argv[1]);
        return KN_EXIT_USAGE;
    }
    j = json_loadb(json, len, 0, &e);
    free(json);
    if (!json_is_object(j)) {
        fprintf(stderr, "kairanctl: invalid broadcast: line %d: %s\n", e.line,
                j ? "not a JSON object" : e.text);
        json_decref(j);
        return KN_EXIT_FAIL;
    }
    json_object_set_new(j, "drill", json_true());
    json_object_set_new(j, "ack", json_true());
    out = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    rc = kn_cli_submit_json(out, strlen(out));
    free(out);
    return rc;
}

const struct kn_cli_command kn_cli_cmd_drill = {
    .name = "drill",
    .usage = "  drill FILE|-           submit a drill (\"drill\" and \"ack\" "
             "forced on)\n",
    .needs_config = 1,
    .run = do_drill,
};
