/*
 * session_auth.c - a request authenticated by a staff session cookie
 * instead of a bearer token (model/session.h, records in queue/staff.h).
 *
 * The cookie's id is hashed and its record read; then, in one batch, the
 * account (role, groups, active, gen read fresh, so that a role change or
 * a deactivation acts on the next request), the tenant's closed mark, and
 * the session's seen_ms is moved on (not by the console's own polling,
 * X-Kairan-Background: 1).  A state-changing request (any method
 * but GET) must also carry the Origin of http.public_url and the session's
 * CSRF token in X-CSRF-Token.  Then the request goes on exactly as one
 * with a token of that role, tenant and groups would (auth.c), a tenant's
 * admin as its limited_admin: a staff account never acts outside its
 * tenant.  Every refusal is one login-log line.
 *
 * Also the routes of a session once it is made: DELETE /v1/session
 * (logout), GET /v1/session (who am I), and the helpers the routes that
 * need a session share (kn__sess_need, kn__sess_op_log, kn__sess_op_ready).
 */
#include "dispatcher/http/http_int.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kn.h"
#include "common/log.h"
#include "model/audit.h"
#include "model/session.h"
#include "model/token.h"
#include "queue/keys.h"

static void refuse(struct conn *c, int status, const char *result,
                   const char *msg)
{
    c->req.auth_result = result;
    kn__httpd_respond_error(c, status, NULL, "%s", msg);
}

/* The routes a session may use while the account still owes a password
 * change or a TOTP setup. */
static int pending_allows(const struct conn *c, int totp_owed)
{
    enum route_id id = c->req.route->id;
    if (id == R_SESSION_END || id == R_SESSION_PASSWORD || id == R_SESSION_GET)
        return 1;
    return totp_owed && id == R_SESSION_TOTP;
}

/* Origin and X-CSRF-Token of a state-changing request; 0 or refused. */
static int csrf_ok(struct conn *c, const char *csrf_hash)
{
    struct req *r = &c->req;
    char origin[256], h[65];
    if (r->method == HTTP_GET)
        return 0;
    kn_session_origin(c->srv->cfg->http_public_url, origin, sizeof(origin));
    if (r->origin == NULL || origin[0] == '\0' ||
        strcmp(r->origin, origin) != 0) {
        refuse(c, 403, "csrf_origin",
               "cross-site request refused: a change made with a session "
               "must come from the console's own origin (Origin header)");
        return -1;
    }
    if (r->csrf == NULL || strlen(r->csrf) != KN_SESSION_ID_CHARS ||
        csrf_hash == NULL || strlen(csrf_hash) != 64) {
        refuse(c, 403, "csrf_token",
               "missing CSRF token: send the X-CSRF-Token header the login "
               "returned");
        return -1;
    }
    kn_session_hash(r->csrf, h);
    if (CRYPTO_memcmp(h, csrf_hash, 64) != 0) {
        refuse(c, 403, "csrf_token",
               "wrong CSRF token: send the X-CSRF-Token header the login "
               "returned");
        return -1;
    }
    return 0;
}

struct sa_ctx {
    char *csrf_hash;
};

static void on_account(struct batch *b)
{
    struct conn *c = b->c;
    struct sa_ctx *x = b->arg;
    struct token *t;
    const redisReply *h = kn__httpd_brep(b, 0), *closed = kn__httpd_brep(b, 1);
    const char *role, *active, *gen, *must, *totp;
    int staff_role, totp_owed;

    if (!kn__httpd_batch_usable(b))
        goto out;
    t = &c->req.tok;
    if (h == NULL || h->type != REDIS_REPLY_ARRAY || h->elements != 8) {
        kn__httpd_respond_error(c, 503, NULL, "Redis gave no answer; retry");
        goto out;
    }
    role = kn__httpd_rstr(h->element[1]);
    active = kn__httpd_rstr(h->element[4]);
    gen = kn__httpd_rstr(h->element[5]);
    must = kn__httpd_rstr(h->element[6]);
    totp = kn__httpd_rstr(h->element[7]);
    staff_role = role ? kn_role_parse(role) : -1;
    if (kn__httpd_rstr(h->element[0]) == NULL || staff_role < 0) {
        refuse(c, 401, "session_unknown",
               "this session's account no longer exists: log in again");
        goto out;
    }
    if (active == NULL || strcmp(active, "1") != 0) {
        refuse(c, 401, "deactivated",
               "this staff account is deactivated: its sessions ended");
        goto out;
    }
    if (gen == NULL || strtoll(gen, NULL, 10) != t->gen) {
        refuse(c, 401, "session_ended",
               "this session was ended (password, role or account changed): "
               "log in again");
        goto out;
    }
    if (kn__httpd_rnum(closed) > 0) {
        refuse(c, 403, "tenant_closed",
               "this tenant is closed (kairanctl tenant close): its staff "
               "can no longer log in");
        goto out;
    }
    snprintf(t->id, sizeof(t->id), "st_%.16s", kn__httpd_rstr(h->element[0]));
    t->session = 1;
    t->staff_role = staff_role;
    t->role = staff_role == KN_ROLE_ADMIN ? KN_ROLE_LIMITED_ADMIN : staff_role;
    t->name = kn__httpd_dupstr(kn__httpd_rstr(h->element[2]));
    t->groups = kn__httpd_dupstr(kn__httpd_rstr(h->element[3]));
    if (csrf_ok(c, x->csrf_hash) < 0)
        goto out;
    totp_owed = c->srv->cfg->http_require_2fa_admin &&
                staff_role == KN_ROLE_ADMIN && (totp == NULL || !totp[0]);
    t->must_change = must != NULL && strcmp(must, "1") == 0;
    t->totp_owed = totp_owed;
    if ((must != NULL && strcmp(must, "1") == 0) || totp_owed) {
        if (!pending_allows(c, totp_owed)) {
            refuse(c, 403, "pending",
                   totp_owed && !(must && strcmp(must, "1") == 0)
                       ? "set up two-factor authentication first (POST "
                         "/v1/session/totp): http.require_2fa_admin is on"
                       : "change the initial password first (POST "
                         "/v1/session/password)");
            goto out;
        }
    }
    kn__httpd_auth_done(c);
out:
    free(x->csrf_hash);
    free(x);
}

static void on_session(struct batch *b)
{
    struct conn *c = b->c;
    const redisReply *h = kn__httpd_brep(b, 0);
    struct token *t;
    const char *tenant, *login;
    long long created, seen, now = kn_now_ms();
    struct sa_ctx *x;
    struct batch *nb;
    char *k;

    if (!kn__httpd_batch_usable(b))
        return;
    t = &c->req.tok;
    if (h == NULL || h->type != REDIS_REPLY_ARRAY || h->elements != 6) {
        kn__httpd_respond_error(c, 503, NULL, "Redis gave no answer; retry");
        return;
    }
    tenant = kn__httpd_rstr(h->element[0]);
    login = kn__httpd_rstr(h->element[1]);
    if (tenant == NULL || login == NULL || !kn_tenant_valid(tenant)) {
        refuse(c, 401, "session_unknown",
               "no such session (ended, expired or never made): log in");
        return;
    }
    t->tenant = kn_xstrdup(tenant);
    t->login = kn_xstrdup(login);
    t->gen = kn__httpd_rnum(h->element[2]);
    created = kn__httpd_rnum(h->element[3]);
    seen = kn__httpd_rnum(h->element[4]);
    if (kn_session_alive(created, seen, now) < 0) {
        k = kn_key_session(c->srv->d->prefix, t->sess);
        kn_redis_cmd(c->srv->d->cmd, NULL, NULL, "DEL %s", k);
        free(k);
        refuse(c, 401, "session_expired",
               "this session has expired (30 minutes idle or 12 hours in "
               "all): log in again");
        return;
    }
    x = kn_xcalloc(1, sizeof(*x));
    x->csrf_hash = kn__httpd_dupstr(kn__httpd_rstr(h->element[5]));
    nb = kn__httpd_batch_new(c->srv, c, on_account, x);
    k = kn_key_staff(c->srv->d->prefix, tenant, login);
    kn__httpd_batch_cmd(nb, "HMGET", k, "id", "role", "name", "groups",
                        "active", "gen", "must_change", "totp", NULL);
    free(k);
    k = kn__key(c->srv->d, "tenant:%s", tenant);
    kn__httpd_batch_cmd(nb, "HGET", k, "closed_ms", NULL);
    free(k);
    if (!c->req.background) {
        /* A person's request; the console's own polling (a page left
         * open) must not keep the session from its idle end. */
        char ts[24];
        snprintf(ts, sizeof(ts), "%lld", now);
        char ms[24];
        snprintf(ms, sizeof(ms), "%lld", KN_SESSION_MAX_MS);
        k = kn_key_session(c->srv->d->prefix, t->sess);
        kn__httpd_batch_cmd(nb, "HSET", k, "seen_ms", ts, NULL);
        /* A session ended since the HMGET above (a logout, a 5th wrong
         * password) was re-created by the HSET, holding seen_ms alone and
         * useless: it expires rather than stay for good. */
        kn__httpd_batch_cmd(nb, "PEXPIRE", k, ms, "NX", NULL);
        free(k);
    }
    kn__httpd_batch_end(nb);
}

void kn__httpd_session_start(struct conn *c)
{
    struct req *r = &c->req;
    struct kn_daemon *d = c->srv->d;
    char id[KN_SESSION_ID_CHARS + 1], *k;
    struct batch *b;
    int rc =
        kn_session_from_cookie(r->cookie, c->srv->cfg->http_public_url, id);
    if (rc == KN_ENOENT) {
        refuse(c, 401, "missing",
               "this needs a token (Authorization: Bearer kn_...) or a "
               "staff session (POST /v1/session)");
        return;
    }
    if (rc < 0) {
        refuse(c, 401, "malformed", "malformed session cookie: log in again");
        return;
    }
    if (!kn_redis_up(d->cmd)) {
        kn__httpd_respond_error(
            c, 503, NULL,
            "Redis is unreachable: the session cannot be checked");
        return;
    }
    kn_session_hash(id, r->tok.sess);
    OPENSSL_cleanse(id, sizeof(id));
    b = kn__httpd_batch_new(c->srv, c, on_session, NULL);
    k = kn_key_session(d->prefix, r->tok.sess);
    kn__httpd_batch_cmd(b, "HMGET", k, "tenant", "login", "gen", "created_ms",
                        "seen_ms", "csrf", NULL);
    free(k);
    kn__httpd_batch_end(b);
}

/* ------------------------------------------- routes of a session */

int kn__sess_need(struct conn *c)
{
    if (!c->req.tok.session) {
        kn__httpd_respond_error(c, 400, NULL,
                                "this needs a staff session (POST "
                                "/v1/session), not an API token");
        return -1;
    }
    return 0;
}

void kn__sess_op_log(struct conn *c, const char *op)
{
    json_t *j = json_object();
    char *actor = kn_xasprintf("token:%s", c->req.tok.id);
    json_object_set_new(j, "tenant", kn__httpd_jstr_or_null(c->req.tok.tenant));
    json_object_set_new(j, "login", kn__httpd_jstr_text(c->req.tok.login));
    json_object_set_new(j, "token", json_string(c->req.tok.id));
    json_object_set_new(j, "source", json_string(c->req.source));
    json_object_set_new(j, "via", json_string("http"));
    if (kn_audit_op(c->srv->cfg->audit_dir, actor, op, j) < 0)
        kn_log(KN_LOG_WARN, "http", "cannot append to the operation log", "dir",
               c->srv->cfg->audit_dir, NULL);
    free(actor);
}

int kn__sess_op_ready(struct conn *c)
{
    if (kn_audit_ready(c->srv->cfg->audit_dir) == 0)
        return 0;
    kn__httpd_respond_error(c, 503, NULL,
                            "the operation log cannot be written now, so "
                            "nothing was changed; try again later");
    return -1;
}

/* ------------------------------------------------------------ logout */

char *kn__sess_end(struct conn *c)
{
    struct kn_daemon *d = c->srv->d;
    struct token *t = &c->req.tok;
    char *k, *cookie, *extra;
    k = kn_key_session(d->prefix, t->sess);
    kn_redis_cmd(d->cmd, NULL, NULL, "DEL %s", k);
    free(k);
    k = kn_key_staff_sessions(d->prefix, t->tenant, t->login);
    kn_redis_cmd(d->cmd, NULL, NULL, "SREM %s %s", k, t->sess);
    free(k);
    cookie = kn_session_cookie(c->srv->cfg->http_public_url, NULL);
    extra = kn_xasprintf("Set-Cookie: %s\r\n", cookie);
    free(cookie);
    return extra;
}

void kn__httpd_run_logout(struct conn *c)
{
    char *extra;
    json_t *j;
    if (kn__sess_need(c) < 0)
        return;
    extra = kn__sess_end(c);
    j = json_object();
    json_object_set_new(j, "ended", json_true());
    kn__httpd_respond_json(c, 200, j, extra);
    free(extra);
}

/* ------------------------------------------------------ who am I */

/*
 * GET /v1/session: the session's tenant, login, name, role and what it
 * still owes (the console asks on start).  Never the CSRF token: only
 * the login's answer carries it.  An API token gets its own tenant, name
 * and role, login null.
 */
void kn__httpd_run_session_get(struct conn *c)
{
    struct token *t = &c->req.tok;
    json_t *j = json_object();
    json_object_set_new(j, "tenant", kn__httpd_jstr_or_null(t->tenant));
    json_object_set_new(
        j, "login", t->session ? kn__httpd_jstr_text(t->login) : json_null());
    json_object_set_new(j, "name",
                        t->name ? kn__httpd_jstr_text(t->name) : json_null());
    json_object_set_new(
        j, "role",
        json_string(kn_role_name(t->session ? t->staff_role : t->role)));
    json_object_set_new(j, "session", json_boolean(t->session));
    json_object_set_new(j, "must_change_password",
                        json_boolean(t->session && t->must_change));
    json_object_set_new(j, "totp_required",
                        json_boolean(t->session && t->totp_owed));
    kn__httpd_respond_json(c, 200, j, NULL);
}
