/*
 * dsn.h - what came back to a VERP bounce address: an RFC 3464 delivery
 * status notification (a bounce or a delay), an auto-reply, or something
 * else; and the words a teacher reads for a bounce.
 *
 * Pure functions over borrowed bytes, no I/O: `kairanctl bounce` (a hostile
 * message on stdin), the SMTP refusal at RCPT and the SendGrid webhook
 * share them.  Nothing here ever returns or keeps a whole message; the
 * Final-Recipient address is returned only for the caller to hash and
 * compare, never to store or log.
 */
#ifndef KN_MODEL_DSN_H
#define KN_MODEL_DSN_H

#include <stddef.h>

/* The biggest message `kairanctl bounce` reads (a DSN with the original's
 * headers is a few kB; a returned full message may be larger). */
#define KN_DSN_MAX_INPUT (1024 * 1024)

enum kn_dsn_kind {
    KN_DSN_FAILED,    /* Action: failed: a bounce */
    KN_DSN_DELAYED,   /* Action: delayed: a soft bounce, still retried */
    KN_DSN_AUTOREPLY, /* vacation notice, auto-reply: never a bounce */
    KN_DSN_OTHER      /* not a DSN kairan counts: never a bounce */
};

struct kn_dsn {
    enum kn_dsn_kind kind;
    char status[16];      /* "5.1.1" (failed/delayed), "" if none given */
    char final_rcpt[320]; /* the Final-Recipient address, normalised */
    const char *why;      /* AUTOREPLY/OTHER: a static reason */
};

/*
 * Parse one message (headers and body, CRLF or LF lines) of len bytes.
 * Always fills *out and returns its kind:
 *   1. auto-reply markers (Auto-Submitted: auto-replied, X-Autoreply,
 *      Precedence: auto_reply, a vacation Subject) make AUTOREPLY, unless
 *      the message is a multipart/report DSN;
 *   2. a multipart/report; report-type=delivery-status whose
 *      message/delivery-status part has a recipient block with Action
 *      failed (or, failing that, delayed) makes FAILED (DELAYED), with the
 *      block's Status and Final-Recipient (rfc822 or utf-8 type);
 *   3. anything else (a DSN of success, no Final-Recipient, a plain
 *      message) is OTHER with the reason in out->why.
 */
enum kn_dsn_kind kn_dsn_parse(const char *msg, size_t len, struct kn_dsn *out);

/* Text for a kind: "failed", "delayed", "auto-reply", "other". */
const char *kn_dsn_kind_name(enum kn_dsn_kind k);

/*
 * The form of an address that is hashed and compared: surrounding space
 * and <> dropped, a quoted local part unquoted, everything lower-case.
 * Writes at most cap bytes (NUL included); returns 0, or -1 if it does
 * not fit or is not an address (not one '@', a control character, a
 * space outside the quotes).
 */
int kn_dsn_addr_norm(const char *addr, char *out, size_t cap);

/* 1 if a hard bounce (status class 5; also an empty status of a failed
 * DSN), 0 if soft (class 4). */
int kn_dsn_status_hard(const char *status);

/* 1 if the address's domain is a Japanese mobile carrier's (docomo, au,
 * SoftBank, Y!mobile, Rakuten), whose receive filters (ドメイン指定受信)
 * refuse unknown senders with 5.1.1 or 5.7.1. */
int kn_dsn_carrier_domain(const char *addr);

/*
 * The reason a teacher understands for a bounce status (never an
 * address): ja 1 for Japanese, 0 for English.  carrier: the address was
 * at a carrier domain.  A static string.
 */
const char *kn_dsn_reason(const char *status, int carrier, int ja);

/* ---- the VERP reference and the recorded detail ---- */

/* Soft bounces (4.x.x, delayed) suppress an address after this many
 * (each broadcast once) within this window. */
#define KN_BOUNCE_SOFT_LIMIT     3
#define KN_BOUNCE_SOFT_WINDOW_MS (14LL * 24 * 3600 * 1000)

/* Characters of a bounce reference: 16 of RFC 4648 base32, lower-case. */
#define KN_BOUNCE_REF_LEN 16

/*
 * The reference from 10 bytes (80 bits: from a keyed hash, so that no one
 * can guess one) into out (KN_BOUNCE_REF_LEN + 1 bytes).
 */
void kn_bounce_ref_encode(const unsigned char bytes[10], char *out);

/* 1 if ref is exactly KN_BOUNCE_REF_LEN characters of a-z 2-7. */
int kn_bounce_ref_valid(const char *ref);

/*
 * The reference of a VERP address "<local>+<ref>@<domain>" (as Postfix
 * gives ${recipient}, any case) into out; 0, or -1 if it is not one of
 * ours (local part not local, no valid reference).
 */
int kn_bounce_ref_from_addr(const char *addr, const char *local, char *out);

/*
 * The detail recorded with a bounce: "<status>;<carrier 0|1>;<source>"
 * (source: dsn, "rcpt <reply code>", "sendgrid <event>"), e.g.
 * "5.1.1;1;dsn", "5.1.1;0;rcpt 550".  No address, no
 * server text: the reason is made from it where it is shown.
 */
void kn_bounce_detail(char *out, size_t cap, const char *status, int carrier,
                      const char *source);

/* Read a detail back: status (may be "") into status, the carrier flag
 * into *carrier; 0, or -1 if it is not one. */
int kn_bounce_detail_parse(const char *detail, char *status, size_t cap,
                           int *carrier);

#endif
