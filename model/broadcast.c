/*
 * broadcast.c - parse and validate a broadcast (wire contract), pick a
 * translation, and mask it for a rejection record (its stored form:
 * broadcast_store.c).
 *
 * Validation is strict on purpose: an unknown field is an error (a typo
 * such as "subjct" must not send a broadcast without a subject), CR, LF and
 * NUL are refused wherever they could reach a mail header (IPA's "mail
 * header injection"), and every limit comes from the config.
 */
#include "broadcast.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kn.h"
#include "common/log.h"
#include "common/utf8.h"
#include "model/address.h"
#include "model/directory.h"
#include "model/gaiji.h"
#include "model/label.h"
#include "model/message.h"

static const char *channel_names[KN_CH__COUNT] = {"email", "line", "push"};

const char *kn_channel_name(enum kn_channel c)
{
    return (unsigned)c < KN_CH__COUNT ? channel_names[c] : "?";
}

int kn_channel_parse(const char *s)
{
    for (int i = 0; i < KN_CH__COUNT; i++) {
        if (strcmp(s, channel_names[i]) == 0)
            return i;
    }
    return -1;
}

long long kn_bc_count(const char *s)
{
    long long v = s != NULL ? strtoll(s, NULL, 10) : 0;
    return v < 0 ? 0 : v > KN_BC_COUNT_MAX ? KN_BC_COUNT_MAX : v;
}

int kn_id_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9') ||
                 (i > 0 && (c == '-' || c == '_' || c == '.' || c == ':'));
        if (!ok)
            return 0;
    }
    return 1;
}

char *kn_broadcast_new_id(void)
{
    unsigned char r[6];
    char date[48];
    kn_random(r, sizeof(r));
    kn_time_jst(kn_now_ms(), date, sizeof(date));
    return kn_xasprintf("b-%.4s%.2s%.2s-%02x%02x%02x%02x%02x%02x", date,
                        date + 5, date + 8, r[0], r[1], r[2], r[3], r[4], r[5]);
}

/* ---- errors ---- */

struct perr {
    char *err;
    size_t errlen;
    char *field;
    size_t fieldlen;
};

static int fail(struct perr *pe, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct perr *pe, const char *field, const char *fmt, ...)
{
    va_list ap;
    char msg[1024]; /* a gaiji's reason: Japanese and English, excerpts */
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(pe->err, pe->errlen, "%s: %s", field, msg);
    snprintf(pe->field, pe->fieldlen, "%s", field);
    return KN_EINVAL;
}

static int has_ctl(const char *s, size_t n)
{
    return !kn_header_safe(s, n);
}

/*
 * Get an optional string member.  Returns 0 (and *out, or NULL if
 * absent or null), or an error for a wrong type, a NUL, invalid UTF-8,
 * or (if line) a CR/LF.
 */
static int get_str(json_t *o, const char *key, const char *field, int line,
                   size_t max, char **out, struct perr *pe)
{
    json_t *v = json_object_get(o, key);
    const char *s;
    size_t n;
    *out = NULL;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return fail(pe, field, "must be a string");
    s = json_string_value(v);
    n = json_string_length(v);
    if (memchr(s, '\0', n) != NULL)
        return fail(pe, field, "contains a NUL character; remove it");
    if (!kn_utf8_valid(s, n))
        return fail(pe, field, "is not valid UTF-8");
    if (line && has_ctl(s, n))
        return fail(pe, field,
                    "contains a line break (CR or LF); it must be one line");
    if (max > 0 && n > max)
        return fail(pe, field, "is %zu bytes; at most %zu are allowed", n, max);
    *out = kn_xstrndup(s, n);
    return 0;
}

static int get_bool(json_t *o, const char *key, int *out, struct perr *pe)
{
    json_t *v = json_object_get(o, key);
    *out = 0;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return fail(pe, key, "must be true or false");
    *out = json_is_true(v);
    return 0;
}

/* A key name that is a plain word (safe to name in an error or keep). */
static int plain_key(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > 40)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static int check_keys(json_t *o, const char *const *known, const char *where,
                      struct perr *pe)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        int ok = 0;
        for (size_t i = 0; known[i]; i++) {
            if (strcmp(k, known[i]) == 0)
                ok = 1;
        }
        if (!ok) {
            /* The key is named only when it is a plain word: a key may
             * hold anything, an address too (never echo a value). */
            char f[200];
            snprintf(f, sizeof(f), "%s%s%s", where, *where ? "." : "",
                     plain_key(k) ? k : "?");
            return fail(pe, f,
                        "unknown field%s (check the spelling against "
                        "the wire contract in the README)",
                        plain_key(k) ? "" : " whose name is not a word");
        }
    }
    return 0;
}

static int get_str_array(json_t *o, const char *key, const char *field,
                         char ***out, size_t *n, struct perr *pe)
{
    json_t *a = json_object_get(o, key), *v;
    size_t i;
    *out = NULL;
    *n = 0;
    if (a == NULL || json_is_null(a))
        return 0;
    if (!json_is_array(a))
        return fail(pe, field, "must be an array of strings");
    *out = kn_xcalloc(json_array_size(a) + 1, sizeof(char *));
    json_array_foreach(a, i, v)
    {
        char f[200];
        snprintf(f, sizeof(f), "%s[%zu]", field, i);
        if (!json_is_string(v))
            return fail(pe, f, "must be a string");
        if (!kn_id_valid(json_string_value(v)))
            return fail(pe, f,
                        "%s: use 1-128 letters, digits, '-', '_', '.', "
                        "':' (not first)",
                        strchr(json_string_value(v), '@') != NULL
                            ? "holds an address, not a name (inline "
                              "recipients with addresses go under the "
                              "top-level \"recipients\")"
                            : "is not a valid name");
        (*out)[(*n)++] = kn_xstrdup(json_string_value(v));
    }
    return 0;
}

/* audience.groups: each name NFKC-normalised (model/label.h), so that
 * "２年Ａ組" reaches the group the CSV import called "2年A組". */
static int get_label_array(json_t *o, const char *key, const char *field,
                           char ***out, size_t *n, struct perr *pe)
{
    json_t *a = json_object_get(o, key), *v;
    size_t i;
    *out = NULL;
    *n = 0;
    if (a == NULL || json_is_null(a))
        return 0;
    if (!json_is_array(a))
        return fail(pe, field, "must be an array of strings");
    *out = kn_xcalloc(json_array_size(a) + 1, sizeof(char *));
    json_array_foreach(a, i, v)
    {
        char f[200], why[160], *norm;
        snprintf(f, sizeof(f), "%s[%zu]", field, i);
        if (!json_is_string(v))
            return fail(pe, f, "must be a string");
        if (strlen(json_string_value(v)) != json_string_length(v))
            return fail(pe, f, "contains a NUL character; remove it");
        if (strchr(json_string_value(v), '@') != NULL &&
            strchr(strchr(json_string_value(v), '@'), '.') != NULL)
            return fail(pe, f,
                        "holds an address, not a group name (inline "
                        "recipients with addresses go under the "
                        "top-level \"recipients\")");
        if (kn_label_norm(json_string_value(v), &norm, why, sizeof(why)) < 0)
            return fail(pe, f, "the group name %s", why);
        (*out)[(*n)++] = norm;
    }
    return 0;
}

static int parse_rcpt(json_t *o, size_t idx, struct kn_inline_rcpt *r,
                      struct perr *pe)
{
    static const char *const known[] = {"id",   "name", "email",
                                        "line", "push", NULL};
    char f[160], where[48];
    const char *why = NULL;
    json_t *push, *t;
    size_t i;
    int rc;

    snprintf(where, sizeof(where), "recipients[%zu]", idx);
    if (!json_is_object(o))
        return fail(pe, where, "must be an object with id and contacts");
    if ((rc = check_keys(o, known, where, pe)) < 0)
        return rc;
    snprintf(f, sizeof(f), "%s.id", where);
    if ((rc = get_str(o, "id", f, 1, 128, &r->id, pe)) < 0)
        return rc;
    if (r->id == NULL || !kn_id_valid(r->id))
        return fail(pe, f,
                    "missing or invalid: give each recipient an id "
                    "of letters, digits, '-', '_', '.'");
    snprintf(f, sizeof(f), "%s.name", where);
    if ((rc = get_str(o, "name", f, 1, 200, &r->name, pe)) < 0)
        return rc;
    snprintf(f, sizeof(f), "%s.email", where);
    if ((rc = get_str(o, "email", f, 1, 320, &r->email, pe)) < 0)
        return rc;
    if (r->email != NULL && kn_addr_check(r->email, &why) < 0)
        return fail(pe, f, "is not an address: %s", why);
    snprintf(f, sizeof(f), "%s.line", where);
    if ((rc = get_str(o, "line", f, 1, 64, &r->line, pe)) < 0)
        return rc;
    if (r->line != NULL && kn_addr_line_check(r->line, &why) < 0)
        return fail(pe, f, "%s", why);
    push = json_object_get(o, "push");
    if (push != NULL && !json_is_null(push)) {
        snprintf(f, sizeof(f), "%s.push", where);
        if (!json_is_array(push))
            return fail(pe, f, "must be an array of {platform, token}");
        r->push = kn_xcalloc(json_array_size(push) + 1, sizeof(*r->push));
        json_array_foreach(push, i, t)
        {
            static const char *const pk[] = {"platform", "token", NULL};
            struct kn_push_token *pt = &r->push[r->npush];
            char pf[96];
            snprintf(pf, sizeof(pf), "%s.push[%zu]", where, i);
            if (!json_is_object(t))
                return fail(pe, pf, "must be {platform, token}");
            if ((rc = check_keys(t, pk, pf, pe)) < 0)
                return rc;
            r->npush++;
            snprintf(f, sizeof(f), "%s.platform", pf);
            if ((rc = get_str(t, "platform", f, 1, 16, &pt->platform, pe)) < 0)
                return rc;
            if (pt->platform == NULL || (strcmp(pt->platform, "fcm") != 0 &&
                                         strcmp(pt->platform, "apns") != 0))
                return fail(pe, f, "must be \"fcm\" or \"apns\"");
            snprintf(f, sizeof(f), "%s.token", pf);
            if ((rc = get_str(t, "token", f, 1, 4096, &pt->token, pe)) < 0)
                return rc;
            if (pt->token == NULL || pt->token[0] == '\0')
                return fail(pe, f, "missing device token");
            if ((strcmp(pt->platform, "fcm") == 0
                     ? kn_addr_fcm_check(pt->token, &why)
                     : kn_addr_apns_check(pt->token, &why)) < 0)
                return fail(pe, f, "%s", why);
        }
    }
    if (r->email == NULL && r->line == NULL && r->npush == 0)
        return fail(pe, where, "has no contact: give email, line or push");
    return 0;
}

static int get_time(json_t *o, const char *key, int64_t *ms, struct perr *pe)
{
    char *s = NULL;
    int rc = get_str(o, key, key, 1, 64, &s, pe);
    *ms = 0;
    if (rc < 0 || s == NULL)
        return rc;
    if (kn_time_parse(s, ms) < 0) {
        free(s);
        return fail(pe, key,
                    "not an RFC 3339 time; write e.g. "
                    "2026-11-22T07:00:00+09:00");
    }
    free(s);
    return 0;
}

/*
 * "choices": the answers a guardian picks from on the confirmation page.
 * Optional; given, it needs "ack": true and holds 2-6 strings of 1-40
 * characters each (not bytes), one line, no control character, no two
 * the same.
 */
static int get_choices(json_t *root, struct kn_broadcast *b, struct perr *pe)
{
    json_t *a = json_object_get(root, "choices"), *v;
    size_t i;
    if (a == NULL || json_is_null(a))
        return 0;
    if (!json_is_array(a))
        return fail(pe, "choices",
                    "must be an array of %d-%d strings, such as "
                    "[\"無事です\", \"けがをしています\"]",
                    KN_ACK_CHOICES_MIN, KN_ACK_CHOICES_MAX);
    if (!b->ack)
        return fail(pe, "choices",
                    "answers need a confirmation: add \"ack\": true, or "
                    "remove \"choices\"");
    if (json_array_size(a) < KN_ACK_CHOICES_MIN ||
        json_array_size(a) > KN_ACK_CHOICES_MAX)
        return fail(pe, "choices", "has %zu answers; give %d to %d",
                    json_array_size(a), KN_ACK_CHOICES_MIN, KN_ACK_CHOICES_MAX);
    b->choices = kn_xcalloc(json_array_size(a) + 1, sizeof(char *));
    json_array_foreach(a, i, v)
    {
        char f[32];
        long n;
        snprintf(f, sizeof(f), "choices[%zu]", i);
        if (!json_is_string(v))
            return fail(pe, f, "must be a string");
        n = kn_utf8_plain_chars(json_string_value(v), json_string_length(v));
        if (n < 0)
            return fail(pe, f,
                        "holds a control character (a line break, a tab) "
                        "or invalid UTF-8; write one line of text");
        if (n < 1 || n > KN_ACK_CHOICE_MAX)
            return fail(pe, f, "is %ld characters; give 1 to %d", n,
                        KN_ACK_CHOICE_MAX);
        for (size_t j = 0; j < b->nchoices; j++) {
            if (strcmp(b->choices[j], json_string_value(v)) == 0)
                return fail(pe, f, "is the same as choices[%zu]", j);
        }
        b->choices[b->nchoices++] = kn_xstrdup(json_string_value(v));
    }
    return 0;
}

/*
 * "escalate_to": "next_channel" (the default: the unconfirmed get the
 * message again on their next channel) or "next_guardian" (the child's
 * next guardian gets it; docs/drills.md); only beside "ack" and
 * "escalate_after".
 */
static int get_escalate_to(json_t *root, struct kn_broadcast *b,
                           struct perr *pe)
{
    char *s = NULL;
    int rc = get_str(root, "escalate_to", "escalate_to", 1, 32, &s, pe);
    if (rc < 0 || s == NULL)
        return rc;
    if (strcmp(s, "next_guardian") == 0)
        b->escalate_guardian = 1;
    else if (strcmp(s, "next_channel") != 0)
        rc = fail(pe, "escalate_to",
                  "is \"next_channel\" (the default) or \"next_guardian\"");
    free(s);
    if (rc == 0 && (!b->ack || b->escalate_ms <= 0))
        rc = fail(pe, "escalate_to",
                  "goes with a confirmation: give \"ack\": true and "
                  "\"escalate_after\" too, or leave escalate_to out");
    return rc;
}

/* 1 if tag is Japanese ("ja", "ja-JP"): the main text already is. */
static int lang_is_ja(const char *tag)
{
    return strncmp(tag, "ja", 2) == 0 && (tag[2] == '\0' || tag[2] == '-');
}

/*
 * "translations": {"en": {"subject": ..., "body": ...}, ...}.  Optional;
 * at most KN_TRANSLATIONS_MAX languages, each a tag kn_lang_valid takes
 * and not Japanese (the main text is), each with a subject and a body
 * under the rules and limits of the main ones.
 */
static int get_translations(json_t *root, const struct kn_limits *lim,
                            struct kn_broadcast *b, struct perr *pe)
{
    static const char *const known[] = {"subject", "body", NULL};
    json_t *o = json_object_get(root, "translations"), *t;
    const char *lang;
    int rc;
    if (o == NULL || json_is_null(o))
        return 0;
    if (!json_is_object(o))
        return fail(pe, "translations",
                    "must be an object such as {\"en\": {\"subject\": "
                    "\"...\", \"body\": \"...\"}}");
    if (json_object_size(o) > KN_TRANSLATIONS_MAX)
        return fail(pe, "translations", "has %zu languages; at most %d",
                    json_object_size(o), KN_TRANSLATIONS_MAX);
    b->tr = kn_xcalloc(json_object_size(o) + 1, sizeof(*b->tr));
    json_object_foreach(o, lang, t)
    {
        struct kn_translation *tr = &b->tr[b->ntr];
        char f[64];
        /* A key is named only when it is a plain word (check_keys). */
        snprintf(f, sizeof(f), "translations.%s", plain_key(lang) ? lang : "?");
        if (!kn_lang_valid(lang))
            return fail(pe, f,
                        "not a language tag: write a code such as \"en\", "
                        "\"pt\", \"zh-Hans\", \"vi\" or \"fil\"");
        if (lang_is_ja(lang))
            return fail(pe, f,
                        "the main subject and body are the Japanese text; "
                        "translate into another language");
        if (!json_is_object(t))
            return fail(pe, f, "must be {\"subject\": ..., \"body\": ...}");
        if ((rc = check_keys(t, known, f, pe)) < 0)
            return rc;
        snprintf(tr->lang, sizeof(tr->lang), "%s", lang);
        b->ntr++;
        snprintf(f, sizeof(f), "translations.%s.subject", lang);
        if ((rc = get_str(t, "subject", f, 1, (size_t)lim->max_subject,
                          &tr->subject, pe)) < 0)
            return rc;
        if (tr->subject == NULL || tr->subject[0] == '\0')
            return fail(pe, f, "missing: a translation needs a subject");
        snprintf(f, sizeof(f), "translations.%s.body", lang);
        if ((rc = get_str(t, "body", f, 0, (size_t)lim->max_body, &tr->body,
                          pe)) < 0)
            return rc;
        if (tr->body == NULL || tr->body[0] == '\0')
            return fail(pe, f, "missing: a translation needs a body");
    }
    return 0;
}

/* One text refused for a private-use character (model/gaiji.h): the
 * Japanese first for the teacher at the console, then the English. */
static int no_gaiji(struct perr *pe, const char *field, const char *field_ja,
                    const char *s)
{
    char *en, *ja;
    int rc;
    if (s == NULL || kn_gaiji_check(s, KN_GAIJI_TEXT, field, field_ja, &en, &ja,
                                    NULL, NULL) == 0)
        return 0;
    /* en starts with "<field>: ", which fail() writes first itself */
    rc = fail(pe, field, "%s (%s)", ja, en + strlen(field) + 2);
    free(en);
    free(ja);
    return rc;
}

/*
 * The texts that reach guardians' phones must hold no private-use
 * character (gaiji): on a phone it is a box, in a notice that cannot be
 * taken back.  The sender is answered at once (the console, the API,
 * kairanctl), so that the fix costs a moment; a raw XADD already in the
 * stream and kairan's own messages are not refused (kn_limits.gaiji_ok):
 * a notice with a box reaches people, a rejected one nobody.
 */
static int refuse_gaiji(const struct kn_broadcast *b, struct perr *pe)
{
    char f[64];
    int rc;
    if ((rc = no_gaiji(pe, "subject", "件名", b->subject)) < 0 ||
        (rc = no_gaiji(pe, "body", "本文", b->body)) < 0)
        return rc;
    for (size_t i = 0; i < b->nchoices; i++) {
        snprintf(f, sizeof(f), "choices[%zu]", i);
        if ((rc = no_gaiji(pe, f, "回答の選択肢", b->choices[i])) < 0)
            return rc;
    }
    for (size_t i = 0; i < b->ntr; i++) {
        snprintf(f, sizeof(f), "translations.%s.subject", b->tr[i].lang);
        if ((rc = no_gaiji(pe, f, "翻訳の件名", b->tr[i].subject)) < 0)
            return rc;
        snprintf(f, sizeof(f), "translations.%s.body", b->tr[i].lang);
        if ((rc = no_gaiji(pe, f, "翻訳の本文", b->tr[i].body)) < 0)
            return rc;
    }
    /* An inline recipient's name, as the directory's names are checked
     * (it is shown in the recipients view, its CSV and on the phone
     * list). */
    for (size_t i = 0; i < b->nrcpts; i++) {
        snprintf(f, sizeof(f), "recipients[%zu].name", i);
        if ((rc = no_gaiji(pe, f, "受信者の名前", b->rcpts[i].name)) < 0)
            return rc;
    }
    return 0;
}

int kn_broadcast_parse(const char *json, size_t len,
                       const struct kn_limits *lim, struct kn_broadcast *b,
                       char *err, size_t errlen, char *field, size_t fieldlen)
{
    static const char *const known[] = {
        "id",      "tenant",      "category",       "priority",
        "drill",   "subject",     "body",           "channels",
        "policy",  "audience",    "recipients",     "ack",
        "send_at", "expires_at",  "escalate_after", "sender",
        "choices", "escalate_to", "translations",   NULL};
    struct perr pe = {err, errlen, field, fieldlen};
    json_error_t jerr;
    json_t *root, *v, *aud;
    char *s = NULL;
    size_t i;
    int rc;

    memset(b, 0, sizeof(*b));
    err[0] = '\0';
    field[0] = '\0';
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        /* jansson quotes the token it stopped at ("near '...'"): that may
         * be an address, so cut it off; line and column say where. */
        char *near = strstr(jerr.text, " near '");
        if (near != NULL)
            *near = '\0';
        rc = fail(&pe, "json", "not valid JSON at line %d column %d: %s",
                  jerr.line, jerr.column, jerr.text);
        return rc;
    }
    if (!json_is_object(root)) {
        rc = fail(&pe, "json", "the broadcast must be a JSON object");
        goto out;
    }
    if ((rc = check_keys(root, known, "", &pe)) < 0)
        goto out;

    /* The producer's "id" is its idempotency key within its tenant; the
     * broadcast's name is always kairan's own. */
    if ((rc = get_str(root, "id", "id", 1, 128, &b->key, &pe)) < 0)
        goto out;
    if (b->key != NULL && !kn_id_valid(b->key)) {
        rc = fail(&pe, "id",
                  "use 1-128 letters, digits, '-', '_', '.', "
                  "':' (not first)");
        goto out;
    }
    if ((rc = get_str(root, "tenant", "tenant", 1, 64, &b->tenant, &pe)) < 0)
        goto out;
    if (b->tenant == NULL || !kn_tenant_valid(b->tenant)) {
        rc = fail(&pe, "tenant",
                  "missing or invalid: name the school with 1-64 letters, "
                  "digits, '-', '_', '.' (starting with a letter or digit)");
        goto out;
    }
    if ((rc = get_str(root, "category", "category", 1, 256, &s, &pe)) < 0)
        goto out;
    if (s == NULL) {
        b->category = kn_xstrdup("notice");
    } else {
        char why[160];
        int lrc = kn_label_norm(s, &b->category, why, sizeof(why));
        free(s);
        s = NULL;
        if (lrc < 0) {
            rc = fail(&pe, "category",
                      "%s; use one of the tenant's categories (kairanctl "
                      "category list), such as notice or emergency",
                      why);
            goto out;
        }
    }
    if ((rc = get_str(root, "priority", "priority", 1, 16, &s, &pe)) < 0)
        goto out;
    if (s != NULL && strcmp(s, "urgent") != 0 && strcmp(s, "normal") != 0) {
        free(s);
        rc = fail(&pe, "priority", "must be \"urgent\" or \"normal\"");
        goto out;
    }
    b->urgent = s != NULL && strcmp(s, "urgent") == 0;
    free(s);
    s = NULL;
    if ((rc = get_bool(root, "drill", &b->drill, &pe)) < 0 ||
        (rc = get_bool(root, "ack", &b->ack, &pe)) < 0)
        goto out;
    if ((rc = get_str(root, "subject", "subject", 1, (size_t)lim->max_subject,
                      &b->subject, &pe)) < 0)
        goto out;
    if (b->subject == NULL || b->subject[0] == '\0') {
        rc = fail(&pe, "subject", "missing: every broadcast needs a subject");
        goto out;
    }
    if ((rc = get_str(root, "body", "body", 0, (size_t)lim->max_body, &b->body,
                      &pe)) < 0)
        goto out;
    if (b->body == NULL || b->body[0] == '\0') {
        rc = fail(&pe, "body", "missing: every broadcast needs a body");
        goto out;
    }
    if ((rc = get_str(root, "sender", "sender", 1, 200, &b->sender, &pe)) < 0)
        goto out;

    v = json_object_get(root, "channels");
    if (v == NULL || json_is_null(v) ||
        (json_is_array(v) && json_array_size(v) == 0)) {
        rc = fail(&pe, "channels",
                  "missing: list at least one of \"email\", "
                  "\"line\", \"push\"");
        goto out;
    }
    if (!json_is_array(v)) {
        rc = fail(&pe, "channels",
                  "must be an array such as [\"email\", "
                  "\"line\"]");
        goto out;
    }
    json_t *c;
    json_array_foreach(v, i, c)
    {
        int ch =
            json_is_string(c) ? kn_channel_parse(json_string_value(c)) : -1;
        char f[32];
        snprintf(f, sizeof(f), "channels[%zu]", i);
        if (ch < 0) {
            rc = fail(&pe, f,
                      "unknown channel; use \"email\", \"line\" or "
                      "\"push\"");
            goto out;
        }
        for (size_t j = 0; j < b->nchannels; j++) {
            if ((int)b->channels[j] == ch) {
                rc = fail(&pe, f, "channel listed twice");
                goto out;
            }
        }
        b->channels[b->nchannels++] = (enum kn_channel)ch;
    }
    if ((rc = get_str(root, "policy", "policy", 1, 16, &s, &pe)) < 0)
        goto out;
    if (s != NULL && strcmp(s, "all") != 0 && strcmp(s, "preferred") != 0) {
        free(s);
        rc = fail(&pe, "policy", "must be \"all\" or \"preferred\"");
        goto out;
    }
    b->preferred = s != NULL && strcmp(s, "preferred") == 0;
    free(s);
    s = NULL;

    aud = json_object_get(root, "audience");
    if (aud != NULL && !json_is_null(aud)) {
        static const char *const ak[] = {"groups", "recipients", NULL};
        if (!json_is_object(aud)) {
            rc = fail(&pe, "audience", "must be {groups, recipients}");
            goto out;
        }
        if ((rc = check_keys(aud, ak, "audience", &pe)) < 0 ||
            (rc = get_label_array(aud, "groups", "audience.groups", &b->groups,
                                  &b->ngroups, &pe)) < 0 ||
            (rc = get_str_array(aud, "recipients", "audience.recipients",
                                &b->rcpt_ids, &b->nrcpt_ids, &pe)) < 0)
            goto out;
    }
    v = json_object_get(root, "recipients");
    if (v != NULL && !json_is_null(v)) {
        json_t *r;
        if (!json_is_array(v)) {
            rc = fail(&pe, "recipients", "must be an array of objects");
            goto out;
        }
        if ((int64_t)json_array_size(v) > lim->max_recipients) {
            rc = fail(&pe, "recipients",
                      "%zu inline recipients; at most %lld are allowed "
                      "(dispatcher.max_recipients): import them into the "
                      "directory and address a group",
                      json_array_size(v), (long long)lim->max_recipients);
            goto out;
        }
        b->rcpts = kn_xcalloc(json_array_size(v) + 1, sizeof(*b->rcpts));
        json_array_foreach(v, i, r)
        {
            b->nrcpts++;
            if ((rc = parse_rcpt(r, i, &b->rcpts[i], &pe)) < 0)
                goto out;
        }
    }
    if (b->nrcpts == 0 && b->ngroups == 0 && b->nrcpt_ids == 0) {
        rc = fail(&pe, "audience",
                  "nobody to send to: give audience.groups, "
                  "audience.recipients or recipients");
        goto out;
    }
    if ((rc = get_time(root, "send_at", &b->send_at_ms, &pe)) < 0 ||
        (rc = get_time(root, "expires_at", &b->expires_ms, &pe)) < 0)
        goto out;
    if ((rc = get_str(root, "escalate_after", "escalate_after", 1, 16, &s,
                      &pe)) < 0)
        goto out;
    if (s != NULL && kn_duration_parse_unit(s, &b->escalate_ms) < 0) {
        free(s);
        rc = fail(&pe, "escalate_after",
                  "a duration with its unit, such as \"10m\", \"90s\" or "
                  "\"1h\" (a bare number is refused)");
        goto out;
    }
    free(s);
    s = NULL;
    if ((rc = get_escalate_to(root, b, &pe)) < 0)
        goto out;
    if ((rc = get_choices(root, b, &pe)) < 0 ||
        (rc = get_translations(root, lim, b, &pe)) < 0 ||
        (!lim->gaiji_ok && (rc = refuse_gaiji(b, &pe)) < 0))
        goto out;
    if (b->expires_ms == 0) {
        int64_t start = b->send_at_ms > 0 ? b->send_at_ms : kn_now_ms();
        b->expires_ms = start + lim->default_ttl_ms;
    } else if (b->expires_ms <= kn_now_ms()) {
        rc = fail(&pe, "expires_at", "is in the past: nothing would be sent");
        goto out;
    } else if (b->send_at_ms > 0 && b->expires_ms <= b->send_at_ms) {
        rc = fail(&pe, "expires_at", "must be later than send_at");
        goto out;
    }
    rc = 0;
out:
    json_decref(root);
    if (rc < 0)
        kn_broadcast_free(b);
    return rc;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void kn_broadcast_free(struct kn_broadcast *b)
{
    free(b->id);
    free(b->key);
    free(b->tenant);
    free(b->category);
    free(b->subject);
    free(b->body);
    free(b->sender);
    free_strv(b->groups, b->ngroups);
    free_strv(b->rcpt_ids, b->nrcpt_ids);
    free_strv(b->choices, b->nchoices);
    kn_translations_free(b->tr, b->ntr);
    for (size_t i = 0; i < b->nrcpts; i++) {
        struct kn_inline_rcpt *r = &b->rcpts[i];
        free(r->id);
        free(r->name);
        free(r->email);
        free(r->line);
        for (size_t j = 0; j < r->npush; j++) {
            free(r->push[j].platform);
            free(r->push[j].token);
        }
        free(r->push);
    }
    free(b->rcpts);
    memset(b, 0, sizeof(*b));
}

/* The primary subtag's length of tag ("zh" of "zh-Hans": 2). */
static size_t primary_len(const char *s, size_t n)
{
    const char *dash = memchr(s, '-', n);
    return dash != NULL ? (size_t)(dash - s) : n;
}

int kn_translation_pick(const char *langs, const char *lang, char *out,
                        size_t outlen)
{
    size_t ln, lp, best_n = 0;
    const char *best = NULL;
    out[0] = '\0';
    if (langs == NULL || lang == NULL || !kn_lang_valid(lang) ||
        lang_is_ja(lang))
        return 0;
    ln = strlen(lang);
    lp = primary_len(lang, ln);
    for (const char *p = langs; *p != '\0';) {
        size_t n = strcspn(p, ",");
        if (n == ln && memcmp(p, lang, n) == 0) {
            best = p;
            best_n = n;
            break; /* the same tag wins */
        }
        if (best == NULL && primary_len(p, n) == lp &&
            memcmp(p, lang, lp) == 0) {
            best = p;
            best_n = n;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    if (best == NULL || best_n >= outlen)
        return 0;
    memcpy(out, best, best_n);
    out[best_n] = '\0';
    return 1;
}

/*
 * Masking a rejected raw entry (issue 11, item 6).  Nothing of it was
 * validated, so no key name can be trusted (a misspelt "recipeints" or
 * "emial" is exactly what gets it rejected): every string is masked unless
 * it is one of a few harmless fields of the top level AND its value is
 * valid for that field (an address written as the tenant is masked too):
 *   tenant, category (ids), priority, policy, channels (known channel
 *   names), send_at, expires_at (RFC 3339 times), escalate_after (a
 *   duration), and "platform" (fcm or apns) anywhere.
 * Booleans, numbers and null stay as they are (nothing to leak).  Subject,
 * body, names, ids, groups and every address are masked: a string with
 * an '@' as "t***@domain", any other as "***".  Key names other than plain
 * words ([A-Za-z0-9_-], up to 40 characters) become "?1", "?2", ...
 */
static int harmless(const char *key, const char *s, int top)
{
    int64_t ms;
    if (strcmp(key, "platform") == 0)
        return strcmp(s, "fcm") == 0 || strcmp(s, "apns") == 0;
    if (!top)
        return 0;
    if (strcmp(key, "tenant") == 0 || strcmp(key, "category") == 0)
        return strlen(s) <= 64 && kn_id_valid(s);
    if (strcmp(key, "priority") == 0)
        return strcmp(s, "urgent") == 0 || strcmp(s, "normal") == 0;
    if (strcmp(key, "policy") == 0)
        return strcmp(s, "all") == 0 || strcmp(s, "preferred") == 0;
    if (strcmp(key, "channels") == 0)
        return kn_channel_parse(s) >= 0;
    if (strcmp(key, "send_at") == 0 || strcmp(key, "expires_at") == 0)
        return strlen(s) <= 64 && kn_time_parse(s, &ms) == 0;
    if (strcmp(key, "escalate_after") == 0)
        return strlen(s) <= 16 && kn_duration_parse(s, &ms) == 0;
    return 0;
}

static json_t *mask_string(const char *s)
{
    char m[256];
    json_t *out = NULL;
    if (strchr(s, '@') != NULL)
        out = json_string(kn_mask_address(s, m, sizeof(m)));
    return out != NULL ? out : json_string("***");
}

static json_t *mask_object(json_t *o, int top);

/* A masked deep copy of v, the value of key (top: a member of the root
 * object, or an element of an array that is one). */
static json_t *mask_value(json_t *v, const char *key, int top)
{
    json_t *out, *e;
    size_t i;
    if (json_is_string(v)) {
        if (harmless(key, json_string_value(v), top))
            return json_copy(v);
        return mask_string(json_string_value(v));
    }
    if (json_is_array(v)) {
        out = json_array();
        json_array_foreach(v, i, e)
        {
            json_array_append_new(out, mask_value(e, key, top));
        }
        return out;
    }
    if (json_is_object(v))
        return mask_object(v, 0);
    return json_copy(v); /* true, false, null, numbers */
}

static json_t *mask_object(json_t *o, int top)
{
    json_t *out = json_object(), *v;
    const char *k;
    size_t n = 0;
    json_object_foreach(o, k, v)
    {
        char alias[24];
        n++;
        if (!plain_key(k))
            snprintf(alias, sizeof(alias), "?%zu", n);
        json_object_set_new(out, plain_key(k) ? k : alias,
                            mask_value(v, k, top));
    }
    return out;
}

char *kn_broadcast_mask_json(const char *json, size_t len)
{
    json_t *root = json_loadb(json, len, 0, NULL), *m;
    char *out;
    if (root == NULL)
        return NULL;
    m = json_is_object(root) ? mask_object(root, 1) : mask_value(root, "", 0);
    out = json_dumps(m, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(m);
    json_decref(root);
    return out;
}
