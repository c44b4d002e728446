/*
 * check.h - config.c's validators (check.c), private to config/.  Each
 * returns NULL when the value is fine, else a sentence saying what is
 * expected (never the value: it may be a secret).
 */
#ifndef KN_CONFIG_CHECK_H
#define KN_CONFIG_CHECK_H

#include <stdbool.h>

/* redis.url */
const char *kn__config_check_redis_url(const char *value);
/*
 * Split a redis:// url: NULL and the parts (heap strings; NULL outputs are
 * skipped), or why it is refused (outputs untouched).
 */
const char *kn__config_redis_url_split(const char *url, char **host, int *port,
                                       int *db, char **user, char **password);
/* redis.sentinels: "host:port,host:port" (at most KN_MAX_SENTINELS) */
const char *kn__config_check_sentinels(const char *value);
/* redis.master_name: 1-64 letters, digits, '.', '_', '-' */
const char *kn__config_check_master_name(const char *value);
/* smtp.url; *implicit says smtps:// */
const char *kn__config_smtp_url_problem(const char *url, bool *implicit);
const char *kn__config_check_smtp_url(const char *value);
/* smtp.url's host (without the [] of an IPv6 address), heap; NULL if the
 * url is refused. */
char *kn__config_smtp_url_host(const char *url);
/* smtp.from, smtp.reply_to: "Name <local@domain>" or "local@domain" */
const char *kn__config_mailbox_problem(const char *value);
/* smtp.tls's name for a mode (config.c), "?" for none */
const char *kn__config_tls_name(int mode);
/* smtp.helo */
const char *kn__config_check_hostname(const char *value);
/* smtp.bounce_local: 1-32 of a-z 0-9 . - (no '+': it separates the ref). */
const char *kn__config_check_bounce_local(const char *value);
/* sendgrid.webhook_public_key: base64 DER of an ECDSA P-256 public key. */
const char *kn__config_check_ec_public_key(const char *value);
/* http.listen: what kn_config_listen_parse takes */
const char *kn__config_check_listen(const char *value);
/* http.public_url: an absolute http(s) URL, host, no userinfo/query/fragment */
const char *kn__config_check_public_url(const char *value);
/* http.trusted_proxies: numeric addresses */
const char *kn__config_check_proxies(const char *value);

#endif
