/*
 * directory_edit.c - one student of the directory, for the console's 名簿
 * page: GET /v1/directory/{id} (the record, names unsealed for the
 * answer, contacts only as the channels they give, never an address) and
 * PATCH /v1/directory/{id} (name, class, groups, active; one guardian
 * deactivated or reactivated).  A tenant's admin and limited_admin only;
 * the tenant is the token's or session's, so another tenant's id is
 * simply not found.  Both run on the thread pool with a synchronous Redis
 * connection (unsealing, sealing); the change is one script
 * (queue/lua/rcpt_edit.lua) and one operation-log line recipients.edit.
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "common/buf.h"
#include "common/kn.h"
#include "common/log.h"
#include "common/seal.h"
#include "common/utf8.h"
#include "dispatcher/http/http_int.h"
#include "model/audit.h"
#include "model/broadcast.h"
#include "model/directory.h"
#include "model/label.h"
#include "queue/keys.h"
#include "queue/lua.h"

struct edit_job {
    uv_work_t work;
    struct http_srv *srv;
    struct conn *c;
    int patch;
    char *tenant, *id;
    /* PATCH */
    char what[8];
    char *name, *cls, *groups;
    int active, gindex, goff;
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

/* One guardian as the answer shows it: its channels, never an address. */
static json_t *guardian(const struct kn_keyring *kr, json_t *g, int index,
                        const char *sealed_name)
{
    json_t *ch = json_array();
    if (json_object_get(g, KN_DIR_EMAIL) != NULL)
        json_array_append_new(ch, json_string("email"));
    if (json_object_get(g, KN_DIR_LINE) != NULL)
        json_array_append_new(ch, json_string("line"));
    if (json_array_size(json_object_get(g, KN_DIR_PUSH)) > 0)
        json_array_append_new(ch, json_string("push"));
    return json_pack("{s:i, s:o, s:o, s:b}", "index", index, "name",
                     unsealed(kr, sealed_name), "channels", ch, "active",
                     !json_is_true(json_object_get(g, KN_DIR_OFF)));
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
    redisReply *r = redisCommand(rc,
                                 "HMGET %s name grade class groups active c "
                                 "number guardian",
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
        json_array_append_new(gs, guardian(kr, c, 0, hval(r, 7)));
        json_array_foreach(json_object_get(c, KN_DIR_GUARDIANS), i, g)
        {
            if (json_is_object(g))
                json_array_append_new(
                    gs, guardian(kr, g, (int)i + 1,
                                 json_string_value(
                                     json_object_get(g, KN_DIR_NAME))));
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
    if (r != NULL)
        freeReplyObject(r);
}

static void work_patch(redisContext *rc, struct edit_job *j)
{
    const char *argv[16];
    size_t lens[16];
    char now[24], act[2], gi[16], off[2];
    char *sealed = NULL;
    redisReply *r;
    int n = 0;

    if (j->name != NULL && j->name[0] != '\0')
        sealed = kn_seal(j->srv->d->kr, "name", j->name, strlen(j->name));
    snprintf(now, sizeof(now), "%lld", (long long)kn_now_ms());
    snprintf(act, sizeof(act), "%d", j->active > 0);
    snprintf(gi, sizeof(gi), "%d", j->gindex);
    snprintf(off, sizeof(off), "%d", j->goff);
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
    for (int i = 0; i < n; i++)
        lens[i] = strlen(argv[i]);
    r = redisCommandArgv(rc, n, argv, lens);
    free(sealed);
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
    if (j->patch)
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
    } names[] = {{'n', "name"},
                 {'c', "class"},
                 {'g', "groups"},
                 {'a', "active"},
                 {'G', "guardian"}};
    for (size_t i = 0; i < KN_ARRAY_SIZE(names); i++) {
        if (strchr(j->what, names[i].letter) != NULL)
            json_array_append_new(what, json_string(names[i].name));
    }
    json_object_set_new(f, "tenant", json_string(j->tenant));
    json_object_set_new(f, "id", json_string(j->id));
    json_object_set_new(f, "fields", what);
    if (strchr(j->what, 'a') != NULL)
        json_object_set_new(f, "active", json_boolean(j->active));
    if (strchr(j->what, 'G') != NULL) {
        json_object_set_new(f, "guardian", json_integer(j->gindex));
        json_object_set_new(f, "guardian_active", json_boolean(!j->goff));
    }
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

static void edit_done(uv_work_t *w, int status)
{
    struct edit_job *j = kn_container_of(w, struct edit_job, work);
    struct http_srv *s = j->srv;
    struct conn *c = j->c;
    if (kn__httpd_conn_release(c)) {
        if (status != 0 || j->rc < -1)
            kn__httpd_respond_error(c, 503, NULL, "Redis failed; try again");
        else if (j->rc == 0)
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

/* Text of at most max bytes, UTF-8, no control character. */
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
    return kn_utf8_valid(s, n);
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
            json_t *g = json_array_get(v, 0), *ix, *ac;
            ix = json_object_get(g, "index");
            ac = json_object_get(g, "active");
            if (json_array_size(v) != 1 || !json_is_integer(ix) ||
                json_integer_value(ix) < 0 || json_integer_value(ix) > 100 ||
                !json_is_boolean(ac)) {
                kn__httpd_respond_error(c, 400, "guardians",
                                        "guardians: [{\"index\": n, "
                                        "\"active\": true|false}], one "
                                        "guardian at a time");
                return -1;
            }
            j->gindex = (int)json_integer_value(ix);
            j->goff = !json_is_true(ac);
            j->what[w++] = 'G';
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
