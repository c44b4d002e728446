/*
 * register_link.c - the other two ways a guardian signs up from the
 * registration page (register.c, issue 15), each bound to the sign-up's
 * ticket:
 *
 *   POST /r/app      {ticket, lang}: a code for the school app (8
 *                    characters, single use, 10 minutes), which the app
 *                    gives POST /v1/devices with its push token.
 *   POST /r/line     {ticket, consent: true, lang}: a code (8 digits) to
 *                    send to the school's LINE official account; the
 *                    webhook (line_webhook.c) hands the message here
 *                    (kn__httpd_line_link), and the guardian is answered
 *                    through LINE's Reply API in Japanese and the page's
 *                    language.
 *   GET  /r/line-qr.svg  the official account's friend-add link as a QR.
 */
#include "dispatcher/http/http_int.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kn.h"
#include "common/log.h"
#include "common/qrsvg.h"
#include "common/seal.h"
#include "model/address.h"
#include "model/directory.h"
#include "model/line_event.h"
#include "model/regsheet.h"
#include "model/session.h"
#include "queue/keys.h"
#include "queue/lua.h"

static const char *const csp = kn__httpd_csp_guardian;

static const char *jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* ------------------------------------------------ the school app */

#define APP_CODE_MS (10LL * 60 * 1000)

static struct kn_redis_script device_script = {"reg_device", kn_lua_reg_device,
                                               ""};

/* A code for the app or for LINE: the sign-up's ticket hash and the
 * page's language ("" none), which the code carries to the guardian. */
struct appcode {
    char th[65];
    char lang[16];
};

/* Read the sign-up behind ticket (its child and sheet) for a code of the
 * app or LINE, then done(b) with the struct appcode as b->arg. */
static void code_for(struct conn *c, const char *ticket, const char *lang,
                     void (*done)(struct batch *))
{
    struct appcode *a = kn_xcalloc(1, sizeof(*a));
    struct batch *b;
    char *k;
    kn_session_hash(ticket, a->th);
    if (lang != NULL)
        snprintf(a->lang, sizeof(a->lang), "%s", lang);
    b = kn__httpd_batch_new(c->srv, c, done, a);
    k = kn_key_reg_ticket(c->srv->d->prefix, a->th);
    kn__httpd_batch_cmd(b, "HMGET", k, "t", "r", "s", NULL);
    free(k);
    kn__httpd_batch_end(b);
}

/* POST /r/app {ticket}: a code the school app sends with its push token
 * (POST /v1/devices): 8 characters of the sheet alphabet, single use, 10
 * minutes, bound to this sign-up. */
static void on_app_ticket(struct batch *b)
{
    struct appcode *a = b->arg;
    struct conn *c = b->c;
    struct kn_daemon *d;
    const redisReply *h;
    char code[KN_REG_ID_LEN + 1], ch[65], *k;
    if (!kn__httpd_batch_usable(b))
        goto out;
    d = c->srv->d;
    h = kn__httpd_brep(b, 0);
    if (h == NULL || h->type != REDIS_REPLY_ARRAY || h->elements != 3 ||
        h->element[0]->type != REDIS_REPLY_STRING) {
        kn__httpd_respond_coded(c, 401, "ticket", "expired",
                                "登録の有効期限が切れました。ID とパスコード"
                                "からやり直してください (this registration "
                                "expired: start again)");
        goto out;
    }
    kn_reg_id_new(code);
    kn_session_hash(code, ch);
    k = kn_key_reg_app(d->prefix, ch);
    kn_redis_cmd(d->cmd, NULL, NULL, "HSET %s t %s r %s s %s tk %b lg %s", k,
                 h->element[0]->str, h->element[1]->str, h->element[2]->str,
                 a->th, (size_t)16, a->lang);
    kn_redis_cmd(d->cmd, NULL, NULL, "PEXPIRE %s %lld", k, APP_CODE_MS);
    free(k);
    kn__httpd_respond_json(c, 200,
                           json_pack("{s:s,s:I}", "code", code, "expires_in",
                                     (json_int_t)(APP_CODE_MS / 1000)),
                           NULL);
    OPENSSL_cleanse(code, sizeof(code));
out:
    free(a);
}

void kn__httpd_run_register_app(struct conn *c)
{
    json_t *j = kn__httpd_json_object(c);
    const char *ticket, *lang;
    if (j == NULL)
        return;
    ticket = jstr(j, "ticket");
    lang = jstr(j, "lang");
    if (!kn__reg_ticket_ok(ticket))
        kn__reg_bad_ticket(c);
    else if (!kn__reg_lang_ok(lang))
        kn__reg_bad_lang(c);
    else
        code_for(c, ticket, lang, on_app_ticket);
    json_decref(j);
}

struct device {
    struct conn *c;
    char cred[KN_SESSION_ID_CHARS + 1]; /* a new credential, or "" */
    char *tenant;
};

static void device_free(struct device *dv)
{
    OPENSSL_cleanse(dv->cred, sizeof(dv->cred));
    free(dv);
}

static void on_device(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct device *dv = arg;
    struct conn *c = dv->c;
    long long what;
    (void)r;
    if (!kn__httpd_conn_release(c)) {
        device_free(dv);
        return;
    }
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER) {
        kn_log(KN_LOG_ERROR, "http", "reg_device failed", "error",
               rep && rep->type == REDIS_REPLY_ERROR ? rep->str : "no reply",
               NULL);
        kn__httpd_respond_error(c, 503, NULL, "Redis did not answer; retry");
        device_free(dv);
        return;
    }
    what = rep->element[0]->integer;
    if (what == 0) {
        kn__httpd_respond_error(c, 401, dv->cred[0] ? "code" : "credential",
                                "unknown or expired %s",
                                dv->cred[0] ? "code: get a new one on the "
                                              "registration page"
                                            : "device credential: register "
                                              "the device again");
    } else if (what == 2) {
        kn__httpd_respond_error(c, 409, "code",
                                "the registration sheet was replaced or is "
                                "used up: ask the school");
    } else if (what == 3) {
        kn__httpd_respond_json(c, 200, json_pack("{s:b}", "already", 1), NULL);
    } else if (dv->cred[0]) {
        kn__reg_op_log(c->srv, c->req.source, "http", "registration.device",
                       rep->element[1]->str, rep->element[2]->str);
        kn__httpd_respond_json(
            c, 201, json_pack("{s:s}", "device_credential", dv->cred), NULL);
    } else {
        kn__httpd_respond_json(c, 200, json_pack("{s:b}", "updated", 1), NULL);
    }
    device_free(dv);
}

/*
 * POST /v1/devices: {"code", "platform", "token"} registers the school
 * app's push token with a code from the registration page (201 with a
 * device credential, shown once); {"credential", "platform", "token"}
 * replaces the device's token when the platform rotates it (200).
 */
void kn__httpd_run_devices(struct conn *c)
{
    struct kn_daemon *d = c->srv->d;
    json_t *j = kn__httpd_json_object(c);
    const char *code, *cred, *platform, *token, *why = NULL;
    char h[65], norm[KN_REG_ID_LEN + 1], bi[33], credh[65], now[24];
    char *key = NULL, *sealed;
    struct device *dv;

    if (j == NULL)
        return;
    code = jstr(j, "code");
    cred = jstr(j, "credential");
    platform = jstr(j, "platform");
    token = jstr(j, "token");
    if (platform == NULL ||
        (strcmp(platform, "fcm") != 0 && strcmp(platform, "apns") != 0)) {
        kn__httpd_respond_error(c, 400, "platform",
                                "platform: \"fcm\" or \"apns\"");
        goto out;
    }
    if (token == NULL ||
        (strcmp(platform, "fcm") == 0 ? kn_addr_fcm_check(token, &why)
                                      : kn_addr_apns_check(token, &why)) < 0) {
        kn__httpd_respond_error(c, 400, "token", "token: %s",
                                why ? why : "missing");
        goto out;
    }
    if ((code == NULL) == (cred == NULL)) {
        kn__httpd_respond_error(c, 400, "code",
                                "give either \"code\" (from the "
                                "registration page) or \"credential\" (the "
                                "device's)");
        goto out;
    }
    dv = kn_xcalloc(1, sizeof(*dv));
    dv->c = c;
    if (code != NULL) {
        if (kn_reg_normalise(code, KN_REG_ID_LEN, norm, sizeof(norm)) < 0) {
            kn__httpd_respond_error(c, 401, "code",
                                    "unknown or expired code: get a new one "
                                    "on the registration page");
            device_free(dv);
            goto out;
        }
        kn_session_hash(norm, h);
        key = kn_key_reg_app(d->prefix, h);
        kn_session_new_id(dv->cred);
        kn_session_hash(dv->cred, credh);
    } else {
        if (strlen(cred) != KN_SESSION_ID_CHARS) {
            kn__httpd_respond_error(c, 401, "credential",
                                    "unknown device credential");
            device_free(dv);
            goto out;
        }
        kn_session_hash(cred, credh);
        key = kn_key_reg_device(d->prefix, credh);
    }
    kn_blind_index(d->kr, "push", token, bi);
    sealed = kn_seal(d->kr, "push", token, strlen(token));
    snprintf(now, sizeof(now), "%lld", (long long)kn_now_ms());
    if (device_script.sha[0] == '\0')
        kn_redis_script_init(&device_script);
    {
        const char *argv[] = {key, d->prefix, code ? "new" : "rotate",
                              now, platform,  sealed,
                              bi,  credh};
        kn__httpd_conn_hold(c);
        if (kn_redis_eval(d->cmd, &device_script, on_device, dv, 1, 8, argv,
                          NULL) < 0) {
            c->refs--;
            device_free(dv);
            kn__httpd_respond_error(c, 503, NULL,
                                    "Redis is unreachable; try again");
        }
    }
    free(sealed);
out:
    free(key);
    json_decref(j);
}

/* ------------------------------------------------ LINE */

#define LINE_CODE_MS   (10LL * 60 * 1000)
#define LINE_FAIL_MS   (10LL * 60 * 1000)
#define LINE_FAIL_USER 5   /* wrong codes per LINE user in 10 minutes */
#define LINE_FAIL_ALL  200 /* wrong codes of everybody in 10 minutes */

static struct kn_redis_script line_script = {"reg_line", kn_lua_reg_line, ""};

/* line.add_friend_url, if it is an https link; else NULL. */
static const char *friend_url(const struct kn_config *cfg)
{
    const char *u = cfg->line_add_friend_url;
    if (u == NULL || strncmp(u, "https://", 8) != 0 || strlen(u) > 500 ||
        strpbrk(u, "\"'<> ") != NULL)
        return NULL;
    return u;
}

/* GET /r/line-qr.svg: the friend-add link as a QR code (public data);
 * drawn once per link (up to 1 ms for a long one) and kept. */
void kn__reg_line_qr(struct conn *c)
{
    struct http_srv *s = c->srv;
    const char *u = friend_url(s->cfg);
    if (u != NULL && (s->reg_qr_url == NULL || strcmp(s->reg_qr_url, u) != 0)) {
        free(s->reg_qr);
        free(s->reg_qr_url);
        s->reg_qr = kn_qr_svg(u, "LINE");
        s->reg_qr_url = s->reg_qr ? kn_xstrdup(u) : NULL;
    }
    if (u == NULL || s->reg_qr == NULL) {
        kn__httpd_respond_error(c, 404, NULL,
                                "line.add_friend_url is not set: ask the "
                                "school");
        return;
    }
    kn__httpd_respond(c, 200, "image/svg+xml", s->reg_qr, strlen(s->reg_qr),
                      csp, NULL);
}

/* POST /r/line {ticket, consent: true}: a link code to send to the
 * school's LINE official account (8 digits, single use, 10 minutes, bound
 * to this sign-up; only its keyed hash is kept: rline:<index>). */
static void on_line_ticket(struct batch *b)
{
    struct appcode *lc = b->arg;
    struct conn *c = b->c;
    struct kn_daemon *d;
    const redisReply *h;
    const char *url;
    char code[KN_LINE_CODE_DIGITS + 1], ch[33], now[24], *k;
    if (!kn__httpd_batch_usable(b))
        goto out;
    d = c->srv->d;
    h = kn__httpd_brep(b, 0);
    if (h == NULL || h->type != REDIS_REPLY_ARRAY || h->elements != 3 ||
        h->element[0]->type != REDIS_REPLY_STRING ||
        h->element[1]->type != REDIS_REPLY_STRING ||
        h->element[2]->type != REDIS_REPLY_STRING) {
        kn__httpd_respond_coded(c, 401, "ticket", "expired",
                                "登録の有効期限が切れました。ID とパスコード"
                                "からやり直してください (this registration "
                                "expired: start again)");
        goto out;
    }
    snprintf(code, sizeof(code), "%0*u", KN_LINE_CODE_DIGITS,
             (unsigned)kn_random_below(100000000));
    kn_blind_index(d->kr, "linecode", code, ch);
    snprintf(now, sizeof(now), "%lld", (long long)kn_now_ms());
    k = kn_key_reg_line(d->prefix, ch);
    kn_redis_cmd(d->cmd, NULL, NULL, "HSET %s t %s r %s s %s tk %b cs %s lg %s",
                 k, h->element[0]->str, h->element[1]->str, h->element[2]->str,
                 lc->th, (size_t)16, now, lc->lang);
    kn_redis_cmd(d->cmd, NULL, NULL, "PEXPIRE %s %lld", k, LINE_CODE_MS);
    free(k);
    url = friend_url(c->srv->cfg);
    kn__httpd_respond_json(
        c, 200,
        json_pack("{s:s,s:I,s:s?,s:s?}", "code", code, "expires_in",
                  (json_int_t)(LINE_CODE_MS / 1000), "add_friend_url", url,
                  "qr", url ? "/r/" KN__REG_LINE_QR : NULL),
        NULL);
    OPENSSL_cleanse(code, sizeof(code));
out:
    free(lc);
}

void kn__httpd_run_register_line(struct conn *c)
{
    json_t *j = kn__httpd_json_object(c);
    const char *ticket, *lang;
    if (j == NULL)
        return;
    ticket = jstr(j, "ticket");
    lang = jstr(j, "lang");
    if (!kn__reg_ticket_ok(ticket)) {
        kn__reg_bad_ticket(c);
    } else if (!kn__reg_lang_ok(lang)) {
        kn__reg_bad_lang(c);
    } else if (!json_is_true(json_object_get(j, "consent"))) {
        kn__httpd_respond_coded(c, 400, "consent", "need_consent",
                                "プライバシーポリシーへの同意が必要です "
                                "(check the box to agree to the school's "
                                "privacy notice)");
    } else {
        code_for(c, ticket, lang, on_line_ticket);
    }
    json_decref(j);
}

/* Answer through LINE's Reply API (the LINE adapter, opened on first use
 * and kept: its HTTP client and channel access token). */
static void line_reply(struct http_srv *s, const char *reply_token,
                       const char *text)
{
    if (reply_token == NULL)
        return;
    if (s->line_reply.ops == NULL) {
        const struct kn_adapter_ops *ops = kn_adapter_find("line");
        if (ops == NULL || ops->reply == NULL)
            return;
        s->line_reply.loop = s->d->loop;
        if (ops->open(&s->line_reply, s->cfg) < 0) {
            kn_log(KN_LOG_ERROR, "http", "LINE reply: the adapter cannot open",
                   NULL);
            return;
        }
        s->line_reply.ops = ops;
    }
    if (s->line_reply.ops->reply(&s->line_reply, reply_token, text) < 0)
        kn_log(KN_LOG_WARN, "http", "LINE reply refused", NULL);
}

void kn__httpd_line_reply_close(struct http_srv *s)
{
    if (s->line_reply.ops != NULL) {
        s->line_reply.ops->close(&s->line_reply);
        s->line_reply.ops = NULL;
    }
}

struct linelink {
    struct http_srv *srv;
    char *reply_token;
};

/*
 * What the guardian is answered in LINE, after the Japanese: one row a
 * page language (web/register/strings-<lang>.json), the first (English)
 * when the language is not known (a wrong or used code: its record is
 * gone) or has no row.  A Japanese page's guardian gets Japanese only.
 */
static const struct {
    const char *lang, *ok, *wrong, *gone, *already, *wait, *busy;
} line_words[] = {
    {"en",
     "Registered: the school's messages will now come to this LINE. If you "
     "did not ask for this, please tell the school.",
     "The code is wrong or has expired (10 minutes). Check the code on the "
     "registration page and send it again.",
     "This registration sheet can no longer be used. Please ask the "
     "school.",
     "This LINE is already registered.",
     "Too many wrong codes. Please wait about 10 minutes and send it "
     "again.",
     "Registration is not possible right now. Please send it again a "
     "little later."},
    {"pt",
     "Cadastro concluído: os avisos da escola chegarão por este LINE. Se "
     "você não pediu isto, avise a escola.",
     "O código está errado ou expirou (10 minutos). Confira o código na "
     "página de cadastro e envie de novo.",
     "Esta ficha de cadastro não pode mais ser usada. Entre em contato com "
     "a escola.",
     "Este LINE já está cadastrado.",
     "Muitos códigos errados. Aguarde uns 10 minutos e envie de novo.",
     "Não é possível cadastrar agora. Envie de novo daqui a pouco."},
    {"zh",
     "登记完成：学校的通知将发送到此 LINE。如果这不是您本人的操作，请告知"
     "学校。",
     "验证码不正确或已过期（10 分钟）。请在登记页面确认验证码后重新发送。",
     "此登记表已无法使用。请与学校联系。", "此 LINE 已经登记过了。",
     "错误次数过多。请等待约 10 分钟后再发送。",
     "现在无法登记。请稍后重新发送。"},
    {"vi",
     "Đã đăng ký: thông báo của trường sẽ được gửi đến LINE này. Nếu quý "
     "phụ huynh không yêu cầu, vui lòng báo cho nhà trường.",
     "Mã không đúng hoặc đã hết hạn (10 phút). Vui lòng kiểm tra mã trên "
     "trang đăng ký rồi gửi lại.",
     "Phiếu đăng ký này không còn dùng được. Vui lòng liên hệ với nhà "
     "trường.",
     "LINE này đã được đăng ký.",
     "Nhập sai quá nhiều lần. Vui lòng đợi khoảng 10 phút rồi gửi lại.",
     "Hiện chưa thể đăng ký. Vui lòng gửi lại sau ít phút."},
    {"fil",
     "Nakarehistro na: darating na sa LINE na ito ang mga abiso ng "
     "paaralan. Kung hindi kayo ang humiling nito, ipaalam sa paaralan.",
     "Mali o expired na ang code (10 minuto). Tingnan ang code sa "
     "registration page at ipadala muli.",
     "Hindi na magagamit ang registration sheet na ito. Makipag-ugnayan sa "
     "paaralan.",
     "Nakarehistro na ang LINE na ito.",
     "Masyadong maraming maling code. Maghintay nang mga 10 minuto at "
     "ipadala muli.",
     "Hindi pa makapagparehistro ngayon. Ipadala muli mamaya."},
};

/* The Japanese text, then (unless the page was Japanese) a blank line and
 * the row's.  pick: which text of the row. */
static char *line_text(const char *ja, const char *lang, size_t pick)
{
    size_t row = 0;
    const char *w;
    if (strcmp(lang, "ja") == 0)
        return kn_xstrdup(ja);
    for (size_t i = 0; i < KN_ARRAY_SIZE(line_words); i++)
        if (strcmp(line_words[i].lang, lang) == 0)
            row = i;
    switch (pick) {
    case 1:
        w = line_words[row].ok;
        break;
    case 2:
        w = line_words[row].gone;
        break;
    case 3:
        w = line_words[row].already;
        break;
    case 4:
        w = line_words[row].wait;
        break;
    case 0:
        w = line_words[row].wrong;
        break;
    default:
        w = line_words[row].busy;
        break;
    }
    return kn_xasprintf("%s\n\n%s", ja, w);
}

/* The page language reg_line answered with (element i of rep), if it is
 * a string and a valid tag; else "". */
static void reply_lang(const redisReply *rep, size_t i, char *out, size_t n)
{
    const redisReply *e = i < rep->elements ? rep->element[i] : NULL;
    out[0] = '\0';
    if (e != NULL && e->type == REDIS_REPLY_STRING && e->len < n &&
        kn_lang_valid(e->str))
        memcpy(out, e->str, e->len + 1);
}

static void on_line_linked(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct linelink *ll = arg;
    struct http_srv *s = ll->srv;
    const char *ja;
    char *text, lang[16] = "";
    long long what = -1;
    (void)r;
    if (rep == NULL) { /* shutting down: the server may be gone */
        kn__httpd_free_secret(&ll->reply_token);
        free(ll);
        return;
    }
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 &&
        rep->element[0]->type == REDIS_REPLY_INTEGER)
        what = rep->element[0]->integer;
    /* Only a live code's answer names its page's language (reg_line.lua):
     * a wrong or throttled one is answered the same for every code. */
    if (what == 1 && rep->elements >= 7)
        reply_lang(rep, rep->elements - 1, lang, sizeof(lang));
    else if (what == 2 || what == 3)
        reply_lang(rep, 1, lang, sizeof(lang));
    if (what == 1 && rep->elements >= 7) {
        const char *tenant = rep->element[1]->str, *rcpt = rep->element[2]->str;
        char *child =
            kn__httpd_unseal_opt(s->d->kr, "name", rep->element[3]->str);
        char *msg = kn_xasprintf(
            "連絡網に登録しました。%s%sの学校からのお知らせを、この LINE "
            "でお届けします。\n心当たりがない場合は、学校にお知らせください。",
            child ? child : "", child ? " さん" : "お子さま");
        text = line_text(msg, lang, 1);
        kn__reg_op_log(s, "line", "line", "registration.add", tenant, rcpt);
        kn_log(KN_LOG_INFO, "http", "guardian registered (LINE)", "tenant",
               tenant, "rcpt", rcpt, NULL);
        line_reply(s, ll->reply_token, text);
        kn__reg_tell_contacts(s, rep, rep->elements - 7);
        kn__httpd_free_secret(&text);
        kn__httpd_free_secret(&msg);
        kn__httpd_free_secret(&child);
    } else {
        switch (what) {
        case 0:
            ja = "コードが違うか、有効期限（10分）が切れています。登録"
                 "ページでコードを確かめて、もう一度送ってください。";
            break;
        case 2:
            ja = "この登録用紙は使えなくなりました。学校にお問い合わせ"
                 "ください。";
            break;
        case 3:
            ja = "この LINE はすでに登録されています。";
            break;
        case 4:
            ja = "間違ったコードが続いたため、しばらく受け付けません。"
                 "10分ほどしてから、もう一度送ってください。";
            break;
        default:
            kn_log(KN_LOG_ERROR, "http", "reg_line failed", "error",
                   rep->type == REDIS_REPLY_ERROR ? rep->str : "no reply",
                   NULL);
            ja = "ただいま登録できません。しばらくしてから、もう一度"
                 "送ってください。";
            what = 5;
            break;
        }
        if (what == 0 || what == 4)
            kn_log(KN_LOG_INFO, "http", "LINE link code refused", "why",
                   what == 0 ? "wrong or expired" : "throttled", NULL);
        text = line_text(ja, lang, (size_t)what);
        line_reply(s, ll->reply_token, text);
        free(text);
    }
    kn__httpd_free_secret(&ll->reply_token);
    free(ll);
}

void kn__httpd_line_link(struct http_srv *s, const char *user_id,
                         const char *code, const char *reply_token)
{
    struct kn_daemon *d = s->d;
    struct linelink *ll;
    char ch[33], bi[33], win[24], per[24], all[24], now[24], *sealed;
    char *k1, *k2, *k3;
    kn_blind_index(d->kr, "linecode", code, ch);
    kn_blind_index(d->kr, "line", user_id, bi);
    sealed = kn_seal(d->kr, "line", user_id, strlen(user_id));
    k1 = kn_key_reg_line(d->prefix, ch);
    k2 = kn_key_reg_line_fail(d->prefix, bi);
    k3 = kn_key_reg_line_fail(d->prefix, "all");
    snprintf(now, sizeof(now), "%lld", (long long)kn_now_ms());
    snprintf(win, sizeof(win), "%lld", LINE_FAIL_MS);
    snprintf(per, sizeof(per), "%d", LINE_FAIL_USER);
    snprintf(all, sizeof(all), "%d", LINE_FAIL_ALL);
    if (line_script.sha[0] == '\0')
        kn_redis_script_init(&line_script);
    ll = kn_xcalloc(1, sizeof(*ll));
    ll->srv = s;
    ll->reply_token = reply_token ? kn_xstrdup(reply_token) : NULL;
    {
        const char *argv[] = {k1,     k2, k3,  d->prefix, now,
                              sealed, bi, win, per,       all};
        if (kn_redis_eval(d->cmd, &line_script, on_line_linked, ll, 3, 10, argv,
                          NULL) < 0) {
            kn_log(KN_LOG_ERROR, "http", "LINE link: Redis is unreachable",
                   NULL);
            kn__httpd_free_secret(&ll->reply_token);
            free(ll);
        }
    }
    free(sealed);
    free(k1);
    free(k2);
    free(k3);
}
