/*
 * templates.c - the console's message templates: GET /v1/templates (the
 * shipped examples, read-only, then the tenant's own), PUT
 * /v1/templates/{name} and DELETE /v1/templates/{name}.
 *
 * A tenant's templates are one hash, tpl:<tenant> (queue/keys.h): name ->
 * the template's JSON.  A template holds what a broadcast holds except its
 * audience and times: subject, body, category, priority, drill, channels,
 * policy, ack, choices, escalate_after, escalate_to, translations; it is
 * checked by the
 * broadcast parser itself (model/broadcast.c), so a template that loads is one
 * that submits.  Names are checked like group names (model/label.h); at most
 * TPL_MAX templates a tenant, each at most dispatcher.max_body + 4 KiB.
 * The shipped examples are web/console/templates-ja.json, embedded at
 * build time; their names cannot be overwritten or deleted.
 */
#include "dispatcher/http/http_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/kn.h"
#include "common/log.h"
#include "model/audit.h"
#include "model/broadcast.h"
#include "model/label.h"
#include "queue/keys.h"

#define TPL_MAX 100 /* templates of one tenant */

/* web/console/templates-ja.json, embedded with every file of web/console/
 * (Makefile, WEB_CONSOLE; the console can show it too). */
extern const char kn__webc_templates_ja_json[];
extern const size_t kn__webc_templates_ja_json_len;

/* The keys a template may hold. */
static const char *const tpl_keys[] = {
    "subject",     "body",         "category", "priority", "drill",
    "channels",    "policy",       "ack",      "choices",  "escalate_after",
    "escalate_to", "translations", NULL};

static json_t *shipped(void)
{
    return json_loadb(kn__webc_templates_ja_json,
                      kn__webc_templates_ja_json_len, 0, NULL);
}

/* 1 if name is one of the shipped examples. */
static int is_shipped(const char *name)
{
    json_t *arr = shipped(), *t;
    size_t i;
    int found = 0;
    json_array_foreach(arr, i, t)
    {
        const char *n = json_string_value(json_object_get(t, "name"));
        if (n != NULL && strcmp(n, name) == 0)
            found = 1;
    }
    json_decref(arr);
    return found;
}

/* ---- GET /v1/templates ---- */

static void on_tpl_list(struct batch *b)
{
    const redisReply *r = kn__httpd_brep(b, 0);
    json_t *arr, *j, *t;
    size_t i;
    if (!kn__httpd_batch_usable(b))
        return;
    arr = json_array();
    j = shipped();
    json_array_foreach(j, i, t)
    {
        json_object_set_new(t, "shipped", json_true());
        json_array_append(arr, t);
    }
    json_decref(j);
    for (i = 0; r != NULL && r->type == REDIS_REPLY_ARRAY &&
                i + 1 < r->elements && i < 2 * TPL_MAX;
         i += 2) {
        const char *name = kn__httpd_rstr(r->element[i]);
        const char *v = kn__httpd_rstr(r->element[i + 1]);
        json_t *o = v ? json_loads(v, 0, NULL) : NULL;
        if (name == NULL || !json_is_object(o)) {
            json_decref(o);
            continue;
        }
        json_object_set_new(o, "name", kn__httpd_jstr_text(name));
        json_object_set_new(o, "shipped", json_false());
        json_array_append_new(arr, o);
    }
    j = json_object();
    json_object_set_new(j, "templates", arr);
    kn__httpd_respond_json(b->c, 200, j, NULL);
}

void kn__httpd_run_tpl_list(struct conn *c)
{
    struct batch *b;
    char *tenant = kn__httpd_req_tenant(c), *k;
    if (tenant == NULL)
        return;
    b = kn__httpd_batch_new(c->srv, c, on_tpl_list, NULL);
    k = kn_key_templates(c->srv->d->prefix, tenant);
    kn__httpd_batch_cmd(b, "HGETALL", k, NULL);
    free(k);
    free(tenant);
    kn__httpd_batch_end(b);
}

/* ---- PUT, DELETE /v1/templates/{name} ---- */

static void tpl_audit(struct conn *c, const char *op, const char *tenant,
                      const char *name)
{
    json_t *j = json_object();
    char *actor = kn_xasprintf("token:%s", c->req.tok.id);
    json_object_set_new(j, "template", kn__httpd_jstr_text(name));
    json_object_set_new(j, "tenant", json_string(tenant));
    json_object_set_new(j, "token", json_string(c->req.tok.id));
    json_object_set_new(j, "role", json_string(kn_role_name(c->req.tok.role)));
    json_object_set_new(j, "source", json_string(c->req.source));
    json_object_set_new(j, "via", json_string("http"));
    if (kn_audit_op(c->srv->cfg->audit_dir, actor, op, j) < 0)
        kn_log(KN_LOG_WARN, "http", "cannot append to the operation log", "dir",
               c->srv->cfg->audit_dir, "error", strerror(errno), NULL);
    free(actor);
}

/* The template's name from the path, normalised: heap, or NULL with 400
 * answered. */
static char *tpl_name(struct conn *c)
{
    char why[160], ja[384], *name = NULL;
    /* A new name by the strict rules; deleting takes a name as it may
     * have been stored before them. */
    int rc;
    if (c->req.method == HTTP_DELETE) {
        rc = kn_label_norm_existing(c->req.param, &name, why, sizeof(why));
        snprintf(ja, sizeof(ja), "名前が正しくありません");
    } else {
        rc = kn_label_norm_ja(c->req.param, &name, why, sizeof(why), ja,
                              sizeof(ja));
    }
    if (rc < 0) {
        /* Japanese first, as the pages' other refusals. */
        kn__httpd_respond_error(c, 400, "name",
                                "テンプレート名: %s (the template's name: %s; "
                                "names are written like group names)",
                                ja, why);
        return NULL;
    }
    if (is_shipped(name)) {
        kn__httpd_respond_error(c, 409, "name",
                                "「%s」は見本のため変えられません。別の名前で"
                                "保存してください (\"%s\" is a shipped "
                                "example and cannot be changed; save it under "
                                "another name)",
                                name, name);
        free(name);
        return NULL;
    }
    return name;
}

struct tpl_put {
    char *tenant, *name, *json;
};

static void tpl_put_free(struct tpl_put *p)
{
    free(p->tenant);
    free(p->name);
    free(p->json);
    free(p);
}

static void on_tpl_put_2(struct batch *b)
{
    struct tpl_put *p = b->arg;
    json_t *j;
    if (!kn__httpd_batch_usable(b))
        goto out;
    tpl_audit(b->c, "template.save", p->tenant, p->name);
    j = json_object();
    json_object_set_new(j, "name", kn__httpd_jstr_text(p->name));
    json_object_set_new(
        j, "created", json_boolean(kn__httpd_rnum(kn__httpd_brep(b, 0)) == 1));
    kn__httpd_respond_json(b->c, 200, j, NULL);
out:
    tpl_put_free(p);
}

static void on_tpl_put_1(struct batch *b)
{
    struct tpl_put *p = b->arg;
    struct batch *b2;
    char *k;
    if (!kn__httpd_batch_usable(b)) {
        tpl_put_free(p);
        return;
    }
    /* The cap holds for new names; replacing one is always allowed.  Two
     * saves at the same instant may pass it by one: a bound, not a
     * count. */
    if (kn__httpd_rnum(kn__httpd_brep(b, 1)) == 0 &&
        kn__httpd_rnum(kn__httpd_brep(b, 0)) >= TPL_MAX) {
        kn__httpd_respond_error(b->c, 409, "name",
                                "this school already has %d templates; "
                                "delete one first",
                                TPL_MAX);
        tpl_put_free(p);
        return;
    }
    if (kn__httpd_audit_ready(b->c) < 0) {
        tpl_put_free(p);
        return;
    }
    b2 = kn__httpd_batch_new(b->srv, b->c, on_tpl_put_2, p);
    k = kn_key_templates(b->srv->d->prefix, p->tenant);
    kn__httpd_batch_cmd(b2, "HSET", k, p->name, p->json, NULL);
    free(k);
    kn__httpd_batch_end(b2);
}

/*
 * Check a template's body: a JSON object of tpl_keys only, which the
 * broadcast parser accepts once an audience is added.  Returns the
 * compact JSON to store (heap), or NULL with 400 answered.
 */
static char *tpl_check(struct conn *c, const char *tenant)
{
    const struct kn_config *cfg = c->srv->cfg;
    struct kn_limits lim = {cfg->max_subject, cfg->max_body,
                            cfg->max_recipients, cfg->default_ttl_ms, 0};
    struct kn_broadcast bc;
    json_t *root, *full, *v;
    const char *key;
    char err[1100], field[128], *text, *out;
    int rc;

    root = json_loadb(kn_buf_str(&c->req.body), kn_buf_len(&c->req.body),
                      JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        kn__httpd_respond_error(c, 400, "json",
                                "send the template as a JSON object");
        return NULL;
    }
    json_object_foreach(root, key, v)
    {
        int ok = 0;
        for (int i = 0; tpl_keys[i] != NULL; i++)
            ok |= strcmp(key, tpl_keys[i]) == 0;
        if (!ok) {
            kn__httpd_respond_error(
                c, 400, "json",
                "a template holds only subject, body, category, priority, "
                "drill, channels, policy, ack, choices, escalate_after, "
                "escalate_to and translations; "
                "remove the other member");
            json_decref(root);
            return NULL;
        }
    }
    /* The same checks as a submit: a template that loads, submits. */
    full = json_deep_copy(root);
    json_object_set_new(full, "tenant", json_string(tenant));
    json_object_set_new(full, "audience", json_pack("{s:[s]}", "groups", "x"));
    text = json_dumps(full, JSON_COMPACT);
    json_decref(full);
    rc = kn_broadcast_parse(text, strlen(text), &lim, &bc, err, sizeof(err),
                            field, sizeof(field));
    free(text);
    if (rc < 0) {
        json_decref(root);
        kn__httpd_respond_error(c, 400, field[0] ? field : NULL, "%s", err);
        return NULL;
    }
    kn_broadcast_free(&bc);
    out = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return out;
}

void kn__httpd_run_tpl_put(struct conn *c)
{
    struct tpl_put *p;
    struct batch *b;
    char *tenant, *name, *json, *k;
    if (!kn__httpd_ctype_is(c->req.ctype, "application/json")) {
        kn__httpd_respond_error(
            c, 415, NULL,
            "send the template as Content-Type: application/json");
        return;
    }
    if ((tenant = kn__httpd_req_tenant(c)) == NULL)
        return;
    if ((name = tpl_name(c)) == NULL) {
        free(tenant);
        return;
    }
    if ((json = tpl_check(c, tenant)) == NULL) {
        free(tenant);
        free(name);
        return;
    }
    p = kn_xcalloc(1, sizeof(*p));
    p->tenant = tenant;
    p->name = name;
    p->json = json;
    b = kn__httpd_batch_new(c->srv, c, on_tpl_put_1, p);
    k = kn_key_templates(c->srv->d->prefix, tenant);
    kn__httpd_batch_cmd(b, "HLEN", k, NULL);
    kn__httpd_batch_cmd(b, "HEXISTS", k, name, NULL);
    free(k);
    kn__httpd_batch_end(b);
}

static void on_tpl_del(struct batch *b)
{
    struct tpl_put *p = b->arg;
    json_t *j;
    if (!kn__httpd_batch_usable(b))
        goto out;
    if (kn__httpd_rnum(kn__httpd_brep(b, 0)) != 1) {
        kn__httpd_respond_error(b->c, 404, "name",
                                "テンプレート「%s」はありません (no template "
                                "\"%s\")",
                                p->name, p->name);
        goto out;
    }
    tpl_audit(b->c, "template.delete", p->tenant, p->name);
    j = json_object();
    json_object_set_new(j, "name", kn__httpd_jstr_text(p->name));
    json_object_set_new(j, "deleted", json_true());
    kn__httpd_respond_json(b->c, 200, j, NULL);
out:
    tpl_put_free(p);
}

void kn__httpd_run_tpl_delete(struct conn *c)
{
    struct tpl_put *p;
    struct batch *b;
    char *tenant, *name, *k;
    if ((tenant = kn__httpd_req_tenant(c)) == NULL)
        return;
    if ((name = tpl_name(c)) == NULL) {
        free(tenant);
        return;
    }
    if (kn__httpd_audit_ready(c) < 0) {
        free(tenant);
        free(name);
        return;
    }
    p = kn_xcalloc(1, sizeof(*p));
    p->tenant = tenant;
    p->name = name;
    b = kn__httpd_batch_new(c->srv, c, on_tpl_del, p);
    k = kn_key_templates(c->srv->d->prefix, tenant);
    kn__httpd_batch_cmd(b, "HDEL", k, name, NULL);
    free(k);
    kn__httpd_batch_end(b);
}
