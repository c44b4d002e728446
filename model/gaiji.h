/*
 * gaiji.h - text that holds a private-use character (外字, gaiji), refused
 * with a reason that says which character and where.
 *
 * A school's PC may have its own characters (CP932's user-defined area
 * 0xF040-0xF9FC, which iconv maps to U+E000-U+E757), and text pasted from
 * a web page or another program may hold icons from a private font
 * (U+E000-U+F8FF, the planes 15 and 16).  Only that PC has their
 * pictures: on a guardian's phone a name or a notice shows a box or
 * another character in their place.  Every text a person writes for
 * others to read (a child's or guardian's name, a group, a staff member's
 * name, a broadcast's subject and body, a template) goes through
 * kn_gaiji_check, so that the writer learns at once, not the reader.
 * CJK compatibility ideographs (U+F900-U+FAFF: 﨑, 髙's neighbours) are
 * real characters and pass.
 *
 * Pure functions over borrowed text; what they return is heap.
 */
#ifndef KN_MODEL_GAIJI_H
#define KN_MODEL_GAIJI_H

#include <stddef.h>

/* 1 if cp is in a Private Use Area (U+E000-U+F8FF, U+F0000-U+10FFFF). */
int kn_gaiji_is(unsigned long cp);

/*
 * The first private-use character of s (NUL-terminated): its code point,
 * with its place in characters (1-based) in *at; 0 (and *at 0) if there
 * is none.  A byte that is not UTF-8 counts as one character and is never
 * a gaiji (callers refuse invalid UTF-8 on their own).
 */
unsigned long kn_gaiji_find(const char *s, size_t *at);

/*
 * s with every private-use character as the geta mark 〓 (U+3013, what
 * Japanese software shows for a character it cannot), safe to quote
 * (common/text.h kn_text_safe): all of s when it is at most 120 bytes,
 * else the 15 characters either side of the first one, "…" where cut.
 * Heap.
 */
char *kn_gaiji_excerpt(const char *s);

/* What the text is, for how a reason quotes it and what it says to do. */
enum kn_gaiji_kind {
    KN_GAIJI_NAME,  /* a name: quoted; "use a standard kanji or kana" */
    KN_GAIJI_TEXT,  /* a message: an excerpt; "replace it or remove it" */
    KN_GAIJI_SECRET /* an address, token or number: never quoted */
};

/*
 * Check s.  Returns 0 if it holds no private-use character (then *en and
 * *ja are NULL); else KN_EINVAL with the reason in English in *en
 * ("<field_en>: contains a user-defined character (gaiji: U+E000, private
 * use) at character 2 ("渡〓 一郎"): ...") and in Japanese in *ja
 * ("<field_ja>に外字（機種依存文字）が含まれています（「渡〓 一郎」の〓の
 * 所、2 文字目）。..."), both heap, the caller's to free.  field_ja is
 * written as given: name the field as the reader knows it (「氏名」（B列）,
 * お名前, 本文).  at and excerpt, if not NULL, get the place and (for
 * KN_GAIJI_SECRET: NULL) kn_gaiji_excerpt, heap, for an answer's own
 * fields.
 */
int kn_gaiji_check(const char *s, enum kn_gaiji_kind kind, const char *field_en,
                   const char *field_ja, char **en, char **ja, size_t *at,
                   char **excerpt);

#endif
