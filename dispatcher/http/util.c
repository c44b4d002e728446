/*
 * util.c - small helpers shared by the HTTP files: a growable string
 * buffer, wiping secrets, hex digits, and JSON values built from outside
 * text or times.
 */
#include "dispatcher/http/http_int.h"

#include <netinet/in.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/kn.h"
#include "common/text.h"

/* ------------------------------------------------------------ helpers */

void kn__httpd_free_secret(char **s)
{
    kn_free_secret(*s);
    *s = NULL;
}

json_t *kn__httpd_jtime(long long ms)
{
    char buf[48];
    if (ms <= 0)
        return json_null();
    return json_string(kn_time_jst(ms, buf, sizeof(buf)));
}

char *kn__httpd_dupstr(const char *s)
{
    return s != NULL ? kn_xstrdup(s) : NULL;
}

json_t *kn__httpd_jstr_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

/*
 * A JSON string of outside text (a request path, a message that quotes
 * one): bytes that are not UTF-8 become \\xNN instead of the value being
 * dropped (json_string() refuses invalid UTF-8 and returns NULL).
 */
json_t *kn__httpd_jstr_text(const char *s)
{
    char *t = kn_text_utf8(s, strlen(s));
    json_t *j = json_string(t);
    free(t);
    return j;
}

/*
 * The percent-decoded value of name in a query string or a form body
 * (application/x-www-form-urlencoded: '+' is a space), or NULL when it is
 * absent or would hold a NUL.  Heap.
 */
char *kn__httpd_query_get(const char *q, const char *name)
{
    size_t n = strlen(name);
    while (q != NULL && *q) {
        if (strncmp(q, name, n) == 0 && q[n] == '=') {
            const char *v = q + n + 1;
            size_t len = strcspn(v, "&"), o = 0;
            char *out = kn_xmalloc(len + 1);
            for (size_t i = 0; i < len; i++) {
                int hi = i + 2 < len ? kn_hex_value(v[i + 1]) : -1;
                int lo = i + 2 < len ? kn_hex_value(v[i + 2]) : -1;
                if (v[i] == '%' && hi >= 0 && lo >= 0) {
                    out[o++] = (char)(hi << 4 | lo);
                    i += 2;
                } else {
                    out[o++] = v[i] == '+' ? ' ' : v[i];
                }
            }
            out[o] = '\0';
            if (o != strlen(out)) { /* a NUL inside */
                free(out);
                return NULL;
            }
            return out;
        }
        q = strchr(q, '&');
        if (q != NULL)
            q++;
    }
    return NULL;
}

/* See http_int.h. */
int kn__httpd_strings_code(const char *name, char *code, size_t cap)
{
    size_t n = strlen(name);
    if (n < 14 || n - 13 >= cap || strncmp(name, "strings-", 8) != 0 ||
        strcmp(name + n - 5, ".json") != 0)
        return -1;
    snprintf(code, cap, "%.*s", (int)(n - 13), name + 8);
    return 0;
}

/* 1 if the Content-Type ct is type (parameters after ';' not looked at). */
int kn__httpd_ctype_is(const char *ct, const char *type)
{
    size_t n;
    if (ct == NULL)
        return 0;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    n = strcspn(ct, "; \t");
    return n == strlen(type) && strncasecmp(ct, type, n) == 0;
}

/* 1 if the query string names this parameter (with any value). */
int kn__httpd_query_has(const char *q, const char *name)
{
    size_t n = strlen(name);
    while (q != NULL && *q) {
        if (strncmp(q, name, n) == 0 &&
            (q[n] == '=' || q[n] == '&' || q[n] == '\0'))
            return 1;
        q = strchr(q, '&');
        if (q != NULL)
            q++;
    }
    return 0;
}

int kn__httpd_dir_job_take(struct http_srv *s, const char *tenant)
{
    int slot = -1;
    for (int i = 0; i < (int)KN_ARRAY_SIZE(s->job_tenant); i++) {
        if (s->job_tenant[i] == NULL) {
            if (slot < 0)
                slot = i;
        } else if (strcmp(s->job_tenant[i], tenant) == 0) {
            return -1; /* one at a time per tenant */
        }
    }
    if (slot >= 0) {
        s->job_tenant[slot] = kn_xstrdup(tenant);
        s->importing++;
    }
    return slot;
}

void kn__httpd_dir_job_give(struct http_srv *s, int slot)
{
    free(s->job_tenant[slot]);
    s->job_tenant[slot] = NULL;
    s->importing--;
}

void kn__httpd_source_net(const char *src, char *out, size_t n)
{
    struct in6_addr a;
    char p[INET6_ADDRSTRLEN];
    snprintf(out, n, "%s", src);
    if (uv_inet_pton(AF_INET6, src, &a) != 0 || IN6_IS_ADDR_V4MAPPED(&a))
        return;
    memset(a.s6_addr + 8, 0, 8);
    if (uv_inet_ntop(AF_INET6, &a, p, sizeof(p)) == 0)
        snprintf(out, n, "%s/64", p);
}
