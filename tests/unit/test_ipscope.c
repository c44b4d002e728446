/*
 * test_ipscope.c - unit tests for common/ipscope.c: which addresses are
 * this host, a local network, or elsewhere (the only relays smtp.tls =
 * none may talk to, SECURITY-PROMISES.md row 2).  Every block's first
 * and last address and its neighbours on both sides, the ranges left out
 * on purpose (CGNAT, site-local, NAT64, 6to4, documentation), IPv4-mapped
 * IPv6 judged as IPv4 and no other embedding, then a sweep of every /16
 * of IPv4 and every first 16 bits of IPv6 against a reference written
 * another way.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>

#include "common/ipscope.h"

#define ELSEWHERE KN_IP_ELSEWHERE
#define LOCAL     KN_IP_LOCAL_NET
#define LOOPBACK  KN_IP_LOOPBACK

/* The scope of an address literal, as a connected socket reports it. */
static enum kn_ip_scope scope_of(const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (strchr(text, ':') != NULL) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(25);
        if (inet_pton(AF_INET6, text, &a6->sin6_addr) != 1)
            fail_msg("bad test address %s", text);
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        a4->sin_family = AF_INET;
        a4->sin_port = htons(25);
        if (inet_pton(AF_INET, text, &a4->sin_addr) != 1)
            fail_msg("bad test address %s", text);
    }
    return kn_ip_scope((struct sockaddr *)&ss);
}

struct want {
    const char *addr;
    enum kn_ip_scope scope;
};

static void check_all(const struct want *w, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        enum kn_ip_scope got = scope_of(w[i].addr);
        if (got != w[i].scope)
            fail_msg("%s: scope %d, want %d", w[i].addr, (int)got,
                     (int)w[i].scope);
    }
}

#define CHECK_ALL(w) check_all(w, sizeof(w) / sizeof(w[0]))

static void test_ipv4_blocks_and_edges(void **state)
{
    static const struct want w[] = {
        /* 127.0.0.0/8: this host */
        {"126.255.255.255", ELSEWHERE},
        {"127.0.0.0", LOOPBACK},
        {"127.0.0.1", LOOPBACK},
        {"127.1.2.3", LOOPBACK},
        {"127.255.255.255", LOOPBACK},
        {"128.0.0.0", ELSEWHERE},
        /* 10.0.0.0/8 */
        {"9.255.255.255", ELSEWHERE},
        {"10.0.0.0", LOCAL},
        {"10.0.0.25", LOCAL},
        {"10.255.255.255", LOCAL},
        {"11.0.0.0", ELSEWHERE},
        /* 172.16.0.0/12 */
        {"172.15.255.255", ELSEWHERE},
        {"172.16.0.0", LOCAL},
        {"172.20.1.1", LOCAL},
        {"172.31.255.255", LOCAL},
        {"172.32.0.0", ELSEWHERE},
        /* 192.168.0.0/16 */
        {"192.167.255.255", ELSEWHERE},
        {"192.168.0.0", LOCAL},
        {"192.168.1.25", LOCAL},
        {"192.168.255.255", LOCAL},
        {"192.169.0.0", ELSEWHERE},
        /* 169.254.0.0/16, link-local */
        {"169.253.255.255", ELSEWHERE},
        {"169.254.0.0", LOCAL},
        {"169.254.169.254", LOCAL},
        {"169.254.255.255", LOCAL},
        {"169.255.0.0", ELSEWHERE},
        /* left out on purpose: the carrier's shared space (RFC 6598) */
        {"100.63.255.255", ELSEWHERE},
        {"100.64.0.0", ELSEWHERE},
        {"100.100.100.100", ELSEWHERE},
        {"100.127.255.255", ELSEWHERE},
        /* documentation, benchmarking, special and reserved: no relay */
        {"192.0.0.1", ELSEWHERE},
        {"192.0.2.2", ELSEWHERE},
        {"198.18.0.1", ELSEWHERE},
        {"198.51.100.1", ELSEWHERE},
        {"203.0.113.1", ELSEWHERE},
        {"0.0.0.0", ELSEWHERE},
        {"0.1.2.3", ELSEWHERE},
        {"224.0.0.1", ELSEWHERE},
        {"240.0.0.1", ELSEWHERE},
        {"255.255.255.255", ELSEWHERE},
        /* the internet */
        {"8.8.8.8", ELSEWHERE},
        {"1.1.1.1", ELSEWHERE},
        {"133.242.0.1", ELSEWHERE},
        {"202.12.27.33", ELSEWHERE},
    };
    (void)state;
    CHECK_ALL(w);
}

static void test_ipv6_blocks_and_edges(void **state)
{
    static const struct want w[] = {
        /* ::1 only: its neighbours are not this host */
        {"::1", LOOPBACK},
        {"::", ELSEWHERE},
        {"::2", ELSEWHERE},
        {"::1:0", ELSEWHERE},
        {"1::1", ELSEWHERE},
        /* fc00::/7, unique local (RFC 4193) */
        {"fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ELSEWHERE},
        {"fc00::", LOCAL},
        {"fd00::2", LOCAL},
        {"fd12:3456:789a::25", LOCAL},
        {"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", LOCAL},
        {"fe00::", ELSEWHERE},
        /* fe80::/10, link-local */
        {"fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ELSEWHERE},
        {"fe80::", LOCAL},
        {"fe80::fc:ff:fe00:1", LOCAL},
        {"febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", LOCAL},
        /* fec0::/10, site-local: deprecated, global (RFC 3879) */
        {"fec0::", ELSEWHERE},
        {"fec0::1", ELSEWHERE},
        {"feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ELSEWHERE},
        /* multicast, documentation, the internet */
        {"ff02::1", ELSEWHERE},
        {"ff05::2", ELSEWHERE},
        {"2001:db8::25", ELSEWHERE},
        {"2400:cb00::1", ELSEWHERE},
        {"2001:4860:4860::8888", ELSEWHERE},
    };
    (void)state;
    CHECK_ALL(w);
}

/* An IPv4-mapped address is its IPv4 address; other embeddings are not. */
static void test_ipv4_in_ipv6(void **state)
{
    static const struct want w[] = {
        {"::ffff:127.0.0.1", LOOPBACK},
        {"::ffff:127.255.255.255", LOOPBACK},
        {"::ffff:10.0.0.25", LOCAL},
        {"::ffff:172.16.0.1", LOCAL},
        {"::ffff:172.31.255.255", LOCAL},
        {"::ffff:192.168.1.1", LOCAL},
        {"::ffff:169.254.1.1", LOCAL},
        {"::ffff:172.32.0.1", ELSEWHERE},
        {"::ffff:100.64.0.1", ELSEWHERE},
        {"::ffff:192.0.2.2", ELSEWHERE},
        {"::ffff:8.8.8.8", ELSEWHERE},
        {"::ffff:0.0.0.0", ELSEWHERE},
        /* one bit away from the mapped prefix: not mapped */
        {"::fffe:10.0.0.1", ELSEWHERE},
        {"::fffe:127.0.0.1", ELSEWHERE},
        {"::1:ffff:10.0.0.1", ELSEWHERE},
        {"0:0:0:0:1:ffff:7f00:1", ELSEWHERE},
        {"8000::ffff:10.0.0.1", ELSEWHERE},
        /* SIIT's IPv4-translated ::ffff:0:a.b.c.d */
        {"::ffff:0:10.0.0.1", ELSEWHERE},
        {"::ffff:0:127.0.0.1", ELSEWHERE},
        /* deprecated IPv4-compatible ::a.b.c.d */
        {"::10.0.0.1", ELSEWHERE},
        {"::127.0.0.1", ELSEWHERE},
        {"::192.168.1.1", ELSEWHERE},
        /* NAT64, well-known and local-use prefixes: via a translator */
        {"64:ff9b::10.0.0.1", ELSEWHERE},
        {"64:ff9b::127.0.0.1", ELSEWHERE},
        {"64:ff9b::192.168.0.1", ELSEWHERE},
        {"64:ff9b:1::a00:1", ELSEWHERE},
        /* 6to4 and Teredo: tunnels */
        {"2002:a00:1::1", ELSEWHERE},
        {"2002:7f00:1::1", ELSEWHERE},
        {"2002:c0a8:101::1", ELSEWHERE},
        {"2001:0:4136:e378:8000:63bf:3fff:fdd2", ELSEWHERE},
    };
    (void)state;
    CHECK_ALL(w);
}

static void test_other_families(void **state)
{
    struct sockaddr_un un;
    struct sockaddr_storage ss;
    (void)state;
    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    strcpy(un.sun_path, "/run/kairan/smtp.sock");
    assert_int_equal(kn_ip_scope((struct sockaddr *)&un), ELSEWHERE);
    assert_int_equal(kn_ip_scope(NULL), ELSEWHERE);
    /* what getpeername leaves when it fails before writing: AF_UNSPEC */
    memset(&ss, 0, sizeof(ss));
    assert_int_equal(kn_ip_scope((struct sockaddr *)&ss), ELSEWHERE);
    assert_int_equal(kn_sockaddr_loopback(NULL), 0);
    assert_int_equal(kn_sockaddr_loopback((struct sockaddr *)&ss), 0);
}

/* Written another way: octets and nibbles, not masks and tables. */
static enum kn_ip_scope ref4(unsigned a, unsigned b)
{
    if (a == 127)
        return LOOPBACK;
    if (a == 10 || (a == 172 && b >= 16 && b <= 31) || (a == 192 && b == 168) ||
        (a == 169 && b == 254))
        return LOCAL;
    return ELSEWHERE;
}

static void set4(struct sockaddr_in *a4, unsigned a, unsigned b, unsigned c,
                 unsigned d)
{
    char text[16];
    memset(a4, 0, sizeof(*a4));
    a4->sin_family = AF_INET;
    snprintf(text, sizeof(text), "%u.%u.%u.%u", a, b, c, d);
    assert_int_equal(inet_pton(AF_INET, text, &a4->sin_addr), 1);
}

/* Every /16 of IPv4, its first and last address, plain and mapped, and
 * kn_sockaddr_loopback agreeing. */
static void test_ipv4_sweep(void **state)
{
    (void)state;
    for (unsigned a = 0; a < 256; a++) {
        for (unsigned b = 0; b < 256; b++) {
            for (unsigned cd = 0; cd < 2; cd++) {
                struct sockaddr_in a4;
                struct sockaddr_in6 a6;
                unsigned v = cd ? 255 : 0;
                enum kn_ip_scope want = ref4(a, b);
                set4(&a4, a, b, v, v);
                memset(&a6, 0, sizeof(a6));
                a6.sin6_family = AF_INET6;
                a6.sin6_addr.s6_addr[10] = 0xff;
                a6.sin6_addr.s6_addr[11] = 0xff;
                memcpy(&a6.sin6_addr.s6_addr[12], &a4.sin_addr, 4);
                if (kn_ip_scope((struct sockaddr *)&a4) != want ||
                    kn_ip_scope((struct sockaddr *)&a6) != want ||
                    kn_sockaddr_loopback((struct sockaddr *)&a4) !=
                        (want == LOOPBACK))
                    fail_msg("%u.%u.%u.%u: want %d", a, b, v, v, (int)want);
            }
        }
    }
}

/* Every value of the first 16 bits of IPv6, the rest all zeros or all
 * ones: ULA and link-local by their first byte and bits, nothing else
 * local (::1 and ::ffff:0:0/96 start with 16 zero bits: above). */
static void test_ipv6_sweep(void **state)
{
    (void)state;
    for (unsigned hi = 1; hi < 65536; hi++) {
        unsigned b0 = hi >> 8, b1 = hi & 0xff;
        enum kn_ip_scope want = ELSEWHERE;
        if (b0 == 0xfc || b0 == 0xfd || (b0 == 0xfe && (b1 & 0xc0) == 0x80))
            want = LOCAL;
        for (unsigned fill = 0; fill < 2; fill++) {
            struct sockaddr_in6 a6;
            memset(&a6, 0, sizeof(a6));
            a6.sin6_family = AF_INET6;
            memset(a6.sin6_addr.s6_addr, fill ? 0xff : 0, 16);
            a6.sin6_addr.s6_addr[0] = (uint8_t)b0;
            a6.sin6_addr.s6_addr[1] = (uint8_t)b1;
            if (kn_ip_scope((struct sockaddr *)&a6) != want)
                fail_msg("%04x:%s: want %d", hi, fill ? "ffff:...:ffff" : ":",
                         (int)want);
        }
    }
}

static void test_text(void **state)
{
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    struct sockaddr_un un;
    char buf[64], small[4];
    (void)state;
    set4(&a4, 192, 0, 2, 2);
    assert_string_equal(kn_ip_text((struct sockaddr *)&a4, buf, sizeof(buf)),
                        "192.0.2.2");
    memset(&a6, 0, sizeof(a6));
    a6.sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, "fd00::2", &a6.sin6_addr), 1);
    assert_string_equal(kn_ip_text((struct sockaddr *)&a6, buf, sizeof(buf)),
                        "fd00::2");
    assert_int_equal(inet_pton(AF_INET6, "::ffff:192.0.2.2", &a6.sin6_addr), 1);
    assert_string_equal(kn_ip_text((struct sockaddr *)&a6, buf, sizeof(buf)),
                        "::ffff:192.0.2.2");
    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    assert_string_equal(kn_ip_text((struct sockaddr *)&un, buf, sizeof(buf)),
                        "?");
    assert_string_equal(kn_ip_text(NULL, buf, sizeof(buf)), "?");
    /* too small: "?", never cut or overrun */
    assert_string_equal(
        kn_ip_text((struct sockaddr *)&a4, small, sizeof(small)), "?");
    assert_string_equal(kn_ip_text((struct sockaddr *)&a4, small, 1), "");
}

/* kn_sockaddr_same: address and port, v4 and v6; another family never. */
static void test_same(void **state)
{
    struct sockaddr_storage a, b;
    struct sockaddr_in *a4 = (void *)&a, *b4 = (void *)&b;
    struct sockaddr_in6 *a6 = (void *)&a, *b6 = (void *)&b;
    (void)state;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    a4->sin_family = b4->sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.2", &a4->sin_addr);
    inet_pton(AF_INET, "127.0.0.2", &b4->sin_addr);
    a4->sin_port = b4->sin_port = htons(25);
    assert_true(kn_sockaddr_same(&a, &b));
    b4->sin_port = htons(587);
    assert_false(kn_sockaddr_same(&a, &b));
    b4->sin_port = htons(25);
    inet_pton(AF_INET, "127.0.0.1", &b4->sin_addr);
    assert_false(kn_sockaddr_same(&a, &b));
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    a6->sin6_family = b6->sin6_family = AF_INET6;
    inet_pton(AF_INET6, "fd00::2", &a6->sin6_addr);
    inet_pton(AF_INET6, "fd00::2", &b6->sin6_addr);
    a6->sin6_port = b6->sin6_port = htons(25);
    assert_true(kn_sockaddr_same(&a, &b));
    inet_pton(AF_INET6, "fd00::3", &b6->sin6_addr);
    assert_false(kn_sockaddr_same(&a, &b));
    /* ::ffff:127.0.0.2 is not 127.0.0.2 here: two families */
    memset(&b, 0, sizeof(b));
    b4->sin_family = AF_INET;
    b4->sin_port = htons(25);
    inet_pton(AF_INET, "127.0.0.2", &b4->sin_addr);
    inet_pton(AF_INET6, "::ffff:127.0.0.2", &a6->sin6_addr);
    assert_false(kn_sockaddr_same(&a, &b));
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    a.ss_family = b.ss_family = AF_UNIX;
    assert_false(kn_sockaddr_same(&a, &b));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv4_blocks_and_edges),
        cmocka_unit_test(test_same),
        cmocka_unit_test(test_ipv6_blocks_and_edges),
        cmocka_unit_test(test_ipv4_in_ipv6),
        cmocka_unit_test(test_other_families),
        cmocka_unit_test(test_ipv4_sweep),
        cmocka_unit_test(test_ipv6_sweep),
        cmocka_unit_test(test_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
