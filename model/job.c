/*
 * job.c - building and reading the job record (job.h).  Pure JSON work:
 * no I/O, no sealing (the addresses arrive sealed and leave sealed).
 */
#include "model/job.h"

#include <stdlib.h>
#include <string.h>

#include "common/kn.h"

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
    return 0;
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
    rec->first_ms = jint(job, KN_JOB_FIRST);
    rec->expires_ms = jint(job, KN_JOB_EXPIRES);
    rec->fallback = json_is_array(fb) ? fb : NULL;
    return 0;
}

void kn_job_rec_free(struct kn_job_rec *rec)
{
    free(rec->rcpts);
    free(rec->sealed);
    free(rec->bindex);
    memset(rec, 0, sizeof(*rec));
}
