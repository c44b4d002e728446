/*
 * text.c - outside text made safe to show (text.h).
 *
 * One walk over the bytes, one character at a time: a valid UTF-8
 * character is copied unless the mode escapes it, a byte that does not
 * start one is written as \xNN and the walk goes on with the next byte.
 * Nothing is ever dropped.
 */
#include "common/text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/kn.h"
#include "common/utf8.h"

/* Code points a terminal or a reader can be fooled by (besides C0). */
static int is_tricky(unsigned long cp)
{
    return (cp >= 0x80 && cp <= 0x9f) ||     /* C1: CSI, OSC, NEL ... */
           cp == 0x061c ||                   /* Arabic letter mark */
           cp == 0x200b ||                   /* zero width space */
           cp == 0x200e || cp == 0x200f ||   /* LRM, RLM */
           (cp >= 0x2028 && cp <= 0x202e) || /* LS, PS, bidi embeddings */
           (cp >= 0x2060 && cp <= 0x2064) || /* word joiner, invisibles */
           (cp >= 0x2066 && cp <= 0x2069) || /* bidi isolates */
           cp == 0xfeff; /* a BOM inside a text (two files pasted in one) */
}

struct tbuf {
    char *s;
    size_t n, cap;
};

static void tb_add(struct tbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->s = kn_xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static char *escape(const char *s, size_t n, int terminal)
{
    struct tbuf b = {0};
    size_t i = 0;
    char esc[24];

    tb_add(&b, "", 0);
    while (i < n) {
        unsigned long cp;
        size_t l = kn_utf8_decode(s + i, n - i, &cp);
        if (l == 0 || cp == 0 || (terminal && (cp < 0x20 || cp == 0x7f))) {
            snprintf(esc, sizeof(esc), "\\x%02x", (unsigned char)s[i]);
            tb_add(&b, esc, 4);
            i++;
            continue;
        }
        if (terminal && is_tricky(cp)) {
            snprintf(esc, sizeof(esc), "\\u%04lx", cp);
            tb_add(&b, esc, 6);
        } else {
            tb_add(&b, s + i, l);
        }
        i += l;
    }
    return b.s;
}

char *kn_text_safe(const char *s)
{
    if (s == NULL)
        s = "";
    return escape(s, strlen(s), 1);
}

char *kn_text_utf8(const char *s, size_t n)
{
    return escape(s, n, 0);
}

char *kn_text_json(const char *json)
{
    struct tbuf b = {0};
    size_t n = strlen(json), i = 0;
    char esc[24];

    tb_add(&b, "", 0);
    while (i < n) {
        unsigned long cp;
        size_t l = kn_utf8_decode(json + i, n - i, &cp);
        if (l == 0) { /* never from jansson; still keep the JSON valid */
            tb_add(&b, "\\ufffd", 6);
            i++;
            continue;
        }
        if (is_tricky(cp)) {
            snprintf(esc, sizeof(esc), "\\u%04lx", cp);
            tb_add(&b, esc, 6);
        } else {
            tb_add(&b, json + i, l);
        }
        i += l;
    }
    return b.s;
}

void kn_text_html(struct kn_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (s[i]) {
        case '&':
            kn_buf_add(b, "&amp;");
            break;
        case '<':
            kn_buf_add(b, "&lt;");
            break;
        case '>':
            kn_buf_add(b, "&gt;");
            break;
        case '"':
            kn_buf_add(b, "&quot;");
            break;
        case '\'':
            kn_buf_add(b, "&#39;");
            break;
        case '\r':
            break;
        default:
            kn_buf_addc(b, s[i]);
        }
    }
}

int kn_text_plain(const char *s)
{
    char *t = kn_text_safe(s);
    int same = strcmp(t, s != NULL ? s : "") == 0;
    free(t);
    return same;
}
