/*
 * confirm.c - GET and POST /a/{token}: the confirmation page of an "ack"
 * broadcast behind each personal link (the page itself and its Redis
 * steps are dispatcher/ack.c).  A GET only shows; only the form's POST
 * confirms.
 *
 * A guardian of several children in one broadcast gets one message (one
 * per address and channel), with the link of the child whose job reached
 * the address; its page lists every child of that guardian in the
 * broadcast (bc:<id>:fam), each confirmable on its own (POST child=<id>)
 * or all at once (child=*).  Each confirmation is the field
 * bc:<id>:ack[<child id>] = time ms, as for a child alone.
 */
#include "dispatcher/http/http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/argv.h"
#include "common/kn.h"
#include "common/log.h"
#include "common/seal.h"
#include "queue/keys.h"
#include "queue/scripts.h"
#include "dispatcher/ack.h"
#include "model/broadcast.h"
#include "model/directory.h"

/* ------------------------------------------------------------ confirmations */

/*
 * GET and POST /a/{token}: the personal link of an "ack" broadcast.  No
 * bearer token: the signed link is the authentication, so a forged,
 * altered or unknown link (or one of a broadcast without "ack", or of a
 * recipient who is not in it) gets the same 404 and nothing is recorded.
 * GET only shows; POST records the confirmation once (idempotent), with
 * the answer picked ("a", required when the broadcast has "choices") and
 * an optional comment ("c", sealed at rest: kn_ack_value); a refused
 * answer gets the page again (400) saying what to fix.
 */
static void ack_invalid(struct conn *c)
{
    const char *p = kn__ack_page_invalid();
    kn__httpd_respond(c, 404, "text/html; charset=utf-8", p, strlen(p),
                      kn__ack_csp(), NULL);
}

/* The choices of a broadcast (its stored JSON array) into v->choices;
 * returns the array, to be freed after the page is made. */
static json_t *ack_choices(const char *stored, struct kn_ack_view *v,
                           const char **buf, size_t cap)
{
    json_t *a = stored && stored[0] ? json_loads(stored, 0, NULL) : NULL, *x;
    size_t i;
    json_array_foreach(a, i, x)
    {
        if (v->nchoices < cap && json_is_string(x))
            buf[v->nchoices++] = json_string_value(x);
    }
    v->choices = buf;
    return a;
}

/* A stored confirmation into its time, answer and comment (unsealed:
 * heap, kn_free_secret; NULL when none or unreadable). */
static void ack_value(const struct conn *c, const char *stored, int64_t *ms,
                      int *answer, char **comment)
{
    char *sealed = NULL;
    *comment = NULL;
    kn_ack_value_parse(stored, ms, answer, &sealed);
    if (sealed != NULL &&
        kn_unseal(c->srv->d->kr, "ack-comment", sealed, comment, NULL) != 0)
        *comment = NULL;
    free(sealed);
}

/* A page while the children's names are read (the view script's reply
 * dies with its callback: what the page needs is copied). */
struct kids {
    int thanks, status;
    char *subject, *body;
    struct kn_ack_view v;
    const char *bufs[KN_ACK_CHOICES_MAX];
    json_t *choices;
    struct kn__ack_child *k;
    size_t n;
    char lang[16]; /* the translation shown, "" none */
};

static void kids_free(struct kids *x)
{
    for (size_t i = 0; i < x->n; i++) {
        free((char *)x->k[i].id);
        kn__httpd_free_secret((char **)&x->k[i].name);
        kn__httpd_free_secret((char **)&x->k[i].comment);
    }
    free(x->k);
    json_decref(x->choices);
    free(x->subject);
    free(x->body);
    free(x);
}

static void kids_answer(struct conn *c, struct kids *x)
{
    char *page = x->n == 1
                     ? kn__ack_page(&x->v, x->thanks)
                     : kn__ack_page_children(&x->v, x->k, x->n, x->thanks);
    kn__httpd_respond(c, x->status, "text/html; charset=utf-8", page,
                      strlen(page), kn__ack_csp(), NULL);
    free(page);
}

/* The names are in: unseal them (a child without a directory name is
 * shown by id) and answer the page. */
static void on_kid_names(struct batch *b)
{
    struct kids *x = b->arg;
    struct conn *c = b->c;
    if (c == NULL || !kn__httpd_batch_usable(b)) {
        kids_free(x);
        return;
    }
    for (size_t i = 0; i < x->n; i++) {
        const char *sealed = kn__httpd_rstr(kn__httpd_brep(b, (int)i));
        char *plain = NULL;
        if (sealed != NULL &&
            kn_unseal(c->srv->d->kr, "name", sealed, &plain, NULL) == 0)
            x->k[i].name = plain;
    }
    kids_answer(c, x);
    kids_free(x);
}

static const char *rstr0(const redisReply *r)
{
    const char *s = kn__httpd_rstr(r);
    return s ? s : "";
}

/*
 * Answer the view script's reply {subject, body, drill, confirmation,
 * choices, tenant, then (id, confirmation) per child}: {} is 404; one
 * child the page of one; several (a guardian of siblings) the page
 * listing each, after their names are read from the directory.  status:
 * 200, or 400 with c->req.ack_error shown above the form.  A comment is
 * unsealed only to be shown (escaped) on the guardian's own page, and
 * never logged.
 */
static void ack_page(struct conn *c, const redisReply *rep, int thanks,
                     int status)
{
    struct kids *x;
    struct batch *b;
    const char *tenant;
    /* Asked with a language: one more element at the end, the one used. */
    size_t extra = c->req.ack_lang != NULL ? 1 : 0;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY ||
        rep->elements < 8 + extra || (rep->elements - 6 - extra) % 2 != 0) {
        ack_invalid(c);
        return;
    }
    x = kn_xcalloc(1, sizeof(*x));
    if (extra) {
        const char *lg = rstr0(rep->element[rep->elements - 1]);
        if (kn_lang_valid(lg) && strlen(lg) < sizeof(x->lang)) {
            snprintf(x->lang, sizeof(x->lang), "%s", lg);
            x->v.lang = x->lang;
        }
    }
    x->thanks = thanks;
    x->status = status;
    x->v.subject = x->subject = kn_xstrdup(rstr0(rep->element[0]));
    x->v.body = x->body = kn_xstrdup(rstr0(rep->element[1]));
    x->v.drill = kn__httpd_rnum(rep->element[2]) != 0;
    x->choices = ack_choices(kn__httpd_rstr(rep->element[4]), &x->v, x->bufs,
                             KN_ACK_CHOICES_MAX);
    x->v.error = c->req.ack_error;
    tenant = rstr0(rep->element[5]);
    x->n = (rep->elements - 6 - extra) / 2;
    x->k = kn_xcalloc(x->n, sizeof(*x->k));
    for (size_t i = 0; i < x->n; i++) {
        char *comment;
        x->k[i].id = kn_xstrdup(rstr0(rep->element[6 + 2 * i]));
        ack_value(c, kn__httpd_rstr(rep->element[7 + 2 * i]),
                  &x->k[i].confirmed_ms, &x->k[i].answer, &comment);
        x->k[i].comment = comment;
    }
    if (x->n == 1) {
        x->v.confirmed_ms = x->k[0].confirmed_ms;
        x->v.answer = x->k[0].answer;
        x->v.comment = x->k[0].comment;
        kids_answer(c, x);
        kids_free(x);
        return;
    }
    b = kn__httpd_batch_new(c->srv, c, on_kid_names, x);
    for (size_t i = 0; i < x->n; i++) {
        char *key = kn_key_rcpt(c->srv->d->prefix, tenant, x->k[i].id);
        kn__httpd_batch_cmd(b, "HGET", key, "name", NULL);
        free(key);
    }
    kn__httpd_batch_end(b);
}

/* A reply to a step of a link's request: 1 to go on, 0 when the client
 * left or Redis failed (503 answered). */
static int ack_reply(struct conn *c, const redisReply *rep)
{
    if (!kn__httpd_conn_release(c))
        return 0;
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
        kn__httpd_respond_error(c, 503, NULL,
                                "Redis is unreachable; try again");
        return 0;
    }
    return 1;
}

static void on_ack_viewed(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct conn *c = arg;
    if (!ack_reply(c, rep))
        return;
    ack_page(c, rep, c->req.method == HTTP_POST && c->req.ack_error == NULL,
             c->req.ack_error != NULL ? 400 : 200);
}

/* Run the view script (after a confirmation too: the thank-you page
 * shows the message and the recorded time). */
static void ack_view(struct conn *c)
{
    struct kn_daemon *d = c->srv->d;
    struct kn_argv a;
    kn_argv_init(&a);
    kn_argv_take(&a, kn_key_bc(d->prefix, c->req.bc_id, ""));
    kn_argv_take(&a, kn_key_bc(d->prefix, c->req.bc_id, ":r"));
    kn_argv_take(&a, kn_key_bc(d->prefix, c->req.bc_id, ":ack"));
    kn_argv_take(&a, kn_key_bc(d->prefix, c->req.bc_id, ":m"));
    kn_argv_take(&a, kn_key_bc(d->prefix, c->req.bc_id, ":fam"));
    kn_argv_add(&a, c->req.ack_rcpt);
    if (c->req.ack_lang != NULL)
        kn_argv_add(&a, c->req.ack_lang);
    kn__httpd_conn_hold(c);
    if (kn_redis_eval(d->cmd, &kn_script_ack_view, on_ack_viewed, c, 5, a.n,
                      (const char **)a.v, a.len) < 0) {
        c->refs--;
        kn__httpd_respond_error(c, 503, NULL,
                                "Redis is unreachable; try again");
    }
    kn_argv_free(&a);
}

static void on_ack_confirmed(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct conn *c = arg;
    if (!kn__httpd_conn_release(c))
        return;
    if (rep == NULL || rep->type != REDIS_REPLY_INTEGER) {
        kn__httpd_respond_error(c, 503, NULL,
                                "Redis is unreachable; try again");
        return;
    }
    if (rep->integer == -2 || rep->integer == -3) {
        c->req.ack_error = kn_xstrdup(
            rep->integer == -2 ? "回答を一つ選んでください。(Pick one of the "
                                 "answers.)"
                               : "このお知らせには回答の選択肢がありません。"
                                 "(This message offers no answers.)");
        ack_view(c);
        return;
    }
    if (rep->integer < 0) {
        ack_invalid(c);
        return;
    }
    if (rep->integer >= 1)
        kn_log(KN_LOG_INFO, "http", "confirmation recorded", "bc", c->req.bc_id,
               NULL);
    ack_view(c);
}

/* Check the link; 0 with bc_id and ack_rcpt set, or -1 (answered 404). */
static int ack_token(struct conn *c)
{
    char *bc = NULL, *rcpt = NULL, *lang;
    if (kn_ack_parse_guardian(c->srv->d->kr, c->req.param, &bc, &rcpt,
                              &c->req.ack_guardian) < 0 ||
        !kn_id_valid(bc)) {
        free(bc);
        free(rcpt);
        ack_invalid(c);
        return -1;
    }
    c->req.bc_id = bc;
    c->req.ack_rcpt = rcpt;
    /* "?l=en": the link of a guardian who reads a translation (the
     * worker adds it); anything else is ignored (Japanese). */
    lang = kn__httpd_query_get(c->req.query, "l");
    if (lang != NULL && kn_lang_valid(lang))
        c->req.ack_lang = lang;
    else
        free(lang);
    return 0;
}

static void ack_post(struct conn *c);

/*
 * A closed school's links (kairanctl tenant close) stop at once, as its
 * tokens, my page and unsubscribe links do: the broadcast's tenant, then
 * its record, are read before the page is shown or anything recorded; a
 * closed one answers as an unknown link (404).  A broadcast that is not
 * there goes on to the script, which answers 404 itself.
 */
static void ack_go(struct conn *c)
{
    if (c->req.method == HTTP_POST)
        ack_post(c);
    else
        ack_view(c);
}

static void on_ack_closed(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct conn *c = arg;
    if (!ack_reply(c, rep))
        return;
    if (rep->type != REDIS_REPLY_NIL) {
        ack_invalid(c);
        return;
    }
    ack_go(c);
}

static void on_ack_tenant(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct conn *c = arg;
    struct kn_daemon *d;
    char *key;
    if (!ack_reply(c, rep))
        return;
    d = c->srv->d;
    if (rep->type != REDIS_REPLY_STRING || !kn_tenant_valid(rep->str)) {
        /* no such broadcast (or no tenant to check): the script says */
        ack_go(c);
        return;
    }
    key = kn__key(d, "tenant:%s", rep->str);
    kn__httpd_conn_hold(c);
    if (kn_redis_cmd(d->cmd, on_ack_closed, c, "HGET %s closed_ms", key) < 0) {
        c->refs--;
        kn__httpd_respond_error(c, 503, NULL,
                                "Redis is unreachable; try again");
    }
    free(key);
}

static void ack_school_open(struct conn *c)
{
    struct kn_daemon *d = c->srv->d;
    char *key = kn_key_bc(d->prefix, c->req.bc_id, "");
    kn__httpd_conn_hold(c);
    if (kn_redis_cmd(d->cmd, on_ack_tenant, c, "HGET %s tenant", key) < 0) {
        c->refs--;
        kn__httpd_respond_error(c, 503, NULL,
                                "Redis is unreachable; try again");
    }
    free(key);
}

void kn__httpd_run_ack_get(struct conn *c)
{
    if (ack_token(c) == 0)
        ack_school_open(c);
}

/*
 * The children a POST confirms: each "child" field of the form
 * (application/x-www-form-urlencoded) that is "*" or a valid recipient id
 * (after percent-decoding), appended to a; at most 64.  The script
 * ignores an id that is not a child of the link.
 */
static void form_children(const char *body, size_t len, struct kn_argv *a)
{
    const char *p = body, *end = body + len;
    int n = 0;
    while (p != NULL && p < end && n < 64) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - p) > 6 && memcmp(p, "child=", 6) == 0 &&
            stop - p - 6 <= 3 * 128) {
            char v[129];
            size_t o = 0;
            int ok = 1;
            for (const char *q = p + 6; q < stop && ok; q++) {
                int ch = (unsigned char)*q;
                if (ch == '%' && stop - q > 2) {
                    char hex[3] = {q[1], q[2], 0};
                    char *e;
                    ch = (int)strtol(hex, &e, 16);
                    ok = *e == '\0';
                    q += 2;
                } else if (ch == '+') {
                    ch = ' ';
                }
                if (o < 128 && ok)
                    v[o++] = (char)ch;
                else
                    ok = 0;
            }
            v[o] = '\0';
            if (ok && (strcmp(v, "*") == 0 || kn_id_valid(v))) {
                kn_argv_add(a, v);
                n++;
            }
        }
        p = amp ? amp + 1 : NULL;
    }
}

/*
 * The form's fields: "a" the index of the chosen answer (one digit, ""
 * or absent: none) and "c" the comment.  0 with *answer ("" for none) and
 * *comment (heap, "" for none), or -1 with c->req.ack_error set (what to
 * fix; the comment itself is never quoted).
 */
static int ack_form(struct conn *c, char **answer, char **comment)
{
    const char *body = kn_buf_str(&c->req.body);
    char err[200];
    *answer = *comment = NULL;
    if (kn_buf_len(&c->req.body) > 0 &&
        (c->req.ctype == NULL ||
         strncasecmp(c->req.ctype, "application/x-www-form-urlencoded", 33) !=
             0)) {
        c->req.ack_error = kn_xstrdup("送信の形式が正しくありません。"
                                      "(Send the page's form.)");
        return -1;
    }
    *answer = kn__httpd_query_get(body, "a");
    if (*answer == NULL)
        *answer = kn_xstrdup("");
    if ((*answer)[0] != '\0' &&
        (strlen(*answer) != 1 || (*answer)[0] < '0' || (*answer)[0] > '9')) {
        c->req.ack_error = kn_xstrdup("回答を一つ選んでください。(Pick one of "
                                      "the answers.)");
        return -1;
    }
    *comment = kn__httpd_query_get(body, "c");
    if (*comment == NULL && kn__httpd_query_has(body, "c")) {
        c->req.ack_error = kn_xstrdup("コメントに使えない文字があります。"
                                      "(The comment holds a NUL.)");
        return -1;
    }
    if (*comment == NULL)
        *comment = kn_xstrdup("");
    if (kn_ack_comment_check(*comment, strlen(*comment), err, sizeof(err)) <
        0) {
        c->req.ack_error =
            kn_xasprintf("コメントは%d文字以内の一行で書いてください。(%s)",
                         KN_ACK_COMMENT_MAX, err);
        return -1;
    }
    return 0;
}

/* Record the confirmation of a POST whose link is checked (the school
 * open), then show the page. */
static void ack_post(struct conn *c)
{
    struct kn_daemon *d = c->srv->d;
    struct kn_argv a;
    char now[24], *answer = NULL, *comment = NULL, *sealed = NULL, *value;
    int64_t ms = kn_now_ms();
    if (ack_form(c, &answer, &comment) < 0) {
        free(answer);
        kn_free_secret(comment);
        ack_view(c); /* the page again, 400, with what to fix */
        return;
    }
    if (comment[0] != '\0')
        sealed = kn_seal(d->kr, "ack-comment", comment, strlen(comment));
    /* Who confirmed: the guardian the link was sent to (links made
     * before guardians were named record none). */
    value = kn_ack_value_guardian(ms, answer[0] ? atoi(answer) : -1, sealed,
                                  c->req.ack_guardian);
    snprintf(now, sizeof(now), "%lld", (long long)ms);
    kn_argv_init(&a);
    kn_argv_take(&a, kn_key_bc(d->prefix, c->req.bc_id, ""));
    kn_argv_take(&a, kn_key_bc(d->prefix, c->req.bc_id, ":r"));
    kn_argv_take(&a, kn_key_bc(d->prefix, c->req.bc_id, ":ack"));
    kn_argv_take(&a, kn_key_bc(d->prefix, c->req.bc_id, ":m"));
    kn_argv_take(&a, kn_key_bc(d->prefix, c->req.bc_id, ":fam"));
    kn_argv_add(&a, c->req.ack_rcpt);
    kn_argv_add(&a, now);
    kn_argv_add(&a, value);
    kn_argv_add(&a, answer);
    form_children(kn_buf_str(&c->req.body), kn_buf_len(&c->req.body), &a);
    free(value);
    free(sealed);
    free(answer);
    kn_free_secret(comment);
    kn__httpd_conn_hold(c);
    if (kn_redis_eval(d->cmd, &kn_script_ack_confirm, on_ack_confirmed, c, 5,
                      a.n, (const char **)a.v, a.len) < 0) {
        c->refs--;
        kn__httpd_respond_error(c, 503, NULL,
                                "Redis is unreachable; try again");
    }
    kn_argv_free(&a);
}

void kn__httpd_run_ack_post(struct conn *c)
{
    if (ack_token(c) == 0)
        ack_school_open(c);
}
