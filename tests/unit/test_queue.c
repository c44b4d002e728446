/*
 * test_queue.c - the queue's stream operations (queue/queue.c) against a
 * real redis-server on a free port: groups made on every stream (twice is
 * harmless), a read hands out an entry and a blocking read of an empty
 * stream ends, a claim takes an idle entry over, ack + delete lets an
 * entry leave (and its extra key with it), the dead-letter queue records
 * the entry and empties its stream, idle consumers are kept when recent,
 * and a reliable script call is kept while Redis is down and sent again.
 * Effects are checked with a plain synchronous hiredis connection.
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

#include "common/argv.h"
#include "tests/unit/redis_server.h"
#include "common/kn.h"
#include "common/log.h"
#include "queue/queue.h"
#include "queue/redis_uv.h"
#include "queue/scripts.h"

#define P "t:"

struct ctx {
    uv_loop_t loop;
    struct kn_redis *r;
    redisContext *sync;
    uv_timer_t guard;
    int port;
    pid_t pid;
    int ups, groups, replies, nulls;
    int type;           /* last reply's type */
    char id[64], f[64]; /* first entry's id and field "f" */
    long long entries;  /* entries in the last read or claim */
    char last[128];
};

static void on_state(struct kn_redis *r, int up, void *arg)
{
    struct ctx *c = arg;
    if (up)
        c->ups++;
}

static void on_guard(uv_timer_t *t)
{
}

static void run_until(struct ctx *c, int (*cond)(struct ctx *), int ms)
{
    int64_t end = kn_mono_ms() + ms;
    while (!cond(c)) {
        assert_true(kn_mono_ms() < end);
        uv_run(&c->loop, UV_RUN_ONCE);
    }
}

static int is_up(struct ctx *c)
{
    return kn_redis_up(c->r);
}

static int got_reply(struct ctx *c)
{
    return c->replies + c->nulls > 0;
}

static void reset(struct ctx *c)
{
    c->replies = c->nulls = 0;
    c->type = 0;
    c->entries = -1;
    c->id[0] = c->f[0] = c->last[0] = '\0';
}

static void keep_entries(struct ctx *c, const redisReply *entries)
{
    c->entries = (long long)entries->elements;
    if (entries->elements > 0) {
        const redisReply *en = entries->element[0], *v;
        snprintf(c->id, sizeof(c->id), "%s", en->element[0]->str);
        v = kn_queue_entry_field(en, "f");
        if (v != NULL && v->type == REDIS_REPLY_STRING)
            snprintf(c->f, sizeof(c->f), "%s", v->str);
    }
}

/* XREADGROUP: [[stream, [entries]]] or nil; XAUTOCLAIM: [next, [entries],
 * deleted]; anything else: its text. */
static void on_reply(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct ctx *c = arg;
    if (rep == NULL) {
        c->nulls++;
        return;
    }
    c->replies++;
    c->type = rep->type;
    if (rep->type == REDIS_REPLY_NIL)
        c->entries = 0;
    else if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
             rep->element[0]->type == REDIS_REPLY_ARRAY)
        keep_entries(c, rep->element[0]->element[1]);
    else if (rep->type == REDIS_REPLY_ARRAY && rep->elements >= 2 &&
             rep->element[0]->type == REDIS_REPLY_STRING)
        keep_entries(c, rep->element[1]);
    else if (rep->type == REDIS_REPLY_STRING ||
             rep->type == REDIS_REPLY_STATUS || rep->type == REDIS_REPLY_ERROR)
        snprintf(c->last, sizeof(c->last), "%s", rep->str);
    else if (rep->type == REDIS_REPLY_INTEGER)
        snprintf(c->last, sizeof(c->last), "%lld", rep->integer);
}

static void on_groups(void *arg)
{
    ((struct ctx *)arg)->groups++;
}

static int groups_made(struct ctx *c)
{
    return c->groups > 0;
}

static long long sync_int(struct ctx *c, const char *fmt, ...)
{
    va_list ap;
    redisReply *rep;
    long long v;
    va_start(ap, fmt);
    rep = redisvCommand(c->sync, fmt, ap);
    va_end(ap);
    assert_non_null(rep);
    if (rep->type == REDIS_REPLY_ARRAY)
        v = (long long)rep->elements;
    else
        v = rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
    freeReplyObject(rep);
    return v;
}

static struct ctx *ctx_new(void)
{
    struct ctx *c = kn_xcalloc(1, sizeof(*c));
    struct kn_redis_opts o;
    c->port = free_port();
    c->pid = start_redis(c->port);
    o = (struct kn_redis_opts){.host = "127.0.0.1",
                               .port = c->port,
                               .timeout_ms = 2000,
                               .name = "test"};
    uv_loop_init(&c->loop);
    uv_timer_init(&c->loop, &c->guard);
    uv_timer_start(&c->guard, on_guard, 20, 20);
    c->r = kn_redis_new(&c->loop, &o, on_state, c);
    kn_redis_start(c->r);
    run_until(c, is_up, 10000);
    c->sync = redisConnect("127.0.0.1", c->port);
    assert_non_null(c->sync);
    assert_int_equal(c->sync->err, 0);
    kn_queue_ensure_groups(c->r, P, on_groups, c);
    run_until(c, groups_made, 2000);
    return c;
}

static void ctx_free(struct ctx *c)
{
    redisFree(c->sync);
    kn_redis_close(c->r);
    uv_close((uv_handle_t *)&c->guard, NULL);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&c->loop), 0);
    stop_redis(c->pid);
    free(c);
}

static void test_groups(void **state)
{
    struct ctx *c = ctx_new();
    char key[64];
    for (int i = 0; i < KN_QUEUE_STREAMS; i++) {
        snprintf(key, sizeof(key), P "q:%s", kn_queue_stream_name(i));
        assert_int_equal(sync_int(c, "XINFO GROUPS %s", key), 1);
    }
    assert_int_equal(sync_int(c, "XINFO GROUPS " P "broadcasts"), 1);
    /* Again (after a reconnect): BUSYGROUP is not a failure. */
    kn_queue_ensure_groups(c->r, P, on_groups, c);
    while (c->groups < 2)
        uv_run(&c->loop, UV_RUN_ONCE);
    ctx_free(c);
}

static void test_read_claim_ack(void **state)
{
    struct ctx *c = ctx_new();
    const char *s[] = {P "broadcasts"};
    char id[64];
    int64_t t0;
    assert_int_equal(sync_int(c, "XADD " P "broadcasts * f v1"), -1);
    reset(c);
    assert_int_equal(kn_queue_read(c->r, "a", "10", -1, 1, s, on_reply, c), 0);
    run_until(c, got_reply, 2000);
    assert_int_equal(c->entries, 1);
    assert_string_equal(c->f, "v1");
    snprintf(id, sizeof(id), "%s", c->id);
    /* Nothing new: a blocking read ends empty after its BLOCK. */
    reset(c);
    t0 = kn_mono_ms();
    assert_int_equal(kn_queue_read(c->r, "a", "10", 100, 1, s, on_reply, c), 0);
    run_until(c, got_reply, 2000);
    assert_int_equal(c->nulls, 0);
    assert_int_equal(c->entries, 0);
    assert_true(kn_mono_ms() - t0 >= 90);
    /* Consumer b takes over a's entry once it is idle long enough. */
    reset(c);
    assert_int_equal(
        kn_queue_claim(c->r, P "broadcasts", "b", 60000, on_reply, c), 0);
    run_until(c, got_reply, 2000);
    assert_int_equal(c->entries, 0);
    reset(c);
    assert_int_equal(kn_queue_claim(c->r, P "broadcasts", "b", 0, on_reply, c),
                     0);
    run_until(c, got_reply, 2000);
    assert_int_equal(c->entries, 1);
    assert_string_equal(c->id, id);
    /* Done: the entry leaves, and the extra key with it. */
    assert_int_equal(sync_int(c, "SET " P "fail:x 1"), -1);
    reset(c);
    assert_int_equal(
        kn_queue_ack_del(c->r, P "broadcasts", id, P "fail:x", on_reply, c), 0);
    run_until(c, got_reply, 2000);
    assert_int_equal(c->type, REDIS_REPLY_ARRAY);
    assert_int_equal(sync_int(c, "XLEN " P "broadcasts"), 0);
    assert_int_equal(sync_int(c, "XPENDING " P "broadcasts kairand - + 10"), 0);
    assert_int_equal(sync_int(c, "EXISTS " P "fail:x"), 0);
    ctx_free(c);
}

static int dlq_filled(struct ctx *c)
{
    return sync_int(c, "XLEN " P "dlq") == 1;
}

static void test_dead_letter(void **state)
{
    struct ctx *c = ctx_new();
    const char *s[] = {P "q:email:urgent"};
    const char raw[] = "{\"b\":\"bc1\",\"tenant\":\"ume\"}";
    redisReply *rep;
    assert_int_equal(sync_int(c, "XADD " P "q:email:urgent * job x"), -1);
    reset(c);
    assert_int_equal(kn_queue_read(c->r, "a", "1", -1, 1, s, on_reply, c), 0);
    run_until(c, got_reply, 2000);
    assert_int_equal(c->entries, 1);
    kn_queue_dead_letter(c->r, P, s[0], c->id, raw, strlen(raw), "bad job");
    run_until(c, dlq_filled, 2000);
    assert_int_equal(sync_int(c, "XLEN %s", s[0]), 0);
    assert_int_equal(sync_int(c, "XPENDING %s kairand - + 10", s[0]), 0);
    rep = redisCommand(c->sync, "XRANGE " P "dlq - +");
    assert_non_null(rep);
    assert_int_equal(rep->elements, 1);
    {
        const redisReply *en = rep->element[0];
        assert_string_equal(kn_queue_entry_field(en, "stream")->str, s[0]);
        assert_string_equal(kn_queue_entry_field(en, "entry")->str, c->id);
        assert_string_equal(kn_queue_entry_field(en, "bc")->str, "bc1");
        assert_string_equal(kn_queue_entry_field(en, "tenant")->str, "ume");
        assert_string_equal(kn_queue_entry_field(en, "job")->str, raw);
        assert_string_equal(kn_queue_entry_field(en, "reason")->str, "bad job");
        assert_non_null(kn_queue_entry_field(en, "failed_ms"));
        assert_null(kn_queue_entry_field(en, "nothing"));
    }
    freeReplyObject(rep);
    ctx_free(c);
}

static void test_consumers_cleanup(void **state)
{
    struct ctx *c = ctx_new();
    /* A consumer seen a moment ago is kept. */
    assert_int_equal(
        sync_int(c, "XGROUP CREATECONSUMER " P "broadcasts kairand old"), 1);
    kn_queue_consumers_cleanup(c->r, P);
    reset(c);
    kn_redis_cmd(c->r, on_reply, c, "PING");
    run_until(c, got_reply, 2000);
    assert_int_equal(sync_int(c, "XINFO CONSUMERS " P "broadcasts kairand"), 1);
    ctx_free(c);
}

/* An argument that only its reliable call holds. */
struct owned {
    struct ctx *c;
};
static int dropped;

static struct owned *owned_new(struct ctx *c)
{
    struct owned *o = kn_xmalloc(sizeof(*o));
    o->c = c;
    return o;
}

static void owned_drop(void *arg)
{
    dropped++;
    free(arg);
}

static void on_reply_owned(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct owned *o = arg;
    struct ctx *c = o->c;
    free(o);
    on_reply(r, rep, c);
}

static void test_reliable(void **state)
{
    struct ctx *c = ctx_new();
    struct kn_queue_reliable q = {c->r, NULL, 0};
    struct kn_redis_script s = {"t", "return redis.call('INCR', KEYS[1])", ""};
    struct kn_argv a;
    kn_redis_script_init(&s);
    kn_argv_init(&a);
    kn_argv_add(&a, P "n");
    reset(c);
    kn_queue_eval_reliable(&q, &s, on_reply, c, NULL, 1, &a);
    assert_int_equal(a.n, 0); /* taken */
    run_until(c, got_reply, 2000);
    assert_string_equal(c->last, "1");
    /* Redis gone: the call is kept, its callback not run. */
    stop_redis(c->pid);
    while (kn_redis_up(c->r))
        uv_run(&c->loop, UV_RUN_ONCE);
    kn_argv_add(&a, P "n");
    reset(c);
    kn_queue_eval_reliable(&q, &s, on_reply, c, NULL, 1, &a);
    assert_int_equal(q.nkept, 1);
    assert_int_equal(c->replies + c->nulls, 0);
    /* Back (empty): sent again when flushed. */
    c->pid = start_redis(c->port);
    run_until(c, is_up, 10000);
    assert_int_equal(kn_queue_reliable_flush(&q), 1);
    assert_int_equal(q.nkept, 0);
    run_until(c, got_reply, 2000);
    assert_string_equal(c->last, "1");
    /* Kept calls are dropped on shutdown; an argument only the call holds
     * is freed by its drop function (valgrind: no leak), and never
     * answered. */
    kn_argv_add(&a, P "n");
    stop_redis(c->pid);
    while (kn_redis_up(c->r))
        uv_run(&c->loop, UV_RUN_ONCE);
    kn_queue_eval_reliable(&q, &s, on_reply, c, NULL, 1, &a);
    kn_argv_add(&a, P "n");
    kn_queue_eval_reliable(&q, &s, on_reply_owned, owned_new(c), owned_drop, 1,
                           &a);
    assert_int_equal(q.nkept, 2);
    reset(c);
    dropped = 0;
    kn_queue_reliable_drop(&q);
    assert_int_equal(dropped, 1);
    assert_int_equal(c->replies + c->nulls, 0);
    assert_int_equal(q.nkept, 0);
    assert_null(q.kept);
    c->pid = start_redis(c->port);
    run_until(c, is_up, 10000);
    redisFree(c->sync);
    c->sync = redisConnect("127.0.0.1", c->port);
    ctx_free(c);
}

static int got_three(struct ctx *c)
{
    return c->replies + c->nulls >= 3;
}

/* Calls kept while Redis is down go again in the order they were made:
 * the expander sends a page's commit before the last one's answer, and
 * the later one first would commit nothing. */
static void test_reliable_order(void **state)
{
    struct ctx *c = ctx_new();
    struct kn_queue_reliable q = {c->r, NULL, 0};
    struct kn_redis_script s = {
        "o", "return redis.call('RPUSH', KEYS[1], ARGV[1])", ""};
    struct kn_argv a;
    redisReply *rep;
    kn_redis_script_init(&s);
    kn_argv_init(&a);
    stop_redis(c->pid);
    while (kn_redis_up(c->r))
        uv_run(&c->loop, UV_RUN_ONCE);
    for (int i = 1; i <= 3; i++) {
        kn_argv_add(&a, P "order");
        kn_argv_addi(&a, i);
        kn_queue_eval_reliable(&q, &s, on_reply, c, NULL, 1, &a);
    }
    assert_int_equal(q.nkept, 3);
    c->pid = start_redis(c->port);
    run_until(c, is_up, 10000);
    reset(c);
    assert_int_equal(kn_queue_reliable_flush(&q), 3);
    run_until(c, got_three, 2000);
    assert_int_equal(c->nulls, 0);
    redisFree(c->sync);
    c->sync = redisConnect("127.0.0.1", c->port);
    rep = redisCommand(c->sync, "LRANGE " P "order 0 -1");
    assert_non_null(rep);
    assert_int_equal(rep->elements, 3);
    assert_string_equal(rep->element[0]->str, "1");
    assert_string_equal(rep->element[1]->str, "2");
    assert_string_equal(rep->element[2]->str, "3");
    freeReplyObject(rep);
    ctx_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_groups),
        cmocka_unit_test(test_read_claim_ack),
        cmocka_unit_test(test_dead_letter),
        cmocka_unit_test(test_consumers_cleanup),
        cmocka_unit_test(test_reliable),
        cmocka_unit_test(test_reliable_order),
    };
    kn_log_min = getenv("KN_DEBUG") ? KN_LOG_DEBUG : KN_LOG_ERROR;
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
