/*
 * address.h - one check per channel for the addresses kairan sends to:
 * e-mail, LINE user id, FCM registration token, APNs device token.
 *
 * Every place that takes an address (CSV import, broadcast JSON, the
 * adapters) uses these, so they can never disagree.  Each check returns 0,
 * or KN_EINVAL with a short reason in *why (a static string; why may be
 * NULL).  Pure functions over borrowed strings.
 */
#ifndef KN_MODEL_ADDRESS_H
#define KN_MODEL_ADDRESS_H

#include <stddef.h>

/* ---- e-mail ---- */

/*
 * Check an e-mail address: exactly one '@' outside a quoted local part, a
 * non-empty local part (<= 64 octets) and domain (<= 255), no control
 * characters, no spaces outside quotes, valid UTF-8.  Carrier addresses
 * such as "taro..yamada.@docomo.ne.jp" are accepted.
 */
int kn_addr_check(const char *addr, const char **why);

/*
 * The address as it must be written in an SMTP envelope or a To: header:
 * unchanged if the local part is a dot-atom, else with the local part
 * quoted (RFC 5321 Quoted-string, as Postfix does):
 *   taro..yamada.@docomo.ne.jp -> "taro..yamada."@docomo.ne.jp
 * Returns a heap string.
 */
char *kn_addr_quote(const char *addr);

/* 1 if addr matches the common `email` format (dot-atom local part) that
 * SendGrid and similar APIs accept. */
int kn_addr_is_dot_atom(const char *addr);

/* 1 if c is RFC 5322 atext (its ASCII part). */
int kn_addr_atext(unsigned char c);

/* ---- LINE ---- */

/*
 * A LINE user id: 'U' and 32 lower-case hex digits (the Messaging API's
 * multicast takes user ids only; PROVIDERS.md "Traps").
 */
#define KN_ADDR_LINE_LEN 33
int kn_addr_line_check(const char *id, const char **why);

/* ---- FCM ---- */

/*
 * An FCM registration token: 1 to KN_ADDR_FCM_MAX printable ASCII
 * characters, no space, '"' or '\'.
 *
 * Why these bounds: Firebase documents registration tokens as opaque
 * strings and publishes no maximum length (neither the HTTP v1 reference
 * nor the client guides give one).  Tokens seen today are ~150-200
 * characters of URL-safe base64 with ':' ("<id>:APA91b...").  The only
 * upper bound Google has stated is a Google engineer's answer for GCM
 * registration ids (the FCM tokens' predecessor): "the max size for a
 * cookie, which is 4K" -- so 4096, never less, lest a valid token be
 * refused at the door.  The character rule is not Google's either: it
 * keeps tokens safe in CSV, JSON and logs, and real tokens never use
 * those characters.  A very long token leaves less of the 4096-byte
 * request for the notification text (adapters/push.c cuts the body).
 */
#define KN_ADDR_FCM_MAX 4096
int kn_addr_fcm_check(const char *token, const char **why);

/* ---- APNs ---- */

/*
 * An APNs device token as hex text: an even number of hex digits (either
 * case), KN_ADDR_APNS_MIN to KN_ADDR_APNS_MAX of them.  It goes into the
 * request path (/3/device/<token>), so nothing else may pass.
 *
 * Why these bounds: Apple says "APNs device tokens are of variable length.
 * Do not hard-code their size." (UIKit,
 * application(_:didRegisterForRemoteNotificationsWithDeviceToken:)), and
 * every token issued so far is 32 bytes (AppKit's page of the same method:
 * "The size of a device token is 32 bytes"; PUSH-CHECKLIST.md: 64 hex
 * today).  So: at least 32 bytes (64 digits: shorter is a truncated
 * token), and room to grow to 100 bytes (200 digits).  Apple documents no
 * maximum; 200 is generous for a longer token yet keeps the request path
 * short.  Before this rule the import took 64-200 digits and the adapter
 * 16-400; the import's bounds win because the directory already holds
 * only such tokens.
 */
#define KN_ADDR_APNS_MIN 64
#define KN_ADDR_APNS_MAX 200
int kn_addr_apns_check(const char *token, const char **why);

/* ---- reasons ---- */

/*
 * The reason why (as one of the checks above returned it) in Japanese, in
 * words an office clerk acts on ("「@」が 2 つ以上あります"): a static
 * string, a general one for a reason not in the table (never NULL).
 */
const char *kn_addr_why_ja(const char *why);

#endif
