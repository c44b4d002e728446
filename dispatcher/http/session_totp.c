/*
 * session_totp.c - POST /v1/session/totp: a staff account's authenticator
 * (TOTP, model/totp.h) set up, confirmed and replaced, from a session
 * (session.c).  The secret is sealed at rest; a code is accepted once
 * (its step claimed with SET NX); a second setup needs a code of the
 * current authenticator, counted with the account's wrong codes.
 */
#include "dispatcher/http/http_int.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/codec.h"
#include "common/kn.h"
#include "common/log.h"
#include "common/seal.h"
#include "model/session.h"
#include "model/totp.h"
#include "queue/keys.h"

/* A string member, or NULL. */
static const char *jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* -------------------------------------------------------- TOTP setup */

struct totp_ctx {
    char *code;
    long long step;
};

static void on_totp_confirmed(struct batch *b)
{
    struct totp_ctx *x = b->arg;
    struct conn *c = b->c;
    json_t *j;
    if (!kn__httpd_batch_usable(b))
        goto out;
    if (kn__httpd_brep(b, 0) == NULL ||
        kn__httpd_brep(b, 0)->type == REDIS_REPLY_NIL) {
        kn__httpd_respond_error(c, 400, "code",
                                "this code was already used: wait for the "
                                "next one");
        goto out;
    }
    kn_log(KN_LOG_INFO, "http", "staff TOTP enabled", "tenant",
           c->req.tok.tenant, "token", c->req.tok.id, NULL);
    kn__sess_op_log(c, "staff.totp");
    j = json_object();
    json_object_set_new(j, "totp", json_true());
    kn__httpd_respond_json(c, 200, j, NULL);
out:
    free(x->code);
    free(x);
}

/* Into nb: the TOTP step taken for t's account (once: SET NX, first in
 * the batch, its reply says whether it was free) and kept as its last. */
static void claim_step(struct batch *nb, struct kn_daemon *d,
                       const struct token *t, long long step)
{
    char st[24], ms[24], *k;
    snprintf(ms, sizeof(ms), "%d", 4 * KN_TOTP_STEP_S * 1000);
    k = kn_key_totp_used(d->prefix, t->tenant, t->login, step);
    kn__httpd_batch_cmd(nb, "SET", k, "1", "NX", "PX", ms, NULL);
    free(k);
    snprintf(st, sizeof(st), "%lld", step);
    k = kn_key_staff(d->prefix, t->tenant, t->login);
    kn__httpd_batch_cmd(nb, "HSET", k, "totp_last", st, NULL);
    free(k);
}

static void on_totp_pending(struct batch *b)
{
    struct totp_ctx *x = b->arg;
    struct conn *c = b->c;
    struct kn_daemon *d;
    const char *sealed;
    char *secret = NULL, *k;
    size_t len = 0;
    struct batch *nb;
    if (!kn__httpd_batch_usable(b))
        goto fail;
    d = c->srv->d;
    sealed = kn__httpd_rstr(kn__httpd_brep(b, 0));
    if (sealed == NULL || kn_unseal(d->kr, "totp", sealed, &secret, &len) < 0) {
        kn__httpd_respond_error(c, 409, "action",
                                "no TOTP setup in progress: send "
                                "{\"action\": \"setup\"} first");
        goto fail;
    }
    x->step = kn_totp_check((unsigned char *)secret, len, x->code,
                            kn_now_ms() / 1000, -1);
    OPENSSL_cleanse(secret, len);
    free(secret);
    if (x->step < 0) {
        kn__httpd_respond_error(c, 400, "code",
                                "wrong code: enter the 6 digits your "
                                "authenticator app shows now");
        goto fail;
    }
    nb = kn__httpd_batch_new(c->srv, c, on_totp_confirmed, x);
    claim_step(nb, d, &c->req.tok, x->step);
    k = kn_key_staff(d->prefix, c->req.tok.tenant, c->req.tok.login);
    kn__httpd_batch_cmd(nb, "HSET", k, "totp", sealed, NULL);
    kn__httpd_batch_cmd(nb, "HDEL", k, "totp_pending", NULL);
    free(k);
    kn__httpd_batch_end(nb);
    return;
fail:
    free(x->code);
    free(x);
}

static void on_totp_stored(struct batch *b)
{
    json_t *r = b->arg;
    if (kn__httpd_batch_usable(b)) {
        kn__httpd_respond_json(b->c, 200, r, NULL);
        return;
    }
    json_decref(r);
}

/* A new pending secret for the session's account, answered once it is
 * stored (confirm makes it the account's). */
static void totp_setup(struct conn *c)
{
    struct kn_daemon *d = c->srv->d;
    struct token *t = &c->req.tok;
    unsigned char secret[KN_TOTP_SECRET];
    char b32[KN_TOTP_SECRET_B32 + 2], *sealed, *uri, *lp, *k;
    struct batch *b;
    json_t *r;
    kn_random(secret, sizeof(secret));
    kn_base32_encode(secret, sizeof(secret), b32);
    sealed = kn_seal(d->kr, "totp", secret, sizeof(secret));
    OPENSSL_cleanse(secret, sizeof(secret));
    lp = kn_key_part(t->login); /* safe in a URI */
    uri = kn_xasprintf("otpauth://totp/kairan:%s?secret=%s&issuer=kairan"
                       "&algorithm=SHA1&digits=6&period=30",
                       lp, b32);
    r = json_object();
    json_object_set_new(r, "secret", json_string(b32));
    json_object_set_new(r, "uri", json_string(uri));
    json_object_set_new(r, "next",
                        json_string("enter the code your app shows: "
                                    "{\"action\": \"confirm\", "
                                    "\"code\": \"123456\"}"));
    b = kn__httpd_batch_new(c->srv, c, on_totp_stored, r);
    k = kn_key_staff(d->prefix, t->tenant, t->login);
    kn__httpd_batch_cmd(b, "HSET", k, "totp_pending", sealed, NULL);
    free(k);
    kn__httpd_batch_end(b);
    free(sealed);
    OPENSSL_cleanse(b32, sizeof(b32));
    OPENSSL_cleanse(uri, strlen(uri));
    free(uri);
    free(lp);
}

struct setup_ctx {
    char *code; /* current_code, or NULL */
};

static void setup_ctx_free(struct setup_ctx *x)
{
    free(x->code);
    free(x);
}

static void refuse_current(struct conn *c, const char *msg)
{
    c->req.auth_result = "totp_wrong";
    kn__httpd_respond_error(c, 403, "current_code", "%s", msg);
}

/* The current code's step claimed (a code is accepted once): set up. */
static void on_current_claimed(struct batch *b)
{
    struct setup_ctx *x = b->arg;
    if (kn__httpd_batch_usable(b)) {
        if (kn__httpd_brep(b, 0) == NULL ||
            kn__httpd_brep(b, 0)->type == REDIS_REPLY_NIL)
            refuse_current(b->c, "this code was already used: wait for the "
                                 "next one");
        else
            totp_setup(b->c);
    }
    setup_ctx_free(x);
}

/*
 * A new TOTP setup: an account that has TOTP already needs a code of it in
 * "current_code", so that whoever finds a console left open (the session,
 * not the phone) cannot swap the authenticator for their own.  The code is
 * counted with the account's codes like a login's, before it is judged
 * (past KN_TOTP_LOCK_FAILS: 429; a right one taken off again), and is
 * accepted once.
 */
static void on_totp_current(struct batch *b)
{
    struct setup_ctx *x = b->arg;
    struct conn *c = b->c;
    struct token *t;
    struct kn_daemon *d;
    const redisReply *h = kn__httpd_brep(b, 0);
    const char *sealed, *last;
    char *secret = NULL, *k;
    size_t len = 0;
    long long step;
    struct batch *nb;

    if (!kn__httpd_batch_usable(b))
        goto out;
    t = &c->req.tok;
    d = c->srv->d;
    sealed = kn__httpd_relem(h, 0);
    last = kn__httpd_relem(h, 1);
    k = kn_key_totp_fail(d->prefix, t->tenant, t->login);
    if (sealed == NULL || sealed[0] == '\0') {
        if (x->code != NULL) /* no TOTP yet: not a try */
            kn_redis_cmd(d->cmd, NULL, NULL, "DECR %s", k);
        free(k);
        totp_setup(c);
        goto out;
    }
    if (x->code == NULL) {
        free(k);
        refuse_current(c, "this account has TOTP already: give a code of "
                          "the current authenticator as \"current_code\"");
        goto out;
    }
    if (kn__httpd_rnum(kn__httpd_brep(b, 1)) > KN_TOTP_LOCK_FAILS) {
        free(k);
        c->req.auth_result = "totp_locked";
        kn__httpd_respond_json(
            c, 429,
            json_pack("{s:s, s:s, s:s}", "error",
                      "too many wrong authenticator codes for this "
                      "account: try again in 15 minutes",
                      "field", "current_code", "code", "totp_locked"),
            "Retry-After: 900\r\n");
        goto out;
    }
    step = -1;
    if (kn_unseal(d->kr, "totp", sealed, &secret, &len) == 0) {
        step = kn_totp_check((unsigned char *)secret, len, x->code,
                             kn_now_ms() / 1000,
                             last ? strtoll(last, NULL, 10) : -1);
        OPENSSL_cleanse(secret, len);
        free(secret);
    }
    if (step < 0) {
        free(k);
        refuse_current(c, "wrong or already used code of the current "
                          "authenticator");
        goto out;
    }
    kn_redis_cmd(d->cmd, NULL, NULL, "DECR %s", k); /* a right code */
    free(k);
    nb = kn__httpd_batch_new(c->srv, c, on_current_claimed, x);
    claim_step(nb, d, t, step);
    kn__httpd_batch_end(nb);
    return;
out:
    setup_ctx_free(x);
}

void kn__httpd_run_totp(struct conn *c)
{
    struct kn_daemon *d = c->srv->d;
    struct token *t = &c->req.tok;
    json_t *j;
    const char *action;
    char *k;

    if (kn__sess_need(c) < 0 || kn__sess_op_ready(c) < 0)
        return;
    j = kn__httpd_json_object(c);
    if (j == NULL)
        return;
    action = jstr(j, "action");
    if (action != NULL && strcmp(action, "setup") == 0) {
        struct batch *b;
        const char *cur = jstr(j, "current_code");
        struct setup_ctx *x = kn_xcalloc(1, sizeof(*x));
        x->code = cur ? kn_xstrdup(cur) : NULL;
        /* An account with TOTP already: a code of the current one first
         * (totp_check_current). */
        b = kn__httpd_batch_new(c->srv, c, on_totp_current, x);
        k = kn_key_staff(d->prefix, t->tenant, t->login);
        kn__httpd_batch_cmd(b, "HMGET", k, "totp", "totp_last", NULL);
        free(k);
        if (cur != NULL) { /* counted before it is judged */
            k = kn_key_totp_fail(d->prefix, t->tenant, t->login);
            kn__httpd_batch_count(b, k, NULL, KN_LOGIN_LOCK_MS);
            free(k);
        }
        kn__httpd_batch_end(b);
    } else if (action != NULL && strcmp(action, "confirm") == 0) {
        struct totp_ctx *x;
        struct batch *b;
        if (jstr(j, "code") == NULL) {
            kn__httpd_respond_error(c, 400, "code",
                                    "give \"code\": the 6 digits of your "
                                    "authenticator app");
            json_decref(j);
            return;
        }
        x = kn_xcalloc(1, sizeof(*x));
        x->code = kn_xstrdup(jstr(j, "code"));
        b = kn__httpd_batch_new(c->srv, c, on_totp_pending, x);
        k = kn_key_staff(d->prefix, t->tenant, t->login);
        kn__httpd_batch_cmd(b, "HGET", k, "totp_pending", NULL);
        free(k);
        kn__httpd_batch_end(b);
    } else {
        kn__httpd_respond_error(c, 400, "action",
                                "\"action\" must be \"setup\" or "
                                "\"confirm\"");
    }
    json_decref(j);
}
