/*
 * recipients.c - GET /v1/broadcasts/{id}/recipients (one page, JSON) and
 * GET /v1/broadcasts/{id}/recipients.csv (every page, for Excel): every
 * child of the broadcast's audience (bc:<id>:aud, in its order), with or
 * without a delivery of its own.
 *
 * A page is a slice of the audience list (the cursor "a<position>"):
 *   1. bc:<id> (tenant, owner, channels, choices), LLEN and LRANGE of the
 *      audience: limit entries, inline "i:<json>" or directory "d:<id>";
 *   2. HMGET of each directory record of the page (names sealed, class,
 *      contacts "c" with the further guardians "g");
 *   3. one HMGET of bc:<id>:r with the fields of the page's contacts on
 *      the broadcast's channels (model/child.h) and one of bc:<id>:ack
 *      with the page's ids.
 * So a page costs at most limit entries, limit records, limit x
 * KN_CHILD_MAX_CONTACTS fields and limit confirmations, whatever the size
 * of the broadcast.  A child gets one row per delivery state of its own;
 * without one, a single row saying how it was reached (model/child.h, the
 * rule of kairanctl report): reached_via_sibling, not_reached or
 * no_contact.  Names are unsealed here for the tenant's staff; an address
 * is only ever shown masked, a phone number by its last four digits.
 *
 * The same pages also pick the children a re-send goes to
 * (kn__httpd_rcpts_pick, for resend.c): nothing is unsealed then.
 */
#include "dispatcher/http/http_int.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/csvcell.h"
#include "common/kn.h"
#include "common/log.h"
#include "common/seal.h"
#include "common/text.h"
#include "model/audit.h"
#include "model/broadcast.h"
#include "model/child.h"
#include "model/directory.h"
#include "model/dsn.h"
#include "model/guardian.h"
#include "queue/keys.h"
#include "queue/lua.h"

#define PAGE_DEFAULT 100
#define PAGE_MAX     500
#define CSV_PAGE     500

/* The columns, in the order of the CSV (docs/http-api.md). */
static const char *const cols[] = {
    "recipient", "child",   "class",        "guardian",
    "channel",   "state",   "reached_at",   "confirmed_at",
    "answer",    "comment", "child_state",  "via",
    "address",   "phone",   "confirmed_by", "sent_to"};
#define NCOLS 16

/* One child of a page, as its audience entry and record read. */
struct child {
    char *id;
    json_t *c;      /* the contacts (model/directory.h), NULL: gone */
    char *name;     /* sealed; NULL none */
    char *guardian; /* the first guardian's name, sealed; NULL none */
    char *phone;    /* the first guardian's phone, sealed; NULL none */
    char *klass;    /* grade and class, plaintext; NULL none */
    int inactive;   /* a directory recipient made inactive */
    struct kn_child_contact *k; /* its contacts on the channels */
    size_t nk;
    int is_inline; /* an inline recipient of the broadcast */
    size_t st0;    /* its first contact's reply in the states HMGET */
};

/* A page being read; for the CSV, every page in turn. */
struct page {
    char *bid, *tenant, *channels;
    json_t *choices;
    long long start, limit, total;
    struct child *ch;
    size_t n;
    int csv, cp932;
    FILE *out; /* the CSV so far */
    char *text;
    size_t len;
    /* Picking a re-send's children (kn__httpd_rcpts_pick). */
    int pick;           /* 0, KN__PICK_UNREACHED or KN__PICK_UNCONFIRMED */
    struct kn_argv ids; /* the directory ids picked */
    long long skipped;  /* not picked: inline, no contact, deleted */
    kn__httpd_pick_cb *picked;
    void (*pick_free)(void *arg); /* arg when picked is never called */
    void *pick_arg;
};

static void children_clear(struct page *p)
{
    for (size_t i = 0; i < p->n; i++) {
        struct child *x = &p->ch[i];
        free(x->id);
        json_decref(x->c);
        free(x->name);
        free(x->guardian);
        free(x->phone);
        free(x->klass);
        free(x->k);
    }
    free(p->ch);
    p->ch = NULL;
    p->n = 0;
}

static void page_free(struct page *p)
{
    children_clear(p);
    free(p->bid);
    free(p->tenant);
    free(p->channels);
    json_decref(p->choices);
    if (p->pick) {
        kn_argv_free(&p->ids);
        if (p->pick_arg != NULL)
            p->pick_free(p->pick_arg);
    }
    if (p->out != NULL)
        fclose(p->out);
    if (p->text != NULL) {
        OPENSSL_cleanse(p->text, p->len);
        free(p->text);
    }
    free(p);
}

static char *dup_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? kn_xstrdup(s) : NULL;
}

/* The confirmation of a child: time, answer text, comment (heap, or
 * NULL).  The comment is unsealed here and nowhere else. */
static void child_ack(const struct kn_keyring *kr, const struct page *p,
                      const char *stored, long long *ms, const char **answer,
                      char **comment)
{
    int64_t t = 0;
    int a = -1;
    char *sealed = NULL;
    *ms = 0;
    *answer = NULL;
    *comment = NULL;
    if (stored == NULL || kn_ack_value_parse(stored, &t, &a, &sealed) < 0)
        return;
    *ms = t;
    if (a >= 0)
        *answer = json_string_value(json_array_get(p->choices, (size_t)a));
    if (sealed != NULL &&
        kn_unseal(kr, "ack-comment", sealed, comment, NULL) < 0)
        *comment = kn_xstrdup("(unreadable)");
    free(sealed);
}

/* A sealed value opened, or NULL. */
static char *open_sealed(const struct kn_keyring *kr, const char *purpose,
                         const char *sealed)
{
    char *plain = NULL;
    if (sealed == NULL || kn_unseal(kr, purpose, sealed, &plain, NULL) < 0)
        return NULL;
    return plain;
}

/* The sealed name of guardian g of a child (0: the record's own). */
static const char *guardian_sealed(const struct child *x, size_t g)
{
    if (g == 0)
        return x->guardian;
    return json_string_value(json_object_get(
        json_array_get(json_object_get(x->c, KN_DIR_GUARDIANS), g - 1),
        KN_DIR_NAME));
}

/* Append s to *acc, ", " between. */
static void join(char **acc, const char *s)
{
    char *t;
    if (s == NULL || s[0] == '\0')
        return;
    t = *acc ? kn_xasprintf("%s, %s", *acc, s) : kn_xstrdup(s);
    free(*acc);
    *acc = t;
}

/* How guardian k of x is named (its name, else "保護者<k+1>": never an
 * address; model/guardian.h).  Heap string. */
static char *guardian_label(const struct kn_keyring *kr, const struct child *x,
                            int k)
{
    char *n = open_sealed(kr, "name", guardian_sealed(x, (size_t)k)), *out;
    char label[200];
    out = kn_xstrdup(kn_guardian_label(k, n, label, sizeof(label)));
    kn_free_secret(n);
    OPENSSL_cleanse(label, sizeof(label));
    return out;
}

/* Whom a next_guardian broadcast sent x's message to, and when (gs: its
 * value in bc:<id>:gs): "保護者1 (time), 保護者2 (time)"; or NULL. */
static char *sent_to_text(const struct kn_keyring *kr, const struct child *x,
                          const char *gs)
{
    char *acc = NULL;
    int k;
    int64_t ms;
    for (size_t i = 0; kn_guardian_sent_at(gs, i, &k, &ms) == 0; i++) {
        char t[48], *g = guardian_label(kr, x, k), *one;
        one = kn_xasprintf("%s (%s)", g, kn_time_jst(ms, t, sizeof(t)));
        join(&acc, one);
        kn_free_secret(one);
        kn_free_secret(g);
    }
    return acc;
}

/* Every guardian's name of a child, opened and joined; or NULL. */
static char *all_guardians(const struct kn_keyring *kr, const struct child *x)
{
    char *acc = NULL;
    size_t ng = json_array_size(json_object_get(x->c, KN_DIR_GUARDIANS));
    for (size_t g = 0; g <= ng; g++) {
        char *n = open_sealed(kr, "name", guardian_sealed(x, g));
        join(&acc, n);
        kn_free_secret(n);
    }
    return acc;
}

/* Every guardian's phone, masked and joined (as kairanctl report). */
static char *all_phones(const struct kn_keyring *kr, const struct child *x)
{
    char *acc = NULL;
    json_t *g;
    size_t i;
    char *plain = open_sealed(kr, "phone", x->phone), *m;
    if (plain != NULL) {
        m = kn_child_mask_phone(plain);
        join(&acc, m);
        free(m);
        kn_free_secret(plain);
    }
    json_array_foreach(json_object_get(x->c, KN_DIR_GUARDIANS), i, g)
    {
        plain = open_sealed(
            kr, "phone", json_string_value(json_object_get(g, KN_DIR_PHONE)));
        if (plain == NULL)
            continue;
        m = kn_child_mask_phone(plain);
        join(&acc, m);
        free(m);
        kn_free_secret(plain);
    }
    return acc;
}

/* One row as shown; strings borrowed. */
struct out_row {
    const char *recipient, *child, *klass, *guardian, *channel, *state;
    long long reached_ms, confirmed_ms;
    const char *answer, *comment, *child_state, *via, *address, *phone;
    const char *confirmed_by, *sent_to; /* the child's (guardian.h) */
    /* JSON only: why a bounced or suppressed row was not delivered */
    const char *reason, *reason_ja;
};

/* The words a teacher reads for a bounced ('b') or suppressed ('s')
 * delivery (as kairanctl report's): r->reason and r->reason_ja. */
static void row_reason(struct out_row *r, const struct kn_child_st *s)
{
    char st[16] = "";
    int carrier = 0;
    r->reason = r->reason_ja = NULL;
    if (s->code == 'o') { /* issue 16: the guardian's own choice */
        r->reason = "opted out: the guardian asked not to get this category";
        r->reason_ja = "保護者がこの種類のお知らせを受け取らないよう選びました";
    } else if (s->code == 's') {
        r->reason = "skipped: this address bounced before (suppressed) — "
                    "ask the family for a new address, or clear it";
        r->reason_ja = "以前届かなかったアドレスのため送信を止めています。"
                       "ご家庭に新しいアドレスを確認してください";
    } else if (s->code == 'b') {
        kn_bounce_detail_parse(s->detail, st, sizeof(st), &carrier);
        r->reason = kn_dsn_reason(st, carrier, 0);
        r->reason_ja = kn_dsn_reason(st, carrier, 1);
    }
}

static json_t *jtext(const char *s)
{
    return s != NULL ? kn__httpd_jstr_text(s) : json_null();
}

static void emit_json(json_t *arr, const struct out_row *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "recipient", jtext(r->recipient));
    json_object_set_new(o, "child", jtext(r->child));
    json_object_set_new(o, "class", jtext(r->klass));
    json_object_set_new(o, "guardian", jtext(r->guardian));
    json_object_set_new(o, "channel", jtext(r->channel));
    json_object_set_new(o, "state", jtext(r->state));
    json_object_set_new(o, "reached_at", kn__httpd_jtime(r->reached_ms));
    json_object_set_new(o, "confirmed_at", kn__httpd_jtime(r->confirmed_ms));
    json_object_set_new(o, "answer", jtext(r->answer));
    json_object_set_new(o, "comment", jtext(r->comment));
    json_object_set_new(o, "child_state", jtext(r->child_state));
    json_object_set_new(o, "via", jtext(r->via));
    json_object_set_new(o, "address", jtext(r->address));
    json_object_set_new(o, "phone", jtext(r->phone));
    json_object_set_new(o, "confirmed_by", jtext(r->confirmed_by));
    json_object_set_new(o, "sent_to", jtext(r->sent_to));
    json_object_set_new(o, "reason", jtext(r->reason));
    json_object_set_new(o, "reason_ja", jtext(r->reason_ja));
    json_array_append_new(arr, o);
}

static void emit_csv(FILE *f, const struct out_row *r)
{
    char t1[48] = "", t2[48] = "";
    const char *v[NCOLS];
    if (r->reached_ms > 0)
        kn_time_jst(r->reached_ms, t1, sizeof(t1));
    if (r->confirmed_ms > 0)
        kn_time_jst(r->confirmed_ms, t2, sizeof(t2));
    v[0] = r->recipient;
    v[1] = r->child;
    v[2] = r->klass;
    v[3] = r->guardian;
    v[4] = r->channel;
    v[5] = r->state;
    v[6] = t1;
    v[7] = t2;
    v[8] = r->answer;
    v[9] = r->comment;
    v[10] = r->child_state;
    v[11] = r->via;
    v[12] = r->address;
    v[13] = r->phone;
    v[14] = r->confirmed_by;
    v[15] = r->sent_to;
    for (int i = 0; i < NCOLS; i++) {
        /* a cell of outside text: valid UTF-8 (CP932 conversion and
         * Excel need it) */
        char *t = kn_text_utf8(v[i] ? v[i] : "", v[i] ? strlen(v[i]) : 0);
        kn_csv_put_cell(f, t, i == NCOLS - 1);
        kn_free_secret(t);
    }
}

/* The state value of contact i of x among the page's replies, or NULL. */
static const char *st_at(const redisReply *st, const struct child *x, size_t i)
{
    if (st == NULL || st->type != REDIS_REPLY_ARRAY ||
        x->st0 + i >= st->elements)
        return NULL;
    return kn__httpd_rstr(st->element[x->st0 + i]);
}

/*
 * The rows of one child: its states among the page's replies st (the
 * fields of its contacts), its confirmation ack, whom it was sent to gs
 * (next_guardian; NULL).  To arr (JSON) or f.
 */
static void child_rows(const struct kn_keyring *kr, const struct page *p,
                       const struct child *x, const redisReply *st,
                       const char *ack, const char *gs, json_t *arr, FILE *f)
{
    struct out_row r;
    struct kn_child_st s;
    long long cms;
    const char *answer;
    char *comment, *name, *phone, *via = NULL;
    char *guard = NULL, mask[128], *by, *sent;
    const char *vals[KN_CHILD_MAX_CONTACTS];
    struct kn_child_seen seen;
    enum kn_child_state cs;
    int own;
    int64_t reached;
    size_t via_k = 0;

    for (size_t i = 0; i < x->nk; i++)
        vals[i] = st_at(st, x, i);
    cs = kn_child_resolve(x->id, vals, x->nk, &seen);
    own = seen.own;
    if (seen.via >= 0 && kn_child_st_parse(vals[seen.via], &s) == 0) {
        via = kn_xstrndup(s.rcpt, s.rcpt_len);
        via_k = (size_t)seen.via;
    }
    reached = seen.reached_ms;
    if (x->inactive && !own) {
        free(via);
        return; /* not sent to: not a child of this broadcast */
    }
    child_ack(kr, p, ack, &cms, &answer, &comment);
    name = open_sealed(kr, "name", x->name);
    phone = all_phones(kr, x);
    memset(&r, 0, sizeof(r));
    r.recipient = x->id;
    r.child = name;
    r.klass = x->klass;
    r.confirmed_ms = cms;
    r.answer = answer;
    r.comment = comment;
    r.phone = phone;
    by = cms > 0 && kn_ack_value_guardian_of(ack) >= 0
             ? guardian_label(kr, x, kn_ack_value_guardian_of(ack))
             : NULL;
    sent = gs != NULL ? sent_to_text(kr, x, gs) : NULL;
    r.confirmed_by = by;
    r.sent_to = sent;
    if (x->c == NULL) {
        /* the directory record was deleted since the broadcast */
        r.state = r.child_state = "unknown";
    } else {
        r.child_state = kn_child_state_name(cs);
    }
    if (own) {
        for (size_t i = 0; i < x->nk; i++) {
            char *g, *a;
            if (kn_child_st_parse(st_at(st, x, i), &s) < 0 ||
                !kn_child_st_is(&s, x->id))
                continue;
            g = open_sealed(kr, "name", guardian_sealed(x, x->k[i].guardian));
            a = open_sealed(kr, x->k[i].channel, x->k[i].sealed);
            r.guardian = g;
            r.channel = x->k[i].channel;
            r.state = kn_child_code_name(s.code);
            r.reached_ms = s.code == 'd' ? s.ms : 0;
            r.address = a ? kn_mask_address(a, mask, sizeof(mask)) : NULL;
            row_reason(&r, &s);
            if (arr != NULL)
                emit_json(arr, &r);
            else
                emit_csv(f, &r);
            kn_free_secret(g);
            kn_free_secret(a);
        }
    } else {
        if (via != NULL) {
            char *a = open_sealed(kr, x->k[via_k].channel, x->k[via_k].sealed);
            guard = open_sealed(kr, "name",
                                guardian_sealed(x, x->k[via_k].guardian));
            r.channel = x->k[via_k].channel;
            r.reached_ms = reached;
            r.address = a ? kn_mask_address(a, mask, sizeof(mask)) : NULL;
            kn_free_secret(a);
        } else if (x->c != NULL) {
            guard = all_guardians(kr, x);
        }
        if (x->c != NULL)
            r.state = r.child_state;
        r.guardian = guard;
        r.via = via;
        if (arr != NULL)
            emit_json(arr, &r);
        else
            emit_csv(f, &r);
    }
    OPENSSL_cleanse(mask, sizeof(mask));
    kn_free_secret(guard);
    kn_free_secret(name);
    kn_free_secret(by);
    kn_free_secret(sent);
    free(phone);
    free(via);
    kn_free_secret(comment);
}

/*
 * Does a re-send go to child x (its states among st, its confirmation
 * ack)?  Only a directory child still active, with a contact on the
 * channels, not reached (KN__PICK_UNREACHED) or not confirmed
 * (KN__PICK_UNCONFIRMED).  An inline recipient cannot be addressed again
 * by id: counted as skipped, like a child with no contact (to phone).
 */
static void child_pick(struct page *p, const struct child *x,
                       const redisReply *st, const char *ack)
{
    const char *vals[KN_CHILD_MAX_CONTACTS];
    struct kn_child_seen seen;
    enum kn_child_state cs;
    for (size_t i = 0; i < x->nk; i++)
        vals[i] = st_at(st, x, i);
    cs = kn_child_resolve(x->id, vals, x->nk, &seen);
    if (x->inactive)
        return; /* not sent to, or made inactive since */
    if (p->pick == KN__PICK_UNCONFIRMED
            ? ack != NULL
            : (cs == KN_CHILD_REACHED || cs == KN_CHILD_VIA_SIBLING))
        return;
    if (x->is_inline || x->c == NULL || cs == KN_CHILD_NO_CONTACT) {
        p->skipped++;
        return;
    }
    kn_argv_add(&p->ids, x->id);
}

/* ---- reading a page ---- */

static void page_fetch(struct page *p, struct conn *c);

static void send_csv(struct page *p, struct conn *c);

/* The broadcast may be read by this token (0), or 404/503 answered. */
static int rl_visible(struct batch *b)
{
    const redisReply *h = kn__httpd_brep(b, 0);
    if (!kn__httpd_batch_usable(b))
        return -1;
    if (h == NULL || h->type != REDIS_REPLY_ARRAY || h->elements != 4 ||
        kn__httpd_rstr(h->element[2]) == NULL ||
        !kn__httpd_bc_may_see(b->c, kn__httpd_rstr(h->element[0]),
                              kn__httpd_rstr(h->element[1]))) {
        if (h != NULL && h->type == REDIS_REPLY_ARRAY && h->elements == 4 &&
            kn__httpd_rstr(h->element[2]) != NULL)
            b->c->req.auth_result = "forbidden";
        kn__httpd_respond_error(b->c, 404, "id", "no broadcast %s",
                                b->c->req.param);
        return -1;
    }
    return 0;
}

/* Step 3 done: the rows of the page. */
static void on_states(struct batch *b)
{
    struct page *p = b->arg;
    const redisReply *st = kn__httpd_brep(b, 0), *ak = kn__httpd_brep(b, 1),
                     *gs = kn__httpd_brep(b, 2);
    const struct kn_keyring *kr;
    json_t *arr = NULL, *j;
    if (!kn__httpd_batch_usable(b)) {
        page_free(p);
        return;
    }
    kr = b->srv->d->kr;
    if (!p->csv && !p->pick)
        arr = json_array();
    for (size_t i = 0; i < p->n; i++) {
        const char *a =
            ak != NULL && ak->type == REDIS_REPLY_ARRAY && i < ak->elements
                ? kn__httpd_rstr(ak->element[i])
                : NULL;
        const char *g =
            gs != NULL && gs->type == REDIS_REPLY_ARRAY && i < gs->elements
                ? kn__httpd_rstr(gs->element[i])
                : NULL;
        if (p->pick)
            child_pick(p, &p->ch[i], st, a);
        else
            child_rows(kr, p, &p->ch[i], st, a, g, arr, p->out);
    }
    if (p->pick) {
        if (p->start + p->limit < p->total) {
            p->start += p->limit;
            children_clear(p);
            page_fetch(p, b->c);
        } else {
            void *arg = p->pick_arg;
            p->pick_arg = NULL; /* picked owns it now */
            p->picked(b->c, &p->ids, p->skipped, arg);
            page_free(p);
        }
        return;
    }
    if (p->csv) {
        if (p->start + p->limit < p->total) {
            p->start += p->limit;
            children_clear(p);
            page_fetch(p, b->c);
        } else {
            send_csv(p, b->c);
        }
        return;
    }
    j = json_object();
    json_object_set_new(j, "recipients", arr);
    if (p->start + p->limit < p->total) {
        char cur[32];
        snprintf(cur, sizeof(cur), "a%lld", p->start + p->limit);
        json_object_set_new(j, "next_cursor", json_string(cur));
    } else {
        json_object_set_new(j, "next_cursor", json_null());
    }
    kn__httpd_respond_json(b->c, 200, j, NULL);
    page_free(p);
}

/* Step 3: the states of the page's contacts and its confirmations. */
static void fetch_states(struct page *p, struct conn *c)
{
    struct http_srv *s = c->srv;
    struct batch *b = kn__httpd_batch_new(s, c, on_states, p);
    struct kn_argv a;
    size_t nf = 0;
    kn_argv_init(&a);
    /* HMGET, with the members of a multicast recorded once read as their
     * group's record says (queue/lua/rstates.lua) */
    kn_argv_add(&a, "EVAL");
    kn_argv_add(&a, kn_lua_rstates);
    kn_argv_add(&a, "1");
    kn_argv_take(&a, kn_key_bc(s->d->prefix, p->bid, ":r"));
    for (size_t i = 0; i < p->n; i++) {
        struct child *x = &p->ch[i];
        x->st0 = nf;
        for (size_t k = 0; k < x->nk; k++, nf++)
            kn_argv_add(&a, x->k[k].field);
    }
    if (nf == 0)
        kn_argv_add(&a, "-"); /* HMGET needs one field; its reply unused */
    kn__httpd_batch_add(b, &a);
    kn_argv_add(&a, "HMGET");
    kn_argv_take(&a, kn_key_bc(s->d->prefix, p->bid, ":ack"));
    for (size_t i = 0; i < p->n; i++)
        kn_argv_add(&a, p->ch[i].id);
    if (p->n == 0)
        kn_argv_add(&a, "-");
    kn__httpd_batch_add(b, &a);
    /* whom each child's message went to (next_guardian: guardian.h) */
    kn_argv_add(&a, "HMGET");
    kn_argv_take(&a, kn_key_bc(s->d->prefix, p->bid, ":gs"));
    for (size_t i = 0; i < p->n; i++)
        kn_argv_add(&a, p->ch[i].id);
    if (p->n == 0)
        kn_argv_add(&a, "-");
    kn__httpd_batch_add(b, &a);
    kn_argv_free(&a);
    kn__httpd_batch_end(b);
}

/* The contacts of a child whose record is read. */
static void child_contacts(struct page *p, struct child *x)
{
    struct kn_child_contact k[KN_CHILD_MAX_CONTACTS];
    if (x->c == NULL)
        return;
    x->nk = kn_child_contacts(x->c, p->channels, k, KN_CHILD_MAX_CONTACTS);
    if (x->nk > 0) {
        x->k = kn_xcalloc(x->nk, sizeof(*x->k));
        memcpy(x->k, k, x->nk * sizeof(*x->k));
    }
}

/* Step 2 done: the directory records of the page. */
static void on_records(struct batch *b)
{
    struct page *p = b->arg;
    int r = 0;
    if (!kn__httpd_batch_usable(b)) {
        page_free(p);
        return;
    }
    for (size_t i = 0; i < p->n; i++) {
        struct child *x = &p->ch[i];
        const redisReply *h;
        const char *grade, *klass;
        if (x->c != NULL)
            continue; /* inline */
        h = kn__httpd_brep(b, r++);
        if (h == NULL || h->type != REDIS_REPLY_ARRAY || h->elements != 7 ||
            kn__httpd_rstr(h->element[1]) == NULL)
            continue; /* deleted since: listed as unknown */
        x->name = dup_or_null(kn__httpd_rstr(h->element[0]));
        x->c = json_loads(kn__httpd_rstr(h->element[1]), 0, NULL);
        if (!json_is_object(x->c)) {
            json_decref(x->c);
            x->c = NULL;
            continue;
        }
        x->inactive = kn__httpd_rstr(h->element[2]) != NULL &&
                      strcmp(kn__httpd_rstr(h->element[2]), "0") == 0;
        grade = kn__httpd_rstr(h->element[3]);
        klass = kn__httpd_rstr(h->element[4]);
        if (grade != NULL && klass != NULL)
            x->klass = kn_xasprintf("%s %s", grade, klass);
        else
            x->klass = dup_or_null(grade ? grade : klass);
        x->guardian = dup_or_null(kn__httpd_rstr(h->element[5]));
        x->phone = dup_or_null(kn__httpd_rstr(h->element[6]));
        child_contacts(p, x);
    }
    fetch_states(p, b->c);
}

/* Step 1 done: the broadcast and the page's audience entries. */
static void on_head(struct batch *b)
{
    struct page *p = b->arg;
    const redisReply *h = kn__httpd_brep(b, 0), *len = kn__httpd_brep(b, 2),
                     *ents = kn__httpd_brep(b, 3);
    struct batch *b2 = NULL;
    if (rl_visible(b) < 0) {
        page_free(p);
        return;
    }
    if (p->tenant == NULL) {
        p->tenant = kn_xstrdup(
            kn__httpd_rstr(h->element[0]) ? kn__httpd_rstr(h->element[0]) : "");
        p->channels = dup_or_null(kn__httpd_rstr(h->element[3]));
        if (p->channels == NULL)
            p->channels = kn_xstrdup("");
        p->choices =
            kn__httpd_rstr(kn__httpd_brep(b, 1))
                ? json_loads(kn__httpd_rstr(kn__httpd_brep(b, 1)), 0, NULL)
                : NULL;
        if (!json_is_array(p->choices)) {
            json_decref(p->choices);
            p->choices = json_array();
        }
    }
    p->total = kn__httpd_rnum(len);
    if (ents == NULL || ents->type != REDIS_REPLY_ARRAY) {
        kn__httpd_respond_error(b->c, 503, NULL,
                                "Redis is unreachable; try again");
        page_free(p);
        return;
    }
    p->ch = kn_xcalloc(ents->elements + 1, sizeof(*p->ch));
    for (size_t i = 0; i < ents->elements; i++) {
        const char *e = kn__httpd_rstr(ents->element[i]);
        struct child *x = &p->ch[p->n];
        if (e == NULL)
            continue;
        if (strncmp(e, "i:", 2) == 0) {
            json_t *j = json_loads(e + 2, 0, NULL);
            const char *id = json_string_value(json_object_get(j, KN_DIR_ID));
            if (id == NULL) {
                json_decref(j);
                continue;
            }
            x->id = kn_xstrdup(id);
            x->c = j;
            x->is_inline = 1;
            x->name =
                dup_or_null(json_string_value(json_object_get(j, KN_DIR_NAME)));
            child_contacts(p, x);
            p->n++;
        } else if (strncmp(e, "d:", 2) == 0 && e[2] != '\0') {
            char *k = kn_key_rcpt(b->srv->d->prefix, p->tenant, e + 2);
            x->id = kn_xstrdup(e + 2);
            if (b2 == NULL)
                b2 = kn__httpd_batch_new(b->srv, b->c, on_records, p);
            kn__httpd_batch_cmd(b2, "HMGET", k, "name", KN_DIR_HASH_FIELD,
                                "active", "grade", "class", "guardian", "phone",
                                NULL);
            free(k);
            p->n++;
        }
    }
    if (b2 != NULL)
        kn__httpd_batch_end(b2);
    else
        fetch_states(p, b->c);
}

/* Step 1: the broadcast's head and the page's slice of its audience. */
static void page_fetch(struct page *p, struct conn *c)
{
    struct http_srv *s = c->srv;
    struct batch *b = kn__httpd_batch_new(s, c, on_head, p);
    char *k = kn_key_bc(s->d->prefix, p->bid, ""), from[24], to[24];
    kn__httpd_batch_cmd(b, "HMGET", k, "tenant", "sender_token", "status",
                        "channels", NULL);
    kn__httpd_batch_cmd(b, "HGET", k, "choices", NULL);
    free(k);
    k = kn_key_bc(s->d->prefix, p->bid, ":aud");
    snprintf(from, sizeof(from), "%lld", p->start);
    snprintf(to, sizeof(to), "%lld", p->start + p->limit - 1);
    kn__httpd_batch_cmd(b, "LLEN", k, NULL);
    kn__httpd_batch_cmd(b, "LRANGE", k, from, to, NULL);
    free(k);
    kn__httpd_batch_end(b);
}

/* ---- GET /v1/broadcasts/{id}/recipients?cursor=C&limit=N ---- */

void kn__httpd_run_bc_rcpts(struct conn *c)
{
    char *cur = kn__httpd_query_get(c->req.query, "cursor");
    char *lim = kn__httpd_query_get(c->req.query, "limit");
    long n = PAGE_DEFAULT;
    char *end = NULL;
    struct page *p;

    if (!kn_id_valid(c->req.param)) {
        kn__httpd_respond_error(c, 404, "id", "no broadcast with such an id");
        goto out;
    }
    if (lim != NULL) {
        n = strtol(lim, &end, 10);
        if (lim[0] < '0' || lim[0] > '9' || *end != '\0' || n < 1 ||
            n > PAGE_MAX) {
            kn__httpd_respond_error(c, 400, "limit",
                                    "give limit as a number from 1 to %d",
                                    PAGE_MAX);
            goto out;
        }
    }
    if (cur != NULL && (cur[0] != 'a' || cur[1] < '0' || cur[1] > '9' ||
                        strspn(cur + 1, "0123456789") != strlen(cur + 1) ||
                        strlen(cur) > 13)) {
        kn__httpd_respond_error(c, 400, "cursor",
                                "give back the next_cursor of the previous "
                                "page as it was, or none for the first page");
        goto out;
    }
    p = kn_xcalloc(1, sizeof(*p));
    p->bid = kn_xstrdup(c->req.param);
    p->start = cur != NULL ? strtoll(cur + 1, NULL, 10) : 0;
    p->limit = n;
    page_fetch(p, c);
out:
    free(cur);
    free(lim);
}

/* ---- GET /v1/broadcasts/{id}/recipients.csv[?charset=cp932] ---- */

/*
 * The CSV is read page by page (CSV_PAGE children each, so no Redis
 * command is larger than a JSON page's), its rows written as each page
 * arrives; the conversion to CP932 of the whole text (50,000 children:
 * about 5 MB) is done in the thread pool.  The connection is held
 * meanwhile and answered on the loop only if it is still open.
 */
struct csv_job {
    uv_work_t work;
    struct http_srv *srv;
    struct conn *c;
    struct page *p;
    char *body; /* the answer, built by the work */
    size_t blen;
};

static void csv_work(uv_work_t *w)
{
    struct csv_job *j = kn_container_of(w, struct csv_job, work);
    j->body = kn_csv_cp932(j->p->text, j->p->len, &j->blen);
}

static void csv_answer(struct conn *c, const char *body, size_t len, int cp932)
{
    char extra[200];
    snprintf(extra, sizeof(extra),
             "Content-Disposition: attachment; "
             "filename=\"%s-recipients.csv\"\r\n",
             c->req.param);
    kn__httpd_respond(c, 200,
                      cp932 ? "text/csv; charset=Windows-31J"
                            : "text/csv; charset=utf-8",
                      body, len, NULL, extra);
}

static void csv_done(uv_work_t *w, int status)
{
    struct csv_job *j = kn_container_of(w, struct csv_job, work);
    struct http_srv *s = j->srv;

    if (kn__httpd_conn_release(j->c)) {
        if (status != 0 || j->body == NULL)
            kn__httpd_respond_error(j->c, 503, NULL,
                                    "the export was cancelled; try again");
        else
            csv_answer(j->c, j->body, j->blen, 1);
    }
    if (j->body != NULL) {
        OPENSSL_cleanse(j->body, j->blen);
        free(j->body);
    }
    page_free(j->p);
    free(j);
    kn__httpd_srv_unref(s);
}

/*
 * The operation log line of a download (the children's and guardians'
 * names, answers and comments leave kairan in a file, as with kairanctl
 * recipients export): written before the answer, and no file without it.
 */
static int audit_csv(struct conn *c, const struct page *p)
{
    json_t *f = json_object();
    char *actor = kn_xasprintf("token:%s", c->req.tok.id);
    int rc;
    json_object_set_new(f, "tenant", json_string(p->tenant));
    json_object_set_new(f, "broadcast", json_string(p->bid));
    json_object_set_new(f, "children", json_integer((json_int_t)p->total));
    json_object_set_new(f, "token", json_string(c->req.tok.id));
    if (c->req.tok.login != NULL)
        json_object_set_new(f, "login", kn__httpd_jstr_text(c->req.tok.login));
    json_object_set_new(f, "source", json_string(c->req.source));
    json_object_set_new(f, "via", json_string("http"));
    rc = kn_audit_op(c->srv->cfg->audit_dir, actor, "recipients.csv", f);
    if (rc < 0)
        kn_log(KN_LOG_WARN, "http", "cannot append to the operation log", "dir",
               c->srv->cfg->audit_dir, "error", strerror(errno), NULL);
    free(actor);
    return rc;
}

/* Every page read: answer (UTF-8 at once, CP932 through the pool). */
static void send_csv(struct page *p, struct conn *c)
{
    struct csv_job *j;
    fclose(p->out);
    p->out = NULL;
    if (audit_csv(c, p) < 0) {
        kn__httpd_respond_error(c, 503, NULL,
                                "the operation log cannot be written: "
                                "nothing exported; try again");
        page_free(p);
        return;
    }
    if (!p->cp932) {
        csv_answer(c, p->text, p->len, 0);
        page_free(p);
        return;
    }
    j = kn_xcalloc(1, sizeof(*j));
    j->srv = c->srv;
    j->c = c;
    j->p = p;
    c->srv->live++;
    kn__httpd_conn_hold(c);
    if (uv_queue_work(c->srv->d->loop, &j->work, csv_work, csv_done) != 0)
        csv_done(&j->work, -1);
}

void kn__httpd_run_bc_rcpts_csv(struct conn *c)
{
    char *cs = kn__httpd_query_get(c->req.query, "charset");
    struct page *p;
    if (!kn_id_valid(c->req.param)) {
        kn__httpd_respond_error(c, 404, "id", "no broadcast with such an id");
        free(cs);
        return;
    }
    if (cs != NULL && strcmp(cs, "cp932") != 0 && strcmp(cs, "utf-8") != 0) {
        kn__httpd_respond_error(c, 400, "charset",
                                "give charset=cp932 (Excel's Japanese) or "
                                "charset=utf-8 (the default, with a BOM)");
        free(cs);
        return;
    }
    p = kn_xcalloc(1, sizeof(*p));
    p->bid = kn_xstrdup(c->req.param);
    p->limit = CSV_PAGE;
    p->csv = 1;
    p->cp932 = cs != NULL && strcmp(cs, "cp932") == 0;
    free(cs);
    p->out = open_memstream(&p->text, &p->len);
    if (p->out == NULL)
        KN_PANIC("open_memstream failed");
    if (!p->cp932)
        fputs("\xEF\xBB\xBF", p->out); /* the BOM: Excel reads UTF-8 then */
    for (int i = 0; i < NCOLS; i++)
        kn_csv_put_cell(p->out, cols[i], i == NCOLS - 1);
    page_fetch(p, c);
}

/* ---- the children of a re-send (resend.c) ---- */

void kn__httpd_rcpts_pick(struct conn *c, const char *bid, int which,
                          kn__httpd_pick_cb *done, void (*free_arg)(void *),
                          void *arg)
{
    struct page *p = kn_xcalloc(1, sizeof(*p));
    p->bid = kn_xstrdup(bid);
    p->limit = CSV_PAGE;
    p->pick = which;
    kn_argv_init(&p->ids);
    p->picked = done;
    p->pick_free = free_arg;
    p->pick_arg = arg;
    page_fetch(p, c);
}
