/*
 * poison.c - the give-up rule of kairan's stream readers (see poison.h).
 * No I/O: the bound, the backoff and the reason text, testable alone.
 */
#include "queue/poison.h"

#include <stdio.h>
#include <string.h>

int kn_poison_transient(const char *err)
{
    /* Error codes of Redis as a whole, each between spaces. */
    static const char codes[] = " OOM LOADING BUSY READONLY MASTERDOWN "
                                "MISCONF TRYAGAIN NOSCRIPT CLUSTERDOWN "
                                "NOREPLICAS MASTER_DOWN ";
    char word[24];
    size_t len;
    if (err == NULL)
        return 1;
    len = strcspn(err, " ");
    if (len == 0 || len + 3 > sizeof(word))
        return 0;
    snprintf(word, sizeof(word), " %.*s ", (int)len, err);
    return strstr(codes, word) != NULL;
}

struct kn_poison_verdict kn_poison_decide(int failures, const char *err)
{
    struct kn_poison_verdict v = {0, 0, KN_POISON_TRANSIENT_MS};
    int shift;
    if (kn_poison_transient(err))
        return v;
    if (failures < 0)
        failures = 0;
    v.counted = 1;
    if (failures + 1 >= KN_POISON_MAX) {
        v.park = 1;
        v.delay_ms = 0;
        return v;
    }
    shift = failures < 16 ? failures : 16;
    v.delay_ms = (int64_t)KN_POISON_BASE_MS << shift;
    return v;
}

int kn_poison_mismatch(const char *have, const char *want)
{
    size_t hl;
    if (have == NULL || want == NULL || strcmp(have, "none") == 0)
        return 0;
    hl = strlen(have);
    while (*want != '\0') {
        size_t wl = strcspn(want, "|");
        if (wl == hl && strncmp(want, have, hl) == 0)
            return 0;
        want += wl;
        if (*want == '|')
            want++;
    }
    return 1;
}

/* The first line of a Redis error, printable ASCII only, at most max. */
static void error_head(const char *err, char *out, size_t max)
{
    size_t o = 0;
    for (const char *p = err; p && *p && *p != '\n' && *p != '\r'; p++) {
        if (o + 1 >= max)
            break;
        out[o++] = (*p >= 0x20 && *p < 0x7f && *p != '"') ? *p : '?';
    }
    out[o] = '\0';
}

char *kn_poison_reason(char *buf, size_t n, const char *what, const char *err,
                       const char *key, const char *have, const char *want,
                       int attempts)
{
    char head[161];
    const char *code =
        err != NULL && strstr(err, "WRONGTYPE") != NULL ? "WRONGTYPE" : NULL;
    error_head(err ? err : "no reply", head, sizeof(head));
    if (key != NULL) {
        char kinds[64];
        /* "list|none" -> "list": a missing key is always fine. */
        snprintf(kinds, sizeof(kinds), "%.*s", (int)strcspn(want, "|"), want);
        snprintf(buf, n,
                 "Redis answered %s for %s (a %s where kairan keeps a %s) "
                 "while %s, %d time%s: a key of this broadcast holds the "
                 "wrong type; cancel the broadcast or delete the stray key",
                 code ? code : "an error", key, have, kinds, what, attempts,
                 attempts == 1 ? "" : "s");
    } else {
        snprintf(buf, n,
                 "Redis answered \"%s\" while %s, %d time%s; kairan gave up "
                 "on it so that the broadcasts behind it go on (kairand's "
                 "log has each attempt); cancel it, or fix the cause and "
                 "submit it again",
                 head, what, attempts, attempts == 1 ? "" : "s");
    }
    return buf;
}
