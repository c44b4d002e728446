/*
 * address.c - the address rules of every channel, in one place: e-mail
 * (with the Japanese carrier forms that break RFC 5322), LINE user ids,
 * FCM registration tokens and APNs device tokens.
 *
 * The CSV import (cli/recipients.c), the broadcast parser
 * (model/broadcast.c) and the adapters all call these, so that an
 * address accepted at the door is one the adapter will send to, and one
 * refused by the adapter never gets in.  Pure functions: no I/O, no state,
 * no allocation except kn_addr_quote()'s result.
 */
#include "model/address.h"

#include <string.h>

#include "common/kn.h"
#include "common/utf8.h"

/* ------------------------------------------------------------------------
 * E-mail
 * ------------------------------------------------------------------------ */

int kn_addr_atext(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/*
 * 1 if s[0..n) is a dot-atom: atoms of atext joined by single dots, no
 * leading or trailing dot.  With allow_utf8, bytes >= 0x80 count as atext
 * (RFC 6531/6532); the caller has checked that they form valid UTF-8.
 */
static int is_dot_atom(const char *s, size_t n, int allow_utf8)
{
    const unsigned char *u = (const unsigned char *)s;

    if (n == 0 || u[0] == '.' || u[n - 1] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (u[i] == '.') {
            if (u[i + 1] == '.')
                return 0;
        } else if (!kn_addr_atext(u[i]) && !(allow_utf8 && u[i] >= 0x80)) {
            return 0;
        }
    }
    return 1;
}

/*
 * 1 if s[0..n) looks like an ASCII host name with at least two labels:
 * letters, digits and hyphens, labels of 1..63 that neither start nor end
 * with a hyphen, 253 octets at most.
 */
static int is_hostname(const char *s, size_t n)
{
    size_t label = 0, labels = 1;

    if (n == 0 || n > 253)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return 0;
            label = 0;
            labels++;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                   (c >= '0' && c <= '9') || c == '-') {
            if (label == 0 && c == '-')
                return 0;
            label++;
            if (label > 63)
                return 0;
        } else {
            return 0;
        }
    }
    return label > 0 && s[n - 1] != '-' && labels >= 2;
}

/*
 * Check an address and find its '@'.  Returns NULL when the address is
 * acceptable (and sets *at to the offset of the separating '@'), or a static
 * reason.  The rules, in order:
 *  1. non-empty, valid UTF-8, no control characters (C0 or DEL) anywhere;
 *  2. a local part that starts with '"' must be one whole quoted-string
 *     (backslash escapes the next character) followed directly by '@', and
 *     must not be empty ("");
 *  3. an unquoted local part may hold anything but spaces and '"' (so the
 *     carrier forms with ".." or a trailing '.' pass; kn_addr_quote() makes
 *     them legal on the wire);
 *  4. the local part, as written, is 1..64 octets (RFC 5321 4.5.3.1.1);
 *  5. the domain is 1..255 octets with no second '@', no space, none of
 *     ()<>[]\,;:" and no empty label (leading, trailing or double dot).
 */
static const char *addr_parse(const char *addr, size_t *at)
{
    size_t n, i, dlen;
    const char *dom;

    if (addr == NULL || addr[0] == '\0')
        return "empty address";
    n = strlen(addr);
    if (!kn_utf8_valid(addr, n))
        return "invalid UTF-8";
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)addr[i];
        if (c < 0x20 || c == 0x7f)
            return "control character";
        /* U+FF01-FF5E (full-width ASCII) and U+3000: typed with the IME
         * on, they look like an address but never reach anyone */
        if ((c == 0xef && i + 2 < n &&
             (((unsigned char)addr[i + 1] == 0xbc &&
               (unsigned char)addr[i + 2] >= 0x81) ||
              ((unsigned char)addr[i + 1] == 0xbd &&
               (unsigned char)addr[i + 2] <= 0x9e))) ||
            (c == 0xe3 && i + 2 < n && (unsigned char)addr[i + 1] == 0x80 &&
             (unsigned char)addr[i + 2] == 0x80))
            return "full-width character (type the address in half-width "
                   "letters: turn the IME off)";
    }
    if (addr[0] == '"') {
        for (i = 1; i < n && addr[i] != '"'; i++) {
            if (addr[i] == '\\')
                i++; /* the escaped character; may run off the end */
        }
        if (i >= n)
            return "unterminated quoted local part";
        i++;
        if (addr[i] != '@')
            return addr[i] == '\0' ? "missing @"
                                   : "text after quoted local part";
        if (i == 2)
            return "empty local part";
    } else {
        for (i = 0; i < n && addr[i] != '@'; i++) {
            if (addr[i] == ' ')
                return "space outside quotes";
            if (addr[i] == '"')
                return "quote inside local part";
        }
        if (i == n)
            return "missing @";
        if (i == 0)
            return "empty local part";
    }
    if (i > 64)
        return "local part longer than 64 octets";
    dom = addr + i + 1;
    dlen = n - i - 1;
    if (dlen == 0)
        return "empty domain";
    if (dlen > 255)
        return "domain longer than 255 octets";
    for (size_t j = 0; j < dlen; j++) {
        if (dom[j] == '@')
            return "more than one @";
        if (dom[j] == ' ')
            return "space in domain";
        if (strchr("()<>[]\\,;:\"", dom[j]) != NULL)
            return "bad character in domain";
        if (dom[j] == '.' && (j == 0 || j == dlen - 1 || dom[j + 1] == '.'))
            return "empty label in domain";
    }
    *at = i;
    return NULL;
}

int kn_addr_check(const char *addr, const char **why)
{
    size_t at;
    const char *reason = addr_parse(addr, &at);

    if (why != NULL)
        *why = reason;
    return reason == NULL ? 0 : KN_EINVAL;
}

/*
 * Quote the local part when it is not a dot-atom.  The address should have
 * passed kn_addr_check():
 *  1. an address whose local part is already quoted is copied unchanged;
 *  2. an address without '@' is copied unchanged;
 *  3. a dot-atom local part (UTF-8 allowed, RFC 6531) is copied unchanged;
 *  4. otherwise the local part becomes a Quoted-string, with '"' and '\'
 *     escaped by a backslash.
 */
char *kn_addr_quote(const char *addr)
{
    const char *at;
    char *out, *o;

    if (addr[0] == '"')
        return kn_xstrdup(addr);
    at = strrchr(addr, '@');
    if (at == NULL || is_dot_atom(addr, (size_t)(at - addr), 1))
        return kn_xstrdup(addr);
    /* At worst every local-part byte escaped, two quotes, the NUL. */
    o = out = kn_xmalloc(2 * (size_t)(at - addr) + strlen(at) + 3);
    *o++ = '"';
    for (const char *p = addr; p < at; p++) {
        if (*p == '"' || *p == '\\')
            *o++ = '\\';
        *o++ = *p;
    }
    *o++ = '"';
    strcpy(o, at);
    return out;
}

int kn_addr_is_dot_atom(const char *addr)
{
    size_t at;

    if (addr_parse(addr, &at) != NULL || addr[0] == '"')
        return 0;
    return is_dot_atom(addr, at, 0) &&
           is_hostname(addr + at + 1, strlen(addr + at + 1));
}

/* ------------------------------------------------------------------------
 * LINE, FCM, APNs
 * ------------------------------------------------------------------------ */

static int is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

int kn_addr_line_check(const char *id, const char **why)
{
    const char *reason = NULL;
    if (id == NULL || strlen(id) != KN_ADDR_LINE_LEN || id[0] != 'U') {
        reason = "a LINE user id is 'U' and 32 hex digits";
    } else {
        for (size_t i = 1; i < KN_ADDR_LINE_LEN && reason == NULL; i++) {
            if (!is_lower_hex(id[i]))
                reason = "a LINE user id is 'U' and 32 hex digits";
        }
    }
    if (why != NULL)
        *why = reason;
    return reason == NULL ? 0 : KN_EINVAL;
}

int kn_addr_fcm_check(const char *token, const char **why)
{
    size_t n = token ? strlen(token) : 0;
    const char *reason = NULL;
    if (n == 0 || n > KN_ADDR_FCM_MAX) {
        reason = "an FCM registration token is 1 to 4096 characters";
    } else {
        for (size_t i = 0; i < n && reason == NULL; i++) {
            unsigned char c = (unsigned char)token[i];
            if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\')
                reason = "an FCM registration token is printable ASCII "
                         "without spaces, quotes or backslashes";
        }
    }
    if (why != NULL)
        *why = reason;
    return reason == NULL ? 0 : KN_EINVAL;
}

int kn_addr_apns_check(const char *token, const char **why)
{
    size_t n = token ? strlen(token) : 0;
    const char *reason = NULL;
    if (n < KN_ADDR_APNS_MIN || n > KN_ADDR_APNS_MAX || n % 2 != 0) {
        reason = "an APNs device token is an even number of hex digits, "
                 "64 to 200";
    } else {
        for (size_t i = 0; i < n && reason == NULL; i++) {
            char c = token[i];
            if (!is_lower_hex(c) && !(c >= 'A' && c <= 'F'))
                reason = "an APNs device token is hex digits only";
        }
    }
    if (why != NULL)
        *why = reason;
    return reason == NULL ? 0 : KN_EINVAL;
}

/* ------------------------------------------------------------------------
 * The reasons in Japanese, for the school's office (the import's reason_ja)
 * ------------------------------------------------------------------------ */

/* Every reason the checks above return, with what an office clerk should
 * read instead: what is wrong, in words, not in RFC terms.  Keep one row
 * per reason (test_address checks that each check's reason has one). */
static const struct {
    const char *en, *ja;
} why_ja[] = {
    {"empty address", "アドレスが空です"},
    {"invalid UTF-8", "読み取れない文字があります"},
    {"control character", "目に見えない制御文字があります"},
    {"full-width character (type the address in half-width "
     "letters: turn the IME off)",
     "全角の文字が入っています。日本語入力をオフにして半角で入力してください"},
    {"unterminated quoted local part", "「\"」が閉じられていません"},
    {"text after quoted local part", "「\"」の後ろに余分な文字があります"},
    {"missing @", "「@」がありません"},
    {"empty local part", "「@」の前が空です"},
    {"space outside quotes", "空白が入っています"},
    {"quote inside local part", "「\"」が入っています"},
    {"local part longer than 64 octets",
     "「@」の前が長すぎます（半角 64 文字まで）"},
    {"empty domain", "「@」の後ろが空です"},
    {"domain longer than 255 octets",
     "「@」の後ろが長すぎます（半角 255 文字まで）"},
    {"more than one @", "「@」が 2 つ以上あります"},
    {"space in domain", "「@」の後ろに空白があります"},
    {"bad character in domain",
     "「@」の後ろに使えない記号（かっこ、コンマ、「;」など）があります"},
    {"empty label in domain",
     "「@」の後ろで「.」が 2 つ続いているか、「.」で始まるか終わっています"},
    {"a LINE user id is 'U' and 32 hex digits",
     "LINE のユーザー ID は「U」と半角の小文字英数字 32 文字です"},
    {"an FCM registration token is 1 to 4096 characters",
     "アプリのトークンは半角 4096 文字までです"},
    {"an FCM registration token is printable ASCII "
     "without spaces, quotes or backslashes",
     "アプリのトークンに空白・引用符・全角の文字は使えません"},
    {"an APNs device token is an even number of hex digits, "
     "64 to 200",
     "iPhone のトークンは半角の英数字（0-9、a-f）64〜200 文字です"},
    {"an APNs device token is hex digits only",
     "iPhone のトークンに使えるのは半角の 0-9 と a-f だけです"},
};

const char *kn_addr_why_ja(const char *why)
{
    for (size_t i = 0; why != NULL && i < KN_ARRAY_SIZE(why_ja); i++) {
        if (strcmp(why, why_ja[i].en) == 0)
            return why_ja[i].ja;
    }
    return "形が正しくありません";
}
