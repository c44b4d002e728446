/*
 * console.c - the staff console's files: GET /c/<tenant>/ (index.html)
 * and /c/<tenant>/<file>, every file of web/console/ embedded at build
 * time (the Makefile's WEB_CONSOLE glob; scripts/embed.c -t makes the
 * table kn__web_console).  The pages hold no data: they ask the API
 * (/v1/...) with the session cookie.  The tenant in the path only has to
 * be a valid tenant name; the login says which tenant a session belongs
 * to, so a made-up one just fails to log in.
 */
#include "dispatcher/http/http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kn.h"

extern const struct kn_embedded kn__web_console[];
extern const size_t kn__web_console_n;

/* The console's pages may run only scripts of this origin, build nodes
 * only through the DOM (Trusted Types with no policy: innerHTML and its
 * kin throw), and talk only to this origin. */
const char *const kn__httpd_csp_console =
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; "
    "require-trusted-types-for 'script'; trusted-types 'none'";

static const struct {
    const char *ext, *ctype;
} ctypes[] = {
    {".html", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".json", "application/json; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
};

static const char *ctype_of(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < KN_ARRAY_SIZE(ctypes); i++) {
        size_t e = strlen(ctypes[i].ext);
        if (n > e && strcmp(name + n - e, ctypes[i].ext) == 0)
            return ctypes[i].ctype;
    }
    return "application/octet-stream";
}

/* The tenant segment of /c/<tenant>[/...] is a valid tenant name. */
static int tenant_ok(const char *path)
{
    char t[80];
    size_t n;
    if (strncmp(path, "/c/", 3) != 0)
        return 0;
    n = strcspn(path + 3, "/");
    if (n == 0 || n >= sizeof(t))
        return 0;
    memcpy(t, path + 3, n);
    t[n] = '\0';
    return kn_tenant_valid(t);
}

static void serve(struct conn *c, const char *name)
{
    for (size_t i = 0; i < kn__web_console_n; i++) {
        if (strcmp(kn__web_console[i].name, name) != 0)
            continue;
        kn__httpd_respond(c, 200, ctype_of(name), kn__web_console[i].data,
                          kn__web_console[i].len, kn__httpd_csp_console, NULL);
        return;
    }
    kn__httpd_respond_error(c, 404, NULL, "no such console file");
}

/* GET /c/<tenant>: the console is the folder; send the browser there. */
void kn__httpd_run_console_bare(struct conn *c)
{
    char *extra;
    if (!tenant_ok(c->req.path)) {
        kn__httpd_respond_error(c, 404, NULL, "no such tenant");
        return;
    }
    extra = kn_xasprintf("Location: %s/\r\n", c->req.path);
    kn__httpd_respond(c, 301, "text/plain; charset=utf-8", "", 0,
                      kn__httpd_csp_console, extra);
    free(extra);
}

void kn__httpd_run_console_index(struct conn *c)
{
    if (!tenant_ok(c->req.path)) {
        kn__httpd_respond_error(c, 404, NULL, "no such tenant");
        return;
    }
    serve(c, "index.html");
}

void kn__httpd_run_console_file(struct conn *c)
{
    if (!tenant_ok(c->req.path)) {
        kn__httpd_respond_error(c, 404, NULL, "no such tenant");
        return;
    }
    serve(c, c->req.param);
}
