/*
 * fuzz_job.c - libFuzzer target for the job record's plain reader
 * (kn_job_read_plain, model/job.c), differential: whatever it takes,
 * json_loadb + kn_job_parse must take too, with the same fields (it reads
 * stream entries, which anyone with Redis access can write).
 */
#include "model/job.h"
#include "tests/fuzz/fuzz.h"

static int same(const char *a, const char *b)
{
    return (a == NULL && b == NULL) ||
           (a != NULL && b != NULL && strcmp(a, b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    char *s = fz_str(data, n);
    struct kn_job_rec p, j;
    json_t *t;
    if (kn_job_read_plain(s, n, &p) < 0) {
        free(s);
        return 0;
    }
    t = json_loadb((const char *)data, n, 0, NULL);
    FZ_CHECK(t != NULL, "plain took what jansson refuses");
    FZ_CHECK(kn_job_parse(t, &j) == 0, "plain took what is not a job");
    FZ_CHECK(same(p.bcast, j.bcast) && same(p.queue, j.queue) &&
                 same(p.key, j.key) && same(p.platform, j.platform) &&
                 same(p.lang, j.lang),
             "strings differ");
    FZ_CHECK(p.attempts == j.attempts && p.first_ms == j.first_ms &&
                 p.expires_ms == j.expires_ms && p.n == j.n && p.inl == j.inl &&
                 p.grec == j.grec,
             "numbers differ");
    FZ_CHECK(j.fallback == NULL, "plain took a job with fallbacks");
    for (size_t k = 0; k < p.n; k++)
        FZ_CHECK(same(p.rcpts[k], j.rcpts[k]) &&
                     same(p.sealed[k], j.sealed[k]) &&
                     same(p.bindex[k], j.bindex[k]),
                 "member %zu differs", k);
    kn_job_rec_free(&p);
    kn_job_rec_free(&j);
    json_decref(t);
    free(s);
    return 0;
}
