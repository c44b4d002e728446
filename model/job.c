/*
 * job.c - building and reading the job record (job.h).  Pure JSON work:
 * no I/O, no sealing (the addresses arrive sealed and leave sealed).
 */
#include "model/job.h"

#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/kn.h"
#include "common/utf8.h"

json_t *kn_job_new(const char *bcast, const char *queue, const char *key,
                   int64_t first_ms, int64_t expires_ms, const char *platform,
                   json_t *fallback)
{
    json_t *j = json_object();
    json_object_set_new(j, KN_JOB_BCAST, json_string(bcast));
    json_object_set_new(j, KN_JOB_QUEUE, json_string(queue));
    json_object_set_new(j, KN_JOB_KEY, json_string(key));
    json_object_set_new(j, KN_JOB_ATTEMPTS, json_integer(0));
    json_object_set_new(j, KN_JOB_FIRST, json_integer(first_ms));
    json_object_set_new(j, KN_JOB_EXPIRES, json_integer(expires_ms));
    if (platform != NULL)
        json_object_set_new(j, KN_JOB_PLATFORM, json_string(platform));
    if (fallback != NULL && json_array_size(fallback) > 0)
        json_object_set(j, KN_JOB_FALLBACK, fallback);
    return j;
}

void kn_job_set_rcpt(json_t *job, const char *rcpt, const char *sealed,
                     const char *bi)
{
    json_object_set_new(job, KN_JOB_RCPT, json_string(rcpt));
    json_object_set_new(job, KN_JOB_ADDR, json_string(sealed));
    json_object_set_new(job, KN_JOB_INDEX, json_string(bi));
}

json_t *kn_job_fallback(const char *channel, const char *platform,
                        const char *sealed, const char *bi)
{
    json_t *o = json_object();
    json_object_set_new(o, KN_JOB_FB_CHANNEL, json_string(channel));
    if (platform != NULL)
        json_object_set_new(o, KN_JOB_PLATFORM, json_string(platform));
    json_object_set_new(o, KN_JOB_ADDR, json_string(sealed));
    json_object_set_new(o, KN_JOB_INDEX, json_string(bi));
    return o;
}

/*
 * s as a JSON string with its quotes: '"', '\\' and control characters
 * escaped, the rest (UTF-8) as is, as json_dumps writes it.  -1 if s is
 * not UTF-8.
 */
static int add_jstr(struct kn_buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = strlen(s), from = 0;
    int ascii = 1;

    for (size_t i = 0; i < n; i++)
        ascii &= (unsigned char)s[i] < 0x80;
    if (!ascii && !kn_utf8_valid(s, n))
        return -1;
    kn_buf_addc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[7] = {'\\', 'u', '0', '0', 0, 0, 0};
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        kn_buf_addn(b, s + from, i - from);
        from = i + 1;
        if (c == '"' || c == '\\') {
            esc[1] = (char)c;
            kn_buf_addn(b, esc, 2);
        } else {
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            kn_buf_addn(b, esc, 6);
        }
    }
    kn_buf_addn(b, s + from, n - from);
    kn_buf_addc(b, '"');
    return 0;
}

char *kn_job_group_json(const char *bcast, const char *queue, const char *key,
                        int64_t first_ms, int64_t expires_ms, const char *lang,
                        int inl, int grec, const struct kn_job_member *m,
                        size_t n)
{
    struct kn_buf b = KN_BUF_INIT;
    int rc = 0;

    kn_buf_add(&b, "{\"" KN_JOB_BCAST "\":");
    rc |= add_jstr(&b, bcast);
    kn_buf_add(&b, ",\"" KN_JOB_QUEUE "\":");
    rc |= add_jstr(&b, queue);
    kn_buf_add(&b, ",\"" KN_JOB_KEY "\":");
    rc |= add_jstr(&b, key);
    kn_buf_addf(&b,
                ",\"" KN_JOB_ATTEMPTS "\":0,\"" KN_JOB_FIRST
                "\":%lld,\"" KN_JOB_EXPIRES "\":%lld",
                (long long)first_ms, (long long)expires_ms);
    if (lang != NULL && lang[0] != '\0') {
        kn_buf_add(&b, ",\"" KN_JOB_LANG "\":");
        rc |= add_jstr(&b, lang);
    }
    if (inl)
        kn_buf_add(&b, ",\"" KN_JOB_INLINE "\":true");
    if (grec)
        kn_buf_add(&b, ",\"" KN_JOB_GROUPREC "\":true");
    for (int f = 0; f < 3; f++) {
        kn_buf_add(&b, f == 0   ? ",\"" KN_JOB_RCPT "\":["
                       : f == 1 ? "],\"" KN_JOB_ADDR "\":["
                                : "],\"" KN_JOB_INDEX "\":[");
        for (size_t k = 0; k < n; k++) {
            if (k > 0)
                kn_buf_addc(&b, ',');
            rc |= add_jstr(&b, f == 0   ? m[k].rcpt
                               : f == 1 ? m[k].sealed
                                        : m[k].bi);
        }
    }
    kn_buf_add(&b, "]}");
    if (rc != 0) {
        kn_buf_free(&b);
        return NULL;
    }
    return kn_buf_take(&b, NULL);
}

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int64_t jint(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

/* Within KN_JOB_MAX_RCPTS, and no comma in a recipient or an index. */
static int rcpts_ok(const struct kn_job_rec *rec)
{
    if (rec->n > KN_JOB_MAX_RCPTS)
        return 0;
    for (size_t k = 0; k < rec->n; k++) {
        if (strchr(rec->rcpts[k], ',') != NULL ||
            strchr(rec->bindex[k], ',') != NULL)
            return 0;
    }
    return 1;
}

/* r, a, i: three strings (one recipient) or three arrays of strings of
 * the same non-zero length (a LINE multicast job). */
static int parse_rcpts(json_t *job, struct kn_job_rec *rec)
{
    json_t *r = json_object_get(job, KN_JOB_RCPT);
    json_t *a = json_object_get(job, KN_JOB_ADDR);
    json_t *i = json_object_get(job, KN_JOB_INDEX);
    int one = json_is_string(r) && json_is_string(a) && json_is_string(i);
    size_t n;

    if (one) {
        n = 1;
    } else if (json_is_array(r) && json_is_array(a) && json_is_array(i) &&
               json_array_size(r) > 0 &&
               json_array_size(r) == json_array_size(a) &&
               json_array_size(r) == json_array_size(i)) {
        n = json_array_size(r);
    } else {
        return KN_EINVAL;
    }
    if (n > KN_JOB_MAX_RCPTS)
        return KN_EINVAL;
    rec->n = n;
    rec->rcpts = kn_xcalloc(n, sizeof(char *));
    rec->sealed = kn_xcalloc(n, sizeof(char *));
    rec->bindex = kn_xcalloc(n, sizeof(char *));
    for (size_t k = 0; k < n; k++) {
        json_t *rv = one ? r : json_array_get(r, k);
        json_t *av = one ? a : json_array_get(a, k);
        json_t *iv = one ? i : json_array_get(i, k);
        if (!json_is_string(rv) || !json_is_string(av) || !json_is_string(iv))
            return KN_EINVAL;
        rec->rcpts[k] = json_string_value(rv);
        rec->sealed[k] = json_string_value(av);
        rec->bindex[k] = json_string_value(iv);
    }
    return rcpts_ok(rec) ? 0 : KN_EINVAL;
}

int kn_job_parse(json_t *job, struct kn_job_rec *rec)
{
    json_t *n = json_object_get(job, KN_JOB_ATTEMPTS);
    json_t *fb = json_object_get(job, KN_JOB_FALLBACK);
    memset(rec, 0, sizeof(*rec));
    rec->bcast = jstr(job, KN_JOB_BCAST);
    if (!json_is_object(job) || rec->bcast == NULL || !json_is_integer(n))
        return KN_EINVAL;
    if (parse_rcpts(job, rec) < 0) {
        kn_job_rec_free(rec);
        return KN_EINVAL;
    }
    rec->attempts = (int)json_integer_value(n);
    rec->queue = jstr(job, KN_JOB_QUEUE);
    rec->key = jstr(job, KN_JOB_KEY);
    rec->platform = jstr(job, KN_JOB_PLATFORM);
    rec->lang = jstr(job, KN_JOB_LANG);
    rec->inl = json_is_true(json_object_get(job, KN_JOB_INLINE));
    rec->grec = json_is_true(json_object_get(job, KN_JOB_GROUPREC));
    rec->first_ms = jint(job, KN_JOB_FIRST);
    rec->expires_ms = jint(job, KN_JOB_EXPIRES);
    rec->fallback = json_is_array(fb) ? fb : NULL;
    return 0;
}

/* ---- kn_job_read_plain: a reader for the plain job shape ---- */

struct plain {
    char *p, *end; /* the rest of the text */
};

static void skip_ws(struct plain *r)
{
    while (r->p < r->end &&
           (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static int hex4(const char *p, unsigned long *v)
{
    *v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p[k];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        *v = *v << 4 | (unsigned long)d;
    }
    return 0;
}

/* Write code point cp as UTF-8 at *o (at most 4 bytes). */
static void put_utf8(char **o, unsigned long cp)
{
    unsigned char *u = (unsigned char *)*o;
    if (cp < 0x80) {
        *u++ = (unsigned char)cp;
    } else if (cp < 0x800) {
        *u++ = (unsigned char)(0xc0 | cp >> 6);
        *u++ = (unsigned char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *u++ = (unsigned char)(0xe0 | cp >> 12);
        *u++ = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        *u++ = (unsigned char)(0x80 | (cp & 0x3f));
    } else {
        *u++ = (unsigned char)(0xf0 | cp >> 18);
        *u++ = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
        *u++ = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        *u++ = (unsigned char)(0x80 | (cp & 0x3f));
    }
    *o = (char *)u;
}

/*
 * A JSON string at r->p, unescaped in place (an escape is never shorter
 * than what it stands for) and NUL-terminated; *out points to it.  As
 * jansson: no raw control characters, no lone surrogates, no \u0000 (a C
 * string cannot hold it: jansson's tree can, so the caller falls back),
 * valid UTF-8.  0, or -1.
 */
static int plain_str(struct plain *r, const char **out)
{
    char *o, *start;
    int ascii = 1;
    if (r->p >= r->end || *r->p != '"')
        return -1;
    start = o = ++r->p;
    while (r->p < r->end && *r->p != '"') {
        unsigned char c = (unsigned char)*r->p;
        if (c < 0x20)
            return -1;
        if (c != '\\') {
            ascii &= c < 0x80;
            *o++ = *r->p++;
            continue;
        }
        if (r->end - r->p < 2)
            return -1;
        c = (unsigned char)r->p[1];
        r->p += 2;
        switch (c) {
        case '"':
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            break;
        case '/':
            *o++ = '/';
            break;
        case 'b':
            *o++ = '\b';
            break;
        case 'f':
            *o++ = '\f';
            break;
        case 'n':
            *o++ = '\n';
            break;
        case 'r':
            *o++ = '\r';
            break;
        case 't':
            *o++ = '\t';
            break;
        case 'u': {
            unsigned long cp, lo;
            if (r->end - r->p < 4 || hex4(r->p, &cp) < 0)
                return -1;
            r->p += 4;
            if (cp >= 0xdc00 && cp <= 0xdfff)
                return -1;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u' ||
                    hex4(r->p + 2, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
                    return -1;
                r->p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            if (cp == 0)
                return -1;
            put_utf8(&o, cp);
            break;
        }
        default:
            return -1;
        }
    }
    if (r->p >= r->end)
        return -1;
    r->p++; /* the closing quote (o is behind it or at it) */
    *o = '\0';
    if (!ascii && !kn_utf8_valid(start, (size_t)(o - start)))
        return -1;
    *out = start;
    return 0;
}

/* An integer as jansson reads one: -?(0|[1-9][0-9]*), no fraction or
 * exponent, at most 18 digits (no overflow). */
static int plain_int(struct plain *r, int64_t *v)
{
    int neg = 0, nd = 0;
    int64_t x = 0;
    if (r->p < r->end && *r->p == '-') {
        neg = 1;
        r->p++;
    }
    if (r->p < r->end && *r->p == '0' && r->end - r->p > 1 && r->p[1] >= '0' &&
        r->p[1] <= '9')
        return -1;
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
        if (++nd > 18)
            return -1;
        x = x * 10 + (*r->p++ - '0');
    }
    if (nd == 0 ||
        (r->p < r->end && (*r->p == '.' || *r->p == 'e' || *r->p == 'E')))
        return -1;
    *v = neg ? -x : x;
    return 0;
}

/* A string or an array of strings: *one is the string, or *arr (heap) and
 * *n the array (n may be 0 here; the caller checks). */
static int plain_strs(struct plain *r, const char **one, const char ***arr,
                      size_t *n)
{
    size_t cap = 0;
    if (r->p < r->end && *r->p == '"')
        return plain_str(r, one);
    if (r->p >= r->end || *r->p != '[' || *arr != NULL)
        return -1;
    r->p++;
    skip_ws(r);
    *n = 0;
    if (r->p < r->end && *r->p == ']') {
        r->p++;
        *arr = kn_xcalloc(1, sizeof(char *));
        return 0;
    }
    for (;;) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *arr = kn_xrealloc(*arr, cap * sizeof(char *));
        }
        skip_ws(r);
        if (plain_str(r, &(*arr)[*n]) < 0)
            return -1;
        (*n)++;
        skip_ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == ']') {
            r->p++;
            return 0;
        }
        return -1;
    }
}

/* true or false (what kn_job_parse reads as true, and not) */
static int plain_bool(struct plain *r, int *v)
{
    if (r->end - r->p >= 4 && memcmp(r->p, "true", 4) == 0) {
        r->p += 4;
        *v = 1;
        return 0;
    }
    if (r->end - r->p >= 5 && memcmp(r->p, "false", 5) == 0) {
        r->p += 5;
        *v = 0;
        return 0;
    }
    return -1;
}

int kn_job_read_plain(char *s, size_t n, struct kn_job_rec *rec)
{
    struct plain r = {s, s + n};
    const char *one[3] = {NULL, NULL, NULL}, **arr[3] = {NULL, NULL, NULL};
    size_t cnt[3] = {0, 0, 0};
    int64_t attempts = 0, first = 0, expires = 0;
    unsigned seen = 0;
    int rc = KN_EAGAIN, flags[2] = {0, 0};
    /* The keys it takes, in this order: 5 strings, 3 integers, r, a, i
     * (a string each, or an array of strings each), "il" and "gr"
     * (booleans). */
    static const char *const names[13] = {
        KN_JOB_BCAST,   KN_JOB_QUEUE,    KN_JOB_KEY,   KN_JOB_PLATFORM,
        KN_JOB_LANG,    KN_JOB_ATTEMPTS, KN_JOB_FIRST, KN_JOB_EXPIRES,
        KN_JOB_RCPT,    KN_JOB_ADDR,     KN_JOB_INDEX, KN_JOB_INLINE,
        KN_JOB_GROUPREC};
    const char **strs[5] = {&rec->bcast, &rec->queue, &rec->key, &rec->platform,
                            &rec->lang};
    int64_t *ints[3] = {&attempts, &first, &expires};

    memset(rec, 0, sizeof(*rec));
    skip_ws(&r);
    if (r.p >= r.end || *r.p++ != '{')
        goto fail;
    skip_ws(&r);
    if (r.p < r.end && *r.p == '}')
        goto fail; /* no "b": not a job (kn_job_parse says so) */
    for (;;) {
        const char *k;
        int f = 0, bad;
        skip_ws(&r);
        if (plain_str(&r, &k) < 0)
            goto fail;
        skip_ws(&r);
        if (r.p >= r.end || *r.p++ != ':')
            goto fail;
        skip_ws(&r);
        while (f < 13 && strcmp(k, names[f]) != 0)
            f++;
        if (f == 13 || (seen & 1u << f))
            goto fail; /* "fb", another key, or one twice */
        seen |= 1u << f;
        if (f < 5)
            bad = plain_str(&r, strs[f]);
        else if (f < 8)
            bad = plain_int(&r, ints[f - 5]);
        else if (f < 11)
            bad = plain_strs(&r, &one[f - 8], &arr[f - 8], &cnt[f - 8]);
        else
            bad = plain_bool(&r, &flags[f - 11]);
        if (bad < 0)
            goto fail;
        skip_ws(&r);
        if (r.p < r.end && *r.p == ',') {
            r.p++;
            continue;
        }
        if (r.p < r.end && *r.p == '}') {
            r.p++;
            break;
        }
        goto fail;
    }
    skip_ws(&r);
    /* "b" and "n" are required; n an int (kn_job_parse casts it). */
    if (r.p != r.end || !(seen & 1) || !(seen & 1u << 5) ||
        attempts > 1000000000 || attempts < -1000000000)
        goto fail;
    if (one[0] && one[1] && one[2]) {
        rec->n = 1;
        rec->rcpts = kn_xcalloc(1, sizeof(char *));
        rec->sealed = kn_xcalloc(1, sizeof(char *));
        rec->bindex = kn_xcalloc(1, sizeof(char *));
        rec->rcpts[0] = one[0];
        rec->sealed[0] = one[1];
        rec->bindex[0] = one[2];
    } else if (arr[0] && arr[1] && arr[2] && cnt[0] > 0 && cnt[0] == cnt[1] &&
               cnt[0] == cnt[2]) {
        rec->n = cnt[0];
        rec->rcpts = arr[0];
        rec->sealed = arr[1];
        rec->bindex = arr[2];
        arr[0] = arr[1] = arr[2] = NULL;
    } else {
        goto fail;
    }
    if (!rcpts_ok(rec)) {
        free(rec->rcpts);
        free(rec->sealed);
        free(rec->bindex);
        goto fail;
    }
    rec->attempts = (int)attempts;
    rec->first_ms = first;
    rec->expires_ms = expires;
    rec->inl = flags[0];
    rec->grec = flags[1];
    rc = 0;
fail:
    for (int f = 0; f < 3; f++)
        free(arr[f]);
    if (rc < 0)
        memset(rec, 0, sizeof(*rec));
    return rc;
}

void kn_job_rec_free(struct kn_job_rec *rec)
{
    free(rec->rcpts);
    free(rec->sealed);
    free(rec->bindex);
    memset(rec, 0, sizeof(*rec));
}
