/*
 * ipscope.c - how far away an IP address is, for the one decision that
 * needs it: whether smtp.tls = none may carry mail (and, to loopback
 * only, a password) to a relay.  SECURITY-PROMISES.md row 2 allows
 * plaintext SMTP "for a local relay"; this file says which addresses
 * are one, from the address alone (the address connected to, never a
 * host name, which anyone controlling DNS could point anywhere).
 *
 * A local network is one that routers do not carry to the internet: the
 * RFC 1918 private blocks, IPv4 link-local (RFC 3927), IPv6 unique local
 * addresses (RFC 4193) and IPv6 link-local (RFC 4291).  Deliberately not:
 *  1. 100.64.0.0/10 (RFC 6598): the carrier's network between a
 *     subscriber and its carrier-grade NAT, which the school does not
 *     run (overlay networks that borrow it encrypt anyway, and can use
 *     TLS to the relay like everyone else);
 *  2. fec0::/10, site-local, deprecated by RFC 3879, which says to treat
 *     it as global unicast;
 *  3. IPv6 forms that embed an IPv4 address on its way to another
 *     network (NAT64 64:ff9b::/96 and 64:ff9b:1::/48, 6to4 2002::/16,
 *     Teredo) and the deprecated IPv4-compatible ::a.b.c.d: the packet
 *     goes through a translator or a tunnel, not the local network;
 *  4. documentation, benchmarking and reserved ranges, multicast,
 *     broadcast and the unspecified addresses: no relay is there.
 * Only an IPv4-mapped address (::ffff:a.b.c.d, what a dual-stack socket
 * reports for an IPv4 peer) is judged as the IPv4 address it carries.
 *
 * Each block is one row of a table.  No I/O, no name resolution.
 */
#include "ipscope.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

struct block4 {
    uint32_t net; /* host byte order */
    unsigned bits;
    enum kn_ip_scope scope;
};

static const struct block4 blocks4[] = {
    {0x7f000000u, 8, KN_IP_LOOPBACK},   /* 127.0.0.0/8, RFC 1122 */
    {0x0a000000u, 8, KN_IP_LOCAL_NET},  /* 10.0.0.0/8, RFC 1918 */
    {0xac100000u, 12, KN_IP_LOCAL_NET}, /* 172.16.0.0/12, RFC 1918 */
    {0xc0a80000u, 16, KN_IP_LOCAL_NET}, /* 192.168.0.0/16, RFC 1918 */
    {0xa9fe0000u, 16, KN_IP_LOCAL_NET}, /* 169.254.0.0/16, RFC 3927 */
};

struct block6 {
    uint8_t net[16];
    unsigned bits;
    enum kn_ip_scope scope;
};

static const struct block6 blocks6[] = {
    {{[15] = 1}, 128, KN_IP_LOOPBACK},   /* ::1, RFC 4291 */
    {{0xfc}, 7, KN_IP_LOCAL_NET},        /* fc00::/7, RFC 4193 */
    {{0xfe, 0x80}, 10, KN_IP_LOCAL_NET}, /* fe80::/10, RFC 4291 */
};

static enum kn_ip_scope scope4(uint32_t a)
{
    for (size_t i = 0; i < sizeof(blocks4) / sizeof(blocks4[0]); i++) {
        uint32_t mask = 0xffffffffu << (32 - blocks4[i].bits);
        if ((a & mask) == blocks4[i].net)
            return blocks4[i].scope;
    }
    return KN_IP_ELSEWHERE;
}

/* 1 if the first bits of a are those of net. */
static int prefix6(const uint8_t *a, const uint8_t *net, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(a, net, whole) != 0)
        return 0;
    if (rest == 0)
        return 1;
    return ((a[whole] ^ net[whole]) & (0xff << (8 - rest))) == 0;
}

enum kn_ip_scope kn_ip_scope(const struct sockaddr *sa)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0,    0,
                                       0, 0, 0, 0, 0xff, 0xff};
    const uint8_t *a;
    if (sa == NULL)
        return KN_IP_ELSEWHERE;
    if (sa->sa_family == AF_INET)
        return scope4(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
    if (sa->sa_family != AF_INET6)
        return KN_IP_ELSEWHERE;
    a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    if (memcmp(a, mapped, sizeof(mapped)) == 0)
        return scope4((uint32_t)a[12] << 24 | (uint32_t)a[13] << 16 |
                      (uint32_t)a[14] << 8 | a[15]);
    for (size_t i = 0; i < sizeof(blocks6) / sizeof(blocks6[0]); i++)
        if (prefix6(a, blocks6[i].net, blocks6[i].bits))
            return blocks6[i].scope;
    return KN_IP_ELSEWHERE;
}

int kn_sockaddr_loopback(const struct sockaddr *sa)
{
    return kn_ip_scope(sa) == KN_IP_LOOPBACK;
}

char *kn_ip_text(const struct sockaddr *sa, char *buf, size_t n)
{
    const void *a = NULL;
    if (n == 0)
        return buf;
    if (sa != NULL && sa->sa_family == AF_INET)
        a = &((const struct sockaddr_in *)sa)->sin_addr;
    else if (sa != NULL && sa->sa_family == AF_INET6)
        a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (a == NULL || inet_ntop(sa->sa_family, a, buf, (socklen_t)n) == NULL)
        snprintf(buf, n, "?");
    return buf;
}

int kn_sockaddr_same(const struct sockaddr_storage *a,
                     const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_addr.s_addr == y->sin_addr.s_addr &&
               x->sin_port == y->sin_port;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) ==
                   0 &&
               x->sin6_port == y->sin6_port;
    }
    return 0;
}
