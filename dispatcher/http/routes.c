/*
 * routes.c - the routing table (one row per route: method, path pattern,
 * roles, rate limit, handler) and the path from a complete head to the
 * handler: the route, the source address's rate (limits.c), the token
 * (auth.c), then the body and the run.
 */
#include "dispatcher/http/http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kn.h"
#include "config/config.h"

/* ------------------------------------------------------------ routing */

#define READERS                                                                \
    (ROLE(KN_ROLE_ADMIN) | ROLE(KN_ROLE_LIMITED_ADMIN) | ROLE(KN_ROLE_OPERATOR))

static const struct route routes[] = {
    {R_PAGE, HTTP_GET, "/", 0, LIM_FILE, kn__httpd_run_page},
    {R_JS, HTTP_GET, "/status.js", 0, LIM_FILE, kn__httpd_run_js},
    {R_CSS, HTTP_GET, "/status.css", 0, LIM_FILE, kn__httpd_run_css},
    {R_FAVICON, HTTP_GET, "/favicon.ico", 0, LIM_FILE, kn__httpd_run_favicon},
    {R_HEALTH, HTTP_GET, "/healthz", 0, LIM_NONE, kn__httpd_run_health},
    {R_METRICS, HTTP_GET, "/metrics",
     ROLE(KN_ROLE_ADMIN) | ROLE(KN_ROLE_OPERATOR), LIM_API,
     kn__httpd_run_metrics},
    {R_QUEUES, HTTP_GET, "/v1/queues", READERS, LIM_API, kn__httpd_run_queues},
    /* The depths of every school together, over 10 minutes: for accounts
     * that see every school (run_history refuses an admin bound to one). */
    {R_HISTORY, HTTP_GET, "/v1/queues/history",
     ROLE(KN_ROLE_ADMIN) | ROLE(KN_ROLE_OPERATOR), LIM_API,
     kn__httpd_run_history},
    {R_BC_LIST, HTTP_GET, "/v1/broadcasts", READERS | ROLE(KN_ROLE_SENDER),
     LIM_API, kn__httpd_run_bc_list},
    {R_BC_SUBMIT, HTTP_POST, "/v1/broadcasts", STAFF | ROLE(KN_ROLE_SENDER),
     LIM_API, kn__httpd_run_bc_submit},
    {R_BC_GET, HTTP_GET, "/v1/broadcasts/{}", STAFF | ROLE(KN_ROLE_SENDER),
     LIM_API, kn__httpd_run_bc_get},
    /* A sender may cancel its own broadcasts (bc_visible decides which). */
    {R_BC_CANCEL, HTTP_POST, "/v1/broadcasts/{}/cancel",
     STAFF | ROLE(KN_ROLE_SENDER), LIM_API, kn__httpd_run_bc_cancel},
    /* Re-send to the not confirmed / not reached (resend.c). */
    {R_BC_RESEND, HTTP_POST, "/v1/broadcasts/{}/resend",
     STAFF | ROLE(KN_ROLE_SENDER), LIM_API, kn__httpd_run_bc_resend},
    {R_BC_RCPTS, HTTP_GET, "/v1/broadcasts/{}/recipients",
     STAFF | ROLE(KN_ROLE_SENDER), LIM_API, kn__httpd_run_bc_rcpts},
    {R_BC_RCPTS_CSV, HTTP_GET, "/v1/broadcasts/{}/recipients.csv",
     STAFF | ROLE(KN_ROLE_SENDER), LIM_API, kn__httpd_run_bc_rcpts_csv},
    {R_ACK_GET, HTTP_GET, "/a/{}", 0, LIM_API, kn__httpd_run_ack_get},
    {R_ACK_POST, HTTP_POST, "/a/{}", 0, LIM_API, kn__httpd_run_ack_post},
    /* Not rate-limited: LINE's few servers carry every user's events;
     * the signature is checked before anything else. */
    {R_LINE_HOOK, HTTP_POST, "/line/webhook", 0, LIM_NONE,
     kn__httpd_run_line_hook},
    /* SendGrid's Event Webhook (issue 18): as the LINE webhook, its own
     * limits; the ECDSA signature is checked before anything else. */
    {R_SG_HOOK, HTTP_POST, "/sendgrid/events", 0, LIM_NONE,
     kn__httpd_run_sg_hook},
    /* Staff sessions (session.c): the login needs no credential but is
     * rate-limited and throttled per account; the others need a session. */
    {R_SESSION_LOGIN, HTTP_POST, "/v1/session", 0, LIM_API,
     kn__httpd_run_login},
    {R_SESSION_END, HTTP_DELETE, "/v1/session", ANYROLE, LIM_API,
     kn__httpd_run_logout},
    {R_SESSION_PASSWORD, HTTP_POST, "/v1/session/password", ANYROLE, LIM_API,
     kn__httpd_run_password},
    {R_SESSION_TOTP, HTTP_POST, "/v1/session/totp", ANYROLE, LIM_API,
     kn__httpd_run_totp},
    {R_SESSION_GET, HTTP_GET, "/v1/session", ANYROLE, LIM_API,
     kn__httpd_run_session_get},
    /* The staff console (console.c): files only, no data. */
    {R_CONSOLE_BARE, HTTP_GET, "/c/{}", 0, LIM_FILE,
     kn__httpd_run_console_bare},
    {R_CONSOLE_INDEX, HTTP_GET, "/c/{}/", 0, LIM_FILE,
     kn__httpd_run_console_index},
    {R_CONSOLE_FILE, HTTP_GET, "/c/{}/{}", 0, LIM_FILE,
     kn__httpd_run_console_file},
    /* The console's 名簿 (roster.c): a tenant's admins only. */
    {R_DIR_IMPORT, HTTP_POST, "/v1/directory/import", STAFF, LIM_API,
     kn__httpd_run_dir_import},
    /* Registration sheets, 未登録, the reminder (sheets.c; issue 15);
     * before /v1/directory/{}, which would take their names. */
    {R_DIR_SHEETS, HTTP_POST, "/v1/directory/sheets", STAFF, LIM_API,
     kn__httpd_run_dir_sheets},
    {R_DIR_UNREG, HTTP_GET, "/v1/directory/unregistered", STAFF, LIM_API,
     kn__httpd_run_dir_unreg},
    {R_DIR_REMIND, HTTP_POST, "/v1/directory/remind", STAFF, LIM_API,
     kn__httpd_run_dir_remind},
    /* The console's 職員 (staff_admin.c): a tenant's admins read, its
     * admins (not limited_admin) change. */
    {R_STAFF_LIST, HTTP_GET, "/v1/staff", STAFF, LIM_API,
     kn__httpd_run_staff_list},
    {R_STAFF_ADD, HTTP_POST, "/v1/staff", STAFF, LIM_API,
     kn__httpd_run_staff_add},
    {R_STAFF_DEACTIVATE, HTTP_POST, "/v1/staff/{}/deactivate", STAFF, LIM_API,
     kn__httpd_run_staff_deactivate},
    {R_STAFF_RESET, HTTP_POST, "/v1/staff/{}/reset", STAFF, LIM_API,
     kn__httpd_run_staff_reset},
    {R_STAFF_ROLE, HTTP_POST, "/v1/staff/{}/role", STAFF, LIM_API,
     kn__httpd_run_staff_role},
    {R_STAFF_GROUPS, HTTP_POST, "/v1/staff/{}/groups", STAFF, LIM_API,
     kn__httpd_run_staff_groups},
    {R_LOGS, HTTP_GET, "/v1/logs/{}", STAFF, LIM_API, kn__httpd_run_logs},
    /* One student of the 名簿 (directory_edit.c). */
    {R_DIR_GET, HTTP_GET, "/v1/directory/{}", STAFF, LIM_API,
     kn__httpd_run_dir_get},
    {R_DIR_PATCH, HTTP_PATCH, "/v1/directory/{}", STAFF, LIM_API,
     kn__httpd_run_dir_patch},
    /* A suppressed e-mail address cleared from the 名簿 (issue 18). */
    {R_SUPP_CLEAR, HTTP_DELETE, "/v1/suppressions/{}", STAFF, LIM_API,
     kn__httpd_run_supp_clear},
    /* The console's 新規連絡 (compose.c, templates.c, preview.c): what a
     * sender may read is narrowed inside (its own groups). */
    {R_GROUPS, HTTP_GET, "/v1/groups", STAFF | ROLE(KN_ROLE_SENDER), LIM_API,
     kn__httpd_run_groups},
    {R_DIRECTORY, HTTP_GET, "/v1/directory", STAFF | ROLE(KN_ROLE_SENDER),
     LIM_API, kn__httpd_run_directory},
    {R_CATEGORIES, HTTP_GET, "/v1/categories", STAFF | ROLE(KN_ROLE_SENDER),
     LIM_API, kn__httpd_run_categories},
    {R_TPL_LIST, HTTP_GET, "/v1/templates", STAFF | ROLE(KN_ROLE_SENDER),
     LIM_API, kn__httpd_run_tpl_list},
    {R_TPL_PUT, HTTP_PUT, "/v1/templates/{}", STAFF | ROLE(KN_ROLE_SENDER),
     LIM_API, kn__httpd_run_tpl_put},
    {R_TPL_DELETE, HTTP_DELETE, "/v1/templates/{}",
     STAFF | ROLE(KN_ROLE_SENDER), LIM_API, kn__httpd_run_tpl_delete},
    {R_BC_PREVIEW, HTTP_POST, "/v1/broadcasts/preview",
     STAFF | ROLE(KN_ROLE_SENDER), LIM_API, kn__httpd_run_bc_preview},
    {R_BC_TEST, HTTP_POST, "/v1/broadcasts/test", STAFF | ROLE(KN_ROLE_SENDER),
     LIM_API, kn__httpd_run_bc_test},
    /* Guardians sign themselves up (register.c): no credential; the
     * sheet's passcode is throttled per ID and address there. */
    {R_REG_PAGE, HTTP_GET, "/r", 0, LIM_FILE, kn__httpd_run_register_page},
    {R_REG_FILE, HTTP_GET, "/r/{}", 0, LIM_FILE, kn__httpd_run_register_file},
    {R_REG_START, HTTP_POST, "/r/start", 0, LIM_API,
     kn__httpd_run_register_start},
    {R_REG_EMAIL, HTTP_POST, "/r/email", 0, LIM_API,
     kn__httpd_run_register_email},
    {R_REG_VERIFY, HTTP_POST, "/r/verify", 0, LIM_API,
     kn__httpd_run_register_verify},
    {R_REG_APP, HTTP_POST, "/r/app", 0, LIM_API, kn__httpd_run_register_app},
    {R_REG_LINE, HTTP_POST, "/r/line", 0, LIM_API, kn__httpd_run_register_line},
    /* The school app: a code from /r/app, then its device credential. */
    {R_DEVICES, HTTP_POST, "/v1/devices", 0, LIM_API, kn__httpd_run_devices},
    /* One child's whole phone numbers, to phone (phones.c). */
    {R_BC_PHONES, HTTP_GET, "/v1/broadcasts/{}/recipients/{}/phones",
     STAFF | ROLE(KN_ROLE_SENDER), LIM_API, kn__httpd_run_bc_phones},
    /* RFC 8058 one-click unsubscribe (issue 16, unsub.c): no token, no
     * CSRF (mail providers post cross-site); rate-limited like /a. */
    {R_UNSUB_GET, HTTP_GET, "/u/{}", 0, LIM_API, kn__httpd_run_unsub_get},
    {R_UNSUB_POST, HTTP_POST, "/u/{}", 0, LIM_API, kn__httpd_run_unsub_post},
    /* The guardian's own page (mypage.c): the link's token in the body. */
    {R_MY_PAGE, HTTP_GET, "/m", 0, LIM_FILE, kn__httpd_run_mypage_page},
    {R_MY_FILE, HTTP_GET, "/m/{}", 0, LIM_FILE, kn__httpd_run_mypage_file},
    {R_MY_VIEW, HTTP_POST, "/m/view", 0, LIM_API, kn__httpd_run_mypage_view},
    {R_MY_SAVE, HTTP_POST, "/m/save", 0, LIM_API, kn__httpd_run_mypage_save},
    {R_MY_CODE, HTTP_POST, "/m/code", 0, LIM_API, kn__httpd_run_mypage_code},
    {R_MY_LINK, HTTP_POST, "/m/link", 0, LIM_API, kn__httpd_run_mypage_link},
};

/*
 * Whether a request of route rt (NULL: none matched) from source may go
 * on, as its rate limit says; else the seconds to wait in *retry.
 */
static int rate_ok(struct http_srv *s, const struct route *rt,
                   const char *source, int *retry)
{
    int lim = rt != NULL ? rt->limited : LIM_API;
    if (lim == LIM_NONE ||
        (rt != NULL && rt->id == R_METRICS && s->cfg->http_metrics_open))
        return 1;
    if (lim == LIM_FILE)
        return kn__httpd_rate_take(&s->rl_file, s->cfg->http_file_rate, source,
                                   retry);
    return kn__httpd_rate_take(&s->rl_api, s->cfg->http_rate, source, retry);
}

/* Does path match pattern?  The {} segment is copied into *param. */
static int path_match(const char *pattern, const char *path, char **param)
{
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (p[0] == '{' && p[1] == '}') {
            size_t n = strcspn(s, "/");
            if (n == 0)
                return 0;
            if (param != NULL) {
                free(*param);
                *param = kn_xstrndup(s, n);
            }
            s += n;
            p += 2;
            continue;
        }
        if (*p != *s)
            return 0;
        p++;
        s++;
    }
    return *p == '\0' && *s == '\0';
}

/* Percent-decode a path; NULL if malformed or if it would hold NUL. */
static char *path_decode(const char *s, size_t n)
{
    char *out = kn_xmalloc(n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        hi = i + 2 < n ? kn_hex_value(s[i + 1]) : -1;
        lo = i + 2 < n ? kn_hex_value(s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            free(out);
            return NULL;
        }
        *o++ = (char)(hi * 16 + lo);
        i += 2;
    }
    *o = '\0';
    return out;
}

static int valid_ip(const char *s)
{
    unsigned char buf[16];
    return uv_inet_pton(AF_INET, s, buf) == 0 ||
           uv_inet_pton(AF_INET6, s, buf) == 0;
}

/* The route of the request's target (r->route NULL: none; r->path NULL:
 * a malformed target).  Called when the head is complete. */
void kn__httpd_route_find(struct conn *c)
{
    struct req *r = &c->req;
    const char *url = kn_buf_str(&r->url);
    const char *q;
    char *abs = NULL;
    size_t plen;

    r->allow[0] = '\0';
    r->route = NULL;
    /* The absolute-form "http://host/path?q", which a server MUST accept
     * (RFC 9112 3.2.2): the authority is ignored, as Host is (kairand
     * routes by path; its links come from http.public_url). */
    if (strncasecmp(url, "http://", 7) == 0 ||
        strncasecmp(url, "https://", 8) == 0) {
        const char *p = strstr(url, "://") + 3;
        p += strcspn(p, "/?");
        if (*p != '/')
            url = abs = kn_xasprintf("/%s", p);
        else
            url = p;
    }
    q = strchr(url, '?');
    plen = q ? (size_t)(q - url) : strlen(url);
    if (url[0] != '/' || (r->path = path_decode(url, plen)) == NULL) {
        free(abs);
        return;
    }
    if (q != NULL)
        r->query = kn_xstrdup(q + 1);
    free(abs);
    for (size_t i = 0; i < KN_ARRAY_SIZE(routes); i++) {
        if (!path_match(routes[i].pattern, r->path, NULL))
            continue;
        if (routes[i].method == r->method) {
            r->route = &routes[i];
            path_match(r->route->pattern, r->path, &r->param);
            break;
        }
        snprintf(r->allow + strlen(r->allow),
                 sizeof(r->allow) - strlen(r->allow), "%s%s",
                 r->allow[0] ? ", " : "",
                 http_method_str((enum http_method)routes[i].method));
    }
}

/* The body is in: run the route. */
void kn__httpd_run_ready(struct conn *c)
{
    c->req.route->run(c);
}

/*
 * Every check passed.  A request without a body runs now; one with a
 * body (paused after its head) reads it now, and runs when it is in.
 */
void kn__httpd_go(struct conn *c)
{
    struct req *r = &c->req;
    if (r->complete || !r->head_paused) {
        kn__httpd_run_ready(c);
        return;
    }
    r->ready = 1;
    c->busy = 0;
    if (r->want_continue)
        kn__httpd_send_continue(c);
    kn__httpd_body_timer(c);
    kn__httpd_resume(c);
}

/*
 * A request whose head is complete (and, without a body, the whole of
 * it): its route (400, 404, 405), its source address's rate (429), its
 * token (401, 403), then go.  An answer given here before a body is read
 * closes the connection: the body is never read or held.
 */
void kn__httpd_dispatch(struct conn *c)
{
    struct http_srv *s = c->srv;
    struct req *r = &c->req;
    const struct route *found = r->route;
    int retry;

    snprintf(r->source, sizeof(r->source), "%s", c->peer);
    /* Behind the documented nginx, the client's address comes in
     * X-Real-IP; only a peer of http.trusted_proxies may set it. */
    if (r->real_ip != NULL && kn__httpd_peer_is_proxy(s, c->peer) &&
        valid_ip(r->real_ip))
        snprintf(r->source, sizeof(r->source), "%s", r->real_ip);
    kn__httpd_source_net(r->source, r->net, sizeof(r->net));
    if (c->parser.upgrade)
        c->close_after = 1;
    if (r->path == NULL) {
        kn__httpd_respond_error(c, 400, NULL, "malformed request target");
        return;
    }
    if (!rate_ok(s, found, r->net, &retry)) {
        char extra[48];
        json_t *j = json_object();
        snprintf(extra, sizeof(extra), "Retry-After: %d\r\n", retry);
        json_object_set_new(j, "error",
                            json_string("too many requests from this "
                                        "address; wait and try again"));
        json_object_set_new(j, "field", json_null());
        kn__httpd_respond_json(c, 429, j, extra);
        return;
    }
    if (found == NULL && r->allow[0] != '\0') {
        char extra[96];
        json_t *j = json_object();
        snprintf(extra, sizeof(extra), "Allow: %s\r\n", r->allow);
        json_object_set_new(j, "error", json_string("method not allowed here"));
        json_object_set_new(j, "field", json_null());
        kn__httpd_respond_json(c, 405, j, extra);
        return;
    }
    if (found == NULL) {
        kn__httpd_respond_error(c, 404, NULL, "no such resource: %s", r->path);
        return;
    }
    if (found->id == R_LINE_HOOK && !kn__httpd_line_admit(c))
        return;
    if (found->id == R_SG_HOOK && !kn__httpd_sg_admit(c))
        return;
    if (found->roles == 0 ||
        (found->id == R_METRICS && s->cfg->http_metrics_open)) {
        kn__httpd_go(c);
        return;
    }
    kn__httpd_auth_start(c);
}
