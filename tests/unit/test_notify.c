/*
 * test_notify.c - kairand's sd_notify messages arrive at the socket systemd
 * would listen on: the test binds a unix datagram socket of its own, points
 * NOTIFY_SOCKET at it and reads what dispatcher/notify.c sends: READY=1,
 * STOPPING=1, STATUS= on one line, and WATCHDOG=1 from the loop at half of
 * WATCHDOG_USEC.  Without NOTIFY_SOCKET, or with WATCHDOG_PID naming
 * another process, nothing is sent and no handle is left open.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "common/kn.h"
#include "common/log.h"
#include "dispatcher/notify.h"

struct sock {
    char dir[64];
    char path[96];
    int fd;
};

/* A private unix datagram socket; NOTIFY_SOCKET points at it. */
static void sock_open(struct sock *s)
{
    struct sockaddr_un a;
    snprintf(s->dir, sizeof(s->dir), "/tmp/kn-notify-XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    snprintf(s->path, sizeof(s->path), "%s/notify", s->dir);
    s->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    assert_true(s->fd >= 0);
    memset(&a, 0, sizeof(a));
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", s->path);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(setenv("NOTIFY_SOCKET", s->path, 1), 0);
}

static void sock_close(struct sock *s)
{
    close(s->fd);
    unlink(s->path);
    rmdir(s->dir);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
}

/* Next datagram as a string, or "" when none is waiting. */
static const char *sock_read(struct sock *s, char *buf, size_t len)
{
    ssize_t n = recv(s->fd, buf, len - 1, MSG_DONTWAIT);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static int count_messages(struct sock *s, const char *want)
{
    char buf[512];
    int n = 0;
    for (;;) {
        const char *m = sock_read(s, buf, sizeof(buf));
        if (m[0] == '\0')
            return n;
        if (strcmp(m, want) == 0)
            n++;
    }
}

static void test_ready_stopping_status(void **state)
{
    struct sock s;
    char buf[512];
    sock_open(&s);

    kn__notify_ready();
    assert_string_equal(sock_read(&s, buf, sizeof(buf)),
                        "READY=1\nSTATUS=ready");
    kn__notify_status("Redis unreachable\nreconnecting");
    /* One assignment only: the newline must not start a second one. */
    assert_string_equal(sock_read(&s, buf, sizeof(buf)),
                        "STATUS=Redis unreachable reconnecting");
    kn__notify_stopping();
    assert_string_equal(sock_read(&s, buf, sizeof(buf)),
                        "STOPPING=1\nSTATUS=draining");
    assert_string_equal(sock_read(&s, buf, sizeof(buf)), "");
    sock_close(&s);
}

static void test_status_is_cut(void **state)
{
    struct sock s;
    char buf[512], longtext[400];
    sock_open(&s);
    memset(longtext, 'x', sizeof(longtext) - 1);
    longtext[sizeof(longtext) - 1] = '\0';
    kn__notify_status(longtext);
    sock_read(&s, buf, sizeof(buf));
    assert_int_equal(strncmp(buf, "STATUS=xxx", 10), 0);
    assert_int_equal(strlen(buf), 7 + 200);

    /* Japanese (3 bytes a character) is cut between characters. */
    longtext[0] = '\0';
    for (int i = 0; i < 70; i++)
        strcat(longtext, "\xe5\x8f\xb0"); /* 台 */
    kn__notify_status(longtext);
    sock_read(&s, buf, sizeof(buf));
    assert_int_equal(strlen(buf), 7 + 198);
    assert_int_equal(strncmp(buf + 7 + 195, "\xe5\x8f\xb0", 3), 0);
    sock_close(&s);
}

struct run {
    uv_timer_t stop;
    int fired;
};

static void on_stop(uv_timer_t *t)
{
    struct run *r = kn_container_of(t, struct run, stop);
    r->fired = 1;
    kn__notify_watchdog_stop();
    uv_close((uv_handle_t *)t, NULL);
}

/* Run loop for ms, then stop the watchdog and let every close finish. */
static void run_for(uv_loop_t *loop, struct run *r, uint64_t ms)
{
    uv_timer_init(loop, &r->stop);
    uv_timer_start(&r->stop, on_stop, ms, 0);
    uv_run(loop, UV_RUN_DEFAULT);
}

/* Poll the socket every 5 ms until want pings came (a condition, not a
 * fixed time: valgrind on a busy machine slows the loop at will). */
struct pings {
    uv_timer_t poll;
    struct sock *s;
    int n, want;
};

static void on_poll(uv_timer_t *t)
{
    struct pings *p = kn_container_of(t, struct pings, poll);
    p->n += count_messages(p->s, "WATCHDOG=1");
    if (p->n >= p->want) {
        kn__notify_watchdog_stop();
        uv_close((uv_handle_t *)t, NULL);
    }
}

static void test_watchdog_pings(void **state)
{
    struct sock s;
    struct pings p = {.s = &s, .n = 0, .want = 5};
    uv_loop_t loop;
    char pid[24];
    int64_t t0, ms;

    sock_open(&s);
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    setenv("WATCHDOG_USEC", "100000", 1); /* 100 ms: a ping every 50 ms */
    setenv("WATCHDOG_PID", pid, 1);
    assert_int_equal(uv_loop_init(&loop), 0);
    t0 = kn_mono_ms();
    kn__notify_watchdog_start(&loop);
    kn__notify_watchdog_start(&loop); /* twice: still one timer */
    uv_timer_init(&loop, &p.poll);
    uv_timer_start(&p.poll, on_poll, 5, 5);
    uv_run(&loop, UV_RUN_DEFAULT);
    ms = kn_mono_ms() - t0;
    /* One at once, then one every 50 ms: the fifth after 200 ms at the
     * earliest.  A second timer would bring it at 100 ms.  (A slow
     * machine only makes it later.) */
    assert_true(p.n >= 5);
    assert_true(ms >= 190);
    /* Stopped: no handle left, nothing more arrives. */
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(count_messages(&s, "WATCHDOG=1"), 0);
    kn__notify_watchdog_stop(); /* twice: harmless */
    sock_close(&s);
}

static void test_watchdog_off(void **state)
{
    struct sock s;
    struct run r = {.fired = 0};
    uv_loop_t loop;

    /* WATCHDOG_PID of another process: the variables were inherited. */
    sock_open(&s);
    setenv("WATCHDOG_USEC", "100000", 1);
    setenv("WATCHDOG_PID", "1", 1);
    assert_int_equal(uv_loop_init(&loop), 0);
    kn__notify_watchdog_start(&loop);
    run_for(&loop, &r, 120);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(count_messages(&s, "WATCHDOG=1"), 0);
    sock_close(&s);

    /* No WatchdogSec= at all. */
    sock_open(&s);
    assert_int_equal(uv_loop_init(&loop), 0);
    kn__notify_watchdog_start(&loop);
    r.fired = 0;
    run_for(&loop, &r, 60);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(count_messages(&s, "WATCHDOG=1"), 0);
    sock_close(&s);
}

static void test_no_notify_socket(void **state)
{
    uv_loop_t loop;
    unsetenv("NOTIFY_SOCKET");
    setenv("WATCHDOG_USEC", "100000", 1);
    /* Not under systemd: every call is a silent no-op. */
    kn__notify_ready();
    kn__notify_status("x");
    kn__notify_stopping();
    assert_int_equal(uv_loop_init(&loop), 0);
    kn__notify_watchdog_start(&loop);
    kn__notify_watchdog_stop();
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    unsetenv("WATCHDOG_USEC");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready_stopping_status),
        cmocka_unit_test(test_status_is_cut),
        cmocka_unit_test(test_watchdog_pings),
        cmocka_unit_test(test_watchdog_off),
        cmocka_unit_test(test_no_notify_socket),
    };
    kn_log_min = KN_LOG_ERROR;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
