/*
 * recipients.c - GET /v1/broadcasts/{id}/recipients (one page, JSON) and
 * GET /v1/broadcasts/{id}/recipients.csv (all of them, for Excel): one row
 * per (recipient, channel) from bc:<id>:r, with the confirmation, the
 * answer and the comment of bc:<id>:ack (model/broadcast.h,
 * kn_ack_value_parse; the comment unsealed for the tenant's staff only).
 *
 * The columns child, class and guardian are there for the per-child
 * report (the data model of issue 13): null, or empty in the CSV, until
 * the audience names them.  Addresses are never in a row.
 */
#include "dispatcher/http/http_int.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/csvcell.h"
#include "common/kn.h"
#include "common/seal.h"
#include "model/broadcast.h"
#include "queue/keys.h"

#define PAGE_DEFAULT 100
#define PAGE_MAX     500

/* The columns, in the order of the CSV (docs/http-api.md). */
static const char *const cols[] = {
    "recipient", "child",      "class",        "guardian", "channel",
    "state",     "reached_at", "confirmed_at", "answer",   "comment"};
#define NCOLS 10

struct row {
    char *rcpt, *channel;
    const char *state;
    long long at_ms; /* the time of the state (reached when delivered) */
};

struct rlist {
    struct row *r;
    size_t n, cap;
    char *next; /* the page's next cursor, NULL at the end */
    json_t *choices;
};

static const char *state_name(char code)
{
    switch (code) {
    case 'q':
        return "queued";
    case 'r':
        return "retrying";
    case 'd':
        return "delivered";
    case 'f':
        return "failed";
    case 'x':
        return "expired";
    case 'c':
        return "cancelled";
    default:
        return "unknown";
    }
}

/* One state of bc:<id>:r: field "<channel>:<...>", value
 * "<code>|<rcpt>|<ms>|<detail>" (the detail is not shown). */
static void add_state(struct rlist *l, const char *field, const char *v)
{
    const char *p, *q;
    struct row *r;
    if (field == NULL || v == NULL || strlen(v) < 3 || v[1] != '|')
        return;
    p = v + 2;
    q = strchr(p, '|');
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->r = kn_xrealloc(l->r, l->cap * sizeof(*l->r));
    }
    r = &l->r[l->n++];
    r->rcpt = q ? kn_xstrndup(p, (size_t)(q - p)) : kn_xstrdup(p);
    r->channel = kn_xstrndup(field, strcspn(field, ":"));
    r->state = state_name(v[0]);
    r->at_ms = q ? strtoll(q + 1, NULL, 10) : 0;
}

static int by_rcpt(const void *a, const void *b)
{
    const struct row *x = a, *y = b;
    int c = strcmp(x->rcpt, y->rcpt);
    return c != 0 ? c : strcmp(x->channel, y->channel);
}

static void rlist_free(struct rlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->r[i].rcpt);
        free(l->r[i].channel);
    }
    free(l->r);
    free(l->next);
    json_decref(l->choices);
    free(l);
}

/* The confirmation of one row: time, answer text, comment (heap, or
 * NULL).  The comment is unsealed here and nowhere else. */
static void row_ack(const struct kn_keyring *kr, const struct rlist *l,
                    const char *stored, long long *ms, const char **answer,
                    char **comment)
{
    int64_t t = 0;
    int a = -1;
    char *sealed = NULL;
    *ms = 0;
    *answer = NULL;
    *comment = NULL;
    if (stored == NULL || kn_ack_value_parse(stored, &t, &a, &sealed) < 0)
        return;
    *ms = t;
    if (a >= 0)
        *answer = json_string_value(json_array_get(l->choices, (size_t)a));
    if (sealed != NULL &&
        kn_unseal(kr, "ack-comment", sealed, comment, NULL) < 0)
        *comment = kn_xstrdup("(unreadable)");
    free(sealed);
}

/* The broadcast may be read by this token (0), or 404/503 answered. */
static int rl_visible(struct batch *b)
{
    const redisReply *h = kn__httpd_brep(b, 0);
    if (!kn__httpd_batch_usable(b))
        return -1;
    if (h == NULL || h->type != REDIS_REPLY_ARRAY || h->elements != 3 ||
        kn__httpd_rstr(h->element[2]) == NULL ||
        !kn__httpd_bc_may_see(b->c, kn__httpd_rstr(h->element[0]),
                              kn__httpd_rstr(h->element[1]))) {
        if (h != NULL && h->type == REDIS_REPLY_ARRAY && h->elements == 3 &&
            kn__httpd_rstr(h->element[2]) != NULL)
            b->c->req.auth_result = "forbidden";
        kn__httpd_respond_error(b->c, 404, "id", "no broadcast %s",
                                b->c->req.param);
        return -1;
    }
    return 0;
}

static void rl_head(struct batch *b, struct conn *c)
{
    char *k = kn_key_bc(c->srv->d->prefix, c->req.param, "");
    kn__httpd_batch_cmd(b, "HMGET", k, "tenant", "sender_token", "status",
                        NULL);
    kn__httpd_batch_cmd(b, "HGET", k, "choices", NULL);
    free(k);
}

static json_t *choices_of(const redisReply *r)
{
    json_t *j =
        kn__httpd_rstr(r) ? json_loads(kn__httpd_rstr(r), 0, NULL) : NULL;
    return json_is_array(j) ? j : (json_decref(j), json_array());
}

/* ---- GET /v1/broadcasts/{id}/recipients?cursor=C&limit=N ---- */

static void on_page_acks(struct batch *b)
{
    struct rlist *l = b->arg;
    const redisReply *a = kn__httpd_brep(b, 0);
    json_t *j, *arr;
    if (!kn__httpd_batch_usable(b))
        goto out;
    arr = json_array();
    for (size_t i = 0; i < l->n; i++) {
        struct row *r = &l->r[i];
        json_t *o = json_object();
        long long ms;
        const char *answer;
        char *comment;
        row_ack(b->srv->d->kr, l,
                a && a->type == REDIS_REPLY_ARRAY && i < a->elements
                    ? kn__httpd_rstr(a->element[i])
                    : NULL,
                &ms, &answer, &comment);
        json_object_set_new(o, "recipient", kn__httpd_jstr_text(r->rcpt));
        json_object_set_new(o, "child", json_null());
        json_object_set_new(o, "class", json_null());
        json_object_set_new(o, "guardian", json_null());
        json_object_set_new(o, "channel", kn__httpd_jstr_text(r->channel));
        json_object_set_new(o, "state", json_string(r->state));
        json_object_set_new(
            o, "reached_at",
            kn__httpd_jtime(strcmp(r->state, "delivered") == 0 ? r->at_ms : 0));
        json_object_set_new(o, "confirmed_at", kn__httpd_jtime(ms));
        json_object_set_new(o, "answer", kn__httpd_jstr_or_null(answer));
        json_object_set_new(
            o, "comment", comment ? kn__httpd_jstr_text(comment) : json_null());
        kn_free_secret(comment);
        json_array_append_new(arr, o);
    }
    j = json_object();
    json_object_set_new(j, "recipients", arr);
    json_object_set_new(j, "next_cursor", kn__httpd_jstr_or_null(l->next));
    kn__httpd_respond_json(b->c, 200, j, NULL);
out:
    rlist_free(l);
}

static void on_page(struct batch *b)
{
    const redisReply *sc = kn__httpd_brep(b, 2), *kv;
    struct rlist *l;
    struct batch *b2;
    struct kn_argv a;
    if (rl_visible(b) < 0)
        return;
    if (sc == NULL || sc->type != REDIS_REPLY_ARRAY || sc->elements != 2 ||
        sc->element[1]->type != REDIS_REPLY_ARRAY) {
        kn__httpd_respond_error(b->c, 503, NULL,
                                "Redis is unreachable; try again");
        return;
    }
    l = kn_xcalloc(1, sizeof(*l));
    l->choices = choices_of(kn__httpd_brep(b, 1));
    kv = sc->element[1];
    for (size_t i = 0; i + 1 < kv->elements; i += 2)
        add_state(l, kn__httpd_rstr(kv->element[i]),
                  kn__httpd_rstr(kv->element[i + 1]));
    if (l->n > 0) /* a page of HSCAN may be empty: l->r NULL */
        qsort(l->r, l->n, sizeof(*l->r), by_rcpt);
    if (kn__httpd_rstr(sc->element[0]) &&
        strcmp(kn__httpd_rstr(sc->element[0]), "0") != 0)
        l->next = kn_xasprintf("r%s", kn__httpd_rstr(sc->element[0]));
    b2 = kn__httpd_batch_new(b->srv, b->c, on_page_acks, l);
    kn_argv_init(&a);
    kn_argv_add(&a, "HMGET");
    kn_argv_take(&a, kn_key_bc(b->srv->d->prefix, b->c->req.param, ":ack"));
    for (size_t i = 0; i < l->n; i++)
        kn_argv_add(&a, l->r[i].rcpt);
    if (l->n == 0)
        kn_argv_add(&a, "-"); /* HMGET needs one field; its reply unused */
    kn__httpd_batch_add(b2, &a);
    kn_argv_free(&a);
    kn__httpd_batch_end(b2);
}

void kn__httpd_run_bc_rcpts(struct conn *c)
{
    char *cur = kn__httpd_query_get(c->req.query, "cursor");
    char *lim = kn__httpd_query_get(c->req.query, "limit");
    long n = PAGE_DEFAULT;
    char *end = NULL, *k, count[16];
    struct batch *b;

    if (!kn_id_valid(c->req.param)) {
        kn__httpd_respond_error(c, 404, "id", "no broadcast with such an id");
        goto out;
    }
    if (lim != NULL) {
        n = strtol(lim, &end, 10);
        if (lim[0] < '0' || lim[0] > '9' || *end != '\0' || n < 1 ||
            n > PAGE_MAX) {
            kn__httpd_respond_error(c, 400, "limit",
                                    "give limit as a number from 1 to %d",
                                    PAGE_MAX);
            goto out;
        }
    }
    if (cur != NULL && (cur[0] != 'r' || cur[1] == '\0' ||
                        strspn(cur + 1, "0123456789") != strlen(cur + 1) ||
                        strlen(cur) > 24)) {
        kn__httpd_respond_error(c, 400, "cursor",
                                "give back the next_cursor of the previous "
                                "page as it was, or none for the first page");
        goto out;
    }
    b = kn__httpd_batch_new(c->srv, c, on_page, NULL);
    rl_head(b, c);
    k = kn_key_bc(c->srv->d->prefix, c->req.param, ":r");
    snprintf(count, sizeof(count), "%ld", n);
    kn__httpd_batch_cmd(b, "HSCAN", k, cur ? cur + 1 : "0", "COUNT", count,
                        NULL);
    free(k);
    kn__httpd_batch_end(b);
out:
    free(cur);
    free(lim);
}

/* ---- GET /v1/broadcasts/{id}/recipients.csv[?charset=cp932] ---- */

/* The batch's arg: &charset_cp932 for ?charset=cp932, else NULL. */
static const int charset_cp932 = 1;

/*
 * The CSV is built in the thread pool: 50,000 rows (unsealing each
 * comment, converting to CP932) held the loop for 0.8 s.  The job owns
 * copies of everything it reads; the connection is held meanwhile and
 * answered on the loop only if it is still open.
 */
struct csv_job {
    uv_work_t work;
    struct http_srv *srv;
    struct conn *c;
    const struct kn_keyring *kr;
    struct rlist *l;
    struct kn_argv st_kv;  /* bc:<id>:r as read: field, state, ... */
    struct kn_argv ack_kv; /* bc:<id>:ack as read: recipient, value, ... */
    json_t *acks;          /* the same as an index, built by the work */
    int cp932;
    char *body; /* the answer, built by the work */
    size_t blen;
};

static void csv_work(uv_work_t *w)
{
    struct csv_job *j = kn_container_of(w, struct csv_job, work);
    struct rlist *l = j->l;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    if (f == NULL)
        KN_PANIC("open_memstream failed");
    for (int i = 0; i + 1 < j->st_kv.n; i += 2)
        add_state(l, j->st_kv.v[i], j->st_kv.v[i + 1]);
    j->acks = json_object();
    for (int i = 0; i + 1 < j->ack_kv.n; i += 2)
        json_object_set_new(j->acks, j->ack_kv.v[i],
                            json_string(j->ack_kv.v[i + 1]));
    if (l->n > 0)
        qsort(l->r, l->n, sizeof(*l->r), by_rcpt);
    if (!j->cp932)
        fputs("\xEF\xBB\xBF", f); /* the BOM: Excel reads UTF-8 then */
    for (int i = 0; i < NCOLS; i++)
        kn_csv_put_cell(f, cols[i], i == NCOLS - 1);
    for (size_t i = 0; i < l->n; i++) {
        struct row *r = &l->r[i];
        long long ms;
        const char *answer;
        char *comment, t1[48] = "", t2[48] = "";
        row_ack(j->kr, l, json_string_value(json_object_get(j->acks, r->rcpt)),
                &ms, &answer, &comment);
        if (strcmp(r->state, "delivered") == 0 && r->at_ms > 0)
            kn_time_jst(r->at_ms, t1, sizeof(t1));
        if (ms > 0)
            kn_time_jst(ms, t2, sizeof(t2));
        kn_csv_put_cell(f, r->rcpt, 0);
        kn_csv_put_cell(f, "", 0); /* child, class, guardian: the data model */
        kn_csv_put_cell(f, "", 0);
        kn_csv_put_cell(f, "", 0);
        kn_csv_put_cell(f, r->channel, 0);
        kn_csv_put_cell(f, r->state, 0);
        kn_csv_put_cell(f, t1, 0);
        kn_csv_put_cell(f, t2, 0);
        kn_csv_put_cell(f, answer ? answer : "", 0);
        kn_csv_put_cell(f, comment ? comment : "", 1);
        kn_free_secret(comment);
    }
    fclose(f);
    if (j->cp932) {
        j->body = kn_csv_cp932(text, len, &j->blen);
        OPENSSL_cleanse(text, len);
        free(text);
    } else {
        j->body = text;
        j->blen = len;
    }
}

static void csv_done(uv_work_t *w, int status)
{
    struct csv_job *j = kn_container_of(w, struct csv_job, work);
    struct http_srv *s = j->srv;
    char extra[200];

    if (kn__httpd_conn_release(j->c)) {
        if (status != 0 || j->body == NULL) {
            kn__httpd_respond_error(j->c, 503, NULL,
                                    "the export was cancelled; try again");
        } else {
            snprintf(extra, sizeof(extra),
                     "Content-Disposition: attachment; "
                     "filename=\"%s-recipients.csv\"\r\n",
                     j->c->req.param);
            kn__httpd_respond(j->c, 200,
                              j->cp932 ? "text/csv; charset=Windows-31J"
                                       : "text/csv; charset=utf-8",
                              j->body, j->blen, NULL, extra);
        }
    }
    if (j->body != NULL) {
        OPENSSL_cleanse(j->body, j->blen);
        free(j->body);
    }
    rlist_free(j->l);
    json_decref(j->acks);
    kn_argv_free(&j->st_kv);
    kn_argv_free(&j->ack_kv);
    free(j);
    kn__httpd_srv_unref(s);
}

static void on_csv(struct batch *b)
{
    const redisReply *st = kn__httpd_brep(b, 2), *ak = kn__httpd_brep(b, 3);
    struct csv_job *j;

    if (rl_visible(b) < 0)
        return;
    j = kn_xcalloc(1, sizeof(*j));
    j->srv = b->srv;
    j->c = b->c;
    j->kr = b->srv->d->kr;
    j->cp932 = b->arg == &charset_cp932;
    j->l = kn_xcalloc(1, sizeof(*j->l));
    j->l->choices = choices_of(kn__httpd_brep(b, 1));
    kn_argv_init(&j->st_kv);
    kn_argv_init(&j->ack_kv);
    /* copied as read: parsed in the work, off the loop */
    for (size_t i = 0;
         st && st->type == REDIS_REPLY_ARRAY && i + 1 < st->elements; i += 2) {
        if (kn__httpd_rstr(st->element[i]) &&
            kn__httpd_rstr(st->element[i + 1])) {
            kn_argv_add(&j->st_kv, kn__httpd_rstr(st->element[i]));
            kn_argv_add(&j->st_kv, kn__httpd_rstr(st->element[i + 1]));
        }
    }
    for (size_t i = 0;
         ak && ak->type == REDIS_REPLY_ARRAY && i + 1 < ak->elements; i += 2) {
        if (kn__httpd_rstr(ak->element[i]) &&
            kn__httpd_rstr(ak->element[i + 1])) {
            kn_argv_add(&j->ack_kv, kn__httpd_rstr(ak->element[i]));
            kn_argv_add(&j->ack_kv, kn__httpd_rstr(ak->element[i + 1]));
        }
    }
    b->srv->live++;
    kn__httpd_conn_hold(b->c);
    if (uv_queue_work(b->srv->d->loop, &j->work, csv_work, csv_done) != 0) {
        j->body = NULL;
        csv_done(&j->work, -1);
    }
}

void kn__httpd_run_bc_rcpts_csv(struct conn *c)
{
    char *cs = kn__httpd_query_get(c->req.query, "charset");
    struct batch *b;
    char *k;
    if (!kn_id_valid(c->req.param)) {
        kn__httpd_respond_error(c, 404, "id", "no broadcast with such an id");
        free(cs);
        return;
    }
    if (cs != NULL && strcmp(cs, "cp932") != 0 && strcmp(cs, "utf-8") != 0) {
        kn__httpd_respond_error(c, 400, "charset",
                                "give charset=cp932 (Excel's Japanese) or "
                                "charset=utf-8 (the default, with a BOM)");
        free(cs);
        return;
    }
    b = kn__httpd_batch_new(
        c->srv, c, on_csv,
        cs != NULL && strcmp(cs, "cp932") == 0 ? (void *)&charset_cp932 : NULL);
    free(cs);
    rl_head(b, c);
    k = kn_key_bc(c->srv->d->prefix, c->req.param, ":r");
    kn__httpd_batch_cmd(b, "HGETALL", k, NULL);
    free(k);
    k = kn_key_bc(c->srv->d->prefix, c->req.param, ":ack");
    kn__httpd_batch_cmd(b, "HGETALL", k, NULL);
    free(k);
    kn__httpd_batch_end(b);
}
