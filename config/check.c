/*
 * check.c - the validators of config values that need more than a type:
 * Redis and SMTP URLs, mailboxes, host names, http.listen (the same
 * parser kairand binds with), http.public_url and trusted proxies.  Each
 * check returns NULL or a sentence saying what is expected.  And
 * kn_redis_url_parse, the public face of the Redis URL's split.
 */
#include "config/check.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/codec.h"
#include "common/kn.h"
#include "config/config.h"

/* Percent-decode s[0..len) into a heap string; NULL if malformed. */
static char *percent_decode(const char *s, size_t len)
{
    char *out = kn_xmalloc(len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%') {
            int hi = i + 2 < len ? kn_hex_value((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < len ? kn_hex_value((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                explicit_bzero(out, len + 1);
                free(out);
                return NULL;
            }
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

/* Parse s[0..len) as a decimal number in [lo, hi]; -1 if it is not one. */
static long parse_number(const char *s, size_t len, long lo, long hi)
{
    long v = 0;
    if (len == 0 || len > 10)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v < lo || v > hi ? -1 : v;
}

static bool host_char(int c)
{
    return isalnum(c) || c == '.' || c == '-' || c == '_';
}

/*
 * Split "host[:port]" or "[v6]:port" in s[0..len).  Sets *host (pointer
 * into s) and *hostlen, and *port (or leaves it).  Returns NULL or why not.
 */
static const char *split_host_port(const char *s, size_t len, const char **host,
                                   size_t *hostlen, long *port)
{
    const char *end = s + len, *after;
    if (len > 0 && *s == '[') {
        const char *close = memchr(s, ']', len);
        if (close == NULL)
            return "'[' without ']' around the IPv6 address";
        for (const char *p = s + 1; p < close; p++) {
            if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
                return "bad IPv6 address";
        }
        *host = s + 1;
        *hostlen = (size_t)(close - s - 1);
        after = close + 1;
    } else {
        after = memchr(s, ':', len);
        if (after == NULL)
            after = end;
        for (const char *p = s; p < after; p++) {
            if (!host_char((unsigned char)*p))
                return "bad character in the host name";
        }
        *host = s;
        *hostlen = (size_t)(after - s);
    }
    if (after < end) {
        if (*after != ':')
            return "unexpected text after the host";
        *port = parse_number(after + 1, (size_t)(end - after - 1), 1, 65535);
        if (*port < 0)
            return "the port must be a number from 1 to 65535";
    }
    return NULL;
}

/*
 * The work of kn_redis_url_parse: NULL on success (outputs set, when not
 * NULL), else why the url is refused (outputs untouched).
 */
const char *kn__config_redis_url_split(const char *url, char **host, int *port,
                                       int *db, char **user, char **password)
{
    static const char syntax[] =
        "expected redis://[[user]:password@]host[:port][/db]";
    const char *auth, *end, *at, *hp, *h = NULL;
    size_t hlen = 0;
    long p = 6379, d = 0;
    char *pw = NULL, *us = NULL;
    const char *why;

    if (url == NULL)
        return syntax;
    if (strncmp(url, "rediss://", 9) == 0)
        return "TLS to redis (rediss://) is not supported; use redis://";
    if (strncmp(url, "unix:", 5) == 0)
        return "unix sockets are not supported; use redis://host:port";
    if (strncmp(url, "redis://", 8) != 0)
        return syntax;
    auth = url + 8;
    end = auth + strcspn(auth, "/?#");
    if (*end == '?' || *end == '#')
        return "a redis url takes no '?' or '#' part";
    at = memrchr(auth, '@', (size_t)(end - auth));
    hp = auth;
    if (at != NULL) {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        if (colon == NULL)
            return "write the password as ':password@' or "
                   "'user:password@' before the host";
        if (colon > auth) {
            /* A Redis 6 ACL user: AUTH <user> <password>.  Shown in
             * messages and logs, so nothing a terminal would obey. */
            us = percent_decode(auth, (size_t)(colon - auth));
            if (us == NULL)
                return "bad percent-encoding in the user name";
            for (const unsigned char *u = (const unsigned char *)us; *u; u++)
                if (*u <= ' ' || *u == 0x7f) {
                    free(us);
                    return "the user name has a space or a control "
                           "character";
                }
        }
        if (colon + 1 < at) {
            pw = percent_decode(colon + 1, (size_t)(at - colon - 1));
            if (pw == NULL) {
                free(us);
                return "bad percent-encoding in the password "
                       "(write '%' as %25)";
            }
        }
        hp = at + 1;
    }
    why = split_host_port(hp, (size_t)(end - hp), &h, &hlen, &p);
    if (why == NULL && *end == '/' && end[1] != '\0') {
        d = parse_number(end + 1, strlen(end + 1), 0, INT_MAX);
        if (d < 0)
            why = "the database must be a number (redis://host:port/0)";
    }
    if (why != NULL) {
        kn_free_secret(pw);
        free(us);
        return why;
    }
    if (host != NULL)
        *host = hlen > 0 ? kn_xstrndup(h, hlen) : kn_xstrdup("127.0.0.1");
    if (port != NULL)
        *port = (int)p;
    if (db != NULL)
        *db = (int)d;
    if (password != NULL)
        *password = pw;
    else
        kn_free_secret(pw);
    if (user != NULL)
        *user = us;
    else
        free(us);
    return NULL;
}

const char *kn__config_check_redis_url(const char *value)
{
    return kn__config_redis_url_split(value, NULL, NULL, NULL, NULL, NULL);
}

/*
 * Check an smtp url: "smtp://host[:port]" or "smtps://host[:port]" and
 * nothing else.  No path, not even "/": the smtp adapter appends "/helo"
 * because libcurl takes the EHLO name from the path.  No user or password
 * either: the url is logged.  *implicit says smtps.  NULL if fine.
 */
const char *kn__config_smtp_url_problem(const char *url, bool *implicit)
{
    static const char syntax[] =
        "expected smtp://host[:port] or smtps://host[:port]";
    const char *auth, *end, *h;
    size_t hlen, len;
    long port;

    if (url == NULL)
        return "not set";
    if (strncmp(url, "smtp://", 7) == 0) {
        *implicit = false;
        auth = url + 7;
    } else if (strncmp(url, "smtps://", 8) == 0) {
        *implicit = true;
        auth = url + 8;
    } else {
        return syntax;
    }
    len = strlen(auth);
    end = auth + len;
    if (memchr(auth, '@', len) != NULL)
        return "no user or password in the url: use smtp.username and "
               "smtp.password_file";
    if (memchr(auth, '/', len) != NULL || memchr(auth, '?', len) != NULL ||
        memchr(auth, '#', len) != NULL)
        return "no path in the url (the EHLO name is smtp.helo)";
    if (split_host_port(auth, (size_t)(end - auth), &h, &hlen, &port) != NULL ||
        hlen == 0)
        return syntax;
    return NULL;
}

char *kn__config_smtp_url_host(const char *url)
{
    bool implicit;
    const char *auth, *h;
    size_t hlen;
    long port;
    if (kn__config_smtp_url_problem(url, &implicit) != NULL)
        return NULL;
    auth = url + (implicit ? 8 : 7);
    if (split_host_port(auth, strlen(auth), &h, &hlen, &port) != NULL)
        return NULL;
    return kn_xstrndup(h, hlen);
}

const char *kn__config_check_smtp_url(const char *value)
{
    bool implicit;
    return kn__config_smtp_url_problem(value, &implicit);
}

/*
 * A mailbox: "Name <local@domain>" or "local@domain".  Only the address is
 * looked at: it needs one '@' with something on both sides and no blanks.
 */
const char *kn__config_mailbox_problem(const char *value)
{
    static const char syntax[] =
        "expected an address such as 'kairan <noreply@school.example.jp>' "
        "or 'noreply@school.example.jp'";
    const char *addr = value, *lt, *gt, *at;
    size_t len;

    if (value == NULL)
        return "not set";
    lt = strrchr(value, '<');
    if (lt != NULL) {
        gt = strchr(lt, '>');
        if (gt == NULL || gt[1 + strspn(gt + 1, " \t")] != '\0')
            return syntax;
        addr = lt + 1;
        len = (size_t)(gt - addr);
    } else {
        len = strlen(value);
    }
    at = memrchr(addr, '@', len);
    if (at == NULL || at == addr || at + 1 == addr + len)
        return syntax;
    for (size_t i = 0; i < len; i++) {
        if (isspace((unsigned char)addr[i]) || addr[i] == '<' || addr[i] == '>')
            return syntax;
    }
    return NULL;
}

int kn_hostport_parse(const char *s, size_t len, char *host, size_t hostsz,
                      int *port)
{
    const char *end = s + len, *colon, *h;
    size_t hl;
    long p = 0;

    while (s < end && isspace((unsigned char)*s))
        s++;
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    if (s == end)
        return KN_EINVAL;
    if (*s == '[') {
        const char *rb = memchr(s, ']', (size_t)(end - s));
        if (rb == NULL || rb + 1 >= end || rb[1] != ':')
            return KN_EINVAL;
        h = s + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = memrchr(s, ':', (size_t)(end - s));
        if (colon == NULL)
            return KN_EINVAL;
        h = s;
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= hostsz)
        return KN_EINVAL;
    for (size_t i = 0; i < hl; i++) {
        if (!host_char((unsigned char)h[i]) && h[i] != ':')
            return KN_EINVAL;
        if (h[i] == ':' && *s != '[')
            return KN_EINVAL;
    }
    if (colon + 1 >= end || end - colon > 6)
        return KN_EINVAL;
    for (const char *q = colon + 1; q < end; q++) {
        if (!isdigit((unsigned char)*q))
            return KN_EINVAL;
        p = p * 10 + (*q - '0');
    }
    if (p < 1 || p > 65535)
        return KN_EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}

const char *kn__config_check_sentinels(const char *value)
{
    static const char want[] =
        "expected host:port of each sentinel, separated by commas "
        "(127.0.0.1:26379,10.0.0.2:26379; at most 16)";
    const char *p = value;
    size_t n = 0;
    char host[256];
    int port;

    while (1) {
        size_t len = strcspn(p, ",");
        if (kn_hostport_parse(p, len, host, sizeof(host), &port) < 0 ||
            ++n > KN_MAX_SENTINELS)
            return want;
        if (p[len] == '\0')
            return NULL;
        p += len + 1;
    }
}

const char *kn__config_check_master_name(const char *value)
{
    size_t n = strlen(value);
    if (n == 0 || n > 64)
        return "expected the sentinels' name of the primary (1-64 letters, "
               "digits, '.', '_', '-')";
    for (const char *p = value; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
            return "expected the sentinels' name of the primary (1-64 "
                   "letters, digits, '.', '_', '-')";
    }
    return NULL;
}

const char *kn__config_check_hostname(const char *value)
{
    for (const char *p = value; *p; p++) {
        if (!host_char((unsigned char)*p))
            return "expected a host name such as mail.school.example.jp";
    }
    return NULL;
}

const char *kn__config_check_bounce_local(const char *value)
{
    size_t n = strlen(value);
    if (n == 0 || n > 32)
        return "expected 1 to 32 characters such as bounce";
    for (const char *p = value; *p; p++) {
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) ||
              *p == '.' || *p == '-'))
            return "expected lower-case letters, digits, '.' and '-' only "
                   "(no '+': kairan adds +<ref> itself), such as bounce";
    }
    if (value[0] == '.' || value[n - 1] == '.' || strstr(value, "..") != NULL)
        return "a '.' may not start or end it, nor follow another";
    return NULL;
}

const char *kn__config_check_ec_public_key(const char *value)
{
    unsigned char *der = NULL;
    const unsigned char *p;
    long n = kn_b64_decode(value, strlen(value), &der);
    EVP_PKEY *k = NULL;
    const char *why = NULL;
    char group[32] = "";
    size_t gl = 0;
    if (n <= 0) {
        free(der);
        return "expected the base64 public key SendGrid shows for the "
               "signed Event Webhook (MFkwEwYHKoZIzj0CAQYI...)";
    }
    p = der;
    k = d2i_PUBKEY(NULL, &p, n);
    if (k == NULL || p != der + n)
        why = "not a public key (base64 of DER SubjectPublicKeyInfo): copy "
              "the verification key from SendGrid's Mail Settings";
    else if (EVP_PKEY_get_base_id(k) != EVP_PKEY_EC ||
             EVP_PKEY_get_group_name(k, group, sizeof(group), &gl) != 1 ||
             strcmp(group, "prime256v1") != 0)
        why = "not an ECDSA P-256 key (SendGrid signs with ECDSA P-256)";
    EVP_PKEY_free(k);
    free(der);
    return why;
}

int kn_config_listen_parse(const char *spec, struct sockaddr_storage *addr)
{
    char host[128];
    const char *colon, *h = spec;
    size_t hl;
    char *end;
    long port;

    memset(addr, 0, sizeof(*addr));
    if (spec[0] == '[') {
        const char *rb = strchr(spec, ']');
        if (rb == NULL || rb[1] != ':')
            return KN_ECONFIG;
        h = spec + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(spec, ':');
        if (colon == NULL)
            return KN_ECONFIG;
        hl = (size_t)(colon - spec);
    }
    if (hl == 0 || hl >= sizeof(host))
        return KN_ECONFIG;
    memcpy(host, h, hl);
    host[hl] = '\0';
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    if (!isdigit((unsigned char)colon[1]))
        return KN_ECONFIG;
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || port < 1 || port > 65535)
        return KN_ECONFIG;
    if (spec[0] != '[') {
        struct sockaddr_in *a4 = (struct sockaddr_in *)addr;
        if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
            return KN_ECONFIG;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
    } else {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)addr;
        if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
            return KN_ECONFIG;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
    }
    return 0;
}

/* http.listen: exactly what kairand's start accepts (the same function). */
const char *kn__config_check_listen(const char *value)
{
    struct sockaddr_storage addr;
    if (kn_config_listen_parse(value, &addr) < 0)
        return "expected host:port with a numeric IPv4 address, [IPv6]:port "
               "or localhost:port, and a port from 1 to 65535, e.g. "
               "127.0.0.1:8025 or [::1]:8025 (empty: no HTTP)";
    return NULL;
}

/*
 * http.public_url: the base of the personal links sent to guardians, so
 * it must be a link a phone opens as a web page and nothing else:
 * http:// or https://, a host, no user:password@, no query or fragment
 * (the link is <public_url>/a/<token>), no spaces or control characters.
 */
const char *kn__config_check_public_url(const char *value)
{
    const char *rest, *end;
    if (strncasecmp(value, "https://", 8) == 0)
        rest = value + 8;
    else if (strncasecmp(value, "http://", 7) == 0)
        rest = value + 7;
    else
        return "expected an absolute http:// or https:// URL, e.g. "
               "https://kairan.school.example.jp";
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if (*p <= 0x20 || *p == 0x7f)
            return "spaces and control characters are not allowed";
        if (*p >= 0x80)
            return "non-ASCII characters are not allowed (write the host "
                   "as punycode and the path percent-encoded)";
    }
    end = rest + strcspn(rest, "/?#");
    if (end == rest || *rest == ':')
        return "the URL has no host";
    if (memchr(rest, '@', (size_t)(end - rest)) != NULL)
        return "user:password@ is not allowed in a link sent to guardians";
    for (const char *p = rest; p < end; p++) {
        if (!host_char((unsigned char)*p) && *p != ':' && *p != '[' &&
            *p != ']')
            return "the host has characters a host name cannot have";
    }
    if (strpbrk(end, "?#") != NULL)
        return "no query (?) or fragment (#): links are <public_url>/a/...";
    return NULL;
}

/* http.trusted_proxies: numeric addresses separated by spaces or commas. */
const char *kn__config_check_proxies(const char *value)
{
    const char *p = value;
    while (*p) {
        char one[INET6_ADDRSTRLEN + 1];
        unsigned char buf[sizeof(struct in6_addr)];
        size_t n;
        p += strspn(p, " \t,");
        n = strcspn(p, " \t,");
        if (n == 0)
            break;
        if (n >= sizeof(one))
            return "expected numeric IP addresses such as 127.0.0.1 ::1";
        memcpy(one, p, n);
        one[n] = '\0';
        if (inet_pton(AF_INET, one, buf) != 1 &&
            inet_pton(AF_INET6, one, buf) != 1)
            return "expected numeric IP addresses such as 127.0.0.1 ::1 "
                   "(no names, no ranges)";
        p += n;
    }
    return NULL;
}

/*
 * Parse "redis://[[user]:password@]host[:port][/db]".  The user name (a
 * Redis 6 ACL user) is not an output here: it is cfg->redis_user.  The
 * password is percent-decoded; a host may be "[::1]".  Left out parts take
 * their defaults.  Any output pointer may be NULL.  Returns 0, or KN_EINVAL
 * with nothing allocated.
 */
int kn_redis_url_parse(const char *url, char **host, int *port, int *db,
                       char **password)
{
    return kn__config_redis_url_split(url, host, port, db, NULL, password)
               ? KN_EINVAL
               : 0;
}
