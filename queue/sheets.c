/*
 * sheets.c - registration sheets issued, the families not yet registered
 * and the reminder to them (sheets.h; issue 15).  What "kairanctl
 * recipients sheets|unregistered|remind" did in cli/sheets.c moved here,
 * so that the console's 名簿 does exactly the same.
 *
 * What it owns: the passcodes of one issue, in clear only until
 * kn_sheets_free.  What it must never do: keep or log a passcode, or
 * write anything but through queue/lua/sheet_issue.lua.
 */
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/argv.h"
#include "common/csvcell.h"
#include "common/kn.h"
#include "common/qrsvg.h"
#include "common/seal.h"
#include "model/directory.h"
#include "model/regsheet.h"
#include "queue/keys.h"
#include "queue/lua.h"
#include "queue/sheets.h"

/* ---- Redis, synchronously ---- */

static int failed(redisContext *c, redisReply *r, const char *what, char *err,
                  size_t errlen)
{
    int rc = r == NULL ? KN_ECLOSED : KN_EREDIS;
    if (r == NULL)
        snprintf(err, errlen, "Redis connection lost: %s", c->errstr);
    else
        snprintf(err, errlen, "Redis error in %s: %s", what, r->str);
    if (r != NULL)
        freeReplyObject(r);
    return rc;
}

static int cmd(redisContext *c, struct kn_argv *a, redisReply **out, char *err,
               size_t errlen)
{
    redisReply *r = redisCommandArgv(c, a->n, (const char **)a->v, a->len);
    *out = NULL;
    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        return failed(c, r, a->v[0], err, errlen);
    *out = r;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The student ids to look at: the group's members or every recipient of
 * the tenant, sorted.  *reply holds the strings (the caller frees it);
 * KN_ENOENT when the tenant is unknown or the group empty.
 */
static int student_ids(redisContext *c, const char *prefix, const char *tenant,
                       const char *group, redisReply **reply, char ***v,
                       size_t *n, char *err, size_t errlen)
{
    struct kn_argv a;
    redisReply *r;
    int rc;

    *reply = NULL;
    *v = NULL;
    *n = 0;
    kn_argv_init(&a);
    kn_argv_add(&a, "SISMEMBER");
    kn_argv_take(&a, kn_xasprintf("%stenants", prefix));
    kn_argv_add(&a, tenant);
    rc = cmd(c, &a, &r, err, errlen);
    kn_argv_free(&a);
    if (rc < 0)
        return rc;
    if (r->type != REDIS_REPLY_INTEGER || r->integer != 1) {
        freeReplyObject(r);
        snprintf(err, errlen, "no tenant %s (nothing was imported for it)",
                 tenant);
        return KN_ENOENT;
    }
    freeReplyObject(r);
    kn_argv_init(&a);
    kn_argv_add(&a, "SMEMBERS");
    kn_argv_take(&a, group ? kn_key_grp(prefix, tenant, group)
                           : kn_key_rcpts(prefix, tenant));
    rc = cmd(c, &a, reply, err, errlen);
    kn_argv_free(&a);
    if (rc < 0)
        return rc;
    *n = (*reply)->type == REDIS_REPLY_ARRAY ? (*reply)->elements : 0;
    if (group != NULL && *n == 0) {
        snprintf(err, errlen, "no group %s in tenant %s", group, tenant);
        return KN_ENOENT;
    }
    *v = kn_xcalloc(*n + 1, sizeof(**v));
    for (size_t i = 0; i < *n; i++)
        (*v)[i] = (*reply)->element[i]->str;
    qsort(*v, *n, sizeof(**v), cmp_str);
    return 0;
}

/* A field of an HMGET reply, or NULL. */
static const char *hf(const redisReply *h, size_t i)
{
    if (h->type != REDIS_REPLY_ARRAY || i >= h->elements ||
        h->element[i]->type != REDIS_REPLY_STRING)
        return NULL;
    return h->element[i]->str;
}

static char *unseal_name(const struct kn_keyring *kr, const char *sealed)
{
    char *name = NULL;
    if (sealed != NULL && sealed[0] != '\0' &&
        kn_unseal(kr, "name", sealed, &name, NULL) < 0)
        name = NULL;
    return name;
}

/* ---- sheets ---- */

/*
 * Issue one student's sheet into s: 1 issued, 0 skipped (live), -1 the
 * student is inactive or gone, or a negative KN_E* from Redis.
 */
static int issue_one(redisContext *c, const char *prefix,
                     const struct kn_keyring *kr, const char *tenant,
                     const char *student, int reissue, long long max,
                     struct kn_sheet *s, char *err, size_t errlen)
{
    struct kn_argv a;
    redisReply *h;
    char pass[KN_REG_PASS_LEN + 1], hash[33];
    const char *cls, *groups;
    int rc;

    kn_argv_init(&a);
    kn_argv_add(&a, "HMGET");
    kn_argv_take(&a, kn_key_rcpt(prefix, tenant, student));
    kn_argv_add(&a, "active");
    kn_argv_add(&a, "name");
    kn_argv_add(&a, "class");
    kn_argv_add(&a, "groups");
    rc = cmd(c, &a, &h, err, errlen);
    kn_argv_free(&a);
    if (rc < 0)
        return rc;
    if (hf(h, 0) == NULL || strcmp(hf(h, 0), "1") != 0) {
        freeReplyObject(h);
        return -1;
    }
    memset(s, 0, sizeof(*s));
    s->student = kn_xstrdup(student);
    s->name = unseal_name(kr, hf(h, 1));
    if (s->name == NULL || s->name[0] == '\0') {
        free(s->name);
        s->name = kn_xstrdup(student);
    }
    cls = hf(h, 2);
    groups = hf(h, 3);
    if (cls != NULL && cls[0] != '\0')
        s->group = kn_xstrdup(cls);
    else if (groups != NULL)
        s->group = kn_xstrndup(groups, strcspn(groups, ";"));
    else
        s->group = kn_xstrdup("");
    freeReplyObject(h);
    rc = -1;
    for (int tries = 0; tries < 20 && rc == -1; tries++) {
        redisReply *r;
        kn_reg_id_new(s->id);
        kn_reg_pass_new(pass);
        kn_reg_pass_hash(kr, s->id, pass, hash);
        kn_argv_init(&a);
        kn_argv_add(&a, "EVAL");
        kn_argv_add(&a, kn_lua_sheet_issue);
        kn_argv_addi(&a, 3);
        kn_argv_take(&a, kn_key_reg(prefix, tenant, student));
        kn_argv_take(&a, kn_key_sheet(prefix, s->id));
        kn_argv_take(&a, kn_key_sheets(prefix, tenant));
        kn_argv_add(&a, prefix);
        kn_argv_add(&a, tenant);
        kn_argv_add(&a, student);
        kn_argv_add(&a, s->id);
        kn_argv_add(&a, hash);
        kn_argv_addi(&a, max);
        kn_argv_addi(&a, kn_now_ms());
        kn_argv_add(&a, reissue ? "1" : "0");
        rc = cmd(c, &a, &r, err, errlen);
        kn_argv_free(&a);
        if (rc < 0)
            break;
        rc = r->type == REDIS_REPLY_INTEGER ? (int)r->integer : -2;
        freeReplyObject(r);
    }
    if (rc == 1)
        kn_reg_pass_print(pass, s->pass);
    else if (rc == -1 || rc == -2)
        rc = -1; /* twenty IDs taken in a row: never in practice */
    memset(pass, 0, sizeof(pass));
    return rc;
}

static void sheet_wipe(struct kn_sheet *s)
{
    free(s->student);
    if (s->name != NULL)
        kn_free_secret(s->name);
    free(s->group);
    memset(s, 0, sizeof(*s));
}

int kn_sheets_issue(redisContext *c, const char *prefix,
                    const struct kn_keyring *kr, const char *tenant,
                    const char *group, int reissue, long long max_guardians,
                    struct kn_sheets *out, char *err, size_t errlen)
{
    redisReply *ids;
    char **v;
    size_t n;
    int rc;

    memset(out, 0, sizeof(*out));
    rc = student_ids(c, prefix, tenant, group, &ids, &v, &n, err, errlen);
    if (rc < 0)
        goto out;
    out->v = kn_xcalloc(n + 1, sizeof(*out->v));
    for (size_t i = 0; i < n; i++) {
        struct kn_sheet *s = &out->v[out->n];
        int r = issue_one(c, prefix, kr, tenant, v[i], reissue, max_guardians,
                          s, err, errlen);
        if (r == 1)
            out->n++;
        else
            sheet_wipe(s);
        if (r == 0)
            out->skipped++;
        if (r < -1) {
            rc = r;
            break;
        }
    }
out:
    free(v);
    if (ids != NULL)
        freeReplyObject(ids);
    return rc;
}

void kn_sheets_free(struct kn_sheets *s)
{
    for (size_t i = 0; i < s->n; i++)
        sheet_wipe(&s->v[i]);
    free(s->v);
    memset(s, 0, sizeof(*s));
}

static void html_esc(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        case '\'':
            fputs("&#39;", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

/* <public_url>/r followed by tail (heap). */
static char *reg_url(const char *base, const char *tail)
{
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        n--;
    return kn_xasprintf("%.*s/r%s", (int)n, base, tail);
}

/* The registration URL a sheet prints: <public_url>/r?id=<ID> (the ID is
 * not a secret; the passcode is never in a URL). */
static char *sheet_url(const char *base, const char *id)
{
    char *tail = kn_xasprintf("?id=%s", id), *u = reg_url(base, tail);
    free(tail);
    return u;
}

/* The domain of smtp.from ("Name <a@b.jp>" or "a@b.jp"): what guardians
 * allow in their carrier's filter.  A heap string. */
static char *sender_domain(const char *from)
{
    const char *at = strrchr(from, '@');
    size_t n = 0;
    if (at == NULL)
        return kn_xstrdup(from);
    at++;
    while (at[n] && at[n] != '>' && at[n] != ' ')
        n++;
    return kn_xstrndup(at, n);
}

const char kn_sheets_css[] =
    "@page{size:A4;margin:15mm}"
    "body{font-family:'Noto Sans CJK JP',sans-serif;color:#000;margin:0}"
    ".sheet{page-break-after:always;break-after:page;max-width:180mm;"
    "margin:0 auto 10mm}"
    ".sheet:last-child{page-break-after:auto;break-after:auto}"
    "h1{font-size:18pt;margin:0 0 4mm}h2{font-size:12pt;margin:5mm 0 2mm}"
    ".who{font-size:14pt;margin:0 0 4mm}"
    ".codes{display:flex;gap:8mm;align-items:center;border:1px solid #000;"
    "padding:4mm}"
    ".codes svg{width:40mm;height:40mm;flex:none}"
    ".codes dl{margin:0;font-size:12pt}.codes dt{font-weight:bold}"
    ".codes dd{margin:0 0 3mm;font-family:monospace;font-size:16pt;"
    "letter-spacing:.1em}.url{font-size:10pt;word-break:break-all}"
    "ol,ul{margin:0;padding-left:6mm;font-size:10.5pt;line-height:1.6}"
    ".note{font-size:9.5pt}";

static void print_sheet_html(FILE *f, const char *tenant,
                             const struct kn_sheet *s, const char *url,
                             const char *domain, long long max)
{
    char *svg = kn_qr_svg(url, "QR");
    fputs("<section class=\"sheet\">\n<h1>", f);
    fputs("連絡網 登録のご案内</h1>\n<p class=\"who\">", f);
    fputs("学校: ", f);
    html_esc(f, tenant);
    fputs("<br>児童・生徒: ", f);
    html_esc(f, s->name);
    if (s->group && s->group[0]) {
        fputs("（", f);
        html_esc(f, s->group);
        fputs("）", f);
    }
    fputs("</p>\n<div class=\"codes\">", f);
    if (svg)
        fputs(svg, f);
    fputs("<dl><dt>ID</dt><dd>", f);
    html_esc(f, s->id);
    fputs("</dd><dt>パスコード</dt><dd>", f);
    html_esc(f, s->pass);
    fputs("</dd><dt>登録ページ</dt><dd class=\"url\">", f);
    html_esc(f, url);
    fputs("</dd></dl></div>\n", f);
    fputs("<h2>登録のしかた</h2>\n<ol>\n"
          "<li>QRコードを読み取るか、上の登録ページを開きます。</li>\n"
          "<li>「ID」と「パスコード」を入力して「次へ」を押します。</li>\n"
          "<li>メールで受け取る場合: メールアドレス、お名前、続柄を入力し、"
          "プライバシーポリシーに同意して「確認メールを送る」を押します。"
          "届いたメールのリンクを開いて「登録する」を押すと、"
          "「登録しました」と表示されます。リンクを開けない場合は、"
          "メールに書かれた6桁の確認コードを登録ページに入力します。</li>\n"
          "<li>LINEで受け取る場合は、「LINEで受け取る」を押して"
          "案内に従ってください。</li>\n</ol>\n",
          f);
    fputs("<h2>迷惑メール設定（docomo・au・SoftBank をお使いの方）</h2>\n"
          "<ul>\n<li>受信リスト（受信許可リスト）に <b>",
          f);
    html_esc(f, domain);
    fputs("</b> を登録してください（ドメイン指定受信）。</li>\n"
          "<li>「URL付きメール拒否」を設定している場合は、解除するか、"
          "上のドメインを受信リストに登録してください。</li>\n"
          "<li>docomo: My docomo「迷惑メール対策設定」/ au: au ID"
          "「迷惑メールフィルター」/ SoftBank: My SoftBank"
          "「迷惑メール対策」から設定できます。</li>\n</ul>\n",
          f);
    fprintf(f,
            "<p class=\"note\">このパスコードで登録できる保護者は %lld 人"
            "までです。この用紙は他の人に見せず、大切に保管してください。"
            "紛失したときは学校にお知らせください（新しい用紙を発行すると"
            "古いパスコードは使えなくなります）。</p>\n</section>\n",
            max);
    free(svg);
}

void kn_sheets_html(FILE *f, const char *tenant, const struct kn_sheets *s,
                    const char *public_url, const char *smtp_from,
                    long long max_guardians)
{
    char *domain = sender_domain(smtp_from);
    fputs("<!doctype html>\n<html lang=\"ja\">\n<head>\n<meta "
          "charset=\"utf-8\">\n<title>登録用紙 ",
          f);
    html_esc(f, tenant);
    fprintf(f, "</title>\n<style>%s</style>\n</head>\n<body>\n", kn_sheets_css);
    for (size_t i = 0; i < s->n; i++) {
        char *url = sheet_url(public_url, s->v[i].id);
        print_sheet_html(f, tenant, &s->v[i], url, domain, max_guardians);
        free(url);
    }
    fputs("</body>\n</html>\n", f);
    free(domain);
}

void kn_sheets_csv(FILE *f, const struct kn_sheets *s, const char *public_url)
{
    static const char *const cols[] = {"id",       "name",    "url",
                                       "passcode", "student", "group"};
    for (size_t c = 0; c < 6; c++)
        kn_csv_put_cell(f, cols[c], c == 5);
    for (size_t i = 0; i < s->n; i++) {
        char *url = sheet_url(public_url, s->v[i].id);
        kn_csv_put_cell(f, s->v[i].id, 0);
        kn_csv_put_cell(f, s->v[i].name, 0);
        kn_csv_put_cell(f, url, 0);
        kn_csv_put_cell(f, s->v[i].pass, 0);
        kn_csv_put_cell(f, s->v[i].student, 0);
        kn_csv_put_cell(f, s->v[i].group, 1);
        free(url);
    }
}

/* ---- the families not yet registered ---- */

/* The imported contacts of one directory record "c" (KN_UNREG_*): its
 * own and its further guardians'. */
static unsigned contacts_held(const char *cjson)
{
    json_t *c = cjson ? json_loads(cjson, 0, NULL) : NULL, *g, *x;
    unsigned has = 0;
    size_t i;
    if (!json_is_object(c)) {
        json_decref(c);
        return 0;
    }
    g = json_object_get(c, KN_DIR_GUARDIANS);
    for (i = 0; i <= json_array_size(g); i++) {
        x = i == 0 ? c : json_array_get(g, i - 1);
        if (json_object_get(x, KN_DIR_EMAIL))
            has |= KN_UNREG_EMAIL;
        if (json_object_get(x, KN_DIR_LINE))
            has |= KN_UNREG_LINE;
        if (json_array_size(json_object_get(x, KN_DIR_PUSH)) > 0)
            has |= KN_UNREG_PUSH;
    }
    json_decref(c);
    return has;
}

/* Registered guardians in reg:<T>:<id> "g" (a JSON array). */
static int registered(const redisReply *g)
{
    json_t *reg;
    int yes;
    if (g == NULL || g->type != REDIS_REPLY_STRING)
        return 0;
    reg = json_loads(g->str, 0, NULL);
    yes = json_array_size(reg) > 0;
    json_decref(reg);
    return yes;
}

static int row_cmp(const void *a, const void *b)
{
    const struct kn_unreg_row *x = a, *y = b;
    int c = strcmp(x->cls, y->cls);
    return c != 0 ? c : strcmp(x->id, y->id);
}

int kn_unreg_list(redisContext *c, const char *prefix,
                  const struct kn_keyring *kr, const char *tenant,
                  const char *group, struct kn_unreg *out, char *err,
                  size_t errlen)
{
    redisReply *ids, **rep = NULL;
    char **v;
    size_t n;
    int rc;

    memset(out, 0, sizeof(*out));
    rc = student_ids(c, prefix, tenant, group, &ids, &v, &n, err, errlen);
    if (rc < 0)
        goto out;
    out->v = kn_xcalloc(n + 1, sizeof(*out->v));
    rep = kn_xcalloc(2 * n + 1, sizeof(*rep));
    for (size_t i = 0; i < n; i++) {
        char *rk = kn_key_rcpt(prefix, tenant, v[i]);
        char *gk = kn_key_reg(prefix, tenant, v[i]);
        redisAppendCommand(c, "HMGET %s active name class %s", rk,
                           KN_DIR_HASH_FIELD);
        redisAppendCommand(c, "HGET %s g", gk);
        free(rk);
        free(gk);
    }
    for (size_t i = 0; i < 2 * n; i++) {
        void *r = NULL;
        if (redisGetReply(c, &r) != REDIS_OK) {
            rc = failed(c, NULL, "", err, errlen);
            goto out;
        }
        rep[i] = r;
    }
    for (size_t i = 0; i < n; i++) {
        const redisReply *h = rep[2 * i];
        struct kn_unreg_row *row = &out->v[out->n];
        if (hf(h, 0) == NULL || strcmp(hf(h, 0), "1") != 0)
            continue;
        out->active++;
        if (registered(rep[2 * i + 1]))
            continue;
        row->cls = kn_xstrdup(hf(h, 2) ? hf(h, 2) : "");
        row->id = kn_xstrdup(v[i]);
        row->name = unseal_name(kr, hf(h, 1));
        row->has = contacts_held(hf(h, 3));
        out->n++;
    }
    qsort(out->v, out->n, sizeof(*out->v), row_cmp);
out:
    for (size_t i = 0; rep != NULL && i < 2 * n; i++) {
        if (rep[i] != NULL)
            freeReplyObject(rep[i]);
    }
    free(rep);
    free(v);
    if (ids != NULL)
        freeReplyObject(ids);
    return rc;
}

void kn_unreg_free(struct kn_unreg *u)
{
    for (size_t i = 0; i < u->n; i++) {
        free(u->v[i].cls);
        free(u->v[i].id);
        if (u->v[i].name != NULL)
            kn_free_secret(u->v[i].name);
    }
    free(u->v);
    memset(u, 0, sizeof(*u));
}

/* ---- the reminder ---- */

char *kn_remind_json(const struct kn_unreg *u, const char *tenant,
                     const char *public_url, const char *sender, size_t *sent,
                     size_t *nocontact)
{
    json_t *bc, *ids = json_array(), *aud;
    char *url, *body, *text;

    *sent = *nocontact = 0;
    for (size_t i = 0; i < u->n; i++) {
        if (u->v[i].has == 0) {
            (*nocontact)++;
            continue;
        }
        json_array_append_new(ids, json_string(u->v[i].id));
        (*sent)++;
    }
    if (*sent == 0) {
        json_decref(ids);
        return NULL;
    }
    url = reg_url(public_url, "");
    body = kn_xasprintf(
        "保護者の皆様\n\n"
        "%s からのお知らせです。\n"
        "学校からの連絡（緊急連絡を含む）を確実にお届けするため、"
        "連絡網への登録をお願いします。\n\n"
        "お配りした「連絡網 登録のご案内」の用紙にある ID とパスコードを、"
        "次の登録ページで入力してください。\n%s\n\n"
        "用紙をなくされた場合は、学校にお知らせください。"
        "新しい用紙をお渡しします。\n"
        "すでに登録がお済みの場合は、このお知らせは不要です。\n",
        tenant, url);
    bc = json_object();
    json_object_set_new(bc, "tenant", json_string(tenant));
    json_object_set_new(bc, "category", json_string("notice"));
    json_object_set_new(bc, "priority", json_string("normal"));
    text = kn_xasprintf("【%s】連絡網への登録のお願い", tenant);
    json_object_set_new(bc, "subject", json_string(text));
    free(text);
    json_object_set_new(bc, "body", json_string(body));
    json_object_set_new(bc, "channels",
                        json_pack("[s,s,s]", "email", "line", "push"));
    aud = json_object();
    json_object_set_new(aud, "recipients", ids);
    json_object_set_new(bc, "audience", aud);
    if (sender != NULL)
        json_object_set_new(bc, "sender", json_string(sender));
    text = json_dumps(bc, JSON_COMPACT);
    json_decref(bc);
    free(url);
    free(body);
    return text;
}
