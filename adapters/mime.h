/*
 * mime.h - building Internet messages (RFC 5322, MIME, RFC 2047) for
 * Japanese text.  The address rules it applies are in model/address.h.
 *
 * Everything produced uses CRLF line ends, keeps every line at most 76
 * octets (header lines are folded before 78 columns; the body is UTF-8 in
 * base64), and never lets CR, LF or NUL from input reach a header.
 */
#ifndef KN_ADAPTERS_MIME_H
#define KN_ADAPTERS_MIME_H

#include <stddef.h>
#include <stdint.h>

/*
 * Encode one header as "Name: value" with RFC 2047 B encoded-words
 * (charset UTF-8) if the value is not plain printable ASCII, folded so that
 * no line exceeds 76 octets, never splitting a UTF-8 character between
 * encoded-words.  Ends with CRLF.  Returns a heap string.
 */
char *kn_mime_header(const char *name, const char *value);

/*
 * Decode an unfolded or folded header value containing RFC 2047 encoded
 * words (B and Q, UTF-8 charset) back into UTF-8; whitespace between
 * adjacent encoded-words is dropped as RFC 2047 says.  Returns 0 and a heap
 * string, or KN_EINVAL.
 */
int kn_mime_header_decode(const char *value, char **out);

/* Base64 with CRLF after every 76 output characters (and at the end). */
char *kn_mime_base64_lines(const void *data, size_t len);

/*
 * The deterministic Message-ID for one broadcast to one recipient:
 * "<kn.<hex16 of SHA-256(bcast)>.<blind index>@<domain>>".  Heap string.
 */
char *kn_mime_message_id(const char *bcast, const char *bindex,
                         const char *domain);

/* RFC 5322 date in JST: "Sun, 22 Nov 2026 07:00:00 +0900". */
void kn_mime_date(int64_t ms, char *buf, size_t len);

struct kn_mime_msg {
    const char *from;       /* "Name <addr>" or "addr" (name may be Japanese) */
    const char *reply_to;   /* NULL for none */
    const char *to;         /* plain address (quoted here if needed) */
    const char *subject;    /* UTF-8 */
    const char *body;       /* UTF-8, LF or CRLF line ends */
    const char *message_id; /* with angle brackets */
    int64_t date_ms;
    int urgent; /* adds Priority/Importance headers */
    /* The one-click unsubscribe URL (RFC 8058) or NULL: adds
     * "List-Unsubscribe: <url>" and "List-Unsubscribe-Post:
     * List-Unsubscribe=One-Click".  Printable ASCII without spaces, '<',
     * '>' or ','; that line alone may pass 76 octets (RFC 2369: no
     * folding inside the brackets), never 998. */
    const char *unsub;
    /* Content-Language ("ja", "en"; a tag kn_lang_valid takes), or NULL:
     * none */
    const char *lang;
};

/* RFC 8058's second header, as the SMTP and SendGrid paths send it. */
#define KN_MIME_UNSUB_POST_NAME  "List-Unsubscribe-Post"
#define KN_MIME_UNSUB_POST_VALUE "List-Unsubscribe=One-Click"
#define KN_MIME_UNSUB_POST_HEADER                                              \
    KN_MIME_UNSUB_POST_NAME ": " KN_MIME_UNSUB_POST_VALUE

/* 1 if url may go into List-Unsubscribe's brackets: https://, printable
 * ASCII without spaces, '<', '>', ',' or '"', at most 900 bytes. */
int kn_mime_unsub_url_ok(const char *url);

/*
 * Build a whole message (headers + blank line + body) with CRLF everywhere:
 * Date, From, To, Subject, Message-ID, MIME-Version, Content-Type
 * text/plain; charset=UTF-8, Content-Transfer-Encoding: base64.
 * Returns 0 and a heap buffer (NUL-terminated, length in *len), or
 * KN_EINVAL if a field holds CR/LF/NUL or invalid UTF-8 (or unsub is not
 * a URL as above).
 */
int kn_mime_build(const struct kn_mime_msg *m, char **out, size_t *len);

/*
 * Split "Name <addr>" into heap strings (name may be NULL).  Returns 0 or
 * KN_EINVAL.
 */
int kn_mime_split_mailbox(const char *mailbox, char **name, char **addr);

#endif
