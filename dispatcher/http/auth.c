/*
 * auth.c - the bearer token of a request: its form (model/token.h), its
 * record in Redis, its tenant (a closed tenant's tokens stop at once) and
 * the route's roles.  Every outcome is one login-log line, written with
 * the answer (respond.c).
 */
#include "dispatcher/http/http_int.h"

#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/kn.h"
#include "model/token.h"
#include "queue/keys.h"

void kn__httpd_token_reset(struct token *t)
{
    free(t->tenant);
    free(t->name);
    free(t->groups);
    free(t->login);
    memset(t, 0, sizeof(*t));
    t->role = -1;
}

static void refuse(struct conn *c, int status, const char *result,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void refuse(struct conn *c, int status, const char *result,
                   const char *fmt, ...)
{
    va_list ap;
    char msg[300];
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    c->req.auth_result = result;
    kn__httpd_respond_error(c, status, NULL, "%s", msg);
}

static void authorized(struct conn *c)
{
    const struct route *rt = c->req.route;
    if (!(rt->roles & ROLE(c->req.tok.role))) {
        refuse(c, 403, "forbidden", "a %s token may not %s %s",
               kn_role_name(c->req.tok.role),
               rt->method == HTTP_POST ? "POST to" : "read", c->req.path);
        return;
    }
    c->req.auth_result = "ok";
    kn__httpd_go(c);
}

void kn__httpd_auth_done(struct conn *c)
{
    authorized(c);
}

static void on_tenant(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct conn *c = arg;
    if (!kn__httpd_conn_release(c))
        return;
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
        kn__httpd_respond_error(
            c, 503, NULL, "Redis is unreachable: the token cannot be checked");
        return;
    }
    if (kn__httpd_rnum(rep) > 0) {
        refuse(c, 403, "tenant_closed",
               "tenant %s is closed (kairanctl tenant close): its tokens no "
               "longer work",
               c->req.tok.tenant);
        return;
    }
    authorized(c);
}

/* A token of a closed tenant (kairanctl tenant close) stops working at
 * once: its tenant's record is read on every request. */
static void tenant_check(struct conn *c)
{
    struct kn_daemon *d = c->srv->d;
    char *key;
    if (c->req.tok.tenant == NULL || c->req.tok.tenant[0] == '\0') {
        authorized(c);
        return;
    }
    key = kn__key(d, "tenant:%s", c->req.tok.tenant);
    kn__httpd_conn_hold(c);
    if (kn_redis_cmd(d->cmd, on_tenant, c, "HGET %s closed_ms", key) < 0) {
        c->refs--;
        kn__httpd_respond_error(
            c, 503, NULL, "Redis is unreachable: the token cannot be checked");
    }
    free(key);
}

static void on_token(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct conn *c = arg;
    struct token *t = &c->req.tok;
    const char *secret = NULL, *salt, *hash, *role;
    char id[KN_TOKEN_ID_MAX + 1], want[65];
    long long expires, revoked;

    if (!kn__httpd_conn_release(c))
        return;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 8) {
        kn__httpd_respond_error(
            c, 503, NULL, "Redis is unreachable: the token cannot be checked");
        return;
    }
    role = kn__httpd_rstr(rep->element[0]);
    salt = kn__httpd_rstr(rep->element[6]);
    hash = kn__httpd_rstr(rep->element[7]);
    if (role == NULL || salt == NULL || hash == NULL) {
        refuse(c, 401, "unknown", "invalid token");
        return;
    }
    /* The header was checked in auth_start; split it again for the
     * secret (it is never copied anywhere else). */
    if (kn_token_split(c->req.authz + 7, id, &secret) != 0) {
        refuse(c, 401, "malformed", "invalid token");
        return;
    }
    kn_token_hash(c->srv->d->kr, salt, secret, want);
    kn__httpd_free_secret(&c->req.authz);
    if (strlen(hash) != 64 || CRYPTO_memcmp(want, hash, 64) != 0) {
        OPENSSL_cleanse(want, sizeof(want));
        refuse(c, 401, "wrong_secret", "invalid token");
        return;
    }
    OPENSSL_cleanse(want, sizeof(want));
    t->role = kn_role_parse(role);
    t->tenant = kn__httpd_dupstr(kn__httpd_rstr(rep->element[1]));
    t->name = kn__httpd_dupstr(kn__httpd_rstr(rep->element[2]));
    t->groups = kn__httpd_dupstr(kn__httpd_rstr(rep->element[3]));
    expires = kn__httpd_rnum(rep->element[4]);
    revoked = kn__httpd_rnum(rep->element[5]);
    if (revoked > 0) {
        refuse(c, 401, "revoked", "this token was revoked");
        return;
    }
    if (expires > 0 && kn_now_ms() >= expires) {
        refuse(c, 401, "expired", "this token has expired");
        return;
    }
    if (t->role < 0) {
        refuse(c, 401, "unknown_role", "this token has no valid role");
        return;
    }
    tenant_check(c);
}

/*
 * Check the bearer token of a request that needs one: its form here, its
 * record in Redis (on_token), then the route's roles.  Every outcome is
 * one login-log line (written with the answer).
 */
void kn__httpd_auth_start(struct conn *c)
{
    struct req *r = &c->req;
    struct kn_daemon *d = c->srv->d;
    const char *secret;
    char *key;
    int rc;

    if (r->authz == NULL && r->cookie != NULL) {
        kn__httpd_session_start(c);
        return;
    }
    if (r->authz == NULL) {
        refuse(c, 401, "missing",
               "this needs a token: send Authorization: Bearer kn_...");
        return;
    }
    if (r->dup_authz || strncasecmp(r->authz, "Bearer ", 7) != 0) {
        refuse(c, 401, "malformed",
               "malformed Authorization: send one \"Bearer kn_...\" "
               "header");
        return;
    }
    rc = kn_token_split(r->authz + 7, r->tok.id, &secret);
    if (rc == KN_EINVAL) {
        r->tok.id[0] = '\0';
        refuse(c, 401, "malformed",
               "malformed token: kairan tokens look like kn_<id>_<secret>");
        return;
    }
    if (rc == KN_EPERM) {
        refuse(c, 401, "too_weak",
               "token too weak: its secret must be %d characters (32 "
               "random bytes); create one with kairanctl token create",
               KN_TOKEN_SECRET_CHARS);
        return;
    }
    if (!kn_redis_up(d->cmd)) {
        kn__httpd_respond_error(
            c, 503, NULL, "Redis is unreachable: the token cannot be checked");
        return;
    }
    key = kn__key(d, "token:%s", r->tok.id);
    kn__httpd_conn_hold(c);
    if (kn_redis_cmd(d->cmd, on_token, c,
                     "HMGET %s role tenant name groups expires_ms "
                     "revoked_ms salt hash",
                     key) < 0) {
        c->refs--;
        kn__httpd_respond_error(
            c, 503, NULL, "Redis is unreachable: the token cannot be checked");
    }
    free(key);
}
