/*
 * cross.c - the checks of a configuration that need more than one key
 * (kn_config_check), and the security promises it must keep
 * (kn_config_promises, SECURITY-PROMISES.md): what kairand --check and the
 * start say before anything runs.  Loading one key at a time is config.c.
 */
#include "config/config.h"

#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/ipscope.h"
#include "common/kn.h"
#include "config/check.h"

/*
 * Checks that need more than one key.  Each problem is one line on err,
 * prefixed with the file name when there is one.
 */
__attribute__((format(printf, 4, 5))) static void
check_problem(const struct kn_config *cfg, FILE *err, int *count,
              const char *fmt, ...)
{
    va_list ap;
    (*count)++;
    if (err == NULL)
        return;
    if (cfg->path != NULL)
        fprintf(err, "%s: ", cfg->path);
    va_start(ap, fmt);
    vfprintf(err, fmt, ap);
    va_end(ap);
    fputc('\n', err);
}

/*
 * The farthest scope (common/ipscope.h) of the addresses host resolves
 * to: KN_IP_LOOPBACK for a relay "on this host", KN_IP_LOCAL_NET for one
 * on a local network.  A name that does not resolve is KN_IP_ELSEWHERE,
 * with *resolved 0.  Blocking (getaddrinfo): --check and the start only,
 * before the loop runs.
 */
static enum kn_ip_scope host_scope(const char *host, int *resolved)
{
    struct addrinfo hints, *res = NULL;
    enum kn_ip_scope scope = KN_IP_LOOPBACK;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    *resolved = 0;
    if (host == NULL || getaddrinfo(host, NULL, &hints, &res) != 0)
        return KN_IP_ELSEWHERE;
    *resolved = 1;
    for (const struct addrinfo *a = res; a != NULL; a = a->ai_next) {
        enum kn_ip_scope one = kn_ip_scope(a->ai_addr);
        if (one < scope)
            scope = one;
    }
    freeaddrinfo(res);
    return scope;
}

/* One more broken promise: counted, and its sentence added to why. */
__attribute__((format(printf, 4, 5))) static void
promise_broken(int *count, char *why, size_t n, const char *fmt, ...)
{
    size_t used = strnlen(why, n);
    va_list ap;
    (*count)++;
    if (used > 0 && used + 2 < n) {
        memcpy(why + used, "; ", 3);
        used += 2;
    }
    if (used + 1 >= n)
        return;
    va_start(ap, fmt);
    vsnprintf(why + used, n - used, fmt, ap);
    va_end(ap);
}

int kn_config_promises(const struct kn_config *cfg, char *why, size_t n)
{
    int count = 0;
    if (n == 0)
        return 0;
    why[0] = '\0';
    /* Row 9 of SECURITY-PROMISES.md: a closed tenant's data is gone
     * within 70 days, from the backups too (kept backup_days). */
    if (cfg->retention_closed_tenant_days + cfg->retention_backup_days > 70)
        promise_broken(
            &count, why, n,
            "retention.closed_tenant_days (%lld) + retention.backup_days "
            "(%lld) = %lld days: a closed tenant's data would outlive "
            "the 70 days promised in the backups; lower one of them",
            (long long)cfg->retention_closed_tenant_days,
            (long long)cfg->retention_backup_days,
            (long long)(cfg->retention_closed_tenant_days +
                        cfg->retention_backup_days));
    /* Row 2: plaintext SMTP only for a local relay, a password in clear
     * only to this host.  The adapter checks the address it connected to
     * and sends nothing to any other (adapters/smtp.c, plain_refusal):
     * said here so that it is fixed before e-mail stops at the relay. */
    if ((cfg->route_email == NULL || strcmp(cfg->route_email, "smtp") == 0) &&
        cfg->smtp_tls == KN_TLS_NONE) {
        char *host = kn__config_smtp_url_host(cfg->smtp_url);
        int resolved = 0;
        /* (a url without a host is kn_config_check's problem) */
        enum kn_ip_scope scope =
            host != NULL ? host_scope(host, &resolved) : KN_IP_LOOPBACK;
        if (scope == KN_IP_ELSEWHERE)
            promise_broken(
                &count, why, n,
                "smtp.tls = none, but the relay %s %s: mail (children's "
                "names, notices) would cross the network in clear, so "
                "kairand sends nothing to a relay elsewhere and e-mail "
                "through it fails (failing over to SendGrid if set up); set "
                "smtp.tls = starttls (or implicit with smtps://), or use a "
                "relay on this host or the local network",
                host,
                resolved ? "is not on this host or a local network "
                           "(127.0.0.0/8, ::1, 10/8, 172.16/12, 192.168/16, "
                           "169.254/16, fc00::/7, fe80::/10)"
                         : "does not resolve, so it cannot be told to be on "
                           "this host or a local network");
        else if (scope == KN_IP_LOCAL_NET && cfg->smtp_username != NULL)
            promise_broken(
                &count, why, n,
                "smtp.tls = none with smtp.username, but the relay %s is not "
                "on this host (127.0.0.0/8, ::1, or a name resolving only to "
                "them): its password would cross the network in clear, so "
                "kairand never sends it and e-mail through the relay fails "
                "(failing over to SendGrid if set up); set smtp.tls = "
                "starttls (or implicit with smtps://)",
                host);
        free(host);
    }
    return count;
}

int kn_config_check(const struct kn_config *cfg, FILE *err)
{
    int count = 0;
    bool implicit = false;
    const char *why;
    int64_t busy = cfg->smtp_timeout_ms + cfg->drain_ms;

    /*
     * A job is claimed from a worker that has been silent for claim_idle_ms.
     * A send that is merely slow (up to smtp.timeout_ms, plus the drain
     * before a restart) must not look dead, or it is delivered twice.
     * (Connecting to a relay name's addresses in turn may take up to five
     * smtp.timeout_ms, but sends nothing before one answers, and the
     * worker keeps the jobs it holds: kn__worker_keep.)
     */
    if (cfg->claim_idle_ms <= busy)
        check_problem(cfg, err, &count,
                      "queue.claim_idle_ms (%lld ms) must be larger than "
                      "smtp.timeout_ms + dispatcher.drain_ms (%lld ms): a "
                      "slow send would be claimed and sent twice",
                      (long long)cfg->claim_idle_ms, (long long)busy);
    if (cfg->http_max_conns_per_peer > cfg->http_max_conns)
        check_problem(cfg, err, &count,
                      "http.max_conns_per_peer (%lld) must be at most "
                      "http.max_conns (%lld)",
                      (long long)cfg->http_max_conns_per_peer,
                      (long long)cfg->http_max_conns);
    if (cfg->http_max_buffered < cfg->http_max_body)
        check_problem(cfg, err, &count,
                      "http.max_buffered (%lld) must be at least "
                      "http.max_body (%lld): one broadcast of the largest "
                      "size must fit",
                      (long long)cfg->http_max_buffered,
                      (long long)cfg->http_max_body);
    if (cfg->retry_cap_ms < cfg->retry_base_ms)
        check_problem(cfg, err, &count,
                      "queue.retry_cap_ms (%lld ms) must be at least "
                      "queue.retry_base_ms (%lld ms)",
                      (long long)cfg->retry_cap_ms,
                      (long long)cfg->retry_base_ms);

    why = kn__config_smtp_url_problem(cfg->smtp_url, &implicit);
    if (why != NULL)
        check_problem(cfg, err, &count, "smtp.url: %s", why);
    else if (implicit && cfg->smtp_tls != KN_TLS_IMPLICIT)
        check_problem(cfg, err, &count,
                      "smtp.url is smtps:// (TLS from the first byte, "
                      "usually port 465) but smtp.tls = %s: set smtp.tls = "
                      "implicit",
                      kn__config_tls_name((int)cfg->smtp_tls));
    else if (!implicit && cfg->smtp_tls == KN_TLS_IMPLICIT)
        check_problem(cfg, err, &count,
                      "smtp.tls = implicit needs an smtps:// url (usually "
                      "port 465); with smtp:// use smtp.tls = starttls");

    why = kn__config_mailbox_problem(cfg->smtp_from);
    if (why != NULL)
        check_problem(cfg, err, &count, "smtp.from: %s", why);
    if (cfg->redis_sentinels != NULL && cfg->redis_sentinel_password == NULL &&
        !cfg->redis_sentinel_allow_no_password)
        check_problem(cfg, err, &count,
                      "redis.sentinels is set but there is no "
                      "redis.sentinel_password_file: a sentinel without a "
                      "password could be anyone's and name a rogue primary; "
                      "set requirepass on the sentinels and the file here, "
                      "or (a closed network only) "
                      "redis.sentinel_allow_no_password = yes");
    if ((cfg->smtp_bounce_local == NULL) != (cfg->smtp_bounce_domain == NULL))
        check_problem(cfg, err, &count,
                      "smtp.bounce_local and smtp.bounce_domain go together: "
                      "set both (bounces come back to "
                      "<bounce_local>+<ref>@<bounce_domain>) or neither");
    if (cfg->smtp_username != NULL && cfg->smtp_password == NULL)
        check_problem(cfg, err, &count,
                      "smtp.username is set but there is no password: set "
                      "smtp.password_file or KAIRAN_SMTP_PASSWORD");
    return count > 0 ? KN_ECONFIG : 0;
}
