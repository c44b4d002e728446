/*
 * smtp_client.h - kairan's own SMTP client protocol: the reply parser and
 * one session's state machine (RFC 5321, PIPELINING RFC 2920, STARTTLS RFC
 * 3207, AUTH RFC 4954), in the spirit of OpenSMTPD's mta_session and
 * Postfix's smtp(8).
 *
 * No I/O here: the session is fed the server's bytes (plaintext, after
 * TLS) and hands the bytes to send to its write callback; the adapter glue
 * (smtp.c) owns the socket, TLS (OpenSSL memory BIOs), timers and the
 * message queue.  That keeps this file testable and fuzzable alone.
 */
#ifndef KN_ADAPTERS_SMTP_CLIENT_H
#define KN_ADAPTERS_SMTP_CLIENT_H

#include <stddef.h>

/* Longest reply line taken (RFC 5321 4.5.3.1.5 says 512 with CRLF; some
 * servers send longer EHLO lines).  Longer is a protocol error. */
#define KN_SMTP_LINE_MAX 2048
/* Most lines in one reply (an EHLO reply has a dozen). */
#define KN_SMTP_LINES_MAX 100
/* Longest text kept of a reply (its first line, code stripped). */
#define KN_SMTP_TEXT_MAX 200

/* EHLO keywords understood (kn_smtp_reply.caps). */
enum {
    KN_SMTP_CAP_PIPELINING = 1u << 0,
    KN_SMTP_CAP_STARTTLS = 1u << 1,
    KN_SMTP_CAP_AUTH_PLAIN = 1u << 2,
    KN_SMTP_CAP_AUTH_LOGIN = 1u << 3,
    KN_SMTP_CAP_SMTPUTF8 = 1u << 4, /* RFC 6531 */
};

struct kn_smtp_reply {
    int code;                        /* 200..599 */
    unsigned caps;                   /* EHLO keywords seen in its lines */
    size_t nlines;                   /* lines of the reply */
    char text[KN_SMTP_TEXT_MAX + 1]; /* first line after the code, raw */
};

struct kn_smtp_parser {
    char line[KN_SMTP_LINE_MAX + 1];
    size_t len;
    struct kn_smtp_reply cur; /* the reply being read */
};

void kn_smtp_parser_init(struct kn_smtp_parser *p);

/*
 * Read bytes of server replies.  Consumes from buf until one reply is
 * complete (*used = the bytes consumed) and returns 1 with it in *r;
 * returns 0 once all len bytes are consumed without completing one; < 0
 * on a protocol error (*why says which, a fixed string): a line without a
 * 3-digit code 2xx-5xx and a separator, lines of one reply with different
 * codes, a NUL, a line or reply too long.  Lines end in CRLF (a bare LF is
 * taken as one, as Postfix's client does).
 */
int kn_smtp_parse(struct kn_smtp_parser *p, const char *buf, size_t len,
                  size_t *used, struct kn_smtp_reply *r, const char **why);

/*
 * The content of a message as the DATA command sends it: every line ends
 * in CRLF (a bare CR or LF becomes CRLF: never a bare LF on the wire, SMTP
 * smuggling), a line starting with "." gets one more (dot-stuffing), and
 * the end is ".\r\n" (after a CRLF).  Returns 0 and a heap buffer, or -1
 * if a line is longer than 998 octets (RFC 5321 4.5.3.1.6) or holds a NUL.
 */
int kn_smtp_dot_stuff(const char *in, size_t len, char **out, size_t *out_len);

/* What a session is waiting for (each has its RFC 5321 4.5.3.2 timeout). */
enum kn_smtp_wait {
    KN_SMTP_WAIT_NONE,      /* idle between messages */
    KN_SMTP_WAIT_GREETING,  /* the 220 banner: 4.5.3.2.1, 5 minutes */
    KN_SMTP_WAIT_COMMAND,   /* EHLO, STARTTLS, AUTH, RSET, QUIT */
    KN_SMTP_WAIT_MAIL,      /* MAIL: 4.5.3.2.2, 5 minutes */
    KN_SMTP_WAIT_RCPT,      /* RCPT: 4.5.3.2.3, 5 minutes */
    KN_SMTP_WAIT_DATA_INIT, /* the 354 to DATA: 4.5.3.2.4, 2 minutes */
    KN_SMTP_WAIT_DATA_DONE, /* the reply to the final ".": 4.5.3.2.6, 10 */
    KN_SMTP_WAIT_TLS,       /* the glue is doing the TLS handshake */
};

/* Where a message's transaction ended (for the detail). */
enum kn_smtp_stage {
    KN_SMTP_STAGE_MAIL,
    KN_SMTP_STAGE_RCPT,
    KN_SMTP_STAGE_DATA,
    KN_SMTP_STAGE_DOT,
};

struct kn_smtp_conf {
    const char *helo;     /* EHLO name */
    const char *username; /* NULL: no AUTH */
    const char *password;
    int starttls; /* 1: STARTTLS is required before anything else */
};

struct kn_smtp_msg {
    const char *from; /* reverse path, without <> */
    const char *rcpt; /* forward path, without <> (quoted as needed) */
    const char *data; /* kn_smtp_dot_stuff output, ending in ".\r\n" */
    size_t len;
};

struct kn_smtp_cbs {
    /* Bytes to send to the server (the glue encrypts them with TLS on). */
    void (*write)(void *ctx, const char *buf, size_t len);
    /* The server said 220 to STARTTLS: start the TLS handshake and call
     * kn_smtp_tls_done when it is complete. */
    void (*starttls)(void *ctx);
    /* The session is ready for a message (kn_smtp_send). */
    void (*ready)(void *ctx);
    /* The message's transaction ended: code 2xx delivered, 4xx, 5xx; text
     * the server's (raw: may name the address).  Called before ready. */
    void (*result)(void *ctx, int code, const char *text,
                   enum kn_smtp_stage stage);
    /* The session is over (an error, a 421, or after QUIT): code is the
     * server's reply code or 0, why a sentence (raw server text possible).
     * The glue closes the connection; nothing is called after this. */
    void (*fail)(void *ctx, int code, const char *why);
};

struct kn_smtp_session;

/* A new session; conf's strings must outlive it. */
struct kn_smtp_session *kn_smtp_session_new(const struct kn_smtp_conf *conf,
                                            const struct kn_smtp_cbs *cbs,
                                            void *ctx);
void kn_smtp_session_free(struct kn_smtp_session *s);

/* The connection is encrypted from the start (smtps): never STARTTLS. */
void kn_smtp_set_tls(struct kn_smtp_session *s);

/*
 * The relay is on this host (the glue saw a loopback peer address): AUTH
 * may be sent without TLS.  Without it (and without TLS) a session that
 * has a username fails after EHLO with KN_SMTP_PLAIN_AUTH_REFUSED, before
 * any credential is sent.
 */
void kn_smtp_set_local(struct kn_smtp_session *s);

/* Why a session refused to send credentials in clear (a fixed string). */
#define KN_SMTP_PLAIN_AUTH_REFUSED                                             \
    "configuration: AUTH credentials are never sent without TLS to a relay "   \
    "that is not on this host (smtp.tls = none is for a relay on 127.0.0.1, "  \
    "::1 or localhost): set smtp.tls = starttls or implicit"

/* Bytes from the server (plaintext).  Returns 0, or -1 after fail. */
int kn_smtp_input(struct kn_smtp_session *s, const char *buf, size_t len);

/* The TLS handshake after STARTTLS succeeded: EHLO again. */
void kn_smtp_tls_done(struct kn_smtp_session *s);

/* The glue ended the connection: the session calls nothing more. */
void kn_smtp_abort(struct kn_smtp_session *s);

/* Start a transaction; only after ready.  msg must live until result.
 * A message with a UTF-8 address (RFC 6531) goes with SMTPUTF8; if the
 * relay does not offer it, nothing is sent and result comes at once (553,
 * stage MAIL), from inside this call. */
void kn_smtp_send(struct kn_smtp_session *s, const struct kn_smtp_msg *msg);

/* Polite end: QUIT (if idle); fail(…, 0, "quit") follows its reply. */
void kn_smtp_quit(struct kn_smtp_session *s);

/* What the session waits for now (the glue picks the timeout). */
enum kn_smtp_wait kn_smtp_waiting(const struct kn_smtp_session *s);

/* 1 once a reply for the current transaction arrived (0 before: a
 * reused connection that died then can take the message again safely);
 * still true after fail or abort. */
int kn_smtp_answered(const struct kn_smtp_session *s);

/* Complete replies read so far: the glue restarts a reply's timeout
 * when this changes, never on a byte alone (a relay sending its reply a
 * byte at a time must not hold a message for ever). */
unsigned long kn_smtp_replies(const struct kn_smtp_session *s);

/* EHLO keywords of the last EHLO reply; 1 if PIPELINING is used. */
unsigned kn_smtp_caps(const struct kn_smtp_session *s);

#endif
