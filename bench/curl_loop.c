/*
 * curl_loop.c - bare libcurl sending N copies of one prebuilt message over
 * C reused SMTP connections.  No Redis, no MIME, no event loop of ours:
 * what libcurl and the SMTP server can do on this machine.
 *
 *   curl_loop URL N C MSGFILE            one multi loop (the (2))
 *   curl_loop URL N C MSGFILE threads    one thread and easy handle per
 *                                        connection, as kairand's smtp.c
 *
 * prints one JSON line with the figures.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

struct slot {
    CURL *easy;
    struct curl_slist *rcpt;
    size_t off;
};

static const char *msg;
static size_t msglen;

static size_t on_read(char *buf, size_t size, size_t n, void *userp)
{
    struct slot *s = userp;
    size_t want = size * n, left = msglen - s->off;
    if (want > left)
        want = left;
    memcpy(buf, msg + s->off, want);
    s->off += want;
    return want;
}

static void setup(struct slot *s, const char *url, long i);

struct worker {
    const char *url;
    long from, n, failed;
};

static void *thread_main(void *arg)
{
    struct worker *w = arg;
    struct slot s = {curl_easy_init(), NULL, 0};
    for (long i = w->from; i < w->from + w->n; i++) {
        setup(&s, w->url, i);
        if (curl_easy_perform(s.easy) != CURLE_OK)
            w->failed++;
    }
    curl_slist_free_all(s.rcpt);
    curl_easy_cleanup(s.easy);
    return NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Set the slot's handle up for message i. */
static void setup(struct slot *s, const char *url, long i)
{
    char rcpt[64];
    snprintf(rcpt, sizeof(rcpt), "<bench%ld@example.jp>", i);
    curl_slist_free_all(s->rcpt);
    s->rcpt = curl_slist_append(NULL, rcpt);
    s->off = 0;
    curl_easy_setopt(s->easy, CURLOPT_URL, url);
    curl_easy_setopt(s->easy, CURLOPT_MAIL_FROM, "<bench@example.jp>");
    curl_easy_setopt(s->easy, CURLOPT_MAIL_RCPT, s->rcpt);
    curl_easy_setopt(s->easy, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(s->easy, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(s->easy, CURLOPT_READDATA, s);
    curl_easy_setopt(s->easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)msglen);
    curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
    curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
}

static void start(CURLM *multi, struct slot *s, const char *url, long i)
{
    setup(s, url, i);
    curl_multi_add_handle(multi, s->easy);
}

int main(int argc, char **argv)
{
    const char *url;
    long n, c, started = 0, done = 0, failed = 0;
    struct slot *slots;
    CURLM *multi;
    FILE *f;
    double t0, t1;
    struct rusage ru;
    char *buf;

    if (argc != 5 && !(argc == 6 && strcmp(argv[5], "threads") == 0)) {
        fprintf(stderr, "usage: curl_loop URL N CONNECTIONS MSGFILE [threads]\n");
        return 2;
    }
    url = argv[1];
    n = atol(argv[2]);
    c = atol(argv[3]);
    f = fopen(argv[4], "rb");
    if (f == NULL)
        return 2;
    buf = malloc(1 << 20);
    msglen = fread(buf, 1, 1 << 20, f);
    fclose(f);
    msg = buf;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (argc == 6) {
        pthread_t *tids = calloc((size_t)c, sizeof(*tids));
        struct worker *ws = calloc((size_t)c, sizeof(*ws));
        t0 = now();
        for (long i = 0; i < c; i++) {
            ws[i].url = url;
            ws[i].from = n * i / c;
            ws[i].n = n * (i + 1) / c - ws[i].from;
            pthread_create(&tids[i], NULL, thread_main, &ws[i]);
        }
        for (long i = 0; i < c; i++) {
            pthread_join(tids[i], NULL);
            failed += ws[i].failed;
        }
        t1 = now();
        free(tids);
        free(ws);
        goto report;
    }
    multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, c);
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, c);
    slots = calloc((size_t)c, sizeof(*slots));
    t0 = now();
    for (long i = 0; i < c && started < n; i++) {
        slots[i].easy = curl_easy_init();
        start(multi, &slots[i], url, started++);
    }
    while (done < n) {
        int running, left;
        CURLMsg *m;
        curl_multi_perform(multi, &running);
        while ((m = curl_multi_info_read(multi, &left)) != NULL) {
            struct slot *s;
            if (m->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            if (m->data.result != CURLE_OK)
                failed++;
            done++;
            curl_multi_remove_handle(multi, s->easy);
            if (started < n)
                start(multi, s, url, started++);
        }
        if (done < n)
            curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    t1 = now();
    for (long i = 0; i < c; i++) {
        if (slots[i].easy) {
            curl_easy_cleanup(slots[i].easy);
            curl_slist_free_all(slots[i].rcpt);
        }
    }
    free(slots);
    curl_multi_cleanup(multi);
report:
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"messages\":%ld,\"failed\":%ld,\"seconds\":%.3f,"
           "\"cpu_s\":%.3f,\"maxrss_kb\":%ld}\n",
           n, failed, t1 - t0,
           ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
               ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6,
           ru.ru_maxrss);
    curl_global_cleanup();
    free(buf);
    return failed > 0;
}
