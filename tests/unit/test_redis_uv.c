/*
 * test_redis_uv.c - kairan's hiredis <-> libuv glue against a real
 * redis-server on a free port: a refused connection is noticed and retried
 * (hiredis' own adapter would hang), a command past its deadline fails and
 * the connection is re-made, NOSCRIPT falls back to EVAL, a dying server
 * fails every pending command, and closing leaks no handle.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/kn.h"
#include "common/codec.h"
#include "tests/unit/redis_server.h"
#include "common/log.h"
#include "queue/redis_uv.h"

struct ctx {
    uv_loop_t loop;
    struct kn_redis *r;
    int ups, downs;
    int replies, nulls, errors;
    char last[128];
    uv_timer_t guard;
    int done;
};

static void on_state(struct kn_redis *r, int up, void *arg)
{
    struct ctx *c = arg;
    if (up)
        c->ups++;
    else
        c->downs++;
}

static void on_reply(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct ctx *c = arg;
    if (rep == NULL) {
        c->nulls++;
        return;
    }
    c->replies++;
    if (rep->type == REDIS_REPLY_ERROR)
        c->errors++;
    if (rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_STATUS ||
        rep->type == REDIS_REPLY_ERROR)
        snprintf(c->last, sizeof(c->last), "%s", rep->str);
    else if (rep->type == REDIS_REPLY_INTEGER)
        snprintf(c->last, sizeof(c->last), "%lld", rep->integer);
}

/* Run the loop until cond() or a deadline (fails the test). */
static void run_until(struct ctx *c, int (*cond)(struct ctx *), int ms)
{
    int64_t end = kn_mono_ms() + ms;
    while (!cond(c)) {
        assert_true(kn_mono_ms() < end);
        uv_run(&c->loop, UV_RUN_ONCE);
    }
}

static void on_guard(uv_timer_t *t)
{
}

static struct ctx *ctx_new(int port, int64_t timeout_ms)
{
    struct ctx *c = kn_xcalloc(1, sizeof(*c));
    struct kn_redis_opts o = {.host = "127.0.0.1",
                              .port = port,
                              .timeout_ms = timeout_ms,
                              .name = "test"};
    uv_loop_init(&c->loop);
    /* A ticking timer so UV_RUN_ONCE never blocks forever. */
    uv_timer_init(&c->loop, &c->guard);
    uv_timer_start(&c->guard, on_guard, 20, 20);
    c->r = kn_redis_new(&c->loop, &o, on_state, c);
    kn_redis_start(c->r);
    return c;
}

static void ctx_free(struct ctx *c)
{
    kn_redis_close(c->r);
    uv_close((uv_handle_t *)&c->guard, NULL);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&c->loop), 0); /* no handle leaked */
    free(c);
}

static int is_up(struct ctx *c)
{
    return kn_redis_up(c->r);
}

static int got_reply(struct ctx *c)
{
    return c->replies + c->nulls > 0;
}

static void test_refused_then_up(void **state)
{
    int held, port = reserve_port(&held), rc;
    struct ctx *c = ctx_new(port, 1000);
    pid_t pid;
    int64_t end = kn_mono_ms() + 400;
    /* Nothing listens (the port is bound here, so no other test's server
     * can take it meanwhile): it must notice, say why, and keep trying. */
    while (kn_mono_ms() < end)
        uv_run(&c->loop, UV_RUN_ONCE);
    assert_false(kn_redis_up(c->r));
    assert_non_null(strstr(kn_redis_last_error(c->r), "refused"));
    /* Refused at once, or (when it comes while the next attempt is
     * connecting: commands are buffered then) answered with no reply when
     * that attempt fails: never a reply.  (Asserting the first only failed
     * on a loaded machine, when the attempt was in flight.) */
    rc = kn_redis_cmd(c->r, on_reply, c, "PING");
    if (rc == 0)
        run_until(c, got_reply, 5000);
    else
        assert_int_equal(rc, KN_ECLOSED);
    assert_int_equal(c->replies, 0);
    c->nulls = 0;
    close(held);
    pid = start_redis(port);
    run_until(c, is_up, 10000);
    assert_int_equal(c->ups, 1);
    assert_int_equal(kn_redis_cmd(c->r, on_reply, c, "PING"), 0);
    run_until(c, got_reply, 2000);
    assert_string_equal(c->last, "PONG");
    ctx_free(c);
    stop_redis(pid);
}

static int reconnected(struct ctx *c)
{
    return c->ups >= 2;
}

static void test_timeout_reconnects(void **state)
{
    int port = free_port();
    pid_t pid = start_redis(port);
    struct ctx *c = ctx_new(port, 300);
    run_until(c, is_up, 10000);
    /* The server stalls 1 s: past the 300 ms deadline the command fails
     * with a NULL reply and the connection is made again. */
    assert_int_equal(kn_redis_cmd(c->r, on_reply, c, "DEBUG SLEEP 1"), 0);
    assert_int_equal(kn_redis_cmd(c->r, on_reply, c, "PING"), 0);
    run_until(c, reconnected, 10000);
    assert_int_equal(c->nulls, 2);
    assert_int_equal(c->downs, 1);
    assert_true(kn_redis_reconnects(c->r) >= 1);
    assert_non_null(strstr(kn_redis_last_error(c->r), "timed out"));
    ctx_free(c);
    stop_redis(pid);
}

static struct kn_redis_script script = {"t", "return ARGV[1] .. KEYS[1]", ""};

static void test_noscript_fallback(void **state)
{
    int port = free_port();
    pid_t pid = start_redis(port);
    struct ctx *c = ctx_new(port, 2000);
    const char *argv[] = {"k", "v"};
    run_until(c, is_up, 10000);
    kn_redis_script_init(&script);
    assert_int_equal(strlen(script.sha), 40);
    /* The server never saw the script: EVALSHA answers NOSCRIPT and the
     * glue resends it as EVAL, transparently. */
    assert_int_equal(
        kn_redis_eval(c->r, &script, on_reply, c, 1, 2, argv, NULL), 0);
    run_until(c, got_reply, 2000);
    assert_int_equal(c->errors, 0);
    assert_string_equal(c->last, "vk");
    ctx_free(c);
    stop_redis(pid);
}

static struct kn_redis_script digest = {
    "d",
    "return KEYS[1] .. string.len(ARGV[2]) .. ':' .. "
    "redis.sha1hex(ARGV[2]) .. ARGV[1]",
    ""};

/* The resend as EVAL is made from the EVALSHA as formatted: every byte of
 * the arguments after the SHA must arrive as given, NULs and CRLFs and
 * RESP-looking text in a 100,000-byte argument included; then the same
 * call goes as EVALSHA. */
static void test_noscript_resend_exact(void **state)
{
    int port = free_port();
    pid_t pid = start_redis(port);
    struct ctx *c = ctx_new(port, 5000);
    enum { BIG = 100000 };
    char *big = kn_xmalloc(BIG), want[128], hex[41];
    unsigned char md[20];
    unsigned int mdlen = 0;
    const char *argv[] = {"k", "<", big};
    size_t lens[] = {1, 1, BIG};
    for (size_t i = 0; i < BIG; i++)
        big[i] = "\r\n$3\r\n*2\0x"[i % 11];
    EVP_Digest(big, BIG, md, &mdlen, EVP_sha1(), NULL);
    kn_hex_encode(md, sizeof(md), hex);
    snprintf(want, sizeof(want), "k%d:%s<", BIG, hex);
    run_until(c, is_up, 10000);
    kn_redis_script_init(&digest);
    for (int round = 0; round < 2; round++) { /* EVAL, then EVALSHA */
        c->replies = c->nulls = 0;
        assert_int_equal(
            kn_redis_eval(c->r, &digest, on_reply, c, 1, 3, argv, lens), 0);
        run_until(c, got_reply, 5000);
        assert_int_equal(c->errors, 0);
        assert_string_equal(c->last, want);
    }
    free(big);
    ctx_free(c);
    stop_redis(pid);
}

static int went_down(struct ctx *c)
{
    return c->downs >= 1 && c->nulls >= 1;
}

static void test_server_dies(void **state)
{
    int port = free_port();
    pid_t pid = start_redis(port);
    struct ctx *c = ctx_new(port, 5000);
    const char *argv[] = {"BLPOP", "nothing", "0"};
    run_until(c, is_up, 10000);
    /* A blocked command is pending when the server dies. */
    assert_int_equal(kn_redis_argv(c->r, on_reply, c, 60000, 3, argv, NULL), 0);
    for (int i = 0; i < 5; i++)
        uv_run(&c->loop, UV_RUN_NOWAIT);
    stop_redis(pid);
    run_until(c, went_down, 5000);
    assert_int_equal(c->nulls, 1);
    assert_false(kn_redis_up(c->r));
    ctx_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused_then_up),
        cmocka_unit_test(test_timeout_reconnects),
        cmocka_unit_test(test_noscript_fallback),
        cmocka_unit_test(test_noscript_resend_exact),
        cmocka_unit_test(test_server_dies),
    };
    kn_log_min = getenv("KN_DEBUG") ? KN_LOG_DEBUG : KN_LOG_ERROR;
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
