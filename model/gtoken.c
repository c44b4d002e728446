/*
 * gtoken.c - signed guardian links (gtoken.h).
 */
#include "model/gtoken.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/codec.h"
#include "common/kn.h"
#include "common/seal.h"
#include "common/signed.h"
#include "model/broadcast.h"

static int hex32(const char *s)
{
    size_t i;
    for (i = 0; s[i] != '\0'; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    }
    return i == 32;
}

char *kn_gtoken_make(const struct kn_keyring *kr, int use, const char *tenant,
                     const char *child, const char *index, int64_t expires_ms,
                     const char *extra)
{
    char *plain, *t;

    if ((use != KN_GTOKEN_MYPAGE && use != KN_GTOKEN_UNSUB) ||
        !kn_tenant_valid(tenant) || !kn_id_valid(child) || index == NULL ||
        !hex32(index) || expires_ms < 0)
        return NULL;
    if (extra == NULL)
        extra = "";
    plain = kn_xasprintf("g1|%c|%s|%s|%s|%lld|%s", use, tenant, child, index,
                         (long long)expires_ms, extra);
    t = kn_signed_make(kr, "gtoken", plain);
    free(plain);
    if (strlen(t) > KN_GTOKEN_MAX) {
        free(t);
        return NULL;
    }
    return t;
}

/* Split "g1|u|T|C|I|E|extra" in place; 0 or KN_EINVAL. */
static int split_payload(char *p, char *f[7])
{
    int i;
    f[0] = p;
    for (i = 1; i < 7; i++) {
        char *bar = strchr(f[i - 1], '|');
        if (bar == NULL)
            return KN_EINVAL;
        *bar = '\0';
        f[i] = bar + 1;
    }
    return 0;
}

int kn_gtoken_parse(const struct kn_keyring *kr, const char *token, int use,
                    int64_t now_ms, struct kn_gtoken *out)
{
    char *f[7], *end, *plain;
    long long exp;

    memset(out, 0, sizeof(*out));
    if (token == NULL || strlen(token) > KN_GTOKEN_MAX ||
        (plain = kn_signed_open(kr, "gtoken", token)) == NULL)
        return KN_EINVAL;
    if (split_payload(plain, f) < 0 || strcmp(f[0], "g1") != 0 ||
        f[1][0] != use || f[1][1] != '\0' || !kn_tenant_valid(f[2]) ||
        !kn_id_valid(f[3]) || !hex32(f[4])) {
        free(plain);
        return KN_EINVAL;
    }
    exp = strtoll(f[5], &end, 10);
    if (*end != '\0' || end == f[5] || exp < 0) {
        free(plain);
        return KN_EINVAL;
    }
    out->use = use;
    out->tenant = kn_xstrdup(f[2]);
    out->child = kn_xstrdup(f[3]);
    memcpy(out->index, f[4], 33);
    out->expires_ms = exp;
    out->extra = kn_xstrdup(f[6]);
    free(plain);
    return exp != 0 && now_ms >= exp ? KN_ETIMEDOUT : 0;
}

void kn_gtoken_free(struct kn_gtoken *t)
{
    free(t->tenant);
    free(t->child);
    free(t->extra);
    memset(t, 0, sizeof(*t));
}

char *kn_gtoken_unsub_url(const struct kn_keyring *kr, const char *public_url,
                          const char *tenant, const char *child,
                          const char *index, const char *category,
                          int64_t now_ms)
{
    char *t, *url;
    if (public_url == NULL || strncasecmp(public_url, "https://", 8) != 0 ||
        category == NULL || category[0] == '\0')
        return NULL;
    t = kn_gtoken_make(kr, KN_GTOKEN_UNSUB, tenant, child, index,
                       now_ms + (int64_t)KN_GTOKEN_UNSUB_DAYS * 86400000,
                       category);
    if (t == NULL)
        return NULL;
    url = kn_xasprintf("%s/u/%s", public_url, t);
    free(t);
    return url;
}

/* The media type of ctype equals type (case-insensitive, parameters and
 * spaces after it ignored). */
static int media_is(const char *ctype, const char *type)
{
    size_t n = strlen(type);
    if (ctype == NULL || strncasecmp(ctype, type, n) != 0)
        return 0;
    ctype += n;
    while (*ctype == ' ' || *ctype == '\t')
        ctype++;
    return *ctype == '\0' || *ctype == ';';
}

/* memmem over [p, end) */
static const char *find(const char *p, const char *end, const char *s, size_t n)
{
    return end > p ? memmem(p, (size_t)(end - p), s, n) : NULL;
}

/* The boundary parameter of a multipart Content-Type, into out (1..70
 * characters, RFC 2046), quoted or not; 0 when there is none. */
static int boundary_of(const char *ctype, char *out, size_t cap)
{
    const char *b = strcasestr(ctype, "boundary=");
    size_t n;
    if (b == NULL)
        return 0;
    b += 9;
    if (*b == '"') {
        b++;
        n = strcspn(b, "\"");
    } else {
        n = strcspn(b, "; \t");
    }
    if (n == 0 || n > 70 || n + 1 > cap)
        return 0;
    memcpy(out, b, n);
    out[n] = '\0';
    return 1;
}

/* One part of a multipart body (headers CRLF CRLF content): 1 if it is
 * the form field List-Unsubscribe with the content One-Click. */
static int part_ok(const char *p, const char *end)
{
    const char *hend = find(p, end, "\r\n\r\n", 4), *v;
    size_t vlen;
    char *h;
    int named;
    if (hend == NULL)
        return 0;
    h = kn_xstrndup(p, (size_t)(hend - p));
    named = strcasestr(h, "form-data") != NULL &&
            (strcasestr(h, "name=\"List-Unsubscribe\"") != NULL ||
             strcasestr(h, "name=List-Unsubscribe\r") != NULL ||
             strcasestr(h, "name=List-Unsubscribe;") != NULL ||
             (strlen(h) >= 21 &&
              strcasecmp(h + strlen(h) - 21, "name=List-Unsubscribe") == 0));
    free(h);
    v = hend + 4;
    vlen = (size_t)(end - v);
    /* the CRLF before the next delimiter belongs to the delimiter */
    if (vlen >= 2 && v[vlen - 2] == '\r' && v[vlen - 1] == '\n')
        vlen -= 2;
    return named && vlen == 9 && memcmp(v, "One-Click", 9) == 0;
}

int kn_gtoken_unsub_form_ok(const char *ctype, const char *body, size_t len)
{
    static const char field[] = "List-Unsubscribe=One-Click";
    const char *end = body + len;
    if (body == NULL)
        return 0;
    if (media_is(ctype, "application/x-www-form-urlencoded")) {
        for (const char *p = body; p < end;) {
            const char *amp = memchr(p, '&', (size_t)(end - p));
            const char *stop = amp ? amp : end;
            if ((size_t)(stop - p) == sizeof(field) - 1 &&
                memcmp(p, field, sizeof(field) - 1) == 0)
                return 1;
            p = stop + 1;
        }
        return 0;
    }
    if (media_is(ctype, "multipart/form-data")) {
        char b[75], delim[80];
        const char *p, *next;
        size_t dn;
        if (!boundary_of(ctype, b, sizeof(b)))
            return 0;
        dn = (size_t)snprintf(delim, sizeof(delim), "--%s", b);
        p = find(body, end, delim, dn);
        while (p != NULL) {
            p += dn;
            if (end - p >= 2 && p[0] == '-' && p[1] == '-')
                return 0; /* the close delimiter */
            p = find(p, end, "\r\n", 2);
            if (p == NULL)
                return 0;
            p += 2;
            next = find(p, end, delim, dn);
            if (part_ok(p, next ? next : end))
                return 1;
            p = next;
        }
    }
    return 0;
}
