/*
 * page.c - the status page: GET /, /status.js, /status.css (the files of
 * web/status/, embedded at build time) and an empty /favicon.ico.
 */
#include "dispatcher/http/http_int.h"

#include "common/kn.h"

/* ------------------------------------------------------------ the page */

/* The page's three files, web/status/index.html, status.css and
 * status.js, embedded at build time (scripts/embed.c; the Makefile's
 * WEB_STATUS).  Keep the script free of inline handlers (the CSP allows
 * only script-src 'self'). */
extern const char kn__web_status_html[], kn__web_status_css[],
    kn__web_status_js[];
extern const size_t kn__web_status_html_len, kn__web_status_css_len,
    kn__web_status_js_len;

void kn__httpd_run_page(struct conn *c)
{
    kn__httpd_respond(c, 200, "text/html; charset=utf-8", kn__web_status_html,
                      kn__web_status_html_len, kn__httpd_csp_page, NULL);
}

void kn__httpd_run_css(struct conn *c)
{
    kn__httpd_respond(c, 200, "text/css; charset=utf-8", kn__web_status_css,
                      kn__web_status_css_len, kn__httpd_csp_page, NULL);
}

/* Browsers ask for it; an empty answer keeps their consoles quiet. */
void kn__httpd_run_favicon(struct conn *c)
{
    kn__httpd_respond(c, 204, "image/x-icon", "", 0, kn__httpd_csp_page, NULL);
}

void kn__httpd_run_js(struct conn *c)
{
    kn__httpd_respond(c, 200, "text/javascript; charset=utf-8",
                      kn__web_status_js, kn__web_status_js_len,
                      kn__httpd_csp_page, NULL);
}
