/*
 * register.c - guardians sign themselves up (issue 15): the registration
 * page <public_url>/r (the files of web/register/, embedded at build
 * time) and its three steps by e-mail, each a JSON POST with no token
 * (the school app's and LINE's ways in: register_link.c):
 *
 *   POST /r/start   {id, passcode}: the printed sheet's ID and passcode
 *                   (model/regsheet.h) -> {ticket, school, student}; the
 *                   ticket (random, 30 minutes; only its hash is kept,
 *                   rtk:<hash>) carries the next steps.
 *   POST /r/email   {ticket, email, name, relation, consent: true,
 *                   lang}: a verification mail (a link valid 24 h to
 *                   /r#v=<token>, and a 6-digit code; in Japanese, then
 *                   in the page's language or English) to the address;
 *                   nothing is registered yet (rver:<hash of the token>).
 *                   A name or relation with a private-use character
 *                   (外字, model/gaiji.h) is refused: 400 with code
 *                   gaiji_name or gaiji_relation, "at" and "excerpt".
 *   POST /r/verify  {v: token} (the link's page, after its button: mail
 *                   scanners that open links confirm nothing) or
 *                   {ticket, code}: the address joins the child's
 *                   registrations (queue/lua/reg_verify.lua), and the
 *                   child's other contacts are told by mail.
 *
 * Throttling as the staff login does it (model/session.h): 5 failures of
 * one ID from one address lock that pair for 15 minutes (429); nobody
 * else is locked out, not the family at its own address, not the school.
 * An ID that does not exist takes the same path (the same reads, the same
 * keyed hash, the same answer), and a wrong passcode and an unknown ID get
 * the same 401.  A code is tried at most 5 times per ticket.
 *
 * What is registered is kept in records of its own, reg:<tenant>:<id>
 * field "g" (model/directory.h's guardian shape: sealed address, its
 * blind index, sealed name and relation, time, consent time), never in
 * the imported directory record, so that an import cannot change or
 * delete it; the expander reads both (dispatcher/expand_page.c).  The
 * mails go out as urgent broadcasts of the school with one inline
 * recipient (sealed like every address), sent by "registration".
 */
#include "dispatcher/http/http_int.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kn.h"
#include "common/log.h"
#include "common/seal.h"
#include "common/text.h"
#include "model/address.h"
#include "model/audit.h"
#include "model/directory.h"
#include "model/gaiji.h"
#include "model/regsheet.h"
#include "model/session.h"
#include "queue/keys.h"
#include "queue/lua.h"

#define REG_LOCK_FAILS 5
#define REG_LOCK_MS    (15LL * 60 * 1000)
#define REG_TICKET_MS  (60LL * 60 * 1000)
#define REG_VERIFY_MS  (24LL * 60 * 60 * 1000)
#define REG_CODE_TRIES 5
#define REG_TEXT_MAX   100 /* bytes of a name or a relation */
#define REG_MAILS      5   /* verification mails per sign-up */
#define REG_ADDR_MAILS 3   /* verification mails to one address an hour */
#define REG_STARTS     10  /* sign-ups started with one sheet an hour */
#define REG_HOUR_MS    (60LL * 60 * 1000)

#define BAD_SHEET "ID またはパスコードが違います (wrong ID or passcode)"

/* The page's files (web/register/; the Makefile's WEB_REGISTER). */
extern const char kn__web_register_html[], kn__web_register_css[],
    kn__web_register_js[];
extern const size_t kn__web_register_html_len, kn__web_register_css_len,
    kn__web_register_js_len;
/* Its strings, strings-<lang>.json, every file of the folder (a glob). */
extern const struct kn_embedded kn__web_register_strings[];
extern const size_t kn__web_register_strings_n;

int kn__reg_ticket_ok(const char *ticket)
{
    return ticket != NULL && strlen(ticket) == KN_SESSION_ID_CHARS;
}

int kn__reg_lang_ok(const char *lang)
{
    return lang == NULL || kn_lang_valid(lang);
}

void kn__reg_bad_lang(struct conn *c)
{
    kn__httpd_respond_error(c, 400, "lang",
                            "言語コードが正しくありません (lang: a "
                            "language code such as \"ja\" or \"en\")");
}

void kn__reg_bad_ticket(struct conn *c)
{
    kn__httpd_respond_coded(c, 400, "ticket", "expired",
                            "ID とパスコードからやり直してください "
                            "(start again with the ID and passcode)");
}

/* The guardian pages' strict policy (guardian_mail.c). */
static const char *const csp = kn__httpd_csp_guardian;

static struct kn_redis_script verify_script = {"reg_verify", kn_lua_reg_verify,
                                               ""};

/* ------------------------------------------------------------ the page */

/*
 * GET /r/langs.json: the languages of the page, one per strings file
 * present, [{"code": "ja", "name": "日本語", "lang": "ja"}, ...] (name:
 * the file's "langName", else the code; lang: its "htmlLang", the tag of
 * the text as html lang takes it, such as "zh-Hans" for "zh", else the
 * code), Japanese first, then by code.  Made once: the files are
 * embedded (and the route is in the files' rate bucket).
 */
static void langs_json(struct conn *c)
{
    json_t *a;
    if (c->srv->reg_langs != NULL) {
        kn__httpd_respond_json(c, 200, json_incref(c->srv->reg_langs), NULL);
        return;
    }
    a = json_array();
    for (int ja = 1; ja >= 0; ja--) {
        for (size_t i = 0; i < kn__web_register_strings_n; i++) {
            const struct kn_embedded *f = &kn__web_register_strings[i];
            char code[16];
            json_t *s, *nm, *tag;
            if (kn__httpd_strings_code(f->name, code, sizeof(code)) < 0 ||
                !kn_lang_valid(code) || (strcmp(code, "ja") == 0) != ja)
                continue;
            s = json_loadb(f->data, f->len, 0, NULL);
            nm = json_object_get(s, "langName");
            tag = json_object_get(s, "htmlLang");
            if (!kn_lang_valid(json_string_value(tag)))
                tag = NULL;
            json_array_append_new(
                a, json_pack("{s:s, s:s, s:s}", "code", code, "name",
                             json_is_string(nm) ? json_string_value(nm) : code,
                             "lang", tag ? json_string_value(tag) : code));
            json_decref(s);
        }
    }
    c->srv->reg_langs = json_incref(a);
    kn__httpd_respond_json(c, 200, a, NULL);
}

void kn__httpd_run_register_page(struct conn *c)
{
    kn__httpd_respond(c, 200, "text/html; charset=utf-8", kn__web_register_html,
                      kn__web_register_html_len, csp, NULL);
}

void kn__httpd_run_register_file(struct conn *c)
{
    static const struct kn__web_file files[] = {
        {"register.css", "text/css; charset=utf-8", kn__web_register_css,
         &kn__web_register_css_len},
        {"register.js", "text/javascript; charset=utf-8", kn__web_register_js,
         &kn__web_register_js_len},
    };
    if (strcmp(c->req.param, KN__REG_LINE_QR) == 0) {
        kn__reg_line_qr(c);
        return;
    }
    if (strcmp(c->req.param, "langs.json") == 0) {
        langs_json(c);
        return;
    }
    for (size_t i = 0; i < kn__web_register_strings_n; i++) {
        const struct kn_embedded *f = &kn__web_register_strings[i];
        if (strcmp(c->req.param, f->name) == 0) {
            kn__httpd_respond(c, 200, "application/json; charset=utf-8",
                              f->data, f->len, csp, NULL);
            return;
        }
    }
    kn__httpd_serve_file(c, files, KN_ARRAY_SIZE(files), csp);
}

/* ------------------------------------------------------------ helpers */

static const char *jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* An optional short text (a name, a relation): NULL or "" is fine; else
 * at most REG_TEXT_MAX bytes of valid UTF-8 without control characters
 * (C0, C1, bidi controls, line and paragraph separators).
 * Returns 0 or -1. */
static int short_text_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n > REG_TEXT_MAX)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f)
            return -1;
    }
    if (n > 0) {
        /* kn_text_safe escapes what is no name: bytes that are not UTF-8,
         * C1 controls, the bidi controls (an override turns the names
         * after it around where the console joins a child's guardians)
         * and the line and paragraph separators. */
        char *safe = kn_text_safe(s);
        int same = strcmp(safe, s) == 0;
        free(safe);
        if (!same)
            return -1;
    }
    return 0;
}

/* Seal s (NULL or "": "") with purpose; a heap string. */
static char *seal_opt(const struct kn_keyring *kr, const char *purpose,
                      const char *s)
{
    if (s == NULL || s[0] == '\0')
        return kn_xstrdup("");
    return kn_seal(kr, purpose, s, strlen(s));
}

void kn__reg_op_log(struct http_srv *s, const char *source, const char *via,
                    const char *op, const char *tenant, const char *rcpt)
{
    json_t *j = json_object();
    json_object_set_new(j, "tenant", kn__httpd_jstr_or_null(tenant));
    json_object_set_new(j, "id", kn__httpd_jstr_or_null(rcpt));
    json_object_set_new(j, "source", json_string(source));
    json_object_set_new(j, "via", json_string(via));
    if (kn_audit_op(s->cfg->audit_dir, "guardian", op, j) < 0)
        kn_log(KN_LOG_WARN, "http", "cannot append to the operation log", "dir",
               s->cfg->audit_dir, NULL);
}

static void op_log(struct conn *c, const char *op, const char *tenant,
                   const char *rcpt)
{
    kn__reg_op_log(c->srv, c->req.source, "http", op, tenant, rcpt);
}

/*
 * Send one mail to each address of to[0..n) (plaintext; only this call
 * sees them): kn__httpd_guardian_send, sender "registration".  Returns 0,
 * or -1 after logging why (the caller answers 503).
 */
static int send_mail(struct http_srv *s, const char *tenant,
                     const char *const *to, size_t n, const char *subject,
                     const char *body)
{
    char **ids = kn_xcalloc(n + 1, sizeof(*ids));
    int rv;
    for (size_t i = 0; i < n; i++)
        ids[i] = kn_xasprintf("registration-%zu", i + 1);
    rv =
        kn__httpd_guardian_send(s, tenant, "registration", "email",
                                (const char *const *)ids, to, n, subject, body);
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    return rv;
}

/* ------------------------------------------------ POST /r/start */

struct start {
    char id[64];                    /* normalised, or as typed (cut) */
    char pass[KN_REG_PASS_LEN + 1]; /* normalised, or "" */
    int id_ok;
    char ticket[KN_SESSION_ID_CHARS + 1];
    char *tenant, *rcpt;
    long long left; /* guardians the sheet still takes */
};

static void start_free(struct start *st)
{
    OPENSSL_cleanse(st->pass, sizeof(st->pass));
    OPENSSL_cleanse(st->ticket, sizeof(st->ticket));
    free(st->tenant);
    free(st->rcpt);
    free(st);
}

static void on_ticket_made(struct batch *b)
{
    struct start *st = b->arg;
    struct conn *c = b->c;
    char *name;
    json_t *j;
    if (!kn__httpd_batch_usable(b))
        goto out;
    if (kn__httpd_rnum(kn__httpd_brep(b, 4)) > REG_STARTS) {
        /* the ticket just made is not handed out: it goes */
        char th[65], *k;
        kn_session_hash(st->ticket, th);
        k = kn_key_reg_ticket(c->srv->d->prefix, th);
        kn_redis_cmd(c->srv->d->cmd, NULL, NULL, "DEL %s", k);
        free(k);
        c->req.auth_result = "throttled";
        kn__httpd_respond_json(
            c, 429,
            json_pack("{s:s, s:n, s:s}", "error",
                      "この用紙からの登録が続いています。1時間ほどしてから"
                      "やり直してください (too many sign-ups with this "
                      "sheet: try again in an hour)",
                      "field", "code", "sheet_busy"),
            "Retry-After: 3600\r\n");
        goto out;
    }
    name = kn__httpd_unseal_opt(c->srv->d->kr, "name",
                                kn__httpd_rstr(kn__httpd_brep(b, 3)));
    j = json_pack("{s:s,s:s,s:s?,s:I}", "ticket", st->ticket, "school",
                  st->tenant, "student", name, "left", (json_int_t)st->left);
    kn__httpd_free_secret(&name);
    c->req.auth_result = "ok";
    kn__httpd_respond_json(c, 200, j, NULL);
out:
    start_free(st);
}

static void on_sheet(struct batch *b)
{
    struct start *st = b->arg;
    struct conn *c = b->c;
    struct kn_daemon *d;
    const redisReply *h;
    const char *stored;
    char hash[33], th[65], ms[24], *k;
    long long fails, used, max;
    int known, ok;
    struct batch *nb;

    if (!kn__httpd_batch_usable(b)) {
        start_free(st);
        return;
    }
    d = c->srv->d;
    fails = kn__httpd_rnum(kn__httpd_brep(b, 0)) - 1; /* before this one */
    h = kn__httpd_brep(b, 2);
    if (fails >= REG_LOCK_FAILS) {
        c->req.auth_result = "locked";
        kn__httpd_respond_json(
            c, 429,
            json_pack("{s:s, s:n, s:s}", "error",
                      "間違いが続いたため、この ID はこの端末から15分間"
                      "使えません (too many wrong attempts: try again in 15 "
                      "minutes)",
                      "field", "code", "locked"),
            "Retry-After: 900\r\n");
        start_free(st);
        return;
    }
    known = h != NULL && h->type == REDIS_REPLY_ARRAY && h->elements == 5 &&
            h->element[0]->type == REDIS_REPLY_STRING &&
            h->element[1]->type == REDIS_REPLY_STRING &&
            h->element[2]->type == REDIS_REPLY_STRING;
    /* The same work whether the ID exists or not: one keyed hash and one
     * comparison of 32 bytes. */
    kn_reg_pass_hash(d->kr, st->id, st->pass, hash);
    stored = known ? h->element[2]->str : "00000000000000000000000000000000";
    ok = strlen(stored) == 32 && CRYPTO_memcmp(hash, stored, 32) == 0 &&
         known && st->id_ok && st->pass[0] != '\0';
    if (!ok) {
        char *f = kn_key_reg_fail(d->prefix, st->id, c->req.net);
        /* counted already; the lock lasts 15 minutes from the last one */
        kn_redis_cmd(d->cmd, NULL, NULL, "PEXPIRE %s %lld", f, REG_LOCK_MS);
        free(f);
        c->req.auth_result = known ? "wrong_passcode" : "unknown_id";
        kn__httpd_respond_coded(c, 401, NULL, "bad_sheet", BAD_SHEET);
        start_free(st);
        return;
    }
    used = kn__httpd_rnum(h->element[3]);
    max = kn__httpd_rnum(h->element[4]);
    if (used >= max) {
        c->req.auth_result = "used_up";
        kn__httpd_respond_coded(
            c, 409, NULL, "sheet_full",
            "この用紙で登録できる人数に達しています。学校にお問い合わせ"
            "ください (this sheet's passcode is used up: ask the school)");
        start_free(st);
        return;
    }
    st->left = max - used;
    st->tenant = kn_xstrdup(h->element[0]->str);
    st->rcpt = kn_xstrdup(h->element[1]->str);
    kn_session_new_id(st->ticket);
    kn_session_hash(st->ticket, th);
    snprintf(ms, sizeof(ms), "%lld", REG_TICKET_MS);
    nb = kn__httpd_batch_new(c->srv, c, on_ticket_made, st);
    k = kn_key_reg_ticket(d->prefix, th);
    kn__httpd_batch_cmd(nb, "HSET", k, "t", st->tenant, "r", st->rcpt, "s",
                        st->id, NULL);
    kn__httpd_batch_cmd(nb, "PEXPIRE", k, ms, NULL);
    free(k);
    k = kn_key_reg_fail(d->prefix, st->id, c->req.net);
    kn__httpd_batch_cmd(nb, "DEL", k, NULL);
    free(k);
    k = kn_key_rcpt(d->prefix, st->tenant, st->rcpt);
    kn__httpd_batch_cmd(nb, "HGET", k, "name", NULL);
    free(k);
    /* Sign-ups of this sheet in the hour (4, 5): each may mail 5
     * addresses, so a sheet's holder is held to REG_STARTS of them. */
    k = kn_key_reg_starts(d->prefix, st->id);
    kn__httpd_batch_count(nb, k, NULL, REG_HOUR_MS);
    free(k);
    kn__httpd_batch_end(nb);
}

void kn__httpd_run_register_start(struct conn *c)
{
    struct kn_daemon *d = c->srv->d;
    json_t *j = kn__httpd_json_object(c);
    const char *id, *pass;
    struct start *st;
    struct batch *b;
    char *k;

    if (j == NULL)
        return;
    id = jstr(j, "id");
    pass = jstr(j, "passcode");
    if (id == NULL || id[0] == '\0' || strlen(id) > 60) {
        json_decref(j);
        kn__httpd_respond_coded(c, 400, "id", "need_id",
                                "ID を入力してください (type the ID of the "
                                "registration sheet)");
        return;
    }
    if (pass == NULL || pass[0] == '\0' || strlen(pass) > 100) {
        json_decref(j);
        kn__httpd_respond_coded(c, 400, "passcode", "need_passcode",
                                "パスコードを入力してください (type the "
                                "passcode of the registration sheet)");
        return;
    }
    st = kn_xcalloc(1, sizeof(*st));
    st->id_ok = kn_reg_normalise(id, KN_REG_ID_LEN, st->id, sizeof(st->id)) > 0;
    if (!st->id_ok) /* throttled under what was typed, like a real ID */
        snprintf(st->id, sizeof(st->id), "%s", id);
    if (kn_reg_normalise(pass, KN_REG_PASS_LEN, st->pass, sizeof(st->pass)) < 0)
        st->pass[0] = '\0';
    json_decref(j);
    b = kn__httpd_batch_new(c->srv, c, on_sheet, st);
    /* This try counted before it is judged (atomic: tries sent at once
     * cannot all pass the check); a right passcode clears the count. */
    k = kn_key_reg_fail(d->prefix, st->id, c->req.net);
    kn__httpd_batch_count(b, k, NULL, REG_LOCK_MS);
    free(k);
    k = kn_key_sheet(d->prefix, st->id);
    kn__httpd_batch_cmd(b, "HMGET", k, "t", "r", "h", "used", "max", NULL);
    free(k);
    kn__httpd_batch_end(b);
}

/* ------------------------------------------------ POST /r/email */

struct mail {
    char th[65]; /* the ticket's hash */
    char *email, *name, *relation;
    char *tenant, *rcpt, *sheet; /* the ticket's, once read */
    char lang[16]; /* the page's language (kn_lang_valid), "" none */
};

/*
 * The verification mail's second paragraph, after the Japanese: one row a
 * page language (web/register/strings-<lang>.json), the first (English)
 * for the Japanese page, no language or one without a row.  %s: the
 * school.  The verify page may open in Japanese (another browser than
 * the sign-up's): its button is named in both.
 */
static const struct {
    const char *lang, *text, *subject;
} verify_words[] = {
    {"en",
     "To finish registering for %s, open the link above and press the "
     "button, or type the code on the registration page.\n",
     "Confirm your e-mail address"},
    {"pt",
     "Para concluir o cadastro para receber os avisos da escola (%s), "
     "abra o link acima e toque no botão \"Cadastrar\" (登録する), ou "
     "digite o código acima na página de cadastro. Se você não pediu "
     "este cadastro, ignore este e-mail.\n",
     "Confirme seu endereço de e-mail"},
    {"zh",
     "要完成学校通知（%s）的登记，请打开上面的链接并点击“登记”（登録する）"
     "按钮，或在登记页面输入上面的确认码。如果您没有申请登记，请忽略这封"
     "邮件。\n",
     "请确认您的电子邮件地址"},
    {"vi",
     "Để hoàn tất việc đăng ký nhận thông báo của trường (%s), vui lòng "
     "mở đường link ở trên và nhấn nút \"Đăng ký\" (登録する), hoặc nhập "
     "mã xác nhận ở trên vào trang đăng ký. Nếu quý phụ huynh không yêu "
     "cầu đăng ký, vui lòng bỏ qua email này.\n",
     "Xác nhận địa chỉ email"},
    {"fil",
     "Para matapos ang pagpaparehistro para sa mga abiso ng paaralan "
     "(%s), buksan ang link sa itaas at pindutin ang button na "
     "\"Magparehistro\" (登録する), o ilagay ang code sa itaas sa "
     "registration page. Kung hindi kayo ang nagparehistro, huwag "
     "pansinin ang email na ito.\n",
     "Kumpirmahin ang inyong email address"},
};

static size_t verify_row(const char *lang)
{
    for (size_t i = 0; i < KN_ARRAY_SIZE(verify_words); i++)
        if (strcmp(verify_words[i].lang, lang) == 0)
            return i;
    return 0;
}

static const char *verify_text(const char *lang)
{
    return verify_words[verify_row(lang)].text;
}

/* The mail's subject: Japanese, and for a page in another language that
 * language's words after it (a guardian who reads no Japanese sees what
 * the mail is in the list of mails). */
static char *verify_subject(const char *lang)
{
    static const char ja[] = "【連絡網】メールアドレスの確認";
    if (lang[0] == '\0' || strcmp(lang, "ja") == 0)
        return kn_xstrdup(ja);
    return kn_xasprintf("%s / %s", ja, verify_words[verify_row(lang)].subject);
}

static void mail_free(struct mail *m)
{
    free(m->tenant);
    free(m->rcpt);
    free(m->sheet);
    kn__httpd_free_secret(&m->email);
    kn__httpd_free_secret(&m->name);
    kn__httpd_free_secret(&m->relation);
    free(m);
}

static void on_mail_counted(struct batch *b);

/* The ticket read: a live one's mails and the address' are counted
 * (atomic, and only for a live ticket: nobody can use up a stranger's
 * address with made-up tickets), then compared (on_mail_counted). */
static void on_mail_ticket(struct batch *b)
{
    struct mail *m = b->arg;
    struct conn *c = b->c;
    struct kn_daemon *d;
    const redisReply *h;
    struct batch *nb;
    char bi[33], *k;

    if (!kn__httpd_batch_usable(b)) {
        mail_free(m);
        return;
    }
    d = c->srv->d;
    h = kn__httpd_brep(b, 0);
    if (h == NULL || h->type != REDIS_REPLY_ARRAY || h->elements != 3 ||
        h->element[0]->type != REDIS_REPLY_STRING ||
        h->element[1]->type != REDIS_REPLY_STRING ||
        h->element[2]->type != REDIS_REPLY_STRING) {
        kn__httpd_respond_coded(c, 401, "ticket", "expired",
                                "登録の有効期限が切れました。ID とパスコード"
                                "からやり直してください (this registration "
                                "expired: start again with the ID and "
                                "passcode)");
        mail_free(m);
        return;
    }
    m->tenant = kn_xstrdup(h->element[0]->str);
    m->rcpt = kn_xstrdup(h->element[1]->str);
    m->sheet = kn_xstrdup(h->element[2]->str);
    nb = kn__httpd_batch_new(c->srv, c, on_mail_counted, m);
    k = kn_key_reg_ticket(d->prefix, m->th);
    kn__httpd_batch_count(nb, k, "mails", REG_TICKET_MS);
    free(k);
    kn_blind_index(d->kr, "email", m->email, bi);
    k = kn_key_reg_mails(d->prefix, bi);
    kn__httpd_batch_count(nb, k, NULL, REG_HOUR_MS);
    free(k);
    kn__httpd_batch_end(nb);
}

static void on_mail_counted(struct batch *b)
{
    struct mail *m = b->arg;
    struct conn *c = b->c;
    struct http_srv *s;
    struct kn_daemon *d;
    char link[KN_SESSION_ID_CHARS + 1], lh[65], code[8], ch[33], bi[33];
    char ms[24], now[24], *k, *e, *nm, *rl, *both, *url, *body, *words;
    char masked[200], *subject;
    const char *tenant;
    const char *to[1];
    json_t *j;
    int rc;

    if (!kn__httpd_batch_usable(b))
        goto out;
    s = c->srv;
    d = s->d;
    /* A sign-up sends at most REG_MAILS mails (counted first: mails sent
     * at once cannot all pass). */
    if (kn__httpd_rnum(kn__httpd_brep(b, 0)) > REG_MAILS) {
        kn__httpd_respond_coded(c, 429, "email", "mail_limit",
                                "確認メールを送れる回数を超えました。ID と"
                                "パスコードからやり直してください (too many "
                                "mails for this registration: start again)");
        goto out;
    }
    /* An address gets at most REG_ADDR_MAILS in the hour from every
     * sheet together: nobody mails a stranger again and again. */
    if (kn__httpd_rnum(kn__httpd_brep(b, 2)) > REG_ADDR_MAILS) {
        kn__httpd_respond_json(
            c, 429,
            json_pack("{s:s, s:s, s:s}", "error",
                      "このアドレスには、しばらく確認メールを送れません。"
                      "1時間ほどしてからやり直してください (too many mails "
                      "to this address: try again in an hour)",
                      "field", "email", "code", "addr_limit"),
            "Retry-After: 3600\r\n");
        goto out;
    }
    tenant = m->tenant;
    kn_session_new_id(link);
    kn_session_hash(link, lh);
    snprintf(code, sizeof(code), "%06u", (unsigned)kn_random_below(1000000));
    both = kn_xasprintf("%s:%s", m->th, code);
    kn_blind_index(d->kr, "regcode", both, ch);
    kn_free_secret(both);
    kn_blind_index(d->kr, "email", m->email, bi);
    e = kn_seal(d->kr, "email", m->email, strlen(m->email));
    nm = seal_opt(d->kr, "name", m->name);
    rl = seal_opt(d->kr, "name", m->relation);
    snprintf(now, sizeof(now), "%lld", (long long)kn_now_ms());
    k = kn_key_reg_verify(d->prefix, lh);
    kn_redis_cmd(d->cmd, NULL, NULL,
                 "HSET %s t %s r %s s %s e %s ei %s nm %s rl %s cs %s tk %b "
                 "lg %s",
                 k, tenant, m->rcpt, m->sheet, e, bi, nm, rl, now, m->th,
                 (size_t)16, m->lang);
    kn_redis_cmd(d->cmd, NULL, NULL, "PEXPIRE %s %lld", k, REG_VERIFY_MS);
    free(k);
    k = kn_key_reg_ticket(d->prefix, m->th);
    kn_redis_cmd(d->cmd, NULL, NULL, "HSET %s v %s code %s tries 0", k, lh, ch);
    snprintf(ms, sizeof(ms), "%lld", REG_TICKET_MS);
    kn_redis_cmd(d->cmd, NULL, NULL, "PEXPIRE %s %s", k, ms);
    free(k);
    free(e);
    free(nm);
    free(rl);

    url = kn_xasprintf("%s/r#v=%s", s->cfg->http_public_url, link);
    words = kn_xasprintf(verify_text(m->lang), tenant);
    body = kn_xasprintf(
        "%s の連絡網への登録を受け付けました。\n"
        "次のリンクを開き、「登録する」を押してください（24時間有効）:\n"
        "%s\n\n"
        "リンクを開けない場合は、登録ページにこの確認コードを入力して"
        "ください:\n%s\n\n"
        "心当たりがない場合は、このメールを破棄してください。\n\n%s",
        tenant, url, code, words);
    free(words);
    to[0] = m->email;
    subject = verify_subject(m->lang);
    rc = send_mail(s, tenant, to, 1, subject, body);
    free(subject);
    if (rc < 0) {
        kn__httpd_respond_coded(c, 503, NULL, "retry", KN__HTTPD_BUSY);
    } else {
        kn_mask_address(m->email, masked, sizeof(masked));
        j = json_pack("{s:s}", "sent", masked);
        kn__httpd_respond_json(c, 202, j, NULL);
        kn_log(KN_LOG_INFO, "http", "registration mail queued", "tenant",
               tenant, "to", masked, NULL);
    }
    OPENSSL_cleanse(body, strlen(body));
    OPENSSL_cleanse(url, strlen(url));
    free(body);
    free(url);
    OPENSSL_cleanse(link, sizeof(link));
    OPENSSL_cleanse(code, sizeof(code));
out:
    mail_free(m);
}

void kn__httpd_run_register_email(struct conn *c)
{
    struct kn_daemon *d = c->srv->d;
    json_t *j = kn__httpd_json_object(c), *consent;
    const char *ticket, *email, *name, *rel, *lang, *why = NULL;
    struct mail *m;
    struct batch *b;
    char *k;

    if (j == NULL)
        return;
    ticket = jstr(j, "ticket");
    email = jstr(j, "email");
    name = jstr(j, "name");
    rel = jstr(j, "relation");
    lang = jstr(j, "lang"); /* the page's language: the guardian's pf.lg */
    consent = json_object_get(j, "consent");
    if (!kn__reg_ticket_ok(ticket)) {
        kn__reg_bad_ticket(c);
    } else if (email == NULL || email[0] == '\0' ||
               kn_addr_check(email, &why) < 0) {
        kn__httpd_respond_coded(c, 400, "email", "bad_email",
                                "メールアドレスを確認してください (check the "
                                "e-mail address: %s)",
                                why ? why : "it is empty");
    } else if (short_text_ok(name) < 0) {
        kn__httpd_respond_coded(c, 400, "name", "bad_name",
                                "お名前は100バイトまで、1行で、制御文字なしで"
                                "入力してください (a name of at most 100 "
                                "bytes, one line, without control or bidi "
                                "characters)");
    } else if (kn__httpd_refuse_gaiji(c, name, KN_GAIJI_NAME, "name",
                                      "gaiji_name", "お名前")) {
        /* refused: a box on the school's screens and in the mails */
    } else if (short_text_ok(rel) < 0) {
        kn__httpd_respond_coded(c, 400, "relation", "bad_relation",
                                "続柄は100バイトまで、1行で、制御文字なしで"
                                "入力してください (a relation of at most 100 "
                                "bytes, one line, without control or bidi "
                                "characters)");
    } else if (kn__httpd_refuse_gaiji(c, rel, KN_GAIJI_NAME, "relation",
                                      "gaiji_relation", "続柄")) {
    } else if (!kn__reg_lang_ok(lang)) {
        kn__reg_bad_lang(c);
    } else if (!json_is_true(consent)) {
        kn__httpd_respond_coded(c, 400, "consent", "need_consent",
                                "プライバシーポリシーへの同意が必要です "
                                "(check the box to agree to the school's "
                                "privacy notice)");
    } else {
        m = kn_xcalloc(1, sizeof(*m));
        kn_session_hash(ticket, m->th);
        m->email = kn_xstrdup(email);
        m->name = name && name[0] ? kn_xstrdup(name) : NULL;
        m->relation = rel && rel[0] ? kn_xstrdup(rel) : NULL;
        if (lang != NULL)
            snprintf(m->lang, sizeof(m->lang), "%s", lang);
        b = kn__httpd_batch_new(c->srv, c, on_mail_ticket, m);
        k = kn_key_reg_ticket(d->prefix, m->th);
        kn__httpd_batch_cmd(b, "HMGET", k, "t", "r", "s", NULL);
        free(k);
        kn__httpd_batch_end(b);
    }
    json_decref(j);
}

/* ------------------------------------------------ POST /r/verify */

struct verify {
    char th[65]; /* the ticket's hash (code path) or "" */
    char code[8];
};

/*
 * The address is registered: answer, log, and tell the child's other
 * contacts (reply: {1, tenant, rcpt, child name, guardian name,
 * relation, addresses...}, every personal value sealed).
 */
static void on_verified(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct conn *c = arg;
    long long what;
    if (!kn__httpd_conn_release(c))
        return;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER) {
        kn_log(KN_LOG_ERROR, "http", "reg_verify failed", "error",
               rep && rep->type == REDIS_REPLY_ERROR ? rep->str : "no reply",
               NULL);
        kn__httpd_respond_coded(c, 503, NULL, "retry", KN__HTTPD_BUSY);
        return;
    }
    what = rep->element[0]->integer;
    if (what == 0) {
        kn__httpd_respond_coded(c, 404, "v", "bad_link",
                                "このリンクは無効か、期限が切れています。"
                                "登録ページからやり直してください (this link "
                                "is not valid or has expired: register "
                                "again)");
        return;
    }
    if (what == 2) {
        kn__httpd_respond_coded(c, 409, "v", "sheet_gone",
                                "この登録用紙は使えなくなりました。学校に"
                                "お問い合わせください (this sheet was "
                                "replaced or is used up: ask the school)");
        return;
    }
    if (what == 3) {
        kn__httpd_respond_json(
            c, 200, json_pack("{s:b,s:b}", "registered", 1, "already", 1),
            NULL);
        return;
    }
    if (rep->elements < 6) {
        kn__httpd_respond_coded(c, 500, NULL, "retry", KN__HTTPD_BUSY);
        return;
    }
    {
        const char *tenant = rep->element[1]->str, *rcpt = rep->element[2]->str;
        op_log(c, "registration.add", tenant, rcpt);
        kn_log(KN_LOG_INFO, "http", "guardian registered", "tenant", tenant,
               "rcpt", rcpt, NULL);
        kn__httpd_respond_json(c, 200, json_pack("{s:b}", "registered", 1),
                               NULL);
        kn__reg_tell_contacts(c->srv, rep, rep->elements - 6);
    }
}

/*
 * Mail the child's other contacts that a guardian was registered (rep:
 * the {1, tenant, rcpt, child name, guardian name, relation, addresses
 * ...} of reg_verify.lua or reg_line.lua, every personal value sealed).
 */
void kn__reg_tell_contacts(struct http_srv *s, const redisReply *rep,
                           size_t naddr)
{
    struct kn_daemon *d = s->d;
    {
        const char *tenant = rep->element[1]->str, *rcpt = rep->element[2]->str;
        size_t n = naddr, got = 0;
        const char **to = kn_xcalloc(n + 1, sizeof(*to));
        char *child = kn__httpd_unseal_opt(d->kr, "name", rep->element[3]->str);
        char *gname = kn__httpd_unseal_opt(d->kr, "name", rep->element[4]->str);
        char *grel = kn__httpd_unseal_opt(d->kr, "name", rep->element[5]->str);
        char *body;

        for (size_t i = 0; i < n; i++) {
            char *plain =
                kn__httpd_unseal_opt(d->kr, "email", rep->element[6 + i]->str);
            if (plain != NULL)
                to[got++] = plain;
        }
        if (got > 0) {
            body = kn_xasprintf(
                "%s の連絡先として、新しい保護者%s%s%s%s%s が登録されました。"
                "\n心当たりがない場合は、すぐに学校にお知らせください。\n\n"
                "A new guardian was registered for %s. If you do not know "
                "who, tell the school at once.\n",
                child ? child : rcpt, gname || grel ? "（" : "",
                gname ? gname : "", gname && grel ? "、" : "", grel ? grel : "",
                gname || grel ? "）" : "", child ? child : rcpt);
            send_mail(s, tenant, to, got, "【連絡網】保護者の登録がありました",
                      body);
            OPENSSL_cleanse(body, strlen(body));
            free(body);
        }
        for (size_t i = 0; i < got; i++)
            kn_free_secret((char *)to[i]);
        free(to);
        kn__httpd_free_secret(&child);
        kn__httpd_free_secret(&gname);
        kn__httpd_free_secret(&grel);
    }
}

static void verify_run(struct conn *c, const char *link_hash)
{
    struct kn_daemon *d = c->srv->d;
    char *k = kn_key_reg_verify(d->prefix, link_hash), now[24];
    const char *argv[] = {k, d->prefix, now};
    if (verify_script.sha[0] == '\0')
        kn_redis_script_init(&verify_script);
    snprintf(now, sizeof(now), "%lld", (long long)kn_now_ms());
    kn__httpd_conn_hold(c);
    if (kn_redis_eval(d->cmd, &verify_script, on_verified, c, 1, 3, argv,
                      NULL) < 0) {
        c->refs--;
        kn__httpd_respond_coded(c, 503, NULL, "retry", KN__HTTPD_BUSY);
    }
    free(k);
}

static void on_code_ticket(struct batch *b)
{
    struct verify *v = b->arg;
    struct conn *c = b->c;
    struct kn_daemon *d;
    const redisReply *h;
    char ch[33], *both, *k;
    if (!kn__httpd_batch_usable(b))
        goto out;
    d = c->srv->d;
    h = kn__httpd_brep(b, 2);
    if (h == NULL || h->type != REDIS_REPLY_ARRAY || h->elements != 2 ||
        h->element[0]->type != REDIS_REPLY_STRING ||
        h->element[1]->type != REDIS_REPLY_STRING) {
        kn__httpd_respond_coded(c, 401, "ticket", "expired",
                                "登録の有効期限が切れました。ID とパスコード"
                                "からやり直してください (this registration "
                                "expired: start again)");
        goto out;
    }
    if (kn__httpd_rnum(kn__httpd_brep(b, 0)) > REG_CODE_TRIES) {
        kn__httpd_respond_coded(c, 429, "code", "code_tries",
                                "確認コードの間違いが続きました。確認メールを"
                                "送り直してください (too many wrong codes: "
                                "send the mail again)");
        goto out;
    }
    both = kn_xasprintf("%s:%s", v->th, v->code);
    kn_blind_index(d->kr, "regcode", both, ch);
    kn_free_secret(both);
    if (strlen(h->element[1]->str) != 32 ||
        CRYPTO_memcmp(ch, h->element[1]->str, 32) != 0) {
        kn__httpd_respond_coded(c, 400, "code", "bad_code",
                                "確認コードが違います (the code is wrong: "
                                "type the 6 digits of the mail)");
        goto out;
    }
    k = kn_key_reg_ticket(d->prefix, v->th);
    kn_redis_cmd(d->cmd, NULL, NULL, "HDEL %s v code", k);
    free(k);
    verify_run(c, h->element[0]->str);
out:
    OPENSSL_cleanse(v, sizeof(*v));
    free(v);
}

void kn__httpd_run_register_verify(struct conn *c)
{
    struct kn_daemon *d = c->srv->d;
    json_t *j = kn__httpd_json_object(c);
    const char *link, *ticket, *code;
    char lh[65];

    if (j == NULL)
        return;
    link = jstr(j, "v");
    ticket = jstr(j, "ticket");
    code = jstr(j, "code");
    if (link != NULL) {
        if (strlen(link) != KN_SESSION_ID_CHARS) {
            kn__httpd_respond_coded(c, 404, "v", "bad_link",
                                    "このリンクは無効です (this link is not "
                                    "valid)");
        } else {
            kn_session_hash(link, lh);
            verify_run(c, lh);
        }
    } else if (!kn__reg_ticket_ok(ticket)) {
        kn__reg_bad_ticket(c);
    } else if (code == NULL || strlen(code) != 6 ||
               strspn(code, "0123456789") != 6) {
        kn__httpd_respond_coded(c, 400, "code", "code_format",
                                "確認コードは6桁の数字です (the code is 6 "
                                "digits)");
    } else {
        struct verify *v = kn_xcalloc(1, sizeof(*v));
        struct batch *b;
        char *k;
        kn_session_hash(ticket, v->th);
        memcpy(v->code, code, 6);
        b = kn__httpd_batch_new(c->srv, c, on_code_ticket, v);
        k = kn_key_reg_ticket(d->prefix, v->th);
        /* The try is counted before it is judged.  An unknown ticket's
         * count gets the ticket's lifetime and no code. */
        kn__httpd_batch_count(b, k, "tries", REG_TICKET_MS);
        kn__httpd_batch_cmd(b, "HMGET", k, "v", "code", NULL);
        free(k);
        kn__httpd_batch_end(b);
    }
    json_decref(j);
}
