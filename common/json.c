/*
 * json.c - see json.h.  A recursive reader of the plain subset of JSON:
 * objects, arrays, strings without escapes or control bytes, integers of
 * at most 18 digits, true, false, null.  Whatever else it meets makes it
 * give up (NULL), and kn_json_load hands the whole input to jansson.
 */
#include "common/json.h"

#include <string.h>

#define SIMPLE_MAX_DEPTH 32

/* What keeps this reader's answer jansson's: jansson takes at least this
 * depth, and its integers hold 18 digits. */
_Static_assert(JSON_PARSER_MAX_DEPTH > SIMPLE_MAX_DEPTH,
               "jansson must allow deeper nesting than the fast reader");
_Static_assert(sizeof(json_int_t) >= 8, "json_int_t must hold 18 digits");

struct rd {
    const char *p, *end;
};

static void skip_ws(struct rd *r)
{
    while (r->p < r->end &&
           (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

/* A string's bytes (after the opening quote): *len, or NULL (an escape,
 * a control byte or no closing quote: not for this reader). */
static const char *str_span(struct rd *r, size_t *len)
{
    const char *s = r->p;
    while (r->p < r->end) {
        unsigned char c = (unsigned char)*r->p;
        if (c == '"') {
            *len = (size_t)(r->p - s);
            r->p++;
            return s;
        }
        if (c == '\\' || c < 0x20)
            return NULL;
        r->p++;
    }
    return NULL;
}

static json_t *number(struct rd *r)
{
    long long v = 0;
    int neg = 0, digits = 0;
    if (*r->p == '-') {
        neg = 1;
        r->p++;
    }
    if (r->p < r->end && *r->p == '0') {
        r->p++;
        digits = 1;
    } else {
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9' && digits < 18) {
            v = v * 10 + (*r->p - '0');
            r->p++;
            digits++;
        }
    }
    /* A fraction, an exponent, a leading zero or a 19th digit: jansson's
     * (18 digits never overflow a long long). */
    if (digits == 0 ||
        (r->p < r->end && (*r->p == '.' || *r->p == 'e' || *r->p == 'E' ||
                           (*r->p >= '0' && *r->p <= '9'))))
        return NULL;
    return json_integer(neg ? -v : v);
}

static json_t *value(struct rd *r, int depth);

static json_t *object(struct rd *r, int depth)
{
    json_t *o = json_object();
    r->p++; /* { */
    skip_ws(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        return o;
    }
    for (;;) {
        const char *k;
        size_t klen;
        json_t *v;
        if (r->p >= r->end || *r->p != '"')
            break;
        r->p++;
        if ((k = str_span(r, &klen)) == NULL)
            break;
        skip_ws(r);
        if (r->p >= r->end || *r->p != ':')
            break;
        r->p++;
        skip_ws(r);
        if ((v = value(r, depth)) == NULL)
            break;
        /* Checks the key is UTF-8; takes v even when it refuses. */
        if (json_object_setn_new(o, k, klen, v) != 0)
            break;
        skip_ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            skip_ws(r);
            continue;
        }
        if (r->p < r->end && *r->p == '}') {
            r->p++;
            return o;
        }
        break;
    }
    json_decref(o);
    return NULL;
}

static json_t *array(struct rd *r, int depth)
{
    json_t *a = json_array();
    r->p++; /* [ */
    skip_ws(r);
    if (r->p < r->end && *r->p == ']') {
        r->p++;
        return a;
    }
    for (;;) {
        json_t *v = value(r, depth);
        if (v == NULL || json_array_append_new(a, v) != 0)
            break;
        skip_ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            skip_ws(r);
            continue;
        }
        if (r->p < r->end && *r->p == ']') {
            r->p++;
            return a;
        }
        break;
    }
    json_decref(a);
    return NULL;
}

static int word(struct rd *r, const char *w, size_t n)
{
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, w, n) != 0)
        return 0;
    r->p += n;
    return 1;
}

static json_t *value(struct rd *r, int depth)
{
    const char *s;
    size_t len;
    if (r->p >= r->end || depth >= SIMPLE_MAX_DEPTH)
        return NULL;
    switch (*r->p) {
    case '{':
        return object(r, depth + 1);
    case '[':
        return array(r, depth + 1);
    case '"':
        r->p++;
        s = str_span(r, &len);
        /* json_stringn checks the bytes are UTF-8 (NULL if not). */
        return s != NULL ? json_stringn(s, len) : NULL;
    case 't':
        return word(r, "true", 4) ? json_true() : NULL;
    case 'f':
        return word(r, "false", 5) ? json_false() : NULL;
    case 'n':
        return word(r, "null", 4) ? json_null() : NULL;
    default:
        if (*r->p == '-' || (*r->p >= '0' && *r->p <= '9'))
            return number(r);
        return NULL;
    }
}

json_t *kn_json_load_simple(const char *s, size_t n)
{
    struct rd r = {s, s + n};
    json_t *v;
    skip_ws(&r);
    /* Like json_loadb without JSON_DECODE_ANY: an object or an array. */
    if (r.p >= r.end || (*r.p != '{' && *r.p != '['))
        return NULL;
    if ((v = value(&r, 0)) == NULL)
        return NULL;
    skip_ws(&r);
    if (r.p != r.end) {
        json_decref(v);
        return NULL;
    }
    return v;
}

json_t *kn_json_load(const char *s, size_t n)
{
    json_t *v = kn_json_load_simple(s, n);
    return v != NULL ? v : json_loadb(s, n, 0, NULL);
}
