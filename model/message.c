/*
 * message.c - the text of a notification on every channel (message.h):
 * drill marks, confirmation words and link, and the cuts each channel
 * needs.  Before this file the same words were written in four adapters
 * (mail, SendGrid, LINE, push), and push had no link at all.
 *
 * No I/O and no state; it must never cut a personal link.
 */
#include "model/message.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/kn.h"
#include "common/utf8.h"

const char kn_message_drill_prefix[] = "【訓練】";
const char kn_message_drill_line[] = "※これは訓練です。(This is a drill.)";
const char kn_message_link_words[] =
    "確認のため、次のリンクを開いて「確認しました」を押してください。";
const char kn_message_ellipsis[] = "…";

/* What LINE's last body message ends with when the body is cut. */
static const char cut_note[] =
    "…\n\n（LINEの文字数の上限のため、ここで省略しました。全文はメールまたは"
    "お知らせのリンク先でご確認ください。The full text is in the e-mail or "
    "behind the link.）";

/* ------------------------------------------------------------------------
 * Every channel
 * ------------------------------------------------------------------------ */

int kn_header_safe(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
            return 0;
    }
    return 1;
}

char *kn_message_subject(int drill, const char *subject)
{
    return kn_xasprintf("%s%s", drill ? kn_message_drill_prefix : "",
                        subject ? subject : "");
}

char *kn_message_body(enum kn_text_channel ch, int drill, const char *body)
{
    if (body == NULL)
        body = "";
    if (!drill)
        return kn_xstrdup(body);
    return kn_xasprintf("%s%s%s", kn_message_drill_line,
                        ch == KN_TEXT_PUSH ? "\n" : "\n\n", body);
}

char *kn_message_link_text(enum kn_text_channel ch, const char *link)
{
    if (link == NULL)
        return kn_xstrdup("");
    switch (ch) {
    case KN_TEXT_MAIL:
        return kn_xasprintf("\n\n%s\n%s\n", kn_message_link_words, link);
    case KN_TEXT_PUSH:
        return kn_xasprintf("\n\n%s\n%s", kn_message_link_words, link);
    case KN_TEXT_LINE:
        break;
    }
    return kn_xasprintf("%s\n%s", kn_message_link_words, link);
}

const char kn_message_mypage_words[] =
    "配信の設定・過去のお知らせ（マイページ）:";
const char kn_message_mypage_words_en[] =
    "Your settings and past messages (My page):";

char *kn_message_mypage_text(const char *lang, const char *url)
{
    int en = lang == NULL || strcmp(lang, "ja") != 0;
    if (url == NULL)
        return kn_xstrdup("");
    return kn_xasprintf("\n\n--\n%s\n%s%s%s\n", kn_message_mypage_words,
                        en ? kn_message_mypage_words_en : "", en ? "\n" : "",
                        url);
}

char *kn_message_body_with_link(const char *body, size_t keep,
                                const char *link_text)
{
    size_t n = body ? strlen(body) : 0;
    if (link_text == NULL)
        link_text = "";
    if (keep >= n)
        return kn_xasprintf("%s%s", body ? body : "", link_text);
    keep = kn_utf8_grapheme_floor(body, n, keep);
    return kn_xasprintf("%.*s%s%s", (int)keep, body, kn_message_ellipsis,
                        link_text);
}

/* ------------------------------------------------------------------------
 * LINE: UTF-16 units, up to five texts
 * ------------------------------------------------------------------------ */

/* text with CRLF and lone CR turned into LF: LINE shows LF as a break. */
static char *lf_only(const char *prefix, const char *text)
{
    size_t pl = strlen(prefix), n = strlen(text), o = pl;
    char *out = kn_xmalloc(pl + n + 1);
    memcpy(out, prefix, pl);
    for (size_t i = 0; i < n; i++) {
        if (text[i] == '\r') {
            out[o++] = '\n';
            if (i + 1 < n && text[i + 1] == '\n')
                i++;
        } else {
            out[o++] = text[i];
        }
    }
    out[o] = '\0';
    return out;
}

/* text cut to LINE's limit at a grapheme boundary (utf8.h). */
static void line_cut(char *text)
{
    size_t n = strlen(text);
    if (kn_utf16_len(text, n) > KN_MESSAGE_LINE_TEXT_MAX)
        text[kn_utf8_grapheme_floor(
            text, n, kn_utf16_prefix(text, n, KN_MESSAGE_LINE_TEXT_MAX))] =
            '\0';
}

/*
 * The next piece of body text (from s[0..n)) for one message: all of it if
 * it fits; else, for a message that is not the last one allowed, up to the
 * limit, ending after the last line break in the final fifth of the
 * window if there is one (so a message rarely ends mid-sentence); for the
 * last one allowed, as much as fits with the note.  *used gets the bytes
 * of s consumed.
 */
static char *body_piece(const char *s, size_t n, int last, size_t *used)
{
    size_t fit, note = kn_utf16_len(cut_note, strlen(cut_note));
    if (kn_utf16_len(s, n) <= KN_MESSAGE_LINE_TEXT_MAX) {
        *used = n;
        return kn_xstrndup(s, n);
    }
    if (last) {
        fit = kn_utf8_grapheme_floor(
            s, n, kn_utf16_prefix(s, n, KN_MESSAGE_LINE_TEXT_MAX - note));
        *used = n;
        return kn_xasprintf("%.*s%s", (int)fit, s, cut_note);
    }
    fit = kn_utf8_grapheme_floor(
        s, n, kn_utf16_prefix(s, n, KN_MESSAGE_LINE_TEXT_MAX));
    for (size_t i = fit; i > fit * 4 / 5; i--) {
        if (s[i - 1] == '\n') {
            fit = i;
            break;
        }
    }
    *used = fit;
    return kn_xstrndup(s, fit);
}

size_t kn_message_line_texts(int drill, const char *subject, const char *body,
                             const char *link,
                             char *texts[KN_MESSAGE_LINE_TEXTS])
{
    size_t nt = 0, off = 0, n, used, last = link != NULL ? 3 : 4;
    char *s, *b;

    s = kn_message_subject(drill, subject);
    texts[nt] = lf_only("", s);
    free(s);
    line_cut(texts[nt]);
    nt++;

    s = kn_message_body(KN_TEXT_LINE, drill, body);
    b = lf_only("", s);
    free(s);
    n = strlen(b);
    while (off < n && nt <= last) {
        texts[nt] = body_piece(b + off, n - off, nt == last, &used);
        nt++;
        off += used;
    }
    free(b);
    if (link != NULL) {
        /* A message of its own, so that cutting never drops it; the same
         * words as the e-mail. */
        texts[nt] = kn_message_link_text(KN_TEXT_LINE, link);
        line_cut(texts[nt]);
        nt++;
    }
    return nt;
}

int kn_unsub_url_ok(const char *url)
{
    size_t n = url != NULL ? strlen(url) : 0;
    /* The scheme is case-insensitive (RFC 3986 3.1): "HTTPS://" is as
     * good as "https://" (http.public_url may be written so). */
    if (n < 9 || n > 900 || strncasecmp(url, "https://", 8) != 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c >= 0x7f || c == '<' || c == '>' || c == ',' ||
            c == '"')
            return 0;
    }
    return 1;
}
