/*
 * staff_admin.c - the console's 職員 page: a tenant's staff accounts
 * (GET/POST /v1/staff, POST /v1/staff/{login}/deactivate|reset|role|groups)
 * and its logs (GET /v1/logs/operations, GET /v1/logs/logins).
 *
 * The account changes are those of "kairanctl staff" (queue/staff.h: the
 * same records, the same rules, the same operation-log lines with
 * "via": "http"); they and the log reads run on libuv's thread pool with
 * their own synchronous Redis connection (an initial password is an
 * Argon2id hash: never on the loop; counted with the logins' hashes
 * against HASH_MAX).  Who: a tenant's admin and limited_admin read; only
 * an admin changes accounts (SECURITY-PROMISES.md row 4: only
 * administrators reset credentials), and never so that it locks itself
 * out (its own deactivation or its own role dropped: 409).  An initial
 * password is in the answer once, never in a log.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "common/buf.h"
#include "common/kn.h"
#include "common/log.h"
#include "dispatcher/http/http_int.h"
#include "model/audit.h"
#include "model/broadcast.h"
#include "model/gaiji.h"
#include "model/session.h"
#include "model/token.h"
#include "queue/keys.h"
#include "queue/staff.h"

#define LOG_LIMIT_MAX 500        /* lines in one answer */
#define LOG_LINE_MAX  65536      /* a longer line is skipped */
#define LOG_SCAN_MAX  (8L << 20) /* bytes read for one answer */
#define LOG_READS_MAX 2          /* log reads at once, all tenants */

enum op {
    OP_LIST,
    OP_ADD,
    OP_DEACTIVATE,
    OP_RESET,
    OP_ROLE,
    OP_GROUPS,
    OP_LOG
};

struct job {
    uv_work_t work;
    struct http_srv *srv;
    struct conn *c;
    enum op op;
    int hashes; /* counted in srv->hashing */
    char *tenant, *login, *name, *role, *groups;
    char pw[21];
    int rc;
    const char *why; /* a refusal found by the work (409) */
    json_t *answer;
    /* OP_LOG */
    char *file, *from, *to, *person;
    long long cursor, next;
    int limit;
};

static void job_free(struct job *j)
{
    memset(j->pw, 0, sizeof(j->pw));
    free(j->tenant);
    free(j->login);
    free(j->name);
    free(j->role);
    free(j->groups);
    free(j->file);
    free(j->from);
    free(j->to);
    free(j->person);
    if (j->answer != NULL)
        json_decref(j->answer);
    free(j);
}

/* An admin of the tenant (a session's own role, or a token's). */
static int is_admin(const struct conn *c)
{
    return c->req.tok.session ? c->req.tok.staff_role == KN_ROLE_ADMIN
                              : c->req.tok.role == KN_ROLE_ADMIN;
}

/* The tenant of the request, or NULL after answering 403. */
static const char *tenant_of(struct conn *c)
{
    const char *t = c->req.tok.tenant;
    if (t == NULL || t[0] == '\0') {
        kn__httpd_respond_error(c, 403, NULL,
                                "this token has no tenant: staff and logs "
                                "are a school's, seen with its own token or "
                                "session");
        return NULL;
    }
    return t;
}

/* ---------------------------------------------------------- the work */

static const char *hstr(const redisReply *r, size_t i)
{
    return r != NULL && r->type == REDIS_REPLY_ARRAY && i < r->elements &&
                   r->element[i]->type == REDIS_REPLY_STRING
               ? r->element[i]->str
               : "";
}

static int cmp_login(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* groups "a,b" as a JSON array. */
static json_t *groups_array(const char *s)
{
    json_t *a = json_array();
    while (s != NULL && *s) {
        size_t n = strcspn(s, ",");
        if (n > 0)
            json_array_append_new(a, json_stringn(s, n));
        s += n;
        if (*s == ',')
            s++;
    }
    return a;
}

static int work_list(redisContext *rc, struct job *j)
{
    const char *prefix = j->srv->d->prefix;
    char *k = kn_key_staffs(prefix, j->tenant), **logins;
    redisReply *r = redisCommand(rc, "SMEMBERS %s", k);
    json_t *arr = json_array();
    size_t n;
    free(k);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        if (r != NULL)
            freeReplyObject(r);
        json_decref(arr);
        return KN_EIO;
    }
    n = r->elements;
    logins = kn_xcalloc(n + 1, sizeof(*logins));
    for (size_t i = 0; i < n; i++)
        logins[i] = r->element[i]->str;
    qsort(logins, n, sizeof(*logins), cmp_login);
    for (size_t i = 0; i < n; i++) {
        redisReply *h;
        json_t *x;
        k = kn_key_staff(prefix, j->tenant, logins[i]);
        h = redisCommand(rc,
                         "HMGET %s role name groups active must_change totp "
                         "created_ms",
                         k);
        free(k);
        if (h == NULL)
            break;
        x = json_object();
        json_object_set_new(x, "login", json_string(logins[i]));
        json_object_set_new(x, "role", kn__httpd_jstr_text(hstr(h, 0)));
        json_object_set_new(x, "name", kn__httpd_jstr_text(hstr(h, 1)));
        json_object_set_new(x, "groups", groups_array(hstr(h, 2)));
        json_object_set_new(
            x, "state",
            json_string(strcmp(hstr(h, 3), "1") != 0   ? "deactivated"
                        : strcmp(hstr(h, 4), "1") == 0 ? "new"
                                                       : "active"));
        json_object_set_new(x, "totp", json_boolean(hstr(h, 5)[0] != '\0'));
        json_object_set_new(x, "created", kn__httpd_jtime(atoll(hstr(h, 6))));
        json_array_append_new(arr, x);
        freeReplyObject(h);
    }
    free(logins);
    freeReplyObject(r);
    j->answer = json_pack("{s:o}", "staff", arr);
    return 0;
}

/* The account's role now (heap), or NULL. */
static char *role_now(redisContext *rc, struct job *j)
{
    char *k = kn_key_staff(j->srv->d->prefix, j->tenant, j->login);
    redisReply *r = redisCommand(rc, "HGET %s role", k);
    char *role = NULL;
    free(k);
    if (r != NULL && r->type == REDIS_REPLY_STRING)
        role = kn_xstrdup(r->str);
    if (r != NULL)
        freeReplyObject(r);
    return role;
}

/* 1 if the tenant has another active admin than j->login. */
static int other_admin(redisContext *rc, struct job *j)
{
    const char *prefix = j->srv->d->prefix;
    char *k = kn_key_staffs(prefix, j->tenant);
    redisReply *r = redisCommand(rc, "SMEMBERS %s", k);
    int found = 0;
    free(k);
    for (size_t i = 0;
         r != NULL && r->type == REDIS_REPLY_ARRAY && i < r->elements && !found;
         i++) {
        redisReply *h;
        if (strcmp(r->element[i]->str, j->login) == 0)
            continue;
        k = kn_key_staff(prefix, j->tenant, r->element[i]->str);
        h = redisCommand(rc, "HMGET %s role active", k);
        free(k);
        found =
            strcmp(hstr(h, 0), "admin") == 0 && strcmp(hstr(h, 1), "1") == 0;
        if (h != NULL)
            freeReplyObject(h);
    }
    if (r != NULL)
        freeReplyObject(r);
    return found;
}

/*
 * One log file from byte j->cursor: the lines of j->tenant whose JST date
 * is within [from, to] and whose login (or token) is person, at most
 * limit of them; reading stops after LOG_SCAN_MAX bytes (next_cursor says
 * where to go on), so one answer costs bounded memory and time.
 */
static int work_log(struct job *j)
{
    char *path = kn_xasprintf("%s/%s", j->srv->cfg->audit_dir, j->file);
    FILE *f = fopen(path, "r");
    char *buf = kn_xmalloc(LOG_LINE_MAX + 2);
    json_t *lines = json_array();
    long long off = j->cursor, scanned = 0;
    int n = 0, skipping = 0;

    free(path);
    j->next = -1;
    /* A cursor is where a line starts: never inside another's line. */
    if (f != NULL && off > 0 &&
        (fseeko(f, (off_t)(off - 1), SEEK_SET) != 0 || fgetc(f) != '\n')) {
        fclose(f);
        free(buf);
        json_decref(lines);
        j->why = "cursor: give the next_cursor of the previous page";
        return 0;
    }
    if (f == NULL || fseeko(f, (off_t)off, SEEK_SET) != 0) {
        if (f != NULL)
            fclose(f);
        free(buf);
        j->answer = json_pack("{s:o, s:n}", "lines", lines, "next_cursor");
        return errno == ENOENT || f != NULL ? 0 : KN_EIO;
    }
    while (fgets(buf, LOG_LINE_MAX + 2, f) != NULL) {
        size_t len = strlen(buf);
        int whole = len > 0 && buf[len - 1] == '\n';
        json_t *x;
        const char *tenant, *time, *login, *token, *by;
        off += (long long)len;
        scanned += (long long)len;
        if (skipping || !whole) {
            skipping = !whole; /* the rest of a line too long */
            continue;
        }
        x = json_loadb(buf, len, 0, NULL);
        tenant = json_string_value(json_object_get(x, "tenant"));
        time = json_string_value(json_object_get(x, "time"));
        login = json_string_value(json_object_get(x, "login"));
        token = json_string_value(json_object_get(x, "token"));
        by = json_string_value(json_object_get(x, "by"));
        if (x != NULL && tenant != NULL && strcmp(tenant, j->tenant) == 0 &&
            time != NULL && strlen(time) >= 10 &&
            (j->from == NULL || strncmp(time, j->from, 10) >= 0) &&
            (j->to == NULL || strncmp(time, j->to, 10) <= 0) &&
            (j->person == NULL ||
             (login != NULL && strcmp(login, j->person) == 0) ||
             (token != NULL && strcmp(token, j->person) == 0) ||
             (by != NULL && strcmp(by, j->person) == 0))) {
            json_array_append_new(lines, x);
            x = NULL;
            n++;
        }
        if (x != NULL)
            json_decref(x);
        if (n >= j->limit || scanned >= LOG_SCAN_MAX) {
            int c = fgetc(f);
            if (c != EOF)
                j->next = off;
            break;
        }
    }
    fclose(f);
    free(buf);
    j->answer = json_pack("{s:o, s:o}", "lines", lines, "next_cursor",
                          j->next >= 0 ? json_integer(j->next) : json_null());
    return 0;
}

static void staff_work(uv_work_t *w)
{
    struct job *j = kn_container_of(w, struct job, work);
    const char *prefix = j->srv->d->prefix;
    redisContext *rc;
    char *was;

    if (j->op == OP_LOG) {
        j->rc = work_log(j);
        return;
    }
    rc = kn__redis_sync(j->srv->cfg);
    if (rc == NULL) {
        j->rc = KN_EIO;
        return;
    }
    switch (j->op) {
    case OP_LIST:
        j->rc = work_list(rc, j);
        break;
    case OP_ADD:
        j->rc = kn_staff_add(rc, prefix, j->tenant, j->login, j->name, j->role,
                             j->groups, j->pw);
        break;
    case OP_DEACTIVATE:
        j->rc = kn_staff_deactivate(rc, prefix, j->tenant, j->login);
        break;
    case OP_RESET:
        j->rc = kn_staff_reset(rc, prefix, j->tenant, j->login, j->pw);
        break;
    case OP_ROLE:
    case OP_GROUPS:
        was = role_now(rc, j);
        if (was == NULL) {
            j->rc = KN_ENOENT;
        } else if (j->op == OP_GROUPS && strcmp(was, "sender") != 0) {
            j->why = "groups are a sender's: this account is not a sender "
                     "(change its role with /role)";
        } else if (strcmp(was, "admin") == 0 && j->op == OP_ROLE &&
                   strcmp(j->role, "admin") != 0 && !other_admin(rc, j)) {
            j->why = "this is the school's last active admin: make another "
                     "account admin first";
        } else {
            if (j->op == OP_GROUPS)
                j->role = kn_xstrdup(was);
            j->rc = kn_staff_set_role(rc, prefix, j->tenant, j->login, j->role,
                                      j->groups);
        }
        free(was);
        break;
    default:
        break;
    }
    redisFree(rc);
}

/* ---------------------------------------------------------- answers */

static const char *const op_names[] = {
    [OP_ADD] = "staff.add",       [OP_DEACTIVATE] = "staff.deactivate",
    [OP_RESET] = "staff.reset",   [OP_ROLE] = "staff.role",
    [OP_GROUPS] = "staff.groups",
};

/* The operation-log line, the fields kairanctl staff writes and the
 * token's (model/audit.h). */
static void audit_staff(struct conn *c, const struct job *j)
{
    json_t *f = json_object();
    char *actor = kn_xasprintf("token:%s", c->req.tok.id);
    json_object_set_new(f, "tenant", json_string(j->tenant));
    json_object_set_new(f, "login", json_string(j->login));
    if (j->op == OP_ADD || j->op == OP_ROLE)
        json_object_set_new(f, "role", json_string(j->role));
    json_object_set_new(f, "via", json_string("http"));
    json_object_set_new(f, "token", json_string(c->req.tok.id));
    if (c->req.tok.login != NULL)
        json_object_set_new(f, "by", kn__httpd_jstr_text(c->req.tok.login));
    json_object_set_new(f, "source", json_string(c->req.source));
    if (kn_audit_op(c->srv->cfg->audit_dir, actor, op_names[j->op], f) < 0)
        kn_log(KN_LOG_WARN, "http", "cannot append to the operation log", "dir",
               c->srv->cfg->audit_dir, "error", strerror(errno), NULL);
    free(actor);
}

static void staff_answer(struct job *j)
{
    struct conn *c = j->c;
    json_t *a;
    if (j->why != NULL) {
        kn__httpd_respond_error(c, j->op == OP_LOG ? 400 : 409,
                                j->op == OP_LOG ? "cursor" : NULL, "%s",
                                j->why);
        return;
    }
    if (j->rc == KN_ENOENT) {
        kn__httpd_respond_error(c, 404, "login", "no staff account %s here",
                                j->login);
        return;
    }
    if (j->rc == KN_EEXIST) {
        kn__httpd_respond_error(
            c, 409, "login", "the login %s is taken: choose another", j->login);
        return;
    }
    if (j->rc < 0) {
        kn__httpd_respond_error(c, 503, NULL,
                                "Redis or the log directory failed; try "
                                "again");
        return;
    }
    if (j->op == OP_LIST || j->op == OP_LOG) {
        a = j->answer;
        j->answer = NULL;
        kn__httpd_respond_json(c, 200, a, NULL);
        return;
    }
    audit_staff(c, j);
    a = json_pack("{s:s}", "login", j->login);
    if (j->op == OP_ADD || j->op == OP_RESET)
        json_object_set_new(a, "password", json_string(j->pw));
    if (j->op == OP_DEACTIVATE)
        json_object_set_new(a, "state", json_string("deactivated"));
    if (j->op == OP_ROLE || j->op == OP_GROUPS) {
        json_object_set_new(a, "role", json_string(j->role));
        json_object_set_new(a, "groups", groups_array(j->groups));
    }
    kn__httpd_respond_json(c, j->op == OP_ADD ? 201 : 200, a, NULL);
}

static void staff_done(uv_work_t *w, int status)
{
    struct job *j = kn_container_of(w, struct job, work);
    struct http_srv *s = j->srv;
    if (j->hashes) {
        s->hashing--;
        kn__httpd_hash_next(s);
    }
    if (j->op == OP_LOG)
        s->log_reads--;
    if (kn__httpd_conn_release(j->c)) {
        if (status != 0)
            kn__httpd_respond_error(j->c, 503, NULL, "cancelled; try again");
        else
            staff_answer(j);
    }
    job_free(j);
    kn__httpd_srv_unref(s);
}

/* The thread pool's share for this kind of job is taken: 503, and j goes. */
static void busy(struct conn *c, struct job *j, const char *why)
{
    kn__httpd_respond_json(c, 503,
                           json_pack("{s:s, s:n}", "error", why, "field"),
                           "Retry-After: 1\r\n");
    job_free(j);
}

static void start(struct conn *c, struct job *j)
{
    struct http_srv *s = c->srv;
    /* A log read scans up to LOG_SCAN_MAX on the thread pool, which the
     * SMTP lookups and file writes share: LOG_READS_MAX at once, from
     * every school together (32 at once slowed other schools' logins to
     * 1.4 s). */
    if (j->op == OP_LOG && s->log_reads >= LOG_READS_MAX) {
        busy(c, j, "busy reading the logs; try again in a second");
        return;
    }
    if (j->op == OP_LOG)
        s->log_reads++;
    j->hashes = j->op == OP_ADD || j->op == OP_RESET;
    if (j->hashes && s->hashing >= HASH_MAX) {
        busy(c, j, "busy hashing passwords; try again in a second");
        return;
    }
    if (j->hashes)
        s->hashing++;
    j->srv = s;
    j->c = c;
    s->live++;
    kn__httpd_conn_hold(c);
    if (uv_queue_work(s->d->loop, &j->work, staff_work, staff_done) != 0)
        staff_done(&j->work, -1);
}

/* ---------------------------------------------------------- requests */

static json_t *json_body(struct conn *c)
{
    const char *ct = c->req.ctype;
    json_t *b;
    if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0) {
        kn__httpd_respond_error(c, 415, NULL,
                                "send JSON (Content-Type: application/json)");
        return NULL;
    }
    b = json_loadb(kn_buf_str(&c->req.body), kn_buf_len(&c->req.body),
                   JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(b)) {
        json_decref(b);
        kn__httpd_respond_error(c, 400, NULL, "the body must be a JSON object");
        return NULL;
    }
    return b;
}

/*
 * role and groups of a body into j: role one of admin, limited_admin,
 * sender, operator; groups (an array of names) for a sender only, and a
 * sender needs one.  need_role 0: groups only.  -1 after answering 400.
 */
static int role_groups(struct conn *c, json_t *b, struct job *j, int need_role)
{
    json_t *g = json_object_get(b, "groups");
    const char *role = json_string_value(json_object_get(b, "role"));
    struct kn_buf s = KN_BUF_INIT;
    int r;
    if (need_role) {
        if (role == NULL || kn_role_parse(role) < 0) {
            kn__httpd_respond_error(c, 400, "role",
                                    "role: admin, limited_admin, sender or "
                                    "operator");
            return -1;
        }
        j->role = kn_xstrdup(role);
    }
    r = need_role ? kn_role_parse(role) : KN_ROLE_SENDER;
    if (g != NULL && !json_is_null(g) && r != KN_ROLE_SENDER) {
        kn__httpd_respond_error(c, 400, "groups",
                                "groups are for senders only");
        return -1;
    }
    if (r != KN_ROLE_SENDER)
        return 0;
    if (!json_is_array(g) || json_array_size(g) == 0 ||
        json_array_size(g) > 100) {
        kn__httpd_respond_error(c, 400, "groups",
                                "a sender needs groups: a list of 1-100 group "
                                "names it may address");
        return -1;
    }
    for (size_t i = 0; i < json_array_size(g); i++) {
        const char *v = json_string_value(json_array_get(g, i));
        if (v == NULL || strchr(v, ',') != NULL) {
            kn_buf_free(&s);
            kn__httpd_respond_error(c, 400, "groups",
                                    "groups: each a name without ','");
            return -1;
        }
        if (i > 0)
            kn_buf_add(&s, ",");
        kn_buf_add(&s, v);
    }
    j->groups = kn_xstrdup(kn_buf_str(&s));
    kn_buf_free(&s);
    if (!kn_staff_groups_valid(j->groups)) {
        kn__httpd_respond_error(c, 400, "groups",
                                "groups: each name 1-64 bytes, no ';' and no "
                                "control character");
        return -1;
    }
    return 0;
}

void kn__httpd_run_staff_list(struct conn *c)
{
    const char *t = tenant_of(c);
    struct job *j;
    if (t == NULL)
        return;
    j = kn_xcalloc(1, sizeof(*j));
    j->op = OP_LIST;
    j->tenant = kn_xstrdup(t);
    start(c, j);
}

static int admin_only(struct conn *c)
{
    if (is_admin(c))
        return 0;
    kn__httpd_respond_error(c, 403, NULL,
                            "only the school's admins change staff accounts");
    return -1;
}

void kn__httpd_run_staff_add(struct conn *c)
{
    const char *t = tenant_of(c), *login, *name;
    struct job *j;
    json_t *b;
    if (t == NULL || admin_only(c) < 0 || (b = json_body(c)) == NULL)
        return;
    j = kn_xcalloc(1, sizeof(*j));
    j->op = OP_ADD;
    j->tenant = kn_xstrdup(t);
    login = json_string_value(json_object_get(b, "login"));
    name = json_string_value(json_object_get(b, "name"));
    if (login == NULL || !kn_staff_login_valid(login)) {
        kn__httpd_respond_error(c, 400, "login",
                                "login: 1-64 of a-z, 0-9, '.', '_', '-', "
                                "starting with a letter or digit (e.g. "
                                "sato.ichiro)");
    } else if (kn__httpd_refuse_gaiji(c, name, KN_GAIJI_NAME, "name", "gaiji",
                                      "氏名")) {
        /* a box on the console of every colleague, and in the log */
    } else if (name == NULL || !kn_staff_name_valid(name)) {
        kn__httpd_respond_error(c, 400, "name",
                                "name: the person's name, 1-100 bytes of "
                                "text (e.g. 佐藤 一郎)");
    } else if (role_groups(c, b, j, 1) == 0) {
        j->login = kn_xstrdup(login);
        j->name = kn_xstrdup(name);
        json_decref(b);
        if (kn_audit_ready(c->srv->cfg->audit_dir) < 0) {
            kn__httpd_respond_error(c, 503, NULL,
                                    "the operation log cannot be written "
                                    "now, so nothing was changed");
            job_free(j);
            return;
        }
        start(c, j);
        return;
    }
    json_decref(b);
    job_free(j);
}

/* POST /v1/staff/{login}/<action>. */
static void account_action(struct conn *c, enum op op)
{
    const char *t = tenant_of(c), *login = c->req.param;
    int self;
    struct job *j;
    json_t *b = NULL;
    if (t == NULL || admin_only(c) < 0)
        return;
    if (!kn_staff_login_valid(login)) {
        kn__httpd_respond_error(c, 404, "login", "no such staff account");
        return;
    }
    self = c->req.tok.session && c->req.tok.login != NULL &&
           strcmp(c->req.tok.login, login) == 0;
    j = kn_xcalloc(1, sizeof(*j));
    j->op = op;
    j->tenant = kn_xstrdup(t);
    j->login = kn_xstrdup(login);
    if (op == OP_ROLE || op == OP_GROUPS) {
        b = json_body(c);
        if (b == NULL || role_groups(c, b, j, op == OP_ROLE) < 0) {
            json_decref(b);
            job_free(j);
            return;
        }
        json_decref(b);
    }
    if (self && (op == OP_DEACTIVATE ||
                 (op == OP_ROLE && strcmp(j->role, "admin") != 0))) {
        kn__httpd_respond_error(c, 409, NULL,
                                "you cannot %s your own account: you would "
                                "lock yourself out; ask another admin",
                                op == OP_DEACTIVATE ? "deactivate"
                                                    : "drop the admin role of");
        job_free(j);
        return;
    }
    if (kn_audit_ready(c->srv->cfg->audit_dir) < 0) {
        kn__httpd_respond_error(c, 503, NULL,
                                "the operation log cannot be written now, so "
                                "nothing was changed");
        job_free(j);
        return;
    }
    start(c, j);
}

void kn__httpd_run_staff_deactivate(struct conn *c)
{
    account_action(c, OP_DEACTIVATE);
}

void kn__httpd_run_staff_reset(struct conn *c)
{
    account_action(c, OP_RESET);
}

void kn__httpd_run_staff_role(struct conn *c)
{
    account_action(c, OP_ROLE);
}

void kn__httpd_run_staff_groups(struct conn *c)
{
    account_action(c, OP_GROUPS);
}

/* A JST date YYYY-MM-DD (heap), NULL if absent; *bad if malformed. */
static char *date_param(const char *q, const char *name, int *bad)
{
    char *v = kn__httpd_query_get(q, name);
    if (v == NULL)
        return NULL;
    if (strlen(v) != 10 || v[4] != '-' || v[7] != '-') {
        *bad = 1;
        free(v);
        return NULL;
    }
    for (int i = 0; i < 10; i++) {
        if (i != 4 && i != 7 && (v[i] < '0' || v[i] > '9'))
            *bad = 1;
    }
    return v;
}

void kn__httpd_run_logs(struct conn *c)
{
    const char *t = tenant_of(c), *q = c->req.query;
    struct job *j;
    char *v, *end;
    int bad = 0;
    if (t == NULL)
        return;
    if (strcmp(c->req.param, "operations") != 0 &&
        strcmp(c->req.param, "logins") != 0) {
        kn__httpd_respond_error(c, 404, NULL,
                                "the logs are operations and logins");
        return;
    }
    j = kn_xcalloc(1, sizeof(*j));
    j->op = OP_LOG;
    j->tenant = kn_xstrdup(t);
    j->file =
        kn_xstrdup(strcmp(c->req.param, "operations") == 0 ? "operations.jsonl"
                                                           : "login.jsonl");
    j->from = date_param(q, "from", &bad);
    j->to = date_param(q, "to", &bad);
    j->limit = 100;
    if (bad) {
        kn__httpd_respond_error(c, 400, "from",
                                "from and to are JST dates: 2026-12-05");
        job_free(j);
        return;
    }
    j->person = kn__httpd_query_get(q, "person");
    if (j->person != NULL &&
        (j->person[0] == '\0' || strlen(j->person) > 128)) {
        kn__httpd_respond_error(c, 400, "person",
                                "person: a staff login or a token id");
        job_free(j);
        return;
    }
    v = kn__httpd_query_get(q, "cursor");
    if (v != NULL) {
        errno = 0;
        j->cursor = strtoll(v, &end, 10);
        bad = errno != 0 || *end != '\0' || end == v || j->cursor < 0;
        free(v);
    }
    v = kn__httpd_query_get(q, "limit");
    if (!bad && v != NULL) {
        long n = strtol(v, &end, 10);
        bad = *end != '\0' || end == v || n < 1 || n > LOG_LIMIT_MAX;
        j->limit = (int)n;
    }
    free(v);
    if (bad) {
        kn__httpd_respond_error(c, 400, "cursor",
                                "cursor: the next_cursor of the previous "
                                "page; limit: 1-%d",
                                LOG_LIMIT_MAX);
        job_free(j);
        return;
    }
    start(c, j);
}
