/*
 * test_sendgrid_live.c - the SendGrid adapter for real, on a uv loop,
 * against tests/fakes/fake_sendgrid.py (started here, on a free port):
 * one request per broadcast and per sendgrid.batch jobs, carrier addresses
 * kept out of every request, the fake's spec checks passed (it answers 400
 * otherwise), and its faults classified: wrong key (auth), 429 with
 * X-RateLimit-Reset, 400, 500, a stalled request (timeout), and close()
 * with a request in flight.  Skipped when python3 or the fake is missing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "adapters/adapter.h"
#include "adapters/http.h"
#include "adapters/sendgrid.h"
#include "common/kn.h"
#include "config/config.h"

#define FAKE "tests/fakes/fake_sendgrid.py"
#define PY   "/usr/bin/python3"
#define KEY  "SG.test-key-123"

static char dir[64];
static char store[128], control[128];
static pid_t fake;
static int port;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int start_fake(void **state)
{
    char portfile[128];
    FILE *f;
    if (access(PY, X_OK) != 0 || access(FAKE, R_OK) != 0)
        return 0; /* tests skip */
    snprintf(dir, sizeof(dir), "/tmp/kn-sg-live-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(portfile, sizeof(portfile), "%s/port", dir);
    snprintf(store, sizeof(store), "%s/store", dir);
    snprintf(control, sizeof(control), "%s/control.json", dir);
    fake = fork();
    if (fake == 0) {
        if (freopen("/dev/null", "w", stdout) == NULL)
            _exit(127);
        execl(PY, PY, FAKE, "--port-file", portfile, "--store", store,
              "--control", control, "--token", KEY, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        if ((f = fopen(portfile, "r")) != NULL) {
            int ok = fscanf(f, "%d", &port) == 1;
            fclose(f);
            if (ok)
                break;
        }
        sleep_ms(50);
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return port > 0 ? 0 : -1;
}

static int stop_fake(void **state)
{
    char cmd[160];
    if (fake > 0) {
        kill(fake, SIGTERM);
        waitpid(fake, NULL, 0);
    }
    if (dir[0] != '\0') {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            return -1;
    }
    curl_global_cleanup();
    return 0;
}

static void set_control(const char *json)
{
    char tmp[160];
    FILE *f;
    snprintf(tmp, sizeof(tmp), "%s.tmp", control);
    f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(json, f);
    fclose(f);
    assert_int_equal(rename(tmp, control), 0);
}

/* Lines of the fake's requests.jsonl (accepted requests). */
static json_t *accepted(void)
{
    char path[160], *line = NULL;
    size_t cap = 0;
    json_t *arr = json_array();
    FILE *f;
    snprintf(path, sizeof(path), "%s/requests.jsonl", store);
    f = fopen(path, "r");
    if (f == NULL)
        return arr;
    while (getline(&line, &cap, f) > 0) {
        json_t *j = json_loads(line, 0, NULL);
        if (j != NULL)
            json_array_append_new(arr, j);
    }
    free(line);
    fclose(f);
    return arr;
}

/* ---- running jobs ---- */

#define MAXJ 16

struct run {
    int done;
    enum kn_status status[MAXJ];
    char detail[MAXJ][512];
    int auth[MAXJ];
    int64_t retry_after[MAXJ];
    const char *detail_ptr[MAXJ];
};

static struct kn_job jobs[MAXJ];

static void on_done(struct kn_job *job, const struct kn_result *r, void *arg)
{
    struct run *run = arg;
    size_t i = (size_t)(job - jobs);
    run->status[i] = r->status;
    run->auth[i] = r->auth;
    run->retry_after[i] = r->retry_after_ms;
    run->detail_ptr[i] = r->detail;
    snprintf(run->detail[i], sizeof(run->detail[i]), "%s",
             r->detail ? r->detail : "");
    run->done++;
}

static void config(struct kn_config *cfg, const char *key, int batch,
                   long timeout_ms)
{
    char url[64];
    assert_int_equal(kn_config_load(cfg, NULL, NULL), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    free(cfg->sendgrid_api_base);
    cfg->sendgrid_api_base = strdup(url);
    free(cfg->sendgrid_api_key);
    cfg->sendgrid_api_key = key ? strdup(key) : NULL;
    free(cfg->smtp_from);
    cfg->smtp_from = strdup("桜高校 <noreply@sakura.example.jp>");
    cfg->sendgrid_batch = batch;
    cfg->sendgrid_timeout_ms = timeout_ms;
}

static struct kn_message msg_a = {.bcast = "b-live-a",
                                  .subject = "【緊急】臨時休校",
                                  .body = "明日は休校です。"};
static struct kn_message msg_b = {
    .bcast = "b-live-b", .subject = "お知らせ", .body = "本文"};

static void make_job(size_t i, const struct kn_message *m, const char *addr)
{
    static char bi[MAXJ][33];
    memset(&jobs[i], 0, sizeof(jobs[i]));
    snprintf(bi[i], sizeof(bi[i]), "%032zx", i + 1);
    jobs[i].msg = m;
    jobs[i].channel = "email";
    jobs[i].addr = addr;
    jobs[i].bindex = bi[i];
    jobs[i].naddr = 1;
}

/*
 * Open the adapter, send n jobs in one call, run the loop until every job
 * is done (or, with close_after_ms, close the adapter then), close.
 */
static void run_jobs(struct kn_config *cfg, size_t n, struct run *run,
                     long close_after_ms)
{
    uv_loop_t loop;
    struct kn_adapter a;
    struct kn_job *ptrs[MAXJ];
    int64_t start;
    memset(run, 0, sizeof(*run));
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(kn_adapter_open(&a, "sendgrid", &loop, cfg, NULL), 0);
    for (size_t i = 0; i < n; i++)
        ptrs[i] = &jobs[i];
    assert_int_equal(a.ops->send(&a, ptrs, n, on_done, run), 0);
    start = kn_mono_ms();
    while ((size_t)run->done < n && kn_mono_ms() - start < 20000) {
        if (close_after_ms > 0 && kn_mono_ms() - start >= close_after_ms)
            break;
        uv_run(&loop, UV_RUN_NOWAIT);
        sleep_ms(2);
    }
    if (close_after_ms > 0)
        assert_int_equal(a.ops->in_flight(&a), n - (size_t)run->done);
    else
        assert_int_equal(a.ops->in_flight(&a), 0);
    a.ops->close(&a);
    uv_run(&loop, UV_RUN_DEFAULT); /* the last close callbacks */
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(run->done, (int)n);
}

static void test_batches(void **state)
{
    struct kn_config cfg;
    struct run run;
    json_t *acc, *p;
    if (port == 0)
        skip();
    set_control("{}");
    config(&cfg, KEY, 1000, 10000);
    make_job(0, &msg_a, "taro@example.jp");
    make_job(1, &msg_b, "hanako@example.jp");
    make_job(2, &msg_a, "taro..yamada.@docomo.ne.jp");
    make_job(3, &msg_a, "jiro@example.jp");
    make_job(4, &msg_b, "saburo@example.jp");
    run_jobs(&cfg, 5, &run, 0);
    assert_int_equal(run.status[0], KN_DELIVERED);
    assert_int_equal(run.status[1], KN_DELIVERED);
    assert_int_equal(run.status[3], KN_DELIVERED);
    assert_int_equal(run.status[4], KN_DELIVERED);
    assert_non_null(strstr(run.detail[0], "X-Message-Id"));
    /* The carrier address never reached the fake: tempfail at once. */
    assert_int_equal(run.status[2], KN_TEMPFAIL);
    assert_ptr_equal(run.detail_ptr[2], kn_detail_sendgrid_address);
    acc = accepted();
    assert_int_equal(json_array_size(acc), 2); /* one per broadcast */
    for (size_t i = 0; i < 2; i++) {
        const char *sub;
        p = json_array_get(acc, i);
        assert_int_equal(
            json_array_size(json_object_get(p, "personalizations")), 2);
        sub = json_string_value(json_object_get(p, "subject"));
        assert_true(strcmp(sub, msg_a.subject) == 0 ||
                    strcmp(sub, msg_b.subject) == 0);
    }
    json_decref(acc);
    kn_config_free(&cfg);

    /* sendgrid.batch = 2: five jobs of one broadcast, three requests. */
    config(&cfg, KEY, 2, 10000);
    for (size_t i = 0; i < 5; i++) {
        static char addr[5][32];
        snprintf(addr[i], sizeof(addr[i]), "user%zu@example.jp", i);
        make_job(i, &msg_b, addr[i]);
    }
    jobs[0].link = "https://kairan.example.jp/a/tok0";
    run_jobs(&cfg, 5, &run, 0);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(run.status[i], KN_DELIVERED);
    acc = accepted();
    assert_int_equal(json_array_size(acc), 2 + 3);
    /* The personal link rode in a substitution the fake accepted. */
    {
        size_t found = 0, i, k;
        json_t *q, *pp;
        json_array_foreach(acc, i, q)
        {
            json_array_foreach(json_object_get(q, "personalizations"), k, pp)
            {
                const char *to = json_string_value(json_object_get(
                    json_array_get(json_object_get(pp, "to"), 0), "email"));
                const char *tag;
                json_t *v;
                if (strcmp(to, "user0@example.jp") != 0)
                    continue;
                json_object_foreach(json_object_get(pp, "substitutions"), tag,
                                    v)
                {
                    if (strstr(json_string_value(v), jobs[0].link) != NULL)
                        found++;
                }
            }
        }
        assert_int_equal(found, 1);
    }
    json_decref(acc);
    kn_config_free(&cfg);
}

static void test_faults(void **state)
{
    struct kn_config cfg;
    struct run run;
    if (port == 0)
        skip();
    make_job(0, &msg_a, "taro@example.jp");
    make_job(1, &msg_a, "jiro@example.jp");

    /* A wrong key: our credentials, not the recipients'. */
    set_control("{}");
    config(&cfg, "SG.wrong", 1000, 10000);
    run_jobs(&cfg, 2, &run, 0);
    assert_int_equal(run.status[0], KN_TEMPFAIL);
    assert_true(run.auth[0]);
    assert_true(run.auth[1]);
    assert_non_null(strstr(run.detail[0], "401"));
    kn_config_free(&cfg);

    config(&cfg, KEY, 1000, 10000);
    set_control("{\"rules\":[{\"action\":\"429\",\"reset_in\":3}]}");
    run_jobs(&cfg, 2, &run, 0);
    assert_int_equal(run.status[0], KN_TEMPFAIL);
    assert_false(run.auth[0]);
    assert_true(run.retry_after[0] >= 1000 && run.retry_after[0] <= 3000);
    assert_int_equal(run.retry_after[1], run.retry_after[0]);

    set_control("{\"rules\":[{\"action\":\"400\"}]}");
    run_jobs(&cfg, 2, &run, 0);
    assert_int_equal(run.status[0], KN_PERMFAIL);
    assert_non_null(strstr(run.detail[0], "invalid request"));

    set_control("{\"rules\":[{\"action\":\"500\"}]}");
    run_jobs(&cfg, 2, &run, 0);
    assert_int_equal(run.status[1], KN_TEMPFAIL);
    assert_non_null(strstr(run.detail[1], "500"));

    set_control("{\"rules\":[{\"action\":\"reset\"}]}");
    run_jobs(&cfg, 2, &run, 0);
    assert_int_equal(run.status[0], KN_TEMPFAIL);
    assert_non_null(strstr(run.detail[0], "transport"));

    /* 202 Accepted, then the connection reset half-way through the
     * body: SendGrid took the mail; sending it again would mail every
     * recipient of the request twice. */
    {
        json_t *acc = accepted();
        size_t before = json_array_size(acc);
        json_decref(acc);
        set_control("{\"rules\":[{\"action\":\"202-cut\"}]}");
        run_jobs(&cfg, 2, &run, 0);
        acc = accepted();
        assert_int_equal(json_array_size(acc), before + 1);
        json_decref(acc);
        print_message("202 then cut: %s\n", run.detail[0]);
        assert_int_equal(run.status[0], KN_DELIVERED);
        assert_int_equal(run.status[1], KN_DELIVERED);
    }
    kn_config_free(&cfg);

    /* A stalled request: the time limit makes it a tempfail. */
    config(&cfg, KEY, 1000, 1000);
    set_control("{\"rules\":[{\"action\":\"stall\"}]}");
    run_jobs(&cfg, 2, &run, 0);
    assert_int_equal(run.status[0], KN_TEMPFAIL);
    assert_non_null(strstr(run.detail[0], "transport"));

    /* Closed while the request is in flight: aborted, never lost. */
    kn_config_free(&cfg);
    config(&cfg, KEY, 1000, 10000);
    run_jobs(&cfg, 2, &run, 300);
    assert_ptr_equal(run.detail_ptr[0], kn_detail_aborted);
    assert_ptr_equal(run.detail_ptr[1], kn_detail_aborted);
    set_control("{}");
    kn_config_free(&cfg);
}

static void test_open_refused(void **state)
{
    struct kn_config cfg;
    struct kn_adapter a;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    config(&cfg, NULL, 1000, 1000); /* no key */
    assert_int_equal(kn_adapter_open(&a, "sendgrid", &loop, &cfg, NULL),
                     KN_ECONFIG);
    free(cfg.sendgrid_api_base);
    cfg.sendgrid_api_base = strdup("http://sendgrid.example.com");
    cfg.sendgrid_api_key = strdup("SG.x");
    assert_int_equal(kn_adapter_open(&a, "sendgrid", &loop, &cfg, NULL),
                     KN_ECONFIG);
    kn_config_free(&cfg);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batches),
        cmocka_unit_test(test_faults),
        cmocka_unit_test(test_open_refused),
    };
    return cmocka_run_group_tests(tests, start_fake, stop_fake);
}
