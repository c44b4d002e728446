/*
 * broadcast_store.c - a validated broadcast's stored form: the fields of
 * bc:<id> and its audience entries (inline recipients sealed, "i:" +
 * the directory record's shape), and the translations' stored JSON
 * (model/broadcast.h; broadcast.c parses and validates).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/argv.h"
#include "common/buf.h"
#include "common/kn.h"
#include "common/seal.h"
#include "model/broadcast.h"
#include "model/directory.h"

/* ---- storage form ---- */

/*
 * The audience entry of an inline recipient: "i:" + the compact JSON of a
 * directory record (model/directory.h), names sealed too, so that the
 * expander reads both alike.
 */
char *kn__rcpt_storage_json(const struct kn_inline_rcpt *r,
                            const struct kn_keyring *kr);

char *kn__rcpt_storage_json(const struct kn_inline_rcpt *r,
                            const struct kn_keyring *kr)
{
    json_t *o = kn_dir_new(r->id);
    char *out;
    if (r->name) /* names are personal data too: sealed like the addresses */
        kn_dir_set_name(o, kr, r->name);
    if (r->email)
        kn_dir_set_address(o, kr, "email", r->email, NULL);
    if (r->line)
        kn_dir_set_address(o, kr, "line", r->line, NULL);
    for (size_t i = 0; i < r->npush; i++)
        kn_dir_add_push(o, kr, r->push[i].platform, r->push[i].token, NULL);
    out = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return out;
}

void kn_broadcast_submit_args(const struct kn_broadcast *b,
                              const struct kn_keyring *kr,
                              struct kn_argv *fields, struct kn_argv *aud)
{
    char chans[32] = "";
    json_t *g = json_array(), *r = json_array();
    char *s;

    for (size_t i = 0; i < b->nchannels; i++) {
        if (i > 0)
            strcat(chans, ",");
        strcat(chans, kn_channel_name(b->channels[i]));
    }
    for (size_t i = 0; i < b->ngroups; i++)
        json_array_append_new(g, json_string(b->groups[i]));
    for (size_t i = 0; i < b->nrcpt_ids; i++)
        json_array_append_new(r, json_string(b->rcpt_ids[i]));

#define F(k, v)                                                                \
    do {                                                                       \
        kn_argv_add(fields, k);                                                \
        kn_argv_add(fields, v);                                                \
    } while (0)
#define FI(k, v)                                                               \
    do {                                                                       \
        kn_argv_add(fields, k);                                                \
        kn_argv_addi(fields, v);                                               \
    } while (0)
    F("id", b->id);
    if (b->key != NULL)
        F("key", b->key);
    F("tenant", b->tenant);
    F("category", b->category);
    F("priority", b->urgent ? "urgent" : "normal");
    FI("drill", b->drill);
    FI("ack", b->ack);
    F("policy", b->preferred ? "preferred" : "all");
    F("channels", chans);
    F("subject", b->subject);
    if (b->seal_body) {
        kn_argv_add(fields, "body");
        kn_argv_take(fields, kn_seal(kr, "body", b->body, strlen(b->body)));
        F("sb", "1");
    } else {
        F("body", b->body);
    }
    s = json_dumps(g, JSON_COMPACT);
    F("groups", s);
    free(s);
    s = json_dumps(r, JSON_COMPACT);
    F("rcpt_ids", s);
    free(s);
    FI("send_at_ms", b->send_at_ms);
    FI("expires_ms", b->expires_ms);
    FI("escalate_ms", b->escalate_ms);
    if (b->escalate_guardian)
        F("escalate_to", "next_guardian");
    if (b->nchoices > 0) {
        json_t *ch = json_array();
        for (size_t i = 0; i < b->nchoices; i++)
            json_array_append_new(ch, json_string(b->choices[i]));
        s = json_dumps(ch, JSON_COMPACT);
        F("choices", s);
        free(s);
        json_decref(ch);
        FI("nchoices", (int64_t)b->nchoices);
    }
    if (b->ntr > 0) {
        struct kn_buf langs = KN_BUF_INIT;
        for (size_t i = 0; i < b->ntr; i++)
            kn_buf_addf(&langs, "%s%s", i ? "," : "", b->tr[i].lang);
        kn_argv_take(fields, kn_xstrdup("langs"));
        kn_argv_take(fields, kn_buf_take(&langs, NULL));
        kn_buf_free(&langs);
        kn_argv_add(fields, "translations");
        kn_argv_take(fields, kn_translations_json(b->tr, b->ntr));
    }
    F("sender", b->sender ? b->sender : "unknown");
#undef F
#undef FI
    json_decref(g);
    json_decref(r);

    for (size_t i = 0; i < b->nrcpts; i++) {
        char *j = kn__rcpt_storage_json(&b->rcpts[i], kr);
        kn_argv_take(aud, kn_xasprintf("i:%s", j));
        free(j);
    }
    /* The broadcast is submitted when it is handed to Redis, after the
     * sealing above (50,000 addresses take about 150 ms). */
    kn_argv_add(fields, "created_ms");
    kn_argv_addi(fields, kn_now_ms());
}

/* ---- translations: stored form ---- */

char *kn_translations_json(const struct kn_translation *tr, size_t n)
{
    json_t *o;
    char *out;
    if (n == 0)
        return NULL;
    o = json_object();
    for (size_t i = 0; i < n; i++)
        json_object_set_new(o, tr[i].lang,
                            json_pack("{s:s, s:s}", "subject", tr[i].subject,
                                      "body", tr[i].body));
    out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return out;
}

size_t kn_translations_load(const char *json, struct kn_translation **out)
{
    json_t *o = json != NULL ? json_loads(json, 0, NULL) : NULL, *t;
    const char *lang;
    size_t n = 0;
    *out = NULL;
    if (!json_is_object(o) || json_object_size(o) == 0) {
        json_decref(o);
        return 0;
    }
    *out = kn_xcalloc(KN_TRANSLATIONS_MAX, sizeof(**out));
    json_object_foreach(o, lang, t)
    {
        json_t *s = json_object_get(t, "subject"),
               *bd = json_object_get(t, "body");
        if (n == KN_TRANSLATIONS_MAX)
            break;
        if (!kn_lang_valid(lang) || !json_is_string(s) || !json_is_string(bd))
            continue;
        snprintf((*out)[n].lang, sizeof((*out)[n].lang), "%s", lang);
        (*out)[n].subject = kn_xstrdup(json_string_value(s));
        (*out)[n].body = kn_xstrdup(json_string_value(bd));
        n++;
    }
    json_decref(o);
    if (n == 0) {
        free(*out);
        *out = NULL;
    }
    return n;
}

void kn_translations_free(struct kn_translation *tr, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(tr[i].subject);
        free(tr[i].body);
    }
    free(tr);
}
