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
    "input[type=text]{width:100%;font-size:1em;padding:.3em}"
    ".err{background:#fdecea;border:1px solid #b00;padding:.6em 1em}"
    ".ok{background:#e8f5e9;border:1px solid #2e7d32;padding:.6em 1em}";

static char csp[256];

void kn__ack_scripts_init(void)
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    char *b64;

    kn_redis_script_init(&kn_script_ack_view);
    kn_redis_script_init(&kn_script_ack_confirm);
    EVP_Digest(page_style, strlen(page_style), md, &mdlen, EVP_sha256(), NULL);
    b64 = kn_b64_encode(md, mdlen);
    snprintf(csp, sizeof(csp),
             "default-src 'none'; style-src 'sha256-%s'; form-action 'self'; "
             "base-uri 'none'; frame-ancestors 'none'",
             b64);
    free(b64);
}

const char *kn__ack_csp(void)
{
    if (csp[0] == '\0')
        kn__ack_scripts_init();
    return csp;
}

/* Text into HTML: & < > " ' escaped; other bytes as they are (UTF-8). */
static void add_esc(struct kn_buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            kn_buf_add(b, "&amp;");
            break;
        case '<':
            kn_buf_add(b, "&lt;");
            break;
        case '>':
            kn_buf_add(b, "&gt;");
            break;
        case '"':
            kn_buf_add(b, "&quot;");
            break;
        case '\'':
            kn_buf_add(b, "&#39;");
            break;
        case '\r':
            break;
        default:
            kn_buf_addc(b, *s);
        }
    }
}

static void head(struct kn_buf *b, const char *title)
{
    kn_buf_add(b, "<!doctype html>\n<html lang=\"ja\">\n<head>\n"
                  "<meta charset=\"utf-8\">\n"
                  "<meta name=\"viewport\" content=\"width=device-width, "
                  "initial-scale=1\">\n"
                  "<meta name=\"robots\" content=\"noindex\">\n<title>");
    add_esc(b, title);
    kn_buf_add(b, "</title>\n<style>");
    kn_buf_add(b, page_style);
    kn_buf_add(b, "</style>\n</head>\n<body>\n");
}

char *kn__ack_page(const struct kn_ack_view *v, int thanks)
{
    struct kn_buf b = KN_BUF_INIT;
    char t[48];

    head(&b, "確認のお願い");
    if (thanks)
        kn_buf_add(&b, "<p class=\"ok\">確認しました。ありがとうございました。"
                       "</p>\n");
    kn_buf_add(&b, "<h1>");
    if (v->drill)
        kn_buf_add(&b, "<span class=\"drill\">【訓練】</span>");
    add_esc(&b, v->subject);
    kn_buf_add(&b, "</h1>\n");
    if (v->drill)
        kn_buf_add(&b, "<p class=\"drill\">※これは訓練です。(This is a drill.)"
                       "</p>\n");
    kn_buf_add(&b, "<div class=\"body\">");
    add_esc(&b, v->body);
    kn_buf_add(&b, "</div>\n");
    if (v->confirmed_ms > 0) {
        kn_buf_add(&b, "<p>確認済み: <time>");
        add_esc(&b, kn_time_jst(v->confirmed_ms, t, sizeof(t)));
        kn_buf_add(&b, "</time></p>\n");
        if (v->answer >= 0 && (size_t)v->answer < v->nchoices) {
            kn_buf_add(&b, "<p>回答: <span class=\"answer\">");
            add_esc(&b, v->choices[v->answer]);
            kn_buf_add(&b, "</span></p>\n");
        }
        if (v->comment != NULL && v->comment[0] != '\0') {
            kn_buf_add(&b, "<p>コメント: <span class=\"comment\">");
            add_esc(&b, v->comment);
            kn_buf_add(&b, "</span></p>\n");
        }
    } else {
        if (v->error != NULL) {
            kn_buf_add(&b, "<p class=\"err\">");
            add_esc(&b, v->error);
            kn_buf_add(&b, "</p>\n");
        }
        kn_buf_add(&b, "<form method=\"post\">\n");
        for (size_t i = 0; i < v->nchoices; i++) {
            kn_buf_addf(&b,
                        "<label><input type=\"radio\" name=\"a\" "
                        "value=\"%zu\"%s> ",
                        i, i == 0 ? " required" : "");
            add_esc(&b, v->choices[i]);
            kn_buf_add(&b, "</label>\n");
        }
        kn_buf_addf(&b,
                    "<label>コメント (任意、%d文字まで)\n"
                    "<input type=\"text\" name=\"c\" maxlength=\"%d\" "
                    "autocomplete=\"off\"></label>\n"
                    "<button type=\"submit\">確認しました</button>\n"
                    "</form>\n",
                    KN_ACK_COMMENT_MAX, KN_ACK_COMMENT_MAX);
    }
    kn_buf_add(&b, "</body>\n</html>\n");
    return kn_buf_take(&b, NULL);
}

const char *kn__ack_page_invalid(void)
{
    static char *page;
    if (page == NULL) {
        struct kn_buf b = KN_BUF_INIT;
        head(&b, "無効なリンク");
        kn_buf_add(&b, "<h1>このリンクは無効です</h1>\n"
                       "<p>リンクが途中で切れていないか確かめてください。"
                       "(This link is not valid.)</p>\n</body>\n</html>\n");
        page = kn_buf_take(&b, NULL);
    }
    return page;
}
