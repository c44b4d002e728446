/*
 * dsn.c - the RFC 3464 delivery status notification parser and the words
 * for a bounce (dsn.h).
 *
 * The input is hostile: whatever anyone mails to a bounce address.  The
 * parser reads only what it needs (the top-level header block, the
 * multipart/report boundary, the message/delivery-status part), walks the
 * bytes once with bounds on every copy, never allocates more than the
 * delivery-status part (when it is base64), and never keeps the message.
 */
#include "model/dsn.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/codec.h"

#define NAME_MAX_LEN  64
#define VALUE_MAX_LEN 1000

struct cursor {
    const char *p, *end;
};

/* The next line of c (without its CR LF or LF) into *l, *n; 0 at the end. */
static int next_line(struct cursor *c, const char **l, size_t *n)
{
    const char *e;
    if (c->p >= c->end)
        return 0;
    e = memchr(c->p, '\n', (size_t)(c->end - c->p));
    *l = c->p;
    if (e == NULL) {
        *n = (size_t)(c->end - c->p);
        c->p = c->end;
    } else {
        *n = (size_t)(e - c->p);
        c->p = e + 1;
    }
    if (*n > 0 && (*l)[*n - 1] == '\r')
        (*n)--;
    return 1;
}

/* Append n bytes to a bounded string (cut at cap - 1). */
static void append(char *dst, size_t *len, size_t cap, const char *s, size_t n)
{
    for (size_t i = 0; i < n && *len + 1 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        dst[(*len)++] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
    }
    dst[*len] = '\0';
}

/*
 * The next field of a header block: its name (lower-case) and its value
 * unfolded (continuation lines joined, control characters as spaces, cut
 * at VALUE_MAX_LEN).  Returns 1 for a field, 0 at the blank line that
 * ends the block (consumed) or at the end.  A line that is not a field
 * (no ':', or a bad name) is skipped.
 */
static int next_field(struct cursor *c, char *name, char *value)
{
    const char *l, *colon;
    size_t n, nl, vl = 0;
    for (;;) {
        if (!next_line(c, &l, &n) || n == 0)
            return 0;
        if (l[0] == ' ' || l[0] == '\t')
            continue; /* a continuation without a field: skip */
        colon = memchr(l, ':', n);
        if (colon == NULL || colon == l || (size_t)(colon - l) >= NAME_MAX_LEN)
            continue;
        nl = (size_t)(colon - l);
        for (size_t i = 0; i < nl; i++)
            name[i] = (char)tolower((unsigned char)l[i]);
        while (nl > 0 && (name[nl - 1] == ' ' || name[nl - 1] == '\t'))
            nl--;
        name[nl] = '\0';
        value[0] = '\0';
        append(value, &vl, VALUE_MAX_LEN, colon + 1,
               (size_t)(l + n - (colon + 1)));
        /* continuation lines */
        while (c->p < c->end && (c->p[0] == ' ' || c->p[0] == '\t')) {
            next_line(c, &l, &n);
            append(value, &vl, VALUE_MAX_LEN, l, n);
        }
        break;
    }
    /* trim */
    {
        char *s = value, *e;
        while (*s == ' ' || *s == '\t')
            s++;
        memmove(value, s, strlen(s) + 1);
        e = value + strlen(value);
        while (e > value && (e[-1] == ' ' || e[-1] == '\t'))
            *--e = '\0';
    }
    return 1;
}

/* The media type of a Content-Type value, lower-case, into out. */
static void media_type(const char *ct, char *out, size_t cap)
{
    size_t i = 0;
    for (; ct[i] && ct[i] != ';' && ct[i] != ' ' && i + 1 < cap; i++)
        out[i] = (char)tolower((unsigned char)ct[i]);
    out[i] = '\0';
}

/* A parameter (name lower-case, e.g. "boundary") of a Content-Type value:
 * quoted or a token; 1 if found. */
static int ct_param(const char *ct, const char *pname, char *out, size_t cap)
{
    size_t pl = strlen(pname);
    const char *p = strchr(ct, ';');
    while (p != NULL) {
        size_t o = 0;
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncasecmp(p, pname, pl) == 0) {
            const char *v = p + pl;
            while (*v == ' ')
                v++;
            if (*v == '=') {
                v++;
                while (*v == ' ')
                    v++;
                if (*v == '"') {
                    v++;
                    while (*v && *v != '"' && o + 1 < cap) {
                        if (*v == '\\' && v[1])
                            v++;
                        out[o++] = *v++;
                    }
                } else {
                    while (*v && *v != ';' && *v != ' ' && o + 1 < cap)
                        out[o++] = *v++;
                }
                out[o] = '\0';
                return o > 0;
            }
        }
        p = strchr(p, ';');
    }
    return 0;
}

static int contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        if (strncasecmp(hay, needle, n) == 0)
            return 1;
    }
    return 0;
}

/* "5.1.1" at the start of s (RFC 3463: class.subject.detail) into out. */
static void take_status(const char *s, char *out, size_t cap)
{
    size_t i = 0;
    int dots = 0, digits = 0;
    out[0] = '\0';
    if (*s != '2' && *s != '4' && *s != '5')
        return;
    for (; s[i] && i + 1 < cap; i++) {
        if (s[i] == '.') {
            if (digits == 0 || ++dots > 2)
                break;
            digits = 0;
        } else if (isdigit((unsigned char)s[i]) && digits < 3) {
            digits++;
        } else {
            break;
        }
    }
    if (dots != 2 || digits == 0)
        return;
    memcpy(out, s, i);
    out[i] = '\0';
}

struct rblock {
    char action[16];
    char status[16];
    char final[320];
};

/*
 * The recipient blocks of a delivery-status body: the first failed one,
 * else the first delayed one, into *pick; 1 if there is one.  *seen_action
 * says whether any block had an Action (a DSN of success has).
 */
static int pick_block(const char *p, size_t n, struct rblock *pick,
                      int *seen_action)
{
    struct cursor c = {p, p + n};
    char name[NAME_MAX_LEN], value[VALUE_MAX_LEN];
    struct rblock cur, delayed;
    int have_delayed = 0;
    *seen_action = 0;
    while (c.p < c.end) {
        memset(&cur, 0, sizeof(cur));
        while (next_field(&c, name, value)) {
            if (strcmp(name, "action") == 0) {
                size_t i = 0;
                for (; value[i] && value[i] != ' ' && value[i] != '(' &&
                       i + 1 < sizeof(cur.action);
                     i++)
                    cur.action[i] = (char)tolower((unsigned char)value[i]);
                cur.action[i] = '\0';
            } else if (strcmp(name, "status") == 0) {
                take_status(value, cur.status, sizeof(cur.status));
            } else if (strcmp(name, "final-recipient") == 0) {
                const char *semi = strchr(value, ';');
                if (semi != NULL && (strncasecmp(value, "rfc822", 6) == 0 ||
                                     strncasecmp(value, "utf-8", 5) == 0)) {
                    if (kn_dsn_addr_norm(semi + 1, cur.final,
                                         sizeof(cur.final)) < 0)
                        cur.final[0] = '\0';
                }
            }
        }
        if (cur.action[0])
            *seen_action = 1;
        if (strcmp(cur.action, "failed") == 0 && cur.final[0]) {
            *pick = cur;
            return 1;
        }
        if (strcmp(cur.action, "delayed") == 0 && cur.final[0] &&
            !have_delayed) {
            delayed = cur;
            have_delayed = 1;
        }
    }
    if (have_delayed)
        *pick = delayed;
    return have_delayed;
}

/* Whether the line (n bytes) is the boundary "--b" or "--b--". */
static int is_boundary(const char *l, size_t n, const char *b, size_t bl)
{
    if (n < bl + 2 || l[0] != '-' || l[1] != '-' || memcmp(l + 2, b, bl) != 0)
        return 0;
    for (size_t i = bl + 2; i < n; i++) {
        if (l[i] != '-' && l[i] != ' ' && l[i] != '\t')
            return 0;
    }
    return 1;
}

/*
 * Find the message/delivery-status part of a multipart body with the
 * boundary b and pick its recipient block.  Returns 1 with *pick set, 0
 * if none; *why says why not.
 */
static int report_part(struct cursor *body, const char *b, struct rblock *pick,
                       const char **why)
{
    size_t bl = strlen(b), n;
    const char *l;
    char name[NAME_MAX_LEN], value[VALUE_MAX_LEN];
    *why = "a report without a message/delivery-status part";
    /* to the first boundary */
    while (next_line(body, &l, &n)) {
        if (is_boundary(l, n, b, bl))
            break;
    }
    while (body->p < body->end) {
        char type[64] = "", cte[32] = "";
        const char *start, *stop;
        int seen = 0;
        while (next_field(body, name, value)) {
            if (strcmp(name, "content-type") == 0)
                media_type(value, type, sizeof(type));
            else if (strcmp(name, "content-transfer-encoding") == 0)
                media_type(value, cte, sizeof(cte));
        }
        start = stop = body->p;
        while (next_line(body, &l, &n)) {
            if (is_boundary(l, n, b, bl))
                break;
            stop = body->p;
        }
        if (strcmp(type, "message/delivery-status") != 0 &&
            strcmp(type, "message/global-delivery-status") != 0)
            continue;
        if (strcmp(cte, "base64") == 0) {
            unsigned char *dec = NULL;
            long dl = kn_b64_decode(start, (size_t)(stop - start), &dec);
            int ok = dl > 0 &&
                     pick_block((const char *)dec, (size_t)dl, pick, &seen);
            free(dec);
            if (ok)
                return 1;
        } else if (pick_block(start, (size_t)(stop - start), pick, &seen)) {
            return 1;
        }
        *why = seen ? "a delivery report of success or relay, not a failure"
                    : "a delivery report without a failed or delayed "
                      "recipient with a Final-Recipient";
        return 0;
    }
    return 0;
}

enum kn_dsn_kind kn_dsn_parse(const char *msg, size_t len, struct kn_dsn *out)
{
    struct cursor c = {msg, msg + len};
    char name[NAME_MAX_LEN], value[VALUE_MAX_LEN];
    char type[64] = "", rtype[64] = "", boundary[80] = "";
    int auto_reply = 0;
    struct rblock pick;
    const char *why = NULL;

    memset(out, 0, sizeof(*out));
    while (next_field(&c, name, value)) {
        if (strcmp(name, "content-type") == 0) {
            media_type(value, type, sizeof(type));
            if (!ct_param(value, "boundary", boundary, sizeof(boundary)))
                boundary[0] = '\0';
            if (ct_param(value, "report-type", rtype, sizeof(rtype))) {
                for (char *p = rtype; *p; p++)
                    *p = (char)tolower((unsigned char)*p);
            }
        } else if (strcmp(name, "auto-submitted") == 0) {
            /* auto-generated is what a DSN itself carries (RFC 3834) */
            if (strncasecmp(value, "auto-replied", 12) == 0)
                auto_reply = 1;
        } else if (strcmp(name, "x-autoreply") == 0 ||
                   strcmp(name, "x-autorespond") == 0 ||
                   strcmp(name, "x-autoresponse") == 0) {
            auto_reply = 1;
        } else if (strcmp(name, "precedence") == 0) {
            if (strncasecmp(value, "auto_reply", 10) == 0)
                auto_reply = 1;
        } else if (strcmp(name, "subject") == 0) {
            if (contains_ci(value, "out of office") ||
                contains_ci(value, "auto-reply") ||
                contains_ci(value, "autoreply") ||
                contains_ci(value, "automatic reply") ||
                strncasecmp(value, "auto:", 5) == 0 ||
                contains_ci(value, "vacation") ||
                contains_ci(value, "\xe8\x87\xaa\xe5\x8b\x95\xe5\xbf\x9c"
                                   "\xe7\xad\x94") /* 自動応答 */)
                auto_reply = 1;
        }
    }
    if (strcmp(type, "multipart/report") == 0 &&
        (strcmp(rtype, "delivery-status") == 0 ||
         strcmp(rtype, "global-delivery-status") == 0) &&
        boundary[0] != '\0') {
        if (report_part(&c, boundary, &pick, &why)) {
            out->kind = strcmp(pick.action, "failed") == 0 ? KN_DSN_FAILED
                                                           : KN_DSN_DELAYED;
            memcpy(out->status, pick.status, sizeof(out->status));
            memcpy(out->final_rcpt, pick.final, sizeof(out->final_rcpt));
            return out->kind;
        }
        out->kind = KN_DSN_OTHER;
        out->why = why;
        return out->kind;
    }
    if (auto_reply) {
        out->kind = KN_DSN_AUTOREPLY;
        out->why = "an auto-reply (vacation notice), not a bounce";
        return out->kind;
    }
    out->kind = KN_DSN_OTHER;
    out->why = strcmp(type, "multipart/report") == 0
                   ? "a report that is not a delivery status (report-type)"
                   : "not a delivery status notification (RFC 3464 "
                     "multipart/report)";
    return out->kind;
}

const char *kn_dsn_kind_name(enum kn_dsn_kind k)
{
    switch (k) {
    case KN_DSN_FAILED:
        return "failed";
    case KN_DSN_DELAYED:
        return "delayed";
    case KN_DSN_AUTOREPLY:
        return "auto-reply";
    case KN_DSN_OTHER:
        break;
    }
    return "other";
}

int kn_dsn_addr_norm(const char *addr, char *out, size_t cap)
{
    const char *s = addr, *e;
    size_t o = 0;
    int at = 0;
    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    if (e > s && *s == '<' && e[-1] == '>') {
        s++;
        e--;
    }
    if (s < e && *s == '"') {
        /* quoted local part: unquote */
        s++;
        while (s < e && *s != '"') {
            if (*s == '\\' && s + 1 < e)
                s++;
            if (o + 1 >= cap || (unsigned char)*s < 0x20 || *s == 0x7f)
                return -1;
            out[o++] = (char)tolower((unsigned char)*s++);
        }
        if (s >= e)
            return -1;
        s++;
    }
    for (; s < e; s++) {
        /* outside quotes: no space, no control character */
        if (o + 1 >= cap || (unsigned char)*s <= 0x20 || *s == 0x7f)
            return -1;
        if (*s == '@')
            at++;
        out[o++] = (char)tolower((unsigned char)*s);
    }
    out[o] = '\0';
    if (at != 1 || out[0] == '@' || out[o - 1] == '@')
        return -1;
    return 0;
}

int kn_dsn_status_hard(const char *status)
{
    return status == NULL || status[0] != '4';
}

int kn_dsn_carrier_domain(const char *addr)
{
    static const char *const carriers[] = {"docomo.ne.jp",
                                           "ezweb.ne.jp",
                                           "au.com",
                                           "softbank.ne.jp",
                                           "i.softbank.jp",
                                           "ymobile.ne.jp",
                                           "y-mobile.ne.jp",
                                           "rakumail.jp",
                                           "uqmobile.jp",
                                           "disney.ne.jp",
                                           NULL};
    const char *at = strrchr(addr, '@');
    const char *d = at ? at + 1 : addr;
    size_t dl = strlen(d);
    for (size_t i = 0; carriers[i]; i++) {
        size_t cl = strlen(carriers[i]);
        /* the domain itself or a subdomain (xx.vodafone.ne.jp style) */
        if (dl >= cl && strcasecmp(d + dl - cl, carriers[i]) == 0 &&
            (dl == cl || d[dl - cl - 1] == '.'))
            return 1;
    }
    return 0;
}

const char *kn_dsn_reason(const char *status, int carrier, int ja)
{
    const char *s = status ? status : "";
    if (s[0] == '4')
        return ja ? "一時的に届きませんでした（メールボックスが一杯など）。"
                    "3回続くと送信を止めます"
                  : "not delivered for now (a full mailbox, a busy server); "
                    "after 3 within 14 days the address is suppressed";
    if (carrier &&
        (strncmp(s, "5.1.", 4) == 0 || strncmp(s, "5.7.", 4) == 0 || !*s))
        return ja ? "宛先不明、または保護者の迷惑メール設定（ドメイン指定受信）"
                    "で受信拒否されました。ご家庭にドメイン指定受信の設定を"
                    "確認していただいてください"
                  : "unknown address, or refused by the guardian's receive "
                    "filter — ask the family to check ドメイン指定受信";
    if (strncmp(s, "5.1.", 4) == 0)
        return ja ? "このアドレスは存在しません。ご家庭に今のアドレスを確認"
                    "してください"
                  : "the address does not exist — ask the family for their "
                    "current address";
    if (strcmp(s, "5.2.2") == 0)
        return ja ? "メールボックスが一杯で受け取れませんでした"
                  : "the mailbox is full";
    if (strncmp(s, "5.7.", 4) == 0)
        return ja ? "受信側の迷惑メール対策で拒否されました。ご家庭に受信設定"
                    "の確認をお願いしてください"
                  : "refused by the receiving side's spam or policy filter — "
                    "ask the family to check their receive settings";
    return ja ? "受信側のメールサーバーに拒否されました"
              : "the receiving mail server refused the message";
}

/* ---- the VERP reference and the recorded detail ---- */

void kn_bounce_ref_encode(const unsigned char bytes[10], char *out)
{
    static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
    /* 80 bits = 16 groups of 5 */
    for (int i = 0; i < KN_BOUNCE_REF_LEN; i++) {
        int bit = i * 5, v = 0;
        for (int k = 0; k < 5; k++, bit++)
            v = v << 1 | ((bytes[bit / 8] >> (7 - bit % 8)) & 1);
        out[i] = b32[v];
    }
    out[KN_BOUNCE_REF_LEN] = '\0';
}

int kn_bounce_ref_valid(const char *ref)
{
    size_t i = 0;
    for (; ref[i]; i++) {
        if (!((ref[i] >= 'a' && ref[i] <= 'z') ||
              (ref[i] >= '2' && ref[i] <= '7')))
            return 0;
    }
    return i == KN_BOUNCE_REF_LEN;
}

int kn_bounce_ref_from_addr(const char *addr, const char *local, char *out)
{
    char norm[320];
    size_t ll = strlen(local);
    const char *at, *r;
    if (kn_dsn_addr_norm(addr, norm, sizeof(norm)) < 0)
        return -1;
    at = strchr(norm, '@');
    if ((size_t)(at - norm) != ll + 1 + KN_BOUNCE_REF_LEN ||
        strncmp(norm, local, ll) != 0 || norm[ll] != '+')
        return -1;
    r = norm + ll + 1;
    memcpy(out, r, KN_BOUNCE_REF_LEN);
    out[KN_BOUNCE_REF_LEN] = '\0';
    return kn_bounce_ref_valid(out) ? 0 : -1;
}

void kn_bounce_detail(char *out, size_t cap, const char *status, int carrier,
                      const char *source)
{
    char st[16];
    take_status(status ? status : "", st, sizeof(st));
    snprintf(out, cap, "%s;%d;%s", st, carrier ? 1 : 0, source);
}

int kn_bounce_detail_parse(const char *detail, char *status, size_t cap,
                           int *carrier)
{
    const char *semi = strchr(detail, ';');
    size_t n;
    if (semi == NULL || (semi[1] != '0' && semi[1] != '1') || semi[2] != ';')
        return -1;
    n = (size_t)(semi - detail);
    if (n >= cap)
        return -1;
    memcpy(status, detail, n);
    status[n] = '\0';
    *carrier = semi[1] == '1';
    return 0;
}
