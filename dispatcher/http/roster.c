/*
 * roster.c - POST /v1/directory/import: a school's class list (CSV) over
 * HTTP, for the console's 名簿 page.  The same file, the same checks and
 * the same writes as "kairanctl recipients import" (queue/roster.c); the
 * work runs on libuv's thread pool with its own synchronous Redis
 * connection (a roster is thousands of rows: parsing, sealing and hashing
 * them must not hold the loop), one import at a time per process.
 *
 * Query: dry_run=1 (check and count, write nothing), skip_bad=1 (write the
 * good rows even if some are bad), replace=1 (delete the stored ids the
 * file does not name), ignore_column=NAME (repeatable) or ignore_unknown=1
 * (leave those columns out).  The answer (docs/http-api.md):
 *   {"dry_run", "written", "encoding", "rows", "added", "updated",
 *    "unchanged", "deleted", "skipped", "no_contact" (students without
 *    e-mail, LINE or app: they need a registration sheet), "bad_rows":
 * [{"line", "row", "reason", "reason_ja"}], "bad_rows_more",
 * "header_problems": [{"line", "row", "reason", "reason_ja"}],
 * "unknown_columns": [{"name", "column" (1-based), "letter" (as a
 * spreadsheet names it: "AA")}], "error", "error_ja"}: 200 for a dry run
 * that could read the rows and for a write; 422 when the file cannot be
 * written as asked (nothing was written).  Every reason is in
 * English ("reason", "error", "decode_error": what kairanctl prints) and
 * in Japanese for the school's office ("reason_ja", "error_ja",
 * "decode_error_ja": the row as a spreadsheet shows it, "row", and the
 * column as the file's header names it), as the suppressions' reasons are.
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
#include "common/utf8.h"
#include "model/audit.h"
#include "model/token.h"
#include "queue/roster.h"
#include "dispatcher/http/http_int.h"

struct import_job {
    uv_work_t work;
    struct http_srv *srv;
    struct conn *c;
    struct kn_roster_opts o;
    char *ignore[KN_ROSTER_MAX_IGNORE];
    char *tenant;
    char *raw; /* the body, copied */
    size_t rawlen;
    int dry_run;
    struct kn_roster *ro;
    int rc;   /* kn_roster_apply's, or KN_ECLOSED without a connection */
    int slot; /* kn__httpd_dir_job_take's */
    char err[400];
};

static void job_free(struct import_job *j)
{
    for (size_t i = 0; i < j->o.nignore; i++)
        free(j->ignore[i]);
    kn_roster_free(j->ro);
    if (j->raw != NULL) {
        memset(j->raw, 0, j->rawlen); /* personal data */
        free(j->raw);
    }
    free(j->tenant);
    free(j);
}

static void import_work(uv_work_t *w)
{
    struct import_job *j = kn_container_of(w, struct import_job, work);
    redisContext *rc;
    kn_roster_check(j->raw, j->rawlen, &j->o, &j->ro);
    memset(j->raw, 0, j->rawlen);
    free(j->raw);
    j->raw = NULL;
    if (j->ro->stop == KN_ROSTER_DECODE || j->ro->stop == KN_ROSTER_EMPTY ||
        j->ro->stop == KN_ROSTER_HEADER || j->ro->stop == KN_ROSTER_TOO_MANY)
        return; /* no rows to compare */
    if (!j->dry_run && j->ro->stop != KN_ROSTER_OK)
        return;
    rc = kn__redis_sync(j->srv->cfg);
    if (rc == NULL) {
        j->rc = KN_ECLOSED;
        snprintf(j->err, sizeof(j->err), "Redis is not reachable");
        return;
    }
    j->rc = kn_roster_apply(rc, j->srv->d->prefix, j->srv->d->kr, j->ro,
                            j->dry_run, j->err, sizeof(j->err));
    redisFree(rc);
}

static json_t *problems(const struct kn_roster_problem *p, size_t n,
                        int unknown)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        if ((p[i].unknown != NULL) != unknown)
            continue;
        if (unknown)
            json_array_append_new(
                a, json_pack("{s:s, s:I, s:s}", "name", p[i].unknown, "column",
                             (json_int_t)p[i].column, "letter", p[i].letter));
        else
            json_array_append_new(
                a, json_pack("{s:I, s:I, s:s, s:s}", "line",
                             (json_int_t)p[i].line, "row", (json_int_t)p[i].row,
                             "reason", p[i].text, "reason_ja", p[i].text_ja));
    }
    return a;
}

/* The answer's error: what stopped the file, and what to do about it, in
 * English (ja 0) or in Japanese for the school's office (ja 1). */
static const char *stop_reason(const struct kn_roster *ro, int dry_run, int ja)
{
    switch (ro->stop) {
    case KN_ROSTER_DECODE:
        return ja ? "ファイルの文字コードが読み取れません。Excel で「CSV "
                    "UTF-8」か「CSV」を選んで保存し直してください。"
                  : "the file is neither UTF-8 nor CP932 (Excel's "
                    "Japanese): save it again as CSV";
    case KN_ROSTER_EMPTY:
        return ja ? "ファイルが空です。1行目に見出し（ID、氏名、メール"
                    "アドレスなど）を入れてください。"
                  : "empty file: the first line must name the columns (id, "
                    "name, email, ...)";
    case KN_ROSTER_HEADER:
        if (ro->nheader > 0 && ro->header[0].unknown != NULL)
            return ja ? "名簿の項目ではない列があります。列名のつづりを確かめ"
                        "るか、その列を無視して取り込んでください。"
                      : "unknown columns: check their spelling, or leave "
                        "them out (ignore_column=NAME, or ignore_unknown=1)";
        return ja ? "1行目（見出し）に誤りがあります。何も反映していません。"
                  : "the first line (the column names) has problems";
    case KN_ROSTER_BAD_ROWS:
        if (dry_run)
            return NULL;
        return ja ? "誤りのある行があるため、何も反映していません。誤りを直"
                    "すか、正しい行だけを反映してください。"
                  : "bad rows: nothing written; fix them, or write only "
                    "the good ones (skip_bad=1)";
    case KN_ROSTER_NO_GOOD:
        if (ro->nrows == 0)
            return ja ? "見出しの下に行がありません。何も反映していません。"
                      : "no rows under the header: nothing written";
        return ja ? "正しい行が 1 行もありません。何も反映していません。"
                  : "no good row: nothing written";
    case KN_ROSTER_TOO_MANY:
        return ja ? "行が多すぎます（250,000 行まで）。何も反映していません。"
                    "学年やクラスごとにファイルを分けて、1 つずつ取り込んで"
                    "ください。"
                  : "more than 250,000 rows: nothing written; split the "
                    "file (by grade or by class) and import each part, or "
                    "use kairanctl recipients import";
    default:
        return NULL;
    }
}

/* The operation log line of a write (model/audit.h). */
static void audit_import(struct conn *c, const struct kn_roster *ro,
                         const char *tenant, int replace)
{
    json_t *j = json_object();
    char *actor = kn_xasprintf("token:%s", c->req.tok.id);
    json_object_set_new(j, "tenant", json_string(tenant));
    json_object_set_new(j, "added", json_integer(ro->added));
    json_object_set_new(j, "updated", json_integer(ro->updated));
    json_object_set_new(j, "unchanged", json_integer(ro->unchanged));
    json_object_set_new(j, "deleted", json_integer(ro->deleted));
    json_object_set_new(j, "skipped", json_integer((json_int_t)ro->nbad));
    json_object_set_new(j, "replace", json_boolean(replace));
    json_object_set_new(j, "token", json_string(c->req.tok.id));
    json_object_set_new(j, "role", json_string(kn_role_name(c->req.tok.role)));
    if (c->req.tok.login != NULL)
        json_object_set_new(j, "login", kn__httpd_jstr_text(c->req.tok.login));
    json_object_set_new(j, "source", json_string(c->req.source));
    json_object_set_new(j, "via", json_string("http"));
    if (kn_audit_op(c->srv->cfg->audit_dir, actor, "recipients.import", j) < 0)
        kn_log(KN_LOG_WARN, "http", "cannot append to the operation log", "dir",
               c->srv->cfg->audit_dir, "error", strerror(errno), NULL);
    free(actor);
}

static void import_answer(struct import_job *j)
{
    struct conn *c = j->c;
    const struct kn_roster *ro = j->ro;
    const char *why = stop_reason(ro, j->dry_run, 0);
    int written = !j->dry_run && j->rc == 0 && ro->stop == KN_ROSTER_OK;
    json_t *a;

    if (j->rc == KN_ECLOSED || j->rc == KN_EREDIS) {
        kn_log(KN_LOG_WARN, "http", "roster import failed", "tenant", j->tenant,
               "error", j->err, NULL);
        kn__httpd_respond_error(c, 503, NULL,
                                "Redis failed during the import; the rows "
                                "written are complete ones: send the same "
                                "file again");
        return;
    }
    a = json_object();
    json_object_set_new(a, "dry_run", json_boolean(j->dry_run));
    json_object_set_new(a, "written", json_boolean(written));
    json_object_set_new(a, "encoding",
                        ro->stop == KN_ROSTER_DECODE
                            ? json_null()
                            : json_string(kn_csv_enc_name(ro->enc)));
    json_object_set_new(a, "rows", json_integer((json_int_t)ro->nrows));
    json_object_set_new(a, "added", json_integer(ro->added));
    json_object_set_new(a, "updated", json_integer(ro->updated));
    json_object_set_new(a, "unchanged", json_integer(ro->unchanged));
    json_object_set_new(a, "deleted", json_integer(ro->deleted));
    json_object_set_new(a, "skipped", json_integer((json_int_t)ro->nbad));
    json_object_set_new(a, "no_contact",
                        json_integer((json_int_t)ro->nocontact));
    json_object_set_new(a, "bad_rows", problems(ro->bad, ro->nbad_shown, 0));
    json_object_set_new(a, "bad_rows_more",
                        json_integer((json_int_t)(ro->nbad - ro->nbad_shown)));
    json_object_set_new(a, "header_problems",
                        problems(ro->header, ro->nheader, 0));
    json_object_set_new(a, "unknown_columns",
                        problems(ro->header, ro->nheader, 1));
    json_object_set_new(a, "header_problems_more",
                        json_integer((json_int_t)ro->header_more));
    if (ro->stop == KN_ROSTER_DECODE) {
        const char *e = ro->decode_err;
        json_object_set_new(a, "decode_error", kn__httpd_jstr_text(e));
        json_object_set_new(a, "decode_error_ja",
                            kn__httpd_jstr_text(ro->decode_err_ja));
    }
    if (ro->held_back)
        json_object_set_new(a, "replace_held_back_line",
                            json_integer(ro->held_back_line));
    json_object_set_new(a, "error", kn__httpd_jstr_or_null(why));
    json_object_set_new(a, "error_ja",
                        kn__httpd_jstr_or_null(stop_reason(ro, j->dry_run, 1)));
    if (written)
        audit_import(c, ro, j->tenant, j->o.replace);
    kn__httpd_respond_json(c, why != NULL ? 422 : 200, a, NULL);
}

static void import_done(uv_work_t *w, int status)
{
    struct import_job *j = kn_container_of(w, struct import_job, work);
    struct http_srv *s = j->srv;
    kn__httpd_dir_job_give(s, j->slot);
    if (kn__httpd_conn_release(j->c)) {
        if (status != 0 || j->ro == NULL)
            kn__httpd_respond_error(j->c, 503, NULL,
                                    "the import was cancelled; try again");
        else
            import_answer(j);
    }
    job_free(j);
    kn__httpd_srv_unref(s);
}

/* A yes/no query flag: absent or 0 is no, 1 is yes; *bad on anything
 * else. */
static int flag(const char *q, const char *name, int *bad)
{
    char *v = kn__httpd_query_get(q, name);
    int on = 0;
    if (v == NULL) {
        if (kn__httpd_query_has(q, name))
            *bad = 1;
        return 0;
    }
    if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0)
        on = 1;
    else if (strcmp(v, "0") != 0 && strcmp(v, "false") != 0)
        *bad = 1;
    free(v);
    return on;
}

/* The ignore_column=NAME parameters into j; -1 after answering 400. */
static int ignore_columns(struct conn *c, struct import_job *j)
{
    const char *q = c->req.query;
    static const char name[] = "ignore_column";
    while (q != NULL && *q) {
        if (strncmp(q, name, sizeof(name) - 1) == 0 &&
            (q[sizeof(name) - 1] == '=' || q[sizeof(name) - 1] == '&' ||
             q[sizeof(name) - 1] == '\0')) {
            char *v = kn__httpd_query_get(q, name);
            if (v == NULL || v[0] == '\0' || strlen(v) > 256 ||
                !kn_utf8_valid(v, strlen(v))) {
                free(v);
                kn__httpd_respond_error(c, 400, "ignore_column",
                                        "ignore_column: give a column name "
                                        "of the file's first line (1-256 "
                                        "bytes of UTF-8)");
                return -1;
            }
            if (j->o.nignore == KN_ROSTER_MAX_IGNORE) {
                free(v);
                kn__httpd_respond_error(c, 400, "ignore_column",
                                        "ignore_column: at most %d columns; "
                                        "use ignore_unknown=1",
                                        KN_ROSTER_MAX_IGNORE);
                return -1;
            }
            j->ignore[j->o.nignore++] = v;
        }
        q = strchr(q, '&');
        if (q != NULL)
            q++;
    }
    j->o.ignore = (const char *const *)j->ignore;
    return 0;
}

void kn__httpd_run_dir_import(struct conn *c)
{
    struct http_srv *s = c->srv;
    struct import_job *j;
    const char *tenant = c->req.tok.tenant;
    int bad = 0;

    if (tenant == NULL || tenant[0] == '\0') {
        kn__httpd_respond_error(c, 403, NULL,
                                "this token has no tenant: a roster is "
                                "imported with a token or session of the "
                                "school (kairanctl recipients import for "
                                "operators)");
        return;
    }
    /* text/csv, any charset parameter: the bytes decide, as for a file */
    if (!kn__httpd_ctype_is(c->req.ctype, "text/csv")) {
        kn__httpd_respond_error(c, 415, NULL,
                                "send the file as Content-Type: text/csv");
        return;
    }
    j = kn_xcalloc(1, sizeof(*j));
    j->dry_run = flag(c->req.query, "dry_run", &bad);
    j->o.skip_bad = flag(c->req.query, "skip_bad", &bad);
    j->o.replace = flag(c->req.query, "replace", &bad);
    j->o.ignore_unknown = flag(c->req.query, "ignore_unknown", &bad);
    if (bad) {
        kn__httpd_respond_error(c, 400, NULL,
                                "dry_run, skip_bad, replace and "
                                "ignore_unknown take 1 or 0");
        job_free(j);
        return;
    }
    if (ignore_columns(c, j) < 0) {
        job_free(j);
        return;
    }
    if (kn_buf_len(&c->req.body) == 0) {
        kn__httpd_respond_error(c, 400, NULL,
                                "empty body: send the CSV file as the body");
        job_free(j);
        return;
    }
    if (!j->dry_run && kn_audit_ready(s->cfg->audit_dir) < 0) {
        kn__httpd_respond_error(c, 503, NULL,
                                "the operation log cannot be written now, so "
                                "nothing was changed; try again later");
        job_free(j);
        return;
    }
    if ((j->slot = kn__httpd_dir_job_take(s, tenant)) < 0) {
        json_t *e = json_object();
        json_object_set_new(e, "error",
                            json_string("another roster import is running; "
                                        "try again in a few seconds"));
        json_object_set_new(e, "field", json_null());
        kn__httpd_respond_json(c, 503, e, "Retry-After: 2\r\n");
        job_free(j);
        return;
    }
    j->srv = s;
    j->c = c;
    j->tenant = kn_xstrdup(tenant);
    j->o.tenant = j->tenant;
    j->o.max_rows = KN_ROSTER_HTTP_MAX_ROWS;
    j->rawlen = kn_buf_len(&c->req.body);
    j->raw = kn_xmalloc(j->rawlen + 1);
    memcpy(j->raw, kn_buf_str(&c->req.body), j->rawlen);
    j->raw[j->rawlen] = '\0';
    s->live++;
    kn__httpd_conn_hold(c);
    if (uv_queue_work(s->d->loop, &j->work, import_work, import_done) != 0)
        import_done(&j->work, -1);
}
