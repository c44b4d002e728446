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
    ".ok{background:#e8f5e9;border:1px solid #2e7d32;padding:.6em 1em}";

static char csp[256];

void kn__ack_scripts_init(void)
{
    unsigned char md[32];
    unsigned char b64[48];
    unsigned int mdlen = 0;

    kn_redis_script_init(&kn_script_ack_view);
    kn_redis_script_init(&kn_script_ack_confirm);
    EVP_Digest(page_style, strlen(page_style), md, &mdlen, EVP_sha256(), NULL);
    EVP_EncodeBlock(b64, md, (int)mdlen);
    snprintf(csp, sizeof(csp),
             "default-src 'none'; style-src 'sha256-%s'; form-action 'self'; "
             "base-uri 'none'; frame-ancestors 'none'",
             (const char *)b64);
}

const char *kn__ack_csp(void)
{
    if (csp[0] == '\0')
        kn__ack_scripts_init();
    return csp;
}

struct buf {
    char *s;
    size_t n, cap;
};

static void add(struct buf *b, const char *p, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        while (b->n + n + 1 > b->cap)
            b->cap = b->cap ? b->cap * 2 : 4096;
        b->s = kn_xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, p, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void adds(struct buf *b, const char *s)
{
    add(b, s, strlen(s));
}

/* Text into HTML: & < > " ' escaped; other bytes as they are (UTF-8). */
static void add_esc(struct buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            adds(b, "&amp;");
            break;
        case '<':
            adds(b, "&lt;");
            break;
        case '>':
            adds(b, "&gt;");
            break;
        case '"':
            adds(b, "&quot;");
            break;
        case '\'':
            adds(b, "&#39;");
            break;
        case '\r':
            break;
        default:
            add(b, s, 1);
        }
    }
}

static void head(struct buf *b, const char *title)
{
    adds(b, "<!doctype html>\n<html lang=\"ja\">\n<head>\n"
            "<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, "
            "initial-scale=1\">\n"
            "<meta name=\"robots\" content=\"noindex\">\n<title>");
    add_esc(b, title);
    adds(b, "</title>\n<style>");
    adds(b, page_style);
    adds(b, "</style>\n</head>\n<body>\n");
}

char *kn__ack_page(const char *subject, const char *body, int drill,
                   int64_t confirmed_ms, int thanks)
{
    struct buf b = {0};
    char t[48];

    head(&b, "確認のお願い");
    if (thanks)
        adds(&b, "<p class=\"ok\">確認しました。ありがとうございました。"
                 "</p>\n");
    adds(&b, "<h1>");
    if (drill)
        adds(&b, "<span class=\"drill\">【訓練】</span>");
    add_esc(&b, subject);
    adds(&b, "</h1>\n");
    if (drill)
        adds(&b, "<p class=\"drill\">※これは訓練です。(This is a drill.)"
                 "</p>\n");
    adds(&b, "<div class=\"body\">");
    add_esc(&b, body);
    adds(&b, "</div>\n");
    if (confirmed_ms > 0) {
        adds(&b, "<p>確認済み: <time>");
        add_esc(&b, kn_time_jst(confirmed_ms, t, sizeof(t)));
        adds(&b, "</time></p>\n");
    } else {
        adds(&b, "<form method=\"post\">\n"
                 "<button type=\"submit\">確認しました</button>\n"
                 "</form>\n");
    }
    adds(&b, "</body>\n</html>\n");
    return b.s;
}

const char *kn__ack_page_invalid(void)
{
    static char *page;
    if (page == NULL) {
        struct buf b = {0};
        head(&b, "無効なリンク");
        adds(&b, "<h1>このリンクは無効です</h1>\n"
                 "<p>リンクが途中で切れていないか確かめてください。"
                 "(This link is not valid.)</p>\n</body>\n</html>\n");
        page = b.s;
    }
    return page;
}
