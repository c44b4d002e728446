/*
 * compose.c - what the console's 新規連絡 page reads to offer an audience
 * and a category: GET /v1/groups (the tenant's directory groups with their
 * member counts; a sender only the groups it may address), GET
 * /v1/directory?q=&limit= (students found by id, name, class or group:
 * names unsealed for the answer only) and GET /v1/categories.
 *
 * Every read is bounded: at most GROUPS_MAX groups, at most DIR_SCAN_MAX
 * directory records looked at per search (the answer says "truncated"
 * when the tenant has more).  Nothing here writes.
 */
#include "dispatcher/http/http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/kn.h"
#include "common/seal.h"
#include "common/utf8.h"
#include "model/broadcast.h"
#include "model/label.h"
#include "model/token.h"
#include "queue/keys.h"

#define GROUPS_MAX    1000 /* groups answered */
#define DIR_SCAN_MAX  5000 /* records looked at per search */
#define DIR_SCAN_STEP 1000 /* SSCAN COUNT */
#define DIR_DEFAULT   20
#define DIR_LIMIT_MAX 100
#define DIR_Q_MAX     64 /* characters of q */

/*
 * The tenant a request reads: the token's own; a token of no tenant (the
 * operator's admin token) names it with ?tenant=T.  Heap, or NULL with
 * 400 answered.
 */
char *kn__httpd_req_tenant(struct conn *c)
{
    char *t;
    if (c->req.tok.tenant != NULL && c->req.tok.tenant[0] != '\0')
        return kn_xstrdup(c->req.tok.tenant);
    t = kn__httpd_query_get(c->req.query, "tenant");
    if (t == NULL || !kn_tenant_valid(t)) {
        free(t);
        kn__httpd_respond_error(c, 400, "tenant",
                                "this token has no tenant: add ?tenant=T");
        return NULL;
    }
    return t;
}

/* Split a comma list into a (the groups of a sender's token). */
static void split_commas(const char *list, struct kn_argv *a)
{
    const char *p = list;
    while (p != NULL && *p) {
        size_t n = strcspn(p, ",");
        if (n > 0)
            kn_argv_addn(a, p, n);
        p += n;
        if (*p == ',')
            p++;
    }
}

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* ---- GET /v1/groups ---- */

struct groups {
    struct kn_argv names;
};

static void groups_free(struct groups *g)
{
    kn_argv_free(&g->names);
    free(g);
}

static void on_groups_2(struct batch *b)
{
    struct groups *g = b->arg;
    json_t *j, *arr;
    if (!kn__httpd_batch_usable(b))
        goto out;
    arr = json_array();
    for (int i = 0; i < g->names.n; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "name", kn__httpd_jstr_text(g->names.v[i]));
        json_object_set_new(o, "members",
                            json_integer(kn__httpd_rnum(kn__httpd_brep(b, i))));
        json_array_append_new(arr, o);
    }
    j = json_object();
    json_object_set_new(j, "groups", arr);
    kn__httpd_respond_json(b->c, 200, j, NULL);
out:
    groups_free(g);
}

/* Count the members of every group of g (sorted by name first). */
static void groups_count(struct http_srv *s, struct conn *c, struct groups *g,
                         const char *tenant)
{
    struct batch *b;
    if (g->names.n > 1)
        qsort(g->names.v, (size_t)g->names.n, sizeof(char *), cmp_str);
    b = kn__httpd_batch_new(s, c, on_groups_2, g);
    for (int i = 0; i < g->names.n; i++) {
        char *k = kn_key_grp(s->d->prefix, tenant, g->names.v[i]);
        kn__httpd_batch_cmd(b, "SCARD", k, NULL);
        free(k);
    }
    kn__httpd_batch_end(b);
}

static void on_groups_1(struct batch *b)
{
    struct groups *g = b->arg;
    const redisReply *r = kn__httpd_brep(b, 0);
    char *tenant = NULL;
    if (!kn__httpd_batch_usable(b)) {
        groups_free(g);
        return;
    }
    for (size_t i = 0; r != NULL && r->type == REDIS_REPLY_ARRAY &&
                       i < r->elements && g->names.n < GROUPS_MAX;
         i++) {
        if (kn__httpd_rstr(r->element[i]) != NULL)
            kn_argv_add(&g->names, r->element[i]->str);
    }
    tenant = kn__httpd_dupstr(b->c->req.bc_tenant);
    groups_count(b->srv, b->c, g, tenant);
    free(tenant);
}

void kn__httpd_run_groups(struct conn *c)
{
    struct groups *g;
    struct batch *b;
    char *tenant = kn__httpd_req_tenant(c), *k;
    if (tenant == NULL)
        return;
    g = kn_xcalloc(1, sizeof(*g));
    kn_argv_init(&g->names);
    if (c->req.tok.role == KN_ROLE_SENDER) {
        /* A sender sees the groups it may address, and no other. */
        split_commas(c->req.tok.groups, &g->names);
        groups_count(c->srv, c, g, tenant);
        free(tenant);
        return;
    }
    free(c->req.bc_tenant);
    c->req.bc_tenant = tenant;
    b = kn__httpd_batch_new(c->srv, c, on_groups_1, g);
    k = kn_key_groups(c->srv->d->prefix, tenant);
    /* A school has tens of groups, a board of education hundreds:
     * SMEMBERS is bounded by what the import wrote; at most GROUPS_MAX
     * are answered. */
    kn__httpd_batch_cmd(b, "SMEMBERS", k, NULL);
    free(k);
    kn__httpd_batch_end(b);
}

/* ---- GET /v1/directory?q=&limit= ---- */

struct dsearch {
    char *tenant;
    char *q; /* lower-cased ASCII; other bytes as given */
    long limit;
    struct kn_argv ids;
    struct kn_argv sgroups; /* a sender's groups */
    int sg_next;            /* the next of them to read */
    char cursor[32];
    int truncated;
};

static void ds_free(struct dsearch *s)
{
    free(s->tenant);
    free(s->q);
    kn_argv_free(&s->ids);
    kn_argv_free(&s->sgroups);
    free(s);
}

/*
 * Sort the strings of a and drop repeats, keeping the first max of them
 * (by byte order).  Returns 1 if some were left out, else 0.  One sort
 * instead of a look-up per id: a few thousand ids stay cheap on the loop.
 */
int kn__httpd_ids_unique(struct kn_argv *a, int max)
{
    struct kn_argv u;
    char **v = kn_xcalloc((size_t)a->n + 1, sizeof(*v));
    int more = 0;
    if (a->n > 0)
        memcpy(v, a->v, (size_t)a->n * sizeof(*v));
    qsort(v, (size_t)a->n, sizeof(*v), cmp_str);
    kn_argv_init(&u);
    for (int i = 0; i < a->n; i++) {
        if (i > 0 && strcmp(v[i], v[i - 1]) == 0)
            continue;
        if (u.n >= max) {
            more = 1;
            break;
        }
        kn_argv_add(&u, v[i]);
    }
    free(v);
    kn_argv_free(a);
    kn_argv_init(a);
    kn_argv_move(a, &u);
    kn_argv_free(&u);
    return more;
}

/* 1 if hay holds needle (ASCII letters without regard to case). */
static int contains(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    if (hay == NULL)
        return 0;
    if (n == 0)
        return 1;
    for (const char *p = hay; *p; p++) {
        if (strncasecmp(p, needle, n) == 0)
            return 1;
    }
    return 0;
}

/* One answer entry, or NULL when it does not match.  h: HMGET name class
 * grade groups active kana. */
static json_t *ds_entry(const struct dsearch *s, const struct kn_keyring *kr,
                        const char *id, const redisReply *h)
{
    const char *f[6] = {NULL};
    char *name = NULL, *kana = NULL;
    json_t *o = NULL, *gs;
    int hit;
    if (h == NULL || h->type != REDIS_REPLY_ARRAY || h->elements != 6)
        return NULL;
    for (int i = 0; i < 6; i++)
        f[i] = kn__httpd_rstr(h->element[i]);
    if (f[4] == NULL && f[0] == NULL && f[1] == NULL)
        return NULL; /* gone since the set was read */
    if (f[0] != NULL && kn_unseal(kr, "name", f[0], &name, NULL) < 0)
        name = NULL;
    if (f[5] != NULL && kn_unseal(kr, "name", f[5], &kana, NULL) < 0)
        kana = NULL;
    hit = contains(id, s->q) || contains(name, s->q) || contains(kana, s->q) ||
          contains(f[1], s->q) || contains(f[2], s->q) || contains(f[3], s->q);
    if (hit) {
        o = json_object();
        json_object_set_new(o, "id", kn__httpd_jstr_text(id));
        json_object_set_new(o, "name", kn__httpd_jstr_text(name ? name : ""));
        json_object_set_new(o, "class", kn__httpd_jstr_text(f[1] ? f[1] : ""));
        json_object_set_new(o, "grade", kn__httpd_jstr_text(f[2] ? f[2] : ""));
        gs = json_array();
        for (const char *p = f[3]; p != NULL && *p;) {
            size_t n = strcspn(p, ";");
            char *one = kn_xstrndup(p, n);
            if (n > 0)
                json_array_append_new(gs, kn__httpd_jstr_text(one));
            free(one);
            p += n;
            if (*p == ';')
                p++;
        }
        json_object_set_new(o, "groups", gs);
        json_object_set_new(o, "active",
                            json_boolean(f[4] == NULL || strcmp(f[4], "0")));
    }
    kn_free_secret(name);
    kn_free_secret(kana);
    return o;
}

static int cmp_entry(const void *x, const void *y)
{
    json_t *a = *(json_t *const *)x, *b = *(json_t *const *)y;
    int r = strcmp(json_string_value(json_object_get(a, "class")),
                   json_string_value(json_object_get(b, "class")));
    return r ? r
             : strcmp(json_string_value(json_object_get(a, "id")),
                      json_string_value(json_object_get(b, "id")));
}

static void on_ds_records(struct batch *b)
{
    struct dsearch *s = b->arg;
    json_t **hits, *arr, *j;
    size_t n = 0;
    if (!kn__httpd_batch_usable(b))
        goto out;
    hits = kn_xcalloc((size_t)s->ids.n + 1, sizeof(*hits));
    for (int i = 0; i < s->ids.n; i++) {
        json_t *o =
            ds_entry(s, b->srv->d->kr, s->ids.v[i], kn__httpd_brep(b, i));
        if (o != NULL)
            hits[n++] = o;
    }
    qsort(hits, n, sizeof(*hits), cmp_entry);
    arr = json_array();
    for (size_t i = 0; i < n; i++) {
        if ((long)i < s->limit)
            json_array_append(arr, hits[i]);
        json_decref(hits[i]);
    }
    free(hits);
    j = json_object();
    json_object_set_new(j, "recipients", arr);
    json_object_set_new(j, "matches", json_integer((json_int_t)n));
    json_object_set_new(j, "truncated", json_boolean(s->truncated));
    kn__httpd_respond_json(b->c, 200, j, NULL);
out:
    ds_free(s);
}

static void ds_read_records(struct http_srv *srv, struct conn *c,
                            struct dsearch *s)
{
    struct batch *b;
    if (kn__httpd_ids_unique(&s->ids, DIR_SCAN_MAX))
        s->truncated = 1;
    b = kn__httpd_batch_new(srv, c, on_ds_records, s);
    for (int i = 0; i < s->ids.n; i++) {
        char *k = kn_key_rcpt(srv->d->prefix, s->tenant, s->ids.v[i]);
        kn__httpd_batch_cmd(b, "HMGET", k, "name", "class", "grade", "groups",
                            "active", "kana", NULL);
        free(k);
    }
    kn__httpd_batch_end(b);
}

static void ds_scan(struct http_srv *srv, struct conn *c, struct dsearch *s);

/* Add the ids of a reply (an array, or SSCAN's [cursor, array]); the
 * repeats (SSCAN may return an id twice, a student may be in two groups)
 * go in ds_read_records.  Beyond 2 x DIR_SCAN_MAX read: truncated. */
static void ds_take(struct dsearch *s, const redisReply *arr)
{
    for (size_t i = 0;
         arr != NULL && arr->type == REDIS_REPLY_ARRAY && i < arr->elements;
         i++) {
        const char *id = kn__httpd_rstr(arr->element[i]);
        if (id == NULL)
            continue;
        if (s->ids.n >= 2 * DIR_SCAN_MAX) {
            s->truncated = 1;
            return;
        }
        kn_argv_add(&s->ids, id);
    }
}

static void on_ds_scan(struct batch *b)
{
    struct dsearch *s = b->arg;
    const redisReply *r = kn__httpd_brep(b, 0);
    if (!kn__httpd_batch_usable(b)) {
        ds_free(s);
        return;
    }
    if (s->sgroups.n > 0) {
        ds_take(s, r); /* SMEMBERS of a group */
    } else if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
        snprintf(s->cursor, sizeof(s->cursor), "%s",
                 kn__httpd_rstr(r->element[0]) ? r->element[0]->str : "0");
        ds_take(s, r->element[1]);
    } else {
        snprintf(s->cursor, sizeof(s->cursor), "0");
    }
    ds_scan(b->srv, b->c, s);
}

/* The next step: another SSCAN (or a sender's next group), or the
 * records once every id is in (or DIR_SCAN_MAX reached). */
static void ds_scan(struct http_srv *srv, struct conn *c, struct dsearch *s)
{
    struct batch *b;
    char *k;
    int more = s->sgroups.n > 0 ? s->sg_next < s->sgroups.n
                                : strcmp(s->cursor, "0") != 0;
    if (!more || s->truncated) {
        ds_read_records(srv, c, s);
        return;
    }
    b = kn__httpd_batch_new(srv, c, on_ds_scan, s);
    if (s->sgroups.n > 0) {
        /* A sender searches the members of its own groups only. */
        k = kn_key_grp(srv->d->prefix, s->tenant, s->sgroups.v[s->sg_next++]);
        kn__httpd_batch_cmd(b, "SMEMBERS", k, NULL);
    } else {
        char cnt[16];
        snprintf(cnt, sizeof(cnt), "%d", DIR_SCAN_STEP);
        k = kn_key_rcpts(srv->d->prefix, s->tenant);
        kn__httpd_batch_cmd(b, "SSCAN", k, s->cursor, "COUNT", cnt, NULL);
    }
    free(k);
    kn__httpd_batch_end(b);
}

void kn__httpd_run_directory(struct conn *c)
{
    struct dsearch *s;
    char *q = kn__httpd_query_get(c->req.query, "q");
    char *lim = kn__httpd_query_get(c->req.query, "limit");
    char *tenant, *end;
    long limit = DIR_DEFAULT;

    if (lim != NULL) {
        limit = strtol(lim, &end, 10);
        if (lim[0] < '0' || lim[0] > '9' || *end != '\0' || limit < 1 ||
            limit > DIR_LIMIT_MAX) {
            free(q);
            free(lim);
            kn__httpd_respond_error(c, 400, "limit",
                                    "give limit as a number from 1 to %d",
                                    DIR_LIMIT_MAX);
            return;
        }
    }
    free(lim);
    if (q != NULL && (kn_utf8_plain_chars(q, strlen(q)) < 0 ||
                      kn_utf8_plain_chars(q, strlen(q)) > DIR_Q_MAX)) {
        free(q);
        kn__httpd_respond_error(c, 400, "q",
                                "give q as at most %d characters of text "
                                "(no control characters)",
                                DIR_Q_MAX);
        return;
    }
    if ((tenant = kn__httpd_req_tenant(c)) == NULL) {
        free(q);
        return;
    }
    s = kn_xcalloc(1, sizeof(*s));
    s->tenant = tenant;
    s->limit = limit;
    kn_argv_init(&s->ids);
    kn_argv_init(&s->sgroups);
    snprintf(s->cursor, sizeof(s->cursor), "0");
    /* Spaces around the words typed are not part of them. */
    {
        char *t = q ? q : kn_xstrdup(""), *p = t, *e;
        while (*p == ' ')
            p++;
        e = p + strlen(p);
        while (e > p && e[-1] == ' ')
            *--e = '\0';
        s->q = kn_xstrdup(p);
        free(t);
    }
    if (c->req.tok.role == KN_ROLE_SENDER) {
        split_commas(c->req.tok.groups, &s->sgroups);
        if (s->sgroups.n == 0) {
            ds_read_records(c->srv, c, s);
            return;
        }
        ds_scan(c->srv, c, s);
        return;
    }
    /* The first SSCAN: cursor "0" starts, so force one step. */
    snprintf(s->cursor, sizeof(s->cursor), "0");
    {
        struct batch *b = kn__httpd_batch_new(c->srv, c, on_ds_scan, s);
        char cnt[16], *k = kn_key_rcpts(c->srv->d->prefix, s->tenant);
        snprintf(cnt, sizeof(cnt), "%d", DIR_SCAN_STEP);
        kn__httpd_batch_cmd(b, "SSCAN", k, "0", "COUNT", cnt, NULL);
        free(k);
        kn__httpd_batch_end(b);
    }
}

/* ---- GET /v1/categories ---- */

static void on_categories(struct batch *b)
{
    static const char *const builtin[] = {"notice", "event", "drill",
                                          "emergency"};
    const redisReply *r = kn__httpd_brep(b, 0);
    json_t *arr, *j;
    if (!kn__httpd_batch_usable(b))
        return;
    arr = json_array();
    for (size_t i = 0; i < KN_ARRAY_SIZE(builtin); i++) {
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(builtin[i]));
        json_object_set_new(
            o, "emergency",
            json_boolean(kn_category_builtin(builtin[i]) == KN_CAT_EMERGENCY));
        json_object_set_new(o, "builtin", json_true());
        json_array_append_new(arr, o);
    }
    for (size_t i = 0; r != NULL && r->type == REDIS_REPLY_ARRAY &&
                       i + 1 < r->elements && i < 2 * GROUPS_MAX;
         i += 2) {
        const char *name = kn__httpd_rstr(r->element[i]);
        const char *flags = kn__httpd_rstr(r->element[i + 1]);
        json_t *o;
        if (name == NULL)
            continue;
        o = json_object();
        json_object_set_new(o, "name", kn__httpd_jstr_text(name));
        json_object_set_new(
            o, "emergency",
            json_boolean(flags != NULL && strstr(flags, "emergency") != NULL));
        json_object_set_new(o, "builtin", json_false());
        json_array_append_new(arr, o);
    }
    j = json_object();
    json_object_set_new(j, "categories", arr);
    kn__httpd_respond_json(b->c, 200, j, NULL);
}

void kn__httpd_run_categories(struct conn *c)
{
    struct batch *b;
    char *tenant = kn__httpd_req_tenant(c), *k;
    if (tenant == NULL)
        return;
    b = kn__httpd_batch_new(c->srv, c, on_categories, NULL);
    k = kn_key_cats(c->srv->d->prefix, tenant);
    kn__httpd_batch_cmd(b, "HGETALL", k, NULL);
    free(k);
    free(tenant);
    kn__httpd_batch_end(b);
}
