/*
 * ack.c - the confirmation page of "ack" broadcasts and the Redis steps
 * behind it (see ack.h).  The page is one small UTF-8 document with no
 * external asset and no script: every text from the broadcast is HTML-
 * escaped, the only style is one inline block allowed by its hash in the
 * CSP, and the button is a plain form POST to the same URL, so that a
 * mail scanner that merely opens (GETs) the link confirms nothing.
 */
#include "dispatcher/ack.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kn.h"
#include "common/text.h"
#include "common/buf.h"
#include "common/codec.h"
#include "model/broadcast.h"
#include "queue/lua.h"

/* The Redis steps (membership checked in O(1), see
 * queue/lua/lib/is_member.lua). */
/* queue/lua/ack_view.lua */
struct kn_redis_script kn_script_ack_view = {"ack_view", kn_lua_ack_view, ""};

/* queue/lua/ack_confirm.lua */
struct kn_redis_script kn_script_ack_confirm = {"ack_confirm",
                                                kn_lua_ack_confirm, ""};

static const char page_style[] =
    "body{font-family:sans-serif;max-width:40em;margin:1em auto;padding:0 "
    "1em;line-height:1.6;color:#222}"
    "h1{font-size:1.3em}.drill{color:#b00;font-weight:bold}"
    ".body{white-space:pre-wrap;border:1px solid #ccc;padding:1em;"
    "border-radius:4px}"
    "button{font-size:1.3em;padding:.6em 2em;margin:1em 0}"
    "label{display:block;padding:.3em 0;font-size:1.1em}"
    "fieldset{border:0;padding:0;margin:.5em 0}legend{font-weight:bold}"
    ".kid{border-top:1px solid #ccc;margin-top:1em}h2{font-size:1.1em}"
    "input[type=text]{width:100%;box-sizing:border-box;font-size:1em;"
    "padding:.3em}"
    "input[type=radio]{width:1.2em;height:1.2em;margin:0 .5em 0 0;"
    "vertical-align:-.2em}"
    ".err{background:#fdecea;border:1px solid #b00;padding:.6em 1em}"
    ".ok{background:#e8f5e9;border:1px solid #2e7d32;padding:.6em 1em}"
    "span[lang=en]{font-size:.85em}";

static char csp[256];

void kn__page_csp(const char *style, size_t len, char *out, size_t cap)
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    char *b64;

    EVP_Digest(style, len, md, &mdlen, EVP_sha256(), NULL);
    b64 = kn_b64_encode(md, mdlen);
    snprintf(out, cap,
             "default-src 'none'; style-src 'sha256-%s'; form-action 'self'; "
             "base-uri 'none'; frame-ancestors 'none'",
             b64);
    free(b64);
}

void kn__ack_scripts_init(void)
{
    kn_redis_script_init(&kn_script_ack_view);
    kn_redis_script_init(&kn_script_ack_confirm);
    kn__page_csp(page_style, strlen(page_style), csp, sizeof(csp));
}

const char *kn__ack_csp(void)
{
    if (csp[0] == '\0')
        kn__ack_scripts_init();
    return csp;
}

/* Text into HTML (common/text.h). */
static void add_esc(struct kn_buf *b, const char *s)
{
    kn_text_html(b, s, strlen(s));
}

/* The document's head; its title is pre (Japanese, not escaped) then
 * title (escaped; NULL: none). */
static void head(struct kn_buf *b, const char *pre, const char *title)
{
    kn_buf_add(b, "<!doctype html>\n<html lang=\"ja\">\n<head>\n"
                  "<meta charset=\"utf-8\">\n"
                  "<meta name=\"viewport\" content=\"width=device-width, "
                  "initial-scale=1\">\n"
                  "<meta name=\"robots\" content=\"noindex\">\n<title>");
    kn_buf_add(b, pre);
    if (title != NULL)
        add_esc(b, title);
    kn_buf_add(b, "</title>\n<style>");
    kn_buf_add(b, page_style);
    kn_buf_add(b, "</style>\n</head>\n<body>\n");
}

/* The top of every confirmation page: the thank-you line, the subject
 * (a drill marked), the body, and a refused POST's message. */
static void page_top(struct kn_buf *b, const struct kn_ack_view *v, int thanks)
{
    /* The title says which message, and when the form was refused. */
    head(b, v->error != NULL ? "エラー: 確認のお願い: " : "確認のお願い: ",
         v->subject);
    if (thanks)
        kn_buf_add(b, "<p class=\"ok\">確認しました。ありがとうございました。"
                      "<span lang=\"en\">(Confirmed. Thank you.)</span>"
                      "</p>\n");
    /* A translation is marked as such; the page's own words stay
     * Japanese with their English hints. */
    if (v->lang != NULL)
        kn_buf_addf(b, "<h1 lang=\"%s\">", v->lang);
    else
        kn_buf_add(b, "<h1>");
    if (v->drill)
        kn_buf_add(b, "<span class=\"drill\">【訓練】</span>");
    add_esc(b, v->subject);
    kn_buf_add(b, "</h1>\n");
    if (v->drill)
        kn_buf_add(b, "<p class=\"drill\">※これは訓練です。"
                      "<span lang=\"en\">(This is a drill.)</span></p>\n");
    if (v->lang != NULL)
        kn_buf_addf(b, "<div class=\"body\" lang=\"%s\">", v->lang);
    else
        kn_buf_add(b, "<div class=\"body\">");
    add_esc(b, v->body);
    kn_buf_add(b, "</div>\n");
    if (v->error != NULL) {
        kn_buf_add(b, "<p class=\"err\" role=\"alert\">");
        add_esc(b, v->error);
        kn_buf_add(b, "</p>\n");
    }
}

/* A recorded confirmation: its time, answer and comment (escaped). */
static void recorded(struct kn_buf *b, const struct kn_ack_view *v, int64_t ms,
                     int answer, const char *comment)
{
    char t[48];
    int y, mo, d, h, mi;
    kn_time_jst(ms, t, sizeof(t));
    kn_buf_add(b, "<p>確認済み <span lang=\"en\">(Confirmed)</span>: "
                  "<time datetime=\"");
    add_esc(b, t);
    kn_buf_add(b, "\">");
    /* For people: 2026年12月6日 09:02 (the attribute keeps RFC 3339). */
    if (sscanf(t, "%4d-%2d-%2dT%2d:%2d", &y, &mo, &d, &h, &mi) == 5)
        kn_buf_addf(b, "%d年%d月%d日 %02d:%02d", y, mo, d, h, mi);
    else
        add_esc(b, t);
    kn_buf_add(b, "</time></p>\n");
    if (answer >= 0 && (size_t)answer < v->nchoices) {
        kn_buf_add(b, "<p>回答 <span lang=\"en\">(Answer)</span>: "
                      "<span class=\"answer\">");
        add_esc(b, v->choices[answer]);
        kn_buf_add(b, "</span></p>\n");
    }
    if (comment != NULL && comment[0] != '\0') {
        kn_buf_add(b, "<p>コメント <span lang=\"en\">(Comment)</span>: "
                      "<span class=\"comment\">");
        add_esc(b, comment);
        kn_buf_add(b, "</span></p>\n");
    }
}

/* The form: one radio button per answer (one required), the optional
 * comment, child (NULL: the link's own child) as a hidden field, and the
 * button with its text (Japanese) and en (its English hint).  heading:
 * the id of the section's heading (the child's name) that the button's
 * description names, or NULL. */
static void answer_form(struct kn_buf *b, const struct kn_ack_view *v,
                        const char *child, const char *heading,
                        const char *button, const char *en)
{
    kn_buf_add(b, "<form method=\"post\">\n");
    if (child != NULL) {
        kn_buf_add(b, "<input type=\"hidden\" name=\"child\" value=\"");
        add_esc(b, child);
        kn_buf_add(b, "\">\n");
    }
    if (v->nchoices > 0)
        kn_buf_add(b, "<fieldset><legend>回答を一つ選んでください "
                      "<span lang=\"en\">(Choose one answer)</span>"
                      "</legend>\n");
    for (size_t i = 0; i < v->nchoices; i++) {
        kn_buf_addf(b,
                    "<label><input type=\"radio\" name=\"a\" "
                    "value=\"%zu\"%s> ",
                    i, i == 0 ? " required" : "");
        add_esc(b, v->choices[i]);
        kn_buf_add(b, "</label>\n");
    }
    if (v->nchoices > 0)
        kn_buf_add(b, "</fieldset>\n");
    kn_buf_addf(b,
                "<label>コメント (任意、%d文字まで) <span lang=\"en\">"
                "(Comment, optional)</span>\n"
                "<input type=\"text\" name=\"c\" maxlength=\"%d\" "
                "autocomplete=\"off\"></label>\n"
                "<button type=\"submit\"",
                KN_ACK_COMMENT_MAX, KN_ACK_COMMENT_MAX);
    if (heading != NULL)
        kn_buf_addf(b, " aria-describedby=\"%s\"", heading);
    kn_buf_add(b, ">");
    add_esc(b, button);
    kn_buf_add(b, " <span lang=\"en\">");
    add_esc(b, en);
    kn_buf_add(b, "</span></button>\n</form>\n");
}

char *kn__ack_page(const struct kn_ack_view *v, int thanks)
{
    struct kn_buf b = KN_BUF_INIT;
    page_top(&b, v, thanks);
    if (v->confirmed_ms > 0)
        recorded(&b, v, v->confirmed_ms, v->answer, v->comment);
    else
        answer_form(&b, v, NULL, NULL, "確認しました", "(Confirm)");
    kn_buf_add(&b, "</body>\n</html>\n");
    return kn_buf_take(&b, NULL);
}

char *kn__ack_page_children(const struct kn_ack_view *v,
                            const struct kn__ack_child *kids, size_t n,
                            int thanks)
{
    struct kn_buf b = KN_BUF_INIT;
    size_t open = 0;

    page_top(&b, v, thanks);
    for (size_t i = 0; i < n; i++)
        if (kids[i].confirmed_ms <= 0)
            open++;
    if (open > 0)
        kn_buf_add(&b, "<p>お子さまごとに確認してください。"
                       "<span lang=\"en\">(Confirm for each child.)</span>"
                       "</p>\n");
    /* Each child a region named by its heading; its button described by
     * it, so that a screen reader says whose button it is. */
    for (size_t i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof(id), "kid-%zu", i);
        kn_buf_addf(&b,
                    "<section class=\"kid\" aria-labelledby=\"%s\">"
                    "<h2 class=\"child\" id=\"%s\">",
                    id, id);
        add_esc(&b, kids[i].name ? kids[i].name : kids[i].id);
        kn_buf_add(&b, "</h2>\n");
        if (kids[i].confirmed_ms > 0)
            recorded(&b, v, kids[i].confirmed_ms, kids[i].answer,
                     kids[i].comment);
        else
            answer_form(&b, v, kids[i].id, id, "確認しました", "(Confirm)");
        kn_buf_add(&b, "</section>\n");
    }
    if (open > 1) {
        kn_buf_add(&b,
                   "<section class=\"kid\" aria-labelledby=\"kid-all\">"
                   "<h2 id=\"kid-all\">全員まとめて <span lang=\"en\">"
                   "(All at once)</span></h2>\n"
                   "<p>まだ確認していないお子さま全員に、同じ回答とコメントを"
                   "記録します。<span lang=\"en\">(The same answer and "
                   "comment for every child not yet confirmed.)</span></p>\n");
        answer_form(&b, v, "*", "kid-all", "全員まとめて確認しました",
                    "(Confirm all)");
        kn_buf_add(&b, "</section>\n");
    }
    kn_buf_add(&b, "</body>\n</html>\n");
    return kn_buf_take(&b, NULL);
}

const char *kn__ack_page_invalid(void)
{
    static char *page;
    if (page == NULL) {
        struct kn_buf b = KN_BUF_INIT;
        head(&b, "無効なリンク", NULL);
        kn_buf_add(&b, "<h1>このリンクは無効です</h1>\n"
                       "<p>リンクが途中で切れていないか確かめてください。"
                       "<span lang=\"en\">(This link is not valid: check "
                       "that it was not cut off.)</span></p>\n"
                       "</body>\n</html>\n");
        page = kn_buf_take(&b, NULL);
    }
    return page;
}
