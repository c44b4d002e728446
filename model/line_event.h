/*
 * line_event.h - LINE's webhook, as kairan reads it: is a body signed
 * with the channel secret, and which follow/unfollow events does it hold.
 * Pure functions (no loop, no Redis): the LINE adapter sends, the HTTP
 * route receives; both depend on this, not on each other.
 */
#ifndef KN_MODEL_LINE_EVENT_H
#define KN_MODEL_LINE_EVENT_H

#include <stddef.h>
#include <stdint.h>

/*
 * 1 if signature_b64 (the X-Line-Signature header: standard base64 of
 * HMAC-SHA256(channel secret, raw body)) is valid for body[0..len), else
 * 0.  Compared in constant time.  A NULL or empty secret or signature is
 * never valid.
 */
int kn_line_webhook_verify(const char *secret, const char *body, size_t len,
                           const char *signature_b64);

/*
 * Parse a webhook body ({"destination": .., "events": [..]}) and call cb
 * once per follow or unfollow event from a user: type "follow" or
 * "unfollow", the user id (borrowed for the call; never log it unmasked),
 * unblocked 1 for a follow with follow.isUnblocked true, and the event's
 * "timestamp" (ms since the epoch; 0 when absent or not a positive
 * integer: LINE redelivers events, so the receiver orders them by this,
 * not by arrival).  Other events and
 * sources (groups, rooms) are skipped.  Returns the number of callbacks
 * made, or KN_EINVAL if the body is not such a JSON object.
 */
int kn_line_webhook_events(const char *body, size_t len,
                           void (*cb)(const char *type, const char *user_id,
                                      int unblocked, int64_t timestamp_ms,
                                      void *arg),
                           void *arg);

/*
 * Call cb once per text message event from a user (not a redelivery:
 * deliveryContext.isRedelivery true is skipped, the first delivery was
 * answered): the user id and the text (borrowed; never log either), and
 * the event's replyToken (NULL if absent or implausible).  Returns the
 * number of callbacks, or KN_EINVAL if the body is not a webhook object.
 */
int kn_line_webhook_messages(const char *body, size_t len,
                             void (*cb)(const char *user_id, const char *text,
                                        const char *reply_token, void *arg),
                             void *arg);

/* Digits of a LINE link code (registration page, LINEで受け取る). */
#define KN_LINE_CODE_DIGITS 8

/*
 * The link code a guardian typed into LINE: KN_LINE_CODE_DIGITS digits
 * (ASCII or full-width), spaces and hyphens ignored, nothing else.  0 and
 * the digits into out (outlen > KN_LINE_CODE_DIGITS), or -1: not a code.
 */
int kn_line_link_code(const char *text, char *out, size_t outlen);

#endif
