/*
 * test_sentinel.c - queue/sentinel.c and its config: the host:port lists,
 * the password rule, the ROLE check, and the discovery against fake
 * sentinels (a thread answering on loopback): the first that answers
 * moves to the front, one that named a non-primary moves to the back, an
 * answer that is not an address is refused, unreachable sentinels give a
 * reason naming each.  No timing is asserted.  A real Redis with real
 * sentinels is tests/integration/test_sentinel.py's.
 *
 * The .c is included to see the order of the list.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/check.h"
#include "queue/sentinel.c"

/* ---- a fake sentinel ---------------------------------------------------- */

struct fake {
    int lfd, port;
    const char *answer; /* the raw RESP answer to SENTINEL ... */
    int asked;
    int auth_seen;
    pthread_t th;
};

/* Read one RESP array command; returns its first word in cmd, or -1. */
static int read_cmd(FILE *f, char *cmd, size_t len)
{
    char line[512];
    int n;
    if (fgets(line, sizeof(line), f) == NULL || line[0] != '*')
        return -1;
    n = atoi(line + 1);
    cmd[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (fgets(line, sizeof(line), f) == NULL)
            return -1;
        if (fgets(line, sizeof(line), f) == NULL)
            return -1;
        if (i == 0) {
            line[strcspn(line, "\r\n")] = '\0';
            snprintf(cmd, len, "%.60s", line);
        }
    }
    return 0;
}

static void *fake_run(void *arg)
{
    struct fake *fk = arg;
    for (;;) {
        int c = accept(fk->lfd, NULL, NULL);
        FILE *f;
        char cmd[64];
        if (c < 0)
            return NULL;
        f = fdopen(c, "r+");
        while (read_cmd(f, cmd, sizeof(cmd)) == 0) {
            if (strcasecmp(cmd, "AUTH") == 0) {
                fk->auth_seen++;
                fputs("+OK\r\n", f);
            } else if (strcasecmp(cmd, "SENTINEL") == 0) {
                fk->asked++;
                fputs(fk->answer, f);
            } else {
                fputs("-ERR unknown\r\n", f);
            }
            fflush(f);
        }
        fclose(f);
    }
}

static void fake_start(struct fake *fk, const char *answer)
{
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    memset(fk, 0, sizeof(*fk));
    fk->answer = answer;
    fk->lfd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fk->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fk->lfd, 8), 0);
    getsockname(fk->lfd, (struct sockaddr *)&a, &al);
    fk->port = ntohs(a.sin_port);
    pthread_create(&fk->th, NULL, fake_run, fk);
}

static void fake_stop(struct fake *fk)
{
    shutdown(fk->lfd, SHUT_RDWR);
    close(fk->lfd);
    pthread_join(fk->th, NULL);
}

/* A loopback port nobody listens on (bound, then closed). */
static int dead_port(void)
{
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    getsockname(fd, (struct sockaddr *)&a, &al);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static struct kn_config cfg_with(const char *sentinels)
{
    struct kn_config cfg;
    assert_int_equal(kn_config_load(&cfg, NULL, NULL), 0);
    free(cfg.redis_sentinels);
    cfg.redis_sentinels = kn_xstrdup(sentinels);
    cfg.redis_sentinel_password = kn_xstrdup("s3cret");
    return cfg;
}

/* ---- tests -------------------------------------------------------------- */

static void test_hostport(void **state)
{
    char h[64];
    int p = 0;
    assert_int_equal(kn_hostport_parse("127.0.0.1:26379", 15, h, sizeof(h), &p),
                     0);
    assert_string_equal(h, "127.0.0.1");
    assert_int_equal(p, 26379);
    assert_int_equal(kn_hostport_parse(" s1.example.jp:1 ", 17, h, sizeof(h), &p),
                     0);
    assert_string_equal(h, "s1.example.jp");
    assert_int_equal(kn_hostport_parse("[::1]:26379", 11, h, sizeof(h), &p), 0);
    assert_string_equal(h, "::1");
    static const char *const bad[] = {"host",    "host:",   "host:0",
                                      ":1",      "a b:1",   "h:65536",
                                      "h:1x",    "[::1]1",  "::1:26379",
                                      "h\n:1",   ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(kn_hostport_parse(bad[i], strlen(bad[i]), h,
                                           sizeof(h), &p),
                         KN_EINVAL);
}

static void test_check_list_and_name(void **state)
{
    char many[400] = "";
    assert_null(kn__config_check_sentinels("127.0.0.1:1,10.0.0.2:26379"));
    assert_non_null(kn__config_check_sentinels("127.0.0.1:1,"));
    assert_non_null(kn__config_check_sentinels("127.0.0.1"));
    for (int i = 0; i < 17; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "%sh:%d",
                 i ? "," : "", i + 1);
    assert_non_null(kn__config_check_sentinels(many));
    assert_null(kn__config_check_master_name("kairan-prod_1.a"));
    assert_non_null(kn__config_check_master_name("a b"));
    assert_non_null(kn__config_check_master_name(""));
}

static void test_password_rule(void **state)
{
    struct kn_config cfg = cfg_with("127.0.0.1:1");
    char why[300];
    struct kn_sentinel *s;
    assert_int_equal(kn_config_check(&cfg, NULL), 0);
    kn_free_secret(cfg.redis_sentinel_password);
    cfg.redis_sentinel_password = NULL;
    assert_int_equal(kn_config_check(&cfg, NULL), KN_ECONFIG);
    /* kairanctl does not run kn_config_check: the connection refuses. */
    s = kn_sentinel_new(&cfg);
    assert_null(kn_redis_connect_sync(&cfg, s, 100, why, sizeof(why)));
    assert_non_null(strstr(why, "sentinel_password_file"));
    kn_sentinel_free(s);
    cfg.redis_sentinel_allow_no_password = 1;
    assert_int_equal(kn_config_check(&cfg, NULL), 0);
    kn_config_free(&cfg);
}

static void test_role(void **state)
{
    redisReply m = {.type = REDIS_REPLY_STRING, .str = "master", .len = 6};
    redisReply sl = {.type = REDIS_REPLY_STRING, .str = "slave", .len = 5};
    redisReply *e1[] = {&m}, *e2[] = {&sl};
    redisReply a1 = {.type = REDIS_REPLY_ARRAY, .elements = 1, .element = e1};
    redisReply a2 = {.type = REDIS_REPLY_ARRAY, .elements = 1, .element = e2};
    assert_true(kn_sentinel_role_is_master(&a1));
    assert_false(kn_sentinel_role_is_master(&a2));
    assert_false(kn_sentinel_role_is_master(&m));
    assert_false(kn_sentinel_role_is_master(NULL));
}

static void test_discovery_order(void **state)
{
    struct fake good;
    char list[200], host[256], why[600];
    int port = 0, from = -1, dead = dead_port();
    struct kn_config cfg;
    struct kn_sentinel *s;

    fake_start(&good,
               "*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6390\r\n");
    snprintf(list, sizeof(list), "127.0.0.1:%d,127.0.0.1:%d", dead, good.port);
    cfg = cfg_with(list);
    s = kn_sentinel_new(&cfg);
    assert_int_equal(s->n, 2);
    assert_int_equal(s->order[0].port, dead);

    assert_int_equal(kn_sentinel_resolve(s, host, sizeof(host), &port, &from,
                                         why, sizeof(why)),
                     0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 6390);
    assert_int_equal(from, 1);
    assert_int_equal(good.auth_seen, 1); /* asked with the password */
    /* The first that answered is now in front. */
    assert_int_equal(s->order[0].port, good.port);
    assert_int_equal(s->order[1].port, dead);
    /* It named a non-primary: to the back. */
    kn_sentinel_distrust(s, from);
    assert_int_equal(s->order[0].port, dead);
    assert_int_equal(s->order[1].port, good.port);

    kn_sentinel_free(s);
    kn_config_free(&cfg);
    fake_stop(&good);
}

static void test_discovery_refusals(void **state)
{
    struct fake evil, unknown;
    char list[200], host[256], why[600];
    int port = 0, d1 = dead_port(), d2 = dead_port();
    struct kn_config cfg;
    struct kn_sentinel *s;

    /* Nobody answers: KN_EAGAIN, the reason names each. */
    snprintf(list, sizeof(list), "127.0.0.1:%d,127.0.0.1:%d", d1, d2);
    cfg = cfg_with(list);
    s = kn_sentinel_new(&cfg);
    assert_int_equal(kn_sentinel_resolve(s, host, sizeof(host), &port, NULL,
                                         why, sizeof(why)),
                     KN_EAGAIN);
    {
        char p1[32], p2[32];
        snprintf(p1, sizeof(p1), ":%d", d1);
        snprintf(p2, sizeof(p2), ":%d", d2);
        assert_non_null(strstr(why, p1));
        assert_non_null(strstr(why, p2));
    }
    /* The synchronous connection gives up after its time, with a reason. */
    assert_null(kn_redis_connect_sync(&cfg, s, 50, why, sizeof(why)));
    assert_true(why[0] != '\0');
    kn_sentinel_free(s);
    kn_config_free(&cfg);

    /* An answer that is not an address; one that does not know the name. */
    fake_start(&evil, "*2\r\n$12\r\nevil host;rm\r\n$4\r\n6379\r\n");
    fake_start(&unknown, "*-1\r\n");
    snprintf(list, sizeof(list), "127.0.0.1:%d,127.0.0.1:%d", unknown.port,
             evil.port);
    cfg = cfg_with(list);
    s = kn_sentinel_new(&cfg);
    assert_int_equal(kn_sentinel_resolve(s, host, sizeof(host), &port, NULL,
                                         why, sizeof(why)),
                     KN_EINVAL);
    assert_non_null(strstr(why, "does not know a primary named"));
    assert_non_null(strstr(why, "no usable address"));
    assert_null(strstr(why, "evil"));
    kn_sentinel_free(s);
    kn_config_free(&cfg);
    fake_stop(&evil);
    fake_stop(&unknown);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostport),
        cmocka_unit_test(test_check_list_and_name),
        cmocka_unit_test(test_password_rule),
        cmocka_unit_test(test_role),
        cmocka_unit_test(test_discovery_order),
        cmocka_unit_test(test_discovery_refusals),
    };
    unsetenv("KAIRAN_REDIS_SENTINELS");
    unsetenv("KAIRAN_REDIS_URL");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
