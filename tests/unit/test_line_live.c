/*
 * test_line_live.c - the LINE adapter for real, on a uv loop, against
 * tests/fakes/fake_line.py (started here on a free port; it checks the
 * spec's shapes, the bearer token, the retry key, and verifies our RS256
 * assertions with the public key written here):
 *   - push for one id and multicast for several, from one send() call;
 *   - jobs refused before any request: older than 24 h, not a user id;
 *   - the v2.1 flow: one token issue for a burst of jobs, a 401 drops the
 *     token and the next job issues a new one, a refused assertion is a
 *     tempfail with the auth hint and the next issue (after the back-off)
 *     works, an expired token is replaced before use;
 *   - no credentials: tempfail with the auth hint; close() with jobs
 *     waiting for a token: each aborted.
 * Skipped when python3 or the fake is missing.
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
#include "adapters/line.h"
#include "common/kn.h"
#include "config/config.h"

#define FAKE    "tests/fakes/fake_line.py"
#define PY      "/usr/bin/python3"
#define TOKEN   "static-token-abc"
#define CHANNEL "1657000001"
#define KID     "kid-live-1"
#define TTL     "2"

static char dir[64];
static char store[128], control[128], keyfile[128];
static pid_t fake;
static int port;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* An RSA key pair: the private one for kairan, the public one for the
 * fake (by the openssl tool: key generation under valgrind is slow). */
static int write_keys(const char *priv, const char *pub)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 "
             "-out '%s' 2>/dev/null && openssl pkey -in '%s' -pubout -out "
             "'%s' 2>/dev/null",
             priv, priv, pub);
    return system(cmd) == 0;
}

static int start_fake(void **state)
{
    char portfile[128], pub[128];
    FILE *f;
    if (access(PY, X_OK) != 0 || access(FAKE, R_OK) != 0)
        return 0; /* tests skip */
    snprintf(dir, sizeof(dir), "/tmp/kn-line-live-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(portfile, sizeof(portfile), "%s/port", dir);
    snprintf(store, sizeof(store), "%s/store", dir);
    snprintf(control, sizeof(control), "%s/control.json", dir);
    snprintf(keyfile, sizeof(keyfile), "%s/assertion.pem", dir);
    snprintf(pub, sizeof(pub), "%s/assertion.pub.pem", dir);
    if (!write_keys(keyfile, pub))
        return -1;
    fake = fork();
    if (fake == 0) {
        if (freopen("/dev/null", "w", stdout) == NULL)
            _exit(127);
        execl(PY, PY, FAKE, "--port-file", portfile, "--store", store,
              "--control", control, "--token", TOKEN, "--channel-id", CHANNEL,
              "--kid", KID, "--line-public-key", pub, "--token-ttl", TTL,
              (char *)NULL);
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

/* Lines of one of the fake's files, as a JSON array. */
static json_t *jsonl(const char *name)
{
    char path[160], *line = NULL;
    size_t cap = 0;
    json_t *arr = json_array();
    FILE *f;
    snprintf(path, sizeof(path), "%s/%s", store, name);
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

/* Token events with this status so far (200, or a control action). */
static size_t token_events(const char *status)
{
    json_t *evs = jsonl("events.jsonl"), *e;
    size_t i, n = 0;
    json_array_foreach(evs, i, e)
    {
        json_t *st = json_object_get(e, "status");
        char buf[16];
        if (strcmp(json_string_value(json_object_get(e, "ev")), "token") != 0)
            continue;
        if (json_is_integer(st))
            snprintf(buf, sizeof(buf), "%lld",
                     (long long)json_integer_value(st));
        else
            snprintf(buf, sizeof(buf), "%s", json_string_value(st));
        n += strcmp(buf, status) == 0;
    }
    json_decref(evs);
    return n;
}

/* ---- running jobs ---- */

#define MAXJ 8

struct run {
    int done;
    enum kn_status status[MAXJ];
    char detail[MAXJ][640];
    const char *detail_ptr[MAXJ];
    int auth[MAXJ];
};

static struct kn_job jobs[MAXJ];
static struct kn_message msg = {
    .bcast = "b-line-live", .subject = "お知らせ", .body = "本文です。😀"};
static const char *const ids[] = {
    "U0123456789abcdef0123456789abcdef",
    "U1123456789abcdef0123456789abcdef",
    "U2123456789abcdef0123456789abcdef",
    "U3123456789abcdef0123456789abcdef",
};

static void on_done(struct kn_job *job, const struct kn_result *r, void *arg)
{
    struct run *run = arg;
    size_t i = (size_t)(job - jobs);
    run->status[i] = r->status;
    run->auth[i] = r->auth;
    run->detail_ptr[i] = r->detail;
    snprintf(run->detail[i], sizeof(run->detail[i]), "%s",
             r->detail ? r->detail : "");
    run->done++;
}

/* Job i to the ids [first, first + n) (n > 1: a multicast job). */
static void make_job(size_t i, size_t first, size_t n, const char *key)
{
    memset(&jobs[i], 0, sizeof(jobs[i]));
    jobs[i].msg = &msg;
    jobs[i].channel = "line";
    jobs[i].addr = ids[first];
    jobs[i].addrs = ids + first;
    jobs[i].naddr = n;
    jobs[i].key = key;
    jobs[i].bindex = "0123456789abcdef0123456789abcdef";
    jobs[i].first_ms = kn_now_ms();
}

static void config(struct kn_config *cfg, int jwt)
{
    char url[64];
    assert_int_equal(kn_config_load(cfg, NULL, NULL), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    free(cfg->line_api_base);
    cfg->line_api_base = strdup(url);
    cfg->line_timeout_ms = 5000;
    if (jwt) {
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/oauth2/v2.1/token",
                 port);
        free(cfg->line_token_url);
        cfg->line_token_url = strdup(url);
        cfg->line_channel_id = strdup(CHANNEL);
        cfg->line_key_id = strdup(KID);
        cfg->line_key_file = strdup(keyfile);
    } else {
        cfg->line_token = strdup(TOKEN);
    }
}

/* Send jobs[0..n) in one call and run the loop until all are done (or
 * close after close_ms). */
static void send_jobs(uv_loop_t *loop, struct kn_adapter *a, size_t n,
                      struct run *run, long close_ms)
{
    struct kn_job *ptrs[MAXJ];
    int64_t start = kn_mono_ms();
    memset(run, 0, sizeof(*run));
    for (size_t i = 0; i < n; i++)
        ptrs[i] = &jobs[i];
    assert_int_equal(a->ops->send(a, ptrs, n, on_done, run), 0);
    while ((size_t)run->done < n && kn_mono_ms() - start < 20000) {
        if (close_ms > 0 && kn_mono_ms() - start >= close_ms)
            break;
        uv_run(loop, UV_RUN_NOWAIT);
        sleep_ms(2);
    }
}

static void run_loop_ms(uv_loop_t *loop, long ms)
{
    int64_t start = kn_mono_ms();
    while (kn_mono_ms() - start < ms) {
        uv_run(loop, UV_RUN_NOWAIT);
        sleep_ms(5);
    }
}

static void finish(uv_loop_t *loop, struct kn_adapter *a)
{
    a->ops->close(a);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

static void test_push_multicast(void **state)
{
    struct kn_config cfg;
    struct kn_adapter a;
    uv_loop_t loop;
    struct run run;
    json_t *reqs;
    if (port == 0)
        skip();
    set_control("{}");
    config(&cfg, 0);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(kn_adapter_open(&a, "line", &loop, &cfg, NULL), 0);
    make_job(0, 0, 1, "line:one");
    make_job(1, 1, 3, "line:p0.0");
    make_job(2, 0, 1, "line:old");
    jobs[2].first_ms = kn_now_ms() - 25 * 3600 * 1000LL;
    make_job(3, 0, 1, "line:bad");
    jobs[3].addr = "not-a-user-id";
    send_jobs(&loop, &a, 4, &run, 0);
    assert_int_equal(run.done, 4);
    assert_int_equal(run.status[0], KN_DELIVERED);
    assert_int_equal(run.status[1], KN_DELIVERED);
    assert_non_null(strstr(run.detail[0], "request id"));
    assert_int_equal(run.status[2], KN_PERMFAIL);
    assert_string_equal(run.detail[2], "retry key expired (older than 24 h)");
    assert_int_equal(run.status[3], KN_PERMFAIL);
    assert_null(strstr(run.detail[3], "not-a-user-id"));
    assert_int_equal(a.ops->in_flight(&a), 0);

    reqs = jsonl("requests.jsonl");
    assert_int_equal(json_array_size(reqs), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *q = json_array_get(reqs, i);
        const char *ep = json_string_value(json_object_get(q, "endpoint"));
        size_t nto = json_array_size(json_object_get(q, "to"));
        assert_int_equal(nto, strcmp(ep, "push") == 0 ? 1 : 3);
        assert_int_equal(
            strlen(json_string_value(json_object_get(q, "retry_key"))), 36);
        assert_int_equal(json_array_size(json_object_get(q, "messages")), 2);
    }
    json_decref(reqs);

    /* The same job again: the same retry key, so LINE answers 409 and it
     * counts as delivered; nothing new is stored. */
    make_job(0, 0, 1, "line:one");
    send_jobs(&loop, &a, 1, &run, 0);
    assert_int_equal(run.status[0], KN_DELIVERED);
    assert_non_null(strstr(run.detail[0], "accepted earlier"));
    reqs = jsonl("requests.jsonl");
    assert_int_equal(json_array_size(reqs), 2);
    json_decref(reqs);
    finish(&loop, &a);
    kn_config_free(&cfg);
}

static void test_token_flow(void **state)
{
    struct kn_config cfg;
    struct kn_adapter a;
    struct kn_line_stats st;
    uv_loop_t loop;
    struct run run;
    size_t issued0;
    if (port == 0)
        skip();
    set_control("{}");
    issued0 = token_events("200");
    config(&cfg, 1);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(kn_adapter_open(&a, "line", &loop, &cfg, NULL), 0);

    /* A burst: every job waits for the one token issue. */
    for (size_t i = 0; i < 6; i++) {
        static char key[6][16];
        snprintf(key[i], sizeof(key[i]), "burst:%zu", i);
        make_job(i, i % 4, 1, key[i]);
    }
    send_jobs(&loop, &a, 6, &run, 0);
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(run.status[i], KN_DELIVERED);
    assert_int_equal(token_events("200"), issued0 + 1);
    assert_int_equal(kn_line_token_refreshes(&a), 1);

    /* A 401 drops the token: tempfail with the auth hint; the next job
     * issues a new token and goes through. */
    set_control("{\"rules\":[{\"action\":\"401\",\"times\":1}]}");
    make_job(0, 0, 1, "drop:1");
    send_jobs(&loop, &a, 1, &run, 0);
    assert_int_equal(run.status[0], KN_TEMPFAIL);
    assert_true(run.auth[0]);
    kn_line_stats(&a, &st);
    assert_int_equal(st.token_dropped, 1);
    send_jobs(&loop, &a, 1, &run, 0);
    assert_int_equal(run.status[0], KN_DELIVERED);
    assert_int_equal(kn_line_token_refreshes(&a), 2);

    /* A refused assertion: tempfail + auth, counted; after the back-off
     * the next issue works. */
    set_control("{\"rules\":[{\"action\":\"401\",\"times\":1},"
                "{\"action\":\"400\",\"endpoint\":\"token\",\"times\":1}]}");
    make_job(0, 0, 1, "refused:1");
    send_jobs(&loop, &a, 1, &run, 0); /* 401: dropped */
    send_jobs(&loop, &a, 1, &run, 0); /* token request refused */
    assert_int_equal(run.status[0], KN_TEMPFAIL);
    assert_true(run.auth[0]);
    assert_non_null(strstr(run.detail[0], "token request refused"));
    kn_line_stats(&a, &st);
    assert_int_equal(st.token_failures, 1);
    send_jobs(&loop, &a, 1, &run, 0); /* within the back-off: at once */
    assert_int_equal(run.status[0], KN_TEMPFAIL);
    assert_int_equal(token_events("400"), 1);
    run_loop_ms(&loop, 1100);
    send_jobs(&loop, &a, 1, &run, 0);
    assert_int_equal(run.status[0], KN_DELIVERED);
    assert_int_equal(kn_line_token_refreshes(&a), 3);

    /* The token (2 s) expires: replaced before use, never a 401. */
    set_control("{}");
    run_loop_ms(&loop, 2100);
    make_job(0, 1, 2, "expiry:1");
    send_jobs(&loop, &a, 1, &run, 0);
    assert_int_equal(run.status[0], KN_DELIVERED);
    assert_int_equal(kn_line_token_refreshes(&a), 4);
    kn_line_stats(&a, &st);
    assert_int_equal(st.token_dropped, 2);
    assert_int_equal(st.auth_refused, 2);

    /* Closed while jobs wait for a token: each is aborted. */
    set_control("{\"rules\":[{\"action\":\"stall\",\"endpoint\":\"token\"}]}");
    run_loop_ms(&loop, 2100);
    make_job(0, 0, 1, "close:1");
    make_job(1, 1, 1, "close:2");
    send_jobs(&loop, &a, 2, &run, 300);
    assert_int_equal(run.done, 0);
    assert_int_equal(a.ops->in_flight(&a), 2);
    finish(&loop, &a);
    assert_int_equal(run.done, 2);
    assert_ptr_equal(run.detail_ptr[0], kn_detail_aborted);
    assert_ptr_equal(run.detail_ptr[1], kn_detail_aborted);
    set_control("{}");
    kn_config_free(&cfg);
}

static void test_no_credentials(void **state)
{
    struct kn_config cfg;
    struct kn_adapter a;
    uv_loop_t loop;
    struct run run;
    if (port == 0)
        skip();
    config(&cfg, 0);
    free(cfg.line_token);
    cfg.line_token = NULL;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(kn_adapter_open(&a, "line", &loop, &cfg, NULL), 0);
    make_job(0, 0, 1, "nocred");
    send_jobs(&loop, &a, 1, &run, 0);
    assert_int_equal(run.status[0], KN_TEMPFAIL);
    assert_true(run.auth[0]);
    assert_non_null(strstr(run.detail[0], "line.token"));
    finish(&loop, &a);
    kn_config_free(&cfg);
}

static void test_open_refused(void **state)
{
    struct kn_config cfg;
    struct kn_adapter a;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    config(&cfg, 0);
    free(cfg.line_api_base);
    cfg.line_api_base = strdup("http://api.line.example");
    assert_int_equal(kn_adapter_open(&a, "line", &loop, &cfg, NULL),
                     KN_ECONFIG);
    kn_config_free(&cfg);

    config(&cfg, 1);
    free(cfg.line_key_id);
    cfg.line_key_id = NULL;
    assert_int_equal(kn_adapter_open(&a, "line", &loop, &cfg, NULL),
                     KN_ECONFIG);
    kn_config_free(&cfg);

    config(&cfg, 1);
    free(cfg.line_key_file);
    cfg.line_key_file = strdup("/nonexistent/line.pem");
    assert_int_equal(kn_adapter_open(&a, "line", &loop, &cfg, NULL),
                     KN_ECONFIG);
    kn_config_free(&cfg);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_push_multicast),
        cmocka_unit_test(test_token_flow),
        cmocka_unit_test(test_no_credentials),
        cmocka_unit_test(test_open_refused),
    };
    return cmocka_run_group_tests(tests, start_fake, stop_fake);
}
