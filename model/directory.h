/*
 * directory.h - the directory record: one recipient's contacts, as compact
 * JSON in the field "c" of the hash rcpt:<tenant>:<id> (written by
 * "kairanctl recipients import"), and in the same shape in an inline
 * audience entry "i:<json>" of bc:<id>:aud (model/broadcast.c), so that
 * the expander reads both alike.
 *
 * Every address is sealed (common/seal.h, purpose "email", "line" or
 * "push") and has its blind index beside it; plaintext is never stored.
 * This header is the one place that names the keys.  The Lua scripts
 * cannot include it and use the same letters: queue/lua/lib (unindex, for
 * rcpt_upsert and rcpt_delete) reads ei, li and p[].ti to keep the indexes
 * bidx:<tenant>:<channel>:<bi>.
 *
 *   key    JSON    meaning
 *   id     string  the recipient id
 *   nm     string  inline entries only: the name, sealed ("name")
 *   e, ei  string  e-mail address (sealed), its blind index
 *   l, li  string  LINE user id (sealed), its blind index
 *   ldead  true    the LINE user is unreachable (the expander skips it)
 *   p      array   push tokens: {"k": "fcm"|"apns", "t": sealed token,
 *                  "ti": blind index, "dead": true: skipped likewise}
 * (ldead and dead are only read: nothing in this tree writes them now;
 * gone addresses are the sets dead:<channel>, see queue/lua/mark_dead.lua.)
 *   ch     array   the recipient's own channel order (policy preferred)
 *   g      array   further guardians of the same child (the first one's
 *                  contacts are the members above): each an object with
 *                  e, ei, l, li, p, ch as above, and nm (the guardian's
 *                  name, sealed "name") and ph (phone, sealed "phone");
 *                  written by the import from rows repeating the child's
 *                  id.  A record without "g" has one guardian (or none).
 */
#ifndef KN_MODEL_DIRECTORY_H
#define KN_MODEL_DIRECTORY_H

#include <jansson.h>
#include <stddef.h>

struct kn_keyring;

#define KN_DIR_HASH_FIELD "c" /* in rcpt:<tenant>:<id> */

#define KN_DIR_ID            "id"
#define KN_DIR_NAME          "nm"
#define KN_DIR_EMAIL         "e"
#define KN_DIR_EMAIL_INDEX   "ei"
#define KN_DIR_LINE          "l"
#define KN_DIR_LINE_INDEX    "li"
#define KN_DIR_LINE_DEAD     "ldead"
#define KN_DIR_PUSH          "p"
#define KN_DIR_PUSH_PLATFORM "k"
#define KN_DIR_PUSH_TOKEN    "t"
#define KN_DIR_PUSH_INDEX    "ti"
#define KN_DIR_PUSH_DEAD     "dead"
#define KN_DIR_CHANNELS      "ch"
#define KN_DIR_GUARDIANS     "g"
#define KN_DIR_PHONE         "ph"
/* true: this guardian is deactivated (the console's 名簿: moved, asked to
 * stop): no deliveries to its contacts, record kept.  On the record itself
 * it is the first guardian's (whose contacts are the record's own); on an
 * element of "g", that guardian's.  queue/lua/rcpt_edit.lua sets it. */
#define KN_DIR_OFF "off"

/*
 * What a guardian chose (issue 16: my page, one-click unsubscribe, the
 * language of the registration page), in an object "pf" on that guardian:
 * the record itself for the first guardian, an element of "g" (the
 * directory's or reg:<tenant>:<id>'s) for the others.  The school's import
 * keeps the "pf" of a guardian whose e-mail or LINE index it finds again
 * for the same child; nothing else of the school's overwrites it.
 *
 *   lg  string  the language the guardian reads (kn_lang_valid): a
 *               broadcast's translation in it, else the Japanese text
 *   ch  array   the guardian's own channel order; wins over the import's
 *               "ch" (same names: email, line, push)
 *   ox  array   categories the guardian opted out of: never an emergency
 *               one, and an urgent broadcast ignores the list
 *   xc  array   channels the guardian stopped (my page, after a one-time
 *               code): not used for a broadcast that is neither urgent nor
 *               of an emergency category; an emergency category still
 *               uses the first of the guardian's channels when every one
 *               is stopped; an urgent broadcast ignores the list
 *   at  number  ms since the epoch of the last change
 */
#define KN_DIR_PREFS         "pf"
#define KN_DIR_PREF_LANG     "lg"
#define KN_DIR_PREF_CHANNELS "ch"
#define KN_DIR_PREF_OPTOUT   "ox"
#define KN_DIR_PREF_STOPPED  "xc"
#define KN_DIR_PREF_AT       "at"
#define KN_LANG_DEFAULT      "ja"

/* ---- building (plaintext in, sealed out) ---- */

/* A new record holding only its id.  New reference. */
json_t *kn_dir_new(const char *id);

/* Seal the name into "nm" (inline audience entries). */
void kn_dir_set_name(json_t *c, const struct kn_keyring *kr, const char *name);

/*
 * Seal an address into "e" ("email") or "l" ("line"), its blind index into
 * "ei" or "li", and copy the index into bi when bi is not NULL.  purpose:
 * "email" or "line".
 */
void kn_dir_set_address(json_t *c, const struct kn_keyring *kr,
                        const char *purpose, const char *plain, char bi[33]);

/* Append a push token {"k": platform, "t": sealed, "ti": index} to "p";
 * the index into bi when bi is not NULL. */
void kn_dir_add_push(json_t *c, const struct kn_keyring *kr,
                     const char *platform, const char *plain, char bi[33]);

/* Append a channel name to the recipient's own order "ch". */
void kn_dir_add_channel(json_t *c, const char *channel);

/* ---- reading ---- */

struct kn_dir_token {
    const char *platform; /* NULL if absent */
    const char *token;    /* sealed; NULL if absent */
    const char *index;    /* NULL if absent */
    int dead;
};

/* A record read back.  Strings point into the JSON (valid while it
 * lives); a member that is absent or not of its type is NULL (or 0). */
struct kn_dir_rec {
    const char *id;
    const char *name; /* sealed */
    const char *email, *email_index;
    const char *line, *line_index;
    int line_dead;
    struct kn_dir_token *push; /* heap: kn_dir_rec_free */
    size_t npush;              /* every object of "p", in order */
    const char **channels;     /* heap: the strings of "ch", in order */
    size_t nchannels;
};

/*
 * Read a record.  Returns 0 and fills rec, or KN_EINVAL when c is not an
 * object (rec then holds nothing to free).
 */
int kn_dir_parse(json_t *c, struct kn_dir_rec *rec);

/* A language tag kairan accepts: a primary subtag of 2-3 lower-case
 * letters, optionally "-" and a region or script of 2-8 letters or digits
 * ("ja", "en", "pt", "zh-Hans", "vi", "fil"), at most 15 bytes. */
int kn_lang_valid(const char *tag);

/* The guardian g's language: its "pf"."lg" when valid, else "ja". */
const char *kn_dir_lang(json_t *g);

/* 1 if the guardian g opted out of category cat ("pf"."ox"). */
int kn_dir_opted_out(json_t *g, const char *cat);

/* 1 if the guardian g stopped channel ch ("pf"."xc", a channel name). */
int kn_dir_stopped(json_t *g, const char *ch);

/* The guardian g's own channel order: "pf"."ch" when it is a non-empty
 * array (the guardian's choice wins), else the import's "ch" (may be
 * NULL).  Borrowed. */
json_t *kn_dir_order(json_t *g);

/* Free rec's arrays (not the strings: they are the JSON's). */
void kn_dir_rec_free(struct kn_dir_rec *rec);

#endif
