/*
 * unsub.c - GET and POST /u/{token}: the one-click unsubscribe of RFC 8058
 * (issue 16) behind the List-Unsubscribe header of every e-mail that is
 * neither urgent nor of an emergency category (dispatcher/worker.c,
 * adapters/mime.c, adapters/sendgrid.c).
 *
 * The token (model/gtoken.h, KN_GTOKEN_UNSUB) names the tenant, the child,
 * the blind index of the address the mail went to and the category.  No
 * login and no CSRF token: mail providers POST cross-site by design, and
 * the signed token is the authentication.  What it may do is one thing:
 * add the category to that guardian's "pf"."ox" (queue/lua/pref_set.lua,
 * ox_add), idempotently; nothing else of the guardian or the child
 * changes.  A GET changes nothing (link scanners open every link): it
 * shows the page with a button that POSTs the same form.  Refused with
 * 400 and a page saying why: a forged, altered or expired token, a body
 * other than List-Unsubscribe=One-Click (urlencoded or multipart), a
 * category that is (now) an emergency one, a guardian no longer in the
 * directory.  Every change is one line of the operation log,
 * guardian.unsubscribe (tenant, child, category; never an address).
 *
 * The page is web/unsub/page.html filled from web/unsub/strings-<lang>.json,
 * every file of the folder (a glob): Japanese unless ?lang= names another
 * (its code, the tag of its "lang", or a tag of the same primary
 * language: ?lang=pt-BR is pt; English for a well-formed tag of a
 * language without a page), with links to the others; no script, the
 * page's own style by its hash, a form that may post only to this origin.
 * The mail's link carries the language of the mail (dispatcher/worker.c).
 */
#include "dispatcher/http/http_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/argv.h"
#include "common/buf.h"
#include "common/kn.h"
#include "common/log.h"
#include "common/text.h"
#include "config/config.h"
#include "dispatcher/ack.h"
#include "model/audit.h"
#include "model/directory.h"
#include "model/gtoken.h"
#include "model/label.h"
#include "queue/keys.h"
#include "queue/scripts.h"

extern const char kn__web_unsub_html[], kn__web_unsub_css[];
extern const size_t kn__web_unsub_html_len, kn__web_unsub_css_len;
/* Its strings, strings-<code>.json, every file of the folder (a glob). */
extern const struct kn_embedded kn__web_unsub_strings[];
extern const size_t kn__web_unsub_strings_n;

/* A language of the page: the code of its file's name and of ?lang=, its
 * strings ("lang": the tag html lang takes, "lang_name": the language
 * named in itself). */
struct lang {
    char code[16];
    json_t *s;
};

#define UNSUB_LANGS 16

static char csp[256];
static struct lang langs[UNSUB_LANGS]; /* Japanese first, then by code */
static size_t nlangs;

static const char *lang_str(const struct lang *l, const char *key)
{
    json_t *v = json_object_get(l->s, key);
    return json_is_string(v) ? json_string_value(v) : "";
}

void kn__httpd_unsub_init(void)
{
    if (csp[0] != '\0')
        return;
    for (int ja = 1; ja >= 0; ja--) {
        for (size_t i = 0; i < kn__web_unsub_strings_n; i++) {
            const struct kn_embedded *f = &kn__web_unsub_strings[i];
            struct lang *l;
            char code[sizeof(langs[0].code)];
            if (kn__httpd_strings_code(f->name, code, sizeof(code)) < 0)
                KN_PANIC("web/unsub/%s: not strings-<code>.json", f->name);
            if ((strcmp(code, "ja") == 0) != ja)
                continue;
            if (nlangs == UNSUB_LANGS)
                KN_PANIC("web/unsub: more than %d strings files", UNSUB_LANGS);
            l = &langs[nlangs];
            memcpy(l->code, code, sizeof(code));
            l->s = json_loadb(f->data, f->len, 0, NULL);
            if (!kn_lang_valid(l->code) || !json_is_object(l->s) ||
                !kn_lang_valid(lang_str(l, "lang")) ||
                lang_str(l, "lang_name")[0] == '\0')
                KN_PANIC("web/unsub/%s: not a JSON object with \"lang\" and "
                         "\"lang_name\"",
                         f->name);
            nlangs++;
        }
    }
    if (nlangs == 0 || strcmp(langs[0].code, "ja") != 0)
        KN_PANIC("web/unsub/strings-ja.json is missing");
    kn__page_csp(kn__web_unsub_css, kn__web_unsub_css_len, csp, sizeof(csp));
}

/* ------------------------------------------------------------ the page */

/* What one page shows: the state and the values of its {{names}}. */
enum page_kind { P_FORM, P_DONE, P_ERROR };

struct page {
    enum page_kind kind;
    const char *error_key; /* P_ERROR: "error.<what>" */
    const char *category;  /* NULL: not shown */
    const char *token;     /* the form's action */
    size_t lang;           /* in langs[] (?lang=) */
};

static const char *str(const struct page *p, const char *key)
{
    return lang_str(&langs[p->lang], key);
}

/* The value of {{name}} (escaped by the caller), or NULL for none: then
 * a section {{#name}}...{{/name}} is left out. */
static const char *value(const struct page *p, const char *name, char *tmp,
                         size_t cap)
{
    static const char *const kinds[] = {"form", "done", "error"};
    const char *kind = kinds[p->kind];
    if (strcmp(name, "style") == 0)
        return ""; /* added raw by fill() */
    if (strcmp(name, "lang") == 0 || strcmp(name, "title") == 0 ||
        strcmp(name, "category_label") == 0)
        return str(p, name);
    if (strcmp(name, "heading") == 0 || strcmp(name, "lead") == 0) {
        if (p->kind == P_ERROR && name[0] == 'l')
            return NULL;
        snprintf(tmp, cap, "%s.%s", kind, name);
        return str(p, tmp);
    }
    if (strcmp(name, "error") == 0)
        return p->kind == P_ERROR ? str(p, p->error_key) : NULL;
    if (strcmp(name, "category") == 0)
        return p->kind != P_ERROR ? p->category : NULL;
    if (strcmp(name, "form") == 0)
        return p->kind == P_FORM ? "" : NULL;
    if (strcmp(name, "done") == 0 || strcmp(name, "undo") == 0 ||
        strcmp(name, "mypage") == 0) {
        if (p->kind != P_DONE)
            return NULL;
        snprintf(tmp, cap, "done.%s", name);
        return str(p, tmp);
    }
    if (strcmp(name, "note") == 0 || strcmp(name, "button") == 0) {
        snprintf(tmp, cap, "form.%s", name);
        return str(p, tmp);
    }
    if (strcmp(name, "action") == 0) {
        /* relative to /u/<token>: the same URL, in the page's language */
        snprintf(tmp, cap, "%s?lang=%s", p->token ? p->token : "",
                 langs[p->lang].code);
        return tmp;
    }
    return NULL;
}

/* The links to the page in the other languages, each named in itself;
 * none on the page that says it is done (they lead to the form again). */
static void add_languages(struct kn_buf *b, const struct page *p)
{
    if (p->kind == P_DONE)
        return;
    for (size_t i = 0; i < nlangs; i++) {
        const char *tag = lang_str(&langs[i], "lang");
        const char *name = lang_str(&langs[i], "lang_name");
        if (i == p->lang)
            continue;
        /* code and tag passed kn_lang_valid: nothing to escape */
        kn_buf_addf(b, "<a href=\"?lang=%s\" hreflang=\"%s\" lang=\"%s\">",
                    langs[i].code, tag, tag);
        kn_text_html(b, name, strlen(name));
        kn_buf_add(b, "</a>\n");
    }
}

/*
 * Fill the template: {{name}} becomes its value, escaped ({{style}} the
 * style sheet and {{languages}} the links to the other languages, raw:
 * they are ours); {{#name}} ... {{/name}} is kept only when name has a
 * value.  The template is ours and has no nested sections.
 */
static char *fill(const struct page *p, const char *mypage_href)
{
    struct kn_buf b = KN_BUF_INIT;
    const char *s = kn__web_unsub_html, *end = s + kn__web_unsub_html_len;
    while (s < end) {
        const char *o = memmem(s, (size_t)(end - s), "{{", 2), *c;
        char name[40], tmp[KN_GTOKEN_MAX + 64];
        const char *v;
        size_t n;
        if (o == NULL || (c = memmem(o, (size_t)(end - o), "}}", 2)) == NULL) {
            kn_buf_addn(&b, s, (size_t)(end - s));
            break;
        }
        kn_buf_addn(&b, s, (size_t)(o - s));
        n = (size_t)(c - o - 2);
        snprintf(name, sizeof(name), "%.*s", (int)n, o + 2);
        s = c + 2;
        if (name[0] == '/')
            continue; /* the end of a section kept */
        if (name[0] == '#') {
            if (value(p, name + 1, tmp, sizeof(tmp)) == NULL) {
                char close[44];
                const char *x;
                snprintf(close, sizeof(close), "{{/%s}}", name + 1);
                x = memmem(s, (size_t)(end - s), close, strlen(close));
                s = x ? x + strlen(close) : end;
            }
            continue;
        }
        if (strcmp(name, "style") == 0) {
            kn_buf_addn(&b, kn__web_unsub_css, kn__web_unsub_css_len);
            continue;
        }
        if (strcmp(name, "languages") == 0) {
            add_languages(&b, p);
            continue;
        }
        if (strcmp(name, "mypage_href") == 0) {
            kn_text_html(&b, mypage_href, strlen(mypage_href));
            continue;
        }
        v = value(p, name, tmp, sizeof(tmp));
        if (v != NULL)
            kn_text_html(&b, v, strlen(v));
    }
    return kn_buf_take(&b, NULL);
}

static void answer_with(struct conn *c, int status, const struct page *p,
                        const char *extra)
{
    char *mypage = kn_xasprintf("%s/m", c->srv->cfg->http_public_url
                                            ? c->srv->cfg->http_public_url
                                            : "");
    char *html = fill(p, mypage);
    kn__httpd_respond(c, status, "text/html; charset=utf-8", html, strlen(html),
                      csp, extra);
    free(html);
    free(mypage);
}

static void answer(struct conn *c, int status, const struct page *p)
{
    answer_with(c, status, p, NULL);
}

static void refuse(struct conn *c, size_t lang, const char *error_key)
{
    struct page p = {P_ERROR, error_key, NULL, NULL, lang};
    answer(c, 400, &p);
}

/* Redis or the operation log cannot be reached: the page in the reader's
 * language says to try again (a person, or a mail program's one-click
 * POST, which Retry-After tells when). */
static void busy(struct conn *c, size_t lang)
{
    struct page p = {P_ERROR, "error.busy", NULL, NULL, lang};
    answer_with(c, 503, &p, "Retry-After: 5\r\n");
}

/* The language of one ?lang= value (n bytes at v), or -1: a page's code
 * or the tag of its "lang" (any case), else the first page of the same
 * primary language (pt-BR: pt; zh-Hant: zh, the Simplified page). */
static int lang_of(const char *v, size_t n)
{
    size_t primary = strcspn(v, "-&");
    if (primary > n)
        primary = n;
    for (size_t i = 0; i < nlangs; i++) {
        const char *tag = lang_str(&langs[i], "lang");
        if ((strlen(langs[i].code) == n &&
             strncasecmp(v, langs[i].code, n) == 0) ||
            (strlen(tag) == n && strncasecmp(v, tag, n) == 0))
            return (int)i;
    }
    for (size_t i = 0; i < nlangs; i++)
        if (strlen(langs[i].code) == primary &&
            strncasecmp(v, langs[i].code, primary) == 0)
            return (int)i;
    return -1;
}

/* The first ?lang= of the query that names a language of the page;
 * Japanese (0) for none. */
static size_t want_lang(const struct conn *c)
{
    const char *q = c->req.query;
    int other = 0; /* a language of no page asked for (not Japanese) */
    for (const char *p = q; p != NULL && *p;) {
        size_t n = strcspn(p, "&");
        if (n > 5 && strncmp(p, "lang=", 5) == 0) {
            char tag[16];
            int i = lang_of(p + 5, n - 5);
            if (i >= 0)
                return (size_t)i;
            if (n - 5 < sizeof(tag)) {
                memcpy(tag, p + 5, n - 5);
                tag[n - 5] = '\0';
                other = other || (kn_lang_valid(tag) &&
                                  !(strncmp(tag, "ja", 2) == 0 &&
                                    (tag[2] == '\0' || tag[2] == '-')));
            }
        }
        p += n + (p[n] == '&');
    }
    /* A reader of another language (a translation the school typed in,
     * say Korean) reads English more likely than Japanese. */
    if (other) {
        int en = lang_of("en", 2);
        if (en >= 0)
            return (size_t)en;
    }
    return 0;
}

/* Check the token; 0 and t filled, or -1 after answering 400. */
static int token(struct conn *c, struct kn_gtoken *t)
{
    int rc;
    kn__httpd_unsub_init();
    rc = kn_gtoken_parse(c->srv->d->kr, c->req.param ? c->req.param : "",
                         KN_GTOKEN_UNSUB, kn_now_ms(), t);
    if (rc == 0 && t->extra[0] != '\0')
        return 0;
    if (rc == 0 || rc == KN_ETIMEDOUT)
        kn_gtoken_free(t);
    refuse(c, want_lang(c),
           rc == KN_ETIMEDOUT ? "error.expired" : "error.invalid");
    return -1;
}

void kn__httpd_run_unsub_get(struct conn *c)
{
    struct kn_gtoken t;
    struct page p;
    if (token(c, &t) < 0)
        return;
    p = (struct page){P_FORM, NULL, t.extra, c->req.param, want_lang(c)};
    answer(c, 200, &p);
    kn_gtoken_free(&t);
}

/* ------------------------------------------------------------ the POST */

/* What a POST waits with for Redis. */
struct unsub {
    struct conn *c;
    struct kn_gtoken t;
    size_t lang; /* the page's, in langs[] */
};

static void unsub_free(struct unsub *u)
{
    kn_gtoken_free(&u->t);
    free(u);
}

static void on_pref_set(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct unsub *u = arg;
    struct conn *c = u->c;
    struct page p;
    if (!kn__httpd_conn_release(c)) {
        unsub_free(u);
        return;
    }
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER) {
        busy(c, u->lang);
        unsub_free(u);
        return;
    }
    if (rep->element[0]->integer < 0) {
        refuse(c, u->lang, "error.gone");
        unsub_free(u);
        return;
    }
    if (rep->element[0]->integer == 1) {
        json_t *f = json_pack("{s:s, s:s, s:s, s:s}", "tenant", u->t.tenant,
                              "child", u->t.child, "category", u->t.extra,
                              "source", c->req.source);
        if (f == NULL || kn_audit_op(c->srv->cfg->audit_dir, "guardian",
                                     "guardian.unsubscribe", f) < 0)
            kn_log(KN_LOG_WARN, "http", "cannot append to the operation log",
                   "dir", c->srv->cfg->audit_dir, NULL);
    }
    p = (struct page){P_DONE, NULL, u->t.extra, NULL, u->lang};
    answer(c, 200, &p);
    unsub_free(u);
}

/* The category's flags and whether the tenant is closed are in: refuse
 * a closed school's link (as the my page does) and an emergency
 * category, else opt out. */
static void on_flags(struct batch *b)
{
    struct unsub *u = b->arg;
    struct conn *c = b->c;
    struct kn_daemon *d;
    const redisReply *rep = kn__httpd_brep(b, 0);
    struct kn_argv a;
    char now[24], *patch;
    json_t *j;
    if (c == NULL) { /* the client went away */
        unsub_free(u);
        return;
    }
    d = c->srv->d;
    if (b->failed || rep == NULL || rep->type == REDIS_REPLY_ERROR) {
        busy(c, u->lang);
        unsub_free(u);
        return;
    }
    if (kn__httpd_rstr(kn__httpd_brep(b, 1)) != NULL) { /* closed_ms */
        refuse(c, u->lang, "error.invalid");
        unsub_free(u);
        return;
    }
    if (kn_category_emergency(
            u->t.extra, rep->type == REDIS_REPLY_STRING ? rep->str : NULL)) {
        refuse(c, u->lang, "error.emergency");
        unsub_free(u);
        return;
    }
    j = json_pack("{s:s}", "ox_add", u->t.extra);
    patch = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (patch == NULL) { /* not UTF-8: not a category kairan made */
        refuse(c, u->lang, "error.invalid");
        unsub_free(u);
        return;
    }
    snprintf(now, sizeof(now), "%lld", (long long)kn_now_ms());
    kn_argv_init(&a);
    kn_argv_add(&a, d->prefix);
    kn_argv_add(&a, u->t.tenant);
    kn_argv_add(&a, u->t.child);
    kn_argv_add(&a, u->t.index);
    kn_argv_add(&a, now);
    kn_argv_take(&a, patch);
    kn__httpd_conn_hold(c);
    if (kn_redis_eval(d->cmd, &kn_script_pref_set, on_pref_set, u, 0, a.n,
                      (const char **)a.v, a.len) < 0) {
        c->refs--;
        busy(c, u->lang);
        unsub_free(u);
    }
    kn_argv_free(&a);
}

void kn__httpd_run_unsub_post(struct conn *c)
{
    struct kn_daemon *d = c->srv->d;
    struct unsub *u;
    struct batch *b;
    char *k;
    if (!kn_gtoken_unsub_form_ok(c->req.ctype, kn_buf_str(&c->req.body),
                                 kn_buf_len(&c->req.body))) {
        kn__httpd_unsub_init();
        refuse(c, want_lang(c), "error.body");
        return;
    }
    u = kn_xcalloc(1, sizeof(*u));
    if (token(c, &u->t) < 0) {
        free(u);
        return;
    }
    u->lang = want_lang(c);
    /* A change that cannot be logged is not made (model/audit.h). */
    if (kn_audit_ready(c->srv->cfg->audit_dir) < 0) {
        busy(c, u->lang);
        unsub_free(u);
        return;
    }
    u->c = c;
    b = kn__httpd_batch_new(c->srv, c, on_flags, u);
    k = kn_key_cats(d->prefix, u->t.tenant);
    kn__httpd_batch_cmd(b, "HGET", k, u->t.extra, NULL);
    free(k);
    k = kn__key(d, "tenant:%s", u->t.tenant);
    kn__httpd_batch_cmd(b, "HGET", k, "closed_ms", NULL);
    free(k);
    kn__httpd_batch_end(b);
}
