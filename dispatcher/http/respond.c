/*
 * respond.c - writing answers: the status line and the headers every
 * answer carries (no-store, nosniff, a Content-Security-Policy), JSON
 * answers and errors, and the login log line of a request that presented
 * a token, written once with the final status.  No path that holds a
 * secret (a personal link /a/<token>) is ever logged.
 */
#include "dispatcher/http/http_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/kn.h"
#include "common/log.h"
#include "config/config.h"
#include "model/audit.h"
#include "model/gaiji.h"
#include "model/token.h"

/*
 * Paths whose rest is a secret, one row each: a personal link /a/<token>
 * is the guardian's only credential, and an unsubscribe link /u/<token>
 * names the tenant and child and works for 400 days, so no log line may
 * hold either (at log_level = debug every request's path is logged).
 * Queries are never logged at all.
 */
static const char *const secret_paths[] = {"/a/", "/u/"};

/* The path as it may be logged: what follows a secret prefix, wherever
 * it appears (a mistyped "/x/a/<token>" too), becomes "<redacted>".
 * Returns path itself or buf. */
static const char *log_path(const char *path, char *buf, size_t len)
{
    if (path == NULL)
        return "";
    for (size_t i = 0; i < KN_ARRAY_SIZE(secret_paths); i++) {
        const char *p = strstr(path, secret_paths[i]);
        if (p != NULL) {
            snprintf(buf, len, "%.*s%s<redacted>", (int)(p - path), path,
                     secret_paths[i]);
            return buf;
        }
    }
    return path;
}

/* ------------------------------------------------------------ answers */

static void login_log(struct conn *c, int status)
{
    struct req *r = &c->req;
    json_t *j = json_object();
    const char *result = r->auth_result;
    char t[48], lp[256], *line;
    if (strcmp(result, "ok") == 0 && status == 403)
        result = "forbidden";
    json_object_set_new(j, "time",
                        json_string(kn_time_jst(kn_now_ms(), t, sizeof(t))));
    json_object_set_new(
        j, "token", kn__httpd_jstr_or_null(r->tok.id[0] ? r->tok.id : NULL));
    json_object_set_new(
        j, "role",
        kn__httpd_jstr_or_null(r->tok.session ? kn_role_name(r->tok.staff_role)
                               : r->tok.role >= 0 ? kn_role_name(r->tok.role)
                                                  : NULL));
    if (r->tok.login != NULL) /* a staff login or session */
        json_object_set_new(j, "login", kn__httpd_jstr_text(r->tok.login));
    json_object_set_new(j, "tenant",
                        kn__httpd_jstr_or_null(r->tok.tenant && r->tok.tenant[0]
                                                   ? r->tok.tenant
                                                   : NULL));
    json_object_set_new(j, "source", json_string(r->source));
    json_object_set_new(
        j, "method", json_string(http_method_str((enum http_method)r->method)));
    json_object_set_new(j, "path",
                        kn__httpd_jstr_text(log_path(r->path, lp, sizeof(lp))));
    json_object_set_new(j, "result", json_string(result));
    if (r->device != NULL)
        json_object_set_new(j, "device", json_string(r->device));
    json_object_set_new(j, "status", json_integer(status));
    line = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (kn_audit_append(c->srv->cfg->audit_dir, "login.jsonl", line) < 0)
        kn_log(KN_LOG_WARN, "http", "cannot append to the login log", "dir",
               c->srv->cfg->audit_dir, "error", strerror(errno), NULL);
    free(line);
}

static const char *const csp_default =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

/* The page: its script and style come from this origin (no inline code,
 * so no nonce is needed), it talks only to this origin, and it cannot be
 * framed. */
const char *const kn__httpd_csp_page =
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'";

/*
 * Write one answer.  Every answer carries no-store, nosniff and a CSP;
 * extra is more header lines ("Name: value\r\n"...) or NULL.  The login
 * log line of the request is written here, once, with the final status.
 */
void kn__httpd_respond(struct conn *c, int status, const char *ctype,
                       const char *body, size_t len, const char *csp,
                       const char *extra)
{
    struct kn_buf h = KN_BUF_INIT;
    struct wreq *wr;
    uv_buf_t buf;
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    int keep;

    if (c->closed)
        return;
    /* Answered before its body was read (401, 413, 429...): the body
     * is never read, so the connection cannot carry another request. */
    keep = !c->close_after && c->req.keep_alive && c->req.complete &&
           !c->srv->closing && !c->parser.upgrade;
    if (!keep)
        c->close_after = 1;
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    kn_buf_addf(&h,
                "HTTP/1.1 %d %s\r\n"
                "Date: %s\r\n"
                "Content-Type: %s\r\n"
                "Content-Length: %zu\r\n"
                "Cache-Control: no-store\r\n"
                "X-Content-Type-Options: nosniff\r\n"
                "X-Frame-Options: DENY\r\n"
                "Referrer-Policy: no-referrer\r\n"
                "Content-Security-Policy: %s\r\n"
                "%s"
                "Connection: %s\r\n\r\n",
                status, http_status_str((enum http_status)status), date, ctype,
                len, csp ? csp : csp_default, extra ? extra : "",
                keep ? "keep-alive" : "close");
    if (c->req.method != HTTP_HEAD) /* (HEAD itself is answered 405) */
        kn_buf_addn(&h, body, len);
    if (c->req.auth_result != NULL)
        login_log(c, status);
    if (kn_log_enabled(KN_LOG_DEBUG)) {
        char st[8], ms[24], lp[256];
        snprintf(st, sizeof(st), "%d", status);
        snprintf(ms, sizeof(ms), "%lld", (long long)(kn_mono_ms() - c->req.t0));
        kn_log(KN_LOG_DEBUG, "http", "request", "method",
               http_method_str((enum http_method)c->req.method), "path",
               log_path(c->req.path, lp, sizeof(lp)), "status", st, "source",
               c->req.source, "ms", ms, NULL);
    }
    wr = kn_xcalloc(1, sizeof(*wr));
    wr->c = c;
    {
        size_t n;
        wr->data = kn_buf_take(&h, &n);
        buf = uv_buf_init(wr->data, (unsigned)n);
    }
    kn__httpd_conn_hold(c);
    if (uv_write(&wr->w, (uv_stream_t *)&c->tcp, &buf, 1,
                 kn__httpd_on_written) != 0) {
        free(wr->data);
        free(wr);
        c->refs--;
        kn__httpd_conn_close(c);
        return;
    }
    c->writing = 1;
    uv_timer_start(&c->timer, kn__httpd_on_timer,
                   (uint64_t)c->srv->cfg->http_send_timeout_ms, 0);
}

void kn__httpd_respond_json(struct conn *c, int status, json_t *j,
                            const char *extra)
{
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    kn__httpd_respond(c, status, "application/json; charset=utf-8", s,
                      strlen(s), NULL, extra);
    free(s);
}

static void respond_problem(struct conn *c, int status, const char *field,
                            const char *code, const char *fmt, va_list ap)
{
    json_t *j = json_object();
    char msg[1200]; /* a gaiji's reason: Japanese, English, excerpts */
    const char *extra = NULL;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    json_object_set_new(j, "error", kn__httpd_jstr_text(msg));
    json_object_set_new(j, "field", kn__httpd_jstr_or_null(field));
    if (code != NULL)
        json_object_set_new(j, "code", json_string(code));
    if (status == 401)
        extra = "WWW-Authenticate: Bearer realm=\"kairan\"\r\n";
    else if (status == 503)
        extra = "Retry-After: 1\r\n";
    kn__httpd_respond_json(c, status, j, extra);
}

/* {"error": "...", "field": "..."|null} with the status. */
void kn__httpd_respond_error(struct conn *c, int status, const char *field,
                             const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    respond_problem(c, status, field, NULL, fmt, ap);
    va_end(ap);
}

/* The same with "code": what went wrong as a fixed word, by which a page
 * shows the message in its reader's language (the guardians' pages). */
void kn__httpd_respond_coded(struct conn *c, int status, const char *field,
                             const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    respond_problem(c, status, field, code, fmt, ap);
    va_end(ap);
}

int kn__httpd_refuse_gaiji(struct conn *c, const char *s,
                           enum kn_gaiji_kind kind, const char *field,
                           const char *code, const char *field_ja)
{
    char *en, *ja, *ex, *msg;
    size_t at;
    json_t *j;
    if (s == NULL ||
        kn_gaiji_check(s, kind, field, field_ja, &en, &ja, &at, &ex) == 0)
        return 0;
    j = json_object();
    msg = kn_xasprintf("%s (%s)", ja, en);
    json_object_set_new(j, "error", kn__httpd_jstr_text(msg));
    free(msg);
    json_object_set_new(j, "field", json_string(field));
    json_object_set_new(j, "code", json_string(code));
    json_object_set_new(j, "at", json_integer((json_int_t)at));
    json_object_set_new(j, "excerpt", kn__httpd_jstr_or_null(ex));
    kn__httpd_respond_json(c, 400, j, NULL);
    free(en);
    free(ja);
    free(ex);
    return 1;
}
