/*
 * ack.h - the confirmation (安否確認) side of an "ack" broadcast: the small
 * page behind each personal link <http.public_url>/a/<token> and the two
 * Redis steps that read a broadcast for it and record a confirmation once.
 * The HTTP server (dispatcher/http/confirm.c) routes GET and POST
 * /a/{token} here; the token itself is made and checked by kn_ack_token /
 * kn_ack_parse (broadcast.h).
 */
#ifndef KN_DISPATCHER_ACK_H
#define KN_DISPATCHER_ACK_H

#include <stdint.h>

#include "queue/redis_uv.h"

/*
 * ack_view: what the page shows.
 * KEYS: bc:<id>, bc:<id>:r, bc:<id>:ack, bc:<id>:m   ARGV: rcpt
 * Returns {} when the broadcast is unknown, has no "ack", or rcpt is not
 * one of its recipients (bc:<id>:m, written by commit_page: O(1)); else
 * {subject, body, drill, confirmed ms or ""}.
 *
 * ack_confirm: record a confirmation once (HSETNX; "acked" counts new ones).
 * KEYS: the same   ARGV: rcpt, now ms
 * Returns -1 (unknown, as above: nothing recorded), 0 (already
 * confirmed: nothing new) or 1 (recorded now).
 */
extern struct kn_redis_script kn_script_ack_view;
extern struct kn_redis_script kn_script_ack_confirm;

/* Compute the scripts' SHA-1s (once, before use). */
void kn__ack_scripts_init(void);

/*
 * The Content-Security-Policy of every page below: no script at all,
 * only the page's own inline style (by its hash), a form that may post
 * only to this origin, no framing.  Static string.
 */
const char *kn__ack_csp(void);

/*
 * The confirmation page of one recipient, as a heap UTF-8 HTML string:
 * the subject and the full body (escaped; a drill marked 【訓練】), and
 * either the "確認しました" button (a form POSTing to the same URL) or, when
 * confirmed_ms > 0, the time it was confirmed.  thanks != 0: the answer to
 * the POST (a thank-you line above the message).
 */
char *kn__ack_page(const char *subject, const char *body, int drill,
                   int64_t confirmed_ms, int thanks);

/* The page for an invalid or unknown link (answered with 404).  Static. */
const char *kn__ack_page_invalid(void);

#endif
