/*
 * smtp_client.c - the SMTP client protocol: reply parser and session state
 * machine (smtp_client.h).  No I/O: the glue in smtp.c feeds it.
 *
 * A session goes: greeting, EHLO, [STARTTLS, (TLS by the glue), EHLO],
 * [AUTH PLAIN with its initial response, or AUTH LOGIN], then transactions
 * on the same connection, one recipient each: [RSET,] MAIL, RCPT, DATA,
 * content, ".".  With PIPELINING (RFC 2920) the commands of a transaction
 * go in one write and their replies are matched in order; without it one
 * command at a time.  STARTTLS is never pipelined, and bytes the server
 * sent after its 220 to STARTTLS are a protocol error (never read as a
 * reply: CVE-2011-0411 and its kin).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/smtp_client.h"
#include "common/codec.h"
#include "common/kn.h"

/* ---- reply parser ---- */

void kn_smtp_parser_init(struct kn_smtp_parser *p)
{
    memset(p, 0, sizeof(*p));
}

static int word_eq(const char *s, size_t n, const char *w)
{
    return strlen(w) == n && strncasecmp(s, w, n) == 0;
}

/* EHLO keywords of one reply line's text (after "250-"). */
static unsigned line_caps(const char *t, size_t n)
{
    unsigned caps = 0;
    size_t i = 0, k;
    /* The keyword: up to a space or '=' (old "AUTH=LOGIN" form). */
    while (i < n && t[i] != ' ' && t[i] != '=')
        i++;
    if (word_eq(t, i, "PIPELINING"))
        return KN_SMTP_CAP_PIPELINING;
    if (word_eq(t, i, "STARTTLS"))
        return KN_SMTP_CAP_STARTTLS;
    if (word_eq(t, i, "SMTPUTF8"))
        return KN_SMTP_CAP_SMTPUTF8;
    if (!word_eq(t, i, "AUTH"))
        return 0;
    while (i < n) {
        while (i < n && (t[i] == ' ' || t[i] == '='))
            i++;
        k = i;
        while (i < n && t[i] != ' ')
            i++;
        if (word_eq(t + k, i - k, "PLAIN"))
            caps |= KN_SMTP_CAP_AUTH_PLAIN;
        else if (word_eq(t + k, i - k, "LOGIN"))
            caps |= KN_SMTP_CAP_AUTH_LOGIN;
    }
    return caps;
}

/* One complete line (CR LF stripped).  1: the reply ends with it. */
static int parse_line(struct kn_smtp_parser *p, const char **why)
{
    const char *l = p->line;
    size_t n = p->len;
    int code, last;
    if (n > 0 && l[n - 1] == '\r')
        n--;
    if (n < 3 || l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '9' ||
        l[2] < '0' || l[2] > '9' || (n > 3 && l[3] != ' ' && l[3] != '-')) {
        *why = "not an SMTP reply line";
        return -1;
    }
    code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
    last = n == 3 || l[3] == ' ';
    if (p->cur.nlines > 0 && code != p->cur.code) {
        *why = "lines of one reply with different codes";
        return -1;
    }
    if (++p->cur.nlines > KN_SMTP_LINES_MAX) {
        *why = "reply with too many lines";
        return -1;
    }
    if (p->cur.nlines == 1) {
        size_t t = 0;
        p->cur.code = code;
        for (size_t i = 4; i < n && t < KN_SMTP_TEXT_MAX; i++) {
            unsigned char c = (unsigned char)l[i];
            p->cur.text[t++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
        }
        p->cur.text[t] = '\0';
    } else if (n > 4) {
        p->cur.caps |= line_caps(l + 4, n - 4);
    }
    return last;
}

int kn_smtp_parse(struct kn_smtp_parser *p, const char *buf, size_t len,
                  size_t *used, struct kn_smtp_reply *r, const char **why)
{
    size_t i = 0;
    *used = 0;
    while (i < len) {
        const char *nl = memchr(buf + i, '\n', len - i);
        size_t take = nl != NULL ? (size_t)(nl - (buf + i)) : len - i;
        int rc;
        if (p->len + take > KN_SMTP_LINE_MAX) {
            *why = "reply line too long";
            return -1;
        }
        if (memchr(buf + i, '\0', take) != NULL) {
            *why = "NUL in a reply";
            return -1;
        }
        memcpy(p->line + p->len, buf + i, take);
        p->len += take;
        i += take;
        if (nl == NULL)
            break;
        i++; /* the LF */
        rc = parse_line(p, why);
        p->len = 0;
        if (rc < 0)
            return -1;
        if (rc == 1) {
            *r = p->cur;
            memset(&p->cur, 0, sizeof(p->cur));
            *used = i;
            return 1;
        }
    }
    *used = i;
    return 0;
}

/* ---- message content ---- */

int kn_smtp_dot_stuff(const char *in, size_t len, char **out, size_t *out_len)
{
    /* Each input byte gives at most two ("\n" -> CRLF, "." -> ".."), and
     * the end at most CRLF "." CRLF. */
    char *o = kn_xmalloc(2 * len + 6);
    size_t n = 0, col = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '\r' || c == '\n') {
            if (c == '\r' && i + 1 < len && in[i + 1] == '\n')
                i++;
            o[n++] = '\r';
            o[n++] = '\n';
            col = 0;
            continue;
        }
        if (c == '\0' || ++col > 998)
            goto bad;
        if (col == 1 && c == '.') {
            o[n++] = '.';
            /* The stuffed dot counts towards the line on the wire. */
            if (++col > 998)
                goto bad;
        }
        o[n++] = c;
    }
    if (n > 0 && o[n - 1] != '\n') {
        o[n++] = '\r';
        o[n++] = '\n';
    }
    memcpy(o + n, ".\r\n", 3);
    n += 3;
    *out = o;
    *out_len = n;
    return 0;
bad:
    free(o);
    *out = NULL;
    *out_len = 0;
    return -1;
}

/* ---- session ---- */

enum phase {
    P_GREETING,
    P_EHLO,
    P_HELO,
    P_STARTTLS,
    P_TLS,
    P_AUTH_PLAIN,
    P_AUTH_LOGIN,      /* "AUTH LOGIN" sent */
    P_AUTH_LOGIN_USER, /* user name sent */
    P_AUTH_LOGIN_PASS, /* password sent */
    P_IDLE,
    P_TXN,
    P_QUIT,
    P_DEAD,
};

/* The commands of a transaction, in order. */
enum cmd { C_RSET, C_MAIL, C_RCPT, C_DATA, C_DOT };

struct kn_smtp_session {
    const struct kn_smtp_conf *conf;
    const struct kn_smtp_cbs *cbs;
    void *ctx;
    struct kn_smtp_parser parser;
    enum phase phase;
    unsigned caps;
    int tls;       /* encrypted */
    int local;     /* the relay is on this host (loopback address) */
    int need_rset; /* a transaction ran: RSET before the next */
    int helo;      /* EHLO was refused, HELO taken: no extensions */
    /* The transaction: cmds[0..ncmd) to send, nsent sent, nrep answered. */
    const struct kn_smtp_msg *msg;
    enum cmd cmds[5];
    size_t ncmd, nsent, nrep;
    int failed; /* a refused MAIL, RCPT or DATA: the result is kept */
    int fcode;
    enum kn_smtp_stage fstage;
    char ftext[KN_SMTP_TEXT_MAX + 1];
    int closing;           /* a 421 came: fail after the result */
    int answered;          /* a reply to the transaction came */
    int utf8;              /* the transaction's addresses need SMTPUTF8 */
    unsigned long replies; /* complete replies read */
};

struct kn_smtp_session *kn_smtp_session_new(const struct kn_smtp_conf *conf,
                                            const struct kn_smtp_cbs *cbs,
                                            void *ctx)
{
    struct kn_smtp_session *s = kn_xcalloc(1, sizeof(*s));
    s->conf = conf;
    s->cbs = cbs;
    s->ctx = ctx;
    kn_smtp_parser_init(&s->parser);
    s->phase = P_GREETING;
    return s;
}

void kn_smtp_session_free(struct kn_smtp_session *s)
{
    free(s);
}

void kn_smtp_set_tls(struct kn_smtp_session *s)
{
    s->tls = 1;
}

void kn_smtp_set_local(struct kn_smtp_session *s)
{
    s->local = 1;
}

static void fail(struct kn_smtp_session *s, int code, const char *why)
{
    if (s->phase == P_DEAD)
        return;
    s->phase = P_DEAD;
    s->cbs->fail(s->ctx, code, why);
}

/* A reply that ends the session: "<what>: <code> <text>". */
static void fail_reply(struct kn_smtp_session *s, const char *what,
                       const struct kn_smtp_reply *r)
{
    char why[KN_SMTP_TEXT_MAX + 80];
    snprintf(why, sizeof(why), "%s: %d %s", what, r->code, r->text);
    fail(s, r->code, why);
}

static void put(struct kn_smtp_session *s, const char *line)
{
    s->cbs->write(s->ctx, line, strlen(line));
}

static void send_ehlo(struct kn_smtp_session *s, int helo)
{
    char line[300];
    snprintf(line, sizeof(line), "%s %s\r\n", helo ? "HELO" : "EHLO",
             s->conf->helo);
    s->phase = helo ? P_HELO : P_EHLO;
    put(s, line);
}

static void to_idle(struct kn_smtp_session *s)
{
    s->phase = P_IDLE;
    s->cbs->ready(s->ctx);
}

/* AUTH PLAIN with its initial response (RFC 4954 4), else LOGIN. */
static void send_auth(struct kn_smtp_session *s)
{
    const char *u = s->conf->username, *pw = s->conf->password;
    if (s->caps & KN_SMTP_CAP_AUTH_PLAIN) {
        size_t nu = strlen(u), np = strlen(pw);
        char *raw = kn_xmalloc(nu + np + 2), *b64, *line;
        raw[0] = '\0';
        memcpy(raw + 1, u, nu);
        raw[1 + nu] = '\0';
        memcpy(raw + 2 + nu, pw, np);
        b64 = kn_b64_encode(raw, nu + np + 2);
        line = kn_xasprintf("AUTH PLAIN %s\r\n", b64);
        s->phase = P_AUTH_PLAIN;
        put(s, line);
        explicit_bzero(raw, nu + np + 2);
        explicit_bzero(b64, strlen(b64));
        explicit_bzero(line, strlen(line));
        free(raw);
        free(b64);
        free(line);
    } else if (s->caps & KN_SMTP_CAP_AUTH_LOGIN) {
        s->phase = P_AUTH_LOGIN;
        put(s, "AUTH LOGIN\r\n");
    } else {
        fail(s, 0,
             "the relay offers neither AUTH PLAIN nor AUTH LOGIN "
             "(smtp.username is set)");
    }
}

/* Send one line of the AUTH LOGIN dialogue, base64. */
static void send_b64_line(struct kn_smtp_session *s, const char *v)
{
    char *b64 = kn_b64_encode(v, strlen(v));
    char *line = kn_xasprintf("%s\r\n", b64);
    put(s, line);
    explicit_bzero(b64, strlen(b64));
    explicit_bzero(line, strlen(line));
    free(b64);
    free(line);
}

/* After EHLO (and TLS): STARTTLS, AUTH or ready. */
static void after_ehlo(struct kn_smtp_session *s)
{
    if (s->conf->starttls && !s->tls) {
        if (!(s->caps & KN_SMTP_CAP_STARTTLS)) {
            fail(s, 0,
                 "the relay does not offer STARTTLS (smtp.tls = "
                 "starttls): nothing was sent unencrypted");
            return;
        }
        s->phase = P_STARTTLS;
        put(s, "STARTTLS\r\n");
        return;
    }
    if (s->conf->username != NULL) {
        /* As Postfix and curl keep a password off a plaintext network:
         * without TLS, credentials go only to a relay on this host. */
        if (!s->tls && !s->local) {
            fail(s, 0, KN_SMTP_PLAIN_AUTH_REFUSED);
            return;
        }
        send_auth(s);
        return;
    }
    to_idle(s);
}

/* Write the command cmds[i] into buf. */
static size_t format_cmd(struct kn_smtp_session *s, enum cmd c, char *buf,
                         size_t cap)
{
    int n = 0;
    switch (c) {
    case C_RSET:
        n = snprintf(buf, cap, "RSET\r\n");
        break;
    case C_MAIL:
        n = snprintf(buf, cap, "MAIL FROM:<%s>%s\r\n", s->msg->from,
                     s->utf8 ? " SMTPUTF8" : "");
        break;
    case C_RCPT:
        n = snprintf(buf, cap, "RCPT TO:<%s>\r\n", s->msg->rcpt);
        break;
    case C_DATA:
        n = snprintf(buf, cap, "DATA\r\n");
        break;
    case C_DOT:
        break;
    }
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

/* Send the next command(s): all of them with PIPELINING, else one. */
static void send_cmds(struct kn_smtp_session *s)
{
    char buf[1200];
    size_t n = 0, k;
    while (s->nsent < s->ncmd) {
        k = format_cmd(s, s->cmds[s->nsent], buf + n, sizeof(buf) - n);
        if (k == 0)
            break; /* cannot happen: paths are at most 256 + 64 octets */
        n += k;
        s->nsent++;
        if (!(s->caps & KN_SMTP_CAP_PIPELINING))
            break;
    }
    if (n > 0)
        s->cbs->write(s->ctx, buf, n);
}

static int has_8bit(const char *p)
{
    for (; *p != '\0'; p++)
        if ((unsigned char)*p >= 0x80)
            return 1;
    return 0;
}

static void end_txn(struct kn_smtp_session *s, int code, const char *text,
                    enum kn_smtp_stage stage);

void kn_smtp_send(struct kn_smtp_session *s, const struct kn_smtp_msg *msg)
{
    if (s->phase != P_IDLE)
        return;
    s->phase = P_TXN;
    s->msg = msg;
    s->ncmd = s->nsent = s->nrep = 0;
    s->failed = s->fcode = 0;
    s->answered = 0;
    s->ftext[0] = '\0';
    /* A UTF-8 address (in the envelope, and so in To:) needs SMTPUTF8;
     * without it the client must not send the address (RFC 6531 3.2):
     * the message is refused here, before a byte of it goes out. */
    s->utf8 = has_8bit(msg->from) || has_8bit(msg->rcpt);
    if (s->utf8 && !(s->caps & KN_SMTP_CAP_SMTPUTF8)) {
        end_txn(s, 553,
                "5.6.7 the relay does not offer SMTPUTF8 (RFC 6531), "
                "which a UTF-8 address needs: not sent",
                KN_SMTP_STAGE_MAIL);
        return;
    }
    if (s->need_rset)
        s->cmds[s->ncmd++] = C_RSET;
    s->cmds[s->ncmd++] = C_MAIL;
    s->cmds[s->ncmd++] = C_RCPT;
    s->cmds[s->ncmd++] = C_DATA;
    s->need_rset = 1; /* RSET between transactions */
    send_cmds(s);
}

static enum kn_smtp_stage stage_of(enum cmd c)
{
    switch (c) {
    case C_MAIL:
        return KN_SMTP_STAGE_MAIL;
    case C_RCPT:
        return KN_SMTP_STAGE_RCPT;
    case C_DATA:
        return KN_SMTP_STAGE_DATA;
    default:
        return KN_SMTP_STAGE_DOT;
    }
}

/* The transaction is over: report, then ready (or fail on a 421). */
static void end_txn(struct kn_smtp_session *s, int code, const char *text,
                    enum kn_smtp_stage stage)
{
    s->phase = P_IDLE;
    s->msg = NULL;
    s->cbs->result(s->ctx, code, text, stage);
    if (s->phase != P_IDLE)
        return; /* the glue ended the session */
    if (s->closing) {
        fail(s, 421, "the relay closes the connection (421)");
        return;
    }
    s->cbs->ready(s->ctx);
}

/* A reply in a transaction: matched to the oldest unanswered command. */
static void txn_reply(struct kn_smtp_session *s, const struct kn_smtp_reply *r)
{
    enum cmd c;
    if (s->nrep >= s->nsent) {
        fail(s, r->code, "a reply to no command");
        return;
    }
    c = s->cmds[s->nrep++];
    s->answered = 1;
    if (r->code == 421)
        s->closing = 1;
    if (c == C_RSET) {
        if (r->code / 100 != 2) {
            fail_reply(s, "RSET refused", r);
            return;
        }
    } else if (c == C_DOT) {
        if (s->failed) /* an empty body after a wrong 354: ignored */
            end_txn(s, s->fcode, s->ftext, s->fstage);
        else
            end_txn(s, r->code, r->text, KN_SMTP_STAGE_DOT);
        return;
    } else if (c == C_DATA && r->code == 354) {
        /* The content only after 354; after a refusal, an empty
         * message that nobody receives ends the DATA the server opened
         * anyway (never the content: RFC 2920 3.1). */
        s->cmds[s->ncmd++] = C_DOT;
        s->nsent++;
        if (s->failed)
            put(s, ".\r\n");
        else
            s->cbs->write(s->ctx, s->msg->data, s->msg->len);
        return;
    } else if (c == C_DATA && r->code / 100 == 2) {
        /* 354 is DATA's only positive reply (RFC 5321 4.3.2): after a
         * 2xx the relay waits for nothing and says nothing more, and its
         * state is unknown; the connection is given up. */
        fail_reply(s, "protocol error: DATA answered without 354", r);
        return;
    } else if (r->code / 100 != 2 && !s->failed) {
        s->failed = 1;
        s->fcode = r->code / 100 == 3 ? 451 : r->code;
        s->fstage = stage_of(c);
        snprintf(s->ftext, sizeof(s->ftext), "%s", r->text);
    }
    if (s->failed && s->nrep == s->nsent) {
        /* Refused (and, pipelined, every reply read): the transaction
         * ends here, cleanly; RSET before the next. */
        end_txn(s, s->fcode, s->ftext, s->fstage);
        return;
    }
    if (s->closing) {
        fail_reply(s, "the relay closes the connection", r);
        return;
    }
    if (s->nrep == s->nsent)
        send_cmds(s);
}

static void on_reply(struct kn_smtp_session *s, const struct kn_smtp_reply *r,
                     size_t left)
{
    int ok = r->code / 100 == 2;
    switch (s->phase) {
    case P_GREETING:
        if (r->code != 220) {
            fail_reply(s, "greeting", r);
            return;
        }
        send_ehlo(s, 0);
        return;
    case P_EHLO:
        if (!ok) {
            /* An old server without EHLO: HELO, if nothing needed an
             * extension. */
            if (r->code / 100 == 5 && !s->conf->starttls &&
                s->conf->username == NULL && !s->tls) {
                send_ehlo(s, 1);
                return;
            }
            fail_reply(s, "EHLO refused", r);
            return;
        }
        s->caps = r->caps;
        after_ehlo(s);
        return;
    case P_HELO:
        if (!ok) {
            fail_reply(s, "HELO refused", r);
            return;
        }
        s->caps = 0;
        s->helo = 1;
        to_idle(s);
        return;
    case P_STARTTLS:
        if (r->code != 220) {
            fail_reply(s, "STARTTLS refused", r);
            return;
        }
        if (left > 0) {
            fail(s, 0,
                 "protocol error: the relay sent bytes after its 220 "
                 "reply to STARTTLS (injection attempt?)");
            return;
        }
        s->phase = P_TLS;
        s->cbs->starttls(s->ctx);
        return;
    case P_AUTH_PLAIN:
    case P_AUTH_LOGIN_PASS:
        if (r->code != 235) {
            fail_reply(s, "AUTH refused", r);
            return;
        }
        to_idle(s);
        return;
    case P_AUTH_LOGIN:
    case P_AUTH_LOGIN_USER:
        if (r->code != 334) {
            fail_reply(s, "AUTH refused", r);
            return;
        }
        if (s->phase == P_AUTH_LOGIN) {
            s->phase = P_AUTH_LOGIN_USER;
            send_b64_line(s, s->conf->username);
        } else {
            s->phase = P_AUTH_LOGIN_PASS;
            send_b64_line(s, s->conf->password);
        }
        return;
    case P_TXN:
        txn_reply(s, r);
        return;
    case P_QUIT:
        fail(s, 0, "quit");
        return;
    case P_IDLE:
        /* A relay may say 421 (idle timeout) before it closes. */
        if (r->code == 421)
            fail_reply(s, "the relay closes the connection", r);
        else
            fail(s, r->code, "protocol error: a reply to no command");
        return;
    case P_TLS:
    case P_DEAD:
        return;
    }
}

int kn_smtp_input(struct kn_smtp_session *s, const char *buf, size_t len)
{
    size_t off = 0, used;
    struct kn_smtp_reply r;
    const char *why = NULL;
    while (off < len && s->phase != P_DEAD) {
        int rc;
        if (s->phase == P_TLS) {
            fail(s, 0,
                 "protocol error: the relay sent bytes after its 220 "
                 "reply to STARTTLS (injection attempt?)");
            break;
        }
        rc = kn_smtp_parse(&s->parser, buf + off, len - off, &used, &r, &why);
        if (rc < 0) {
            char m[120];
            snprintf(m, sizeof(m), "protocol error: %s", why);
            fail(s, 0, m);
            break;
        }
        off += used;
        if (rc == 0)
            break;
        s->replies++;
        on_reply(s, &r, len - off);
    }
    return s->phase == P_DEAD ? -1 : 0;
}

void kn_smtp_tls_done(struct kn_smtp_session *s)
{
    if (s->phase != P_TLS)
        return;
    s->tls = 1;
    s->caps = 0;
    kn_smtp_parser_init(&s->parser);
    send_ehlo(s, 0);
}

void kn_smtp_abort(struct kn_smtp_session *s)
{
    s->phase = P_DEAD;
}

void kn_smtp_quit(struct kn_smtp_session *s)
{
    if (s->phase != P_IDLE)
        return;
    s->phase = P_QUIT;
    put(s, "QUIT\r\n");
}

enum kn_smtp_wait kn_smtp_waiting(const struct kn_smtp_session *s)
{
    switch (s->phase) {
    case P_GREETING:
        return KN_SMTP_WAIT_GREETING;
    case P_TLS:
        return KN_SMTP_WAIT_TLS;
    case P_IDLE:
    case P_DEAD:
        return KN_SMTP_WAIT_NONE;
    case P_TXN:
        if (s->nrep >= s->nsent)
            return KN_SMTP_WAIT_NONE;
        switch (s->cmds[s->nrep]) {
        case C_MAIL:
            return KN_SMTP_WAIT_MAIL;
        case C_RCPT:
            return KN_SMTP_WAIT_RCPT;
        case C_DATA:
            return KN_SMTP_WAIT_DATA_INIT;
        case C_DOT:
            return KN_SMTP_WAIT_DATA_DONE;
        default:
            return KN_SMTP_WAIT_COMMAND;
        }
    default:
        return KN_SMTP_WAIT_COMMAND;
    }
}

int kn_smtp_answered(const struct kn_smtp_session *s)
{
    return s->msg == NULL || s->answered;
}

unsigned long kn_smtp_replies(const struct kn_smtp_session *s)
{
    return s->replies;
}

unsigned kn_smtp_caps(const struct kn_smtp_session *s)
{
    return s->caps;
}
