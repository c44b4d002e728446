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

enum kn_smtp_tls { KN_TLS_STARTTLS, KN_TLS_IMPLICIT, KN_TLS_NONE };
enum kn_failover_mode {
    KN_FAILOVER_EMERGENCY_ONLY,
    KN_FAILOVER_ALWAYS,
    KN_FAILOVER_NEVER
};

struct kn_config {
    char *path; /* file it was read from (NULL for defaults only) */

    /* [redis] */
    char *redis_url;           /* redis://[:password@]host:port[/db] */
    char *redis_password_file; /* overrides a password in the url */
    char *redis_password;      /* not a key: the password to AUTH with,
                                  from redis_password_file, else from the
                                  url; NULL = none */
    char *redis_prefix;        /* key prefix, default "kairan:" */
    int64_t redis_timeout_ms;  /* per command (and connect) timeout */

    /* [queue] */
    int64_t max_attempts;  /* attempts before the DLQ */
    int64_t retry_base_ms; /* backoff base */
    int64_t retry_cap_ms;  /* backoff cap */
    int64_t claim_idle_ms; /* XAUTOCLAIM min idle */
    int64_t max_depth;     /* expansion pauses above this stream length */
    int64_t block_ms;      /* XREADGROUP BLOCK */

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
    char *smtp_helo;     /* EHLO name; default from the From domain */
    int64_t smtp_timeout_ms;

    /* [outbox] */
    char *outbox_dir;
    int64_t outbox_slots; /* concurrent writes */

    /* [security] */
    char *key_file; /* 32 bytes (or several "kid:hex" lines), mode 0600 */
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

/* Free every string the config owns; the struct itself is the caller's. */
void kn_config_free(struct kn_config *cfg);

/*
 * Parse a redis URL into host, port, db and password (any may be left
 * unset: host "127.0.0.1", port 6379, db 0, password NULL).  Strings are
 * heap copies the caller frees.  Returns 0 or KN_EINVAL.
 */
int kn_redis_url_parse(const char *url, char **host, int *port, int *db,
                       char **password);

#endif
