/*
 * session.c - the staff login, POST /v1/session, and the password checks
 * on the hash pool that the password change (POST /v1/session/password,
 * session_password.c, through session_int.h) shares; POST
 * /v1/session/totp is session_totp.c.  Rules in model/ (password.h,
 * session.h, totp.h), records in queue/staff.h; cookie checks of later
 * requests, DELETE /v1/session (logout) and GET /v1/session in
 * session_auth.c.
 *
 * Password hashes (Argon2id, 19 MiB, ~50-100 ms) run on the libuv thread
 * pool, at most HASH_MAX at once, so a flood of logins never holds the
 * loop nor fills the pool that other work shares.  A login beyond them
 * waits for a slot, one from each address (an IPv6 /64 is one) and at most
 * HASH_WAIT_MAX, first come first served: an outsider flooding from a few
 * addresses takes turns with the teachers instead of taking every slot;
 * beyond that 503 with Retry-After.  Throttling (model/session.h): 5
 * failures of one login from one address lock that pair for 15 minutes
 * (429); failures from many addresses delay the answers to that login (a
 * timer, not a pool thread); and 10 failures of a login within 15 minutes
 * from browsers without its device cookie (model/device.h) refuse every
 * further attempt from such a browser, before any hash (429 with the
 * minutes left, so that it costs a guesser no pool time), while a browser
 * with the cookie skips those locks and has 5 failures of its own before
 * the cookie is locked.  A successful login (password, and code when the
 * account has TOTP) sets a new device cookie.  An unknown login is verified
 * against a dummy hash, so that it takes the same time and gets the same
 * answer as a wrong password; so does the right password of a deactivated
 * account (no oracle confirming it).  A closed school's logins get 403
 * whatever the password, before any hash.  Every attempt is one login-log line,
 * with the true reason.
 */
#include "dispatcher/http/session_int.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/codec.h"
#include "common/kn.h"
#include "common/log.h"
#include "common/seal.h"
#include "model/device.h"
#include "model/password.h"
#include "model/session.h"
#include "model/totp.h"
#include "queue/keys.h"

#define BAD_LOGIN "wrong tenant, login or password"

/* ------------------------------------------------------------ helpers */

void kn__login_refuse(struct conn *c, int status, const char *result,
                      const char *field, const char *msg)
{
    c->req.auth_result = result;
    kn__httpd_respond_error(c, status, field, "%s", msg);
}

/* A string member, or NULL. */
static const char *jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* lfail:<tenant>:<login>:<the source's network> (heap). */
char *kn__login_fail_key(struct conn *c, const char *tenant, const char *login)
{
    return kn_key_login_fail(c->srv->d->prefix, tenant, login, c->req.net);
}

/* Count a failure of (tenant, login) from source. */
void kn__login_count_failure(struct conn *c, const char *tenant,
                             const char *login)
{
    struct kn_daemon *d = c->srv->d;
    char *f = kn__login_fail_key(c, tenant, login),
         *s = kn_key_login_spread(d->prefix, tenant, login);
    kn_redis_cmd(d->cmd, NULL, NULL, "INCR %s", f);
    kn_redis_cmd(d->cmd, NULL, NULL, "PEXPIRE %s %lld", f, KN_LOGIN_LOCK_MS);
    kn_redis_cmd(d->cmd, NULL, NULL, "INCR %s", s);
    kn_redis_cmd(d->cmd, NULL, NULL, "PEXPIRE %s %lld", s, KN_LOGIN_LOCK_MS);
    free(f);
    free(s);
}

/* The names of enum dev_state (session_int.h), for the login log. */
static const char *const dev_names[] = {"none", "invalid", "expired", "locked",
                                        "trusted"};

/*
 * Count a failed login of (tenant, login) from source: as count_failure,
 * and against the device cookie when the client was trusted, else against
 * the account's untrusted clients (unless hash_run counted this try
 * already).  Each key's TTL is bounded: the window, or the cookie's
 * expiry (at most KN_DEVICE_MAX_MS).
 */
static void count_login_failure(struct conn *c, const char *tenant,
                                const char *login, const struct devstate *ds)
{
    struct kn_daemon *d = c->srv->d;
    char *k;
    long long ttl = KN_LOGIN_LOCK_MS;
    kn__login_count_failure(c, tenant, login);
    if (ds->state == DEV_TRUSTED) {
        k = kn_key_device_fail(d->prefix, tenant, login, ds->dev.nonce);
        ttl = (long long)(ds->dev.expires_ms - kn_now_ms());
        if (ttl < 1000)
            ttl = 1000;
    } else if (ds->counted) {
        return;
    } else {
        k = kn_key_login_untrusted(d->prefix, tenant, login);
    }
    kn_redis_cmd(d->cmd, NULL, NULL, "INCR %s", k);
    kn_redis_cmd(d->cmd, NULL, NULL, "PEXPIRE %s %lld", k, ttl);
    free(k);
}

/* ---------------------------------------------------- a new session */

struct newsess {
    char id[KN_SESSION_ID_CHARS + 1], csrf[KN_SESSION_ID_CHARS + 1];
    char hash[65];
    json_t *reply;  /* what the login answers besides csrf */
    int totp_claim; /* reply 0 is SET totpuse NX */
    int login;      /* a login (not a password change): set a device */
    struct devstate ds;
    char *tenant, *login_name;
};

static void newsess_free(struct newsess *n)
{
    OPENSSL_cleanse(n->id, sizeof(n->id));
    OPENSSL_cleanse(n->csrf, sizeof(n->csrf));
    json_decref(n->reply);
    free(n->tenant);
    free(n->login_name);
    free(n);
}

static void on_session_made(struct batch *b)
{
    struct newsess *n = b->arg;
    struct conn *c = b->c;
    char *cookie, *extra;
    if (!kn__httpd_batch_usable(b))
        goto out;
    if (n->totp_claim && kn__httpd_brep(b, 0) != NULL &&
        kn__httpd_brep(b, 0)->type == REDIS_REPLY_NIL) {
        char *k = kn_key_session(c->srv->d->prefix, n->hash);
        kn_redis_cmd(c->srv->d->cmd, NULL, NULL, "DEL %s", k);
        free(k);
        count_login_failure(c, n->tenant, n->login_name, &n->ds);
        kn__login_refuse(c, 401, "totp_replay", "totp",
                         "this code was already used: wait for the next one");
        goto out;
    }
    cookie = kn_session_cookie(c->srv->cfg->http_public_url, n->id);
    if (n->login) {
        /* This browser is now trusted for the account: a new device
         * cookie (a new nonce, 180 days from now), the one it sent
         * forgotten. */
        struct kn_device dev;
        char *dc =
            kn_device_cookie(c->srv->d->kr, c->srv->cfg->http_public_url,
                             n->tenant, n->login_name, kn_now_ms(), &dev);
        /* the device's first: a client that keeps one cookie (a script)
         * keeps the session's */
        extra =
            kn_xasprintf("Set-Cookie: %s\r\nSet-Cookie: %s\r\n", dc, cookie);
        free(dc);
        if (n->ds.state == DEV_TRUSTED) {
            char *k = kn_key_device_fail(c->srv->d->prefix, n->tenant,
                                         n->login_name, n->ds.dev.nonce);
            kn_redis_cmd(c->srv->d->cmd, NULL, NULL, "DEL %s", k);
            free(k);
        }
    } else {
        extra = kn_xasprintf("Set-Cookie: %s\r\n", cookie);
    }
    json_object_set_new(n->reply, "csrf", json_string(n->csrf));
    c->req.auth_result = "ok";
    kn__httpd_respond_json(c, 200, json_incref(n->reply), extra);
    OPENSSL_cleanse(cookie, strlen(cookie));
    free(cookie);
    OPENSSL_cleanse(extra, strlen(extra));
    free(extra);
out:
    newsess_free(n);
}

/*
 * Make a session for (tenant, login) at generation gen and answer 200
 * with its cookie and CSRF token; reply (taken) holds the other fields.
 * totp_step >= 0 claims that TOTP step first (a code is accepted once).
 * A session cookie the client still sent is ended: a new id at login.
 * ds is the login's device (a new device cookie is set), NULL for a
 * password change.
 */
void kn__login_session_make(struct conn *c, const char *tenant,
                            const char *login, long long gen, json_t *reply,
                            long long totp_step, const struct devstate *ds)
{
    struct kn_daemon *d = c->srv->d;
    struct newsess *n = kn_xcalloc(1, sizeof(*n));
    char now[24], gs[24], ttl[24], csrf_hash[65], *k, *ks;
    char old[KN_SESSION_ID_CHARS + 1], oldh[65];
    struct batch *b;

    kn_session_new_id(n->id);
    kn_session_new_id(n->csrf);
    kn_session_hash(n->id, n->hash);
    kn_session_hash(n->csrf, csrf_hash);
    n->reply = reply;
    n->tenant = kn_xstrdup(tenant);
    n->login_name = kn_xstrdup(login);
    if (ds != NULL) {
        n->login = 1;
        n->ds = *ds;
    }
    snprintf(now, sizeof(now), "%lld", (long long)kn_now_ms());
    snprintf(gs, sizeof(gs), "%lld", gen);
    snprintf(ttl, sizeof(ttl), "%lld", KN_SESSION_MAX_MS);
    b = kn__httpd_batch_new(c->srv, c, on_session_made, n);
    if (totp_step >= 0) {
        char ms[24], st[24];
        n->totp_claim = 1;
        snprintf(ms, sizeof(ms), "%d", 4 * KN_TOTP_STEP_S * 1000);
        k = kn_key_totp_used(d->prefix, tenant, login, totp_step);
        kn__httpd_batch_cmd(b, "SET", k, "1", "NX", "PX", ms, NULL);
        free(k);
        snprintf(st, sizeof(st), "%lld", totp_step);
        k = kn_key_staff(d->prefix, tenant, login);
        kn__httpd_batch_cmd(b, "HSET", k, "totp_last", st, NULL);
        free(k);
    }
    k = kn_key_session(d->prefix, n->hash);
    kn__httpd_batch_cmd(b, "HSET", k, "tenant", tenant, "login", login, "gen",
                        gs, "created_ms", now, "seen_ms", now, "csrf",
                        csrf_hash, NULL);
    kn__httpd_batch_cmd(b, "PEXPIRE", k, ttl, NULL);
    free(k);
    ks = kn_key_staff_sessions(d->prefix, tenant, login);
    kn__httpd_batch_cmd(b, "SADD", ks, n->hash, NULL);
    kn__httpd_batch_cmd(b, "PEXPIRE", ks, ttl, NULL);
    if (kn_session_from_cookie(c->req.cookie, c->srv->cfg->http_public_url,
                               old) == 0) {
        kn_session_hash(old, oldh);
        OPENSSL_cleanse(old, sizeof(old));
        k = kn_key_session(d->prefix, oldh);
        kn__httpd_batch_cmd(b, "DEL", k, NULL);
        free(k);
        kn__httpd_batch_cmd(b, "SREM", ks, oldh, NULL);
    }
    free(ks);
    k = kn__login_fail_key(c, tenant, login);
    kn__httpd_batch_cmd(b, "DEL", k, NULL);
    free(k);
    kn__httpd_batch_end(b);
}

/* ------------------------------------------------------------- login */

/* Fields of the account read with the login, in this order. */
static const char *const acct_fields[] = {
    "id",   "role",        "name", "groups", "active",
    "hash", "must_change", "totp", "gen",    "totp_last"};

void kn__login_free(struct login *l)
{
    kn_free_secret(l->password);
    kn_free_secret(l->newpw);
    free(l->code);
    free(l->tenant);
    free(l->login);
    for (int i = 0; i < A__N; i++)
        free(l->a[i]);
    OPENSSL_cleanse(l->encoded, sizeof(l->encoded));
    free(l);
}

static void login_work(uv_work_t *w)
{
    struct login *l = kn_container_of(w, struct login, work);
    const char *enc =
        l->known && l->a[A_HASH] ? l->a[A_HASH] : kn_password_dummy();
    l->ok = kn_password_verify(enc, l->password) && l->known;
    if (l->ok && l->newpw != NULL)
        kn_password_hash(l->newpw, l->encoded);
}

/* The TOTP step a login's code matches, -1 if none, -2 if none given, -3
 * if the account has no TOTP. */
static long long login_totp(struct login *l)
{
    struct kn_daemon *d = l->srv->d;
    char *secret = NULL;
    size_t len = 0;
    long long step, last;
    if (l->a[A_TOTP] == NULL || l->a[A_TOTP][0] == '\0')
        return -3; /* no TOTP on this account */
    if (l->code == NULL)
        return -2;
    if (kn_unseal(d->kr, "totp", l->a[A_TOTP], &secret, &len) < 0)
        return -1;
    last = l->a[A_TOTP_LAST] ? strtoll(l->a[A_TOTP_LAST], NULL, 10) : -1;
    step = kn_totp_check((unsigned char *)secret, len, l->code,
                         kn_now_ms() / 1000, last);
    OPENSSL_cleanse(secret, len);
    free(secret);
    return step;
}

/* The password (and the code, step >= 0 or -3 for none) held: the session.
 * l is freed. */
static void login_finish(struct login *l, long long step)
{
    struct conn *c = l->c;
    json_t *reply;
    int role = kn_role_parse(l->a[A_ROLE] ? l->a[A_ROLE] : "");
    c->req.tok.session = 1;
    c->req.tok.staff_role = role;
    snprintf(c->req.tok.id, sizeof(c->req.tok.id), "st_%.16s",
             l->a[A_ID] ? l->a[A_ID] : "");
    reply = json_object();
    json_object_set_new(reply, "tenant", json_string(l->tenant));
    json_object_set_new(reply, "login", json_string(l->login));
    json_object_set_new(reply, "name", kn__httpd_jstr_or_null(l->a[A_NAME]));
    json_object_set_new(reply, "role", json_string(kn_role_name(role)));
    json_object_set_new(
        reply, "must_change_password",
        json_boolean(l->a[A_MUST] && strcmp(l->a[A_MUST], "1") == 0));
    json_object_set_new(reply, "totp", json_boolean(step >= 0));
    json_object_set_new(reply, "totp_required",
                        json_boolean(c->srv->cfg->http_require_2fa_admin &&
                                     role == KN_ROLE_ADMIN && step < 0));
    kn__login_session_make(c, l->tenant, l->login,
                           l->a[A_GEN] ? strtoll(l->a[A_GEN], NULL, 10) : 0,
                           reply, step >= 0 ? step : -1, &l->ds);
    kn__login_free(l);
}

/* The try of a code counted for the account (from every address): past
 * KN_TOTP_LOCK_FAILS, 429 without looking at it; a right code is taken
 * off the count again.  Counted before it is judged, so that codes sent
 * at once cannot all be tried. */
static void on_totp_counted(struct batch *b)
{
    struct login *l = b->arg;
    struct conn *c = b->c;
    struct kn_daemon *d = b->srv->d;
    long long step;
    char *k;
    if (!kn__httpd_batch_usable(b)) {
        kn__login_free(l);
        return;
    }
    if (kn__httpd_rnum(kn__httpd_brep(b, 0)) > KN_TOTP_LOCK_FAILS) {
        char extra[48];
        json_t *j = json_object();
        snprintf(extra, sizeof(extra), "Retry-After: %lld\r\n",
                 KN_LOGIN_LOCK_MS / 1000);
        c->req.auth_result = "totp_locked";
        json_object_set_new(j, "error",
                            json_string("too many wrong authenticator codes "
                                        "for this account: try again in 15 "
                                        "minutes, and if it was not you, "
                                        "change your password"));
        json_object_set_new(j, "field", json_string("totp"));
        json_object_set_new(j, "code", json_string("totp_locked"));
        kn__httpd_respond_json(c, 429, j, extra);
        kn__login_free(l);
        return;
    }
    step = login_totp(l);
    if (step < 0) {
        count_login_failure(c, l->tenant, l->login, &l->ds);
        kn__login_refuse(c, 401, "totp_wrong", "totp",
                         "wrong or already used authenticator code");
        kn__login_free(l);
        return;
    }
    k = kn_key_totp_fail(d->prefix, l->tenant, l->login);
    kn_redis_cmd(d->cmd, NULL, NULL, "DECR %s", k);
    free(k);
    login_finish(l, step);
}

/* The password hash is done: the answer, or the code's count first.  l is
 * freed (now or when the count is in). */
static void login_answer(struct login *l)
{
    struct conn *c = l->c;
    struct batch *b;
    char *k;

    /* A deactivated account's right password gets exactly the answer of
     * a wrong one (after the same hash, counted alike): anything else
     * would confirm the password to whoever tries it.  The login log
     * keeps the true reason for the school's admins. */
    if (!l->ok || l->a[A_ACTIVE] == NULL || strcmp(l->a[A_ACTIVE], "1") != 0) {
        count_login_failure(c, l->tenant, l->login, &l->ds);
        kn__login_refuse(c, 401,
                         !l->known ? "unknown_login"
                         : !l->ok  ? "wrong_password"
                                   : "deactivated",
                         NULL, BAD_LOGIN);
        kn__login_free(l);
        return;
    }
    if (l->ds.counted) {
        /* The right password is no failed try (hash_run counted it);
         * a wrong code after it is (count_login_failure).  PEXPIRE
         * again: a DECR never leaves a count without its end. */
        char ms[24];
        k = kn_key_login_untrusted(c->srv->d->prefix, l->tenant, l->login);
        snprintf(ms, sizeof(ms), "%lld", KN_LOGIN_LOCK_MS);
        kn_redis_cmd(c->srv->d->cmd, NULL, NULL, "DECR %s", k);
        kn_redis_cmd(c->srv->d->cmd, NULL, NULL, "PEXPIRE %s %s", k, ms);
        free(k);
        l->ds.counted = 0;
    }
    if (l->a[A_TOTP] == NULL || l->a[A_TOTP][0] == '\0') {
        login_finish(l, -3);
        return;
    }
    if (l->code == NULL) {
        kn__login_refuse(c, 401, "totp_missing", "totp",
                         "enter the 6-digit code of your authenticator app as "
                         "\"totp\"");
        kn__login_free(l);
        return;
    }
    b = kn__httpd_batch_new(c->srv, c, on_totp_counted, l);
    k = kn_key_totp_fail(c->srv->d->prefix, l->tenant, l->login);
    kn__httpd_batch_count(b, k, NULL, KN_LOGIN_LOCK_MS);
    free(k);
    kn__httpd_batch_end(b);
}

static void on_delay_closed(uv_handle_t *h)
{
    struct login *l = h->data;
    struct http_srv *s = l->srv;
    if (kn__httpd_conn_release(l->c))
        login_answer(l);
    else
        kn__login_free(l);
    kn__httpd_srv_unref(s);
}

static void on_delay(uv_timer_t *t)
{
    uv_close((uv_handle_t *)t, on_delay_closed);
}

static void login_after(uv_work_t *w, int status)
{
    struct login *l = kn_container_of(w, struct login, work);
    struct http_srv *s = l->srv;
    s->hashing--;
    kn__httpd_hash_next(s);
    if (l->change) {
        kn__login_password_done(l);
        return;
    }
    if (l->delay_ms > 0 && !l->srv->closing) {
        /* Many failures from many addresses: slower, never refused. */
        uv_timer_init(l->srv->d->loop, &l->delay);
        l->delay.data = l;
        uv_timer_start(&l->delay, on_delay, (uint64_t)l->delay_ms, 0);
        return;
    }
    if (kn__httpd_conn_release(l->c))
        login_answer(l);
    else
        kn__login_free(l);
    kn__httpd_srv_unref(s);
}

static void busy(struct conn *c)
{
    json_t *j = json_object();
    c->req.auth_result = "busy";
    json_object_set_new(j, "error",
                        json_string("too many logins at this "
                                    "moment; try again in a "
                                    "second"));
    json_object_set_new(j, "field", json_null());
    kn__httpd_respond_json(c, 503, j, "Retry-After: 1\r\n");
}

/* May l wait for a hash slot: room in the queue, and nothing else of its
 * address waiting (so that a flood from a few addresses takes turns with
 * everyone else instead of taking every slot)? */
static int may_wait(const struct http_srv *s, const struct login *l)
{
    int n = 0;
    for (const struct login *w = s->hash_queue; w != NULL; w = w->next) {
        if (w->c->closed)
            continue;
        if (++n >= HASH_WAIT_MAX || strcmp(w->c->req.net, l->c->req.net) == 0)
            return 0;
    }
    return 1;
}

/*
 * 429 for an untrusted client while the account's untrusted failures are
 * past KN_LOGIN_UNTRUSTED_FAILS: Retry-After and "retry_after" the
 * seconds until the count expires (pttl, its PTTL), so that the console
 * can tell its owner how long to wait, and what else to do.
 */
static void refuse_untrusted(struct conn *c, long long pttl)
{
    char extra[48];
    long long s = pttl > 0 ? (pttl + 999) / 1000 : KN_LOGIN_LOCK_MS / 1000;
    long long min = (s + 59) / 60;
    json_t *j = json_object();
    char msg[300];
    snprintf(extra, sizeof(extra), "Retry-After: %lld\r\n", s);
    snprintf(msg, sizeof(msg),
             "too many failed logins for this account from browsers it was "
             "never used in: such logins are refused for %lld more "
             "minute%s; log in from a browser you have logged in from "
             "before, or wait, or ask the school's administrator",
             min, min == 1 ? "" : "s");
    c->req.auth_result = "untrusted_locked";
    json_object_set_new(j, "error", json_string(msg));
    json_object_set_new(j, "field", json_null());
    json_object_set_new(j, "code", json_string("untrusted_locked"));
    json_object_set_new(j, "retry_after", json_integer(s));
    kn__httpd_respond_json(c, 429, j, extra);
}

/*
 * The try of an untrusted login is counted (luntr, hash_run), its slot
 * held: the hash when the count is within KN_LOGIN_UNTRUSTED_FAILS, else
 * 429 as on_login_lookup answers, and the slot given on.  So that logins
 * which all passed on_login_lookup's check at once (up to HASH_MAX +
 * HASH_WAIT_MAX of a process) cannot all be judged: the count, not the
 * check, bounds the guesses.  A right password takes its try off again
 * (login_answer).
 */
static void on_untrusted_counted(struct batch *b)
{
    struct login *l = b->arg;
    struct http_srv *s = l->srv;
    long long n = kn__httpd_rnum(kn__httpd_brep(b, 0));
    int usable = kn__httpd_batch_usable(b); /* else answered or closed */
    l->ds.counted = 1;
    if (usable && !s->closing && n <= KN_LOGIN_UNTRUSTED_FAILS &&
        uv_queue_work(s->d->loop, &l->work, login_work, login_after) == 0)
        return;
    s->hashing--;
    if (usable && n > KN_LOGIN_UNTRUSTED_FAILS)
        refuse_untrusted(l->c, kn__httpd_rnum(kn__httpd_brep(b, 2)));
    else if (usable)
        kn__httpd_respond_error(l->c, 503, NULL, "cannot hash now; retry");
    kn__httpd_hash_next(s);
    kn__httpd_conn_release(l->c); /* hash_start's hold */
    kn__login_free(l);
    kn__httpd_srv_unref(s);
}

/* Run l's hash on the pool (the conn and the server are held for it),
 * an untrusted login's try counted first (on_untrusted_counted); on
 * failure both are let go, the client answered 503, and -1 (l to free). */
static int hash_run(struct login *l)
{
    struct http_srv *s = l->srv;
    s->hashing++;
    if (!l->change && l->ds.state != DEV_TRUSTED) {
        struct kn_daemon *d = s->d;
        char ms[24];
        char *k = kn_key_login_untrusted(d->prefix, l->tenant, l->login);
        struct batch *b = kn__httpd_batch_new(s, l->c, on_untrusted_counted, l);
        snprintf(ms, sizeof(ms), "%lld", KN_LOGIN_LOCK_MS);
        kn__httpd_batch_cmd(b, "INCR", k, NULL);
        kn__httpd_batch_cmd(b, "PEXPIRE", k, ms, NULL);
        kn__httpd_batch_cmd(b, "PTTL", k, NULL);
        free(k);
        kn__httpd_batch_end(b);
        return 0;
    }
    if (uv_queue_work(s->d->loop, &l->work, login_work, login_after) == 0)
        return 0;
    s->hashing--;
    if (kn__httpd_conn_release(l->c))
        kn__httpd_respond_error(l->c, 503, NULL, "cannot hash now; retry");
    kn__httpd_srv_unref(s);
    return -1;
}

/* Start l's hash on the pool, or queue it for a free slot (the conn is
 * held), or answer 503: -1 (l to free). */
int kn__login_hash_start(struct login *l)
{
    struct http_srv *s = l->srv;
    struct login **pp;
    if (s->hashing >= HASH_MAX && !may_wait(s, l)) {
        busy(l->c);
        return -1;
    }
    s->live++;
    kn__httpd_conn_hold(l->c);
    if (s->hashing < HASH_MAX)
        return hash_run(l);
    for (pp = &s->hash_queue; *pp != NULL; pp = &(*pp)->next)
        ;
    l->next = NULL;
    *pp = l;
    return 0;
}

void kn__httpd_hash_next(struct http_srv *s)
{
    struct login *l;
    int last;
    for (;;) {
        l = s->hash_queue;
        if (l == NULL || (!s->closing && s->hashing >= HASH_MAX))
            return;
        s->hash_queue = l->next;
        if (!s->closing && !l->c->closed) {
            if (hash_run(l) < 0)
                kn__login_free(l);
            continue;
        }
        /* closed while it waited, or the server closes */
        if (kn__httpd_conn_release(l->c))
            busy(l->c);
        kn__login_free(l);
        last = s->hash_queue == NULL;
        kn__httpd_srv_unref(s); /* may free s when it was the last */
        if (last)
            return;
    }
}

static void on_login_lookup(struct batch *b)
{
    struct login *l = b->arg;
    struct conn *c = b->c;
    const redisReply *fail = kn__httpd_brep(b, 0),
                     *spread = kn__httpd_brep(b, 1), *h = kn__httpd_brep(b, 2),
                     *closed = kn__httpd_brep(b, 3),
                     *untrusted = kn__httpd_brep(b, 4),
                     *untrusted_ttl = kn__httpd_brep(b, 5),
                     *devfail = kn__httpd_brep(b, 6);
    int trusted;
    if (!kn__httpd_batch_usable(b)) {
        kn__login_free(l);
        return;
    }
    if (h != NULL && h->type == REDIS_REPLY_ARRAY && h->elements == A__N) {
        for (int i = 0; i < A__N; i++)
            l->a[i] = kn__httpd_dupstr(kn__httpd_rstr(h->element[i]));
    }
    l->known = l->a[A_ID] != NULL && l->a[A_HASH] != NULL;
    if (l->known)
        c->req.tok.login = kn_xstrdup(l->login);
    if (l->ds.state == DEV_TRUSTED &&
        kn__httpd_rnum(devfail) >= KN_DEVICE_LOCK_FAILS)
        l->ds.state = DEV_LOCKED;
    c->req.device = dev_names[l->ds.state];
    trusted = l->ds.state == DEV_TRUSTED;
    if (!trusted && kn__httpd_rnum(fail) >= KN_LOGIN_LOCK_FAILS) {
        char extra[48];
        json_t *j = json_object();
        snprintf(extra, sizeof(extra), "Retry-After: %lld\r\n",
                 KN_LOGIN_LOCK_MS / 1000);
        c->req.auth_result = "locked";
        json_object_set_new(j, "error",
                            json_string("too many failed logins for this "
                                        "account from this address: try "
                                        "again in 15 minutes"));
        json_object_set_new(j, "field", json_null());
        json_object_set_new(j, "code", json_string("address_locked"));
        json_object_set_new(j, "retry_after",
                            json_integer(KN_LOGIN_LOCK_MS / 1000));
        kn__httpd_respond_json(c, 429, j, extra);
        kn__login_free(l);
        return;
    }
    if (!trusted && kn__httpd_rnum(untrusted) >= KN_LOGIN_UNTRUSTED_FAILS) {
        /* Before any hash: a guesser spends a request, no pool time. */
        refuse_untrusted(c, kn__httpd_rnum(untrusted_ttl));
        kn__login_free(l);
        return;
    }
    if (kn__httpd_rnum(closed) > 0) {
        /* A closed school: the same 403 whatever the password, before
         * any hash (after it, a right password answered 403 and a wrong
         * one 401: an oracle for the passwords of a school whose data
         * is still held until the purge). */
        kn__login_refuse(
            c, 403, "tenant_closed", NULL,
            "this tenant is closed: its staff can no longer log in");
        kn__login_free(l);
        return;
    }
    /* The owner's own browser is not slowed by someone else's guesses. */
    l->delay_ms = trusted ? 0 : kn_login_delay_ms(kn__httpd_rnum(spread));
    l->c = c;
    if (kn__login_hash_start(l) < 0)
        kn__login_free(l);
}

void kn__httpd_run_login(struct conn *c)
{
    struct kn_daemon *d = c->srv->d;
    json_t *j;
    const char *tenant, *login, *pw, *code;
    struct login *l;
    struct batch *b;
    char *k;

    c->req.auth_result = "malformed"; /* every attempt is logged */
    j = kn__httpd_json_object(c);
    if (j == NULL)
        return;
    /* Login CSRF: a browser names the page that posts; only the
     * console's own origin may log someone in. */
    if (c->req.origin != NULL) {
        char origin[256];
        kn_session_origin(c->srv->cfg->http_public_url, origin, sizeof(origin));
        if (strcmp(c->req.origin, origin) != 0) {
            json_decref(j);
            kn__login_refuse(
                c, 403, "csrf_origin", NULL,
                "cross-site login refused: log in from the console's "
                "own origin");
            return;
        }
    }
    tenant = jstr(j, "tenant");
    login = jstr(j, "login");
    pw = jstr(j, "password");
    code = jstr(j, "totp");
    if (tenant == NULL || !kn_tenant_valid(tenant)) {
        json_decref(j);
        kn__httpd_respond_error(c, 400, "tenant",
                                "give \"tenant\": the school's tenant name");
        return;
    }
    if (login == NULL || login[0] == '\0' || strlen(login) > 64) {
        json_decref(j);
        kn__httpd_respond_error(c, 400, "login",
                                "give \"login\": 1-64 characters");
        return;
    }
    if (pw == NULL || strlen(pw) > KN_PW_MAX_BYTES) {
        json_decref(j);
        kn__httpd_respond_error(c, 400, "password",
                                "give \"password\" (at most 256 bytes)");
        return;
    }
    /* The login goes to the login log only once it is known to be an
     * account (on_login_lookup): what was typed as a login that is none
     * is often the password, and the school's admins read that log. */
    c->req.tok.tenant = kn_xstrdup(tenant);
    c->req.auth_result = "pending";
    l = kn_xcalloc(1, sizeof(*l));
    l->srv = c->srv;
    l->tenant = kn_xstrdup(tenant);
    l->login = kn_xstrdup(login);
    l->password = kn_xstrdup(pw);
    l->code = code ? kn_xstrdup(code) : NULL;
    json_decref(j); /* (jansson's copy of the password goes with it) */
    /* The device cookie of this account, checked here (a MAC, no I/O);
     * whether it is locked comes with the lookup.  A login that is no
     * account has none (none is ever issued for it): it is judged as a
     * known login's untrusted client is. */
    switch (kn_device_from_cookie(d->kr, c->req.cookie,
                                  c->srv->cfg->http_public_url, l->tenant,
                                  l->login, kn_now_ms(), &l->ds.dev)) {
    case 0:
        l->ds.state = DEV_TRUSTED;
        break;
    case KN_ETIMEDOUT:
        l->ds.state = DEV_EXPIRED;
        break;
    case KN_ENOENT:
        l->ds.state = DEV_NONE;
        break;
    default:
        l->ds.state = DEV_INVALID;
        break;
    }
    c->req.device = dev_names[l->ds.state];
    b = kn__httpd_batch_new(c->srv, c, on_login_lookup, l);
    k = kn__login_fail_key(c, l->tenant, l->login);
    kn__httpd_batch_cmd(b, "GET", k, NULL);
    free(k);
    k = kn_key_login_spread(d->prefix, l->tenant, l->login);
    kn__httpd_batch_cmd(b, "GET", k, NULL);
    free(k);
    {
        struct kn_argv a;
        kn_argv_init(&a);
        kn_argv_add(&a, "HMGET");
        kn_argv_take(&a, kn_key_staff(d->prefix, l->tenant, l->login));
        for (int i = 0; i < A__N; i++)
            kn_argv_add(&a, acct_fields[i]);
        kn__httpd_batch_add(b, &a);
        kn_argv_free(&a);
    }
    k = kn__key(d, "tenant:%s", l->tenant);
    kn__httpd_batch_cmd(b, "HGET", k, "closed_ms", NULL);
    free(k);
    k = kn_key_login_untrusted(d->prefix, l->tenant, l->login);
    kn__httpd_batch_cmd(b, "GET", k, NULL);
    kn__httpd_batch_cmd(b, "PTTL", k, NULL);
    free(k);
    if (l->ds.state == DEV_TRUSTED) {
        /* genuine: is it locked? (on_login_lookup) */
        k = kn_key_device_fail(d->prefix, l->tenant, l->login, l->ds.dev.nonce);
        kn__httpd_batch_cmd(b, "GET", k, NULL);
        free(k);
    }
    kn__httpd_batch_end(b);
}
