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

#include "common/argv.h"
#include "common/kn.h"
#include "common/log.h"
#include "common/seal.h"
#include "queue/keys.h"
#include "queue/scripts.h"
#include "dispatcher/ack.h"
#include "model/broadcast.h"

/* ------------------------------------------------------------ confirmations */

/*
 * GET and POST /a/{token}: the personal link of an "ack" broadcast.  No
 * bearer token: the signed link is the authentication, so a forged,
 * altered or unknown link (or one of a broadcast without "ack", or of a
 * recipient who is not in it) gets the same 404 and nothing is recorded.
 * GET only shows; POST records the confirmation once (idempotent).
 */
static void ack_invalid(struct conn *c)
{
    const char *p = kn__ack_page_invalid();
    kn__httpd_respond(c, 404, "text/html; charset=utf-8", p, strlen(p),
                      kn__ack_csp(), NULL);
}

/* The children of a page while their names are read. */
struct kids {
    struct conn *c;
    int thanks;
    char *subject, *body;
    int drill;
    struct kn__ack_child *k;
    size_t n;
};

static void kids_free(struct kids *x)
{
    for (size_t i = 0; i < x->n; i++) {
        free((char *)x->k[i].id);
        kn__httpd_free_secret((char **)&x->k[i].name);
    }
    free(x->k);
    free(x->subject);
    free(x->body);
    free(x);
}

/* The names are in: unseal them (a child without a directory name is
 * shown by id) and answer the page. */
static void on_kid_names(struct batch *b)
{
    struct kids *x = b->arg;
    struct conn *c = b->c;
    char *page;
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
    page = kn__ack_page_children(x->subject, x->body, x->drill, x->k, x->n,
                                 x->thanks);
    kn__httpd_respond(c, 200, "text/html; charset=utf-8", page, strlen(page),
                      kn__ack_csp(), NULL);
    free(page);
    kids_free(x);
}

/*
 * Answer the view script's reply: {} is 404; one child the page of one;
 * several (a guardian of siblings) the page listing each, after their
 * names are read from the directory (tenant in the reply).
 */
static void ack_page(struct conn *c, const redisReply *rep, int thanks)
{
    char *page;
    struct kids *x;
    struct batch *b;
    const char *tenant;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements < 7 ||
        (rep->elements - 5) % 2 != 0) {
        ack_invalid(c);
        return;
    }
    if (rep->elements == 7) {
        page = kn__ack_page(
            kn__httpd_rstr(rep->element[0]) ? kn__httpd_rstr(rep->element[0])
                                            : "",
            kn__httpd_rstr(rep->element[1]) ? kn__httpd_rstr(rep->element[1])
                                            : "",
            kn__httpd_rnum(rep->element[2]) != 0,
            kn__httpd_rnum(rep->element[3]), thanks);
        kn__httpd_respond(c, 200, "text/html; charset=utf-8", page,
                          strlen(page), kn__ack_csp(), NULL);
        free(page);
        return;
    }
    x = kn_xcalloc(1, sizeof(*x));
    x->c = c;
    x->thanks = thanks;
    x->subject = kn_xstrdup(
        kn__httpd_rstr(rep->element[0]) ? kn__httpd_rstr(rep->element[0]) : "");
    x->body = kn_xstrdup(
        kn__httpd_rstr(rep->element[1]) ? kn__httpd_rstr(rep->element[1]) : "");
    x->drill = kn__httpd_rnum(rep->element[2]) != 0;
    tenant =
        kn__httpd_rstr(rep->element[4]) ? kn__httpd_rstr(rep->element[4]) : "";
    x->n = (rep->elements - 5) / 2;
    x->k = kn_xcalloc(x->n, sizeof(*x->k));
    b = kn__httpd_batch_new(c->srv, c, on_kid_names, x);
    for (size_t i = 0; i < x->n; i++) {
        const char *id = kn__httpd_rstr(rep->element[5 + 2 * i]);
        char *key = kn_key_rcpt(c->srv->d->prefix, tenant, id ? id : "");
        x->k[i].id = kn_xstrdup(id ? id : "?");
        x->k[i].confirmed_ms = kn__httpd_rnum(rep->element[6 + 2 * i]);
        kn__httpd_batch_cmd(b, "HGET", key, "name", NULL);
        free(key);
    }
    kn__httpd_batch_end(b);
}

static void on_ack_viewed(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct conn *c = arg;
    if (!kn__httpd_conn_release(c))
        return;
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
        kn__httpd_respond_error(c, 503, NULL,
                                "Redis is unreachable; try again");
        return;
    }
    ack_page(c, rep, c->req.method == HTTP_POST);
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
    char *bc = NULL, *rcpt = NULL;
    if (kn_ack_parse(c->srv->d->kr, c->req.param, &bc, &rcpt) < 0 ||
        !kn_id_valid(bc)) {
        free(bc);
        free(rcpt);
        ack_invalid(c);
        return -1;
    }
    c->req.bc_id = bc;
    c->req.ack_rcpt = rcpt;
    return 0;
}

void kn__httpd_run_ack_get(struct conn *c)
{
    if (ack_token(c) == 0)
        ack_view(c);
}

/*
 * The children a POST confirms: each "child" field of the form
 * (application/x-www-form-urlencoded) that is "*" or a valid recipient id
 * (after percent-decoding), appended to a; at most 64.  Nothing else of
 * the body is read here (the answers of issue 13 add their own fields);
 * the script ignores an id that is not a child of the link.
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

void kn__httpd_run_ack_post(struct conn *c)
{
    struct kn_daemon *d = c->srv->d;
    struct kn_argv a;
    char now[24];
    if (ack_token(c) < 0)
        return;
    snprintf(now, sizeof(now), "%lld", (long long)kn_now_ms());
    kn_argv_init(&a);
    kn_argv_take(&a, kn_key_bc(d->prefix, c->req.bc_id, ""));
    kn_argv_take(&a, kn_key_bc(d->prefix, c->req.bc_id, ":r"));
    kn_argv_take(&a, kn_key_bc(d->prefix, c->req.bc_id, ":ack"));
    kn_argv_take(&a, kn_key_bc(d->prefix, c->req.bc_id, ":m"));
    kn_argv_take(&a, kn_key_bc(d->prefix, c->req.bc_id, ":fam"));
    kn_argv_add(&a, c->req.ack_rcpt);
    kn_argv_add(&a, now);
    form_children(kn_buf_str(&c->req.body), kn_buf_len(&c->req.body), &a);
    kn__httpd_conn_hold(c);
    if (kn_redis_eval(d->cmd, &kn_script_ack_confirm, on_ack_confirmed, c, 5,
                      a.n, (const char **)a.v, a.len) < 0) {
        c->refs--;
        kn__httpd_respond_error(c, 503, NULL,
                                "Redis is unreachable; try again");
    }
    kn_argv_free(&a);
}
