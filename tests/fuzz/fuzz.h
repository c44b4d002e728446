/*
 * fuzz.h - small helpers shared by the libFuzzer targets in tests/fuzz/
 * (see docs/fuzzing.md): a NUL-terminated copy of the input, splitting the
 * input into parts at a separator byte, and a check that aborts (so that
 * libFuzzer records the input) when a property does not hold.
 */
#ifndef KN_TESTS_FUZZ_H
#define KN_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kn.h"
#include "common/log.h"

/* A heap, NUL-terminated copy of data[0..n). */
static inline char *fz_str(const uint8_t *data, size_t n)
{
    char *s = kn_xmalloc(n + 1);
    if (n > 0)
        memcpy(s, data, n);
    s[n] = '\0';
    return s;
}

/*
 * Cut the input at the first `sep` byte: *part gets a heap NUL-terminated
 * copy of what comes before (the whole rest if there is no sep), and
 * *data / *n move past it.
 */
static inline char *fz_take(const uint8_t **data, size_t *n, uint8_t sep)
{
    const uint8_t *p = memchr(*data, sep, *n);
    size_t len = p != NULL ? (size_t)(p - *data) : *n;
    char *s = fz_str(*data, len);
    *data += len;
    *n -= len;
    if (p != NULL) {
        (*data)++;
        (*n)--;
    }
    return s;
}

/* A property that must hold for every input. */
#define FZ_CHECK(cond, ...)                                                   \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "fuzz property failed: %s\n  ", #cond);          \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
            abort();                                                          \
        }                                                                     \
    } while (0)

/* Keep the library's logging quiet: the fuzzer runs millions of inputs. */
static inline void fz_quiet(void)
{
    kn_log_min = KN_LOG_ERROR + 1;
}

#endif

#ifdef KN_FUZZ_RESPONSES
#include <curl/curl.h>

/*
 * A provider's answer from fuzz bytes:
 *   byte 0: the transfer's outcome (OK, aborted, timeout, refused, TLS);
 *   bytes 1-2: the HTTP status (0..599);
 *   then header lines ("Name: value", separated by LF) up to a NUL byte;
 *   then the body.
 * Each header line goes through add_header (the transport's own header
 * callback in fuzz_line.c, curl_slist_append elsewhere).
 */
struct fz_resp {
    CURLcode rc;
    long status;
    char *body;
    size_t bodylen;
    char **lines;
    size_t nlines;
};

static inline void fz_resp_parse(const uint8_t *d, size_t n,
                                 struct fz_resp *r)
{
    static const CURLcode rcs[] = {
        CURLE_OK, CURLE_OK, CURLE_OK, CURLE_ABORTED_BY_CALLBACK,
        CURLE_OPERATION_TIMEDOUT, CURLE_COULDNT_CONNECT,
        CURLE_PEER_FAILED_VERIFICATION, CURLE_RECV_ERROR};
    char *hdrs, *p;

    memset(r, 0, sizeof(*r));
    if (n < 3)
        return;
    r->rc = rcs[d[0] % (sizeof(rcs) / sizeof(rcs[0]))];
    r->status = (long)(((unsigned)d[1] << 8 | d[2]) % 600);
    d += 3;
    n -= 3;
    hdrs = fz_take(&d, &n, 0);
    r->body = fz_str(d, n);
    r->bodylen = n;
    for (p = hdrs; *p != '\0';) {
        size_t l = strcspn(p, "\n");
        r->lines = kn_xrealloc(r->lines, (r->nlines + 1) * sizeof(char *));
        r->lines[r->nlines++] = kn_xstrndup(p, l);
        p += l;
        if (*p == '\n')
            p++;
    }
    free(hdrs);
}

static inline void fz_resp_free(struct fz_resp *r)
{
    for (size_t i = 0; i < r->nlines; i++)
        free(r->lines[i]);
    free(r->lines);
    free(r->body);
}

/* 1 if text holds a LINE id ([UCR] + exactly 32 lowercase hex digits)
 * unmasked. */
static inline int fz_has_line_id(const char *t)
{
    for (; *t; t++) {
        size_t k = 0;
        if (*t != 'U' && *t != 'C' && *t != 'R')
            continue;
        while ((t[1 + k] >= '0' && t[1 + k] <= '9') ||
               (t[1 + k] >= 'a' && t[1 + k] <= 'f'))
            k++;
        /* exactly 32: a longer run is not a LINE id */
        if (k == 32)
            return 1;
        t += k;
    }
    return 0;
}
#endif
