/*
 * mypage.c - the guardian's own page (issue 16, docs/mypage.md): the page
 * <public_url>/m (the files of web/mypage/, embedded at build time) and its
 * JSON POSTs.  No login: each call carries the personal link's token
 * (model/gtoken.h, KN_GTOKEN_MYPAGE: tenant, child, the blind index of the
 * address the link went to) in its body as "t", never in a URL.
 *
 *   POST /m/view  {t}: the school, the child, this guardian's channels
 *                 (masked), order, stopped channels, language, the
 *                 tenant's categories with the opt-outs, and the messages
 *                 of the last 30 days sent to the child.
 *   POST /m/save  {t, lg?, ch?, ox?, xc?, code? | passcode?}: the changes,
 *                 through queue/lua/pref_set.lua (the one writer of "pf").
 *                 Stopping a channel (xc gains one) cuts the guardian off
 *                 and needs a one-time code from /m/code or the sheet's
 *                 passcode; the rest needs the link only.  An emergency
 *                 category cannot be opted out of.
 *   POST /m/code  {t, via: "email"|"line"}: a 6-digit code (10 minutes, 5
 *                 tries) to one of the guardian's own contacts.
 *   POST /m/link  {id, email}: "send me my link": a mail with a fresh link
 *                 when the address is one of that sheet's child's
 *                 guardians'; the same answer after the same reads
 *                 whether or not it is, rate-limited per address, per
 *                 sheet ID and per client.
 *
 * Every change goes to the operation log (guardian.prefs, the names of
 * the fields changed, never a value).  The mails go out as urgent
 * broadcasts of the school with one inline recipient, sent by "mypage",
 * as the registration's do.  The keys it keeps (mpc, mpf, mpn, mpl:
 * queue/keys.h) expire by themselves.
 */
#include "dispatcher/http/http_int.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/kn.h"
#include "common/log.h"
#include "common/seal.h"
#include "common/text.h"
#include "model/address.h"
#include "model/audit.h"
#include "model/broadcast.h"
#include "model/directory.h"
#include "model/gtoken.h"
#include "model/label.h"
#include "model/regsheet.h"
#include "queue/keys.h"
#include "queue/scripts.h"
#include "queue/submit.h"

#define MP_CODE_MS    (10LL * 60 * 1000)
#define MP_CODE_TRIES 5
#define MP_CODES_HOUR 5
#define MP_HOUR_MS    (60LL * 60 * 1000)
#define MP_DAYS_MS    (30LL * 24 * 60 * 60 * 1000)
#define MP_SCAN       400 /* the tenant's broadcasts looked at (the "400" below) */
#define MP_MSGS       30 /* messages shown, at most */
#define MP_OX_MAX     64 /* categories opted out of, at most */

#define BAD_LINK                                                                                     \
    "このリンクは使えません。もう一度リンクを送ってもらってください " \
    "(this link is not valid: ask for a new one)"
#define OLD_LINK                                                                                                 \
    "このリンクは有効期限が切れました。新しいリンクを送ってもらってください " \
    "(this link has expired: ask for a new one)"

/* The page's files (web/mypage/; the Makefile's WEB_MYPAGE): one strings
 * file per language of languages[] below. */
extern const char kn__web_mypage_html[], kn__web_mypage_css[],
    kn__web_mypage_js[], kn__web_mypage_ja[], kn__web_mypage_en[],
    kn__web_mypage_pt[], kn__web_mypage_zh[], kn__web_mypage_vi[],
    kn__web_mypage_fil[];
extern const size_t kn__web_mypage_html_len, kn__web_mypage_css_len,
    kn__web_mypage_js_len, kn__web_mypage_ja_len, kn__web_mypage_en_len,
    kn__web_mypage_pt_len, kn__web_mypage_zh_len, kn__web_mypage_vi_len,
    kn__web_mypage_fil_len;

/* The language choice (言語): the languages a broadcast's translations
 * are most often in (Japanese schools' largest foreign-resident groups:
 * Portuguese, Chinese, Vietnamese, Filipino), each a tag the compose
 * page offers.  It decides which translation the guardian receives and
 * the language the page opens in: each has a strings file
 * (web/mypage/strings-<code>.json, served below); a language added here
 * without one shows the page in English. */
static const char *const languages[] = {"ja", "en", "pt", "zh", "vi", "fil"};

/* The guardian pages' strict policy (guardian_mail.c). */
static const char *const csp = kn__httpd_csp_guardian;

/* ------------------------------------------------------------ the page */

void kn__httpd_run_mypage_page(struct conn *c)
{
    kn__httpd_respond(c, 200, "text/html; charset=utf-8", kn__web_mypage_html,
                      kn__web_mypage_html_len, csp, NULL);
}

void kn__httpd_run_mypage_file(struct conn *c)
{
    static const struct kn__web_file files[] = {
        {"mypage.css", "text/css; charset=utf-8", kn__web_mypage_css,
         &kn__web_mypage_css_len},
        {"mypage.js", "text/javascript; charset=utf-8", kn__web_mypage_js,
         &kn__web_mypage_js_len},
        {"strings-ja.json", "application/json; charset=utf-8",
         kn__web_mypage_ja, &kn__web_mypage_ja_len},
        {"strings-en.json", "application/json; charset=utf-8",
         kn__web_mypage_en, &kn__web_mypage_en_len},
        {"strings-pt.json", "application/json; charset=utf-8",
         kn__web_mypage_pt, &kn__web_mypage_pt_len},
        {"strings-zh.json", "application/json; charset=utf-8",
         kn__web_mypage_zh, &kn__web_mypage_zh_len},
        {"strings-vi.json", "application/json; charset=utf-8",
         kn__web_mypage_vi, &kn__web_mypage_vi_len},
        {"strings-fil.json", "application/json; charset=utf-8",
         kn__web_mypage_fil, &kn__web_mypage_fil_len},
    };
    kn__httpd_serve_file(c, files, KN_ARRAY_SIZE(files), csp);
}

/* ------------------------------------------------------------ helpers */

static const char *jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* 1 if guardian o has the blind index ix (e-mail, LINE or a push token). */
static int has_index(json_t *o, const char *ix)
{
    json_t *t;
    size_t i;
    if (!json_is_object(o))
        return 0;
    if ((jstr(o, KN_DIR_EMAIL_INDEX) &&
         strcmp(jstr(o, KN_DIR_EMAIL_INDEX), ix) == 0) ||
        (jstr(o, KN_DIR_LINE_INDEX) &&
         strcmp(jstr(o, KN_DIR_LINE_INDEX), ix) == 0))
        return 1;
    json_array_foreach(json_object_get(o, KN_DIR_PUSH), i, t)
    {
        const char *ti = jstr(t, KN_DIR_PUSH_INDEX);
        if (ti != NULL && strcmp(ti, ix) == 0)
            return 1;
    }
    return 0;
}

json_t *kn__mp_find_guardian(json_t *rec, json_t *reg, const char *ix)
{
    json_t *g;
    size_t i;
    if (has_index(rec, ix))
        return rec;
    json_array_foreach(json_object_get(rec, KN_DIR_GUARDIANS), i, g)
    {
        if (has_index(g, ix))
            return g;
    }
    json_array_foreach(reg, i, g)
    {
        if (has_index(g, ix))
            return g;
    }
    return NULL;
}

/* 1 if the guardian g has a contact on channel ch. */
static int has_channel(json_t *g, int ch)
{
    switch (ch) {
    case KN_CH_EMAIL:
        return jstr(g, KN_DIR_EMAIL) != NULL;
    case KN_CH_LINE:
        return jstr(g, KN_DIR_LINE) != NULL;
    case KN_CH_PUSH:
        return json_array_size(json_object_get(g, KN_DIR_PUSH)) > 0;
    }
    return 0;
}

static int list_has(json_t *a, const char *s)
{
    json_t *v;
    size_t i;
    json_array_foreach(a, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
            return 1;
    }
    return 0;
}

/* The guardian's channel order: its own ("pf"."ch"), else the import's
 * "ch", then every other channel it has, in kairan's order. */
static json_t *channel_order(json_t *g)
{
    json_t *out = json_array(), *src[2], *v;
    size_t i;
    src[0] =
        json_object_get(json_object_get(g, KN_DIR_PREFS), KN_DIR_PREF_CHANNELS);
    src[1] = json_object_get(g, KN_DIR_CHANNELS);
    for (int k = 0; k < 2; k++) {
        json_array_foreach(src[k], i, v)
        {
            int ch =
                json_is_string(v) ? kn_channel_parse(json_string_value(v)) : -1;
            if (ch >= 0 && has_channel(g, ch) &&
                !list_has(out, json_string_value(v)))
                json_array_append(out, v);
        }
    }
    for (int ch = 0; ch < KN_CH__COUNT; ch++) {
        if (has_channel(g, ch) && !list_has(out, kn_channel_name(ch)))
            json_array_append_new(out, json_string(kn_channel_name(ch)));
    }
    return out;
}

/* A list of distinct channel names (ch, xc): 0, or -1 when it is not. */
static int channel_list_ok(json_t *a)
{
    json_t *v;
    size_t i;
    if (!json_is_array(a) || json_array_size(a) > KN_CH__COUNT)
        return -1;
    json_array_foreach(a, i, v)
    {
        if (!json_is_string(v) || kn_channel_parse(json_string_value(v)) < 0)
            return -1;
        for (size_t k = 0; k < i; k++) {
            if (json_equal(json_array_get(a, k), v))
                return -1;
        }
    }
    return 0;
}

/* A category name as a guardian may send one: 1-200 bytes of UTF-8
 * without control characters (it must also be one of the tenant's). */
static int category_ok(json_t *v)
{
    const char *s = json_string_value(v);
    size_t n = s ? strlen(s) : 0;
    char *safe;
    int same;
    if (n == 0 || n > 200)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    }
    safe = kn_text_utf8(s, n);
    same = strcmp(safe, s) == 0;
    free(safe);
    return same;
}

/* One message from "mypage" to one address, named after the child (so
 * that its own mail carries no foot: kn__httpd_guardian_send's
 * recipients are inline). */
static int send_one(struct http_srv *s, const char *tenant, const char *child,
                    const char *channel, const char *to, const char *subject,
                    const char *body)
{
    return kn__httpd_guardian_send(s, tenant, "mypage", channel, &child, &to, 1,
                                   subject, body);
}

char *kn__mp_key(const struct kn_daemon *d, const char *kind, const char *what)
{
    char h[33];
    kn_blind_index(d->kr, "mypage", what, h);
    return kn_key_mypage(d->prefix, kind, h);
}

/* The keyed hash of a one-time code for the guardian ci. */
static void code_hash(const struct kn_keyring *kr, const char *ci,
                      const char *code, char out[33])
{
    char *both = kn_xasprintf("%s:%s", ci, code);
    kn_blind_index(kr, "mypagecode", both, out);
    kn_free_secret(both);
}

/* ------------------------------------------------ one request's state */

enum mp_op { MP_VIEW, MP_SAVE, MP_CODE };

struct mp {
    int op;
    struct conn *c; /* save: held while pref_set runs */
    struct kn_gtoken tk;
    /* "<tenant>|<child>|<index>": names the guardian (the code and
     * failure keys hash it); room for the longest of each (64, 128, 64),
     * never cut: two guardians must never share it */
    char ci[320];
    json_t *req; /* the request body */
    json_t *rec, *reg, *g;
    json_t *cats;          /* [{name, emergency}] */
    char *name;            /* the child's (heap, secret) */
    char *groups;          /* the child's groups, ";"-separated, or NULL */
    char *sheet;           /* the live sheet's ID, or NULL */
    long long fails, sent; /* fails: before this request's try */
    int trying;            /* save: a code or passcode given (counted) */
    char code_h[40];       /* save: the stored code's hash */
    json_t *out;           /* view: the answer being built */
    struct kn_argv ids;
};

static void mp_free(struct mp *m)
{
    kn_gtoken_free(&m->tk);
    json_decref(m->req);
    json_decref(m->rec);
    json_decref(m->reg);
    json_decref(m->cats);
    json_decref(m->out);
    kn__httpd_free_secret(&m->name);
    free(m->groups);
    free(m->sheet);
    kn_argv_free(&m->ids);
    free(m);
}

static void bad_link(struct conn *c, int expired)
{
    c->req.auth_result = expired ? "expired" : "bad_link";
    kn__httpd_respond_json(c, 401,
                           json_pack("{s:s,s:n,s:b}", "error",
                                     expired ? OLD_LINK : BAD_LINK, "field",
                                     "expired", expired),
                           NULL);
}

static int is_emergency(const struct mp *m, const char *cat)
{
    json_t *v;
    size_t i;
    json_array_foreach(m->cats, i, v)
    {
        if (strcmp(jstr(v, "name"), cat) == 0)
            return json_is_true(json_object_get(v, "emergency"));
    }
    return 0;
}

static int is_category(const struct mp *m, const char *cat)
{
    json_t *v;
    size_t i;
    json_array_foreach(m->cats, i, v)
    {
        if (strcmp(jstr(v, "name"), cat) == 0)
            return 1;
    }
    return 0;
}

/* The tenant's categories from HGETALL cats:<T>: the built-in ones, then
 * its own by name. */
static json_t *categories(const redisReply *h)
{
    static const char *const builtin[] = {"notice", "event", "drill",
                                          "emergency"};
    json_t *out = json_array(), *own = json_array();
    for (size_t i = 0; i < KN_ARRAY_SIZE(builtin); i++)
        json_array_append_new(
            out,
            json_pack("{s:s,s:b}", "name", builtin[i], "emergency",
                      kn_category_builtin(builtin[i]) == KN_CAT_EMERGENCY));
    if (h != NULL && h->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i + 1 < h->elements; i += 2) {
            const char *nm = kn__httpd_rstr(h->element[i]);
            const char *fl = kn__httpd_rstr(h->element[i + 1]);
            if (nm == NULL || kn_category_builtin(nm) != KN_CAT_OWN)
                continue;
            json_array_append_new(
                own, json_pack("{s:s,s:b}", "name", nm, "emergency",
                               fl != NULL && strcmp(fl, "emergency") == 0));
        }
    }
    /* HGETALL's order is Redis's: sort by name for a stable page. */
    for (size_t i = 1; i < json_array_size(own); i++) {
        for (size_t k = i; k > 0; k--) {
            json_t *a = json_array_get(own, k - 1), *b = json_array_get(own, k);
            if (strcmp(jstr(a, "name"), jstr(b, "name")) <= 0)
                break;
            json_incref(a);
            json_array_set(own, k - 1, b);
            json_array_set_new(own, k, a);
        }
    }
    json_array_extend(out, own);
    json_decref(own);
    return out;
}

static void view_go(struct conn *c, struct mp *m);
static void save_go(struct conn *c, struct mp *m);
static void code_go(struct conn *c, struct mp *m);

/* The first reads of every call: the record, the registrations, the
 * categories, whether the tenant is closed, and the code keys. */
static void on_base(struct batch *b)
{
    struct mp *m = b->arg;
    struct conn *c = b->c;
    const redisReply *r0, *r1;
    json_t *rc = NULL;
    if (!kn__httpd_batch_usable(b))
        goto out;
    r0 = kn__httpd_brep(b, 0);
    r1 = kn__httpd_brep(b, 1);
    if (kn__httpd_rstr(kn__httpd_brep(b, 3)) != NULL) { /* closed */
        bad_link(c, 0);
        goto out;
    }
    if (r0 && r0->type == REDIS_REPLY_ARRAY && r0->elements == 3) {
        const char *s = kn__httpd_rstr(r0->element[0]);
        if (s != NULL)
            rc = json_loads(s, 0, NULL);
        m->name = kn__httpd_dupstr(kn__httpd_rstr(r0->element[1]));
        m->groups = kn__httpd_dupstr(kn__httpd_rstr(r0->element[2]));
    }
    if (r1 && r1->type == REDIS_REPLY_ARRAY && r1->elements == 2) {
        const char *s = kn__httpd_rstr(r1->element[0]);
        if (s != NULL)
            m->reg = json_loads(s, 0, NULL);
        m->sheet = kn__httpd_dupstr(kn__httpd_rstr(r1->element[1]));
    }
    if (rc == NULL) { /* a child no longer in the directory */
        bad_link(c, 0);
        goto out;
    }
    m->rec = rc; /* m owns it now */
    rc = NULL;
    m->g = kn__mp_find_guardian(m->rec, m->reg, m->tk.index);
    if (m->g == NULL) { /* that address is no longer the child's */
        bad_link(c, 0);
        goto out;
    }
    if (m->name != NULL) {
        char *plain = kn__httpd_unseal_opt(c->srv->d->kr, "name", m->name);
        kn__httpd_free_secret(&m->name);
        m->name = plain;
    }
    m->cats = categories(kn__httpd_brep(b, 2));
    if (m->op == MP_SAVE) {
        const char *h = kn__httpd_rstr(kn__httpd_brep(b, 4));
        snprintf(m->code_h, sizeof(m->code_h), "%s", h ? h : "");
        m->fails = kn__httpd_rnum(kn__httpd_brep(b, 5)) - m->trying;
        save_go(c, m);
    } else if (m->op == MP_CODE) {
        m->sent = kn__httpd_rnum(kn__httpd_brep(b, 4));
        code_go(c, m);
    } else {
        view_go(c, m);
    }
    return;
out:
    json_decref(rc);
    mp_free(m);
}

/*
 * Start a call: the body, its token "t" (401 with "expired" when it is
 * genuine but old: the page then offers "send me my link"), then the
 * first reads.  check, when not NULL, looks at the rest of the body
 * first and answers 400 itself (returning -1).
 */
static void mp_start(struct conn *c, int op,
                     int (*check)(struct conn *c, json_t *j))
{
    struct kn_daemon *d = c->srv->d;
    json_t *j = kn__httpd_json_object(c);
    const char *t;
    struct mp *m;
    struct batch *b;
    char *k;
    int rc;

    if (j == NULL)
        return;
    t = jstr(j, "t");
    if (t == NULL || strlen(t) > KN_GTOKEN_MAX) {
        json_decref(j);
        bad_link(c, 0);
        return;
    }
    m = kn_xcalloc(1, sizeof(*m));
    kn_argv_init(&m->ids);
    m->op = op;
    m->req = j;
    rc = kn_gtoken_parse(d->kr, t, KN_GTOKEN_MYPAGE, kn_now_ms(), &m->tk);
    if (rc < 0) {
        bad_link(c, rc == KN_ETIMEDOUT);
        mp_free(m);
        return;
    }
    if (check != NULL && check(c, j) < 0) {
        mp_free(m);
        return;
    }
    if ((size_t)snprintf(m->ci, sizeof(m->ci), "%s|%s|%s", m->tk.tenant,
                         m->tk.child, m->tk.index) >= sizeof(m->ci)) {
        bad_link(c, 0); /* longer than any token kairan makes */
        mp_free(m);
        return;
    }
    b = kn__httpd_batch_new(c->srv, c, on_base, m);
    k = kn_key_rcpt(d->prefix, m->tk.tenant, m->tk.child);
    kn__httpd_batch_cmd(b, "HMGET", k, "c", "name", "groups", NULL);
    free(k);
    k = kn_key_reg(d->prefix, m->tk.tenant, m->tk.child);
    kn__httpd_batch_cmd(b, "HMGET", k, "g", "sheet", NULL);
    free(k);
    k = kn_key_cats(d->prefix, m->tk.tenant);
    kn__httpd_batch_cmd(b, "HGETALL", k, NULL);
    free(k);
    k = kn__key(d, "tenant:%s", m->tk.tenant);
    kn__httpd_batch_cmd(b, "HGET", k, "closed_ms", NULL);
    free(k);
    if (op == MP_SAVE) {
        const char *tc = jstr(j, "code"), *tp = jstr(j, "passcode");
        k = kn__mp_key(d, "mpc", m->ci);
        kn__httpd_batch_cmd(b, "GET", k, NULL);
        free(k);
        k = kn__mp_key(d, "mpf", m->ci);
        if ((tc != NULL && tc[0] != '\0') || (tp != NULL && tp[0] != '\0')) {
            /* a try of a code or passcode, counted before it is judged */
            m->trying = 1;
            kn__httpd_batch_count(b, k, NULL, MP_CODE_MS);
        } else {
            kn__httpd_batch_cmd(b, "GET", k, NULL);
        }
        free(k);
    } else if (op == MP_CODE) {
        k = kn__mp_key(d, "mpn", m->ci);
        kn__httpd_batch_cmd(b, "GET", k, NULL);
        free(k);
    }
    kn__httpd_batch_end(b);
}

/* ------------------------------------------------ POST /m/view */

/* 1 if the broadcast's audience (its "groups" and "rcpt_ids", JSON
 * arrays) names the child or one of its groups (";"-separated). */
static int names_child(const char *groups_json, const char *ids_json,
                       const char *child, const char *child_groups)
{
    json_t *a = ids_json ? json_loads(ids_json, 0, NULL) : NULL, *v;
    size_t i;
    int hit = list_has(a, child);
    json_decref(a);
    if (hit || child_groups == NULL || groups_json == NULL)
        return hit;
    a = json_loads(groups_json, 0, NULL);
    json_array_foreach(a, i, v)
    {
        const char *g = json_string_value(v), *p = child_groups;
        size_t n = g ? strlen(g) : 0;
        while (n > 0 && p != NULL && *p) {
            const char *e = strchr(p, ';');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            if (len == n && memcmp(p, g, n) == 0)
                hit = 1;
            p = e ? e + 1 : NULL;
        }
    }
    json_decref(a);
    return hit;
}

static void on_bodies(struct batch *b)
{
    struct mp *m = b->arg;
    struct conn *c = b->c;
    json_t *msgs;
    size_t i;
    json_t *v;
    if (!kn__httpd_batch_usable(b))
        goto out;
    msgs = json_object_get(m->out, "messages");
    json_array_foreach(msgs, i, v)
    {
        json_object_set_new(
            v, "body",
            kn__httpd_jstr_text(kn__httpd_rstr(kn__httpd_brep(b, (int)i))));
    }
    c->req.auth_result = "ok";
    kn__httpd_respond_json(c, 200, json_incref(m->out), NULL);
out:
    mp_free(m);
}

static void on_broadcasts(struct batch *b)
{
    struct mp *m = b->arg;
    struct conn *c = b->c;
    struct kn_daemon *d;
    json_t *msgs;
    struct batch *nb;
    if (!kn__httpd_batch_usable(b)) {
        mp_free(m);
        return;
    }
    d = c->srv->d;
    msgs = json_object_get(m->out, "messages");
    for (int i = 0; i < m->ids.n && json_array_size(msgs) < MP_MSGS; i++) {
        const redisReply *h = kn__httpd_brep(b, i);
        const char *f[7];
        if (h == NULL || h->type != REDIS_REPLY_ARRAY || h->elements != 7)
            continue;
        for (int k = 0; k < 7; k++)
            f[k] = kn__httpd_rstr(h->element[k]);
        if (f[0] == NULL || strcmp(f[0], m->tk.tenant) != 0 ||
            (f[6] != NULL && (strcmp(f[6], "cancelled") == 0 ||
                              strcmp(f[6], "scheduled") == 0)))
            continue;
        if (!names_child(f[1], f[2], m->tk.child, m->groups))
            continue;
        json_array_append_new(
            msgs, json_pack("{s:s,s:o,s:o,s:I}", "id", m->ids.v[i], "subject",
                            kn__httpd_jstr_text(f[3]), "category",
                            kn__httpd_jstr_text(f[4]), "created_ms",
                            (json_int_t)(f[5] ? atoll(f[5]) : 0)));
    }
    nb = kn__httpd_batch_new(c->srv, c, on_bodies, m);
    {
        size_t i;
        json_t *v;
        json_array_foreach(msgs, i, v)
        {
            char *k = kn_key_bc(d->prefix, jstr(v, "id"), "");
            kn__httpd_batch_cmd(nb, "HGET", k, "body", NULL);
            free(k);
        }
    }
    kn__httpd_batch_end(nb);
}

static void on_recent(struct batch *b)
{
    struct mp *m = b->arg;
    struct conn *c = b->c;
    struct kn_daemon *d;
    const redisReply *z;
    struct batch *nb;
    if (!kn__httpd_batch_usable(b)) {
        mp_free(m);
        return;
    }
    d = c->srv->d;
    z = kn__httpd_brep(b, 0);
    nb = kn__httpd_batch_new(c->srv, c, on_broadcasts, m);
    for (size_t i = 0; z && z->type == REDIS_REPLY_ARRAY && i < z->elements;
         i++) {
        const char *id = kn__httpd_rstr(z->element[i]);
        char *k;
        if (id == NULL)
            continue;
        kn_argv_add(&m->ids, id);
        k = kn_key_bc(d->prefix, id, "");
        kn__httpd_batch_cmd(nb, "HMGET", k, "tenant", "groups", "rcpt_ids",
                            "subject", "category", "created_ms", "status",
                            NULL);
        free(k);
    }
    kn__httpd_batch_end(nb);
}

static void view_go(struct conn *c, struct mp *m)
{
    struct kn_daemon *d = c->srv->d;
    json_t *pf = json_object_get(m->g, KN_DIR_PREFS);
    json_t *xc = json_object_get(pf, KN_DIR_PREF_STOPPED);
    json_t *order = channel_order(m->g), *chans = json_array();
    json_t *contacts = json_array(), *cats = json_array(), *langs;
    json_t *v;
    size_t i;
    char masked[200], since[24], *k;
    struct batch *b;

    json_array_foreach(order, i, v)
    {
        const char *ch = json_string_value(v);
        json_t *o =
            json_pack("{s:s,s:b}", "channel", ch, "stopped", list_has(xc, ch));
        if (strcmp(ch, "email") == 0) {
            char *e =
                kn__httpd_unseal_opt(d->kr, "email", jstr(m->g, KN_DIR_EMAIL));
            kn_mask_address(e ? e : "", masked, sizeof(masked));
            kn__httpd_free_secret(&e);
            json_object_set_new(o, "address", json_string(masked));
            json_array_append_new(
                contacts,
                json_pack("{s:s,s:s}", "via", "email", "address", masked));
        } else if (strcmp(ch, "line") == 0) {
            json_object_set_new(o, "address", json_string("LINE"));
            json_array_append_new(
                contacts,
                json_pack("{s:s,s:s}", "via", "line", "address", "LINE"));
        } else {
            json_object_set_new(o, "devices",
                                json_integer((json_int_t)json_array_size(
                                    json_object_get(m->g, KN_DIR_PUSH))));
        }
        json_array_append_new(chans, o);
    }
    json_array_foreach(m->cats, i, v)
    {
        json_array_append_new(
            cats,
            json_pack("{s:O,s:O,s:b}", "name", json_object_get(v, "name"),
                      "emergency", json_object_get(v, "emergency"), "off",
                      !json_is_true(json_object_get(v, "emergency")) &&
                          list_has(json_object_get(pf, KN_DIR_PREF_OPTOUT),
                                   jstr(v, "name"))));
    }
    langs = json_array();
    for (size_t l = 0; l < KN_ARRAY_SIZE(languages); l++)
        json_array_append_new(langs, json_string(languages[l]));
    m->out = json_pack(
        "{s:s,s:o,s:I,s:o,s:o,s:s,s:o,s:o,s:o,s:b,s:[]}", "school",
        m->tk.tenant, "child", kn__httpd_jstr_or_null(m->name), "expires_ms",
        (json_int_t)m->tk.expires_ms, "channels", chans, "order", order,
        "language", kn_dir_lang(m->g), "languages", langs, "categories", cats,
        "contacts", contacts, "passcode", m->sheet != NULL, "messages");
    b = kn__httpd_batch_new(c->srv, c, on_recent, m);
    /* The tenant's own index: bcs holds every school's broadcasts, of
     * which the newest MP_SCAN may all be other schools'. */
    k = kn_key_tbcs(d->prefix, m->tk.tenant);
    snprintf(since, sizeof(since), "%lld",
             (long long)(kn_now_ms() - MP_DAYS_MS));
    kn__httpd_batch_cmd(b, "ZREVRANGEBYSCORE", k, "+inf", since, "LIMIT", "0",
                        "400", NULL);
    free(k);
    kn__httpd_batch_end(b);
}

void kn__httpd_run_mypage_view(struct conn *c)
{
    mp_start(c, MP_VIEW, NULL);
}

/* ------------------------------------------------ POST /m/save */

static int save_check(struct conn *c, json_t *j)
{
    json_t *v, *x;
    size_t i;
    int any = 0;
    const char *lg = jstr(j, "lg");
    if ((v = json_object_get(j, "lg")) != NULL) {
        if (lg == NULL || !kn_lang_valid(lg)) {
            kn__httpd_respond_error(c, 400, "lg",
                                    "言語を選んでください (choose a language: "
                                    "a tag such as ja or en)");
            return -1;
        }
        any = 1;
    }
    if ((v = json_object_get(j, "ch")) != NULL) {
        if (channel_list_ok(v) < 0) {
            kn__httpd_respond_error(c, 400, "ch",
                                    "ch: a list of distinct channels (email, "
                                    "line, push)");
            return -1;
        }
        any = 1;
    }
    if ((v = json_object_get(j, "xc")) != NULL) {
        if (channel_list_ok(v) < 0) {
            kn__httpd_respond_error(c, 400, "xc",
                                    "xc: a list of distinct channels (email, "
                                    "line, push)");
            return -1;
        }
        any = 1;
    }
    if ((v = json_object_get(j, "ox")) != NULL) {
        if (!json_is_array(v) || json_array_size(v) > MP_OX_MAX) {
            kn__httpd_respond_error(
                c, 400, "ox", "ox: a list of at most %d categories", MP_OX_MAX);
            return -1;
        }
        json_array_foreach(v, i, x)
        {
            if (!category_ok(x)) {
                kn__httpd_respond_error(c, 400, "ox",
                                        "ox[%zu]: a category name of 1-200 "
                                        "bytes, one line",
                                        i);
                return -1;
            }
        }
        any = 1;
    }
    if (!any) {
        kn__httpd_respond_error(c, 400, NULL,
                                "nothing to save: give lg, ch, ox or xc");
        return -1;
    }
    return 0;
}

/* The names of the members of "pf" that differ between two JSON texts. */
static json_t *changed_fields(const char *old, const char *new)
{
    static const char *const f[] = {KN_DIR_PREF_LANG, KN_DIR_PREF_CHANNELS,
                                    KN_DIR_PREF_OPTOUT, KN_DIR_PREF_STOPPED};
    json_t *a = json_loads(old ? old : "{}", 0, NULL);
    json_t *b = json_loads(new ? new : "{}", 0, NULL), *out = json_array();
    for (size_t i = 0; i < KN_ARRAY_SIZE(f); i++) {
        json_t *x = json_object_get(a, f[i]), *y = json_object_get(b, f[i]);
        if ((x == NULL) != (y == NULL) || (x && !json_equal(x, y)))
            json_array_append_new(out, json_string(f[i]));
    }
    json_decref(a);
    json_decref(b);
    return out;
}

static void on_pref(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct mp *m = arg;
    struct conn *c = m->c; /* held in save_apply */
    long long st;
    (void)r;
    if (!kn__httpd_conn_release(c)) {
        mp_free(m);
        return;
    }
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER) {
        kn__httpd_respond_coded(c, 503, NULL, "retry", KN__HTTPD_BUSY);
        mp_free(m);
        return;
    }
    st = rep->element[0]->integer;
    if (st < 0) {
        bad_link(c, 0);
    } else {
        json_t *fields = st == 1 && rep->elements == 3
                             ? changed_fields(kn__httpd_rstr(rep->element[1]),
                                              kn__httpd_rstr(rep->element[2]))
                             : json_array();
        if (json_array_size(fields) > 0) {
            json_t *j =
                json_pack("{s:s,s:s,s:s,s:s,s:O}", "tenant", m->tk.tenant, "id",
                          m->tk.child, "source", c->req.source, "via", "mypage",
                          "fields", fields);
            if (kn_audit_op(c->srv->cfg->audit_dir, "guardian",
                            "guardian.prefs", j) < 0)
                kn_log(KN_LOG_WARN, "http",
                       "cannot append to the operation log", "dir",
                       c->srv->cfg->audit_dir, NULL);
        }
        c->req.auth_result = "ok";
        kn__httpd_respond_json(
            c, 200, json_pack("{s:b,s:o}", "saved", 1, "changed", fields),
            NULL);
    }
    mp_free(m);
}

/* Everything is checked: hand the patch to pref_set.lua. */
static void save_apply(struct conn *c, struct mp *m)
{
    struct kn_daemon *d = c->srv->d;
    static const char *const f[] = {"lg", "ch", "ox", "xc"};
    json_t *patch = json_object();
    const char *argv[6];
    size_t lens[6];
    char now[24], *pj;

    for (size_t i = 0; i < KN_ARRAY_SIZE(f); i++) {
        json_t *v = json_object_get(m->req, f[i]);
        if (v != NULL)
            json_object_set(patch, f[i], v);
    }
    pj = json_dumps(patch, JSON_COMPACT);
    json_decref(patch);
    snprintf(now, sizeof(now), "%lld", (long long)kn_now_ms());
    argv[0] = d->prefix;
    argv[1] = m->tk.tenant;
    argv[2] = m->tk.child;
    argv[3] = m->tk.index;
    argv[4] = now;
    argv[5] = pj;
    for (int i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    m->c = c;
    kn__httpd_conn_hold(c);
    if (kn_redis_eval(d->cmd, &kn_script_pref_set, on_pref, m, 0, 6, argv,
                      lens) < 0) {
        c->refs--;
        kn__httpd_respond_coded(c, 503, NULL, "retry", KN__HTTPD_BUSY);
        mp_free(m);
    }
    free(pj);
}

static void code_wrong(struct conn *c, struct mp *m, const char *field)
{
    struct kn_daemon *d = c->srv->d;
    char *k = kn__mp_key(d, "mpf", m->ci);
    if (!m->trying) /* counted when the request came, if it was a try */
        kn_redis_cmd(d->cmd, NULL, NULL, "INCR %s", k);
    kn_redis_cmd(d->cmd, NULL, NULL, "PEXPIRE %s %lld", k, MP_CODE_MS);
    free(k);
    c->req.auth_result = "wrong_code";
    kn__httpd_respond_json(
        c, 403,
        json_pack("{s:s,s:s,s:b,s:s}", "error",
                  "コードが違います (the code is wrong or expired)", "field",
                  field, "need_code", 1, "code", "wrong_code"),
        NULL);
    mp_free(m);
}

static void on_passcode(struct batch *b)
{
    struct mp *m = b->arg;
    struct conn *c = b->c;
    const redisReply *h;
    char hash[33], pass[KN_REG_PASS_LEN + 1];
    const char *typed = jstr(m->req, "passcode");
    int ok;
    if (!kn__httpd_batch_usable(b)) {
        mp_free(m);
        return;
    }
    h = kn__httpd_brep(b, 0);
    ok = h && h->type == REDIS_REPLY_ARRAY && h->elements == 3 &&
         kn__httpd_rstr(h->element[0]) != NULL &&
         kn__httpd_rstr(h->element[1]) != NULL &&
         kn__httpd_rstr(h->element[2]) != NULL &&
         strcmp(kn__httpd_rstr(h->element[1]), m->tk.tenant) == 0 &&
         strcmp(kn__httpd_rstr(h->element[2]), m->tk.child) == 0 &&
         kn_reg_normalise(typed, KN_REG_PASS_LEN, pass, sizeof(pass)) > 0;
    if (ok) {
        const char *stored = kn__httpd_rstr(h->element[0]);
        kn_reg_pass_hash(c->srv->d->kr, m->sheet, pass, hash);
        ok = strlen(stored) == 32 && CRYPTO_memcmp(hash, stored, 32) == 0;
    }
    OPENSSL_cleanse(pass, sizeof(pass));
    if (!ok) {
        code_wrong(c, m, "passcode");
        return;
    }
    save_apply(c, m);
}

static void save_go(struct conn *c, struct mp *m)
{
    struct kn_daemon *d = c->srv->d;
    json_t *ox = json_object_get(m->req, "ox");
    json_t *xc = json_object_get(m->req, "xc"), *v;
    json_t *old_xc = json_object_get(json_object_get(m->g, KN_DIR_PREFS),
                                     KN_DIR_PREF_STOPPED);
    const char *code = jstr(m->req, "code");
    const char *passcode = jstr(m->req, "passcode");
    size_t i;
    int cut = 0;

    json_array_foreach(ox, i, v)
    {
        if (!is_category(m, json_string_value(v))) {
            kn__httpd_respond_error(c, 400, "ox",
                                    "ox[%zu]: not one of the school's "
                                    "categories",
                                    i);
            mp_free(m);
            return;
        }
        if (is_emergency(m, json_string_value(v))) {
            kn__httpd_respond_coded(c, 400, "ox", "emergency",
                                    "緊急のお知らせは止められません "
                                    "(ox[%zu]: an emergency category cannot "
                                    "be turned off)",
                                    i);
            mp_free(m);
            return;
        }
    }
    json_array_foreach(xc, i, v)
    {
        if (!list_has(old_xc, json_string_value(v)))
            cut = 1;
    }
    if (!cut) {
        save_apply(c, m);
        return;
    }
    /* Stopping a channel: the link alone is not enough. */
    if (m->fails >= MP_CODE_TRIES) {
        char *k = kn__mp_key(d, "mpc", m->ci);
        kn_redis_cmd(d->cmd, NULL, NULL, "DEL %s", k);
        free(k);
        c->req.auth_result = "locked";
        kn__httpd_respond_coded(c, 429, "code", "code_wait",
                                "間違いが続きました。10分後に新しいコードで"
                                "やり直してください (too many wrong codes: "
                                "ask for a new code in 10 minutes)");
        mp_free(m);
        return;
    }
    if (code != NULL && code[0] != '\0') {
        char h[33];
        if (strlen(code) != 6 || m->code_h[0] == '\0') {
            code_wrong(c, m, "code");
            return;
        }
        code_hash(d->kr, m->ci, code, h);
        if (strlen(m->code_h) != 32 || CRYPTO_memcmp(h, m->code_h, 32) != 0) {
            code_wrong(c, m, "code");
            return;
        }
        {
            char *k = kn__mp_key(d, "mpc", m->ci);
            kn_redis_cmd(d->cmd, NULL, NULL, "DEL %s", k);
            free(k);
            k = kn__mp_key(d, "mpf", m->ci);
            kn_redis_cmd(d->cmd, NULL, NULL, "DEL %s", k);
            free(k);
        }
        save_apply(c, m);
        return;
    }
    if (passcode != NULL && passcode[0] != '\0' && m->sheet != NULL) {
        struct batch *b = kn__httpd_batch_new(c->srv, c, on_passcode, m);
        char *k = kn_key_sheet(d->prefix, m->sheet);
        kn__httpd_batch_cmd(b, "HMGET", k, "h", "t", "r", NULL);
        free(k);
        kn__httpd_batch_end(b);
        return;
    }
    c->req.auth_result = "need_code";
    kn__httpd_respond_json(
        c, 403,
        json_pack("{s:s,s:s,s:b}", "error",
                  "受け取り方を止めるには確認コードが必要です (stopping a "
                  "channel needs a one-time code)",
                  "field", "code", "need_code", 1),
        NULL);
    mp_free(m);
}

void kn__httpd_run_mypage_save(struct conn *c)
{
    mp_start(c, MP_SAVE, save_check);
}

/* ------------------------------------------------ POST /m/code */

static int code_check(struct conn *c, json_t *j)
{
    const char *via = jstr(j, "via");
    if (via == NULL ||
        (strcmp(via, "email") != 0 && strcmp(via, "line") != 0)) {
        kn__httpd_respond_error(c, 400, "via",
                                "via: where to send the code, email or line");
        return -1;
    }
    return 0;
}

static void code_go(struct conn *c, struct mp *m)
{
    struct kn_daemon *d = c->srv->d;
    const char *via = jstr(m->req, "via");
    int line = strcmp(via, "line") == 0;
    char *to, code[8], h[33], masked[200], *k, *body;

    if (m->sent >= MP_CODES_HOUR) {
        c->req.auth_result = "throttled";
        kn__httpd_respond_json(
            c, 429,
            json_pack("{s:s, s:s, s:s}", "error",
                      "コードを送れる回数を超えました。1時間後にやり直して"
                      "ください (too many codes: try again in an hour)",
                      "field", "via", "code", "codes_hour"),
            "Retry-After: 3600\r\n");
        mp_free(m);
        return;
    }
    to = kn__httpd_unseal_opt(d->kr, line ? "line" : "email",
                              jstr(m->g, line ? KN_DIR_LINE : KN_DIR_EMAIL));
    if (to == NULL) {
        kn__httpd_respond_coded(c, 400, "via", "no_via",
                                "この受け取り方は登録されていません (no %s "
                                "contact is registered for you)",
                                via);
        mp_free(m);
        return;
    }
    snprintf(code, sizeof(code), "%06u", (unsigned)kn_random_below(1000000));
    code_hash(d->kr, m->ci, code, h);
    k = kn__mp_key(d, "mpc", m->ci);
    kn_redis_cmd(d->cmd, NULL, NULL, "SET %s %s PX %lld", k, h, MP_CODE_MS);
    free(k);
    k = kn__mp_key(d, "mpf", m->ci);
    kn_redis_cmd(d->cmd, NULL, NULL, "DEL %s", k);
    free(k);
    k = kn__mp_key(d, "mpn", m->ci);
    kn_redis_cmd(d->cmd, NULL, NULL, "SET %s 0 PX %lld NX", k, MP_HOUR_MS);
    kn_redis_cmd(d->cmd, NULL, NULL, "INCR %s", k);
    free(k);
    body = kn_xasprintf(
        "マイページで受け取り方を止めるための確認コードです（10分間有効）:\n"
        "%s\n\n"
        "心当たりがない場合は、このメッセージを破棄してください。"
        "コードを人に教えないでください。\n\n"
        "Your code to stop a channel on My page (valid 10 minutes): %s\n",
        code, code);
    if (send_one(c->srv, m->tk.tenant, m->tk.child, line ? "line" : "email", to,
                 "【連絡網】確認コード", body) < 0) {
        kn__httpd_respond_coded(c, 503, NULL, "retry", KN__HTTPD_BUSY);
    } else {
        if (line)
            snprintf(masked, sizeof(masked), "LINE");
        else
            kn_mask_address(to, masked, sizeof(masked));
        c->req.auth_result = "ok";
        kn__httpd_respond_json(c, 202, json_pack("{s:s}", "sent", masked),
                               NULL);
    }
    OPENSSL_cleanse(code, sizeof(code));
    OPENSSL_cleanse(body, strlen(body));
    free(body);
    kn__httpd_free_secret(&to);
    mp_free(m);
}

void kn__httpd_run_mypage_code(struct conn *c)
{
    mp_start(c, MP_CODE, code_check);
}
