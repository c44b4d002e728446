/*
 * expand_flat.c - an inline audience entry of the simplest shape read
 * without a JSON tree (struct kn__flat, dispatcher/expand.h).
 *
 * At 200,000 inline recipients, building and freeing each entry's
 * jansson tree (an object, its table, a pair and a string per member:
 * about 14 allocations and as many frees) was the expander's largest
 * cost.  The entries submit writes (model/broadcast_store.c: "id", a
 * sealed name, a sealed address and its index per channel) are compact
 * JSON of base64 and ids, so they are read here by a strict reader into
 * one buffer.  Its shape is a subset on which jansson reads the same
 * object: '{', then "key":"value" pairs separated by ',' and '}', no
 * whitespace, every key and value printable ASCII without '"' or '\',
 * every key one of those below and none twice.  Anything else
 * (an escape, a non-ASCII name, push tokens, a number) returns -1, and
 * the caller reads the entry with jansson as before.
 */
#include <stdlib.h>
#include <string.h>

#include "common/kn.h"
#include "dispatcher/expand.h"
#include "model/directory.h"

/* Where key k's value goes, or NULL if k is not one of the flat keys. */
static const char **slot(struct kn__flat *f, const char *k, size_t n)
{
    static const struct {
        const char *key;
        size_t off;
    } keys[] = {
        {KN_DIR_ID, offsetof(struct kn__flat, id)},
        {KN_DIR_NAME, offsetof(struct kn__flat, nm)},
        {KN_DIR_EMAIL, offsetof(struct kn__flat, e)},
        {KN_DIR_EMAIL_INDEX, offsetof(struct kn__flat, ei)},
        {KN_DIR_LINE, offsetof(struct kn__flat, l)},
        {KN_DIR_LINE_INDEX, offsetof(struct kn__flat, li)},
    };
    for (size_t i = 0; i < KN_ARRAY_SIZE(keys); i++) {
        if (strlen(keys[i].key) == n && memcmp(keys[i].key, k, n) == 0)
            return (const char **)((char *)f + keys[i].off);
    }
    return NULL;
}

/* A string at *p (its opening quote): its end (the closing quote), or
 * NULL if it is not printable ASCII without escapes. */
static char *str_end(char *p, const char *end)
{
    if (p >= end || *p != '"')
        return NULL;
    for (p++; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            return p;
        if (c < 0x20 || c > 0x7e || c == '\\')
            return NULL;
    }
    return NULL;
}

int kn__flat_read(struct kn__flat *f, const char *s, size_t n)
{
    struct kn__flat t;
    char *p, *end;
    memset(&t, 0, sizeof(t));
    if (n < 2 || s[0] != '{' || s[n - 1] != '}')
        return -1;
    t.buf = kn_xmalloc(n + 1);
    memcpy(t.buf, s, n);
    t.buf[n] = '\0';
    p = t.buf + 1;
    end = t.buf + n - 1; /* the closing brace */
    if (p == end) {
        *f = t; /* {} */
        return 0;
    }
    for (;;) {
        char *ke = str_end(p, end), *ve;
        const char **v;
        if (ke == NULL || ke + 1 >= end || ke[1] != ':')
            goto no;
        v = slot(&t, p + 1, (size_t)(ke - p - 1));
        if (v == NULL || *v != NULL)
            goto no; /* another key, or the same twice */
        ve = str_end(ke + 2, end);
        if (ve == NULL)
            goto no;
        *ve = '\0';
        *v = ke + 3;
        p = ve + 1;
        if (p == end)
            break;
        if (*p != ',')
            goto no;
        p++;
    }
    *f = t;
    return 0;
no:
    free(t.buf);
    return -1;
}

json_t *kn__flat_json(const struct kn__flat *f)
{
    json_t *o = json_object();
    const struct {
        const char *key, *v;
    } kv[] = {
        {KN_DIR_ID, f->id},   {KN_DIR_NAME, f->nm},
        {KN_DIR_EMAIL, f->e}, {KN_DIR_EMAIL_INDEX, f->ei},
        {KN_DIR_LINE, f->l},  {KN_DIR_LINE_INDEX, f->li},
    };
    for (size_t i = 0; i < KN_ARRAY_SIZE(kv); i++) {
        if (kv[i].v != NULL)
            json_object_set_new(o, kv[i].key, json_string(kv[i].v));
    }
    return o;
}
