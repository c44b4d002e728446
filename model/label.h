/*
 * label.h - group and category names: whatever a school writes
 * ("サッカー部", "２年Ａ組", "行事"), made one canonical UTF-8 string.
 *
 * Every name that enters kairan (a broadcast's audience.groups and
 * category, the CSV import's groups column, kairanctl's arguments, a raw
 * XADD) goes through kn_label_norm, so that "２年Ａ組" and "2年A組" are
 * one group: the name is NFKC-normalised (full-width letters and digits
 * become ASCII, half-width katakana full-width), spaces at both ends are
 * removed, and then it must be 1-64 characters with no control character,
 * no bidi control, no line or paragraph separator, no private-use
 * character (外字, model/gaiji.h: a box on guardians' phones), no ';' (the
 * CSV's list separator) and no ',' (the list separator of kairanctl's --groups
 * and of tokens).  Key names stay safe because every key part made of a label
 * is percent-encoded (kn_key_part).
 */
#ifndef KN_MODEL_LABEL_H
#define KN_MODEL_LABEL_H

#include <stddef.h>

#define KN_LABEL_MAX_CHARS 64

/*
 * Normalise the name s (NUL-terminated, any bytes).  Returns 0 and a heap
 * string in *out (free it), or KN_EINVAL with *out NULL and a reason in err
 * that says what to fix (it never quotes the name: callers that show the
 * name escape it themselves).
 */
int kn_label_norm(const char *s, char **out, char *err, size_t errlen);
/* The same, with the reason also in Japanese for an office clerk in err_ja
 * ("「;」（全角の「；」も同じ）は名前の区切りに使う文字なので…"), when it
 * fails. */
int kn_label_norm_ja(const char *s, char **out, char *err, size_t errlen,
                     char *err_ja, size_t errlen_ja);
/* The same for a name that may have been stored before invisible format
 * characters (U+200B, U+2060, U+00AD...) were refused: to find or delete
 * it, never to make a new one. */
int kn_label_norm_existing(const char *s, char **out, char *err, size_t errlen);

/* 1 if s is already a label in its normal form (kn_label_norm would
 * return it unchanged). */
int kn_label_is_norm(const char *s);

/*
 * The categories every tenant has without adding them (so that producers
 * written before tenants kept lists keep working): the four words kairan
 * itself named before (its error said "use a short word such as
 * emergency, notice, event, drill"): "notice" (the default), "event",
 * "drill", and "emergency", flagged emergency.  Any other category must
 * be in the tenant's own list (kairanctl category add).  queue/lua/
 * submit.lua holds the same four names: keep them equal.
 */
enum kn_category_kind {
    KN_CAT_OWN,      /* not built in: must be in the tenant's list */
    KN_CAT_BUILTIN,  /* notice, event, drill */
    KN_CAT_EMERGENCY /* emergency */
};
enum kn_category_kind kn_category_builtin(const char *name);

/*
 * 1 if a broadcast of category name is an emergency one (issue 16: no
 * one-click unsubscribe, guardians' opt-outs ignored): the built-in
 * "emergency", or a category whose flags in the tenant's list cats:<T>
 * (kairanctl category add --emergency) hold "emergency".  flags may be
 * NULL (not in the list).  queue/lua/resolve.lua applies the same rule.
 */
int kn_category_emergency(const char *name, const char *flags);

#endif
