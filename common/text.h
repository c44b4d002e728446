/*
 * text.h - outside text made safe to show: on a terminal, in a text or
 * HTML report, in a JSON log or audit line.
 *
 * Strings that come from outside (a subject, a name, a category, a
 * provider's reason, a file or request path) may hold escape sequences
 * that a terminal obeys (ESC [ ..., the C1 CSI U+009B), bidirectional
 * overrides that make text read backwards, or bytes that are not UTF-8
 * (which JSON cannot carry, so that a JSON writer would drop the whole
 * value).  These functions never drop anything: what cannot be shown is
 * written as a visible escape, so the reader sees that it was there.
 *
 *   invalid UTF-8 byte              \xNN   (e.g. "\xff")
 *   C0 control, DEL (terminal mode) \xNN   (ESC -> "\x1b", LF -> "\x0a")
 *   C1 control, bidi or line/paragraph separator (terminal mode)
 *                                   \uNNNN (e.g. "\u009b", "\u202e")
 *
 * Everything else, CJK included, is kept as it is.  A backslash in the
 * input is kept as it is too (paths and reasons stay readable), so the
 * output is for people, not for parsing back.
 */
#ifndef KN_COMMON_TEXT_H
#define KN_COMMON_TEXT_H

#include <stddef.h>

/*
 * s (NULL: "") for a terminal or a text report: invalid UTF-8, C0, DEL, C1,
 * bidi controls, U+2028/U+2029 and the invisible U+200B, U+2060-2064 and
 * U+FEFF (a BOM in the middle of a file) escaped.  Returns a heap string.
 */
char *kn_text_safe(const char *s);

/* 1 if kn_text_safe() would leave s as it is: a name or a cell with
 * nothing to escape. */
int kn_text_plain(const char *s);

/*
 * s[0..n) as valid UTF-8: only bytes that are not UTF-8 (and NUL bytes)
 * escaped as \xNN; controls are left to the JSON writer, which escapes
 * them.  For values that go into JSON.  Returns a heap string.
 */
char *kn_text_utf8(const char *s, size_t n);

/*
 * A JSON text (as json_dumps writes it: every control below U+0020
 * already escaped) with the C1 controls, bidi controls and U+2028/U+2029
 * it still holds raw written as \uNNNN escapes instead: the same JSON
 * value, safe to print on a terminal.  Returns a heap string.
 */
char *kn_text_json(const char *json);

/*
 * Append s[0..n) to b as HTML text: & < > " ' as character references, CR
 * dropped, every other byte as it is (UTF-8 stays UTF-8).  For the pages
 * kairand builds (the confirmation page, the unsubscribe page).
 */
struct kn_buf;
void kn_text_html(struct kn_buf *b, const char *s, size_t n);

#endif
