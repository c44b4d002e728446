/*
 * batch.c - Redis for the HTTP handlers: several commands pipelined on
 * d->cmd with one callback when every reply is in, and the helpers that
 * read replies.
 */
#include "dispatcher/http/http_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/argv.h"
#include "common/kn.h"

const char *kn__httpd_rstr(const redisReply *r)
{
    return r != NULL && (r->type == REDIS_REPLY_STRING ||
                         r->type == REDIS_REPLY_STATUS)
               ? r->str
               : NULL;
}

const char *kn__httpd_relem(const redisReply *r, int i)
{
    return r != NULL && r->type == REDIS_REPLY_ARRAY && i >= 0 &&
                   (size_t)i < r->elements
               ? kn__httpd_rstr(r->element[i])
               : NULL;
}

long long kn__httpd_rnum(const redisReply *r)
{
    if (r == NULL)
        return 0;
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    if (r->type == REDIS_REPLY_STRING)
        return strtoll(r->str, NULL, 10);
    return 0;
}

/* A deep copy of a hiredis reply (replies die with their callback). */
static redisReply *reply_clone(const redisReply *r)
{
    redisReply *c;
    if (r == NULL)
        return NULL;
    c = kn_xcalloc(1, sizeof(*c));
    c->type = r->type;
    c->integer = r->integer;
    if (r->str != NULL) {
        c->str = kn_xmalloc(r->len + 1);
        memcpy(c->str, r->str, r->len);
        c->str[r->len] = '\0';
        c->len = r->len;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
        c->element = kn_xcalloc(r->elements, sizeof(*c->element));
        c->elements = r->elements;
        for (size_t i = 0; i < r->elements; i++)
            c->element[i] = reply_clone(r->element[i]);
    }
    return c;
}

static void reply_free(redisReply *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->elements; i++)
        reply_free(r->element[i]);
    free(r->element);
    free(r->str);
    free(r);
}

/* ------------------------------------------------------------ batches */

struct batch_slot {
    struct batch *b;
    int i;
};

static void batch_finish(struct batch *b)
{
    struct conn *c = b->c;
    if (c != NULL && !kn__httpd_conn_release(c))
        b->c = NULL;
    b->done(b);
    for (int i = 0; i < b->n; i++)
        reply_free(b->rep[i]);
    free(b->rep);
    kn__httpd_srv_unref(b->srv);
    free(b);
}

struct batch *kn__httpd_batch_new(struct http_srv *s, struct conn *c,
                                  batch_done_cb *done, void *arg)
{
    struct batch *b = kn_xcalloc(1, sizeof(*b));
    b->srv = s;
    b->c = c;
    b->done = done;
    b->arg = arg;
    b->left = 1; /* until batch_end */
    s->live++;
    if (c != NULL)
        kn__httpd_conn_hold(c);
    return b;
}

static void on_batch_reply(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct batch_slot *sl = arg;
    struct batch *b = sl->b;
    if (rep == NULL)
        b->failed = 1;
    else
        b->rep[sl->i] = reply_clone(rep);
    free(sl);
    if (--b->left == 0)
        batch_finish(b);
}

/* Send one command (a's strings; a is emptied). */
void kn__httpd_batch_add(struct batch *b, struct kn_argv *a)
{
    struct batch_slot *sl = kn_xmalloc(sizeof(*sl));
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 32;
        b->rep = kn_xrealloc(b->rep, (size_t)b->cap * sizeof(*b->rep));
    }
    sl->b = b;
    sl->i = b->n;
    b->rep[b->n++] = NULL;
    b->left++;
    if (kn_redis_argv(b->srv->d->cmd, on_batch_reply, sl, 0, a->n,
                      (const char **)a->v, a->len) < 0) {
        b->failed = 1;
        b->left--;
        free(sl);
    }
    kn_argv_clear(a);
}

void kn__httpd_batch_cmd(struct batch *b, const char *first, ...)
{
    struct kn_argv a;
    va_list ap;
    kn_argv_init(&a);
    va_start(ap, first);
    for (const char *s = first; s != NULL; s = va_arg(ap, const char *))
        kn_argv_add(&a, s);
    va_end(ap);
    kn__httpd_batch_add(b, &a);
    kn_argv_free(&a);
}

void kn__httpd_batch_count(struct batch *b, const char *key, const char *field,
                           long long ttl_ms)
{
    char ms[24];
    snprintf(ms, sizeof(ms), "%lld", ttl_ms);
    if (field != NULL)
        kn__httpd_batch_cmd(b, "HINCRBY", key, field, "1", NULL);
    else
        kn__httpd_batch_cmd(b, "INCR", key, NULL);
    kn__httpd_batch_cmd(b, "PEXPIRE", key, ms, "NX", NULL);
}

void kn__httpd_batch_end(struct batch *b)
{
    if (--b->left == 0)
        batch_finish(b);
}

const redisReply *kn__httpd_brep(const struct batch *b, int i)
{
    return i >= 0 && i < b->n ? b->rep[i] : NULL;
}

int kn__httpd_batch_usable(struct batch *b)
{
    if (b->c == NULL)
        return 0;
    if (b->failed) {
        /* What anyone may read, a guardian included: nothing of the
         * inside (the log says what failed). */
        kn__httpd_respond_coded(b->c, 503, NULL, "retry", KN__HTTPD_BUSY);
        return 0;
    }
    return 1;
}
