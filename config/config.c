/*
 * config.c - read kairan.conf into a struct kn_config.
 *
 * Every directive is one row of keys[] below: section, name, type, bounds,
 * default (written as it would be in the file), target field and an
 * optional validator.  The rest of the file is generic: the defaults, the
 * file and the environment all go through one setter, so a default can
 * never be something the file could not say.  kn_config_free() walks the
 * same table to find the strings it owns.
 *
 * inih (Debian's libinih r55) splits lines into sections, names and values,
 * but we never hand it a raw file.  Debian builds it with 200-byte lines
 * (longer ones are silently cut into two), ";" inline comments after a
 * blank, multi-line values for indented lines, and no line numbers for the
 * handler.  So read_line() below reads the file itself, counts lines,
 * refuses long lines and lines inih would mis-read, strips the indentation
 * that would make inih glue a key onto the previous one, and keeps the
 * whole value: the handler takes the value from our copy of the line, so
 * "a ;b" stays "a ;b".  kairan.conf has no end-of-line comments.
 *
 * Errors are collected, not fatal: every problem is written as one line
 * "file:line: what is wrong: what is allowed" and the load fails with
 * KN_ECONFIG at the end.  A message never shows a password: secret keys
 * are named without their value and URLs are shown with the password
 * masked.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memrchr, explicit_bzero, getline */
#endif
#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/file.h"
#include "common/kn.h"
#include "config/check.h"

/* ---- the table ---------------------------------------------------------- */

enum key_type {
    T_STRING,   /* char *; "" means unset when F_OPTIONAL */
    T_INT,      /* int64_t in [min, max] */
    T_DURATION, /* int64_t milliseconds in [min, max]; "30s", "10m", ... */
    T_ENUM,     /* an enum (int) field: the index of the value in values[] */
    T_CHOICE,   /* char *: one of values[], stored as written there */
    T_BOOL      /* int: yes/no, true/false, on/off, 1/0 */
};

#define F_OPTIONAL 0x1 /* may be unset; an empty value unsets it */
#define F_SECRET   0x2 /* never show the value in a message */
#define F_URL      0x4 /* show the value with the url's password masked */

struct key {
    const char *section;
    const char *name;
    enum key_type type;
    unsigned flags;
    int64_t min, max;          /* T_INT, T_DURATION */
    const char *const *values; /* T_ENUM, T_CHOICE: NULL-terminated */
    const char *def;           /* default as written in the file; NULL: none */
    size_t offset;             /* offsetof(struct kn_config, field) */
    /* Extra check of a non-empty string: NULL if fine, else why not. */
    const char *(*check)(const char *value);
    const char *env; /* environment variable that overrides it, or NULL */
};

/* T_ENUM stores through an int pointer. */
_Static_assert(sizeof(enum kn_smtp_tls) == sizeof(int), "enum is an int");

#define MS   1LL
#define SEC  (1000 * MS)
#define MIN  (60 * SEC)
#define HOUR (60 * MIN)
#define DAY  (24 * HOUR)

#define FIELD(f) offsetof(struct kn_config, f)
#define STR(sec, name, def, field, flags, check, env)                          \
    {                                                                          \
        sec, name, T_STRING, flags, 0, 0, NULL, def, FIELD(field), check, env  \
    }
#define INT(sec, name, def, lo, hi, field)                                     \
    {                                                                          \
        sec, name, T_INT, 0, lo, hi, NULL, def, FIELD(field), NULL, NULL       \
    }
#define DUR(sec, name, def, lo, hi, field)                                     \
    {                                                                          \
        sec, name, T_DURATION, 0, lo, hi, NULL, def, FIELD(field), NULL, NULL  \
    }
#define ENUM(sec, name, def, vals, field)                                      \
    {                                                                          \
        sec, name, T_ENUM, 0, 0, 0, vals, def, FIELD(field), NULL, NULL        \
    }
#define CHOICE(sec, name, def, vals, field)                                    \
    {                                                                          \
        sec, name, T_CHOICE, 0, 0, 0, vals, def, FIELD(field), NULL, NULL      \
    }

#define BOOL(sec, name, def, field)                                            \
    {                                                                          \
        sec, name, T_BOOL, 0, 0, 0, NULL, def, FIELD(field), NULL, NULL        \
    }
#define OPT(sec, name, field)                                                  \
    {                                                                          \
        sec, name, T_STRING, F_OPTIONAL, 0, 0, NULL, NULL, FIELD(field), NULL, \
            NULL                                                               \
    }

static const char *const log_levels[] = {"debug", "info", "warn", "error",
                                         NULL};
static const char *const email_routes[] = {"smtp", "outbox", NULL};
static const char *const line_routes[] = {"line", "outbox", NULL};
static const char *const push_routes[] = {"push", "outbox", NULL};
static const char *const failover_modes[] = {
    [KN_FAILOVER_EMERGENCY_ONLY] = "emergency-only",
    [KN_FAILOVER_ALWAYS] = "always",
    [KN_FAILOVER_NEVER] = "never",
    [KN_FAILOVER_NEVER + 1] = NULL,
};
_Static_assert(sizeof(enum kn_failover_mode) == sizeof(int), "enum int");
static const char *const tls_modes[] = {
    [KN_TLS_STARTTLS] = "starttls",
    [KN_TLS_IMPLICIT] = "implicit",
    [KN_TLS_NONE] = "none",
    [KN_TLS_NONE + 1] = NULL,
};

const char *kn__config_tls_name(int mode)
{
    return mode >= 0 && mode <= KN_TLS_NONE ? tls_modes[mode] : "?";
}

/* Keep in step with config/kairan.conf.example, which documents each row. */
static const struct key keys[] = {
    STR("redis", "url", "redis://127.0.0.1:6379/0", redis_url, F_URL,
        kn__config_check_redis_url, "KAIRAN_REDIS_URL"),
    STR("redis", "password_file", NULL, redis_password_file, F_OPTIONAL, NULL,
        NULL),
    STR("redis", "prefix", "kairan:", redis_prefix, 0, NULL, NULL),
    DUR("redis", "timeout_ms", "5s", 10 * MS, 10 * MIN, redis_timeout_ms),
    STR("redis", "sentinels", NULL, redis_sentinels, F_OPTIONAL,
        kn__config_check_sentinels, "KAIRAN_REDIS_SENTINELS"),
    STR("redis", "master_name", "kairan", redis_master_name, 0,
        kn__config_check_master_name, NULL),
    OPT("redis", "sentinel_password_file", redis_sentinel_password_file),
    BOOL("redis", "sentinel_allow_no_password", "no",
         redis_sentinel_allow_no_password),
    INT("redis", "wait_replicas", "0", 0, 100, redis_wait_replicas),
    DUR("redis", "wait_timeout_ms", "1s", 10 * MS, 1 * MIN,
        redis_wait_timeout_ms),

    INT("queue", "max_attempts", "8", 1, 100, max_attempts),
    DUR("queue", "retry_base_ms", "1s", 10 * MS, 1 * HOUR, retry_base_ms),
    DUR("queue", "retry_cap_ms", "5m", 10 * MS, 1 * DAY, retry_cap_ms),
    DUR("queue", "claim_idle_ms", "2m", 1 * SEC, 1 * DAY, claim_idle_ms),
    INT("queue", "max_depth", "200000", 1, 1000000000, max_depth),
    DUR("queue", "expand_ahead_ms", "1s", 50 * MS, 1 * MIN, expand_ahead_ms),
    DUR("queue", "block_ms", "500ms", 10 * MS, 5 * SEC, block_ms),

    DUR("dispatcher", "drain_ms", "10s", 0, 1 * HOUR, drain_ms),
    DUR("dispatcher", "default_ttl", "24h", 1 * MIN, 30 * DAY, default_ttl_ms),
    INT("dispatcher", "expand_page", "1000", 1, 10000, expand_page),
    INT("dispatcher", "max_subject", "1000", 1, 100000, max_subject),
    INT("dispatcher", "max_body", "100000", 1, 10000000, max_body),
    INT("dispatcher", "max_recipients", "100000", 1, 10000000, max_recipients),
    STR("dispatcher", "consumer", NULL, consumer, F_OPTIONAL, NULL, NULL),
    CHOICE("dispatcher", "log_level", "info", log_levels, log_level),
    STR("dispatcher", "log_file", NULL, log_file, F_OPTIONAL, NULL, NULL),

    CHOICE("routes", "email", "smtp", email_routes, route_email),
    CHOICE("routes", "line", "line", line_routes, route_line),
    CHOICE("routes", "push", "push", push_routes, route_push),

    STR("smtp", "url", "smtp://127.0.0.1:25", smtp_url, F_URL,
        kn__config_check_smtp_url, NULL),
    ENUM("smtp", "tls", "starttls", tls_modes, smtp_tls),
    STR("smtp", "ca_file", NULL, smtp_ca_file, F_OPTIONAL, NULL, NULL),
    STR("smtp", "username", NULL, smtp_username, F_OPTIONAL, NULL, NULL),
    STR("smtp", "password", NULL, smtp_password, F_OPTIONAL | F_SECRET, NULL,
        "KAIRAN_SMTP_PASSWORD"),
    STR("smtp", "password_file", NULL, smtp_password_file, F_OPTIONAL, NULL,
        NULL),
    INT("smtp", "connections", "10", 1, 1000, smtp_connections),
    STR("smtp", "from", "kairan <noreply@localhost>", smtp_from, 0,
        kn__config_mailbox_problem, NULL),
    STR("smtp", "reply_to", NULL, smtp_reply_to, F_OPTIONAL,
        kn__config_mailbox_problem, NULL),
    STR("smtp", "helo", NULL, smtp_helo, F_OPTIONAL, kn__config_check_hostname,
        NULL),
    DUR("smtp", "timeout_ms", "60s", 1 * SEC, 1 * HOUR, smtp_timeout_ms),
    DUR("smtp", "greeting_timeout_ms", "5m", 1 * SEC, 1 * HOUR,
        smtp_greeting_timeout_ms),
    DUR("smtp", "mail_timeout_ms", "5m", 1 * SEC, 1 * HOUR,
        smtp_mail_timeout_ms),
    DUR("smtp", "rcpt_timeout_ms", "5m", 1 * SEC, 1 * HOUR,
        smtp_rcpt_timeout_ms),
    DUR("smtp", "data_init_timeout_ms", "2m", 1 * SEC, 1 * HOUR,
        smtp_data_init_timeout_ms),
    DUR("smtp", "data_xfer_timeout_ms", "3m", 1 * SEC, 1 * HOUR,
        smtp_data_xfer_timeout_ms),
    DUR("smtp", "data_done_timeout_ms", "10m", 1 * SEC, 1 * HOUR,
        smtp_data_done_timeout_ms),
    STR("smtp", "bounce_local", NULL, smtp_bounce_local, F_OPTIONAL,
        kn__config_check_bounce_local, NULL),
    STR("smtp", "bounce_domain", NULL, smtp_bounce_domain, F_OPTIONAL,
        kn__config_check_hostname, NULL),

    STR("outbox", "dir", "outbox", outbox_dir, 0, NULL, "KAIRAN_OUTBOX_DIR"),
    INT("outbox", "slots", "64", 1, 4096, outbox_slots),

    STR("security", "key_file", "/etc/kairan/key", key_file, 0, NULL,
        "KAIRAN_KEY_FILE"),

    STR("line", "api_base", "https://api.line.me", line_api_base, F_URL, NULL,
        NULL),
    STR("line", "token", NULL, line_token, F_OPTIONAL | F_SECRET, NULL,
        "KAIRAN_LINE_TOKEN"),
    OPT("line", "token_file", line_token_file),
    OPT("line", "channel_id", line_channel_id),
    OPT("line", "key_file", line_key_file),
    OPT("line", "key_id", line_key_id),
    STR("line", "token_url", "https://api.line.me/oauth2/v3/token",
        line_token_url, F_URL, NULL, NULL),
    STR("line", "channel_secret", NULL, line_channel_secret,
        F_OPTIONAL | F_SECRET, NULL, "KAIRAN_LINE_SECRET"),
    OPT("line", "channel_secret_file", line_channel_secret_file),
    OPT("line", "add_friend_url", line_add_friend_url),
    OPT("line", "ca_file", line_ca_file),
    DUR("line", "timeout_ms", "30s", 1 * SEC, 1 * HOUR, line_timeout_ms),
    INT("line", "connections", "8", 1, 1000, line_connections),
    INT("line", "rate", "200", 1, 100000, line_rate),
    INT("line", "webhook_max_body", "262144", 1024, 10000000,
        line_webhook_max_body),
    INT("line", "webhook_concurrency", "8", 1, 10000, line_webhook_concurrency),
    INT("line", "webhook_rate", "100", 1, 100000, line_webhook_rate),

    STR("fcm", "api_base", "https://fcm.googleapis.com", fcm_api_base, F_URL,
        NULL, NULL),
    STR("fcm", "token_url", "https://oauth2.googleapis.com/token",
        fcm_token_url, F_URL, NULL, NULL),
    OPT("fcm", "project_id", fcm_project_id),
    OPT("fcm", "service_account_file", fcm_service_account_file),
    OPT("fcm", "ca_file", fcm_ca_file),
    DUR("fcm", "timeout_ms", "30s", 1 * SEC, 1 * HOUR, fcm_timeout_ms),
    INT("fcm", "connections", "4", 1, 1000, fcm_connections),
    INT("fcm", "requests_per_connection", "900", 0, 1000000000,
        fcm_requests_per_connection),
    INT("fcm", "rate", "5000", 1, 1000000, fcm_rate),

    STR("apns", "api_base", "https://api.push.apple.com", apns_api_base, F_URL,
        NULL, NULL),
    OPT("apns", "key_file", apns_key_file),
    OPT("apns", "key_id", apns_key_id),
    OPT("apns", "team_id", apns_team_id),
    OPT("apns", "topic", apns_topic),
    OPT("apns", "ca_file", apns_ca_file),
    DUR("apns", "timeout_ms", "30s", 1 * SEC, 1 * HOUR, apns_timeout_ms),
    INT("apns", "connections", "2", 1, 1000, apns_connections),
    INT("apns", "requests_per_connection", "900", 0, 1000000000,
        apns_requests_per_connection),
    INT("apns", "rate", "5000", 1, 1000000, apns_rate),
    DUR("apns", "token_check_ms", "1m", 100 * MS, 10 * MIN,
        apns_token_check_ms),

    STR("sendgrid", "api_base", "https://api.sendgrid.com", sendgrid_api_base,
        F_URL, NULL, NULL),
    STR("sendgrid", "api_key", NULL, sendgrid_api_key, F_OPTIONAL | F_SECRET,
        NULL, "KAIRAN_SENDGRID_API_KEY"),
    OPT("sendgrid", "api_key_file", sendgrid_api_key_file),
    OPT("sendgrid", "ca_file", sendgrid_ca_file),
    DUR("sendgrid", "timeout_ms", "30s", 1 * SEC, 1 * HOUR,
        sendgrid_timeout_ms),
    INT("sendgrid", "batch", "1000", 1, 1000, sendgrid_batch),
    INT("sendgrid", "rate", "10", 1, 100000, sendgrid_rate),
    STR("sendgrid", "webhook_public_key", NULL, sendgrid_webhook_public_key,
        F_OPTIONAL, kn__config_check_ec_public_key, NULL),

    ENUM("failover", "mode", "emergency-only", failover_modes, failover_mode),
    INT("failover", "failures", "5", 1, 1000000, failover_failures),
    DUR("failover", "window_ms", "30s", 1 * SEC, 1 * DAY, failover_window_ms),
    DUR("failover", "probe_ms", "15s", 100 * MS, 1 * DAY, failover_probe_ms),

    STR("http", "listen", "127.0.0.1:8025", http_listen, F_OPTIONAL,
        kn__config_check_listen, NULL),
    STR("http", "public_url", "http://127.0.0.1:8025", http_public_url, 0,
        kn__config_check_public_url, NULL),
    INT("http", "max_body", "10000000", 1024, 1000000000, http_max_body),
    BOOL("http", "metrics_open", "no", http_metrics_open),
    BOOL("http", "require_2fa_admin", "no", http_require_2fa_admin),
    INT("http", "rate", "20", 1, 100000, http_rate),
    INT("http", "file_rate", "200", 1, 100000, http_file_rate),
    INT("http", "max_conns", "512", 1, 100000, http_max_conns),
    INT("http", "max_conns_per_peer", "32", 1, 100000, http_max_conns_per_peer),
    STR("http", "trusted_proxies", "127.0.0.1 ::1", http_trusted_proxies,
        F_OPTIONAL, kn__config_check_proxies, NULL),
    DUR("http", "header_timeout_ms", "5s", 100 * MS, 5 * MIN,
        http_header_timeout_ms),
    DUR("http", "body_timeout_ms", "10s", 100 * MS, 5 * MIN,
        http_body_timeout_ms),
    DUR("http", "send_timeout_ms", "10s", 100 * MS, 5 * MIN,
        http_send_timeout_ms),
    INT("http", "max_buffered", "32000000", 1024, 100000000000LL,
        http_max_buffered),

    INT("registration", "max_guardians", "2", 1, 10,
        registration_max_guardians),

    INT("retention", "fiscal_years", "4", 1, 100, retention_fiscal_years),
    INT("retention", "audit_years", "5", 1, 100, retention_audit_years),
    INT("retention", "delivery_days", "365", 1, 100000,
        retention_delivery_days),
    INT("retention", "closed_tenant_days", "40", 0, 70,
        retention_closed_tenant_days),
    INT("retention", "backup_days", "30", 0, 70, retention_backup_days),
    STR("retention", "audit_dir", "/var/log/kairan", audit_dir, 0, NULL, NULL),
};

#define NKEYS KN_ARRAY_SIZE(keys)

/*
 * Secrets read from a file after the environment overrides: the first line
 * of the file named by the key goes into the field.  It wins over a
 * password written in the file or given in the environment.
 */
static const struct secret_file {
    const char *section;
    const char *name; /* the *_file key */
    size_t into;      /* the field that gets the secret */
} secret_files[] = {
    {"redis", "password_file", FIELD(redis_password)},
    {"redis", "sentinel_password_file", FIELD(redis_sentinel_password)},
    {"smtp", "password_file", FIELD(smtp_password)},
    {"line", "token_file", FIELD(line_token)},
    {"line", "channel_secret_file", FIELD(line_channel_secret)},
    {"sendgrid", "api_key_file", FIELD(sendgrid_api_key)},
};

/* ---- small helpers ------------------------------------------------------ */

static char **str_field(struct kn_config *cfg, size_t offset)
{
    return (char **)((char *)cfg + offset);
}

static void replace_string(char **field, char *value)
{
    kn_free_secret(*field);
    *field = value;
}

static const struct key *find_key(const char *section, const char *name)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (strcmp(keys[i].section, section) == 0 &&
            strcmp(keys[i].name, name) == 0)
            return &keys[i];
    }
    return NULL;
}

static bool section_known(const char *section, size_t len)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (strlen(keys[i].section) == len &&
            memcmp(keys[i].section, section, len) == 0)
            return true;
    }
    return false;
}

/* Append word to the heap string *list as ", word". */
static void list_add(char **list, const char *word)
{
    char *s =
        kn_xasprintf("%s%s%s", *list ? *list : "", *list ? ", " : "", word);
    free(*list);
    *list = s;
}

/* "redis, queue, dispatcher, ..." in table order, as a heap string. */
static char *known_sections(void)
{
    char *list = NULL;
    for (size_t i = 0; i < NKEYS; i++) {
        if (i == 0 || strcmp(keys[i].section, keys[i - 1].section) != 0)
            list_add(&list, keys[i].section);
    }
    return list;
}

/* "url, tls, ..." for one section, as a heap string. */
static char *known_keys(const char *section)
{
    char *list = NULL;
    for (size_t i = 0; i < NKEYS; i++) {
        if (strcmp(keys[i].section, section) == 0)
            list_add(&list, keys[i].name);
    }
    return list ? list : kn_xstrdup("(none)");
}

/* "debug, info, warn, error" as a heap string. */
static char *value_list(const char *const *values)
{
    char *list = NULL;
    for (size_t i = 0; values[i] != NULL; i++)
        list_add(&list, values[i]);
    return list;
}

/* A duration the way a person would write it: "5s", "10ms", "1d", "0". */
static void format_ms(int64_t ms, char *buf, size_t len)
{
    static const struct {
        int64_t ms;
        const char *unit;
    } units[] = {{DAY, "d"}, {HOUR, "h"}, {MIN, "m"}, {SEC, "s"}};

    if (ms == 0) {
        snprintf(buf, len, "0");
        return;
    }
    for (size_t i = 0; i < KN_ARRAY_SIZE(units); i++) {
        if (ms % units[i].ms == 0) {
            snprintf(buf, len, "%lld%s", (long long)(ms / units[i].ms),
                     units[i].unit);
            return;
        }
    }
    snprintf(buf, len, "%lldms", (long long)ms);
}

static bool has_control(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            return true;
    }
    return false;
}

/*
 * The url with the password of its user part replaced by "***", for
 * messages.  Works on any "scheme://user:password@host..." string and
 * leaves others as they are.  Returns a heap string.
 */
static char *mask_url(const char *url)
{
    const char *auth = strstr(url, "://");
    const char *end, *at, *colon;

    if (auth == NULL)
        return kn_xstrdup(url);
    auth += 3;
    end = auth + strcspn(auth, "/?#");
    at = memrchr(auth, '@', (size_t)(end - auth));
    if (at == NULL)
        return kn_xstrdup(url);
    colon = memchr(auth, ':', (size_t)(at - auth));
    if (colon == NULL)
        colon = auth - 1; /* "scheme://token@host": the token is secret */
    return kn_xasprintf("%.*s***%s", (int)(colon + 1 - url), url, at);
}

/*
 * The value as a message may show it (a heap string), or NULL when it
 * must not be shown at all.  Control characters become '?' so a message
 * cannot move the cursor of the terminal that shows it.
 */
static char *shown_value(const struct key *k, const char *value)
{
    char *s;
    if (k->flags & F_SECRET)
        return NULL;
    s = (k->flags & F_URL) ? mask_url(value) : kn_xstrdup(value);
    for (unsigned char *p = (unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            *p = '?';
    }
    return s;
}

/* "smtp.tls = 'ssl': <reason>" or, for a secret, "smtp.password: <reason>" */
static char *value_problem(const struct key *k, const char *value,
                           const char *reason)
{
    char *shown = shown_value(k, value);
    char *msg;
    if (shown == NULL)
        msg = kn_xasprintf("%s.%s: %s", k->section, k->name, reason);
    else
        msg = kn_xasprintf("%s.%s = '%s': %s", k->section, k->name, shown,
                           reason);
    free(shown);
    return msg;
}

/* ---- setting one key ---------------------------------------------------- */

/* 1 if the key's name ends in "_ms" (a bare number is milliseconds). */
static int ms_name(const char *name)
{
    size_t n = strlen(name);
    return n > 3 && strcmp(name + n - 3, "_ms") == 0;
}

static int parse_int64(const char *s, int64_t *out)
{
    char *end;
    long long v;
    const char *digits = *s == '-' ? s + 1 : s;
    if (!isdigit((unsigned char)*digits))
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

static int lookup_value(const char *const *values, const char *value)
{
    for (int i = 0; values[i] != NULL; i++) {
        if (strcasecmp(values[i], value) == 0)
            return i;
    }
    return -1;
}

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"yes", "true", "on", "1", NULL};
    static const char *const no[] = {"no", "false", "off", "0", NULL};
    if (lookup_value(yes, s) >= 0)
        *out = 1;
    else if (lookup_value(no, s) >= 0)
        *out = 0;
    else
        return -1;
    return 0;
}

/*
 * Set one key from its text (already trimmed).  Returns 0, or -1 with
 * *why set to a heap message "section.name = 'value': what is allowed"
 * (without the value for a secret).
 */
static int set_key(struct kn_config *cfg, const struct key *k,
                   const char *value, char **why)
{
    void *field = (char *)cfg + k->offset;
    char lo[32], hi[32], *list, *reason;
    const char *bad;
    int64_t v;
    int i;

    if (has_control(value)) {
        *why = value_problem(k, value, "control characters are not allowed");
        return -1;
    }
    switch (k->type) {
    case T_STRING:
        if (*value == '\0') {
            if (!(k->flags & F_OPTIONAL)) {
                *why = value_problem(k, value, "expected a non-empty value");
                return -1;
            }
            replace_string(field, NULL);
            return 0;
        }
        if (k->check != NULL && (bad = k->check(value)) != NULL) {
            *why = value_problem(k, value, bad);
            return -1;
        }
        replace_string(field, kn_xstrdup(value));
        return 0;
    case T_INT:
        if (parse_int64(value, &v) < 0 || v < k->min || v > k->max) {
            reason = kn_xasprintf("expected an integer from %lld to %lld",
                                  (long long)k->min, (long long)k->max);
            *why = value_problem(k, value, reason);
            free(reason);
            return -1;
        }
        *(int64_t *)field = v;
        return 0;
    case T_DURATION:
        /*
         * A bare number is milliseconds only where the name says so
         * (*_ms): "default_ttl = 90" must not mean 90 ms.
         */
        if ((ms_name(k->name) ? kn_duration_parse(value, &v)
                              : kn_duration_parse_unit(value, &v)) < 0 ||
            v < k->min || v > k->max) {
            format_ms(k->min, lo, sizeof(lo));
            format_ms(k->max, hi, sizeof(hi));
            reason = kn_xasprintf(
                ms_name(k->name) ? "expected a duration from %s to %s (a "
                                   "number of milliseconds, or with a unit: "
                                   "500ms, 30s, 10m, 24h, 1d)"
                                 : "expected a duration from %s to %s with "
                                   "its unit: 500ms, 30s, 10m, 24h, 1d (a "
                                   "bare number is refused: write 24h, not "
                                   "24)",
                lo, hi);
            *why = value_problem(k, value, reason);
            free(reason);
            return -1;
        }
        *(int64_t *)field = v;
        return 0;
    case T_ENUM:
    case T_CHOICE:
        i = lookup_value(k->values, value);
        if (i < 0) {
            list = value_list(k->values);
            reason = kn_xasprintf("expected one of %s", list);
            *why = value_problem(k, value, reason);
            free(reason);
            free(list);
            return -1;
        }
        if (k->type == T_ENUM)
            *(int *)field = i;
        else
            replace_string(field, kn_xstrdup(k->values[i]));
        return 0;
    case T_BOOL:
        if (parse_bool(value, &i) < 0) {
            *why = value_problem(k, value, "expected yes or no");
            return -1;
        }
        *(int *)field = i;
        return 0;
    }
    KN_PANIC("config key %s.%s has no type", k->section, k->name);
}

/* ---- reading the file --------------------------------------------------- */

/*
 * inih's line buffer holds INI_MAX_LINE (200) bytes with the NUL, and a
 * longer line would be cut in two without a word.  We refuse it instead.
 */
#define MAX_LINE 199

struct load {
    struct kn_config *cfg;
    FILE *err;
    const char *path;
    FILE *fp;
    char *buf; /* our copy of the current line (getline) */
    size_t cap;
    int lineno;
    int read_errno;    /* errno of a failed read, else 0 */
    const char *value; /* the whole value of the current key line, in buf */
    bool skip;         /* inside a bad or unknown [section] */
    int set_line[NKEYS];
    int errors;
};

/* Write "file:line: message" and count it. */
__attribute__((format(printf, 3, 4))) static void
problem_at(struct load *ld, int line, const char *fmt, ...)
{
    va_list ap;
    ld->errors++;
    if (ld->err == NULL)
        return;
    if (line > 0)
        fprintf(ld->err, "%s:%d: ", ld->path, line);
    else if (ld->path != NULL)
        fprintf(ld->err, "%s: ", ld->path);
    va_start(ap, fmt);
    vfprintf(ld->err, fmt, ap);
    va_end(ap);
    fputc('\n', ld->err);
}

static char *lskip(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    return s;
}

static void rstrip(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
}

static bool key_name_char(int c)
{
    return isalnum(c) || c == '_' || c == '-' || c == '.';
}

/*
 * The ini_reader for ini_parse_stream: fgets-like, but the line comes from
 * our own getline() so that we can count it and look at it whole first.
 *
 * 1. A line longer than MAX_LINE, with a NUL byte, a '[' without ']' or
 *    neither '=' nor ':' is reported here and handed to inih as an empty
 *    line.
 * 2. Leading blanks are stripped, so inih never takes a line for the
 *    continuation of the previous value (its multi-line mode).
 * 3. A section header is checked against the table; an unknown one is
 *    reported once and its keys are skipped.
 * 4. For a key line, ld->value points at the whole trimmed value in our
 *    buffer, which inih does not touch; inih would cut it at " ;".
 */
static char *read_line(char *str, int num, void *stream)
{
    struct load *ld = stream;
    size_t limit = num - 1 < MAX_LINE ? (size_t)num - 1 : MAX_LINE;
    ssize_t n;
    char *p, *sep, *name_end;

    ld->value = NULL;
    errno = 0;
    n = getline(&ld->buf, &ld->cap, ld->fp);
    if (n < 0) {
        if (ferror(ld->fp))
            ld->read_errno = errno ? errno : EIO;
        return NULL;
    }
    ld->lineno++;
    str[0] = '\0';
    while (n > 0 && (ld->buf[n - 1] == '\n' || ld->buf[n - 1] == '\r'))
        ld->buf[--n] = '\0';
    if (strlen(ld->buf) != (size_t)n) {
        problem_at(ld, ld->lineno, "line contains a NUL byte");
        return str;
    }
    if ((size_t)n > limit) {
        problem_at(ld, ld->lineno, "line longer than %zu characters", limit);
        return str;
    }
    p = ld->buf;
    if (ld->lineno == 1 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3; /* a UTF-8 byte order mark */
    p = lskip(p);
    rstrip(p);
    if (*p == '\0' || *p == ';' || *p == '#')
        return str;
    if (*p == '[') {
        char *close = strchr(p, ']');
        char *rest = close ? lskip(close + 1) : NULL;
        ld->skip = true;
        if (close == NULL) {
            problem_at(ld, ld->lineno, "'[' without a closing ']'");
        } else if (*rest != '\0' && *rest != ';' && *rest != '#') {
            problem_at(ld, ld->lineno, "unexpected text after ']'");
        } else if (!section_known(p + 1, (size_t)(close - p - 1))) {
            char *list = known_sections();
            problem_at(ld, ld->lineno,
                       "unknown section [%.*s]; known "
                       "sections: %s",
                       (int)(close - p - 1), p + 1, list);
            free(list);
        } else {
            ld->skip = false;
            memcpy(str, p, (size_t)(close + 1 - p));
            str[close + 1 - p] = '\0';
        }
        return str;
    }
    sep = strpbrk(p, "=:");
    if (sep == NULL) {
        /* Not echoed: a stray line may well be a pasted password. */
        problem_at(ld, ld->lineno,
                   "expected 'key = value', '[section]' or a comment");
        return str;
    }
    name_end = sep;
    while (name_end > p && isspace((unsigned char)name_end[-1]))
        name_end--;
    for (char *q = p; q < name_end; q++) {
        if (!key_name_char((unsigned char)*q)) {
            problem_at(ld, ld->lineno,
                       "'%.*s' is not a key name (letters, "
                       "digits and '_')",
                       (int)(name_end - p), p);
            return str;
        }
    }
    if (name_end == p) {
        problem_at(ld, ld->lineno, "a key name is missing before '%c'", *sep);
        return str;
    }
    ld->value = lskip(sep + 1);
    memcpy(str, p, strlen(p) + 1);
    return str;
}

/* The ini_handler: one call per key line read_line() let through. */
static int on_key(void *user, const char *section, const char *name,
                  const char *value)
{
    struct load *ld = user;
    const struct key *k;
    char *why = NULL, *list;
    size_t i;

    if (ld->skip)
        return 1; /* the [section] line was reported */
    if (*section == '\0') {
        problem_at(ld, ld->lineno, "key '%s' comes before any [section]", name);
        return 1;
    }
    k = find_key(section, name);
    if (k == NULL) {
        list = known_keys(section);
        problem_at(ld, ld->lineno, "unknown key '%s' in [%s]; known keys: %s",
                   name, section, list);
        free(list);
        return 1;
    }
    i = (size_t)(k - keys);
    if (ld->set_line[i] > 0) {
        problem_at(ld, ld->lineno, "%s.%s is already set on line %d",
                   k->section, k->name, ld->set_line[i]);
        return 1;
    }
    ld->set_line[i] = ld->lineno;
    if (set_key(ld->cfg, k, ld->value ? ld->value : value, &why) < 0) {
        problem_at(ld, ld->lineno, "%s", why);
        free(why);
    }
    return 1;
}

static void read_file(struct load *ld)
{
    int rc;

    ld->fp = fopen(ld->path, "r");
    if (ld->fp == NULL) {
        problem_at(ld, 0, "cannot open the configuration: %s", strerror(errno));
        return;
    }
    rc = ini_parse_stream(read_line, ld, on_key, ld);
    if (ld->read_errno != 0)
        problem_at(ld, ld->lineno + 1, "read error: %s",
                   strerror(ld->read_errno));
    else if (rc > 0)
        /* read_line() should have caught every line inih refuses. */
        problem_at(ld, rc, "inih cannot parse this line");
    else if (rc < 0)
        problem_at(ld, 0, "inih failed (%d)", rc);
    if (ld->buf != NULL)
        explicit_bzero(ld->buf, ld->cap); /* it held passwords */
    free(ld->buf);
    ld->buf = NULL;
    fclose(ld->fp);
    ld->fp = NULL;
}

/* ---- environment and secret files --------------------------------------- */

static void apply_env(struct load *ld)
{
    for (size_t i = 0; i < NKEYS; i++) {
        const char *value;
        char *why = NULL;
        if (keys[i].env == NULL)
            continue;
        value = getenv(keys[i].env);
        if (value == NULL || *value == '\0')
            continue; /* an empty variable counts as unset */
        if (set_key(ld->cfg, &keys[i], value, &why) < 0) {
            ld->errors++;
            if (ld->err != NULL)
                fprintf(ld->err, "%s (environment): %s\n", keys[i].env, why);
            free(why);
        }
    }
}

static void read_secret_files(struct load *ld)
{
    struct kn_config *cfg = ld->cfg;
    char *pw = NULL, *user = NULL;

    /* The url's own user and password (a file overrides the password
     * below). */
    if (kn__config_redis_url_split(cfg->redis_url, NULL, NULL, NULL, &user,
                                   &pw) == NULL) {
        replace_string(&cfg->redis_password, pw);
        free(cfg->redis_user);
        cfg->redis_user = user;
    }

    for (size_t i = 0; i < KN_ARRAY_SIZE(secret_files); i++) {
        const struct secret_file *sf = &secret_files[i];
        const struct key *k = find_key(sf->section, sf->name);
        const char *path = *str_field(cfg, k->offset);
        const char *why = "";
        char *secret = NULL;

        if (path == NULL)
            continue;
        if (kn_file_read_secret(path, &secret, &why) < 0) {
            problem_at(ld, ld->set_line[k - keys],
                       "%s.%s: cannot read the password from '%s': %s",
                       k->section, k->name, path, why);
            continue;
        }
        replace_string(str_field(cfg, sf->into), secret);
    }
}

/* ---- public API --------------------------------------------------------- */

/*
 * Load the configuration in four steps, each overriding the one before:
 *
 * 1. the defaults from keys[] (a default that does not parse is our bug);
 * 2. the file, when path is not NULL;
 * 3. the environment variables named in keys[] (empty ones are ignored);
 * 4. the secret files: redis.password_file and smtp.password_file.
 *
 * Every problem is written to err (may be NULL) and counted.  If there was
 * any, everything is freed, cfg is zeroed and KN_ECONFIG returned, so a
 * caller may but need not call kn_config_free() after a failure.
 */
int kn_config_load(struct kn_config *cfg, const char *path, FILE *err)
{
    struct load ld;

    memset(cfg, 0, sizeof(*cfg));
    memset(&ld, 0, sizeof(ld));
    ld.cfg = cfg;
    ld.err = err;

    for (size_t i = 0; i < NKEYS; i++) {
        char *why = NULL;
        if (keys[i].def != NULL &&
            set_key(cfg, &keys[i], keys[i].def, &why) < 0)
            KN_PANIC("bad default for %s", why);
    }
    if (path != NULL) {
        cfg->path = kn_xstrdup(path);
        ld.path = cfg->path;
        read_file(&ld);
    }
    apply_env(&ld);
    read_secret_files(&ld);

    if (ld.errors > 0) {
        kn_config_free(cfg);
        return KN_ECONFIG;
    }
    return 0;
}

void kn_config_free(struct kn_config *cfg)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].type == T_STRING || keys[i].type == T_CHOICE)
            replace_string(str_field(cfg, keys[i].offset), NULL);
    }
    replace_string(&cfg->redis_password, NULL);
    replace_string(&cfg->redis_sentinel_password, NULL);
    free(cfg->redis_user);
    free(cfg->path);
    memset(cfg, 0, sizeof(*cfg));
}

const char *kn_config_key(size_t i, const char **section)
{
    if (i >= NKEYS)
        return NULL;
    *section = keys[i].section;
    return keys[i].name;
}
