/*
 * seal.c - encryption at rest for contact addresses (SECURITY-PROMISES #1).
 *
 * This module owns the keyring: it reads the key file (refusing one that
 * group or others may read or write), keeps the AES-256-GCM keys by key id,
 * derives or loads the blind-index key, and wipes all of it when the keyring
 * is freed.  It seals addresses into "k<kid>.<base64url>" strings, opens them
 * again, computes blind indexes for look-ups, and creates and rotates key
 * files.
 *
 * It must never write a key, a plaintext address or a line of the key file
 * into an error message or a log, and it uses only the OpenSSL 3 EVP
 * interfaces (EVP_CIPHER_CTX, EVP_MAC through EVP_Q_mac, EVP_KDF).
 * kn_unseal() is fed strings read back from Redis and is fuzzed: any input
 * must give either the plaintext or KN_ECRYPTO, never a crash.
 */
/* Build flags define it; the guard lets a bare compile work too. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "seal.h"

#include "codec.h"
#include "kn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#define KEY_LEN   32
#define NONCE_LEN 12
#define TAG_LEN   16
#define KID_MAX   9999
/* A key file is a handful of lines; anything bigger is not one. */
#define KEYFILE_MAX (64 * 1024)
/* EVP_*Update take an int length: feed big buffers in slices. */
#define EVP_CHUNK (1 << 30)

#define INDEX_INFO "kairan blind index v1"

#define KEYFILE_HEADER                                                         \
    "# kairan key file (security.key_file).  Keep it mode 0600.\n"             \
    "# Lines are <kid>:<64 hex digits>; the highest kid seals new data and\n"  \
    "# older kids still open old data, so never delete a kid in use.\n"

struct kn_key {
    int kid;
    unsigned char key[KEY_LEN];
};

struct kn_keyring {
    struct kn_key *keys;
    size_t nkeys;
    int current;
    unsigned char index_key[KEY_LEN];
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int errno_code(int e)
{
    switch (e) {
    case ENOENT:
    case ENOTDIR:
        return KN_ENOENT;
    case EACCES:
    case EPERM:
        return KN_EPERM;
    case EEXIST:
        return KN_EEXIST;
    default:
        return KN_EIO;
    }
}

/* ------------------------------------------------------------------------
 * HMAC and HKDF
 * ------------------------------------------------------------------------ */

void kn_hmac_sha256(const void *key, size_t keylen, const void *data,
                    size_t len, unsigned char out[32])
{
    static const unsigned char empty;
    size_t outlen = 0;
    unsigned char *r;

    /* EVP_MAC_init() reads a NULL key as "keep the old key": never pass one. */
    if (key == NULL)
        key = &empty;
    if (data == NULL)
        data = &empty;
    r = EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, keylen, data, len,
                  out, 32, &outlen);
    if (r == NULL || outlen != 32)
        KN_PANIC("HMAC-SHA-256 failed in OpenSSL");
}

/*
 * HKDF-SHA-256 with an empty salt (RFC 5869: the same as HashLen zero
 * bytes, which is what OpenSSL uses when no salt is given).
 */
static int hkdf_sha256(const unsigned char *key, size_t keylen,
                       const char *info, unsigned char *out, size_t outlen)
{
    EVP_KDF *kdf = NULL;
    EVP_KDF_CTX *kctx = NULL;
    OSSL_PARAM params[4];
    int rc = KN_ECRYPTO;

    kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    if (kdf == NULL)
        goto out;
    kctx = EVP_KDF_CTX_new(kdf);
    if (kctx == NULL)
        goto out;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                                 (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
                                                  (void *)key, keylen);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
                                                  (void *)info, strlen(info));
    params[3] = OSSL_PARAM_construct_end();
    if (EVP_KDF_derive(kctx, out, outlen, params) <= 0)
        goto out;
    rc = 0;

out:
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    return rc;
}

/* ------------------------------------------------------------------------
 * Keyring: reading and parsing key files
 * ------------------------------------------------------------------------ */

static const struct kn_key *find_key(const struct kn_keyring *kr, int kid)
{
    for (size_t i = 0; i < kr->nkeys; i++) {
        if (kr->keys[i].kid == kid)
            return &kr->keys[i];
    }
    return NULL;
}

void kn_keyring_free(struct kn_keyring *kr)
{
    if (kr == NULL)
        return;
    if (kr->keys != NULL) {
        OPENSSL_cleanse(kr->keys, kr->nkeys * sizeof(*kr->keys));
        free(kr->keys);
    }
    OPENSSL_cleanse(kr->index_key, sizeof(kr->index_key));
    free(kr);
}

int kn_keyring_current(const struct kn_keyring *kr)
{
    return kr->current;
}

static void wipe_free(void *p, size_t len)
{
    if (p == NULL)
        return;
    OPENSSL_cleanse(p, len);
    free(p);
}

/*
 * Open and read a key file into a fresh buffer (*buf, *len; wipe and free it
 * with wipe_free(*buf, KEYFILE_MAX + 1)).  *st receives the file's status.
 * Refuses, with a reason in err:
 *   1. a missing file (KN_ENOENT) or one we may not read (KN_EPERM);
 *   2. anything but a regular file (KN_ECONFIG);
 *   3. a file group or others may read, write or execute (KN_EPERM): the
 *      mode is taken from the open descriptor, so there is no race between
 *      the check and the read;
 *   4. a file bigger than KEYFILE_MAX (KN_ECONFIG).
 */
static int read_keyfile(const char *path, unsigned char **buf, size_t *len,
                        struct stat *st, char *err, size_t errlen)
{
    unsigned char *data = NULL;
    size_t got = 0;
    int fd, rc;

    *buf = NULL;
    *len = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        rc = errno_code(errno);
        if (rc == KN_ENOENT)
            seterr(err, errlen,
                   "key file %s does not exist: set security.key_file to "
                   "your key file or generate a new one (mode 0600)",
                   path);
        else
            seterr(err, errlen, "cannot open key file %s: %s", path,
                   strerror(errno));
        return rc;
    }
    if (fstat(fd, st) < 0) {
        seterr(err, errlen, "cannot stat key file %s: %s", path,
               strerror(errno));
        rc = KN_EIO;
        goto fail;
    }
    if (!S_ISREG(st->st_mode)) {
        seterr(err, errlen, "key file %s is not a regular file", path);
        rc = KN_ECONFIG;
        goto fail;
    }
    if ((st->st_mode & 077) != 0) {
        seterr(err, errlen,
               "key file %s is readable or writable by group or others "
               "(mode %04o): run chmod 600 %s",
               path, (unsigned)(st->st_mode & 07777), path);
        rc = KN_EPERM;
        goto fail;
    }
    data = kn_xmalloc(KEYFILE_MAX + 1);
    for (;;) {
        ssize_t r = read(fd, data + got, KEYFILE_MAX + 1 - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            seterr(err, errlen, "cannot read key file %s: %s", path,
                   strerror(errno));
            rc = KN_EIO;
            goto fail;
        }
        if (r == 0)
            break;
        got += (size_t)r;
        if (got > KEYFILE_MAX) {
            seterr(err, errlen,
                   "key file %s is too big (over %d bytes) to be a key file",
                   path, KEYFILE_MAX);
            rc = KN_ECONFIG;
            goto fail;
        }
    }
    close(fd);
    *buf = data;
    *len = got;
    return 0;

fail:
    wipe_free(data, KEYFILE_MAX + 1);
    close(fd);
    return rc;
}

static int is_blank(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static int looks_binary(const unsigned char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == 0 || buf[i] >= 0x7f ||
            (buf[i] < 0x20 && buf[i] != '\n' && buf[i] != '\r' &&
             buf[i] != '\t'))
            return 1;
    }
    return 0;
}

/*
 * Parse one trimmed, non-comment line of a text key file into kr.
 * *have_index says whether an index line was seen before.  Returns 0, or
 * KN_ECONFIG with "path:lineno: reason" in err.  The line itself is never
 * quoted: it holds a key.
 */
static int parse_key_line(const char *path, int lineno, const char *s,
                          size_t len, struct kn_keyring *kr, int *have_index,
                          char *err, size_t errlen)
{
    static const char index_tag[] = "index:";
    size_t ndigits = 0;
    int kid = 0;

    if (len >= sizeof(index_tag) - 1 &&
        memcmp(s, index_tag, sizeof(index_tag) - 1) == 0) {
        if (*have_index) {
            seterr(err, errlen, "%s:%d: a second \"index:\" line", path,
                   lineno);
            return KN_ECONFIG;
        }
        if (kn_hex_decode(s + sizeof(index_tag) - 1,
                          len - (sizeof(index_tag) - 1), kr->index_key,
                          KEY_LEN) < 0) {
            seterr(err, errlen,
                   "%s:%d: the index key must be exactly 64 hex digits", path,
                   lineno);
            return KN_ECONFIG;
        }
        *have_index = 1;
        return 0;
    }
    while (ndigits < len && s[ndigits] >= '0' && s[ndigits] <= '9') {
        if (ndigits < 5)
            kid = kid * 10 + (s[ndigits] - '0');
        ndigits++;
    }
    if (ndigits == 0 || ndigits >= len || s[ndigits] != ':') {
        seterr(err, errlen,
               "%s:%d: expected \"<kid>:<64 hex digits>\" or "
               "\"index:<64 hex digits>\"%s",
               path, lineno,
               looks_binary((const unsigned char *)s, len)
                   ? " (a raw key file must be exactly 32 bytes)"
                   : "");
        return KN_ECONFIG;
    }
    if (ndigits > 4 || kid < 1 || kid > KID_MAX) {
        seterr(err, errlen, "%s:%d: key id must be 1..%d", path, lineno,
               KID_MAX);
        return KN_ECONFIG;
    }
    if (find_key(kr, kid) != NULL) {
        seterr(err, errlen, "%s:%d: duplicate key id %d", path, lineno, kid);
        return KN_ECONFIG;
    }
    if (kn_hex_decode(s + ndigits + 1, len - ndigits - 1,
                      kr->keys[kr->nkeys].key, KEY_LEN) < 0) {
        seterr(err, errlen, "%s:%d: key %d must be exactly 64 hex digits", path,
               lineno, kid);
        return KN_ECONFIG;
    }
    kr->keys[kr->nkeys].kid = kid;
    kr->nkeys++;
    return 0;
}

/*
 * Build a keyring from the bytes of a key file:
 *   1. exactly 32 bytes are a raw key, kid 1;
 *   2. anything else is the text form: "<kid>:<hex>" lines and at most one
 *      "index:<hex>" line; '#' comments, blank lines, surrounding blanks
 *      and CRLF line ends are allowed; at least one key is required;
 *   3. without an index line the index key is derived from the lowest kid.
 * *raw tells the caller which form it was.
 */
static int parse_keyfile(const char *path, const unsigned char *buf, size_t len,
                         struct kn_keyring **out, int *raw, char *err,
                         size_t errlen)
{
    struct kn_keyring *kr = kn_xcalloc(1, sizeof(*kr));
    const struct kn_key *lowest;
    int have_index = 0, lineno = 0, rc;
    size_t pos = 0;

    *out = NULL;
    *raw = len == KEY_LEN;
    if (*raw) {
        kr->keys = kn_xcalloc(1, sizeof(*kr->keys));
        kr->keys[0].kid = 1;
        memcpy(kr->keys[0].key, buf, KEY_LEN);
        kr->nkeys = 1;
    } else {
        /*
         * Each key line holds at least 66 characters, which bounds the
         * array: it is never reallocated, so no stray copy of a key is
         * left behind in freed memory.
         */
        kr->keys = kn_xcalloc(len / 66 + 1, sizeof(*kr->keys));
        while (pos < len) {
            const char *line = (const char *)buf + pos;
            const char *nl = memchr(line, '\n', len - pos);
            size_t linelen = nl != NULL ? (size_t)(nl - line) : len - pos;
            size_t start = 0, end = linelen;

            pos += linelen + (nl != NULL ? 1 : 0);
            lineno++;
            if (end > 0 && line[end - 1] == '\r')
                end--;
            while (start < end && is_blank((unsigned char)line[start]))
                start++;
            while (end > start && is_blank((unsigned char)line[end - 1]))
                end--;
            if (start == end || line[start] == '#')
                continue;
            rc = parse_key_line(path, lineno, line + start, end - start, kr,
                                &have_index, err, errlen);
            if (rc < 0)
                goto fail;
        }
        if (kr->nkeys == 0) {
            seterr(err, errlen,
                   "%s: no keys (expected lines \"<kid>:<64 hex digits>\", "
                   "or exactly 32 raw bytes)",
                   path);
            rc = KN_ECONFIG;
            goto fail;
        }
    }

    lowest = &kr->keys[0];
    for (size_t i = 0; i < kr->nkeys; i++) {
        if (kr->keys[i].kid > kr->current)
            kr->current = kr->keys[i].kid;
        if (kr->keys[i].kid < lowest->kid)
            lowest = &kr->keys[i];
    }
    if (!have_index) {
        rc = hkdf_sha256(lowest->key, KEY_LEN, INDEX_INFO, kr->index_key,
                         KEY_LEN);
        if (rc < 0) {
            seterr(err, errlen, "%s: cannot derive the index key (HKDF)", path);
            goto fail;
        }
    }
    *out = kr;
    return 0;

fail:
    kn_keyring_free(kr);
    return rc;
}

/*
 * A process that holds the key never dumps core: a core file (or
 * systemd-coredump's copy of it) would hold the keys and every address
 * opened with them in clear.  PR_SET_DUMPABLE 0 stops the dump (and
 * ptrace by the same user) whatever the core limit; the limit is set to
 * 0 too where the system lets it (kairand.service also says LimitCORE=0).
 */
static void no_core_dump(void)
{
    struct rlimit rl = {0, 0};
    (void)setrlimit(RLIMIT_CORE, &rl);
    (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

int kn_keyring_load(const char *path, struct kn_keyring **out, char *err,
                    size_t errlen)
{
    unsigned char *buf = NULL;
    struct stat st;
    size_t len;
    int raw, rc;

    *out = NULL;
    no_core_dump(); /* before the first byte of the key is read */
    rc = read_keyfile(path, &buf, &len, &st, err, errlen);
    if (rc < 0)
        goto out;
    rc = parse_keyfile(path, buf, len, out, &raw, err, errlen);

out:
    wipe_free(buf, KEYFILE_MAX + 1);
    return rc;
}

/* ------------------------------------------------------------------------
 * Key files: generation and rotation
 * ------------------------------------------------------------------------ */

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return KN_EIO;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* One "<kid>:<hex>\n" (kid > 0) or "index:<hex>\n" (kid == 0) line. */
static char *key_line(int kid, const unsigned char key[KEY_LEN])
{
    char hex[2 * KEY_LEN + 1];
    char *line;

    kn_hex_encode(key, KEY_LEN, hex);
    if (kid > 0)
        line = kn_xasprintf("%d:%s\n", kid, hex);
    else
        line = kn_xasprintf("index:%s\n", hex);
    OPENSSL_cleanse(hex, sizeof(hex));
    return line;
}

int kn_keyfile_generate(const char *path)
{
    unsigned char key[KEY_LEN];
    char *line, *text;
    int fd, rc;

    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return errno_code(errno);
    kn_random(key, sizeof(key));
    line = key_line(1, key);
    text = kn_xasprintf("%s%s", KEYFILE_HEADER, line);
    /* The umask may only remove bits, but make 0600 certain anyway. */
    rc = fchmod(fd, 0600) < 0 ? KN_EIO : 0;
    if (rc < 0)
        goto fail;
    rc = write_all(fd, text, strlen(text));
    if (rc < 0)
        goto fail;
    rc = fsync(fd) < 0 ? KN_EIO : 0;
    if (rc < 0)
        goto fail;
    rc = close(fd) < 0 ? KN_EIO : 0;
    fd = -1;
    if (rc < 0)
        goto fail;
    rc = 0;
    goto out;

fail:
    if (fd >= 0)
        close(fd);
    unlink(path);
out:
    OPENSSL_cleanse(key, sizeof(key));
    wipe_free(line, strlen(line));
    wipe_free(text, strlen(text));
    return rc;
}

/* fsync the directory holding path, so a rename survives a crash. */
static void sync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    int fd;

    if (slash == NULL)
        dir = kn_xstrdup(".");
    else if (slash == path)
        dir = kn_xstrdup("/");
    else
        dir = kn_xstrndup(path, (size_t)(slash - path));
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}

/*
 * Replace path by text atomically: write a mode 0600 temporary file in the
 * same directory, give it the old file's owner and group (so running this
 * as root does not lock kairand out), fsync it, then rename it over path.
 */
static int replace_file(const char *path, const char *text,
                        const struct stat *old)
{
    char *tmp = kn_xasprintf("%s.tmp.XXXXXX", path);
    int fd, rc;

    fd = mkstemp(tmp);
    if (fd < 0) {
        rc = errno_code(errno);
        free(tmp);
        return rc;
    }
    rc = fchmod(fd, 0600) < 0 ? KN_EIO : 0;
    if (rc < 0)
        goto fail;
    if (old->st_uid != geteuid() || old->st_gid != getegid()) {
        rc = fchown(fd, old->st_uid, old->st_gid) < 0 ? KN_EPERM : 0;
        if (rc < 0)
            goto fail;
    }
    rc = write_all(fd, text, strlen(text));
    if (rc < 0)
        goto fail;
    rc = fsync(fd) < 0 ? KN_EIO : 0;
    if (rc < 0)
        goto fail;
    rc = close(fd) < 0 ? KN_EIO : 0;
    fd = -1;
    if (rc < 0)
        goto fail;
    rc = rename(tmp, path) < 0 ? errno_code(errno) : 0;
    if (rc < 0)
        goto fail;
    sync_dir(path);
    free(tmp);
    return 0;

fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    free(tmp);
    return rc;
}

/*
 * Add a key to the key file at path and return its kid:
 *   1. the file is read and checked exactly as kn_keyring_load() does;
 *   2. a text file keeps every line, comments included, and gains one line
 *      "<highest + 1>:<hex>";
 *   3. a raw 32-byte file becomes a text file with its key as kid 1, an
 *      explicit "index:" line with the index key it had (so blind indexes
 *      stay the same) and the new key as kid 2;
 *   4. before anything is written, the new text is parsed again and must
 *      give the same index key and the new kid as current;
 *   5. the file is replaced atomically (see replace_file()); a symbolic
 *      link is followed, so its target is replaced.
 */
int kn_keyfile_add_key(const char *path)
{
    struct kn_keyring *kr = NULL, *check = NULL;
    unsigned char *buf = NULL;
    unsigned char key[KEY_LEN];
    char *real, *text = NULL, *line = NULL, *index_line = NULL, *old_line;
    struct stat st;
    size_t len, textlen;
    int raw, newkid, rc;

    real = realpath(path, NULL);
    if (real == NULL)
        return errno_code(errno);
    kn_random(key, sizeof(key));
    rc = read_keyfile(real, &buf, &len, &st, NULL, 0);
    if (rc < 0)
        goto out;
    rc = parse_keyfile(real, buf, len, &kr, &raw, NULL, 0);
    if (rc < 0)
        goto out;
    newkid = kr->current + 1;
    if (newkid > KID_MAX) {
        rc = KN_ECONFIG;
        goto out;
    }
    line = key_line(newkid, key);
    if (raw) {
        index_line = key_line(0, kr->index_key);
        old_line = key_line(1, kr->keys[0].key);
        text = kn_xasprintf("%s%s%s%s", KEYFILE_HEADER, index_line, old_line,
                            line);
        wipe_free(old_line, strlen(old_line));
    } else {
        int need_nl = len > 0 && buf[len - 1] != '\n';
        size_t linelen = strlen(line);
        text = kn_xmalloc(len + need_nl + linelen + 1);
        memcpy(text, buf, len);
        if (need_nl)
            text[len] = '\n';
        memcpy(text + len + need_nl, line, linelen + 1);
    }
    textlen = strlen(text);

    rc = parse_keyfile(real, (const unsigned char *)text, textlen, &check, &raw,
                       NULL, 0);
    if (rc < 0 || check->current != newkid ||
        CRYPTO_memcmp(check->index_key, kr->index_key, KEY_LEN) != 0)
        KN_PANIC("rotated key file %s would not keep its keys", real);

    rc = replace_file(real, text, &st);
    if (rc < 0)
        goto out;
    rc = newkid;

out:
    OPENSSL_cleanse(key, sizeof(key));
    kn_keyring_free(check);
    kn_keyring_free(kr);
    wipe_free(buf, KEYFILE_MAX + 1);
    if (text != NULL)
        wipe_free(text, strlen(text));
    if (line != NULL)
        wipe_free(line, strlen(line));
    if (index_line != NULL)
        wipe_free(index_line, strlen(index_line));
    free(real);
    return rc;
}

/* ------------------------------------------------------------------------
 * Sealing
 * ------------------------------------------------------------------------ */

/*
 * Run len bytes through an encrypting or decrypting GCM context in slices
 * (EVP takes int lengths).  With out == NULL the bytes are AAD.
 */
static int gcm_update(EVP_CIPHER_CTX *ctx, int enc, unsigned char *out,
                      const unsigned char *in, size_t len)
{
    while (len > 0) {
        int n = len > EVP_CHUNK ? EVP_CHUNK : (int)len;
        int outl = 0;
        int ok = enc ? EVP_EncryptUpdate(ctx, out, &outl, in, n)
                     : EVP_DecryptUpdate(ctx, out, &outl, in, n);
        if (!ok || (out != NULL && outl != n))
            return KN_ECRYPTO;
        in += n;
        if (out != NULL)
            out += n;
        len -= (size_t)n;
    }
    return 0;
}

/*
 * OpenSSL 3 looks the algorithm up in its providers on every init with
 * EVP_aes_256_gcm() (an implicit fetch, a lock and a hash lookup): fetch
 * it once.  Kept for the life of the process.
 */
static const EVP_CIPHER *aes_gcm(void)
{
    static EVP_CIPHER *c;
    if (c == NULL) {
        c = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
        if (c == NULL)
            KN_PANIC("OpenSSL has no AES-256-GCM");
    }
    return c;
}

char *kn_seal(const struct kn_keyring *kr, const char *purpose,
              const void *plain, size_t len)
{
    const struct kn_key *k = find_key(kr, kr->current);
    EVP_CIPHER_CTX *ctx;
    unsigned char *buf;
    char *b64, *sealed;
    int outl = 0, rc;

    if (k == NULL)
        KN_PANIC("keyring has no current key %d", kr->current);
    if (len > SIZE_MAX - NONCE_LEN - TAG_LEN)
        KN_PANIC("kn_seal: %zu bytes is too much", len);
    buf = kn_xmalloc(NONCE_LEN + len + TAG_LEN);
    kn_random(buf, NONCE_LEN);
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        KN_PANIC("EVP_CIPHER_CTX_new failed");

    /* AES-256-GCM's default IV length is the 12 bytes we use. */
    rc = EVP_EncryptInit_ex(ctx, aes_gcm(), NULL, k->key, buf) == 1
             ? 0
             : KN_ECRYPTO;
    if (rc < 0)
        goto fail;
    rc = gcm_update(ctx, 1, NULL, (const unsigned char *)purpose,
                    strlen(purpose));
    if (rc < 0)
        goto fail;
    rc = gcm_update(ctx, 1, buf + NONCE_LEN, plain, len);
    if (rc < 0)
        goto fail;
    rc =
        EVP_EncryptFinal_ex(ctx, buf + NONCE_LEN + len, &outl) == 1 && outl == 0
            ? 0
            : KN_ECRYPTO;
    if (rc < 0)
        goto fail;
    rc = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN,
                             buf + NONCE_LEN + len) == 1
             ? 0
             : KN_ECRYPTO;
    if (rc < 0)
        goto fail;
    EVP_CIPHER_CTX_free(ctx);

    b64 = kn_b64url_encode(buf, NONCE_LEN + len + TAG_LEN);
    sealed = kn_xasprintf("k%d.%s", k->kid, b64);
    free(b64);
    free(buf);
    return sealed;

fail:
    KN_PANIC("AES-256-GCM encryption failed in OpenSSL");
}

/*
 * Split "k<kid>.<body>": kid is 1..9999 written without leading zeros, so
 * each sealed string has one spelling.  Returns the kid and sets *body, or
 * -1.
 */
static int parse_sealed(const char *sealed, const char **body)
{
    int kid = 0, n = 0;

    if (sealed == NULL || sealed[0] != 'k' || sealed[1] < '1' ||
        sealed[1] > '9')
        return -1;
    while (n < 5 && sealed[1 + n] >= '0' && sealed[1 + n] <= '9') {
        kid = kid * 10 + (sealed[1 + n] - '0');
        n++;
    }
    if (n > 4 || sealed[1 + n] != '.' || kid > KID_MAX)
        return -1;
    *body = sealed + 2 + n;
    return kid;
}

int kn_sealed_kid(const char *sealed)
{
    unsigned char *raw;
    const char *body;
    long n;
    int kid;

    kid = parse_sealed(sealed, &body);
    if (kid < 0)
        return -1;
    n = kn_b64url_decode(body, &raw);
    free(raw);
    return n < NONCE_LEN + TAG_LEN ? -1 : kid;
}

/*
 * Open a sealed string.  The plaintext is only handed out after the tag
 * checked; on any failure the partly decrypted buffer is wiped, *plain is
 * NULL and the result is KN_ECRYPTO, whatever was wrong (the caller cannot
 * do anything different for a wrong key, a wrong purpose or a flipped bit,
 * and the log should not tell an attacker which it was).
 */
/*
 * Open one sealed string with ctx.  *kid_set is the kid whose key schedule
 * ctx holds (0: none yet): the key is set only when the kid changes, and
 * every string after that sets only its nonce, so that a batch of strings
 * sealed with one key pays for the AES key expansion and the GHASH table
 * once.  Returns 0 and *plain as kn_unseal does, or KN_ECRYPTO.
 */
static int open_one(EVP_CIPHER_CTX *ctx, int *kid_set,
                    const struct kn_keyring *kr, const char *purpose,
                    const char *sealed, char **plain, size_t *len)
{
    const struct kn_key *k;
    unsigned char *raw = NULL, *out = NULL;
    const char *body;
    size_t ptlen = 0;
    long n;
    int kid, outl = 0, rc = KN_ECRYPTO;

    *plain = NULL;
    if (len != NULL)
        *len = 0;
    kid = parse_sealed(sealed, &body);
    if (kid < 0)
        goto fail;
    k = find_key(kr, kid);
    if (k == NULL)
        goto fail;
    n = kn_b64url_decode(body, &raw);
    if (n < NONCE_LEN + TAG_LEN)
        goto fail;
    ptlen = (size_t)n - NONCE_LEN - TAG_LEN;
    out = kn_xmalloc(ptlen + 1);

    if (*kid_set != kid) {
        *kid_set = 0;
        if (EVP_DecryptInit_ex(ctx, aes_gcm(), NULL, k->key, raw) != 1)
            goto fail;
        *kid_set = kid;
    } else if (EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, raw) != 1) {
        goto fail;
    }
    rc = gcm_update(ctx, 0, NULL, (const unsigned char *)purpose,
                    strlen(purpose));
    if (rc < 0)
        goto fail;
    rc = gcm_update(ctx, 0, out, raw + NONCE_LEN, ptlen);
    if (rc < 0)
        goto fail;
    rc = KN_ECRYPTO;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN,
                            raw + NONCE_LEN + ptlen) != 1)
        goto fail;
    if (EVP_DecryptFinal_ex(ctx, out + ptlen, &outl) != 1 || outl != 0)
        goto fail;
    free(raw);
    out[ptlen] = '\0';
    *plain = (char *)out;
    if (len != NULL)
        *len = ptlen;
    return 0;

fail:
    free(raw);
    wipe_free(out, ptlen + 1);
    return KN_ECRYPTO;
}

int kn_unseal(const struct kn_keyring *kr, const char *purpose,
              const char *sealed, char **plain, size_t *len)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int kid_set = 0, rc;

    *plain = NULL;
    if (len != NULL)
        *len = 0;
    if (ctx == NULL)
        return KN_ECRYPTO;
    rc = open_one(ctx, &kid_set, kr, purpose, sealed, plain, len);
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

int kn_unseal_many(const struct kn_keyring *kr, const char *purpose,
                   const char *const *sealed, size_t n, char **plain,
                   size_t *bad)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int kid_set = 0, rc = 0;
    size_t i;

    for (i = 0; i < n; i++)
        plain[i] = NULL;
    *bad = 0;
    if (ctx == NULL)
        return KN_ECRYPTO;
    for (i = 0; i < n; i++) {
        rc = open_one(ctx, &kid_set, kr, purpose, sealed[i], &plain[i], NULL);
        if (rc < 0)
            break;
    }
    EVP_CIPHER_CTX_free(ctx);
    if (rc < 0) {
        *bad = i;
        for (size_t k = 0; k < i; k++) {
            wipe_free(plain[k], strlen(plain[k]) + 1);
            plain[k] = NULL;
        }
    }
    return rc;
}

static int is_ascii_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
           c == '\f';
}

/*
 * The message is purpose || 0x00 || address, so that one address gives
 * unrelated indexes for different purposes.  For "email" the address is
 * normalised first: surrounding ASCII white space is dropped and ASCII
 * letters are lowered (non-ASCII bytes, such as a full-width space, are
 * kept as they are).  The message holds the plaintext address: it is wiped.
 */
void kn_blind_index(const struct kn_keyring *kr, const char *purpose,
                    const char *addr, char out[33])
{
    size_t plen = strlen(purpose), alen = strlen(addr), start = 0;
    unsigned char mac[32];
    unsigned char *msg;
    int email = strcmp(purpose, "email") == 0;

    if (email) {
        while (start < alen && is_ascii_space((unsigned char)addr[start]))
            start++;
        while (alen > start && is_ascii_space((unsigned char)addr[alen - 1]))
            alen--;
    }
    alen -= start;
    msg = kn_xmalloc(plen + 1 + alen);
    memcpy(msg, purpose, plen);
    msg[plen] = 0;
    memcpy(msg + plen + 1, addr + start, alen);
    if (email) {
        for (size_t i = plen + 1; i < plen + 1 + alen; i++) {
            if (msg[i] >= 'A' && msg[i] <= 'Z')
                msg[i] = (unsigned char)(msg[i] - 'A' + 'a');
        }
    }
    kn_hmac_sha256(kr->index_key, KEY_LEN, msg, plen + 1 + alen, mac);
    kn_hex_encode(mac, 16, out);
    OPENSSL_cleanse(mac, sizeof(mac));
    wipe_free(msg, plen + 1 + alen);
}
