/*
 * session.c - staff session ids, cookies and the public origin
 * (session.h).
 */
#include "model/session.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/codec.h"
#include "common/kn.h"
#include "common/utf8.h"
#include "model/gaiji.h"

void kn_session_new_id(char out[KN_SESSION_ID_CHARS + 1])
{
    unsigned char raw[32];
    char *s;
    kn_random(raw, sizeof(raw));
    s = kn_b64url_encode(raw, sizeof(raw));
    memcpy(out, s, KN_SESSION_ID_CHARS);
    out[KN_SESSION_ID_CHARS] = '\0';
    memset(raw, 0, sizeof(raw));
    memset(s, 0, strlen(s));
    free(s);
}

void kn_session_hash(const char *id, char out[65])
{
    unsigned char md[32];
    unsigned int n = 0;
    EVP_Digest(id, strlen(id), md, &n, EVP_sha256(), NULL);
    kn_hex_encode(md, sizeof(md), out);
}

static int is_https(const char *url)
{
    return url != NULL && strncasecmp(url, "https://", 8) == 0;
}

const char *kn_session_cookie_name(const char *public_url)
{
    return is_https(public_url) ? "__Host-kairan_session" : "kairan_session";
}

char *kn_session_cookie(const char *public_url, const char *id)
{
    return kn_xasprintf("%s=%s; Path=/; %sHttpOnly; SameSite=Strict; "
                        "Max-Age=%lld",
                        kn_session_cookie_name(public_url), id ? id : "",
                        is_https(public_url) ? "Secure; " : "",
                        id ? KN_SESSION_MAX_MS / 1000 : 0LL);
}

int kn_b64url_char(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_';
}

int kn_cookie_value(const char *header, const char *name, const char **v,
                    size_t *vl)
{
    const char *p = header;
    size_t nl = strlen(name);
    int found = 0;
    if (header == NULL)
        return KN_ENOENT;
    while (*p) {
        size_t len;
        while (*p == ' ' || *p == '	' || *p == ';')
            p++;
        len = strcspn(p, ";");
        if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            if (found)
                return KN_EINVAL; /* twice: which one is the browser's? */
            *v = p + nl + 1;
            *vl = len - nl - 1;
            while (*vl > 0 && ((*v)[*vl - 1] == ' ' || (*v)[*vl - 1] == '\t'))
                (*vl)--;
            found = 1;
        }
        p += len;
    }
    return found ? 0 : KN_ENOENT;
}

int kn_session_from_cookie(const char *header, const char *public_url,
                           char out[KN_SESSION_ID_CHARS + 1])
{
    const char *v = NULL;
    size_t vl = 0;
    int rc =
        kn_cookie_value(header, kn_session_cookie_name(public_url), &v, &vl);
    if (rc < 0)
        return rc;
    if (vl != KN_SESSION_ID_CHARS)
        return KN_EINVAL;
    for (size_t i = 0; i < vl; i++) {
        if (!kn_b64url_char((unsigned char)v[i]))
            return KN_EINVAL;
    }
    memcpy(out, v, vl);
    out[vl] = '\0';
    return 0;
}

void kn_session_origin(const char *public_url, char *out, size_t len)
{
    const char *rest;
    size_t hl, o = 0;
    out[0] = '\0';
    if (public_url == NULL)
        return;
    if (strncasecmp(public_url, "https://", 8) == 0)
        rest = public_url + 8;
    else if (strncasecmp(public_url, "http://", 7) == 0)
        rest = public_url + 7;
    else
        return;
    hl = strcspn(rest, "/?#");
    if ((size_t)(rest - public_url) + hl + 1 > len)
        return;
    for (const char *s = public_url; s < rest + hl; s++) {
        char c = *s;
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        out[o++] = c;
    }
    out[o] = '\0';
}

int kn_session_alive(int64_t created_ms, int64_t seen_ms, int64_t now)
{
    if (created_ms <= 0 || now - created_ms >= KN_SESSION_MAX_MS)
        return KN_ETIMEDOUT;
    if (seen_ms <= 0 || now - seen_ms >= KN_SESSION_IDLE_MS)
        return KN_ETIMEDOUT;
    return 0;
}

int kn_staff_login_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
            return 0;
    }
    return 1;
}

int kn_staff_name_valid(const char *s)
{
    size_t n = strlen(s), at;
    if (n == 0 || n > 100)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return 0;
    }
    return kn_utf8_valid(s, n) && kn_gaiji_find(s, &at) == 0;
}

int kn_staff_groups_valid(const char *s)
{
    const char *p = s;
    if (*s == '\0')
        return 0;
    while (*p) {
        size_t n = strcspn(p, ",");
        if (n == 0 || n > 64)
            return 0;
        for (size_t i = 0; i < n; i++) {
            if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f || p[i] == ';')
                return 0;
        }
        p += n;
        if (*p == ',' && *++p == '\0')
            return 0;
    }
    return kn_utf8_valid(s, strlen(s));
}

long long kn_login_delay_ms(long long spread_failures)
{
    long long over = spread_failures - KN_LOGIN_SPREAD_FREE, d = 250;
    if (over <= 0)
        return 0;
    for (long long i = 0; i < over / 5 && d < KN_LOGIN_DELAY_MAX_MS; i++)
        d *= 2;
    return d < KN_LOGIN_DELAY_MAX_MS ? d : KN_LOGIN_DELAY_MAX_MS;
}
