/*
 * mypage_link.c - "send me my link" (POST /m/link {id, email}): a guardian
 * whose my-page link is lost or old types the registration sheet's ID and
 * the e-mail address registered for the child; if they match, a new link
 * goes to that address (mypage.c is the page and its other steps).  The
 * answer is the same whether they match or not; at most MP_LINK_ADDR
 * requests an hour per address, MP_LINK_SHEET per sheet ID and
 * MP_LINK_CLIENT per client.
 */
#include "dispatcher/http/http_int.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/kn.h"
#include "common/log.h"
#include "common/seal.h"
#include "common/text.h"
#include "model/address.h"
#include "model/audit.h"
#include "model/broadcast.h"
#include "model/directory.h"
#include "model/gtoken.h"
#include "model/label.h"
#include "model/regsheet.h"
#include "queue/keys.h"
#include "queue/scripts.h"
#include "queue/submit.h"

#define MP_LINK_ADDR   3  /* "send me my link" per address and hour */
#define MP_LINK_SHEET  5  /* per sheet ID and hour */
#define MP_LINK_CLIENT 20 /* per client address and hour */

static const char *jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* ------------------------------------------------ POST /m/link */

struct link {
    char sheet[64];
    char bi[33];
    char *tenant, *child;
};

static void link_free(struct link *l)
{
    free(l->tenant);
    free(l->child);
    free(l);
}

static void link_answer(struct conn *c)
{
    c->req.auth_result = "ok";
    kn__httpd_respond_json(
        c, 202,
        json_pack("{s:s}", "message",
                  "登録されたアドレスであれば、マイページへのリンクを送り"
                  "ました (if the address is registered for this ID, a link "
                  "is on its way)"),
        NULL);
}

static void on_link_guardians(struct batch *b)
{
    struct link *l = b->arg;
    struct conn *c = b->c;
    struct http_srv *s;
    json_t *rec = NULL, *reg = NULL, *g = NULL;
    char *to = NULL;
    if (!kn__httpd_batch_usable(b))
        goto out;
    s = c->srv;
    if (l->tenant != NULL) {
        const char *rs = kn__httpd_rstr(kn__httpd_brep(b, 0));
        const char *gs = kn__httpd_rstr(kn__httpd_brep(b, 1));
        rec = rs ? json_loads(rs, 0, NULL) : NULL;
        reg = gs ? json_loads(gs, 0, NULL) : NULL;
        g = rec ? kn__mp_find_guardian(rec, reg, l->bi) : NULL;
        /* the e-mail index itself: a LINE or push index never matches an
         * address' hash, but say so */
        if (g != NULL && (jstr(g, KN_DIR_EMAIL_INDEX) == NULL ||
                          strcmp(jstr(g, KN_DIR_EMAIL_INDEX), l->bi) != 0))
            g = NULL;
    }
    /* The same answer, found or not; the mail after it. */
    link_answer(c);
    /* The mail goes to the address on record, not to what was typed. */
    if (g != NULL)
        to = kn__httpd_unseal_opt(s->d->kr, "email", jstr(g, KN_DIR_EMAIL));
    if (to != NULL) {
        char *t =
            kn_gtoken_make(s->d->kr, KN_GTOKEN_MYPAGE, l->tenant, l->child,
                           l->bi, kn_now_ms() + KN_GTOKEN_MYPAGE_MS, "");
        if (t != NULL) {
            char *body = kn_xasprintf(
                "%s のマイページへのリンクです（30日間有効）。"
                "受け取り方・言語・お知らせの種類の設定と、過去30日の"
                "お知らせを見られます:\n%s/m#t=%s\n\n"
                "このリンクを人に転送しないでください。心当たりがない場合"
                "は、このメールを破棄してください。\n\n"
                "Your link to My page at %s (valid 30 days): see above. "
                "Do not forward it.\n",
                l->tenant, s->cfg->http_public_url, t, l->tenant);
            char masked[200];
            const char *child = l->child, *dest = to;
            kn__httpd_guardian_send(s, l->tenant, "mypage", "email", &child,
                                    &dest, 1, "【連絡網】マイページへのリンク",
                                    body);
            kn_mask_address(to, masked, sizeof(masked));
            kn_log(KN_LOG_INFO, "http", "my-page link queued", "tenant",
                   l->tenant, "to", masked, NULL);
            OPENSSL_cleanse(body, strlen(body));
            free(body);
            kn_free_secret(t);
        }
    }
out:
    kn__httpd_free_secret(&to);
    json_decref(rec);
    json_decref(reg);
    link_free(l);
}

static void on_link_counts(struct batch *b)
{
    struct link *l = b->arg;
    struct conn *c = b->c;
    struct kn_daemon *d;
    const redisReply *h;
    struct batch *nb;
    char *k;
    if (!kn__httpd_batch_usable(b)) {
        link_free(l);
        return;
    }
    d = c->srv->d;
    if (kn__httpd_rnum(kn__httpd_brep(b, 1)) > MP_LINK_ADDR ||
        kn__httpd_rnum(kn__httpd_brep(b, 3)) > MP_LINK_SHEET ||
        kn__httpd_rnum(kn__httpd_brep(b, 5)) > MP_LINK_CLIENT) {
        c->req.auth_result = "throttled";
        kn__httpd_respond_json(
            c, 429,
            json_pack("{s:s, s:n, s:s}", "error",
                      "しばらくしてからやり直してください (too many "
                      "requests: try again in an hour)",
                      "field", "code", "link_hour"),
            "Retry-After: 3600\r\n");
        link_free(l);
        return;
    }
    h = kn__httpd_brep(b, 6);
    if (h && h->type == REDIS_REPLY_ARRAY && h->elements == 2 &&
        kn__httpd_rstr(h->element[0]) != NULL &&
        kn__httpd_rstr(h->element[1]) != NULL) {
        l->tenant = kn_xstrdup(kn__httpd_rstr(h->element[0]));
        l->child = kn_xstrdup(kn__httpd_rstr(h->element[1]));
    }
    /* The same reads whether the sheet exists or not. */
    nb = kn__httpd_batch_new(c->srv, c, on_link_guardians, l);
    k = kn_key_rcpt(d->prefix, l->tenant ? l->tenant : "-",
                    l->child ? l->child : "-");
    kn__httpd_batch_cmd(nb, "HGET", k, "c", NULL);
    free(k);
    k = kn_key_reg(d->prefix, l->tenant ? l->tenant : "-",
                   l->child ? l->child : "-");
    kn__httpd_batch_cmd(nb, "HGET", k, "g", NULL);
    free(k);
    kn__httpd_batch_end(nb);
}

void kn__httpd_run_mypage_link(struct conn *c)
{
    struct kn_daemon *d = c->srv->d;
    json_t *j = kn__httpd_json_object(c);
    const char *id, *email, *why = NULL;
    struct link *l;
    struct batch *b;
    char *k, *what;

    if (j == NULL)
        return;
    id = jstr(j, "id");
    email = jstr(j, "email");
    if (id == NULL || id[0] == '\0' || strlen(id) > 60) {
        kn__httpd_respond_coded(c, 400, "id", "need_id",
                                "ID を入力してください (type the ID of the "
                                "registration sheet)");
        json_decref(j);
        return;
    }
    if (email == NULL || email[0] == '\0' || kn_addr_check(email, &why) < 0) {
        kn__httpd_respond_coded(c, 400, "email", "bad_email",
                                "メールアドレスを確認してください (check the "
                                "e-mail address: %s)",
                                why ? why : "it is empty");
        json_decref(j);
        return;
    }
    l = kn_xcalloc(1, sizeof(*l));
    if (kn_reg_normalise(id, KN_REG_ID_LEN, l->sheet, sizeof(l->sheet)) <= 0)
        snprintf(l->sheet, sizeof(l->sheet), "%s", id);
    kn_blind_index(d->kr, "email", email, l->bi);
    json_decref(j);
    b = kn__httpd_batch_new(c->srv, c, on_link_counts, l);
    for (int i = 0; i < 3; i++) {
        what = kn_xasprintf("%s:%s",
                            i == 0   ? "a"
                            : i == 1 ? "s"
                                     : "c",
                            i == 0   ? l->bi
                            : i == 1 ? l->sheet
                                     : c->req.net);
        k = kn__mp_key(d, "mpl", what);
        kn__httpd_batch_cmd(b, "SET", k, "0", "PX", "3600000", "NX", NULL);
        kn__httpd_batch_cmd(b, "INCR", k, NULL);
        free(k);
        free(what);
    }
    k = kn_key_sheet(d->prefix, l->sheet);
    kn__httpd_batch_cmd(b, "HMGET", k, "t", "r", NULL);
    free(k);
    kn__httpd_batch_end(b);
}
