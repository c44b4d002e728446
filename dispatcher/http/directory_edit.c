/*
 * directory_edit.c - one student of the directory, for the console's 名簿
 * page: GET /v1/directory/{id} (the record, names unsealed for the
 * answer, contacts only as the channels they give, never an address) and
 * PATCH /v1/directory/{id} (name, class, groups, active; one guardian
 * deactivated or reactivated).  A name, class or group holding a
 * private-use character (外字, model/gaiji.h) is refused as the import
 * refuses it: 400 {"code": "gaiji", "at", "excerpt"}, Japanese first.  A
 * tenant's admin and limited_admin only; the tenant is the token's or
 * session's, so another tenant's id is simply not found.  Both run on the
 * thread pool with a synchronous Redis connection (unsealing, sealing); the
 * change is one script (queue/lua/rcpt_edit.lua) and one operation-log line
 * recipients.edit.
 */
#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "common/buf.h"
#include "common/kn.h"
#include "common/log.h"
#include "common/seal.h"
#include "common/text.h"
#include "common/utf8.h"
#include "dispatcher/http/http_int.h"
#include "model/audit.h"
#include "model/broadcast.h"
#include "model/directory.h"
#include "model/address.h"
#include "model/dsn.h"
#include "model/gaiji.h"
#include "model/label.h"
#include "queue/keys.h"
#include "queue/lua.h"

struct edit_job {
    uv_work_t work;
    struct http_srv *srv;
    struct conn *c;
    int patch; /* 0 GET, 1 PATCH, 2 DELETE /v1/suppressions/{ref} */
    char *tenant, *id;
    /* PATCH */
    char what[12];
    char *name, *cls, *groups;
    int active, gindex, goff;
    char *gname, *gemail, *gphone; /* a guardian's, plaintext */
    int rc; /* 1 done, 0 unknown id, -1 unknown guardian, KN_EIO */
    json_t *answer;
};

static void job_free(struct edit_job *j)
{
    free(j->tenant);
    free(j->id);
    free(j->name);
    free(j->cls);
    free(j->groups);
    free(j->gname);
    if (j->gemail != NULL)
        OPENSSL_cleanse(j->gemail, strlen(j->gemail));
    free(j->gemail);
    if (j->gphone != NULL)
        OPENSSL_cleanse(j->gphone, strlen(j->gphone));
    free(j->gphone);
    if (j->answer != NULL)
        json_decref(j->answer);
    free(j);
}

/* ---------------------------------------------------------- the work */

static const char *hval(const redisReply *r, size_t i)
{
    return r != NULL && r->type == REDIS_REPLY_ARRAY && i < r->elements &&
                   r->element[i]->type == REDIS_REPLY_STRING
               ? r->element[i]->str
               : NULL;
}

/* A sealed name as text (NULL if absent or unreadable). */
static json_t *unsealed(const struct kn_keyring *kr, const char *sealed)
{
    char *plain = NULL;
    json_t *v;
    if (sealed == NULL || sealed[0] == '\0' ||
        kn_unseal(kr, "name", sealed, &plain, NULL) < 0)
        return json_null();
    v = kn__httpd_jstr_text(plain);
    free(plain);
    return v;
}

/* The e-mail address masked (model: kn_mask_address), or null. */
static json_t *masked_email(const struct kn_keyring *kr, const char *sealed)
{
    char *plain = NULL, m[128];
    if (sealed == NULL || kn_unseal(kr, "email", sealed, &plain, NULL) < 0)
        return json_null();
    kn_mask_address(plain, m, sizeof(m));
    OPENSSL_cleanse(plain, strlen(plain));
    free(plain);
    return json_string(m);
}

/* The suppression of the address with blind index bi (supp:<tenant>,
 * issue 18), or null: its ref (the blind index, for DELETE
 * /v1/suppressions/{ref}), kind, since, status and reasons. */
static json_t *suppression(redisContext *rc, const char *supp, const char *bi)
{
    redisReply *r;
    json_t *o = json_null();
    if (bi == NULL)
        return o;
    r = redisCommand(rc, "HGET %s %s", supp, bi);
    if (r != NULL && r->type == REDIS_REPLY_STRING) {
        /* "<h|s>|<ms>|<detail>|<rcpt>|<bcast>|<sealed>" */
        char *v = kn_xstrdup(r->str), *parts[4] = {0}, *p = v, st[16] = "";
        int np = 0, carrier = 0;
        while (np < 4 && p != NULL) {
            parts[np++] = p;
            p = strchr(p, '|');
            if (p != NULL)
                *p++ = '\0';
        }
        if (np >= 3)
            kn_bounce_detail_parse(parts[2], st, sizeof(st), &carrier);
        o = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "ref", bi, "kind",
                      v[0] == 'h' ? "hard" : "soft", "since_ms",
                      (json_int_t)(np > 1 ? strtoll(parts[1], NULL, 10) : 0),
                      "status", st, "reason", kn_dsn_reason(st, carrier, 0),
                      "reason_ja", kn_dsn_reason(st, carrier, 1));
        free(v);
    }
    if (r != NULL)
        freeReplyObject(r);
    return o;
}

/* One guardian as the answer shows it: its channels, its e-mail address
 * masked and whether it is suppressed, whether it has a phone number
 * (never the number). */
static json_t *guardian(const struct kn_keyring *kr, redisContext *rc,
                        const char *supp, json_t *g, int index,
                        const char *sealed_name, int has_phone)
{
    json_t *ch = json_array();
    const char *e = json_string_value(json_object_get(g, KN_DIR_EMAIL));
    if (e != NULL)
        json_array_append_new(ch, json_string("email"));
    if (json_object_get(g, KN_DIR_LINE) != NULL)
        json_array_append_new(ch, json_string("line"));
    if (json_array_size(json_object_get(g, KN_DIR_PUSH)) > 0)
        json_array_append_new(ch, json_string("push"));
    return json_pack("{s:i, s:o, s:o, s:b, s:o, s:b, s:o}", "index", index,
                     "name", unsealed(kr, sealed_name), "channels", ch,
                     "active", !json_is_true(json_object_get(g, KN_DIR_OFF)),
                     "email", masked_email(kr, e), "phone", has_phone,
                     "suppression",
                     e == NULL ? json_null()
                               : suppression(rc, supp,
                                             json_string_value(json_object_get(
                                                 g, KN_DIR_EMAIL_INDEX))));
}

static json_t *groups_array(const char *s)
{
    json_t *a = json_array();
    while (s != NULL && *s) {
        size_t n = strcspn(s, ";");
        if (n > 0)
            json_array_append_new(a, json_stringn(s, n));
        s += n;
        if (*s == ';')
            s++;
    }
    return a;
}

static void work_get(redisContext *rc, struct edit_job *j)
{
    const struct kn_keyring *kr = j->srv->d->kr;
    char *k = kn_key_rcpt(j->srv->d->prefix, j->tenant, j->id);
    char *supp = kn_key_supp(j->srv->d->prefix, j->tenant);
    redisReply *r = redisCommand(rc,
                                 "HMGET %s name grade class groups active c "
                                 "number guardian phone",
                                 k);
    json_t *c, *gs, *g;
    size_t i;
    free(k);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        j->rc = KN_EIO;
        goto out;
    }
    if (hval(r, 5) == NULL) {
        j->rc = 0;
        goto out;
    }
    c = json_loads(hval(r, 5), 0, NULL);
    gs = json_array();
    if (c != NULL) {
        json_array_append_new(
            gs, guardian(kr, rc, supp, c, 0, hval(r, 7), hval(r, 8) != NULL));
        json_array_foreach(json_object_get(c, KN_DIR_GUARDIANS), i, g)
        {
            if (json_is_object(g))
                json_array_append_new(
                    gs,
                    guardian(kr, rc, supp, g, (int)i + 1,
                             json_string_value(json_object_get(g, KN_DIR_NAME)),
                             json_object_get(g, KN_DIR_PHONE) != NULL));
        }
        json_decref(c);
    }
    j->answer = json_pack(
        "{s:s, s:o, s:o, s:o, s:o, s:b, s:o, s:o}", "id", j->id, "name",
        unsealed(kr, hval(r, 0)), "grade", kn__httpd_jstr_or_null(hval(r, 1)),
        "class", kn__httpd_jstr_or_null(hval(r, 2)), "groups",
        groups_array(hval(r, 3)), "active",
        hval(r, 4) == NULL || strcmp(hval(r, 4), "0") != 0, "number",
        kn__httpd_jstr_or_null(hval(r, 6)), "guardians", gs);
    j->rc = 1;
out:
    free(supp);
    if (r != NULL)
        freeReplyObject(r);
}

/* DELETE /v1/suppressions/{ref}: as `kairanctl suppression clear`. */
static void work_supp_clear(redisContext *rc, struct edit_job *j)
{
    char *supp = kn_key_supp(j->srv->d->prefix, j->tenant);
    char *soft = kn_key_soft(j->srv->d->prefix, j->tenant);
    redisReply *r = redisCommand(rc, "HDEL %s %s", supp, j->id);
    j->rc =
        r != NULL && r->type == REDIS_REPLY_INTEGER ? (int)r->integer : KN_EIO;
    if (r != NULL)
        freeReplyObject(r);
    r = redisCommand(rc, "HDEL %s %s", soft, j->id);
    if (r != NULL)
        freeReplyObject(r);
    free(supp);
    free(soft);
}

/* A sealed value, or "" for none. */
static char *seal_opt(const struct kn_keyring *kr, const char *purpose,
                      const char *v)
{
    return v != NULL && v[0] != '\0' ? kn_seal(kr, purpose, v, strlen(v))
                                     : kn_xstrdup("");
}

static void work_patch(redisContext *rc, struct edit_job *j)
{
    const struct kn_keyring *kr = j->srv->d->kr;
    const char *argv[20];
    size_t lens[20];
    char now[24], act[2], gi[16], off[2], ebi[33] = "";
    char *sealed = NULL, *gname = seal_opt(kr, "name", j->gname);
    char *gemail = seal_opt(kr, "email", j->gemail);
    char *gphone = seal_opt(kr, "phone", j->gphone);
    redisReply *r;
    int n = 0;

    if (j->name != NULL && j->name[0] != '\0')
        sealed = kn_seal(j->srv->d->kr, "name", j->name, strlen(j->name));
    snprintf(now, sizeof(now), "%lld", (long long)kn_now_ms());
    snprintf(act, sizeof(act), "%d", j->active > 0);
    snprintf(gi, sizeof(gi), "%d", j->gindex);
    snprintf(off, sizeof(off), "%d", j->goff);
    if (j->gemail != NULL)
        kn_blind_index(kr, "email", j->gemail, ebi);
    argv[n++] = "EVAL";
    argv[n++] = kn_lua_rcpt_edit;
    argv[n++] = "0";
    argv[n++] = j->srv->d->prefix;
    argv[n++] = j->tenant;
    argv[n++] = j->id;
    argv[n++] = now;
    argv[n++] = j->what;
    argv[n++] = sealed ? sealed : "";
    argv[n++] = j->cls ? j->cls : "";
    argv[n++] = j->groups ? j->groups : "";
    argv[n++] = act;
    argv[n++] = gi;
    argv[n++] = off;
    argv[n++] = gname;
    argv[n++] = gemail;
    argv[n++] = ebi;
    argv[n++] = gphone;
    for (int i = 0; i < n; i++)
        lens[i] = strlen(argv[i]);
    r = redisCommandArgv(rc, n, argv, lens);
    free(sealed);
    free(gname);
    free(gemail);
    free(gphone);
    j->rc =
        r != NULL && r->type == REDIS_REPLY_INTEGER ? (int)r->integer : KN_EIO;
    if (r != NULL)
        freeReplyObject(r);
}

static void edit_work(uv_work_t *w)
{
    struct edit_job *j = kn_container_of(w, struct edit_job, work);
    redisContext *rc = kn__redis_sync(j->srv->cfg);
    if (rc == NULL) {
        j->rc = KN_EIO;
        return;
    }
    if (j->patch == 2)
        work_supp_clear(rc, j);
    else if (j->patch)
        work_patch(rc, j);
    else
        work_get(rc, j);
    redisFree(rc);
}

/* ---------------------------------------------------------- answers */

static void audit_edit(struct conn *c, const struct edit_job *j)
{
    json_t *f = json_object(), *what = json_array();
    char *actor = kn_xasprintf("token:%s", c->req.tok.id);
    static const struct {
        char letter;
        const char *name;
    } names[] = {{'n', "name"},   {'c', "class"},    {'g', "groups"},
                 {'a', "active"}, {'G', "guardian"}, {'N', "guardian_name"},
                 {'E', "email"},  {'P', "phone"}};
    for (size_t i = 0; i < KN_ARRAY_SIZE(names); i++) {
        if (strchr(j->what, names[i].letter) != NULL)
            json_array_append_new(what, json_string(names[i].name));
    }
    json_object_set_new(f, "tenant", json_string(j->tenant));
    json_object_set_new(f, "id", json_string(j->id));
    json_object_set_new(f, "fields", what);
    if (strchr(j->what, 'a') != NULL)
        json_object_set_new(f, "active", json_boolean(j->active));
    if (strpbrk(j->what, "GNEP") != NULL)
        json_object_set_new(f, "guardian", json_integer(j->gindex));
    if (strchr(j->what, 'G') != NULL)
        json_object_set_new(f, "guardian_active", json_boolean(!j->goff));
    json_object_set_new(f, "token", json_string(c->req.tok.id));
    if (c->req.tok.login != NULL)
        json_object_set_new(f, "login", kn__httpd_jstr_text(c->req.tok.login));
    json_object_set_new(f, "source", json_string(c->req.source));
    json_object_set_new(f, "via", json_string("http"));
    if (kn_audit_op(c->srv->cfg->audit_dir, actor, "recipients.edit", f) < 0)
        kn_log(KN_LOG_WARN, "http", "cannot append to the operation log", "dir",
               c->srv->cfg->audit_dir, "error", strerror(errno), NULL);
    free(actor);
}

/* suppression.clear: the tenant and who, never the address or its ref. */
static void audit_supp(struct conn *c, const struct edit_job *j)
{
    char *actor = kn_xasprintf("token:%s", c->req.tok.id);
    json_t *f = json_pack("{s:s, s:i, s:b, s:s, s:s, s:s}", "tenant", j->tenant,
                          "cleared", 1, "all", 0, "token", c->req.tok.id,
                          "source", c->req.source, "via", "http");
    if (c->req.tok.login != NULL)
        json_object_set_new(f, "login", kn__httpd_jstr_text(c->req.tok.login));
    if (kn_audit_op(c->srv->cfg->audit_dir, actor, "suppression.clear", f) < 0)
        kn_log(KN_LOG_WARN, "http", "cannot append to the operation log", "dir",
               c->srv->cfg->audit_dir, "error", strerror(errno), NULL);
    free(actor);
}

static void edit_done(uv_work_t *w, int status)
{
    struct edit_job *j = kn_container_of(w, struct edit_job, work);
    struct http_srv *s = j->srv;
    struct conn *c = j->c;
    if (kn__httpd_conn_release(c)) {
        if (status != 0 || j->rc < -1)
            kn__httpd_respond_error(c, 503, NULL, "Redis failed; try again");
        else if (j->patch == 2 && j->rc == 0)
            kn__httpd_respond_error(c, 404, "ref",
                                    "this address is not suppressed (any "
                                    "more) for this school");
        else if (j->patch == 2) {
            audit_supp(c, j);
            kn__httpd_respond_json(c, 200, json_pack("{s:i}", "cleared", j->rc),
                                   NULL);
        } else if (j->rc == 0)
            kn__httpd_respond_error(c, 404, "id", "no student with this id");
        else if (j->rc == -1)
            kn__httpd_respond_error(c, 404, "guardians",
                                    "this student has no guardian with that "
                                    "index");
        else if (!j->patch) {
            kn__httpd_respond_json(c, 200, j->answer, NULL);
            j->answer = NULL;
        } else {
            audit_edit(c, j);
            kn__httpd_respond_json(
                c, 200, json_pack("{s:s, s:b}", "id", j->id, "changed", 1),
                NULL);
        }
    }
    job_free(j);
    kn__httpd_srv_unref(s);
}

static void start(struct conn *c, struct edit_job *j)
{
    struct http_srv *s = c->srv;
    j->srv = s;
    j->c = c;
    s->live++;
    kn__httpd_conn_hold(c);
    if (uv_queue_work(s->d->loop, &j->work, edit_work, edit_done) != 0)
        edit_done(&j->work, -1);
}

/* The common checks; a new job, or NULL after answering. */
static struct edit_job *begin(struct conn *c)
{
    const char *t = c->req.tok.tenant;
    struct edit_job *j;
    if (t == NULL || t[0] == '\0') {
        kn__httpd_respond_error(c, 403, NULL,
                                "this token has no tenant: the directory is "
                                "a school's");
        return NULL;
    }
    if (!kn_id_valid(c->req.param)) {
        kn__httpd_respond_error(c, 404, "id", "no student with this id");
        return NULL;
    }
    j = kn_xcalloc(1, sizeof(*j));
    j->tenant = kn_xstrdup(t);
    j->id = kn_xstrdup(c->req.param);
    return j;
}

void kn__httpd_run_dir_get(struct conn *c)
{
    struct edit_job *j = begin(c);
    if (j != NULL)
        start(c, j);
}

/* Text of at most max bytes, UTF-8, no control character (C0, C1, bidi:
 * what the import refuses, common/text.h kn_text_plain). */
static int text_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f)
            return 0;
    }
    return kn_utf8_valid(s, n) && kn_text_plain(s);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* groups (a JSON array of names) as the import stores them: each NFKC
 * (model/label.h), sorted, without repeats, joined by ';'.  -1 after
 * answering 400. */
static int patch_groups(struct conn *c, json_t *g, struct edit_job *j)
{
    size_t n = json_array_size(g), m = 0;
    char **v;
    struct kn_buf b = KN_BUF_INIT;
    if (!json_is_array(g) || n > 100) {
        kn__httpd_respond_error(c, 400, "groups",
                                "groups: a list of at most 100 group names");
        return -1;
    }
    v = kn_xcalloc(n + 1, sizeof(*v));
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(g, i));
        char why[160], *norm = NULL;
        if (kn__httpd_refuse_gaiji(c, s, KN_GAIJI_NAME, "groups", "gaiji",
                                   "グループ名")) {
            for (size_t k = 0; k < m; k++)
                free(v[k]);
            free(v);
            return -1;
        }
        if (s == NULL || strchr(s, ';') != NULL ||
            kn_label_norm(s, &norm, why, sizeof(why)) < 0) {
            for (size_t k = 0; k < m; k++)
                free(v[k]);
            free(v);
            kn__httpd_respond_error(c, 400, "groups",
                                    "groups: each a group name of 1-%d "
                                    "characters without ';'",
                                    KN_LABEL_MAX_CHARS);
            return -1;
        }
        v[m++] = norm;
    }
    qsort(v, m, sizeof(*v), cmp_str);
    for (size_t i = 0; i < m; i++) {
        if (i == 0 || strcmp(v[i - 1], v[i]) != 0) {
            if (kn_buf_len(&b) > 0)
                kn_buf_addc(&b, ';');
            kn_buf_add(&b, v[i]);
        }
    }
    for (size_t i = 0; i < m; i++)
        free(v[i]);
    free(v);
    j->groups = kn_xstrdup(kn_buf_str(&b) ? kn_buf_str(&b) : "");
    kn_buf_free(&b);
    return 0;
}

/* A phone number as the import takes it (queue/roster.c check_phone):
 * NFKC, then digits, '+', '-', '(', ')' and spaces, at most 32, at least 2
 * digits.  The normalised number (heap), or NULL. */
static char *phone_norm(const char *s)
{
    char err[8], *norm = NULL;
    size_t digits = 0, n;
    if (kn_label_norm(s, &norm, err, sizeof(err)) < 0)
        return NULL;
    n = strlen(norm);
    for (size_t i = 0; i < n; i++) {
        char ch = norm[i];
        if (ch >= '0' && ch <= '9')
            digits++;
        else if (ch != '+' && ch != '-' && ch != '(' && ch != ')' &&
                 ch != ' ') {
            free(norm);
            return NULL;
        }
    }
    if (digits < 2 || n > 32) {
        free(norm);
        return NULL;
    }
    return norm;
}

/* "guardians": [{"index": n, and any of "active", "name", "email",
 * "phone"}], one guardian at a time, each value checked as the import
 * checks its column (queue/roster.c).  -1 after answering 400. */
static int patch_guardian(struct conn *c, json_t *v, struct edit_job *j,
                          size_t *w)
{
    json_t *g = json_array_get(v, 0), *ix = json_object_get(g, "index"), *x;
    const char *key, *why = NULL;
    if (json_array_size(v) != 1 || !json_is_object(g) || !json_is_integer(ix) ||
        json_integer_value(ix) < 0 || json_integer_value(ix) > 100 ||
        json_object_size(g) < 2) {
        kn__httpd_respond_error(c, 400, "guardians",
                                "guardians: [{\"index\": n, and \"active\" "
                                "(true|false), \"name\", \"email\" or "
                                "\"phone\"}], one guardian at a time");
        return -1;
    }
    j->gindex = (int)json_integer_value(ix);
    json_object_foreach(g, key, x)
    {
        const char *s = json_string_value(x);
        if (strcmp(key, "index") == 0)
            continue;
        if (strcmp(key, "active") == 0) {
            if (!json_is_boolean(x)) {
                kn__httpd_respond_error(c, 400, "guardians.active",
                                        "active: true or false");
                return -1;
            }
            j->goff = !json_is_true(x);
            j->what[(*w)++] = 'G';
        } else if (strcmp(key, "name") == 0) {
            if (s == NULL || s[0] == '\0' || !text_ok(s, 200)) {
                kn__httpd_respond_error(c, 400, "guardians.name",
                                        "name: the guardian's name, text "
                                        "of 1-200 bytes without control "
                                        "characters");
                return -1;
            }
            if (kn__httpd_refuse_gaiji(c, s, KN_GAIJI_NAME, "guardians.name",
                                       "gaiji", "保護者の氏名"))
                return -1;
            j->gname = kn_xstrdup(s);
            j->what[(*w)++] = 'N';
        } else if (strcmp(key, "email") == 0) {
            if (s == NULL || s[0] == '\0' || strlen(s) > 320 ||
                !text_ok(s, 320) || kn_addr_check(s, &why) < 0) {
                kn__httpd_respond_error(
                    c, 400, "guardians.email",
                    "email: not an e-mail address (%s): write it as "
                    "name@example.jp; to stop deliveries, deactivate the "
                    "guardian",
                    why != NULL ? why : "control character or too long");
                return -1;
            }
            j->gemail = kn_xstrdup(s);
            j->what[(*w)++] = 'E';
        } else if (strcmp(key, "phone") == 0) {
            if (s == NULL || !text_ok(s, 128) ||
                (j->gphone = phone_norm(s)) == NULL) {
                kn__httpd_respond_error(c, 400, "guardians.phone",
                                        "phone: not a phone number: use "
                                        "digits, '-', '+', '(', ')' and "
                                        "spaces (at most 32), such as "
                                        "090-1234-5678");
                return -1;
            }
            j->what[(*w)++] = 'P';
        } else {
            kn__httpd_respond_error(c, 400, "guardians",
                                    "guardians: unknown field: give index "
                                    "and active, name, email or phone (LINE "
                                    "ids and push tokens come only from the "
                                    "import)");
            return -1;
        }
    }
    return 0;
}

/* The body's fields into j; -1 after answering 400. */
static int patch_fields(struct conn *c, json_t *body, struct edit_job *j)
{
    const char *key;
    json_t *v;
    size_t w = 0;
    json_object_foreach(body, key, v)
    {
        if (strcmp(key, "name") == 0 || strcmp(key, "class") == 0) {
            int name = key[0] == 'n';
            const char *s = json_string_value(v);
            if (s == NULL || !text_ok(s, name ? 200 : 64)) {
                kn__httpd_respond_error(c, 400, key,
                                        "%s: text of at most %d bytes, "
                                        "without control characters",
                                        key, name ? 200 : 64);
                return -1;
            }
            if (kn__httpd_refuse_gaiji(c, s, KN_GAIJI_NAME, key, "gaiji",
                                       name ? "氏名" : "組"))
                return -1;
            if (name)
                j->name = kn_xstrdup(s);
            else
                j->cls = kn_xstrdup(s);
            j->what[w++] = name ? 'n' : 'c';
        } else if (strcmp(key, "groups") == 0) {
            if (patch_groups(c, v, j) < 0)
                return -1;
            j->what[w++] = 'g';
        } else if (strcmp(key, "active") == 0) {
            if (!json_is_boolean(v)) {
                kn__httpd_respond_error(c, 400, "active",
                                        "active: true or false");
                return -1;
            }
            j->active = json_is_true(v);
            j->what[w++] = 'a';
        } else if (strcmp(key, "guardians") == 0) {
            if (patch_guardian(c, v, j, &w) < 0)
                return -1;
        } else {
            kn__httpd_respond_error(c, 400, key,
                                    "unknown field: give name, class, "
                                    "groups, active or guardians");
            return -1;
        }
        if (w >= sizeof(j->what) - 1)
            break;
    }
    if (w == 0) {
        kn__httpd_respond_error(c, 400, NULL, "nothing to change");
        return -1;
    }
    return 0;
}

void kn__httpd_run_dir_patch(struct conn *c)
{
    const char *ct = c->req.ctype;
    struct edit_job *j;
    json_t *body;
    if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0) {
        kn__httpd_respond_error(c, 415, NULL,
                                "send JSON (Content-Type: application/json)");
        return;
    }
    j = begin(c);
    if (j == NULL)
        return;
    j->patch = 1;
    body = json_loadb(kn_buf_str(&c->req.body), kn_buf_len(&c->req.body),
                      JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(body)) {
        kn__httpd_respond_error(c, 400, NULL, "the body must be a JSON object");
        json_decref(body);
        job_free(j);
        return;
    }
    if (patch_fields(c, body, j) < 0) {
        json_decref(body);
        job_free(j);
        return;
    }
    json_decref(body);
    if (kn_audit_ready(c->srv->cfg->audit_dir) < 0) {
        kn__httpd_respond_error(c, 503, NULL,
                                "the operation log cannot be written now, so "
                                "nothing was changed");
        job_free(j);
        return;
    }
    start(c, j);
}

/* DELETE /v1/suppressions/{ref}: the ref is the blind index that GET
 * /v1/directory/{id} shows with a suppressed address; the tenant is the
 * token's, so another school's suppression is simply not found. */
void kn__httpd_run_supp_clear(struct conn *c)
{
    const char *t = c->req.tok.tenant, *ref = c->req.param;
    struct edit_job *j;
    size_t n = ref != NULL ? strlen(ref) : 0;
    if (t == NULL || t[0] == '\0') {
        kn__httpd_respond_error(c, 403, NULL,
                                "this token has no tenant: suppressions are "
                                "a school's");
        return;
    }
    if (n != 32 || strspn(ref, "0123456789abcdef") != 32) {
        kn__httpd_respond_error(c, 404, "ref",
                                "no suppression with this ref (32 hex "
                                "digits, as GET /v1/directory/{id} gives)");
        return;
    }
    if (kn_audit_ready(c->srv->cfg->audit_dir) < 0) {
        kn__httpd_respond_error(c, 503, NULL,
                                "the operation log cannot be written now, so "
                                "nothing was changed");
        return;
    }
    j = kn_xcalloc(1, sizeof(*j));
    j->tenant = kn_xstrdup(t);
    j->id = kn_xstrdup(ref);
    j->patch = 2;
    start(c, j);
}
