/*
 * bc_submit.c - the writes of /v1/broadcasts: submit (validated and
 * sealed by dispatcher/broadcast.c before anything reaches Redis; a large
 * audience as one MULTI ... EXEC, queue/submit.c) and cancel.  The reads
 * (one broadcast, by key, the active list, the history) are in
 * broadcasts.c.
 */
#include "dispatcher/http/http_int.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/argv.h"
#include "common/kn.h"
#include "common/log.h"
#include "config/config.h"
#include "model/audit.h"
#include "model/broadcast.h"
#include "queue/keys.h"
#include "queue/scripts.h"
#include "queue/submit.h"

/* What a write reads of bc:<id> first: whether it exists, and whose it
 * is (the duplicate's answer, the cancel's check). */
enum { H_STATUS, H_TENANT, H_SENDER_TOKEN };

static void head_hmget(struct batch *b, const struct kn_daemon *d,
                       const char *id)
{
    struct kn_argv a;
    kn_argv_init(&a);
    kn_argv_add(&a, "HMGET");
    kn_argv_take(&a, kn_key_bc(d->prefix, id, ""));
    kn_argv_add(&a, "status");
    kn_argv_add(&a, "tenant");
    kn_argv_add(&a, "sender_token");
    kn__httpd_batch_add(b, &a);
    kn_argv_free(&a);
}

/* May this token see this broadcast? */
static int head_visible(const struct conn *c, const redisReply *h)
{
    return kn__httpd_bc_may_see(c, kn__httpd_relem(h, H_TENANT),
                                kn__httpd_relem(h, H_SENDER_TOKEN));
}

/* ---- POST /v1/broadcasts ---- */

/* The operation log (model/audit.h): actor "token:<id>", and the token's
 * role, name and the request's source as fields. */
static void audit_op(struct conn *c, const char *op, const char *id,
                     const char *tenant)
{
    json_t *j = json_object();
    char *actor = kn_xasprintf("token:%s", c->req.tok.id);
    json_object_set_new(j, "broadcast", json_string(id));
    json_object_set_new(j, "tenant", kn__httpd_jstr_or_null(tenant));
    json_object_set_new(j, "token", json_string(c->req.tok.id));
    json_object_set_new(j, "role", json_string(kn_role_name(c->req.tok.role)));
    json_object_set_new(j, "name", kn__httpd_jstr_or_null(c->req.tok.name));
    json_object_set_new(j, "source", json_string(c->req.source));
    json_object_set_new(j, "via", json_string("http"));
    if (kn_audit_op(c->srv->cfg->audit_dir, actor, op, j) < 0)
        kn_log(KN_LOG_WARN, "http", "cannot append to the operation log", "dir",
               c->srv->cfg->audit_dir, "error", strerror(errno), NULL);
    free(actor);
}

/* A change that cannot be logged is not made: 0, or 503 answered. */
static int audit_ready(struct conn *c)
{
    if (kn_audit_ready(c->srv->cfg->audit_dir) == 0)
        return 0;
    kn_log(KN_LOG_ERROR, "http", "the operation log cannot be written", "dir",
           c->srv->cfg->audit_dir, "error", strerror(errno), NULL);
    kn__httpd_respond_error(c, 503, NULL,
                            "the operation log cannot be written now, so "
                            "nothing was changed; try again later");
    return -1;
}

static void on_dup_check(struct batch *b)
{
    struct conn *c = b->c;
    const redisReply *h = kn__httpd_brep(b, 0);
    json_t *j;
    if (c == NULL)
        return;
    if (b->failed || kn__httpd_relem(h, H_STATUS) == NULL) {
        kn__httpd_respond_error(
            c, 503, "id",
            "Redis is unreachable; submit again with the same id");
        return;
    }
    /* The key is the tenant's own (idem:<tenant>), so the broadcast found
     * is of the same tenant.  It is this submit's duplicate if the same
     * token or account sent it (a producer retrying), or the operator's
     * own tools did (kairanctl, the raw stream: no token); a key another
     * token or account took is a conflict, answered without its broadcast
     * (a sender who took the key of the school's emergency notice first
     * must not make that notice a silent "duplicate", nor learn of it). */
    {
        const char *owner = kn__httpd_relem(h, H_SENDER_TOKEN);
        if (!head_visible(c, h) ||
            (owner != NULL && strcmp(owner, c->req.tok.id) != 0)) {
            kn__httpd_respond_error(
                c, 409, "id",
                "this id is already the key of another sender's broadcast "
                "of this school: give this broadcast an id of its own");
            return;
        }
    }
    j = json_object();
    json_object_set_new(j, "id", json_string(c->req.bc_id));
    json_object_set_new(j, "key", kn__httpd_jstr_or_null(c->req.bc_key));
    json_object_set_new(j, "duplicate", json_true());
    json_object_set_new(j, "status", json_string(kn__httpd_relem(h, H_STATUS)));
    kn__httpd_respond_json(c, 200, j, NULL);
}

/*
 * WAIT's answer after a submit (redis.wait_replicas): 202 when enough
 * replicas have it, else 503 with the id: the broadcast is stored on the
 * primary and may well be sent, but a failover now could lose it, so the
 * client submits again with the same "id" (key), which is safe.
 */
static void on_waited(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct conn *c = arg;
    long long want = c->srv->cfg->redis_wait_replicas;
    json_t *j;
    char loc[300], msg[300];
    if (!kn__httpd_conn_release(c))
        return;
    j = json_object();
    json_object_set_new(j, "id", json_string(c->req.bc_id));
    json_object_set_new(j, "key", kn__httpd_jstr_or_null(c->req.bc_key));
    if (c->req.remind != NULL)
        kn__httpd_remind_stored(c, j);
    if (rep != NULL && rep->type == REDIS_REPLY_INTEGER &&
        rep->integer >= want) {
        snprintf(loc, sizeof(loc), "Location: /v1/broadcasts/%s\r\n",
                 c->req.bc_id);
        kn__httpd_respond_json(c, 202, j, loc);
        return;
    }
    if (rep != NULL && rep->type == REDIS_REPLY_INTEGER)
        snprintf(msg, sizeof(msg),
                 "stored, but only %lld of %lld replicas confirmed it in time "
                 "(redis.wait_replicas); submit again with the same id (it "
                 "is idempotent)",
                 (long long)rep->integer, want);
    else
        snprintf(msg, sizeof(msg),
                 "stored, but the replicas did not confirm it (no answer to "
                 "WAIT); submit again with the same id (it is idempotent)");
    kn_log(KN_LOG_WARN, "http", "submit not confirmed by the replicas", "bc",
           c->req.bc_id, NULL);
    json_object_set_new(j, "error", json_string(msg));
    json_object_set_new(j, "field", json_null());
    kn__httpd_respond_json(c, 503, j, "Retry-After: 1\r\n");
}

static void on_submitted(struct kn_redis *r, redisReply *rep, void *arg);

/* 503 with Retry-After: a submit to make again with the same id. */
static void submit_again(struct conn *c, const char *why, const char *retry)
{
    json_t *j = json_object();
    json_object_set_new(j, "error", json_string(why));
    json_object_set_new(j, "field", json_null());
    json_object_set_new(j, "id", json_string(c->req.bc_id));
    kn__httpd_respond_json(c, 503, j, retry);
}

static void on_submitted_tx(struct kn_redis *r, redisReply *rep, void *arg)
{
    on_submitted(r, (redisReply *)kn_submit_tx_answer(rep), arg);
}

/* A large submit's transaction (queue/submit.h), EXEC's answer to
 * on_submitted_tx.  A command refused while the transaction is open would
 * leave the connection inside MULTI for whoever sends next: drop it. */
static int submit_tx(struct kn_redis *rc, const struct kn_submit_tx *tx,
                     struct conn *c)
{
    for (size_t i = 0; i < tx->n; i++) {
        int last = i + 1 == tx->n;
        if (kn_redis_argv(rc, last ? on_submitted_tx : NULL, last ? c : NULL, 0,
                          tx->cmd[i].n, (const char **)tx->cmd[i].v,
                          tx->cmd[i].len) < 0) {
            if (i > 0)
                kn_redis_reset(rc, "submit transaction cut");
            return -1;
        }
    }
    return 0;
}

static void on_submitted(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct conn *c = arg;
    struct batch *b;
    json_t *j;
    char loc[300];
    if (!kn__httpd_conn_release(c))
        return;
    if (rep == NULL) {
        /* The script may or may not have run: the id makes a retry safe. */
        submit_again(c,
                     "Redis did not answer; submit again with the same "
                     "id (it is idempotent)",
                     "Retry-After: 1\r\n");
        return;
    }
    if (rep->type == REDIS_REPLY_ERROR &&
        (kn_reply_is_error(rep, "OOM") || kn_reply_is_error(rep, "EXECABORT") ||
         strstr(rep->str, "reached Redis incomplete") != NULL)) {
        /* Redis refused a write (out of memory) and stored nothing: a
         * moment later it may take it; the id makes the retry safe. */
        kn_log(KN_LOG_ERROR, "http", "Redis refused the broadcast", "error",
               rep->str, NULL);
        submit_again(c,
                     "Redis refused to store the broadcast now (out of "
                     "memory?); nothing was stored: submit again with "
                     "the same id",
                     "Retry-After: 5\r\n");
        return;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER ||
        rep->element[1]->type != REDIS_REPLY_STRING) {
        kn_log(KN_LOG_ERROR, "http", "submit script failed", "error",
               rep->type == REDIS_REPLY_ERROR ? rep->str : "bad reply", NULL);
        kn__httpd_respond_error(c, 500, NULL,
                                "the broadcast could not be stored");
        return;
    }
    if (rep->element[0]->integer == 2) {
        kn__httpd_respond_error(
            c, 400, "category",
            "not one of this tenant's categories: use notice, event, emergency, "
            "drill or a category its administrators added (kairanctl "
            "category add)");
        return;
    }
    if (rep->element[0]->integer == 0) {
        /* The tenant's broadcast that already has this key. */
        free(c->req.bc_id);
        c->req.bc_id = kn_xstrdup(rep->element[1]->str);
        b = kn__httpd_batch_new(c->srv, c, on_dup_check, NULL);
        head_hmget(b, c->srv->d, c->req.bc_id);
        kn__httpd_batch_end(b);
        return;
    }
    kn_log(KN_LOG_INFO, "http", "broadcast submitted", "bc", c->req.bc_id,
           "token", c->req.tok.id, NULL);
    audit_op(c, c->req.resend_of ? "broadcast.resend" : "broadcast.submit",
             c->req.bc_id, c->req.bc_tenant);
    if (c->srv->wait != NULL) {
        /* redis.wait_replicas: success only once WAIT confirms it, on
         * the connection that wrote it. */
        char n[24], ms[24];
        const char *av[] = {"WAIT", n, ms};
        size_t al[3];
        snprintf(n, sizeof(n), "%lld",
                 (long long)c->srv->cfg->redis_wait_replicas);
        snprintf(ms, sizeof(ms), "%lld",
                 (long long)c->srv->cfg->redis_wait_timeout_ms);
        al[0] = 4;
        al[1] = strlen(n);
        al[2] = strlen(ms);
        kn__httpd_conn_hold(c);
        if (kn_redis_argv(r, on_waited, c, c->srv->cfg->redis_wait_timeout_ms,
                          3, av, al) == 0)
            return;
        c->refs--;
        on_waited(r, NULL, c);
        return;
    }
    j = json_object();
    json_object_set_new(j, "id", json_string(c->req.bc_id));
    json_object_set_new(j, "key", kn__httpd_jstr_or_null(c->req.bc_key));
    if (c->req.resend_of != NULL) {
        json_object_set_new(j, "resend_of", json_string(c->req.resend_of));
        json_object_set_new(j, "recipients", json_integer(c->req.resend_n));
    }
    if (c->req.remind != NULL)
        kn__httpd_remind_stored(c, j);
    snprintf(loc, sizeof(loc), "Location: /v1/broadcasts/%s\r\n", c->req.bc_id);
    kn__httpd_respond_json(c, 202, j, loc);
}

/* 1 if group is in the comma list. */
static int group_allowed(const char *list, const char *group)
{
    size_t n = strlen(group);
    const char *p = list;
    while (p != NULL && *p) {
        size_t len = strcspn(p, ",");
        if (len == n && strncmp(p, group, n) == 0)
            return 1;
        p += len;
        if (*p == ',')
            p++;
    }
    return 0;
}

/*
 * Role rules for a submitted broadcast.  Returns 0 or answers 403 and
 * returns -1.
 *  1. a token bound to a tenant (limited_admin, sender, an admin made with
 *     --tenant): the tenant is its own (when the body names none, it was
 *     set to its own before parsing).
 *  2. sender: no inline recipients and no directory ids, only groups its
 *     token lists.
 */
static int submit_allowed(struct conn *c, const struct kn_broadcast *b)
{
    const struct token *t = &c->req.tok;
    if (t->role == KN_ROLE_ADMIN && !kn__httpd_tok_scoped(t))
        return 0;
    if (t->tenant == NULL || strcmp(b->tenant, t->tenant) != 0) {
        kn__httpd_respond_error(c, 403, "tenant",
                                "this token may submit only for tenant \"%s\"",
                                t->tenant ? t->tenant : "");
        return -1;
    }
    if (t->role != KN_ROLE_SENDER)
        return 0;
    if (b->nrcpts > 0) {
        kn__httpd_respond_error(
            c, 403, "recipients",
            "a sender may not give inline recipients: a sender's "
            "token may reach only the directory groups it lists, "
            "and inline addresses would go around that; use "
            "audience.groups");
        return -1;
    }
    /* A re-send (resend.c) names the children of the sender's own
     * broadcast: ids the server picked, not the sender. */
    if (b->nrcpt_ids > 0 && c->req.resend_of == NULL) {
        kn__httpd_respond_error(
            c, 403, "audience.recipients",
            "a sender may address only the groups its token "
            "lists; use audience.groups");
        return -1;
    }
    for (size_t i = 0; i < b->ngroups; i++) {
        if (!group_allowed(t->groups, b->groups[i])) {
            char f[48];
            snprintf(f, sizeof(f), "audience.groups[%zu]", i);
            kn__httpd_respond_error(
                c, 403, f,
                "this token may not address group \"%s\"; it may "
                "address: %s",
                b->groups[i], t->groups ? t->groups : "(none)");
            return -1;
        }
    }
    return 0;
}

/*
 * Parse a request's broadcast exactly as a submit does (the JSON type, the
 * tenant forced to the token's own, kn_broadcast_parse, the role rules).
 * Returns 0 with b filled (kn_broadcast_free), or -1 with the answer given.
 * Shared by the submit, its preview and "send to me" (preview.c).
 */
int kn__httpd_bc_parse(struct conn *c, struct kn_broadcast *b)
{
    const struct kn_config *cfg = c->srv->cfg;
    struct kn_limits lim = {cfg->max_subject, cfg->max_body,
                            cfg->max_recipients, cfg->default_ttl_ms, 0};
    char err[1100], field[128];
    const char *json = kn_buf_str(&c->req.body);
    size_t len = kn_buf_len(&c->req.body);
    char *patched = NULL;
    json_t *root;
    int rc;

    if (!kn__httpd_ctype_is(c->req.ctype, "application/json")) {
        kn__httpd_respond_error(
            c, 415, NULL,
            "send the broadcast as Content-Type: application/json");
        return -1;
    }
    /* "tenant forced to its own": a body without one gets the token's. */
    if (kn__httpd_tok_scoped(&c->req.tok) &&
        (root = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL)) != NULL) {
        if (json_is_object(root) && json_object_get(root, "tenant") == NULL) {
            json_object_set_new(root, "tenant", json_string(c->req.tok.tenant));
            patched = json_dumps(root, JSON_COMPACT);
            json = patched;
            len = strlen(patched);
        }
        json_decref(root);
    }
    rc = kn_broadcast_parse(json, len, &lim, b, err, sizeof(err), field,
                            sizeof(field));
    free(patched);
    if (rc < 0) {
        kn__httpd_respond_error(c, 400, field[0] ? field : NULL, "%s", err);
        return -1;
    }
    if (submit_allowed(c, b) < 0) {
        kn_broadcast_free(b);
        return -1;
    }
    return 0;
}

void kn__httpd_run_bc_submit(struct conn *c)
{
    struct kn_broadcast b;
    if (kn__httpd_bc_parse(c, &b) < 0)
        return;
    kn__httpd_bc_store(c, &b);
}

/*
 * Store a parsed and allowed broadcast (its submit script) and answer 202
 * with its name; b is freed here.  Shared by the submit and by "send to
 * me" (preview.c), which builds its own broadcast.
 */
void kn__httpd_bc_store(struct conn *c, struct kn_broadcast *bp)
{
    struct http_srv *s = c->srv;
    struct kn_daemon *d = s->d;
    struct kn_broadcast b = *bp;
    struct kn_argv a;
    struct kn_submit_tx tx;
    struct kn_redis *rc = s->wait != NULL ? s->wait : d->cmd;

    if (!kn_redis_up(d->cmd) || (s->wait != NULL && !kn_redis_up(s->wait))) {
        kn_broadcast_free(&b);
        kn__httpd_respond_error(c, 503, NULL,
                                "Redis is unreachable; try again");
        return;
    }
    if (audit_ready(c) < 0) {
        kn_broadcast_free(&b);
        return;
    }
    b.id = kn_broadcast_new_id();
    /* The name is stored in the broadcast, so that it stays after the
     * token is revoked; "sender" from the body is not trusted. */
    free(b.sender);
    b.sender = kn_xstrdup(c->req.tok.name ? c->req.tok.name : c->req.tok.id);
    c->req.bc_id = kn_xstrdup(b.id);
    c->req.bc_tenant = kn_xstrdup(b.tenant);
    c->req.bc_key = b.key != NULL ? kn_xstrdup(b.key) : NULL;

    kn_argv_init(&a);
    {
        const char *extra[] = {"sender_token", c->req.tok.id, NULL};
        kn_broadcast_submit_call(&b, d->kr, d->prefix, extra, &a, &tx);
    }
    kn_broadcast_free(&b);
    kn__httpd_conn_hold(c);
    if ((tx.n > 0 ? submit_tx(rc, &tx, c)
                  : kn_redis_eval(rc, &kn_script_submit, on_submitted, c,
                                  KN_SUBMIT_NKEYS, a.n, (const char **)a.v,
                                  a.len)) < 0) {
        c->refs--;
        kn__httpd_respond_error(c, 503, NULL,
                                "Redis is unreachable; try again");
    }
    kn_submit_tx_free(&tx);
    for (int i = 0; i < a.n; i++)
        OPENSSL_cleanse(a.v[i], a.len[i]);
    kn_argv_free(&a);
}

/* ---- POST /v1/broadcasts/{id}/cancel ---- */

static void on_cancelled(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct conn *c = arg;
    json_t *j;
    if (!kn__httpd_conn_release(c))
        return;
    if (rep == NULL || rep->type != REDIS_REPLY_STRING) {
        kn__httpd_respond_error(c, 503, NULL,
                                "Redis did not answer; cancel again");
        return;
    }
    if (rep->str[0] == '\0') {
        kn__httpd_respond_error(c, 404, "id", "no broadcast %s", c->req.param);
        return;
    }
    if (strcmp(rep->str, "cancelled") != 0) {
        kn__httpd_respond_error(
            c, 409, "id", "broadcast %s is already %s", c->req.param,
            strncmp(rep->str, "already:", 8) == 0 ? rep->str + 8 : rep->str);
        return;
    }
    kn_log(KN_LOG_INFO, "http", "broadcast cancelled", "bc", c->req.param,
           "token", c->req.tok.id, NULL);
    audit_op(c, "broadcast.cancel", c->req.param, c->req.bc_tenant);
    j = json_object();
    json_object_set_new(j, "id", json_string(c->req.param));
    json_object_set_new(j, "status", json_string("cancelled"));
    kn__httpd_respond_json(c, 200, j, NULL);
}

static void on_cancel_check(struct batch *b)
{
    struct conn *c = b->c;
    const redisReply *h = kn__httpd_brep(b, 0);
    struct kn_daemon *d = b->srv->d;
    struct kn_argv a;
    if (c == NULL)
        return;
    if (b->failed || h == NULL) {
        kn__httpd_respond_error(c, 503, NULL,
                                "Redis is unreachable; try again");
        return;
    }
    if (kn__httpd_relem(h, H_STATUS) == NULL || !head_visible(c, h)) {
        if (kn__httpd_relem(h, H_STATUS) !=
            NULL) /* the login log says so; not the answer */
            c->req.auth_result = "forbidden";
        kn__httpd_respond_error(c, 404, "id", "no broadcast %s", c->req.param);
        return;
    }
    if (audit_ready(c) < 0)
        return;
    free(c->req.bc_tenant);
    c->req.bc_tenant = kn__httpd_dupstr(kn__httpd_relem(h, H_TENANT));
    kn_argv_init(&a);
    kn_argv_take(&a, kn_key_bc(d->prefix, c->req.param, ""));
    kn_argv_take(&a, kn__key(d, "active"));
    kn_argv_add(&a, c->req.param);
    kn_argv_addi(&a, kn_now_ms());
    kn__httpd_conn_hold(c);
    if (kn_redis_eval(d->cmd, &kn_script_cancel, on_cancelled, c, 2, a.n,
                      (const char **)a.v, a.len) < 0) {
        c->refs--;
        kn__httpd_respond_error(c, 503, NULL,
                                "Redis is unreachable; try again");
    }
    kn_argv_free(&a);
}

void kn__httpd_run_bc_cancel(struct conn *c)
{
    struct batch *b;
    if (kn_buf_len(&c->req.body) > 0 &&
        !kn__httpd_ctype_is(c->req.ctype, "application/json")) {
        kn__httpd_respond_error(
            c, 415, NULL, "send no body, or Content-Type: application/json");
        return;
    }
    if (!kn_id_valid(c->req.param)) {
        kn__httpd_respond_error(c, 404, "id", "no broadcast with such an id");
        return;
    }
    b = kn__httpd_batch_new(c->srv, c, on_cancel_check, NULL);
    head_hmget(b, c->srv->d, c->req.param);
    kn__httpd_batch_end(b);
}

int kn__httpd_audit_ready(struct conn *c)
{
    return audit_ready(c);
}
