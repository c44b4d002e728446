/*
 * directory.c - building and reading the directory record (directory.h).
 * Sealing happens here, so that the import and the inline recipients of a
 * broadcast store exactly the same shape; nothing is read from or written
 * to Redis.
 */
#include "model/directory.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kn.h"
#include "common/seal.h"

json_t *kn_dir_new(const char *id)
{
    json_t *c = json_object();
    json_object_set_new(c, KN_DIR_ID, json_string(id));
    return c;
}

void kn_dir_set_name(json_t *c, const struct kn_keyring *kr, const char *name)
{
    char *nm = kn_seal(kr, "name", name, strlen(name));
    json_object_set_new(c, KN_DIR_NAME, json_string(nm));
    free(nm);
}

/* o[key] = sealed plain, o[key_bi] = its blind index (copied to bi). */
static void seal_into(json_t *o, const struct kn_keyring *kr,
                      const char *purpose, const char *key, const char *key_bi,
                      const char *plain, char bi[33])
{
    char index[33];
    char *sealed = kn_seal(kr, purpose, plain, strlen(plain));
    kn_blind_index(kr, purpose, plain, index);
    json_object_set_new(o, key, json_string(sealed));
    json_object_set_new(o, key_bi, json_string(index));
    if (bi != NULL)
        memcpy(bi, index, sizeof(index));
    free(sealed);
}

void kn_dir_set_address(json_t *c, const struct kn_keyring *kr,
                        const char *purpose, const char *plain, char bi[33])
{
    int line = strcmp(purpose, "line") == 0;
    seal_into(c, kr, purpose, line ? KN_DIR_LINE : KN_DIR_EMAIL,
              line ? KN_DIR_LINE_INDEX : KN_DIR_EMAIL_INDEX, plain, bi);
}

void kn_dir_add_push(json_t *c, const struct kn_keyring *kr,
                     const char *platform, const char *plain, char bi[33])
{
    json_t *p = json_object_get(c, KN_DIR_PUSH), *t = json_object();
    if (!json_is_array(p)) {
        p = json_array();
        json_object_set_new(c, KN_DIR_PUSH, p);
    }
    json_object_set_new(t, KN_DIR_PUSH_PLATFORM, json_string(platform));
    seal_into(t, kr, "push", KN_DIR_PUSH_TOKEN, KN_DIR_PUSH_INDEX, plain, bi);
    json_array_append_new(p, t);
}

void kn_dir_add_channel(json_t *c, const char *channel)
{
    json_t *ch = json_object_get(c, KN_DIR_CHANNELS);
    if (!json_is_array(ch)) {
        ch = json_array();
        json_object_set_new(c, KN_DIR_CHANNELS, ch);
    }
    json_array_append_new(ch, json_string(channel));
}

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

int kn_dir_parse(json_t *c, struct kn_dir_rec *rec)
{
    json_t *p, *ch, *v;
    size_t i, n = 0;

    memset(rec, 0, sizeof(*rec));
    if (!json_is_object(c))
        return KN_EINVAL;
    rec->id = jstr(c, KN_DIR_ID);
    rec->name = jstr(c, KN_DIR_NAME);
    rec->email = jstr(c, KN_DIR_EMAIL);
    rec->email_index = jstr(c, KN_DIR_EMAIL_INDEX);
    rec->line = jstr(c, KN_DIR_LINE);
    rec->line_index = jstr(c, KN_DIR_LINE_INDEX);
    rec->line_dead = json_is_true(json_object_get(c, KN_DIR_LINE_DEAD));

    p = json_object_get(c, KN_DIR_PUSH);
    if (json_array_size(p) > 0)
        rec->push = kn_xcalloc(json_array_size(p), sizeof(*rec->push));
    json_array_foreach(p, i, v)
    {
        struct kn_dir_token *t;
        if (!json_is_object(v))
            continue;
        t = &rec->push[rec->npush++];
        t->platform = jstr(v, KN_DIR_PUSH_PLATFORM);
        t->token = jstr(v, KN_DIR_PUSH_TOKEN);
        t->index = jstr(v, KN_DIR_PUSH_INDEX);
        t->dead = json_is_true(json_object_get(v, KN_DIR_PUSH_DEAD));
    }

    ch = json_object_get(c, KN_DIR_CHANNELS);
    if (json_array_size(ch) > 0)
        rec->channels = kn_xcalloc(json_array_size(ch), sizeof(char *));
    json_array_foreach(ch, i, v)
    {
        if (json_is_string(v))
            rec->channels[n++] = json_string_value(v);
    }
    rec->nchannels = n;
    return 0;
}

void kn_dir_rec_free(struct kn_dir_rec *rec)
{
    free(rec->push);
    free(rec->channels);
    memset(rec, 0, sizeof(*rec));
}

int kn_lang_valid(const char *tag)
{
    size_t i = 0, n;

    if (tag == NULL)
        return 0;
    while (tag[i] >= 'a' && tag[i] <= 'z')
        i++;
    if (i < 2 || i > 3)
        return 0;
    if (tag[i] == '\0')
        return 1;
    if (tag[i] != '-')
        return 0;
    n = ++i;
    while ((tag[i] >= 'a' && tag[i] <= 'z') ||
           (tag[i] >= 'A' && tag[i] <= 'Z') || (tag[i] >= '0' && tag[i] <= '9'))
        i++;
    return tag[i] == '\0' && i - n >= 2 && i - n <= 8 && i <= 15;
}

const char *kn_dir_lang(json_t *g)
{
    const char *lg = jstr(json_object_get(g, KN_DIR_PREFS), KN_DIR_PREF_LANG);
    return kn_lang_valid(lg) ? lg : KN_LANG_DEFAULT;
}

/* 1 if the array pf.<member> of guardian g holds the string s. */
static int pf_has(json_t *g, const char *member, const char *s)
{
    json_t *a = json_object_get(json_object_get(g, KN_DIR_PREFS), member);
    json_t *v;
    size_t i;

    if (s == NULL)
        return 0;
    json_array_foreach(a, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
            return 1;
    }
    return 0;
}

int kn_dir_opted_out(json_t *g, const char *cat)
{
    return pf_has(g, KN_DIR_PREF_OPTOUT, cat);
}

int kn_dir_stopped(json_t *g, const char *ch)
{
    return pf_has(g, KN_DIR_PREF_STOPPED, ch);
}

json_t *kn_dir_order(json_t *g)
{
    json_t *own =
        json_object_get(json_object_get(g, KN_DIR_PREFS), KN_DIR_PREF_CHANNELS);
    if (json_is_array(own) && json_array_size(own) > 0)
        return own;
    return json_object_get(g, KN_DIR_CHANNELS);
}
