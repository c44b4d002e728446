/*
 * redis_server.h - a private redis-server for a unit test: a free port, the
 * server started on it (no persistence, DEBUG allowed) and stopped.
 * Included by the unit tests that need a real Redis (test_redis_uv.c,
 * test_queue.c); static functions, one copy per test binary.
 */
#ifndef KN_TESTS_REDIS_SERVER_H
#define KN_TESTS_REDIS_SERVER_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* A free port, kept bound (not listening) in *held when held is given:
 * connections to it are refused and no other process can take it. */
static int reserve_port(int *held)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    getsockname(fd, (struct sockaddr *)&a, &len);
    port = ntohs(a.sin_port);
    if (held != NULL)
        *held = fd;
    else
        close(fd);
    return port;
}

static inline int free_port(void)
{
    return reserve_port(NULL);
}

static pid_t start_redis(int port)
{
    char p[16];
    pid_t pid;
    snprintf(p, sizeof(p), "%d", port);
    pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", 1);
        dup2(null, 1);
        execlp("redis-server", "redis-server", "--port", p, "--bind",
               "127.0.0.1", "--save", "", "--appendonly", "no",
               "--enable-debug-command", "yes", (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void stop_redis(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

#endif
