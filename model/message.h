/*
 * message.h - the text of a notification on every channel, in one place:
 * the drill marks, the confirmation words and personal link of an ack
 * broadcast, and each channel's cuts (LINE's 5,000 UTF-16 units per text,
 * the push providers' 4,096-byte payload).
 *
 * Each function is one channel-neutral step; the adapters (smtp, outbox,
 * sendgrid, line, fcm, apns) put the steps together for their format.  The
 * rule every channel keeps: a personal link is never cut off -- what is cut
 * is the body before it (docs/drills.md: the link is in every message).
 * Pure functions over borrowed strings; results are heap strings the
 * caller frees.
 */
#ifndef KN_MODEL_MESSAGE_H
#define KN_MODEL_MESSAGE_H

#include <stddef.h>

/* How a channel lays out its text (line breaks, where the link goes). */
enum kn_text_channel {
    KN_TEXT_MAIL, /* e-mail: smtp, outbox, sendgrid */
    KN_TEXT_LINE, /* LINE text messages */
    KN_TEXT_PUSH  /* FCM and APNs notifications */
};

/*
 * 1 if s[0..n) holds no CR, LF or NUL: text that may go into a header line
 * (mail header injection guard; the broadcast parser refuses a subject or
 * name without it).
 */
int kn_header_safe(const char *s, size_t n);

/* The subject prefix of a drill: "【訓練】". */
extern const char kn_message_drill_prefix[];
/* The first line of a drill's body: "※これは訓練です。(This is a drill.)". */
extern const char kn_message_drill_line[];
/* The words before a personal confirmation link. */
extern const char kn_message_link_words[];
/* What a cut text ends with: "…". */
extern const char kn_message_ellipsis[];

/* The subject as every channel shows it: for a drill, kn_message_drill_prefix
 * first (a drill must never be mistaken for the real thing).  subject may be
 * NULL (""). */
char *kn_message_subject(int drill, const char *subject);

/*
 * The body before any link: for a drill, the drill line first, then a
 * blank line (mail, LINE) or one line break (push: a lock screen has
 * little room).  body may be NULL ("").
 */
char *kn_message_body(enum kn_text_channel ch, int drill, const char *body);

/*
 * The confirmation words and the personal link as a channel writes them
 * after the body; "" when link is NULL:
 *   mail  "\n\n<words>\n<link>\n"
 *   push  "\n\n<words>\n<link>"
 *   LINE  "<words>\n<link>"   (a text message of its own)
 */
char *kn_message_link_text(enum kn_text_channel ch, const char *link);

/*
 * body cut to at most keep bytes (at a UTF-8 character boundary, with
 * kn_message_ellipsis appended when anything was cut), then link_text
 * whole.  keep >= strlen(body) (SIZE_MAX, say) keeps the whole body.
 * link_text may be NULL ("").  This is the one way a body is cut in front
 * of a link: the link itself is never cut.
 */
char *kn_message_body_with_link(const char *body, size_t keep,
                                const char *link_text);

/*
 * The foot of an e-mail (issue 16, docs/mypage.md): the guardian's "my
 * page" link after everything else, "" when url is NULL:
 *   "\n\n--\n<ja words>\n[<en words>\n]<url>\n"
 * The English line is there unless lang is "ja" (lang NULL: unknown, both).
 */
char *kn_message_mypage_text(const char *lang, const char *url);
/* The Japanese and English words before the my-page link. */
extern const char kn_message_mypage_words[], kn_message_mypage_words_en[];

/* ---- LINE ---- */

/* LINE's limit on one text message, in UTF-16 code units. */
#define KN_MESSAGE_LINE_TEXT_MAX 5000
/* Text messages per LINE request (the API's limit). */
#define KN_MESSAGE_LINE_TEXTS 5

/*
 * The LINE text messages of a notification: the subject (drill prefix,
 * cut to KN_MESSAGE_LINE_TEXT_MAX units), then the body (drill line first)
 * over up to four messages, the last cut with a note that the full text is
 * in the e-mail or behind the link; with a personal link, up to three body
 * messages and the link in a last message of its own (never cut off).  CR
 * and CRLF become LF.  Returns the number of texts (1..5) written into
 * texts[] as heap strings the caller frees.
 */
size_t kn_message_line_texts(int drill, const char *subject, const char *body,
                             const char *link,
                             char *texts[KN_MESSAGE_LINE_TEXTS]);

/* 1 if url may go into List-Unsubscribe's brackets (RFC 2369, RFC 8058):
 * https:// (any case), printable ASCII without spaces, '<', '>', ',' or
 * '"', at most 900 bytes.  E-mail without such a URL goes without the
 * header; kairand --check notes an http.public_url that gives none. */
int kn_unsub_url_ok(const char *url);

#endif
