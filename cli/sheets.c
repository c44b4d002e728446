/*
 * sheets.c - kairanctl recipients sheets: the printed registration sheets
 * with which guardians sign themselves up (issue 15).
 *
 *   recipients sheets --tenant T [--group G] [--reissue] [--format html|csv]
 *
 * One sheet per active student of the tenant (or of group G): a fresh ID
 * and passcode (model/regsheet.h), stored only as a keyed hash in
 * sheet:<ID> by queue/lua/sheet_issue.lua, and printed once, here: an A4
 * HTML page per student (school, student, the registration URL and its QR
 * code as inline SVG, the ID and passcode, the steps, the receive settings
 * Japanese carriers need), or CSV for mail merge with the columns id,
 * name, url, passcode (then student and group).  A passcode cannot be
 * shown again, so a student whose sheet is still live (not used up by
 * registration.max_guardians guardians) is skipped unless --reissue, which
 * voids the old sheet.  Everything from outside is HTML-escaped; the
 * counts go to stderr and the operation log, never a passcode.
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/recipients_int.h"
#include "common/argv.h"
#include "common/csvcell.h"
#include "common/kn.h"
#include "common/qrsvg.h"
#include "common/seal.h"
#include "common/text.h"
#include "config/config.h"
#include "model/label.h"
#include "model/regsheet.h"
#include "queue/keys.h"
#include "queue/lua.h"
#include "queue/redis_uv.h"

static struct kn_redis_script issue_script = {"sheet_issue",
                                              kn_lua_sheet_issue, ""};

struct sheet {
    char *student, *name, *group; /* name: unsealed, or the id */
    char id[KN_REG_ID_LEN + 1];
    char pass[KN_REG_PASS_LEN + 3]; /* printed form */
};

static void html_esc(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* The registration URL a sheet prints: <public_url>/r?id=<ID> (the ID is
 * not a secret; the passcode is never in a URL). */
static char *sheet_url(const char *id)
{
    const char *base = kn_cli_cfg.http_public_url;
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        n--;
    return kn_xasprintf("%.*s/r?id=%s", (int)n, base, id);
}

/* The domain of smtp.from ("Name <a@b.jp>" or "a@b.jp"): what guardians
 * allow in their carrier's filter.  A heap string. */
static char *sender_domain(void)
{
    const char *from = kn_cli_cfg.smtp_from, *at = strrchr(from, '@');
    size_t n = 0;
    if (at == NULL)
        return kn_xstrdup(from);
    at++;
    while (at[n] && at[n] != '>' && at[n] != ' ')
        n++;
    return kn_xstrndup(at, n);
}

static const char css[] =
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
                             const struct sheet *s, const char *url,
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
          "<ul>\n<li>受信リスト（受信許可リスト）に <b>", f);
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

/* The student ids to issue for: the group's members or every recipient,
 * sorted.  Returns the reply (the caller frees it) and the ids in *v. */
static redisReply *student_ids(const char *tenant, const char *group,
                               char ***v, size_t *n)
{
    char *k = group ? kn_key_grp(kn_cli_cfg.redis_prefix, tenant, group)
                    : kn_cli_key("rcpts:%s", tenant);
    redisReply *r = kn_cli_cmd("SMEMBERS %s", k);
    free(k);
    *n = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
    *v = kn_xcalloc(*n + 1, sizeof(**v));
    for (size_t i = 0; i < *n; i++)
        (*v)[i] = r->element[i]->str;
    qsort(*v, *n, sizeof(**v), kn__rcp_cmp_str);
    return r;
}

/*
 * Issue one student's sheet: 1 issued (s filled), 0 skipped (live), or
 * -1 when the student is inactive or gone.
 */
static int issue_one(const struct kn_keyring *kr, const char *tenant,
                     const char *student, int reissue, struct sheet *s)
{
    char *rk = kn_key_rcpt(kn_cli_cfg.redis_prefix, tenant, student);
    redisReply *h = kn_cli_cmd("HMGET %s active name class groups", rk);
    char pass[KN_REG_PASS_LEN + 1], hash[33];
    int rc = -1;

    free(rk);
    if (h->type != REDIS_REPLY_ARRAY || h->elements != 4 ||
        h->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(h->element[0]->str, "1") != 0)
        goto out;
    memset(s, 0, sizeof(*s));
    s->student = kn_xstrdup(student);
    s->name = NULL;
    if (h->element[1]->type == REDIS_REPLY_STRING && h->element[1]->len > 0 &&
        kn_unseal(kr, "name", h->element[1]->str, &s->name, NULL) < 0)
        s->name = NULL;
    if (s->name == NULL || s->name[0] == '\0') {
        free(s->name);
        s->name = kn_xstrdup(student);
    }
    if (h->element[2]->type == REDIS_REPLY_STRING && h->element[2]->len > 0)
        s->group = kn_xstrdup(h->element[2]->str);
    else if (h->element[3]->type == REDIS_REPLY_STRING)
        s->group = kn_xstrndup(h->element[3]->str,
                               strcspn(h->element[3]->str, ";"));
    else
        s->group = kn_xstrdup("");
    for (int tries = 0; tries < 20; tries++) {
        struct kn_argv a;
        redisReply *r;
        kn_reg_id_new(s->id);
        kn_reg_pass_new(pass);
        kn_reg_pass_hash(kr, s->id, pass, hash);
        kn_argv_init(&a);
        kn_argv_take(&a, kn_key_reg(kn_cli_cfg.redis_prefix, tenant, student));
        kn_argv_take(&a, kn_key_sheet(kn_cli_cfg.redis_prefix, s->id));
        kn_argv_take(&a, kn_key_sheets(kn_cli_cfg.redis_prefix, tenant));
        kn_argv_add(&a, kn_cli_cfg.redis_prefix);
        kn_argv_add(&a, tenant);
        kn_argv_add(&a, student);
        kn_argv_add(&a, s->id);
        kn_argv_add(&a, hash);
        kn_argv_addi(&a, kn_cli_cfg.registration_max_guardians);
        kn_argv_addi(&a, kn_now_ms());
        kn_argv_add(&a, reissue ? "1" : "0");
        r = kn_cli_eval(&issue_script, 3, &a);
        kn_argv_free(&a);
        rc = r->type == REDIS_REPLY_INTEGER ? (int)r->integer : -2;
        freeReplyObject(r);
        if (rc != -1)
            break;
    }
    if (rc == 1)
        kn_reg_pass_print(pass, s->pass);
    else
        rc = rc == 0 ? 0 : -1;
    memset(pass, 0, sizeof(pass));
out:
    freeReplyObject(h);
    return rc;
}

static void sheet_free(struct sheet *s)
{
    free(s->student);
    if (s->name)
        memset(s->name, 0, strlen(s->name));
    free(s->name);
    free(s->group);
    memset(s->pass, 0, sizeof(s->pass));
}

int kn__rcp_sheets(const char *tenant, const char *group_raw, int reissue,
                   int csv)
{
    struct kn_keyring *kr = NULL;
    char err[400], **v = NULL, *group = NULL, *domain;
    redisReply *ids;
    size_t n, issued = 0, skipped = 0;
    int rc = KN_EXIT_OK;

    if (group_raw && kn_label_norm(group_raw, &group, err, sizeof(err)) < 0) {
        fprintf(stderr, "kairanctl: --group: %s\n", err);
        return KN_EXIT_USAGE;
    }
    if (kn_keyring_load(kn_cli_cfg.key_file, &kr, err, sizeof(err)) < 0) {
        fprintf(stderr, "kairanctl: security.key_file: %s\n", err);
        free(group);
        return KN_EXIT_FAIL;
    }
    if (!kn__rcp_tenant_known(tenant)) {
        fprintf(stderr, "kairanctl: no tenant %s (nothing was imported "
                        "for it)\n",
                tenant);
        kn_keyring_free(kr);
        free(group);
        return KN_EXIT_UNKNOWN;
    }
    ids = student_ids(tenant, group, &v, &n);
    if (group && n == 0) {
        fprintf(stderr, "kairanctl: no group %s in tenant %s (kairanctl "
                        "groups list --tenant %s)\n",
                group, tenant, tenant);
        rc = KN_EXIT_UNKNOWN;
        goto out;
    }
    if (kn__rcp_oplog_open() < 0) {
        rc = KN_EXIT_FAIL;
        goto out;
    }
    domain = sender_domain();
    if (csv) {
        const char *cols[] = {"id", "name", "url", "passcode", "student",
                              "group"};
        for (size_t c = 0; c < 6; c++)
            kn_csv_put_cell(stdout, cols[c], c == 5);
    } else {
        printf("<!doctype html>\n<html lang=\"ja\">\n<head>\n<meta "
               "charset=\"utf-8\">\n<title>登録用紙 ");
        html_esc(stdout, tenant);
        printf("</title>\n<style>%s</style>\n</head>\n<body>\n", css);
    }
    for (size_t i = 0; i < n; i++) {
        struct sheet s;
        int r = issue_one(kr, tenant, v[i], reissue, &s);
        if (r < 0)
            continue;
        if (r == 0) {
            skipped++;
            sheet_free(&s);
            continue;
        }
        issued++;
        char *url = sheet_url(s.id);
        if (csv) {
            kn_csv_put_cell(stdout, s.id, 0);
            kn_csv_put_cell(stdout, s.name, 0);
            kn_csv_put_cell(stdout, url, 0);
            kn_csv_put_cell(stdout, s.pass, 0);
            kn_csv_put_cell(stdout, s.student, 0);
            kn_csv_put_cell(stdout, s.group, 1);
        } else {
            print_sheet_html(stdout, tenant, &s, url, domain,
                             (long long)kn_cli_cfg.registration_max_guardians);
        }
        free(url);
        sheet_free(&s);
    }
    if (!csv)
        printf("</body>\n</html>\n");
    free(domain);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "kairanctl: writing the sheets failed: %s (the "
                        "passcodes issued are lost: run again with "
                        "--reissue)\n",
                strerror(errno));
        rc = KN_EXIT_FAIL;
    }
    fprintf(stderr, "issued %zu, skipped %zu (passcode still live; "
                    "--reissue voids them)\n",
            issued, skipped);
    kn__rcp_oplog_write("recipients.sheets", tenant,
                        json_pack("{s:s?,s:b,s:I,s:I}", "group", group,
                                  "reissue", reissue, "issued",
                                  (json_int_t)issued, "skipped",
                                  (json_int_t)skipped));
out:
    free(v);
    freeReplyObject(ids);
    kn_keyring_free(kr);
    free(group);
    return rc;
}

/* ---- recipients unregistered ---- */

/*
 * The families not yet registered (未登録), per class: every active
 * student of the tenant (or of group G) without a guardian registered
 * through its sheet (reg:<T>:<id> "g"), sorted by class and id, as
 * tab-separated lines: class, id, name, and the channels the school
 * already holds for it ("email", "line", "push", or "-": nobody to remind
 * but by the printed sheet).  The count per class goes to stderr.
 */
int kn__rcp_unregistered(const char *tenant, const char *group_raw)
{
    struct kn_keyring *kr = NULL;
    char err[400], **v = NULL, *group = NULL;
    redisReply *ids;
    size_t n;
    json_t *per_class = json_object();
    int rc = KN_EXIT_OK;

    if (group_raw && kn_label_norm(group_raw, &group, err, sizeof(err)) < 0) {
        fprintf(stderr, "kairanctl: --group: %s\n", err);
        json_decref(per_class);
        return KN_EXIT_USAGE;
    }
    if (kn_keyring_load(kn_cli_cfg.key_file, &kr, err, sizeof(err)) < 0) {
        fprintf(stderr, "kairanctl: security.key_file: %s\n", err);
        free(group);
        json_decref(per_class);
        return KN_EXIT_FAIL;
    }
    if (!kn__rcp_tenant_known(tenant)) {
        fprintf(stderr, "kairanctl: no tenant %s (nothing was imported "
                        "for it)\n",
                tenant);
        rc = KN_EXIT_UNKNOWN;
        ids = NULL;
        goto out;
    }
    ids = student_ids(tenant, group, &v, &n);
    if (group && n == 0) {
        fprintf(stderr, "kairanctl: no group %s in tenant %s\n", group,
                tenant);
        rc = KN_EXIT_UNKNOWN;
        goto out;
    }
    {
        struct kn_argv *cmds = kn_xcalloc(2 * n + 1, sizeof(*cmds));
        redisReply **rep;
        struct row {
            const char *cls, *id;
            char *name, *has;
        } *rows = kn_xcalloc(n + 1, sizeof(*rows));
        size_t nrows = 0, nactive = 0;
        for (size_t i = 0; i < n; i++) {
            kn_argv_init(&cmds[2 * i]);
            kn_argv_add(&cmds[2 * i], "HMGET");
            kn_argv_take(&cmds[2 * i],
                         kn_key_rcpt(kn_cli_cfg.redis_prefix, tenant, v[i]));
            kn_argv_add(&cmds[2 * i], "active");
            kn_argv_add(&cmds[2 * i], "name");
            kn_argv_add(&cmds[2 * i], "class");
            kn_argv_add(&cmds[2 * i], "c");
            kn_argv_init(&cmds[2 * i + 1]);
            kn_argv_add(&cmds[2 * i + 1], "HGET");
            kn_argv_take(&cmds[2 * i + 1],
                         kn_key_reg(kn_cli_cfg.redis_prefix, tenant, v[i]));
            kn_argv_add(&cmds[2 * i + 1], "g");
        }
        rep = n ? kn__rcp_pipeline(cmds, 2 * n) : NULL;
        for (size_t i = 0; i < n; i++) {
            redisReply *h = rep[2 * i], *g = rep[2 * i + 1];
            json_t *c, *reg;
            char has[32] = "";
            kn_argv_free(&cmds[2 * i]);
            kn_argv_free(&cmds[2 * i + 1]);
            if (h->type != REDIS_REPLY_ARRAY || h->elements != 4 ||
                h->element[0]->type != REDIS_REPLY_STRING ||
                strcmp(h->element[0]->str, "1") != 0)
                continue;
            nactive++;
            reg = g->type == REDIS_REPLY_STRING ? json_loads(g->str, 0, NULL)
                                                : NULL;
            if (json_array_size(reg) > 0) {
                json_decref(reg);
                continue;
            }
            json_decref(reg);
            c = h->element[3]->type == REDIS_REPLY_STRING
                    ? json_loads(h->element[3]->str, 0, NULL)
                    : NULL;
            if (json_object_get(c, "e"))
                strcat(has, "email");
            if (json_object_get(c, "l"))
                strcat(has, has[0] ? ",line" : "line");
            if (json_array_size(json_object_get(c, "p")) > 0)
                strcat(has, has[0] ? ",push" : "push");
            json_decref(c);
            rows[nrows].cls = h->element[2]->type == REDIS_REPLY_STRING
                                  ? h->element[2]->str
                                  : "";
            rows[nrows].id = v[i];
            rows[nrows].name = NULL;
            if (h->element[1]->type == REDIS_REPLY_STRING &&
                h->element[1]->len > 0 &&
                kn_unseal(kr, "name", h->element[1]->str, &rows[nrows].name,
                          NULL) < 0)
                rows[nrows].name = NULL;
            rows[nrows].has = kn_xstrdup(has[0] ? has : "-");
            nrows++;
        }
        /* by class, then id (the ids are sorted already: a stable pass) */
        for (size_t i = 1; i < nrows; i++) {
            struct row x = rows[i];
            size_t j = i;
            while (j > 0 && strcmp(rows[j - 1].cls, x.cls) > 0) {
                rows[j] = rows[j - 1];
                j--;
            }
            rows[j] = x;
        }
        for (size_t i = 0; i < nrows; i++) {
            char *cls = kn_text_safe(rows[i].cls), *id = kn_text_safe(rows[i].id),
                 *nm = kn_text_safe(rows[i].name ? rows[i].name : "");
            json_t *cnt = json_object_get(per_class, rows[i].cls);
            printf("%s\t%s\t%s\t%s\n", cls, id, nm, rows[i].has);
            json_object_set_new(per_class, rows[i].cls,
                                json_integer(json_integer_value(cnt) + 1));
            free(cls);
            free(id);
            kn_free_secret(nm);
            if (rows[i].name)
                kn_free_secret(rows[i].name);
            free(rows[i].has);
        }
        {
            const char *key;
            json_t *val;
            json_object_foreach(per_class, key, val)
            {
                char *k = kn_text_safe(key[0] ? key : "-");
                fprintf(stderr, "%s: %lld unregistered\n", k,
                        (long long)json_integer_value(val));
                free(k);
            }
            fprintf(stderr, "%zu unregistered of %zu\n", nrows, nactive);
        }
        if (rep)
            kn__rcp_replies_free(rep, 2 * n);
        free(cmds);
        free(rows);
    }
out:
    free(v);
    if (ids)
        freeReplyObject(ids);
    kn_keyring_free(kr);
    free(group);
    json_decref(per_class);
    return rc;
}
