/*
 * guardian_mail.c - kairan's own messages to a guardian: the registration
 * page's verification mail and notice (register.c), the my page's code
 * and link (mypage.c).  Each is an urgent broadcast of the school,
 * category "notice", with inline recipients sealed by kn_broadcast_parse
 * like any other, so that it takes the usual route, retries and failover,
 * and appears in the school's broadcast list under its sender.  Only this
 * call sees the plaintext addresses; it wipes its copies.  And what the
 * two guardian pages share: their CSP, their files, their JSON bodies.
 */
#include "dispatcher/http/http_int.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/kn.h"
#include "common/log.h"
#include "common/seal.h"
#include "model/broadcast.h"
#include "queue/submit.h"

static void on_submitted(struct kn_redis *r, redisReply *rep, void *arg)
{
    char *tenant = arg;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER ||
        rep->element[0]->integer != 1)
        kn_log(KN_LOG_ERROR, "http", "guardian message not stored", "tenant",
               tenant, "error",
               rep && rep->type == REDIS_REPLY_ERROR ? rep->str : "bad reply",
               NULL);
    free(tenant);
}

int kn__httpd_guardian_send(struct http_srv *s, const char *tenant,
                            const char *sender, const char *channel,
                            const char *const *ids, const char *const *to,
                            size_t n, const char *subject, const char *body)
{
    struct kn_daemon *d = s->d;
    const struct kn_config *cfg = s->cfg;
    /* kairan's own text, with names stored before gaiji were refused */
    struct kn_limits lim = {cfg->max_subject, cfg->max_body,
                            cfg->max_recipients, cfg->default_ttl_ms, 1};
    json_t *rc = json_array(), *bc;
    struct kn_broadcast b;
    struct kn_argv a;
    char err[600], field[128], *json;
    int rv;

    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            rc, json_pack("{s:s,s:s}", "id", ids[i], channel, to[i]));
    bc = json_pack("{s:s,s:s,s:s,s:s,s:s,s:[s],s:s,s:o}", "tenant", tenant,
                   "category", "notice", "priority", "urgent", "subject",
                   subject, "body", body, "channels", channel, "policy", "all",
                   "recipients", rc);
    json = json_dumps(bc, JSON_COMPACT);
    json_decref(bc);
    rv = kn_broadcast_parse(json, strlen(json), &lim, &b, err, sizeof(err),
                            field, sizeof(field));
    OPENSSL_cleanse(json, strlen(json));
    free(json);
    if (rv < 0) {
        kn_log(KN_LOG_ERROR, "http", "guardian message refused", "tenant",
               tenant, "sender", sender, "error", err, NULL);
        return -1;
    }
    b.id = kn_broadcast_new_id();
    free(b.sender);
    b.sender = kn_xstrdup(sender);
    /* Its text holds a one-time link or code: never readable in Redis or
     * through the API (a school's staff must not act as the guardian). */
    b.seal_body = 1;
    kn_argv_init(&a);
    kn_broadcast_submit_call(&b, d->kr, d->prefix, NULL, &a, NULL);
    kn_broadcast_free(&b);
    rv = kn_redis_eval(d->cmd, &kn_script_submit, on_submitted,
                       kn_xstrdup(tenant), KN_SUBMIT_NKEYS, a.n,
                       (const char **)a.v, a.len);
    for (int i = 0; i < a.n; i++)
        OPENSSL_cleanse(a.v[i], a.len[i]);
    kn_argv_free(&a);
    return rv < 0 ? -1 : 0;
}

json_t *kn__httpd_json_object(struct conn *c)
{
    json_t *j;
    if (c->req.ctype == NULL ||
        strncasecmp(c->req.ctype, "application/json", 16) != 0) {
        kn__httpd_respond_error(c, 415, NULL,
                                "send JSON: Content-Type: application/json");
        return NULL;
    }
    j = json_loadb(kn_buf_str(&c->req.body), kn_buf_len(&c->req.body),
                   JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        kn__httpd_respond_error(c, 400, "json",
                                "the body must be one JSON object");
        return NULL;
    }
    return j;
}

char *kn__httpd_unseal_opt(const struct kn_keyring *kr, const char *purpose,
                           const char *s)
{
    char *plain = NULL;
    if (s == NULL || s[0] == '\0' ||
        kn_unseal(kr, purpose, s, &plain, NULL) != 0)
        return NULL;
    return plain;
}

const char kn__httpd_csp_guardian[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'; "
    "require-trusted-types-for 'script'; trusted-types 'none'";

void kn__httpd_serve_file(struct conn *c, const struct kn__web_file *files,
                          size_t n, const char *csp)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(c->req.param, files[i].name) == 0) {
            kn__httpd_respond(c, 200, files[i].ctype, files[i].data,
                              *files[i].len, csp, NULL);
            return;
        }
    }
    kn__httpd_respond_error(c, 404, NULL, "no such file");
}
