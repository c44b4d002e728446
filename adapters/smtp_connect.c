/*
 * smtp_connect.c - a new connection to the school's relay (smtp.c has the
 * rest of the adapter): smtp.url's name resolved for each connection, its
 * addresses tried in turn (up to MAX_ADDRS, RFC 5321 5.1; the one that
 * last got through first), and, with smtp.tls = none, the plain-text
 * refusal judged by the address connected to.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/smtp_int.h"
#include "common/ipscope.h"
#include "common/kn.h"
#include "common/log.h"

/* Why a connection to a relay that is not local ended (the detail). */
#define PLAIN_REMOTE_REFUSED                                                   \
    "configuration: smtp.tls = none sends mail in clear, so only to a relay "  \
    "on this host or a local network (10/8, 172.16/12, 192.168/16, fc00::/7, " \
    "link-local); this one is elsewhere: set smtp.tls = starttls or implicit"

/*
 * With smtp.tls = none (SECURITY-PROMISES.md row 2: plaintext SMTP only
 * for a local relay), whether this connection may go on, judged by the
 * address connected to, whatever name smtp.url gives (common/ipscope.c).
 * Returns NULL if it may, else why not (a fixed string):
 *  1. with TLS: it may;
 *  2. a loopback address: it may, and the session is told the relay is
 *     on this host (AUTH may go in clear);
 *  3. a local network address: it may without smtp.username; with one,
 *     KN_SMTP_PLAIN_AUTH_REFUSED, since the password goes in clear to
 *     this host only;
 *  4. any other address, or the peer's unknown: PLAIN_REMOTE_REFUSED,
 *     with or without a password (children's names and notices would
 *     cross the internet in clear).
 * On a refusal nothing has been sent: the caller ends the connection and
 * the message tempfails, so that the breaker opens and mail fails over
 * to SendGrid, as when the relay is down.  The fault is logged as an
 * error once per start and kind, with the relay's name and the address
 * connected to (never a recipient's, never the password).
 */
static const char *plain_refusal(struct conn *c)
{
    struct smtp *s = c->s;
    struct sockaddr_storage peer;
    int len = sizeof(peer);
    enum kn_ip_scope scope = KN_IP_ELSEWHERE;
    char addr[INET6_ADDRSTRLEN];
    if (s->tls != KN_TLS_NONE)
        return NULL;
    memset(&peer, 0, sizeof(peer));
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&peer, &len) == 0)
        scope = kn_ip_scope((struct sockaddr *)&peer);
    if (scope == KN_IP_LOOPBACK) {
        kn_smtp_set_local(c->sess);
        return NULL;
    }
    if (scope == KN_IP_LOCAL_NET && s->username == NULL)
        return NULL;
    kn_ip_text((struct sockaddr *)&peer, addr, sizeof(addr));
    if (scope == KN_IP_LOCAL_NET) {
        if (!s->plain_auth_logged) {
            s->plain_auth_logged = 1;
            kn_log(KN_LOG_ERROR, "smtp",
                   "smtp.tls = none with smtp.username, and the relay is not "
                   "on this host: the password is never sent to it in clear; "
                   "e-mail through this address fails (the next address of "
                   "the relay's name is tried, if it has one) until "
                   "smtp.tls is starttls or implicit (the breaker fails "
                   "over to SendGrid if set up)",
                   "host", s->host, "address", addr, NULL);
        }
        return KN_SMTP_PLAIN_AUTH_REFUSED;
    }
    if (!s->plain_remote_logged) {
        s->plain_remote_logged = 1;
        kn_log(KN_LOG_ERROR, "smtp",
               "smtp.tls = none, and the relay is not on this host or a "
               "local network (loopback, 10/8, 172.16/12, 192.168/16, "
               "169.254/16, fc00::/7, fe80::/10): mail is never sent to it "
               "in clear; e-mail through this address fails (the next "
               "address of the relay's name is tried, if it has one) until "
               "smtp.tls is starttls or implicit, or smtp.url names a relay "
               "on the local network (the breaker fails over to SendGrid if "
               "set up)",
               "host", s->host, "address", addr, NULL);
    }
    return PLAIN_REMOTE_REFUSED;
}

static void on_connect(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    if (!c->dead) {
        const char *refused = status < 0 ? NULL : plain_refusal(c);
        if (status < 0) {
            char why[160];
            snprintf(why, sizeof(why), "cannot connect to the relay: %s",
                     uv_strerror(status));
            kn__smtp_conn_fail(c, 0, why);
        } else if (refused != NULL) {
            kn__smtp_conn_fail(c, 0, refused);
        } else {
            c->connected = 1;
            uv_tcp_nodelay(&c->tcp, 1);
            uv_read_start((uv_stream_t *)&c->tcp, kn__smtp_on_alloc,
                          kn__smtp_on_read);
            if (c->s->tls == KN_TLS_IMPLICIT)
                kn__smtp_tls_start(c);
            else
                kn__smtp_conn_timer(c);
        }
    }
    kn__smtp_conn_unref(c);
}

/* Connect to c->addrs[c->ai]. */
static void connect_to(struct conn *c)
{
    int r;
    c->creq.data = c;
    r = uv_tcp_connect(&c->creq, &c->tcp,
                       (const struct sockaddr *)&c->addrs[c->ai], on_connect);
    if (r < 0) {
        char why[160];
        snprintf(why, sizeof(why), "cannot connect to the relay: %s",
                 uv_strerror(r));
        kn__smtp_conn_fail(c, 0, why);
        return;
    }
    c->refs++;
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct conn *c = req->data;
    if (!c->dead) {
        if (status < 0 || res == NULL) {
            char why[200];
            snprintf(why, sizeof(why), "cannot resolve the relay's name: %s",
                     uv_strerror(status));
            kn__smtp_conn_fail(c, 0, why);
        } else {
            /* The name's TCP addresses in the resolver's order (RFC 6724),
             * each once, the one that last worked first. */
            for (struct addrinfo *ai = res; ai != NULL && c->naddrs < MAX_ADDRS;
                 ai = ai->ai_next) {
                struct sockaddr_storage a;
                int dup = 0;
                if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
                    ai->ai_addrlen > sizeof(a))
                    continue;
                memset(&a, 0, sizeof(a));
                memcpy(&a, ai->ai_addr, ai->ai_addrlen);
                for (int i = 0; i < c->naddrs; i++)
                    dup |= kn_sockaddr_same(&c->addrs[i], &a);
                if (!dup)
                    c->addrs[c->naddrs++] = a;
            }
            for (int i = 1; c->s->have_good && i < c->naddrs; i++) {
                if (kn_sockaddr_same(&c->addrs[i], &c->s->good)) {
                    struct sockaddr_storage t = c->addrs[i];
                    memmove(&c->addrs[1], &c->addrs[0],
                            (size_t)i * sizeof(c->addrs[0]));
                    c->addrs[0] = t;
                    break;
                }
            }
            if (c->naddrs == 0)
                kn__smtp_conn_fail(
                    c, 0,
                    "cannot resolve the relay's name: no IPv4 or "
                    "IPv6 address");
            else
                connect_to(c);
        }
    }
    uv_freeaddrinfo(res);
    kn__smtp_conn_unref(c);
}

/* How an address failed, in a word or two, for the reason that lists
 * each address of the relay's name. */
static const char *failed_how(int code, const char *why)
{
    if (code == 421)
        return "421";
    if (strstr(why, "timeout") != NULL || strstr(why, "timed out") != NULL)
        return "timed out";
    if (strstr(why, "refused") != NULL)
        return "refused";
    if (strstr(why, "reset") != NULL)
        return "reset";
    if (strstr(why, "closed") != NULL)
        return "closed";
    if (strstr(why, "TLS") != NULL || strstr(why, "certificate") != NULL)
        return "TLS failed";
    return "failed";
}

void kn__smtp_note_tried(struct conn *c, int code, const char *why)
{
    char addr[INET6_ADDRSTRLEN];
    size_t n = strlen(c->tried);
    kn_ip_text((const struct sockaddr *)&c->addrs[c->ai], addr, sizeof(addr));
    snprintf(c->tried + n, sizeof(c->tried) - n, "%s%s %s", n > 0 ? ", " : "",
             addr, failed_how(code, why));
}

/*
 * A new connection, opened for message m: to the relay's name (resolved
 * now), or, if from is not NULL (a connection that failed before it was
 * connected), to the next of from's addresses.
 */
void kn__smtp_conn_new(struct smtp *s, struct smtp_send *m,
                       const struct conn *from)
{
    struct conn *c = kn_xcalloc(1, sizeof(*c));
    struct sockaddr_in6 a6;
    struct sockaddr_in a4;
    c->s = s;
    c->m = m;
    s->refs++;
    c->refs = 2; /* tcp and timer */
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->sess = kn_smtp_session_new(&s->sconf, &kn__smtp_session_cbs, c);
    c->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    kn__smtp_conn_timer(c);
    if (from != NULL) {
        memcpy(c->addrs, from->addrs, sizeof(c->addrs));
        memcpy(c->tried, from->tried, sizeof(c->tried));
        c->naddrs = from->naddrs;
        c->ai = from->ai + 1;
        connect_to(c);
    } else if (uv_ip4_addr(s->host, s->port, &a4) == 0) {
        memcpy(&c->addrs[0], &a4, sizeof(a4));
        c->naddrs = 1;
        connect_to(c);
    } else if (uv_ip6_addr(s->host, s->port, &a6) == 0) {
        memcpy(&c->addrs[0], &a6, sizeof(a6));
        c->naddrs = 1;
        connect_to(c);
    } else {
        struct addrinfo hints;
        char port[16];
        int r;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        snprintf(port, sizeof(port), "%d", s->port);
        c->gai.data = c;
        r = uv_getaddrinfo(s->loop, &c->gai, on_resolved, s->host, port,
                           &hints);
        if (r < 0) {
            char why[160];
            snprintf(why, sizeof(why), "cannot resolve the relay's name: %s",
                     uv_strerror(r));
            kn__smtp_conn_fail(c, 0, why);
            return;
        }
        c->refs++;
    }
}
