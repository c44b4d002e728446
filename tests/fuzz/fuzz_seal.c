/*
 * fuzz_seal.c - libFuzzer target for encryption at rest and the tokens
 * built on it (common/seal.c, the ack token in model/ack.c).
 * The first input byte picks the mode; the rest is garbage thrown at:
 *   0: kn_unseal (must refuse anything it did not make), kn_sealed_kid;
 *   1: kn_b64url_decode (and re-encoding gives the canonical form back);
 *   2: kn_ack_parse (no forged token accepted), and kn_ack_token /
 *      kn_ack_parse round trip for "<bcast>|<rcpt>" inputs;
 *   3: kn_seal then kn_unseal gives the input back, with the current kid;
 *   4: kn_keyring_load of the input as a key file (mode 0600).
 * The keyring has two keys (kid 1 and kid 2), as after a rotation.
 */
#include <fcntl.h>
#include <unistd.h>

#include "common/seal.h"
#include "model/broadcast.h"
#include "tests/fuzz/fuzz.h"

static struct kn_keyring *kr;
static char keypath[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[256];
    char dir[] = "/tmp/kn-fuzz-seal-XXXXXX";
    fz_quiet();
    if (mkdtemp(dir) == NULL)
        abort();
    snprintf(keypath, sizeof(keypath), "%s/key", dir);
    if (kn_keyfile_generate(keypath) < 0 || kn_keyfile_add_key(keypath) != 2)
        abort();
    if (kn_keyring_load(keypath, &kr, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        abort();
    }
    /* The key stays in memory; the file is not needed any more, and the
     * path is reused for mode 4's inputs. */
    unlink(keypath);
    return 0;
}

static void unseal(const char *s)
{
    char *plain = NULL;
    size_t len = 0;
    int kid = kn_sealed_kid(s);
    FZ_CHECK(kid >= -1, "kid %d", kid);
    if (kn_unseal(kr, "email", s, &plain, &len) == 0) {
        /* Only a forgery of AES-GCM could get here with random input; a
         * genuine one must have a known kid. */
        FZ_CHECK(kid == 1 || kid == 2, "unsealed with kid %d", kid);
        free(plain);
    } else {
        FZ_CHECK(plain == NULL, "plain left on failure");
    }
}

static void b64(const char *s)
{
    unsigned char *out = NULL;
    long n = kn_b64url_decode(s, &out);
    if (n >= 0) {
        char *again = kn_b64url_encode(out, (size_t)n);
        unsigned char *back = NULL;
        long m = kn_b64url_decode(again, &back);
        FZ_CHECK(m == n && (n == 0 || memcmp(back, out, (size_t)n) == 0),
                 "b64url round trip of %ld bytes", n);
        free(back);
        free(again);
    } else {
        FZ_CHECK(out == NULL, "buffer left on failure");
    }
    free(out);
}

static void ack(const char *s)
{
    char *b = NULL, *r = NULL, *tok;
    const char *bar = strchr(s, '|');
    if (kn_ack_parse(kr, s, &b, &r) == 0) {
        FZ_CHECK(0, "forged ack token accepted: %s", s);
    }
    FZ_CHECK(b == NULL && r == NULL, "ids left on failure");
    if (bar == NULL)
        return;
    {
        char *bc = kn_xstrndup(s, (size_t)(bar - s));
        if (kn_id_valid(bc) && kn_id_valid(bar + 1)) {
            tok = kn_ack_token(kr, bc, bar + 1);
            FZ_CHECK(kn_ack_parse(kr, tok, &b, &r) == 0, "own token refused");
            FZ_CHECK(strcmp(b, bc) == 0 && strcmp(r, bar + 1) == 0,
                     "ack round trip");
            free(b);
            free(r);
            free(tok);
        }
        free(bc);
    }
}

static void seal(const uint8_t *data, size_t n)
{
    char *sealed = kn_seal(kr, "line", data, n), *plain = NULL;
    size_t len = 0;
    FZ_CHECK(kn_sealed_kid(sealed) == kn_keyring_current(kr),
             "sealed with kid %d", kn_sealed_kid(sealed));
    FZ_CHECK(kn_unseal(kr, "line", sealed, &plain, &len) == 0,
             "own seal refused");
    FZ_CHECK(len == n && (n == 0 || memcmp(plain, data, n) == 0),
             "seal round trip");
    free(plain);
    plain = NULL;
    FZ_CHECK(kn_unseal(kr, "email", sealed, &plain, &len) != 0,
             "unsealed under the wrong purpose");
    free(sealed);
}

static void keyfile(const uint8_t *data, size_t n)
{
    struct kn_keyring *k = NULL;
    char err[256];
    int fd = open(keypath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        abort();
    if (n > 0 && write(fd, data, n) != (ssize_t)n)
        abort();
    close(fd);
    if (kn_keyring_load(keypath, &k, err, sizeof(err)) == 0) {
        FZ_CHECK(kn_keyring_current(k) >= 1 && kn_keyring_current(k) <= 9999,
                 "current kid %d", kn_keyring_current(k));
        kn_keyring_free(k);
    } else {
        FZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0',
                 "refused without a reason");
    }
    unlink(keypath);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s;
    if (size < 1)
        return 0;
    s = fz_str(data + 1, size - 1);
    switch (data[0] % 5) {
    case 0:
        unseal(s);
        break;
    case 1:
        b64(s);
        break;
    case 2:
        ack(s);
        break;
    case 3:
        seal(data + 1, size - 1);
        break;
    default:
        keyfile(data + 1, size - 1);
        break;
    }
    free(s);
    return 0;
}
