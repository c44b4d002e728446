/*
 * sheets.c - the console's 名簿 for guardians signing up (issue 15):
 *   POST /v1/directory/sheets      {"group"?, "reissue"?, "format"?:
 *                                  "html"|"csv"}: registration sheets,
 *                                  issued exactly as kairanctl recipients
 *                                  sheets does (queue/sheets.c); the
 *                                  printable page (its own CSP, no script)
 *                                  or the CSV, as a download; the counts in
 *                                  X-Kairan-Issued and X-Kairan-Skipped.
 *   GET  /v1/directory/unregistered[?group=G]: the families not yet
 *                                  registered (未登録), per class.
 *   POST /v1/directory/remind      {"group"?, "dry_run"?}: one broadcast
 *                                  asking the unregistered families that
 *                                  have an imported contact to register;
 *                                  it goes through the submit path
 *                                  (bc_submit.c) as the staff member's.
 * A tenant's admins only (routes.c); a session needs the CSRF header for
 * the POSTs (session_auth.c).  The Redis work is synchronous, on libuv's
 * thread pool with its own connection, one directory job at a time per
 * process (the roster import's counter).  Passcodes exist only in the
 * answer: never in a log.
 */
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/codec.h"
#include "common/kn.h"
#include "common/log.h"
#include "common/text.h"
#include "model/audit.h"
#include "model/label.h"
#include "model/token.h"
#include "queue/sheets.h"
#include "dispatcher/http/http_int.h"

enum sheets_what { W_SHEETS, W_UNREG, W_REMIND };

struct sheets_job {
    uv_work_t work;
    struct http_srv *srv;
    struct conn *c;
    enum sheets_what what;
    char *tenant, *group; /* group normalised, or NULL */
    int reissue, csv, dry_run;
    int rc;
    int slot; /* kn__httpd_dir_job_take's */
    char err[400];
    struct kn_sheets sheets;
    struct kn_unreg unreg;
    char *doc; /* the sheets' page or CSV */
    size_t doclen;
};

static void job_free(struct sheets_job *j)
{
    kn_sheets_free(&j->sheets);
    kn_unreg_free(&j->unreg);
    if (j->doc != NULL) {
        memset(j->doc, 0, j->doclen); /* passcodes */
        free(j->doc);
    }
    free(j->tenant);
    free(j->group);
    free(j);
}

static void sheets_work(uv_work_t *w)
{
    struct sheets_job *j = kn_container_of(w, struct sheets_job, work);
    const struct kn_config *cfg = j->srv->cfg;
    const char *prefix = j->srv->d->prefix;
    redisContext *rc = kn__redis_sync(cfg);
    FILE *f;

    if (rc == NULL) {
        j->rc = KN_ECLOSED;
        snprintf(j->err, sizeof(j->err), "Redis is not reachable");
        return;
    }
    if (j->what != W_SHEETS) {
        j->rc = kn_unreg_list(rc, prefix, j->srv->d->kr, j->tenant, j->group,
                              &j->unreg, j->err, sizeof(j->err));
        redisFree(rc);
        return;
    }
    j->rc = kn_sheets_issue(rc, prefix, j->srv->d->kr, j->tenant, j->group,
                            j->reissue, cfg->registration_max_guardians,
                            &j->sheets, j->err, sizeof(j->err));
    redisFree(rc);
    if (j->rc < 0 && j->sheets.n == 0)
        return;
    /* Sheets issued before a failure are live: print them all the same. */
    f = open_memstream(&j->doc, &j->doclen);
    if (f == NULL)
        kn_fatal("open_memstream: %s", strerror(errno));
    if (j->csv) {
        /* the console saves it as a file for Excel or Word's mail merge:
         * with the BOM they read the names as UTF-8, not as CP932 (as
         * recipients.csv) */
        fputs("\xEF\xBB\xBF", f);
        kn_sheets_csv(f, &j->sheets, cfg->http_public_url);
    } else
        kn_sheets_html(f, j->tenant, &j->sheets, cfg->http_public_url,
                       cfg->smtp_from, cfg->registration_max_guardians);
    fclose(f);
}

/* The operation log line (model/audit.h), as kairanctl writes it; f is
 * taken (kn_audit_op frees it). */
static void audit(struct conn *c, const char *op, const char *tenant, json_t *f)
{
    char *actor = kn_xasprintf("token:%s", c->req.tok.id);
    json_object_set_new(f, "tenant", json_string(tenant));
    json_object_set_new(f, "token", json_string(c->req.tok.id));
    json_object_set_new(f, "role", json_string(kn_role_name(c->req.tok.role)));
    if (c->req.tok.login != NULL)
        json_object_set_new(f, "login", kn__httpd_jstr_text(c->req.tok.login));
    json_object_set_new(f, "source", json_string(c->req.source));
    json_object_set_new(f, "via", json_string("http"));
    if (kn_audit_op(c->srv->cfg->audit_dir, actor, op, f) < 0)
        kn_log(KN_LOG_WARN, "http", "cannot append to the operation log", "dir",
               c->srv->cfg->audit_dir, "error", strerror(errno), NULL);
    free(actor);
}

/* The sheets page's CSP: nothing but its own inline style (by hash). */
static char *sheets_csp(void)
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    char *b64, *csp;
    EVP_Digest(kn_sheets_css, strlen(kn_sheets_css), md, &mdlen, EVP_sha256(),
               NULL);
    b64 = kn_b64_encode(md, mdlen);
    csp = kn_xasprintf("default-src 'none'; style-src 'sha256-%s'; "
                       "img-src 'none'; base-uri 'none'; form-action 'none'; "
                       "frame-ancestors 'none'",
                       b64);
    free(b64);
    return csp;
}

static void answer_sheets(struct sheets_job *j)
{
    struct conn *c = j->c;
    char extra[256], *csp;

    audit(c, "recipients.sheets", j->tenant,
          json_pack("{s:s?,s:b,s:I,s:I}", "group", j->group, "reissue",
                    j->reissue, "issued", (json_int_t)j->sheets.n, "skipped",
                    (json_int_t)j->sheets.skipped));
    if (j->rc < 0)
        kn_log(KN_LOG_WARN, "http", "sheets: Redis failed part way", "tenant",
               j->tenant, "error", j->err, NULL);
    snprintf(extra, sizeof(extra),
             "Content-Disposition: attachment; filename=\"sheets.%s\"\r\n"
             "X-Kairan-Issued: %zu\r\nX-Kairan-Skipped: %zu\r\n",
             j->csv ? "csv" : "html", j->sheets.n, j->sheets.skipped);
    csp = sheets_csp();
    kn__httpd_respond(
        c, 200, j->csv ? "text/csv; charset=utf-8" : "text/html; charset=utf-8",
        j->doc, j->doclen, csp, extra);
    free(csp);
}

static json_t *unreg_json(const struct sheets_job *j)
{
    json_t *a = json_object(), *classes = json_array(), *st = json_array();
    size_t nocontact = 0;
    for (size_t i = 0, start = 0; i < j->unreg.n; i++) {
        const struct kn_unreg_row *r = &j->unreg.v[i];
        json_t *ch = json_array();
        if (r->has & KN_UNREG_EMAIL)
            json_array_append_new(ch, json_string("email"));
        if (r->has & KN_UNREG_LINE)
            json_array_append_new(ch, json_string("line"));
        if (r->has & KN_UNREG_PUSH)
            json_array_append_new(ch, json_string("push"));
        nocontact += r->has == 0;
        json_array_append_new(
            st,
            json_pack("{s:o,s:o,s:o,s:o}", "id", kn__httpd_jstr_text(r->id),
                      "name",
                      r->name ? kn__httpd_jstr_text(r->name) : json_null(),
                      "class", kn__httpd_jstr_text(r->cls), "channels", ch));
        if (i + 1 == j->unreg.n || strcmp(j->unreg.v[i + 1].cls, r->cls) != 0) {
            json_array_append_new(
                classes,
                json_pack("{s:o,s:I}", "class", kn__httpd_jstr_text(r->cls),
                          "unregistered", (json_int_t)(i + 1 - start)));
            start = i + 1;
        }
    }
    json_object_set_new(a, "group", kn__httpd_jstr_or_null(j->group));
    json_object_set_new(a, "active", json_integer((json_int_t)j->unreg.active));
    json_object_set_new(a, "unregistered",
                        json_integer((json_int_t)j->unreg.n));
    json_object_set_new(a, "no_contact", json_integer((json_int_t)nocontact));
    json_object_set_new(a, "classes", classes);
    json_object_set_new(a, "students", st);
    return a;
}

/*
 * The reminder: a dry run answers the counts; otherwise the broadcast
 * goes through the submit path as the body of this request would (as a
 * re-send does, resend.c), and its answer carries the counts
 * (kn__httpd_remind_stored).
 */
static void answer_remind(struct sheets_job *j)
{
    struct conn *c = j->c;
    size_t sent, nocontact;
    char *json =
        kn_remind_json(&j->unreg, j->tenant, c->srv->cfg->http_public_url, NULL,
                       &sent, &nocontact);
    json_t *counts = json_pack("{s:I,s:I,s:I}", "unregistered",
                               (json_int_t)j->unreg.n, "sent", (json_int_t)sent,
                               "no_contact", (json_int_t)nocontact);
    if (j->dry_run || json == NULL) {
        json_object_set_new(counts, "dry_run", json_boolean(j->dry_run));
        json_object_set_new(counts, "id", json_null());
        if (!j->dry_run)
            json_object_set_new(counts, "error",
                                json_string("nobody to remind: no unregistered "
                                            "family has a contact the school "
                                            "imported (give them the printed "
                                            "sheets)"));
        kn__httpd_respond_json(c, j->dry_run ? 200 : 409, counts, NULL);
        free(json);
        return;
    }
    json_object_set_new(counts, "group", kn__httpd_jstr_or_null(j->group));
    c->req.remind = counts;
    kn_buf_free(&c->req.body);
    kn_buf_init(&c->req.body, 0);
    kn_buf_add(&c->req.body, json);
    free(json);
    free(c->req.ctype);
    c->req.ctype = kn_xstrdup("application/json");
    kn__httpd_run_bc_submit(c);
}

void kn__httpd_remind_stored(struct conn *c, json_t *answer)
{
    json_t *f = json_deep_copy(c->req.remind);
    json_object_set_new(f, "broadcast", json_string(c->req.bc_id));
    audit(c, "recipients.remind", c->req.bc_tenant ? c->req.bc_tenant : "", f);
    json_object_update(answer, c->req.remind);
    json_object_set_new(answer, "dry_run", json_false());
}

static void sheets_done(uv_work_t *w, int status)
{
    struct sheets_job *j = kn_container_of(w, struct sheets_job, work);
    struct http_srv *s = j->srv;
    kn__httpd_dir_job_give(s, j->slot);
    if (!kn__httpd_conn_release(j->c))
        goto out;
    if (status != 0) {
        kn__httpd_respond_error(j->c, 503, NULL, "cancelled; try again");
    } else if (j->rc == KN_ENOENT) {
        kn__httpd_respond_error(j->c, 404, "group", "%s", j->err);
    } else if (j->rc < 0 && !(j->what == W_SHEETS && j->sheets.n > 0)) {
        kn_log(KN_LOG_WARN, "http", "directory job failed", "tenant", j->tenant,
               "error", j->err, NULL);
        kn__httpd_respond_error(j->c, 503, NULL,
                                "Redis failed; nothing was lost: try again");
    } else if (j->what == W_SHEETS) {
        answer_sheets(j);
    } else if (j->what == W_UNREG) {
        kn__httpd_respond_json(j->c, 200, unreg_json(j), NULL);
    } else {
        answer_remind(j);
    }
out:
    job_free(j);
    kn__httpd_srv_unref(s);
}

/* The body's options: an object with only the keys named in allowed
 * (NULL-terminated); -1 after answering 400. */
static int body_opts(struct conn *c, struct sheets_job *j,
                     const char *const *allowed)
{
    json_t *o, *v;
    const char *k;
    char err[300];

    if (kn_buf_len(&c->req.body) == 0)
        return 0;
    if (!kn__httpd_ctype_is(c->req.ctype, "application/json")) {
        kn__httpd_respond_error(c, 415, NULL,
                                "send JSON: Content-Type: application/json");
        return -1;
    }
    o = json_loadb(kn_buf_str(&c->req.body), kn_buf_len(&c->req.body),
                   JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        kn__httpd_respond_error(c, 400, "json",
                                "the body must be a JSON "
                                "object");
        return -1;
    }
    json_object_foreach(o, k, v)
    {
        size_t i;
        for (i = 0; allowed[i] != NULL && strcmp(allowed[i], k) != 0; i++)
            ;
        if (allowed[i] == NULL) {
            char *safe = kn_text_safe(k);
            kn__httpd_respond_error(
                c, 400, "json", "unknown field \"%.60s\" (give %s)", safe,
                j->what == W_SHEETS ? "group, reissue, format"
                                    : "group, dry_run");
            free(safe);
            json_decref(o);
            return -1;
        }
        if (strcmp(k, "group") == 0) {
            if (!json_is_null(v) &&
                (!json_is_string(v) ||
                 kn_label_norm(json_string_value(v), &j->group, err,
                               sizeof(err)) < 0)) {
                kn__httpd_respond_error(c, 400, "group", "group: %s",
                                        json_is_string(v) ? err
                                                          : "give a string");
                json_decref(o);
                return -1;
            }
        } else if (strcmp(k, "format") == 0) {
            const char *f = json_string_value(v);
            if (f == NULL ||
                (strcmp(f, "csv") != 0 && strcmp(f, "html") != 0)) {
                kn__httpd_respond_error(c, 400, "format",
                                        "format: \"html\" (printable "
                                        "pages) or \"csv\" (mail merge)");
                json_decref(o);
                return -1;
            }
            j->csv = strcmp(f, "csv") == 0;
        } else if (!json_is_boolean(v)) {
            kn__httpd_respond_error(c, 400, k, "%s: true or false", k);
            json_decref(o);
            return -1;
        } else if (strcmp(k, "reissue") == 0) {
            j->reissue = json_is_true(v);
        } else {
            j->dry_run = json_is_true(v);
        }
    }
    json_decref(o);
    return 0;
}

static void start(struct conn *c, enum sheets_what what)
{
    static const char *const sheets_keys[] = {"group", "reissue", "format",
                                              NULL};
    static const char *const remind_keys[] = {"group", "dry_run", NULL};
    struct http_srv *s = c->srv;
    const char *tenant = c->req.tok.tenant;
    struct sheets_job *j;
    char err[300];

    if (tenant == NULL || tenant[0] == '\0') {
        kn__httpd_respond_error(c, 403, NULL,
                                "this token has no tenant: use a token or "
                                "session of the school (kairanctl recipients "
                                "sheets|unregistered|remind for operators)");
        return;
    }
    j = kn_xcalloc(1, sizeof(*j));
    j->what = what;
    if (what == W_UNREG) {
        char *g = kn__httpd_query_get(c->req.query, "group");
        if (g == NULL && kn__httpd_query_has(c->req.query, "group")) {
            kn__httpd_respond_error(c, 400, "group", "group: give a name");
            job_free(j);
            return;
        }
        if (g != NULL && kn_label_norm(g, &j->group, err, sizeof(err)) < 0) {
            kn__httpd_respond_error(c, 400, "group", "group: %s", err);
            free(g);
            job_free(j);
            return;
        }
        free(g);
    } else if (body_opts(c, j, what == W_SHEETS ? sheets_keys : remind_keys) <
               0) {
        job_free(j);
        return;
    }
    if (what != W_UNREG && !(what == W_REMIND && j->dry_run) &&
        kn_audit_ready(s->cfg->audit_dir) < 0) {
        kn__httpd_respond_error(c, 503, NULL,
                                "the operation log cannot be written now, so "
                                "nothing was done; try again later");
        job_free(j);
        return;
    }
    if ((j->slot = kn__httpd_dir_job_take(s, tenant)) < 0) {
        json_t *e = json_object();
        json_object_set_new(e, "error",
                            json_string("another directory job (import, "
                                        "sheets) is running; try again in a "
                                        "few seconds"));
        json_object_set_new(e, "field", json_null());
        kn__httpd_respond_json(c, 503, e, "Retry-After: 2\r\n");
        job_free(j);
        return;
    }
    j->srv = s;
    j->c = c;
    j->tenant = kn_xstrdup(tenant);
    s->live++;
    kn__httpd_conn_hold(c);
    if (uv_queue_work(s->d->loop, &j->work, sheets_work, sheets_done) != 0)
        sheets_done(&j->work, -1);
}

void kn__httpd_run_dir_sheets(struct conn *c)
{
    start(c, W_SHEETS);
}

void kn__httpd_run_dir_unreg(struct conn *c)
{
    start(c, W_UNREG);
}

void kn__httpd_run_dir_remind(struct conn *c)
{
    start(c, W_REMIND);
}
