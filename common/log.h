/*
 * log.h - JSON-lines logging: one object per event with the time in JST
 * (RFC 3339, +09:00), the level, the subsystem, the message and any extra
 * string fields.  Goes to stderr unless kn_log_open() names a file.
 *
 * Never pass a plaintext address, token or key as a field: mask it first
 * with kn_mask_address().
 */
#ifndef KN_COMMON_LOG_H
#define KN_COMMON_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum kn_log_level { KN_LOG_DEBUG, KN_LOG_INFO, KN_LOG_WARN, KN_LOG_ERROR };

extern enum kn_log_level kn_log_min;

/* Parse "debug", "info", "warn", "error"; returns 0 or KN_EINVAL. */
int kn_log_level_parse(const char *s, enum kn_log_level *out);

/* Send logs to path (append) instead of stderr; NULL means stderr. */
int kn_log_open(const char *path);

/*
 * Log one event.  After msg come key/value string pairs ended by NULL:
 *   kn_log(KN_LOG_INFO, "smtp", "delivered", "bc", id, "code", "250", NULL);
 * A NULL value (with a non-NULL key) is written as JSON null.
 */
void kn_log(enum kn_log_level lvl, const char *subsys, const char *msg, ...)
    __attribute__((sentinel));

/* Same with a printf-style message and no extra fields. */
void kn_logf(enum kn_log_level lvl, const char *subsys, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define kn_log_enabled(lvl) ((lvl) >= kn_log_min)

/*
 * Mask an address for logs and reports:
 *   email "taro.yamada@docomo.ne.jp" -> "t***@docomo.ne.jp"
 *   anything else (LINE id, push token) -> first 4 characters + "***".
 * Writes into buf (always NUL-terminated) and returns buf.
 */
char *kn_mask_address(const char *addr, char *buf, size_t len);

/*
 * Copy text into buf masking every e-mail address found in it (for
 * provider replies that echo the recipient).  Returns buf.
 */
char *kn_mask_text(const char *text, char *buf, size_t len);

#endif
