/*
 * util.c - small helpers shared by the HTTP files: a growable string
 * buffer, wiping secrets, hex digits, and JSON values built from outside
 * text or times.
 */
#include "dispatcher/http/http_int.h"

#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
