/*
 * session_password.c - POST /v1/session/password: a session changes its
 * account's password, giving the current one.  The current password's
 * hash is checked on the pool as a login's is (session.c); a session may
 * try it KN_PW_CHANGE_FAILS times (each try counted before its hash), so
 * that a stolen session cookie cannot guess its way to the account; the
 * per-address lock (model/session.h) applies as to logins.  A change ends
 * every other session of the account (gen) and gives this client a new
 * one.
 */
#include "dispatcher/http/session_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kn.h"
#include "common/log.h"
#include "model/session.h"
#include "queue/keys.h"

/* Tries of the current password a session may make at POST
 * /v1/session/password: a wrong one at this count ends the session, and
 * a try past it is refused unjudged.  Whoever holds a stolen session
 * cookie (a console left open) cannot guess the password from address
 * after address, nor many at once, to take the account for good. */
#define KN_PW_CHANGE_FAILS 5

/* A string member, or NULL. */
static const char *jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void on_password_stored(struct batch *b)
{
    struct login *l = b->arg;
    struct conn *c = b->c;
    const redisReply *gen = kn__httpd_brep(b, 1);
    json_t *reply;
    if (!kn__httpd_batch_usable(b)) {
        kn__login_free(l);
        return;
    }
    reply = json_object();
    json_object_set_new(reply, "tenant", json_string(l->tenant));
    json_object_set_new(reply, "login", json_string(l->login));
    json_object_set_new(reply, "password_changed", json_true());
    json_object_set_new(reply, "must_change_password", json_false());
    kn_log(KN_LOG_INFO, "http", "staff password changed", "tenant", l->tenant,
           "token", c->req.tok.id, NULL);
    kn__sess_op_log(c, "staff.password");
    /* Every session of the account ended (gen); this client gets a new
     * one. */
    kn__login_session_make(c, l->tenant, l->login, kn__httpd_rnum(gen), reply,
                           -1, NULL);
    kn__login_free(l);
}

/* Past KN_PW_CHANGE_FAILS tries of the current password: the session
 * ended (as a logout) and 401. */
static void pw_session_end(struct conn *c, struct login *l)
{
    char *extra = kn__sess_end(c);
    json_t *j = json_object();
    kn_log(KN_LOG_WARN, "http",
           "staff session ended: too many wrong current passwords at a "
           "password change",
           "tenant", l->tenant, "token", c->req.tok.id, NULL);
    c->req.auth_result = "session_ended";
    json_object_set_new(
        j, "error",
        json_sprintf("現在のパスワードが %d 回違ったため、このログインを"
                     "終了しました。もう一度ログインしてください (the "
                     "current password was wrong %d times: this session "
                     "has ended; log in again)",
                     KN_PW_CHANGE_FAILS, KN_PW_CHANGE_FAILS));
    json_object_set_new(j, "field", json_string("current"));
    json_object_set_new(j, "code", json_string("session_ended"));
    kn__httpd_respond_json(c, 401, j, extra);
    free(extra);
}

void kn__login_password_done(struct login *l)
{
    struct conn *c = l->c;
    struct kn_daemon *d = l->srv->d;
    struct batch *b;
    char *k;
    if (!kn__httpd_conn_release(c)) {
        kn__httpd_srv_unref(l->srv);
        kn__login_free(l);
        return;
    }
    kn__httpd_srv_unref(l->srv);
    if (!l->ok) {
        kn__login_count_failure(c, l->tenant, l->login);
        if (l->pwtry >= KN_PW_CHANGE_FAILS)
            pw_session_end(c, l);
        else
            kn__login_refuse(c, 403, "wrong_password", "current",
                             "the current password is wrong");
        kn__login_free(l);
        return;
    }
    b = kn__httpd_batch_new(c->srv, c, on_password_stored, l);
    k = kn_key_staff(d->prefix, l->tenant, l->login);
    kn__httpd_batch_cmd(b, "HSET", k, "hash", l->encoded, "must_change", "0",
                        NULL);
    kn__httpd_batch_cmd(b, "HINCRBY", k, "gen", "1", NULL);
    free(k);
    k = kn_key_session(d->prefix, c->req.tok.sess);
    kn__httpd_batch_cmd(b, "DEL", k, NULL);
    free(k);
    kn__httpd_batch_end(b);
}

static void on_password_lookup(struct batch *b)
{
    struct login *l = b->arg;
    struct conn *c = b->c;
    const redisReply *h = kn__httpd_brep(b, 0);
    if (!kn__httpd_batch_usable(b)) {
        kn__login_free(l);
        return;
    }
    if (kn__httpd_rnum(kn__httpd_brep(b, 1)) >= KN_LOGIN_LOCK_FAILS) {
        char extra[48];
        snprintf(extra, sizeof(extra), "Retry-After: %lld\r\n",
                 KN_LOGIN_LOCK_MS / 1000);
        c->req.auth_result = "locked";
        kn__httpd_respond_json(
            c, 429,
            json_pack("{s:s, s:n}", "error",
                      "too many failed password checks for this account "
                      "from this address: try again in 15 minutes",
                      "field"),
            extra);
        kn__login_free(l);
        return;
    }
    /* The try was counted before its hash (kn__httpd_run_password), as
     * an untrusted login's is: guesses sent at once cannot all be
     * judged. */
    l->pwtry = kn__httpd_rnum(kn__httpd_brep(b, 2));
    if (l->pwtry > KN_PW_CHANGE_FAILS) {
        pw_session_end(c, l);
        kn__login_free(l);
        return;
    }
    l->a[A_HASH] = kn__httpd_dupstr(kn__httpd_rstr(h));
    l->known = l->a[A_HASH] != NULL;
    l->c = c;
    if (kn__login_hash_start(l) < 0)
        kn__login_free(l);
}

void kn__httpd_run_password(struct conn *c)
{
    struct token *t = &c->req.tok;
    json_t *j;
    const char *cur, *nw;
    char err[200], ms[24], *k;
    struct login *l;
    struct batch *b;

    if (kn__sess_need(c) < 0 || kn__sess_op_ready(c) < 0)
        return;
    j = kn__httpd_json_object(c);
    if (j == NULL)
        return;
    cur = jstr(j, "current");
    nw = jstr(j, "new");
    if (cur == NULL || strlen(cur) > KN_PW_MAX_BYTES) {
        json_decref(j);
        kn__httpd_respond_error(c, 400, "current",
                                "give \"current\": the password in use");
        return;
    }
    if (nw == NULL) {
        json_decref(j);
        kn__httpd_respond_error(c, 400, "new",
                                "give \"new\": the new password");
        return;
    }
    if (kn_password_check(nw, t->login, err, sizeof(err)) < 0) {
        json_decref(j);
        kn__httpd_respond_error(c, 400, "new", "%s", err);
        return;
    }
    if (strcmp(cur, nw) == 0) {
        json_decref(j);
        kn__httpd_respond_error(c, 400, "new",
                                "the new password must differ from the "
                                "current one");
        return;
    }
    l = kn_xcalloc(1, sizeof(*l));
    l->srv = c->srv;
    l->change = 1;
    l->tenant = kn_xstrdup(t->tenant);
    l->login = kn_xstrdup(t->login);
    l->password = kn_xstrdup(cur);
    l->newpw = kn_xstrdup(nw);
    json_decref(j);
    b = kn__httpd_batch_new(c->srv, c, on_password_lookup, l);
    k = kn_key_staff(c->srv->d->prefix, t->tenant, t->login);
    kn__httpd_batch_cmd(b, "HGET", k, "hash", NULL);
    free(k);
    k = kn__login_fail_key(c, t->tenant, t->login);
    kn__httpd_batch_cmd(b, "GET", k, NULL);
    free(k);
    /* This try, counted before any hash is checked, in a key of its own:
     * a 5th wrong try deletes the session's hash, and tries that passed
     * the session check before that must find the count past 5, not a
     * new one from 0 (a count in the hash was: 6 judged of 16 at once). */
    snprintf(ms, sizeof(ms), "%lld", KN_SESSION_MAX_MS);
    k = kn_key_session_pwtry(c->srv->d->prefix, t->sess);
    kn__httpd_batch_cmd(b, "INCR", k, NULL);
    kn__httpd_batch_cmd(b, "PEXPIRE", k, ms, "NX", NULL);
    free(k);
    kn__httpd_batch_end(b);
}
