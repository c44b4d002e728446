/*
 * device.c - the staff console's device cookies (device.h).
 */
#include "model/device.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/codec.h"
#include "common/kn.h"
#include "common/seal.h"
#include "model/session.h"

/* A value: nonce, '.', at most 15 digits, '.', 32 hex. */
#define VALUE_MAX (KN_DEVICE_NONCE_CHARS + 1 + 15 + 1 + 32)

static int is_https(const char *url)
{
    return url != NULL && strncasecmp(url, "https://", 8) == 0;
}

void kn_device_cookie_name(const struct kn_keyring *kr, const char *public_url,
                           const char *tenant, const char *login,
                           char out[KN_DEVICE_NAME_MAX])
{
    char *who = kn_xasprintf("%s|%s", tenant, login);
    char idx[33];
    kn_blind_index(kr, "device-name", who, idx);
    free(who);
    snprintf(out, KN_DEVICE_NAME_MAX, "%skairan_device_%.16s",
             is_https(public_url) ? "__Host-" : "", idx);
}

/* The MAC of a device of (tenant, login) into mac (33 bytes). */
static void device_mac(const struct kn_keyring *kr, const char *tenant,
                       const char *login, const char *nonce,
                       long long expires_ms, char mac[33])
{
    char *plain =
        kn_xasprintf("d1|%s|%s|%s|%lld", tenant, login, nonce, expires_ms);
    kn_blind_index(kr, "device", plain, mac);
    free(plain);
}

char *kn_device_cookie(const struct kn_keyring *kr, const char *public_url,
                       const char *tenant, const char *login, int64_t now_ms,
                       struct kn_device *dev)
{
    unsigned char raw[16];
    char name[KN_DEVICE_NAME_MAX], mac[33], *s, *cookie;

    kn_random(raw, sizeof(raw));
    s = kn_b64url_encode(raw, sizeof(raw));
    memcpy(dev->nonce, s, KN_DEVICE_NONCE_CHARS);
    dev->nonce[KN_DEVICE_NONCE_CHARS] = '\0';
    free(s);
    dev->expires_ms = now_ms + KN_DEVICE_MAX_MS;
    device_mac(kr, tenant, login, dev->nonce, (long long)dev->expires_ms, mac);
    kn_device_cookie_name(kr, public_url, tenant, login, name);
    cookie = kn_xasprintf("%s=%s.%lld.%s; Path=/; %sHttpOnly; "
                          "SameSite=Strict; Max-Age=%lld",
                          name, dev->nonce, (long long)dev->expires_ms, mac,
                          is_https(public_url) ? "Secure; " : "",
                          KN_DEVICE_MAX_MS / 1000);
    return cookie;
}

/*
 * Split a value "<nonce>.<expires>.<mac>" into dev and mac: 0 or
 * KN_EINVAL.  The expiry is digits only, without a leading zero, so that
 * one device has one spelling.
 */
static int parse_value(const char *v, size_t vl, struct kn_device *dev,
                       char mac[33])
{
    size_t i = 0, e;
    long long exp = 0;
    if (vl > VALUE_MAX || vl < KN_DEVICE_NONCE_CHARS + 1 + 1 + 1 + 32)
        return KN_EINVAL;
    for (i = 0; i < KN_DEVICE_NONCE_CHARS; i++) {
        if (!kn_b64url_char((unsigned char)v[i]))
            return KN_EINVAL;
    }
    if (v[i++] != '.')
        return KN_EINVAL;
    e = i;
    while (i < vl && v[i] >= '0' && v[i] <= '9') {
        exp = exp * 10 + (v[i] - '0');
        i++;
    }
    if (i == e || i - e > 15 || v[e] == '0' || i >= vl || v[i++] != '.' ||
        vl - i != 32)
        return KN_EINVAL;
    for (size_t k = i; k < vl; k++) {
        if (!((v[k] >= '0' && v[k] <= '9') || (v[k] >= 'a' && v[k] <= 'f')))
            return KN_EINVAL;
    }
    memcpy(dev->nonce, v, KN_DEVICE_NONCE_CHARS);
    dev->nonce[KN_DEVICE_NONCE_CHARS] = '\0';
    dev->expires_ms = exp;
    memcpy(mac, v + i, 32);
    mac[32] = '\0';
    return 0;
}

int kn_device_from_cookie(const struct kn_keyring *kr, const char *header,
                          const char *public_url, const char *tenant,
                          const char *login, int64_t now_ms,
                          struct kn_device *dev)
{
    char name[KN_DEVICE_NAME_MAX], got[33], want[33];
    const char *v = NULL;
    size_t vl = 0;
    int rc;

    memset(dev, 0, sizeof(*dev));
    kn_device_cookie_name(kr, public_url, tenant, login, name);
    if ((rc = kn_cookie_value(header, name, &v, &vl)) < 0)
        return rc;
    if (parse_value(v, vl, dev, got) < 0)
        goto bad;
    device_mac(kr, tenant, login, dev->nonce, (long long)dev->expires_ms, want);
    if (CRYPTO_memcmp(got, want, 32) != 0)
        goto bad;
    if (dev->expires_ms <= now_ms)
        return KN_ETIMEDOUT;
    return 0;
bad:
    memset(dev, 0, sizeof(*dev));
    return KN_EINVAL;
}
