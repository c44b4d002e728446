/*
 * kn.h - the few things every kairan file shares: error codes, allocation
 * that aborts on out-of-memory, and small helpers.
 *
 * Functions return 0 on success or a negative KN_E* code.  KN_EAGAIN is not
 * a failure: it means "not now, try later".  Allocation never returns NULL:
 * kn_xmalloc() and friends abort the process, so callers do not check.
 */
#ifndef KN_COMMON_KN_H
#define KN_COMMON_KN_H

#include <stddef.h>
#include <stdint.h>

#define KN_ERRNO_MAP(XX)                                                       \
    XX(EAGAIN, "try again later")                                              \
    XX(EINVAL, "invalid argument")                                             \
    XX(ENOMEM, "out of memory")                                                \
    XX(EIO, "input/output error")                                              \
    XX(ECONFIG, "configuration error")                                         \
    XX(ECRYPTO, "cryptographic failure")                                       \
    XX(EPERM, "permission denied")                                             \
    XX(ENOENT, "not found")                                                    \
    XX(EEXIST, "already exists")                                               \
    XX(EREDIS, "redis error")                                                  \
    XX(ETIMEDOUT, "timed out")                                                 \
    XX(ECLOSED, "connection closed")                                           \
    XX(ETOOBIG, "too big")                                                     \
    XX(EUTF8, "invalid UTF-8")

enum kn_errno {
    KN_OK = 0,
#define XX(code, _) KN_##code,
    KN__ERRNO_FIRST = -1000,
    KN_ERRNO_MAP(XX)
#undef XX
        KN__ERRNO_LAST
};

/* Text for a KN_E* code (or "success" for 0); never NULL. */
const char *kn_strerror(int err);

/* Allocation: abort with a message on failure, never return NULL. */
void *kn_xmalloc(size_t n);
void *kn_xcalloc(size_t n, size_t size);
void *kn_xrealloc(void *p, size_t n);
char *kn_xstrdup(const char *s);
char *kn_xstrndup(const char *s, size_t n);
/* printf into a fresh heap string the caller frees. */
char *kn_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Wipe a NUL-terminated secret (a password, a token) and free it; NULL is
 * fine. */
void kn_free_secret(char *s);

/* For an impossible state: log and abort with a core dump. */
#define KN_PANIC(...) kn__panic(__FILE__, __LINE__, __VA_ARGS__)
void kn__panic(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));

/* For a bad world (config, missing file): print and exit(1). */
void kn_fatal(const char *fmt, ...)
    __attribute__((noreturn, format(printf, 1, 2)));

#define KN_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define kn_container_of(ptr, type, member)                                     \
    ((type *)((char *)(ptr)-offsetof(type, member)))

/* Wall clock in milliseconds since the epoch; monotonic milliseconds. */
int64_t kn_now_ms(void);
int64_t kn_mono_ms(void);

/* Test hook: when set (>0), kn_now_ms() returns it.  For fixed-clock tests. */
extern int64_t kn__fake_now_ms;

/*
 * Format a wall-clock time (ms since epoch) as RFC 3339 in JST
 * ("2026-11-22T07:00:00.123+09:00") into buf (>= 40 bytes).  Returns buf.
 */
char *kn_time_jst(int64_t ms, char *buf, size_t len);

/*
 * Parse an RFC 3339 time ("2026-11-22T07:00:00+09:00", "...Z", fractional
 * seconds allowed).  Returns 0 and sets *ms, or KN_EINVAL.
 */
int kn_time_parse(const char *s, int64_t *ms);

/*
 * Parse a duration such as "90s", "10m", "24h", "90d" or a bare number of
 * milliseconds.  Returns 0 and sets *ms, or KN_EINVAL.
 */
int kn_duration_parse(const char *s, int64_t *ms);

/*
 * The same with the unit required ("90s", "10m", "24h", "90d", "500ms"):
 * a bare number other than "0" is KN_EINVAL, since "90" could mean
 * anything (for options and keys whose name does not say "_ms").
 */
int kn_duration_parse_unit(const char *s, int64_t *ms);

/* Random bytes from the OS (getrandom); aborts if the OS cannot give them. */
void kn_random(void *buf, size_t n);
/* Uniform random integer in [0, n) (n > 0). */
uint64_t kn_random_below(uint64_t n);

/*
 * Key names (queue/keys.h builds them).  A part of a Redis key name that
 * comes from outside is either checked to hold only "safe" bytes
 * ([A-Za-z0-9._-], which never include the ':' that separates parts) or
 * encoded so that it does: then no value of one part can reach another
 * key.
 *
 * kn_tenant_valid: a tenant name, 1-64 safe bytes starting with a letter
 * or digit (tenants are operator-made slugs and also URL path parts).
 * kn_name_valid: a broadcast's name (kairan's own "b-..."; also the names
 * of broadcasts made before names were kairan's), 1-128 safe bytes
 * starting with a letter or digit.
 * kn_key_part: any string (a recipient id, a group name such as
 * "サッカー部") as a key part: every byte outside the safe set, '%'
 * included, becomes "%XX" (upper-case hex).  Injective; the safe strings
 * are unchanged, so keys made before the encoding stay where they are.
 * Heap string.
 */
int kn_tenant_valid(const char *s);
int kn_name_valid(const char *s);
char *kn_key_part(const char *s);

#endif
