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

#include <stddef.h>
#include <stdint.h>

#include "queue/redis_uv.h"

/*
 * ack_view: what the page shows.
 * KEYS: bc:<id>, bc:<id>:r, bc:<id>:ack, bc:<id>:m, bc:<id>:fam
 * ARGV: rcpt
 * Returns {} when the broadcast is unknown, has no "ack", or rcpt is not
 * one of its recipients (bc:<id>:m, written by commit_page: O(1)); else
 * {subject, body, drill, confirmation of rcpt or "", choices JSON or "",
 * tenant, then per child: id, confirmation or ""}: the children are rcpt,
 * then the siblings whose guardian this link reaches (bc:<id>:fam,
 * written by commit_page when a recipient's address already had another
 * recipient's job).  A confirmation is kn_ack_value's JSON (or an older
 * plain time).
 *
 * ack_confirm: record confirmations once each (HSETNX; "acked" counts new
 * ones, "ans:<i>" the answers).
 * KEYS: the same   ARGV: rcpt, now ms, value (kn_ack_value), answer or "",
 * then the children to confirm (none: rcpt; "*": every child of the link;
 * others ignored).  Each is the field bc:<id>:ack[<child id>] = value.
 * Returns -1 (unknown, as above: nothing recorded), how many were
 * recorded now (0: nothing new), -2 (answer missing or not one of the
 * choices), -3 (an answer where the broadcast offers none).
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

/* That policy for a page whose one style sheet (inline) is style[0..len),
 * into out (256 bytes are enough); the unsubscribe page uses it too. */
void kn__page_csp(const char *style, size_t len, char *out, size_t cap);

/* What the confirmation page of one recipient shows (all borrowed). */
struct kn_ack_view {
    const char *subject, *body;
    int drill;
    int64_t confirmed_ms;       /* 0: not confirmed yet */
    const char *const *choices; /* the answers offered; may be NULL */
    size_t nchoices;
    int answer;          /* the recorded answer's index, -1: none */
    const char *comment; /* the recorded comment (plain text), or NULL */
    const char *error;   /* a refused POST: what to fix, or NULL */
    /* subject and body are a translation in this language (issue 16),
     * or NULL: the Japanese text */
    const char *lang;
};

/*
 * The confirmation page of one recipient, as a heap UTF-8 HTML string:
 * the subject and the full body (escaped; a drill marked 【訓練】), and
 * either the form (a POST to the same URL: one radio button per choice,
 * required when there are choices, an optional one-line comment of at
 * most KN_ACK_COMMENT_MAX characters, and the "確認しました" button) or,
 * when confirmed_ms > 0, the time it was confirmed with the answer and
 * the comment (escaped).  thanks != 0: the answer to the POST (a
 * thank-you line above the message); v->error: shown above the form.
 */
char *kn__ack_page(const struct kn_ack_view *v, int thanks);

/* One child on the page of a guardian of several (all borrowed). */
struct kn__ack_child {
    const char *id;
    const char *name; /* NULL: shown by id */
    int64_t confirmed_ms;
    int answer;          /* the recorded answer's index, -1: none */
    const char *comment; /* the recorded comment (plain text), or NULL */
};

/*
 * The page of a guardian of several children in this broadcast: the
 * message of v (v's own confirmation fields unused), then each child with
 * its own form (the answers of v, a comment, "確認しました"; posting
 * child=<id>) or its confirmation time, answer and comment, and one form
 * for all the children not yet confirmed at once (child=*).  Heap UTF-8
 * HTML.
 */
char *kn__ack_page_children(const struct kn_ack_view *v,
                            const struct kn__ack_child *kids, size_t n,
                            int thanks);

/* The page for an invalid or unknown link (answered with 404).  Static. */
const char *kn__ack_page_invalid(void);

#endif
