/*
 * rstates.c - a broadcast's recipient records read whole (rstates.h).
 */
#include "queue/rstates.h"

#include <stdlib.h>
#include <string.h>

#include "common/kn.h"
#include "model/child.h"

/* A group's record: its field without the '@', and its value. */
struct grec {
    const char *gid;
    const char *value;
};

static int by_gid(const void *a, const void *b)
{
    return strcmp(((const struct grec *)a)->gid, ((const struct grec *)b)->gid);
}

static int is_str(const redisReply *e)
{
    return e != NULL && e->type == REDIS_REPLY_STRING && e->str != NULL;
}

void kn_rstates_resolve(redisReply *r)
{
    struct grec *g = NULL;
    size_t ng = 0, out = 0;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0)
        return;
    for (size_t i = 0; i < r->elements; i += 2) {
        if (!is_str(r->element[i]) || !is_str(r->element[i + 1]))
            return; /* not a hash's reply: left alone */
        if (r->element[i]->str[0] == '@')
            ng++;
    }
    if (ng == 0)
        return; /* no group recorded once (every broadcast before them) */
    g = kn_xmalloc(ng * sizeof(*g));
    ng = 0;
    for (size_t i = 0; i < r->elements; i += 2) {
        if (r->element[i]->str[0] == '@') {
            g[ng].gid = r->element[i]->str + 1;
            g[ng].value = r->element[i + 1]->str;
            ng++;
        }
    }
    qsort(g, ng, sizeof(*g), by_gid);
    for (size_t i = 0; i < r->elements; i += 2) {
        redisReply *v = r->element[i + 1];
        const char *gid =
            r->element[i]->str[0] == '@' ? NULL : kn_child_st_group(v->str);
        struct grec key = {gid, NULL}, *hit;
        char *s;
        if (gid == NULL)
            continue;
        hit = bsearch(&key, g, ng, sizeof(*g), by_gid);
        s = kn_child_st_resolve(v->str, hit ? hit->value : NULL);
        /* hiredis frees a reply's strings with free() (its default
         * allocators, which kairan keeps) */
        free(v->str);
        v->str = s;
        v->len = strlen(s);
    }
    free(g);
    /* then the group fields leave the reply */
    for (size_t i = 0; i < r->elements; i += 2) {
        if (r->element[i]->str[0] == '@') {
            freeReplyObject(r->element[i]);
            freeReplyObject(r->element[i + 1]);
            continue;
        }
        r->element[out++] = r->element[i];
        r->element[out++] = r->element[i + 1];
    }
    r->elements = out;
}
