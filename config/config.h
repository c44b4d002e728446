/*
 * config.h - kairan's configuration: one INI file (parsed with inih) with
 * one section per part, defaults for every key, environment overrides for
 * secrets, and validation that names file:line and what is allowed.
 *
 * Every key is described once in a table in config.c and documented in
 * config/kairan.conf.example.  The struct below is what the rest of the
 * program reads; strings are owned by the struct (kn_config_free).
 */
#ifndef KN_CONFIG_CONFIG_H
#define KN_CONFIG_CONFIG_H

#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

enum kn_smtp_tls { KN_TLS_STARTTLS, KN_TLS_IMPLICIT, KN_TLS_NONE };
enum kn_failover_mode {
    KN_FAILOVER_EMERGENCY_ONLY,
    KN_FAILOVER_ALWAYS,
    KN_FAILOVER_NEVER
};

struct kn_config {
    char *path; /* file it was read from (NULL for defaults only) */

    /* [redis] */
    char *redis_url;           /* redis://[[user]:password@]host:port[/db] */
    char *redis_user;          /* not a key: the url's ACL user, NULL =
                                  AUTH with the password alone ("default") */
    char *redis_password_file; /* overrides a password in the url */
    char *redis_password;      /* not a key: the password to AUTH with,
                                  from redis_password_file, else from the
                                  url; NULL = none */
    char *redis_prefix;        /* key prefix, default "kairan:" */
    int64_t redis_timeout_ms;  /* per command (and connect) timeout */
    /* Sentinel (queue/sentinel.c): when sentinels is set, the primary is
     * asked of them and the url's host and port are not used. */
    char *redis_sentinels;                /* "host:port,host:port"; NULL none */
    char *redis_master_name;              /* the monitored primary's name */
    char *redis_sentinel_password_file;   /* the sentinels' requirepass */
    char *redis_sentinel_password;        /* not a key: read from the file */
    int redis_sentinel_allow_no_password; /* yes: sentinels without AUTH */
    int64_t redis_wait_replicas;          /* WAIT N after a submit; 0 none */
    int64_t redis_wait_timeout_ms;        /* WAIT's timeout */

    /* [queue] */
    int64_t max_attempts;  /* attempts before the DLQ */
    int64_t retry_base_ms; /* backoff base */
    int64_t retry_cap_ms;  /* backoff cap */
    int64_t claim_idle_ms; /* XAUTOCLAIM min idle */
    int64_t max_depth;     /* expansion pauses above this stream length */
    int64_t block_ms;      /* XREADGROUP BLOCK */
    /* expansion also pauses above this much of a stream's sending */
    int64_t expand_ahead_ms;

    /* [dispatcher] */
    int64_t drain_ms;       /* graceful drain on SIGTERM */
    int64_t default_ttl_ms; /* broadcast expiry when expires_at is absent */
    int64_t expand_page;    /* recipients per expansion page */
    int64_t max_subject;    /* bytes */
    int64_t max_body;       /* bytes */
    int64_t max_recipients; /* inline recipients per broadcast */
    char *consumer;         /* consumer name; default host:pid */
    char *log_level;        /* debug|info|warn|error */
    char *log_file;         /* default stderr */

    /* [routes] adapter per channel */
    char *route_email; /* smtp | outbox */
    char *route_line;  /* line | outbox */
    char *route_push;  /* push | outbox */

    /* [smtp] */
    char *smtp_url; /* smtp://host:port or smtps://host:port */
    enum kn_smtp_tls smtp_tls;
    char *smtp_ca_file;
    char *smtp_username;
    char *smtp_password; /* or smtp_password_file, or KAIRAN_SMTP_PASSWORD */
    char *smtp_password_file;
    int64_t smtp_connections;
    char *smtp_from;     /* "Name <addr>" or addr */
    char *smtp_reply_to; /* optional */
    char *smtp_helo;     /* EHLO name; default the host's own name */
    /* Opening a connection: TCP connect and TLS handshake */
    int64_t smtp_timeout_ms;
    /* The reply timeouts of RFC 5321 4.5.3.2 */
    int64_t smtp_greeting_timeout_ms;
    int64_t smtp_mail_timeout_ms; /* MAIL and EHLO, STARTTLS, AUTH, RSET */
    int64_t smtp_rcpt_timeout_ms;
    int64_t smtp_data_init_timeout_ms;
    int64_t smtp_data_xfer_timeout_ms;
    int64_t smtp_data_done_timeout_ms;
    /* VERP envelope sender <bounce_local>+<ref>@<bounce_domain>; both or
     * neither (issue 18, docs/runbook.md "Bounces") */
    char *smtp_bounce_local;
    char *smtp_bounce_domain;

    /* [outbox] */
    char *outbox_dir;
    int64_t outbox_slots; /* concurrent writes */

    /* [security] */
    char *key_file; /* 32 bytes (or several "kid:hex" lines), mode 0600 */

    /* [line] LINE Messaging API */
    char *line_api_base;       /* https://api.line.me */
    char *line_token;          /* long-lived channel access token */
    char *line_token_file;     /* or KAIRAN_LINE_TOKEN */
    char *line_channel_id;     /* for the v2.1 JWT flow */
    char *line_key_file;       /* assertion signing key (RSA, PEM) */
    char *line_key_id;         /* kid given by the console */
    char *line_token_url;      /* https://api.line.me/oauth2/v2.1/token */
    char *line_channel_secret; /* webhook signatures; or KAIRAN_LINE_SECRET */
    char *line_channel_secret_file;
    char *line_add_friend_url; /* the official account's friend-add link */
    char *line_ca_file;
    int64_t line_timeout_ms;
    int64_t line_connections;
    int64_t line_rate;                /* multicast requests per second */
    int64_t line_webhook_max_body;    /* bytes of one webhook request */
    int64_t line_webhook_concurrency; /* webhook requests at once, in all */
    int64_t line_webhook_rate;        /* webhook requests per second, in all */

    /* [fcm] Firebase Cloud Messaging HTTP v1 */
    char *fcm_api_base;  /* https://fcm.googleapis.com */
    char *fcm_token_url; /* https://oauth2.googleapis.com/token */
    char *fcm_project_id;
    char *fcm_service_account_file;
    char *fcm_ca_file;
    int64_t fcm_timeout_ms;
    int64_t fcm_connections;
    int64_t fcm_requests_per_connection; /* 0: no limit */
    int64_t fcm_rate;                    /* requests per second */

    /* [apns] Apple Push Notification service */
    char *apns_api_base; /* https://api.push.apple.com */
    char *apns_key_file; /* .p8 (P-256 private key, PEM) */
    char *apns_key_id;
    char *apns_team_id;
    char *apns_topic; /* bundle id */
    char *apns_ca_file;
    int64_t apns_timeout_ms;
    int64_t apns_connections;
    int64_t apns_requests_per_connection; /* 0: no limit */
    int64_t apns_rate;
    /* how often the shared provider token is read again (+ up to 1/4) */
    int64_t apns_token_check_ms;

    /* [sendgrid] */
    char *sendgrid_api_base; /* https://api.sendgrid.com */
    char *sendgrid_api_key;  /* or KAIRAN_SENDGRID_API_KEY */
    char *sendgrid_api_key_file;
    char *sendgrid_ca_file;
    int64_t sendgrid_timeout_ms;
    int64_t sendgrid_batch; /* personalizations per request, <= 1000 */
    int64_t sendgrid_rate;  /* requests per second */
    /* base64 of the Event Webhook's ECDSA P-256 public key (DER) */
    char *sendgrid_webhook_public_key;

    /* [failover] circuit breaker on the SMTP relay */
    enum kn_failover_mode failover_mode;
    int64_t failover_failures; /* consecutive failures that open it */
    int64_t failover_window_ms;
    int64_t failover_probe_ms; /* open -> one probe after this */

    /* [http] kairand's HTTP port */
    char *http_listen;      /* 127.0.0.1:8025; empty: no HTTP */
    char *http_public_url;  /* base of personal links */
    int64_t http_max_body;  /* bytes */
    int http_metrics_open;  /* /metrics without a token */
    int64_t http_rate;      /* requests per second per source address */
    int64_t http_file_rate; /* the same for the embedded files */
    int64_t http_max_conns; /* open connections in all */
    int64_t http_max_conns_per_peer; /* per peer address, but proxies */
    char *http_trusted_proxies;      /* addresses: no per-peer cap, X-Real-IP */
    int64_t http_header_timeout_ms;  /* a request head must arrive within */
    int64_t http_body_timeout_ms;    /* longest pause while a body arrives */
    int64_t http_send_timeout_ms;    /* an answer must be taken within */
    int64_t http_max_buffered;       /* request bytes held, all connections */
    int http_require_2fa_admin;      /* staff admins must use TOTP */

    /* [registration] guardians sign themselves up (issue 15) */
    int64_t registration_max_guardians; /* per registration sheet */

    /* [retention] */
    int64_t retention_fiscal_years;
    int64_t retention_audit_years;
    int64_t retention_delivery_days;
    int64_t retention_closed_tenant_days;
    int64_t retention_backup_days; /* days kairan-backup keeps a backup */
    char *audit_dir;               /* operation and login logs */
};

/*
 * Fill cfg with the defaults, then read path (if not NULL), then apply the
 * environment overrides (KAIRAN_REDIS_URL, KAIRAN_SMTP_PASSWORD, ...), then
 * read the *_file secrets.  On error returns KN_ECONFIG and writes one line
 * per problem to err as "file:line: what is wrong, what is allowed"; cfg
 * is then left zeroed with nothing to free.  err may be NULL.
 */
int kn_config_load(struct kn_config *cfg, const char *path, FILE *err);

/*
 * Cross-key checks that kairand --check runs (e.g. claim_idle_ms must be
 * larger than smtp.timeout_ms + dispatcher.drain_ms).  Returns 0 or
 * KN_ECONFIG after writing each problem to err.
 */
int kn_config_check(const struct kn_config *cfg, FILE *err);

/*
 * What the configuration does against SECURITY-PROMISES.md (row 9:
 * retention against the backups kept; row 2: smtp.tls = none for a
 * relay that is neither on this host nor on a local network, or with a
 * password for one that is not on this host, resolving its name):
 * the number of problems, their sentences in why joined by "; " (cut at
 * n).  kairand --check prints it as a warning and kairand logs it
 * as an error at every start, but neither stops: the units run --check
 * before every start, and a configuration written before the check (the
 * example's old closed_tenant_days = 60) must not stop the notices on the
 * morning after an upgrade.
 */
int kn_config_promises(const struct kn_config *cfg, char *why, size_t n);

/*
 * Parse http.listen as kairand binds it: "host:port" with a numeric IPv4
 * address or "localhost" (127.0.0.1), or "[IPv6]:port"; port 1-65535.
 * --check and the start both use this.  Returns 0 with *addr, or
 * KN_ECONFIG.
 */
int kn_config_listen_parse(const char *spec, struct sockaddr_storage *addr);

/* Free every string the config owns; the struct itself is the caller's. */
void kn_config_free(struct kn_config *cfg);

/*
 * Parse a redis URL into host, port, db and password (any may be left
 * unset: host "127.0.0.1", port 6379, db 0, password NULL).  Strings are
 * heap copies the caller frees.  Returns 0 or KN_EINVAL.
 */
int kn_redis_url_parse(const char *url, char **host, int *port, int *db,
                       char **password);

/* How many sentinels redis.sentinels may name. */
#define KN_MAX_SENTINELS 16

/*
 * Parse one "host:port" (IPv4 or name, or "[IPv6]:port"; port 1-65535)
 * from s[0..len), spaces around it ignored, into host (hostsz bytes) and
 * *port.  redis.sentinels is a comma list of these.  Returns 0 or
 * KN_EINVAL.
 */
int kn_hostport_parse(const char *s, size_t len, char *host, size_t hostsz,
                      int *port);

/* The i-th key of the table and its section, or NULL past the end. */
const char *kn_config_key(size_t i, const char **section);

#endif
