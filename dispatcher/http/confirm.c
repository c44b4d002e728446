/*
 * confirm.c - GET and POST /a/{token}: the confirmation page of an "ack"
 * broadcast behind each personal link (the page itself and its Redis
 * steps are dispatcher/ack.c).  A GET only shows; only the form's POST
 * confirms.
 */
#include "dispatcher/http/http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/argv.h"
#include "common/kn.h"
#include "common/log.h"
#include "queue/keys.h"
#include "queue/scripts.h"
#include "dispatcher/ack.h"
#include "dispatcher/broadcast.h"

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

static void ack_page(struct conn *c, const redisReply *rep, int thanks)
{
    char *page;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 4) {
        ack_invalid(c);
        return;
    }
    page = kn__ack_page(
        kn__httpd_rstr(rep->element[0]) ? kn__httpd_rstr(rep->element[0]) : "",
        kn__httpd_rstr(rep->element[1]) ? kn__httpd_rstr(rep->element[1]) : "",
        kn__httpd_rnum(rep->element[2]) != 0, kn__httpd_rnum(rep->element[3]),
        thanks);
    kn__httpd_respond(c, 200, "text/html; charset=utf-8", page, strlen(page),
                      kn__ack_csp(), NULL);
    free(page);
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
    kn_argv_add(&a, c->req.ack_rcpt);
    kn__httpd_conn_hold(c);
    if (kn_redis_eval(d->cmd, &kn_script_ack_view, on_ack_viewed, c, 4, a.n,
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
    if (rep->integer == 1)
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
    kn_argv_add(&a, c->req.ack_rcpt);
    kn_argv_add(&a, now);
    kn__httpd_conn_hold(c);
    if (kn_redis_eval(d->cmd, &kn_script_ack_confirm, on_ack_confirmed, c, 4,
                      a.n, (const char **)a.v, a.len) < 0) {
        c->refs--;
        kn__httpd_respond_error(c, 503, NULL,
                                "Redis is unreachable; try again");
    }
    kn_argv_free(&a);
}
