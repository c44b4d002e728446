/*
 * test_device.c - the staff console's device cookies (model/device.h):
 * the Set-Cookie attributes as the session cookie's, a round trip, each
 * account its own cookie name, and what is no device cookie: another
 * account's, altered, forged with another key, expired, malformed, twice.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/kn.h"
#include "common/seal.h"
#include "model/device.h"

#define NOW   1764000000000LL
#define HTTP  "http://127.0.0.1:8080"
#define HTTPS "https://kairan.example.jp"

static char keydir[PATH_MAX];

static struct kn_keyring *load(const char *name)
{
    struct kn_keyring *kr = NULL;
    char path[PATH_MAX + 32], err[300];
    snprintf(path, sizeof(path), "%s/%s", keydir, name);
    if (kn_keyfile_generate(path) != 0 ||
        kn_keyring_load(path, &kr, err, sizeof(err)) != 0)
        return NULL;
    unlink(path);
    return kr;
}

static int setup(void **state)
{
    snprintf(keydir, sizeof(keydir), "%s/kn-test-device-XXXXXX",
             getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(keydir) == NULL)
        return -1;
    *state = load("key");
    return *state == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    kn_keyring_free(*state);
    return rmdir(keydir);
}

/* "name=value" of a Set-Cookie line (heap), as a browser sends it back. */
static char *pair(const char *set_cookie)
{
    return kn_xasprintf("%.*s", (int)strcspn(set_cookie, ";"), set_cookie);
}

static void test_attributes(void **state)
{
    struct kn_keyring *kr = *state;
    struct kn_device dev;
    char *c = kn_device_cookie(kr, HTTPS, "sakura", "sato", NOW, &dev);
    char want[64];
    assert_true(strncmp(c, "__Host-kairan_device_", 21) == 0);
    assert_non_null(strstr(c, "; Path=/; Secure; HttpOnly; SameSite=Strict; "
                              "Max-Age=15552000"));
    assert_int_equal(strlen(dev.nonce), KN_DEVICE_NONCE_CHARS);
    assert_true(dev.expires_ms == NOW + KN_DEVICE_MAX_MS);
    snprintf(want, sizeof(want), ".%lld.", (long long)dev.expires_ms);
    assert_non_null(strstr(c, want));
    free(c);
    /* plain http (a test host): no Secure, no __Host- */
    c = kn_device_cookie(kr, HTTP, "sakura", "sato", NOW, &dev);
    assert_true(strncmp(c, "kairan_device_", 14) == 0);
    assert_null(strstr(c, "Secure"));
    assert_non_null(strstr(c, "HttpOnly; SameSite=Strict"));
    free(c);
}

static void test_round_trip(void **state)
{
    struct kn_keyring *kr = *state;
    struct kn_device dev, got;
    char *c = kn_device_cookie(kr, HTTP, "sakura", "sato", NOW, &dev);
    char *p = pair(c);
    char *hdr = kn_xasprintf("kairan_session=abc; %s; other=1", p);
    assert_int_equal(kn_device_from_cookie(kr, hdr, HTTP, "sakura", "sato",
                                           NOW + 1000, &got),
                     0);
    assert_string_equal(got.nonce, dev.nonce);
    assert_true(got.expires_ms == dev.expires_ms);
    /* the last millisecond, then expired (still genuine: KN_ETIMEDOUT) */
    assert_int_equal(kn_device_from_cookie(kr, hdr, HTTP, "sakura", "sato",
                                           dev.expires_ms - 1, &got),
                     0);
    assert_int_equal(kn_device_from_cookie(kr, hdr, HTTP, "sakura", "sato",
                                           dev.expires_ms, &got),
                     KN_ETIMEDOUT);
    /* none */
    assert_int_equal(kn_device_from_cookie(kr, "kairan_session=abc", HTTP,
                                           "sakura", "sato", NOW, &got),
                     KN_ENOENT);
    assert_int_equal(
        kn_device_from_cookie(kr, NULL, HTTP, "sakura", "sato", NOW, &got),
        KN_ENOENT);
    /* the https name is not the http one */
    assert_int_equal(
        kn_device_from_cookie(kr, hdr, HTTPS, "sakura", "sato", NOW, &got),
        KN_ENOENT);
    free(hdr);
    free(p);
    free(c);
}

/* Two accounts of one browser (a shared staff-room PC) have two names;
 * another account's value under this account's name is refused. */
static void test_other_account(void **state)
{
    struct kn_keyring *kr = *state;
    struct kn_device a, b, got;
    char na[KN_DEVICE_NAME_MAX], nb[KN_DEVICE_NAME_MAX], nc[KN_DEVICE_NAME_MAX];
    char *ca = kn_device_cookie(kr, HTTP, "sakura", "sato", NOW, &a);
    char *cb = kn_device_cookie(kr, HTTP, "sakura", "ito", NOW, &b);
    char *hdr, *swapped;
    kn_device_cookie_name(kr, HTTP, "sakura", "sato", na);
    kn_device_cookie_name(kr, HTTP, "sakura", "ito", nb);
    kn_device_cookie_name(kr, HTTP, "momo", "sato", nc);
    assert_string_not_equal(na, nb);
    assert_string_not_equal(na, nc);
    assert_null(strstr(na, "sato")); /* the name does not show the login */
    hdr = kn_xasprintf("%.*s; %.*s", (int)strcspn(ca, ";"), ca,
                       (int)strcspn(cb, ";"), cb);
    assert_int_equal(
        kn_device_from_cookie(kr, hdr, HTTP, "sakura", "sato", NOW, &got), 0);
    assert_string_equal(got.nonce, a.nonce);
    assert_int_equal(
        kn_device_from_cookie(kr, hdr, HTTP, "sakura", "ito", NOW, &got), 0);
    assert_string_equal(got.nonce, b.nonce);
    /* ito's value under sato's name: another account's */
    swapped = kn_xasprintf("%s=%s", na, strchr(cb, '=') + 1);
    swapped[strcspn(swapped, ";")] = '\0';
    assert_int_equal(
        kn_device_from_cookie(kr, swapped, HTTP, "sakura", "sato", NOW, &got),
        KN_EINVAL);
    free(swapped);
    /* sato of another tenant */
    swapped = kn_xasprintf("%s=%s", nc, strchr(ca, '=') + 1);
    swapped[strcspn(swapped, ";")] = '\0';
    assert_int_equal(
        kn_device_from_cookie(kr, swapped, HTTP, "momo", "sato", NOW, &got),
        KN_EINVAL);
    free(swapped);
    free(hdr);
    free(ca);
    free(cb);
}

static void test_tampered(void **state)
{
    struct kn_keyring *kr = *state, *other = load("other");
    struct kn_device dev, got;
    char *c = kn_device_cookie(kr, HTTP, "sakura", "sato", NOW, &dev);
    char *p = pair(c), *v = strchr(p, '=') + 1, *q;
    size_t n = strlen(p);
    char *forged, *longer;
    /* every single character changed */
    for (size_t i = (size_t)(v - p); i < n; i++) {
        q = kn_xstrdup(p);
        q[i] = q[i] == 'a' ? 'b' : 'a';
        assert_int_equal(
            kn_device_from_cookie(kr, q, HTTP, "sakura", "sato", NOW, &got),
            KN_EINVAL);
        free(q);
    }
    /* a later expiry with the old MAC */
    q = kn_xstrdup(p);
    {
        char *dot = strchr(q + (v - p), '.') + 1;
        dot[0] = dot[0] == '9' ? '8' : (char)(dot[0] + 1);
    }
    assert_int_equal(
        kn_device_from_cookie(kr, q, HTTP, "sakura", "sato", NOW, &got),
        KN_EINVAL);
    free(q);
    /* made with another key */
    forged = kn_device_cookie(other, HTTP, "sakura", "sato", NOW, &dev);
    forged[strcspn(forged, ";")] = '\0';
    {
        char name[KN_DEVICE_NAME_MAX];
        kn_device_cookie_name(kr, HTTP, "sakura", "sato", name);
        q = kn_xasprintf("%s=%s", name, strchr(forged, '=') + 1);
    }
    assert_int_equal(
        kn_device_from_cookie(kr, q, HTTP, "sakura", "sato", NOW, &got),
        KN_EINVAL);
    free(q);
    /* twice, even the same value */
    q = kn_xasprintf("%s; %s", p, p);
    assert_int_equal(
        kn_device_from_cookie(kr, q, HTTP, "sakura", "sato", NOW, &got),
        KN_EINVAL);
    free(q);
    /* malformed */
    longer = kn_xasprintf("%s0", p);
    assert_int_equal(
        kn_device_from_cookie(kr, longer, HTTP, "sakura", "sato", NOW, &got),
        KN_EINVAL);
    free(longer);
    {
        const char *bad[] = {
            "",
            "x",
            "..",
            "AAAAAAAAAAAAAAAAAAAAAA.1.",
            "AAAAAAAAAAAAAAAAAAAAAA.01.0123456789abcdef0123456789abcdef",
            "AAAAAAAAAAAAAAAAAAAAA!.1.0123456789abcdef0123456789abcdef",
            "AAAAAAAAAAAAAAAAAAAAAA.1.0123456789ABCDEF0123456789abcdef",
            "AAAAAAAAAAAAAAAAAAAAAA.1234567890123456.0123456789abcdef0123456789abcdef"};
        char name[KN_DEVICE_NAME_MAX];
        kn_device_cookie_name(kr, HTTP, "sakura", "sato", name);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            q = kn_xasprintf("%s=%s", name, bad[i]);
            assert_int_equal(
                kn_device_from_cookie(kr, q, HTTP, "sakura", "sato", NOW, &got),
                KN_EINVAL);
            free(q);
        }
    }
    free(forged);
    free(p);
    free(c);
    kn_keyring_free(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attributes),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_other_account),
        cmocka_unit_test(test_tampered),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
