/*
 * ipscope.h - how far away an IP address is: this host, a local network,
 * or elsewhere.  What "a local relay" means for plaintext SMTP
 * (smtp.tls = none, SECURITY-PROMISES.md row 2).  Pure functions: no I/O,
 * no name resolution.
 */
#ifndef KN_COMMON_IPSCOPE_H
#define KN_COMMON_IPSCOPE_H

#include <stddef.h>

struct sockaddr;

/* Ordered: a larger value is nearer. */
enum kn_ip_scope {
    KN_IP_ELSEWHERE = 0, /* anything else: the internet, a carrier's
                          * shared space, documentation and reserved
                          * ranges, multicast, the unspecified address */
    KN_IP_LOCAL_NET,     /* a private or link-local network: 10/8,
                          * 172.16/12, 192.168/16, 169.254/16, fc00::/7,
                          * fe80::/10 */
    KN_IP_LOOPBACK,      /* this host: 127/8, ::1 */
};

/*
 * The scope of sa (AF_INET or AF_INET6; any other family, or NULL, is
 * KN_IP_ELSEWHERE).  An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is
 * judged as the IPv4 address it carries; no other IPv6 form that embeds
 * IPv4 (NAT64, 6to4, the deprecated IPv4-compatible ::a.b.c.d) counts as
 * local, nor does the deprecated site-local fec0::/10.
 */
enum kn_ip_scope kn_ip_scope(const struct sockaddr *sa);

/* 1 if sa is loopback (kn_ip_scope() == KN_IP_LOOPBACK), else 0. */
int kn_sockaddr_loopback(const struct sockaddr *sa);

/*
 * sa's address as text ("192.0.2.1", "fd00::1"; an IPv4-mapped one as
 * written, "::ffff:192.0.2.1") into buf of n bytes (46 is enough), always
 * terminated; "?" if sa is not AF_INET or AF_INET6.  Returns buf.
 */
char *kn_ip_text(const struct sockaddr *sa, char *buf, size_t n);

/* 1 if a and b are the same AF_INET or AF_INET6 address and port (flow
 * and scope ids aside), else 0 (another family included). */
struct sockaddr_storage;
int kn_sockaddr_same(const struct sockaddr_storage *a,
                     const struct sockaddr_storage *b);

#endif
