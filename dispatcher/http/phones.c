/*
 * phones.c - GET /v1/broadcasts/{id}/recipients/{rcpt}/phones: the whole
 * phone numbers of one child's guardians, for the console's 配信状況 (the
 * not reached and not confirmed are phoned).  The recipients pages show
 * a number only by its last four digits; this answer unseals them for
 * one child at a time, and each answer writes one operation-log line
 * recipients.phone (who, broadcast, child; never a number).
 *
 *   1. bc:<id> (tenant, owner, status) and LPOS of "d:<rcpt>" in
 *      bc:<id>:aud: the broadcast must be visible to the token
 *      (kn__httpd_bc_may_see) and the child in its audience;
 *   2. HMGET of rcpt:<tenant>:<rcpt>: the first guardian's name and phone
 *      and the further guardians ("g") of the contacts.
 *
 * A broadcast not visible, a child not in its audience (or an inline
 * recipient, which has no directory record), or a record deleted since:
 * all the same 404.
 */
#include "dispatcher/http/http_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/kn.h"
#include "common/log.h"
#include "common/seal.h"
#include "model/audit.h"
#include "model/broadcast.h"
#include "model/directory.h"
#include "queue/keys.h"

struct phones {
    char *bid, *rcpt, *tenant;
};

static void phones_free(struct phones *p)
{
    free(p->bid);
    free(p->rcpt);
    free(p->tenant);
    free(p);
}

static void not_found(struct conn *c)
{
    kn__httpd_respond_error(c, 404, "id",
                            "no such child in a broadcast you may read");
}

/* A sealed value opened, or NULL. */
static char *open_sealed(const struct kn_keyring *kr, const char *purpose,
                         const char *sealed)
{
    char *plain = NULL;
    if (sealed == NULL || sealed[0] == '\0' ||
        kn_unseal(kr, purpose, sealed, &plain, NULL) < 0)
        return NULL;
    return plain;
}

/* One guardian to the answer when it has a phone. */
static void add_phone(const struct kn_keyring *kr, json_t *arr,
                      const char *sname, const char *sphone)
{
    char *phone = open_sealed(kr, "phone", sphone), *name;
    json_t *o;
    if (phone == NULL)
        return;
    name = open_sealed(kr, "name", sname);
    o = json_object();
    json_object_set_new(o, "guardian",
                        name != NULL ? kn__httpd_jstr_text(name) : json_null());
    json_object_set_new(o, "phone", kn__httpd_jstr_text(phone));
    json_array_append_new(arr, o);
    kn_free_secret(name);
    kn_free_secret(phone);
}

static void audit_phone(struct conn *c, const struct phones *p, size_t n)
{
    json_t *f = json_object();
    char *actor = kn_xasprintf("token:%s", c->req.tok.id);
    json_object_set_new(f, "tenant", json_string(p->tenant));
    json_object_set_new(f, "broadcast", json_string(p->bid));
    json_object_set_new(f, "id", json_string(p->rcpt));
    json_object_set_new(f, "phones", json_integer((json_int_t)n));
    json_object_set_new(f, "token", json_string(c->req.tok.id));
    if (c->req.tok.login != NULL)
        json_object_set_new(f, "login", kn__httpd_jstr_text(c->req.tok.login));
    json_object_set_new(f, "source", json_string(c->req.source));
    json_object_set_new(f, "via", json_string("http"));
    if (kn_audit_op(c->srv->cfg->audit_dir, actor, "recipients.phone", f) < 0)
        kn_log(KN_LOG_WARN, "http", "cannot append to the operation log", "dir",
               c->srv->cfg->audit_dir, "error", strerror(errno), NULL);
    free(actor);
}

/* Step 2 done: the record; the answer. */
static void on_record(struct batch *b)
{
    struct phones *p = b->arg;
    const redisReply *h = kn__httpd_brep(b, 0);
    const struct kn_keyring *kr;
    json_t *c, *arr, *g, *j;
    size_t i;
    if (!kn__httpd_batch_usable(b)) {
        phones_free(p);
        return;
    }
    if (h == NULL || h->type != REDIS_REPLY_ARRAY || h->elements != 3 ||
        kn__httpd_rstr(h->element[0]) == NULL) {
        not_found(b->c); /* deleted since */
        phones_free(p);
        return;
    }
    if (b->c->req.tok.role == KN_ROLE_SENDER) {
        int in = 0;
        for (int n = 1; n < b->n && !in; n++)
            in = kn__httpd_rnum(kn__httpd_brep(b, n)) == 1;
        if (!in) {
            b->c->req.auth_result = "forbidden";
            not_found(b->c);
            phones_free(p);
            return;
        }
    }
    c = json_loads(kn__httpd_rstr(h->element[0]), 0, NULL);
    if (!json_is_object(c)) {
        json_decref(c);
        not_found(b->c);
        phones_free(p);
        return;
    }
    kr = b->srv->d->kr;
    arr = json_array();
    add_phone(kr, arr, kn__httpd_rstr(h->element[1]),
              kn__httpd_rstr(h->element[2]));
    json_array_foreach(json_object_get(c, KN_DIR_GUARDIANS), i, g)
    {
        add_phone(kr, arr, json_string_value(json_object_get(g, KN_DIR_NAME)),
                  json_string_value(json_object_get(g, KN_DIR_PHONE)));
    }
    json_decref(c);
    audit_phone(b->c, p, json_array_size(arr));
    j = json_object();
    json_object_set_new(j, "phones", arr);
    kn__httpd_respond_json(b->c, 200, j, NULL);
    phones_free(p);
}

/* Step 1 done: the broadcast visible, the child in its audience. */
static void on_head(struct batch *b)
{
    struct phones *p = b->arg;
    const redisReply *h = kn__httpd_brep(b, 0), *pos = kn__httpd_brep(b, 1);
    struct batch *b2;
    char *k;
    if (!kn__httpd_batch_usable(b)) {
        phones_free(p);
        return;
    }
    if (h == NULL || h->type != REDIS_REPLY_ARRAY || h->elements != 3 ||
        kn__httpd_rstr(h->element[0]) == NULL ||
        kn__httpd_rstr(h->element[2]) == NULL ||
        !kn__httpd_bc_may_see(b->c, kn__httpd_rstr(h->element[0]),
                              kn__httpd_rstr(h->element[1]))) {
        if (h != NULL && h->type == REDIS_REPLY_ARRAY && h->elements == 3 &&
            kn__httpd_rstr(h->element[2]) != NULL)
            b->c->req.auth_result = "forbidden";
        not_found(b->c);
        phones_free(p);
        return;
    }
    if (pos == NULL || pos->type != REDIS_REPLY_INTEGER) {
        not_found(b->c); /* not in the audience (nil) */
        phones_free(p);
        return;
    }
    p->tenant = kn_xstrdup(kn__httpd_rstr(h->element[0]));
    b2 = kn__httpd_batch_new(b->srv, b->c, on_record, p);
    k = kn_key_rcpt(b->srv->d->prefix, p->tenant, p->rcpt);
    kn__httpd_batch_cmd(b2, "HMGET", k, KN_DIR_HASH_FIELD, "guardian", "phone",
                        NULL);
    free(k);
    if (b->c->req.tok.role == KN_ROLE_SENDER) {
        /* A sender's own old broadcast may name children of a class it
         * no longer has: their phones only while in one of its groups. */
        const struct token *t = &b->c->req.tok;
        char *save = NULL, *list = kn_xstrdup(t->groups ? t->groups : "");
        for (char *g = strtok_r(list, ",", &save); g != NULL;
             g = strtok_r(NULL, ",", &save)) {
            k = kn_key_grp(b->srv->d->prefix, p->tenant, g);
            kn__httpd_batch_cmd(b2, "SISMEMBER", k, p->rcpt, NULL);
            free(k);
        }
        free(list);
    }
    kn__httpd_batch_end(b2);
}

void kn__httpd_run_bc_phones(struct conn *c)
{
    static const char pre[] = "/v1/broadcasts/";
    const char *path = c->req.path, *bid;
    struct phones *p;
    struct batch *b;
    char *k, *ent;
    size_t n;

    /* The route gives the child (the last {}); the broadcast is the
     * segment after the prefix (routes.c matched the whole pattern). */
    if (path == NULL || strncmp(path, pre, sizeof(pre) - 1) != 0) {
        not_found(c);
        return;
    }
    bid = path + sizeof(pre) - 1;
    n = strcspn(bid, "/");
    p = kn_xcalloc(1, sizeof(*p));
    p->bid = kn_xstrndup(bid, n);
    p->rcpt = kn_xstrdup(c->req.param ? c->req.param : "");
    if (!kn_id_valid(p->bid) || !kn_id_valid(p->rcpt)) {
        not_found(c);
        phones_free(p);
        return;
    }
    if (kn__httpd_audit_ready(c) < 0) {
        phones_free(p);
        return;
    }
    b = kn__httpd_batch_new(c->srv, c, on_head, p);
    k = kn_key_bc(c->srv->d->prefix, p->bid, "");
    kn__httpd_batch_cmd(b, "HMGET", k, "tenant", "sender_token", "status",
                        NULL);
    free(k);
    k = kn_key_bc(c->srv->d->prefix, p->bid, ":aud");
    ent = kn_xasprintf("d:%s", p->rcpt);
    kn__httpd_batch_cmd(b, "LPOS", k, ent, NULL);
    free(ent);
    free(k);
    kn__httpd_batch_end(b);
}
