/*
 * guardian.c - the guardians of one child, in order (guardian.h).
 */
#include "model/guardian.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kn.h"
#include "model/broadcast.h"
#include "model/directory.h"

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

json_t *kn_guardian_at(json_t *c, size_t k)
{
    json_t *g;
    size_t i, n = 0;
    if (!json_is_object(c))
        return NULL;
    if (k == 0)
        return c;
    json_array_foreach(json_object_get(c, KN_DIR_GUARDIANS), i, g)
    {
        if (json_is_object(g) && ++n == k)
            return g;
    }
    return NULL;
}

size_t kn_guardian_count(json_t *c)
{
    json_t *g;
    size_t i, n = 1;
    if (!json_is_object(c))
        return 0;
    json_array_foreach(json_object_get(c, KN_DIR_GUARDIANS), i, g)
    {
        if (json_is_object(g))
            n++;
    }
    return n;
}

int kn_guardian_reachable(json_t *g, unsigned chans)
{
    json_t *t;
    size_t i;
    if (!json_is_object(g) || json_is_true(json_object_get(g, KN_DIR_OFF)))
        return 0;
    if ((chans & (1u << KN_CH_EMAIL)) && jstr(g, KN_DIR_EMAIL) &&
        jstr(g, KN_DIR_EMAIL_INDEX))
        return 1;
    if ((chans & (1u << KN_CH_LINE)) && jstr(g, KN_DIR_LINE) &&
        jstr(g, KN_DIR_LINE_INDEX) &&
        !json_is_true(json_object_get(g, KN_DIR_LINE_DEAD)))
        return 1;
    if (chans & (1u << KN_CH_PUSH)) {
        json_array_foreach(json_object_get(g, KN_DIR_PUSH), i, t)
        {
            if (jstr(t, KN_DIR_PUSH_TOKEN) && jstr(t, KN_DIR_PUSH_INDEX) &&
                !json_is_true(json_object_get(t, KN_DIR_PUSH_DEAD)))
                return 1;
        }
    }
    return 0;
}

int kn_guardian_next(json_t *c, size_t from, unsigned chans)
{
    for (size_t k = from; k < KN_GUARDIAN_MAX; k++) {
        json_t *g = kn_guardian_at(c, k);
        if (g == NULL)
            return -1;
        if (kn_guardian_reachable(g, chans))
            return (int)k;
    }
    return -1;
}

int kn_guardian_sent_at(const char *list, size_t i, int *k, int64_t *ms)
{
    const char *p = list;
    char *end;
    long g;
    long long t;
    if (p == NULL)
        return KN_EINVAL;
    for (size_t n = 0; n < i; n++) {
        p = strchr(p, ',');
        if (p == NULL)
            return KN_EINVAL;
        p++;
    }
    if (*p < '0' || *p > '9')
        return KN_EINVAL;
    g = strtol(p, &end, 10);
    if (*end != '@' || g < 0 || g >= KN_GUARDIAN_MAX)
        return KN_EINVAL;
    t = strtoll(end + 1, &end, 10);
    if ((*end != ',' && *end != '\0') || t <= 0)
        return KN_EINVAL;
    *k = (int)g;
    *ms = t;
    return 0;
}

int kn_guardian_sent_has(const char *list, int k)
{
    int g;
    int64_t ms;
    for (size_t i = 0; kn_guardian_sent_at(list, i, &g, &ms) == 0; i++) {
        if (g == k)
            return 1;
    }
    return 0;
}

char *kn_guardian_sent_add(const char *list, int k, int64_t ms)
{
    if (list == NULL)
        list = "";
    if (kn_guardian_sent_has(list, k))
        return kn_xstrdup(list);
    return kn_xasprintf("%s%s%d@%lld", list, list[0] ? "," : "", k,
                        (long long)ms);
}

const char *kn_guardian_label(int k, const char *name, char *out, size_t cap)
{
    if (name != NULL && name[0] != '\0')
        snprintf(out, cap, "%s", name);
    else
        snprintf(out, cap, "保護者%d", k + 1);
    return out;
}
