/*
 * test_seal.c - unit tests for common/seal.c: sealing and opening contact
 * addresses, key files (permissions, formats, rotation), the blind index,
 * HMAC-SHA-256 and base64url.
 *
 * Every test works in a private directory made with mkdtemp() by the group
 * setup and removed by the group teardown; nothing outside it is touched.
 */
/* Build flags define it; the guard lets a bare compile work too. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "common/kn.h"
#include "common/seal.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static char tmpdir[PATH_MAX];

/* Keys used by the tests, as hex. */
#define HEX_A "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define HEX_B "f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f"
#define HEX_PIN                                                               \
    "a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5"

static int setup_dir(void **state)
{
    snprintf(tmpdir, sizeof(tmpdir), "%s/kn-test-seal-XXXXXX",
             getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int teardown_dir(void **state)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        char path[PATH_MAX + 300];
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
        unlink(path);
    }
    closedir(d);
    return rmdir(tmpdir);
}

/* A fresh path in the test directory (caller frees). */
static char *tmp_path(const char *name)
{
    return kn_xasprintf("%s/%s", tmpdir, name);
}

/* Write len bytes to a new file with exactly the given mode. */
static char *write_file(const char *name, const void *data, size_t len,
                        mode_t mode)
{
    char *path = tmp_path(name);
    FILE *f;

    unlink(path);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
    return path;
}

static char *write_text(const char *name, const char *text)
{
    return write_file(name, text, strlen(text), 0600);
}

static char *read_text(const char *path)
{
    char *buf = kn_xmalloc(65536);
    FILE *f = fopen(path, "rb");
    size_t n;

    assert_non_null(f);
    n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static struct kn_keyring *load_ok(const char *path)
{
    struct kn_keyring *kr = NULL;
    char err[512] = "";
    int rc = kn_keyring_load(path, &kr, err, sizeof(err));
    if (rc != 0)
        print_error("kn_keyring_load(%s): %s\n", path, err);
    assert_int_equal(rc, 0);
    assert_non_null(kr);
    return kr;
}

/* A keyring from text written to a scratch file. */
static struct kn_keyring *keyring_from(const char *name, const char *text)
{
    char *path = write_text(name, text);
    struct kn_keyring *kr = load_ok(path);
    unlink(path);
    free(path);
    return kr;
}

static void assert_opens(const struct kn_keyring *kr, const char *purpose,
                         const char *sealed, const void *want, size_t wantlen)
{
    char *plain = NULL;
    size_t len = 12345;

    assert_int_equal(kn_unseal(kr, purpose, sealed, &plain, &len), 0);
    assert_non_null(plain);
    assert_int_equal(len, wantlen);
    assert_memory_equal(plain, want, wantlen);
    assert_int_equal(plain[len], '\0');
    free(plain);
}

static void assert_refused(const struct kn_keyring *kr, const char *purpose,
                           const char *sealed)
{
    char *plain = (char *)"sentinel";
    size_t len = 12345;

    assert_int_equal(kn_unseal(kr, purpose, sealed, &plain, &len),
                     KN_ECRYPTO);
    assert_null(plain);
}

/* ------------------------------------------------------------------------
 * base64url and HMAC
 * ------------------------------------------------------------------------ */

static void test_b64url_vectors(void **state)
{
    static const struct {
        const char *plain, *enc;
    } v[] = {
        {"", ""},
        {"f", "Zg"},
        {"fo", "Zm8"},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg"},
        {"fooba", "Zm9vYmE"},
        {"foobar", "Zm9vYmFy"},
        {"\xfb\xff", "-_8"}, /* the two URL-safe characters */
    };
    for (size_t i = 0; i < KN_ARRAY_SIZE(v); i++) {
        unsigned char *dec = NULL;
        char *enc = kn_b64url_encode(v[i].plain, strlen(v[i].plain));
        long n;
        assert_string_equal(enc, v[i].enc);
        n = kn_b64url_decode(enc, &dec);
        assert_int_equal(n, (long)strlen(v[i].plain));
        assert_non_null(dec);
        assert_memory_equal(dec, v[i].plain, (size_t)n);
        free(dec);
        free(enc);
    }
}

static void test_b64url_roundtrip(void **state)
{
    unsigned char data[300];

    for (size_t len = 0; len <= sizeof(data); len++) {
        unsigned char *dec = NULL;
        char *enc;
        kn_random(data, len);
        enc = kn_b64url_encode(data, len);
        assert_int_equal(strspn(enc, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklm"
                                     "nopqrstuvwxyz0123456789-_"),
                         strlen(enc));
        assert_int_equal(kn_b64url_decode(enc, &dec), (long)len);
        assert_memory_equal(dec, data, len);
        free(dec);
        free(enc);
    }
}

static void test_b64url_invalid(void **state)
{
    static const char *bad[] = {
        "Zm9v=", "Zm8=", "Z",    "Zm9vY", "Zm+v", "Zm/v", "Zm 9v",
        "Zm\n9", "Zm9\xe3", "Zh", "Zm9", /* "Zm9": low bits set */
    };
    for (size_t i = 0; i < KN_ARRAY_SIZE(bad); i++) {
        unsigned char *dec = (unsigned char *)"x";
        assert_int_equal(kn_b64url_decode(bad[i], &dec), -1);
        assert_null(dec);
    }
}

static void hex_of(const unsigned char *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

/* RFC 4231 test cases 1, 2 and 6. */
static void test_hmac_rfc4231(void **state)
{
    unsigned char key[131], mac[32];
    char hex[65];
    static const char msg6[] =
        "Test Using Larger Than Block-Size Key - Hash Key First";

    memset(key, 0x0b, 20);
    kn_hmac_sha256(key, 20, "Hi There", 8, mac);
    hex_of(mac, 32, hex);
    assert_string_equal(hex, "b0344c61d8db38535ca8afceaf0bf12b"
                             "881dc200c9833da726e9376c2e32cff7");

    kn_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac);
    hex_of(mac, 32, hex);
    assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c7"
                             "5a003f089d2739839dec58b964ec3843");

    memset(key, 0xaa, sizeof(key));
    kn_hmac_sha256(key, sizeof(key), msg6, strlen(msg6), mac);
    hex_of(mac, 32, hex);
    assert_string_equal(hex, "60e431591ee0b67f0d8a26aacbf5b77f"
                             "8e0bc6213728c5140546040f0ee37f54");

    /* An empty key and empty data are legal HMAC inputs. */
    kn_hmac_sha256("", 0, "", 0, mac);
    hex_of(mac, 32, hex);
    assert_string_equal(hex, "b613679a0814d9ec772f95d778c35fc5"
                             "ff1697c493715653c6c712144292c5ad");
}

/* ------------------------------------------------------------------------
 * Sealing and opening
 * ------------------------------------------------------------------------ */

static void test_seal_roundtrip(void **state)
{
    struct kn_keyring *kr = keyring_from("rt.key", "1:" HEX_A "\n");
    static const char japanese[] = "山田太郎 <taro@学校.jp> 連絡網";
    unsigned char big[1000];
    char *s;

    kn_random(big, sizeof(big));
    big[10] = 0; /* binary data with NUL bytes survives */

    s = kn_seal(kr, "email", "", 0);
    assert_true(strncmp(s, "k1.", 3) == 0);
    assert_int_equal(kn_sealed_kid(s), 1);
    assert_opens(kr, "email", s, "", 0);
    free(s);

    s = kn_seal(kr, "email", "taro@docomo.ne.jp", 17);
    assert_null(strstr(s, "taro"));
    assert_opens(kr, "email", s, "taro@docomo.ne.jp", 17);
    free(s);

    s = kn_seal(kr, "line", japanese, strlen(japanese));
    assert_opens(kr, "line", s, japanese, strlen(japanese));
    free(s);

    s = kn_seal(kr, "push", big, sizeof(big));
    assert_opens(kr, "push", s, big, sizeof(big));
    /* The len argument is optional. */
    {
        char *plain = NULL;
        assert_int_equal(kn_unseal(kr, "push", s, &plain, NULL), 0);
        assert_memory_equal(plain, big, sizeof(big));
        free(plain);
    }
    free(s);
    kn_keyring_free(kr);
}

static void test_seal_fresh_nonce(void **state)
{
    struct kn_keyring *kr = keyring_from("nonce.key", "1:" HEX_A "\n");
    char *a = kn_seal(kr, "email", "hanako@example.jp", 17);
    char *b = kn_seal(kr, "email", "hanako@example.jp", 17);

    assert_string_not_equal(a, b);
    /* The nonces themselves (first 16 base64 characters) differ. */
    assert_false(strncmp(a + 3, b + 3, 16) == 0);
    assert_opens(kr, "email", a, "hanako@example.jp", 17);
    assert_opens(kr, "email", b, "hanako@example.jp", 17);
    free(a);
    free(b);
    kn_keyring_free(kr);
}

static void test_unseal_wrong_purpose(void **state)
{
    struct kn_keyring *kr = keyring_from("purp.key", "1:" HEX_A "\n");
    char *s = kn_seal(kr, "email", "taro@docomo.ne.jp", 17);

    assert_refused(kr, "line", s);
    assert_refused(kr, "push", s);
    assert_refused(kr, "", s);
    assert_refused(kr, "emai", s);
    assert_refused(kr, "email ", s);
    free(s);
    kn_keyring_free(kr);
}

/*
 * Every change of a single character, to every other byte class, fails.
 * Three plaintext lengths give all three base64 endings (no unused bits,
 * 2 and 4 unused bits in the last character).
 */
static void test_unseal_flipped_chars(void **state)
{
    static const char alt[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        "k.=+/ \xff";
    static const char addr[] = "taro.yamada@docomo.ne.jp";
    struct kn_keyring *kr = keyring_from("flip.key", "1:" HEX_A "\n");

    for (size_t plen = 17; plen <= 19; plen++) {
        char *s = kn_seal(kr, "email", addr, plen);
        size_t n = strlen(s);
        int tried = 0;

        for (size_t i = 0; i < n; i++) {
            char orig = s[i];
            for (size_t j = 0; j < sizeof(alt) - 1; j++) {
                if (alt[j] == orig)
                    continue;
                s[i] = alt[j];
                assert_refused(kr, "email", s);
                tried++;
            }
            /* A single bit flip as well (may leave the alphabet). */
            s[i] = (char)(orig ^ 1);
            assert_refused(kr, "email", s);
            s[i] = orig;
        }
        assert_true(tried > 60 * (int)n);
        assert_opens(kr, "email", s, addr, plen);
        free(s);
    }
    kn_keyring_free(kr);
}

static void test_unseal_truncated(void **state)
{
    struct kn_keyring *kr = keyring_from("trunc.key", "1:" HEX_A "\n");
    char *s = kn_seal(kr, "email", "taro@docomo.ne.jp", 17);
    size_t n = strlen(s);
    char *longer;

    for (size_t i = 0; i < n; i++) {
        char *t = kn_xstrndup(s, i);
        assert_refused(kr, "email", t);
        free(t);
    }
    longer = kn_xasprintf("%sA", s);
    assert_refused(kr, "email", longer);
    free(longer);
    longer = kn_xasprintf("%sAA", s);
    assert_refused(kr, "email", longer);
    free(longer);
    free(s);
    kn_keyring_free(kr);
}

static void test_unseal_unknown_kid(void **state)
{
    struct kn_keyring *two =
        keyring_from("kid2.key", "1:" HEX_A "\n2:" HEX_B "\n");
    struct kn_keyring *one = keyring_from("kid1.key", "1:" HEX_A "\n");
    struct kn_keyring *other = keyring_from("kidx.key", "1:" HEX_B "\n");
    char *s = kn_seal(two, "email", "taro@docomo.ne.jp", 17);
    char *t;

    assert_true(strncmp(s, "k2.", 3) == 0);
    assert_refused(one, "email", s);
    /* The same kid with a different key does not open either. */
    t = kn_seal(one, "email", "taro@docomo.ne.jp", 17);
    assert_refused(other, "email", t);
    /* Rewriting the kid of a valid string does not help. */
    t[1] = '2';
    assert_refused(two, "email", t);
    t[1] = '1';
    assert_opens(two, "email", t, "taro@docomo.ne.jp", 17);
    free(t);
    free(s);
    kn_keyring_free(two);
    kn_keyring_free(one);
    kn_keyring_free(other);
}

static void test_unseal_garbage(void **state)
{
    static const char *junk[] = {
        "",
        "k",
        "k1",
        "k1.",
        "k1.AAAA",
        "k0.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "k01.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "k10000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "k-1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "k1.!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
        "k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "K1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "k99999999999999999999.AAAA",
        "taro@docomo.ne.jp",
    };
    struct kn_keyring *kr = keyring_from("junk.key", "1:" HEX_A "\n");
    char buf[200];

    for (size_t i = 0; i < KN_ARRAY_SIZE(junk); i++) {
        assert_refused(kr, "email", junk[i]);
        if (i != 9)
            assert_int_equal(kn_sealed_kid(junk[i]), -1);
    }
    assert_refused(kr, "email", NULL);
    assert_int_equal(kn_sealed_kid(NULL), -1);
    /* Well formed but never sealed: the kid is readable, the tag fails. */
    assert_int_equal(kn_sealed_kid(junk[9]), 1);

    /* Random bytes behind a valid prefix. */
    for (int round = 0; round < 500; round++) {
        size_t n = 3 + kn_random_below(sizeof(buf) - 4);
        kn_random(buf, n);
        for (size_t i = 0; i < n; i++) {
            if (buf[i] == 0)
                buf[i] = 'A';
        }
        buf[n] = '\0';
        if (round % 2 == 0)
            memcpy(buf, "k1.", 3);
        assert_refused(kr, "email", buf);
    }
    kn_keyring_free(kr);
}

/* ------------------------------------------------------------------------
 * Key files
 * ------------------------------------------------------------------------ */

static void test_keyfile_mode_refused(void **state)
{
    static const mode_t modes[] = {0644, 0640, 0604, 0660, 0666, 0610, 0601};
    char want[64];

    for (size_t i = 0; i < KN_ARRAY_SIZE(modes); i++) {
        char *path = write_file("open.key", "1:" HEX_A "\n",
                                strlen("1:" HEX_A "\n"), modes[i]);
        struct kn_keyring *kr = (struct kn_keyring *)0x1;
        char err[512] = "";
        assert_int_equal(kn_keyring_load(path, &kr, err, sizeof(err)),
                         KN_EPERM);
        assert_null(kr);
        assert_non_null(strstr(err, path));
        assert_non_null(strstr(err, "chmod 600"));
        snprintf(want, sizeof(want), "(mode %04o)", (unsigned)modes[i]);
        assert_non_null(strstr(err, want));
        assert_int_equal(kn_keyfile_add_key(path), KN_EPERM);
        unlink(path);
        free(path);
    }
    /* Owner-only modes are accepted, read-only included. */
    {
        char *path = write_file("ro.key", "1:" HEX_A "\n",
                                strlen("1:" HEX_A "\n"), 0400);
        struct kn_keyring *kr = load_ok(path);
        kn_keyring_free(kr);
        unlink(path);
        free(path);
    }
}

static void test_keyfile_missing(void **state)
{
    char *path = tmp_path("no-such.key");
    struct kn_keyring *kr = NULL;
    char err[512] = "";

    assert_int_equal(kn_keyring_load(path, &kr, err, sizeof(err)),
                     KN_ENOENT);
    assert_null(kr);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "does not exist"));
    assert_int_equal(kn_keyfile_add_key(path), KN_ENOENT);
    /* A NULL err buffer is allowed. */
    assert_int_equal(kn_keyring_load(path, &kr, NULL, 0), KN_ENOENT);
    free(path);
}

static void test_keyfile_raw(void **state)
{
    unsigned char raw[32];
    struct kn_keyring *kr, *txt;
    char *path, *s;
    char a[33], b[33];

    for (int i = 0; i < 32; i++)
        raw[i] = (unsigned char)i;
    path = write_file("raw.key", raw, sizeof(raw), 0600);
    kr = load_ok(path);
    assert_int_equal(kn_keyring_current(kr), 1);
    s = kn_seal(kr, "email", "taro@docomo.ne.jp", 17);
    assert_true(strncmp(s, "k1.", 3) == 0);

    /* The raw key is the same key as "1:<its hex>". */
    txt = keyring_from("raw-as-text.key", "1:" HEX_A "\n");
    assert_opens(txt, "email", s, "taro@docomo.ne.jp", 17);
    kn_blind_index(kr, "email", "taro@docomo.ne.jp", a);
    kn_blind_index(txt, "email", "taro@docomo.ne.jp", b);
    assert_string_equal(a, b);

    free(s);
    kn_keyring_free(txt);
    kn_keyring_free(kr);
    unlink(path);
    free(path);
}

static void test_keyfile_text_two_kids(void **state)
{
    struct kn_keyring *one = keyring_from("t1.key", "1:" HEX_A "\n");
    /* Comments, blank lines, CRLF, blanks and no final newline. */
    struct kn_keyring *two = keyring_from("t2.key", "# kairan keys\n"
                                                    "\n"
                                                    "  # rotated 2026-04\n"
                                                    "1:" HEX_A "\r\n"
                                                    "\t\n"
                                                    "  2:" HEX_B "  ");
    struct kn_keyring *rev =
        keyring_from("t3.key", "2:" HEX_B "\n1:" HEX_A "\n");
    char *old = kn_seal(one, "email", "taro@docomo.ne.jp", 17);
    char *cur = kn_seal(two, "email", "hanako@example.jp", 17);

    assert_int_equal(kn_keyring_current(one), 1);
    assert_int_equal(kn_keyring_current(two), 2);
    assert_int_equal(kn_keyring_current(rev), 2);
    assert_true(strncmp(cur, "k2.", 3) == 0);
    assert_int_equal(kn_sealed_kid(cur), 2);
    assert_opens(two, "email", old, "taro@docomo.ne.jp", 17);
    assert_opens(rev, "email", old, "taro@docomo.ne.jp", 17);
    assert_opens(rev, "email", cur, "hanako@example.jp", 17);
    assert_refused(one, "email", cur);
    free(old);
    free(cur);
    kn_keyring_free(one);
    kn_keyring_free(two);
    kn_keyring_free(rev);

    /* Upper-case hex and gaps between kids are fine. */
    one = keyring_from("t4.key", "3:" HEX_PIN "\n17:"
                                 "000102030405060708090A0B0C0D0E0F"
                                 "101112131415161718191A1B1C1D1E1F\n");
    assert_int_equal(kn_keyring_current(one), 17);
    kn_keyring_free(one);
}

/*
 * kn_unseal_many opens a batch with one context: strings of two key ids
 * mixed (the key set again at each change), every plaintext right; one
 * bad string anywhere gives KN_ECRYPTO, its index and no plaintext at all.
 */
static void test_unseal_many(void **state)
{
    struct kn_keyring *one = keyring_from("m1.key", "1:" HEX_A "\n");
    struct kn_keyring *two =
        keyring_from("m2.key", "1:" HEX_A "\n2:" HEX_B "\n");
    enum { N = 7 };
    const char *want[N] = {"U1", "U22", "", "U4444", "山田", "U6", "U77"};
    char *sealed[N], *plain[N], *keep;
    size_t bad = 99;

    for (int i = 0; i < N; i++)
        sealed[i] = kn_seal(i % 3 == 1 ? one : two, "line", want[i],
                            strlen(want[i]));
    assert_int_equal(kn_unseal_many(two, "line", (const char *const *)sealed,
                                    N, plain, &bad),
                     0);
    for (int i = 0; i < N; i++) {
        assert_string_equal(plain[i], want[i]);
        free(plain[i]);
    }
    assert_int_equal(kn_unseal_many(two, "line", NULL, 0, plain, &bad), 0);

    /* A wrong purpose fails at the first. */
    assert_int_equal(kn_unseal_many(two, "email", (const char *const *)sealed,
                                    N, plain, &bad),
                     KN_ECRYPTO);
    assert_int_equal(bad, 0);
    /* A tampered one in the middle: its index, nothing handed out. */
    keep = sealed[4];
    sealed[4] = kn_xstrdup(keep);
    sealed[4][strlen(sealed[4]) - 2] ^= 1;
    assert_int_equal(kn_unseal_many(two, "line", (const char *const *)sealed,
                                    N, plain, &bad),
                     KN_ECRYPTO);
    assert_int_equal(bad, 4);
    for (int i = 0; i < N; i++)
        assert_null(plain[i]);
    free(sealed[4]);
    sealed[4] = keep;
    /* A key the keyring does not have (kid 2 in the one-key ring). */
    assert_int_equal(kn_unseal_many(one, "line", (const char *const *)sealed,
                                    N, plain, &bad),
                     KN_ECRYPTO);
    assert_int_equal(bad, 0);
    /* After a failure the same context still opens the rest: a batch
     * that starts with the good key after a refused one. */
    assert_int_equal(kn_unseal_many(one, "line",
                                    (const char *const *)sealed + 1, 1, plain,
                                    &bad),
                     0);
    assert_string_equal(plain[0], want[1]);
    free(plain[0]);
    for (int i = 0; i < N; i++)
        free(sealed[i]);
    kn_keyring_free(one);
    kn_keyring_free(two);
}

static void test_keyfile_malformed(void **state)
{
    static const struct {
        const char *text;
        const char *where; /* expected "path:line:" suffix or NULL */
    } bad[] = {
        {"1:" HEX_A "0\n", ":1:"},
        {"# c\n\n1:" HEX_A "\n2:0001\n", ":4:"},
        {"1:" HEX_A "\n1:" HEX_B "\n", ":2:"},
        {"0:" HEX_A "\n", ":1:"},
        {"10000:" HEX_A "\n", ":1:"},
        {"x:" HEX_A "\n", ":1:"},
        {"1 " HEX_A "\n", ":1:"},
        {"-1:" HEX_A "\n", ":1:"},
        {"1:" HEX_A " # old\n", ":1:"},
        {"1:" HEX_A "\n2:" HEX_B "zz\n", ":2:"},
        {"index:" HEX_PIN "\nindex:" HEX_PIN "\n1:" HEX_A "\n", ":2:"},
        {"index:" HEX_A "0\n1:" HEX_A "\n", ":1:"},
        {"1:" HEX_A "\nkey=value\n", ":2:"},
        {"1:" HEX_A "\n\0garbage\n", ":2:"},
        {"", NULL},
        {"# only a comment\n\n", NULL},
        {"index:" HEX_PIN "\n", NULL},
    };
    static const size_t lens[] = {[13] = 2 + 64 + 1 + 9};

    for (size_t i = 0; i < KN_ARRAY_SIZE(bad); i++) {
        size_t len = i < KN_ARRAY_SIZE(lens) && lens[i] ? lens[i]
                                                        : strlen(bad[i].text);
        char *path = write_file("bad.key", bad[i].text, len, 0600);
        struct kn_keyring *kr = NULL;
        char err[512] = "";
        int rc = kn_keyring_load(path, &kr, err, sizeof(err));
        if (rc != KN_ECONFIG)
            print_error("case %zu: rc %d err %s\n", i, rc, err);
        assert_int_equal(rc, KN_ECONFIG);
        assert_null(kr);
        assert_true(strncmp(err, path, strlen(path)) == 0);
        if (bad[i].where != NULL) {
            if (strncmp(err + strlen(path), bad[i].where,
                        strlen(bad[i].where)) != 0)
                print_error("case %zu: %s\n", i, err);
            assert_true(strncmp(err + strlen(path), bad[i].where,
                                strlen(bad[i].where)) == 0);
        }
        /* No key material ever lands in the message. */
        assert_null(strstr(err, "0a0b0c"));
        assert_null(strstr(err, "b4a596"));
        assert_null(strstr(err, "a5a5a5"));
        unlink(path);
        free(path);
    }

    /* 33 bytes of binary is neither form; the message says why. */
    {
        unsigned char raw[33];
        char *path;
        struct kn_keyring *kr = NULL;
        char err[512] = "";
        memset(raw, 0x01, sizeof(raw));
        path = write_file("raw33.key", raw, sizeof(raw), 0600);
        assert_int_equal(kn_keyring_load(path, &kr, err, sizeof(err)),
                         KN_ECONFIG);
        assert_non_null(strstr(err, "32 bytes"));
        unlink(path);
        free(path);
    }
}

static void test_keyfile_generate(void **state)
{
    char *path = tmp_path("gen.key");
    struct kn_keyring *kr;
    struct stat st;
    mode_t old_umask;
    char *text, *s;

    old_umask = umask(0);
    assert_int_equal(kn_keyfile_generate(path), 0);
    umask(old_umask);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    text = read_text(path);
    assert_int_equal(text[0], '#');
    assert_non_null(strstr(text, "\n1:"));
    assert_int_equal(strlen(strstr(text, "\n1:")), 1 + 2 + 64 + 1);
    free(text);

    kr = load_ok(path);
    assert_int_equal(kn_keyring_current(kr), 1);
    s = kn_seal(kr, "email", "a@b.jp", 6);
    assert_opens(kr, "email", s, "a@b.jp", 6);
    free(s);
    kn_keyring_free(kr);

    /* Never overwrites. */
    assert_int_equal(kn_keyfile_generate(path), KN_EEXIST);
    unlink(path);
    free(path);

    /* Two generated keys differ. */
    {
        char *p1 = tmp_path("gen1.key"), *p2 = tmp_path("gen2.key");
        struct kn_keyring *k1, *k2;
        char a[33], b[33];
        assert_int_equal(kn_keyfile_generate(p1), 0);
        assert_int_equal(kn_keyfile_generate(p2), 0);
        k1 = load_ok(p1);
        k2 = load_ok(p2);
        kn_blind_index(k1, "email", "a@b.jp", a);
        kn_blind_index(k2, "email", "a@b.jp", b);
        assert_string_not_equal(a, b);
        kn_keyring_free(k1);
        kn_keyring_free(k2);
        unlink(p1);
        unlink(p2);
        free(p1);
        free(p2);
    }
}

static void test_add_key_text(void **state)
{
    char *path = tmp_path("rot.key");
    struct kn_keyring *kr1, *kr2, *kr3;
    char idx1[33], idx2[33], idx3[33];
    char *s1, *s2, *text;
    struct stat st;

    assert_int_equal(kn_keyfile_generate(path), 0);
    kr1 = load_ok(path);
    s1 = kn_seal(kr1, "email", "taro@docomo.ne.jp", 17);
    kn_blind_index(kr1, "email", "taro@docomo.ne.jp", idx1);

    assert_int_equal(kn_keyfile_add_key(path), 2);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    text = read_text(path);
    assert_int_equal(text[0], '#'); /* comments are kept */
    assert_non_null(strstr(text, "\n2:"));
    assert_null(strstr(text, "index:"));
    free(text);

    kr2 = load_ok(path);
    assert_int_equal(kn_keyring_current(kr2), 2);
    assert_opens(kr2, "email", s1, "taro@docomo.ne.jp", 17);
    kn_blind_index(kr2, "email", "taro@docomo.ne.jp", idx2);
    assert_string_equal(idx1, idx2);
    s2 = kn_seal(kr2, "email", "hanako@example.jp", 17);
    assert_true(strncmp(s2, "k2.", 3) == 0);
    assert_refused(kr1, "email", s2);

    assert_int_equal(kn_keyfile_add_key(path), 3);
    kr3 = load_ok(path);
    assert_int_equal(kn_keyring_current(kr3), 3);
    assert_opens(kr3, "email", s1, "taro@docomo.ne.jp", 17);
    assert_opens(kr3, "email", s2, "hanako@example.jp", 17);
    kn_blind_index(kr3, "email", "taro@docomo.ne.jp", idx3);
    assert_string_equal(idx1, idx3);

    free(s1);
    free(s2);
    kn_keyring_free(kr1);
    kn_keyring_free(kr2);
    kn_keyring_free(kr3);
    unlink(path);
    free(path);

    /* A text file without a final newline gets one before the new key. */
    path = write_text("nonl.key", "1:" HEX_A);
    assert_int_equal(kn_keyfile_add_key(path), 2);
    kr1 = load_ok(path);
    assert_int_equal(kn_keyring_current(kr1), 2);
    kn_keyring_free(kr1);
    unlink(path);
    free(path);
}

static void test_add_key_raw(void **state)
{
    unsigned char raw[32];
    struct kn_keyring *kr1, *kr2;
    char idx1[33], idx2[33], hex[65];
    char *path, *s1, *text, *line;

    kn_random(raw, sizeof(raw));
    path = write_file("rawrot.key", raw, sizeof(raw), 0600);
    kr1 = load_ok(path);
    s1 = kn_seal(kr1, "line", "U4af4980629", 11);
    kn_blind_index(kr1, "line", "U4af4980629", idx1);

    assert_int_equal(kn_keyfile_add_key(path), 2);
    text = read_text(path);
    hex_of(raw, 32, hex);
    line = kn_xasprintf("\n1:%s\n", hex);
    assert_non_null(strstr(text, line));
    assert_non_null(strstr(text, "\nindex:"));
    assert_non_null(strstr(text, "\n2:"));
    free(line);
    free(text);

    kr2 = load_ok(path);
    assert_int_equal(kn_keyring_current(kr2), 2);
    assert_opens(kr2, "line", s1, "U4af4980629", 11);
    kn_blind_index(kr2, "line", "U4af4980629", idx2);
    assert_string_equal(idx1, idx2);

    free(s1);
    kn_keyring_free(kr1);
    kn_keyring_free(kr2);
    unlink(path);
    free(path);
}

/* ------------------------------------------------------------------------
 * Blind index
 * ------------------------------------------------------------------------ */

static void assert_index_hex(const char *idx)
{
    assert_int_equal(strlen(idx), 32);
    assert_int_equal(strspn(idx, "0123456789abcdef"), 32);
}

static void test_blind_index(void **state)
{
    struct kn_keyring *kr = keyring_from("bi.key", "1:" HEX_A "\n");
    struct kn_keyring *other = keyring_from("bi2.key", "1:" HEX_B "\n");
    char a[33], b[33], c[33];

    kn_blind_index(kr, "email", "taro@docomo.ne.jp", a);
    assert_index_hex(a);
    kn_blind_index(kr, "email", "taro@docomo.ne.jp", b);
    assert_string_equal(a, b);

    /* E-mail: case and surrounding spaces do not matter. */
    kn_blind_index(kr, "email", "Taro@Docomo.ne.jp", b);
    assert_string_equal(a, b);
    kn_blind_index(kr, "email", "  TARO@DOCOMO.NE.JP \t", b);
    assert_string_equal(a, b);
    kn_blind_index(kr, "email", "taro.@docomo.ne.jp", b);
    assert_string_not_equal(a, b);

    /* Other purposes take the address as given. */
    kn_blind_index(kr, "line", "Uabc", b);
    kn_blind_index(kr, "line", "uabc", c);
    assert_string_not_equal(b, c);

    /* The same address gives unrelated indexes for different purposes. */
    kn_blind_index(kr, "line", "taro@docomo.ne.jp", b);
    kn_blind_index(kr, "push", "taro@docomo.ne.jp", c);
    assert_string_not_equal(a, b);
    assert_string_not_equal(a, c);
    assert_string_not_equal(b, c);

    /* Another key, another index. */
    kn_blind_index(other, "email", "taro@docomo.ne.jp", b);
    assert_string_not_equal(a, b);

    /* Empty addresses are fine, too. */
    kn_blind_index(kr, "email", "", b);
    assert_index_hex(b);
    kn_blind_index(kr, "email", "   ", c);
    assert_string_equal(b, c);

    kn_keyring_free(kr);
    kn_keyring_free(other);
}

/*
 * Known answers, computed independently (Python hmac/hashlib):
 *   index key = HKDF-SHA-256(key = kid 1, salt = "", info = "kairan blind
 *   index v1", 32 bytes); index = HMAC(index key, purpose 0x00 addr)[:16].
 * With an "index:" line the HMAC key is that line's key.
 */
static void test_blind_index_known_answer(void **state)
{
    struct kn_keyring *kr = keyring_from("kat.key", "1:" HEX_A "\n");
    struct kn_keyring *pinned =
        keyring_from("kat2.key", "index:" HEX_PIN "\n1:" HEX_A "\n");
    char out[33];

    kn_blind_index(kr, "email", "taro@docomo.ne.jp", out);
    assert_string_equal(out, "c5862f240895dee7c5b857bd85d7e248");
    kn_blind_index(pinned, "line", "U4af4980629", out);
    assert_string_equal(out, "cffe2f67a080a2e018477beb6d57d966");
    kn_keyring_free(kr);
    kn_keyring_free(pinned);
}

/* Without an index line, the index key comes from the lowest kid. */
/*
 * A process that holds the key never dumps core: a core file (or
 * systemd-coredump's copy) would hold the keys and the addresses opened
 * with them in clear (SECURITY-PROMISES.md row 1).
 */
static void test_no_core_dump_with_the_key(void **state)
{
    struct kn_keyring *kr;
    struct rlimit rl = {RLIM_INFINITY, RLIM_INFINITY};
    (void)state;
    setrlimit(RLIMIT_CORE, &rl); /* as far as the hard limit lets it */
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    kr = keyring_from("core.key", "1:" HEX_A "\n");
    assert_int_equal(getrlimit(RLIMIT_CORE, &rl), 0);
    assert_true(rl.rlim_cur == 0);
    assert_int_equal(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 0);
    kn_keyring_free(kr);
}

static void test_blind_index_lowest_kid(void **state)
{
    struct kn_keyring *k1 = keyring_from("lo1.key", "1:" HEX_A "\n");
    struct kn_keyring *k12 =
        keyring_from("lo2.key", "1:" HEX_A "\n2:" HEX_B "\n");
    struct kn_keyring *k21 =
        keyring_from("lo3.key", "5:" HEX_B "\n3:" HEX_A "\n");
    struct kn_keyring *pin =
        keyring_from("lo4.key", "1:" HEX_A "\nindex:" HEX_PIN "\n");
    char a[33], b[33], c[33], d[33];

    kn_blind_index(k1, "email", "taro@docomo.ne.jp", a);
    kn_blind_index(k12, "email", "taro@docomo.ne.jp", b);
    kn_blind_index(k21, "email", "taro@docomo.ne.jp", c);
    kn_blind_index(pin, "email", "taro@docomo.ne.jp", d);
    assert_string_equal(a, b);
    assert_string_equal(a, c);
    assert_string_not_equal(a, d);
    kn_keyring_free(k1);
    kn_keyring_free(k12);
    kn_keyring_free(k21);
    kn_keyring_free(pin);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url_vectors),
        cmocka_unit_test(test_b64url_roundtrip),
        cmocka_unit_test(test_b64url_invalid),
        cmocka_unit_test(test_hmac_rfc4231),
        cmocka_unit_test(test_seal_roundtrip),
        cmocka_unit_test(test_seal_fresh_nonce),
        cmocka_unit_test(test_unseal_wrong_purpose),
        cmocka_unit_test(test_unseal_flipped_chars),
        cmocka_unit_test(test_unseal_truncated),
        cmocka_unit_test(test_unseal_unknown_kid),
        cmocka_unit_test(test_unseal_many),
        cmocka_unit_test(test_unseal_garbage),
        cmocka_unit_test(test_keyfile_mode_refused),
        cmocka_unit_test(test_keyfile_missing),
        cmocka_unit_test(test_keyfile_raw),
        cmocka_unit_test(test_keyfile_text_two_kids),
        cmocka_unit_test(test_keyfile_malformed),
        cmocka_unit_test(test_keyfile_generate),
        cmocka_unit_test(test_add_key_text),
        cmocka_unit_test(test_add_key_raw),
        cmocka_unit_test(test_blind_index),
        cmocka_unit_test(test_blind_index_known_answer),
        cmocka_unit_test(test_blind_index_lowest_kid),
        cmocka_unit_test(test_no_core_dump_with_the_key),
    };
    return cmocka_run_group_tests_name("seal", tests, setup_dir,
                                       teardown_dir);
}
