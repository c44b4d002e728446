/*
 * broadcast.h - the broadcast of the wire contract (DESIGN.md): parsing and
 * validating its JSON, and turning it into what is stored in Redis.
 *
 * kairanctl, the HTTP API and the expander (for raw XADDs) all go through
 * kn_broadcast_parse, so every producer gets the same checks and the same
 * error texts.  An error names the field ("recipients[3].email") and says
 * what to fix; an address in an error is masked.
 */
#ifndef KN_MODEL_BROADCAST_H
#define KN_MODEL_BROADCAST_H

#include <stddef.h>
#include <stdint.h>

struct kn_keyring;
struct kn_argv;

struct kn_limits {
    int64_t max_subject;    /* bytes */
    int64_t max_body;       /* bytes */
    int64_t max_recipients; /* inline recipients */
    int64_t default_ttl_ms;
    /* 1: keep private-use characters (gaiji) in the texts: kairan's own
     * messages, and a raw XADD already in the stream (rejecting it would
     * reach nobody).  0 (what the front ends give): refused, with the
     * character's place (model/gaiji.h). */
    int gaiji_ok;
};

struct kn_push_token {
    char *platform; /* "fcm" | "apns" */
    char *token;
};

struct kn_inline_rcpt {
    char *id;
    char *name;  /* may be NULL */
    char *email; /* may be NULL */
    char *line;  /* may be NULL */
    struct kn_push_token *push;
    size_t npush;
};

/*
 * A translation of a broadcast's text (issue 16, "Languages"): the subject
 * and body in one language, under the same rules and limits as the main
 * (Japanese) ones.  lang passes kn_lang_valid and is never Japanese.
 */
#define KN_TRANSLATIONS_MAX 8
struct kn_translation {
    char lang[16];
    char *subject;
    char *body;
};

enum kn_channel { KN_CH_EMAIL, KN_CH_LINE, KN_CH_PUSH, KN_CH__COUNT };

/* "email", "line", "push"; and back (returns -1 if unknown). */
const char *kn_channel_name(enum kn_channel c);
int kn_channel_parse(const char *s);

struct kn_broadcast {
    char *id;  /* the name, kairan's own ("b-..."): set by the front end
                * (kn_broadcast_new_id), never by the producer */
    char *key; /* the producer's "id": its idempotency key within its
                * tenant; NULL if it gave none */
    char *tenant;
    char *category;
    int urgent;
    int drill;
    int ack;
    int preferred; /* policy: preferred (else all) */
    char *subject;
    char *body;
    enum kn_channel channels[KN_CH__COUNT];
    size_t nchannels;
    char **groups;
    size_t ngroups;
    char **rcpt_ids; /* audience.recipients: directory ids */
    size_t nrcpt_ids;
    struct kn_inline_rcpt *rcpts;
    size_t nrcpts;
    /* "escalate_to": "next_guardian" (1), else the next channel (0);
     * docs/drills.md, "Escalation" */
    int escalate_guardian;
    int64_t send_at_ms;  /* 0: now */
    int64_t expires_ms;  /* always set after parse */
    int64_t escalate_ms; /* 0: none */
    char *sender;        /* who submitted (token name, "kairanctl") */
    /* The body holds a secret (a guardian's one-time link or code): it is
     * stored sealed ("body" sealed with purpose "body", "sb" = 1), the
     * sender alone reads it; the API shows that it is withheld. */
    int seal_body;
    char **choices;            /* "choices": the answers offered (ack only) */
    size_t nchoices;           /* 0, or KN_ACK_CHOICES_MIN..MAX */
    struct kn_translation *tr; /* "translations", in the JSON's order */
    size_t ntr;                /* 0..KN_TRANSLATIONS_MAX */
};

/* Limits of an ack broadcast's answers (docs/http-api.md, "Answers"). */
#define KN_ACK_CHOICES_MIN 2
#define KN_ACK_CHOICES_MAX 6
#define KN_ACK_CHOICE_MAX  40  /* characters of one choice */
#define KN_ACK_COMMENT_MAX 200 /* characters of a guardian's comment */

/*
 * Parse and validate a broadcast.  Returns 0 and fills b (free with
 * kn_broadcast_free), or KN_EINVAL with a message in err ("subject: ...")
 * and the offending field's name in field (both always NUL-terminated).
 */
int kn_broadcast_parse(const char *json, size_t len,
                       const struct kn_limits *lim, struct kn_broadcast *b,
                       char *err, size_t errlen, char *field, size_t fieldlen);

void kn_broadcast_free(struct kn_broadcast *b);

/*
 * The stored form of translations (the field "translations" of bc:<id>):
 * {"<lang>": {"subject": ..., "body": ...}, ...}.  Heap string, or NULL
 * when n is 0.
 */
char *kn_translations_json(const struct kn_translation *tr, size_t n);

/*
 * Read the stored form back (what kn_translations_json wrote; entries
 * that are not an object with two strings under a valid tag are left
 * out).  Returns the number read (0..KN_TRANSLATIONS_MAX) with *out a heap
 * array to free with kn_translations_free, or 0 and *out NULL.
 */
size_t kn_translations_load(const char *json, struct kn_translation **out);
void kn_translations_free(struct kn_translation *tr, size_t n);

/*
 * Which of a broadcast's languages langs ("en,pt", the field "langs" of
 * bc:<id>) a reader of language lang gets: the same tag, else one whose
 * primary subtag is lang's ("zh" for "zh-Hant", "zh-Hans" for "zh"), into
 * out.  Returns 1, or 0 (Japanese, the main text: lang is Japanese or has
 * no translation; out is "").
 */
int kn_translation_pick(const char *langs, const char *lang, char *out,
                        size_t outlen);

/* 1 if s is acceptable as a broadcast or recipient id. */
int kn_id_valid(const char *s);

/*
 * A count of a broadcast's record (jobs, final, n:<channel>:<state>, a
 * confirmation tally) as stored, within reason: 0 for NULL or below 0,
 * at most KN_BC_COUNT_MAX.  kairan never writes anything outside that; a
 * record written by anyone with Redis access must not make the sums and
 * differences of its readers overflow.
 */
#define KN_BC_COUNT_MAX 1000000000000LL
long long kn_bc_count(const char *s);

/* A fresh broadcast id: "b-<yyyymmdd>-<12 hex>" (JST date). Heap. */
char *kn_broadcast_new_id(void);

/*
 * The arguments of the submit script (queue.h) for this broadcast:
 * its hash fields and one audience entry per inline recipient with every
 * address sealed and blind-indexed.  Plaintext never leaves this function.
 */
void kn_broadcast_submit_args(const struct kn_broadcast *b,
                              const struct kn_keyring *kr,
                              struct kn_argv *fields, struct kn_argv *aud);

/*
 * The broadcast's JSON with every address masked, for keeping a rejected
 * broadcast visible without keeping its plaintext.  Heap string, or NULL
 * when json does not parse at all.
 */
char *kn_broadcast_mask_json(const char *json, size_t len);

/*
 * The personal confirmation token of one recipient of an "ack" broadcast
 * (the link <http.public_url>/a/<token>): base64url("<bcast>|<rcpt>") "."
 * HMAC (the blind-index key, purpose "ack") over the same.  Nothing is
 * stored to make it; anyone without the key file can neither forge nor
 * alter one.  Heap string.
 */
char *kn_ack_token(const struct kn_keyring *kr, const char *bcast,
                   const char *rcpt);

/*
 * Check a token; returns 0 and heap copies of the broadcast and recipient
 * ids, or KN_EINVAL (malformed, altered, forged).
 */
int kn_ack_parse(const struct kn_keyring *kr, const char *token, char **bcast,
                 char **rcpt);

/*
 * The token of one guardian of the recipient (child): as kn_ack_token,
 * over "<bcast>|<rcpt>|<guardian>" (guardian: 0 the directory record's
 * own contacts, k its k-th further guardian, model/guardian.h); a
 * guardian < 0 makes kn_ack_token's.  Heap string.
 */
char *kn_ack_token_guardian(const struct kn_keyring *kr, const char *bcast,
                            const char *rcpt, int guardian);

/*
 * kn_ack_parse that also gives the guardian of the token (-1 for a token
 * without one: links sent before guardians were named keep working).
 */
int kn_ack_parse_guardian(const struct kn_keyring *kr, const char *token,
                          char **bcast, char **rcpt, int *guardian);

/*
 * A guardian's comment s[0..n): at most KN_ACK_COMMENT_MAX characters
 * (counted as characters, not bytes), one line, no control character,
 * valid UTF-8.  Returns 0, or KN_EINVAL with what to fix in err (never
 * quoting the comment).
 */
int kn_ack_comment_check(const char *s, size_t n, char *err, size_t errlen);

/*
 * A confirmation as stored in bc:<id>:ack (the value of the recipient's
 * field): the JSON object {"t": ms, "a": choice index, "c": sealed
 * comment}, "a" and "c" only when given (answer < 0, sealed_comment NULL:
 * left out).  The comment is sealed by the caller (kn_seal, purpose
 * "ack-comment") before it reaches this function.  Heap string.
 */
char *kn_ack_value(int64_t ms, int answer, const char *sealed_comment);

/*
 * kn_ack_value with the guardian who confirmed ("g": its number as in
 * kn_ack_token_guardian; guardian < 0: left out).  Heap string.
 */
char *kn_ack_value_guardian(int64_t ms, int answer, const char *sealed_comment,
                            int guardian);

/* The guardian of a stored confirmation ("g"), or -1 if it names none. */
int kn_ack_value_guardian_of(const char *v);

/*
 * Read a stored confirmation: the JSON above, or a plain decimal time
 * (confirmations stored before answers existed).  Returns 0 with *ms > 0,
 * *answer (-1: none) and, if sealed_comment != NULL, a heap copy of the
 * sealed comment or NULL; or KN_EINVAL (nothing confirmed, *ms = 0).
 */
int kn_ack_value_parse(const char *v, int64_t *ms, int *answer,
                       char **sealed_comment);

#endif
