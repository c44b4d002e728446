/*
 * rekey.c - key rotation for the encryption at rest (common/seal.h):
 *
 *   kairanctl key add FILE     append a new key to the key file; its kid
 *                              becomes the current one (new writes)
 *   kairanctl key list FILE    the key ids in the file (never the keys)
 *   kairanctl rekey [--dry-run]
 *                              re-encrypt every sealed value of the
 *                              directory and of the broadcasts' audience
 *                              lists with the current key
 *
 * Rotation: `key add`, restart kairand (it loads the key file at start and
 * then seals with the new kid while still opening the old ones), then
 * `rekey`.  Old keys stay in the file: never remove one while a value
 * sealed with it may remain.  What rekey rewrites:
 *   rcpt:<T>:<id>  the "c" JSON (e, l, p[].t), "name", "kana",
 *                  "guardian" and "phone";
 *   reg:<T>:<id>   the guardians' own registrations, "g" (e, l, nm, rl,
 *                  ph, p[].t);
 *   bc:<id>:aud    the inline recipients ("i:" + JSON: nm, e, l, p[].t);
 *   cred:<provider>:<account>
 *                  a provider token shared by every kairand (APNs'), "v"
 *                  (model/cred.h): re-sealed as it is, its generation and
 *                  iat untouched, so running kairands notice nothing.
 * Jobs already in the streams (and job records of broadcasts being
 * delivered) keep the kid they were written with until they are delivered
 * or expire; that is fine because the old key stays in the file.  Blind
 * indexes do not change: the index key is pinned (or derived from the
 * lowest kid), so look-ups keep working during and after the rotation.
 *
 * Every record is rewritten by a compare-and-set script: the new values
 * are written only if the record still holds exactly what was read, so an
 * import or a delivery running at the same time is never overwritten with
 * stale data; a record that changed is read again (a few times) and
 * counted.  Running rekey twice is harmless: values already under the
 * current kid are left alone.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/argv.h"
#include "common/kn.h"
#include "common/seal.h"
#include "model/cred.h"
#include "model/directory.h"
#include "queue/keys.h"
#include "queue/lua.h"

#define REKEY_TRIES 5
#define AUD_PAGE    500

struct rekey_stats {
    long records;     /* directory records read */
    long records_new; /* ... rewritten */
    long lists;       /* audience lists read */
    long entries_new; /* inline audience entries rewritten */
    long values;      /* sealed values re-encrypted */
    long already;     /* sealed values already under the current kid */
    long regs;        /* guardians' registrations read (reg:<T>:<id>) */
    long regs_new;    /* ... rewritten */
    long creds;       /* shared provider credentials read (cred:*) */
    long creds_new;   /* ... rewritten */
    long raced;       /* compare-and-set lost (read again) */
    long failed;      /* could not be unsealed or kept changing */
};

/* queue/lua/rekey_rcpt.lua */
static struct kn_redis_script rcpt_cas = {"rekey_rcpt", kn_lua_rekey_rcpt, ""};

/* queue/lua/rekey_aud.lua */
static struct kn_redis_script aud_cas = {"rekey_aud", kn_lua_rekey_aud, ""};

/*
 * Re-seal one sealed string under the current kid.  Returns 1 and a heap
 * string in *out when it changed, 0 when it was already current (or not a
 * string), or KN_ECRYPTO when it does not unseal with this key file.
 */
static int reseal(const struct kn_keyring *kr, const char *purpose,
                  const char *sealed, char **out, struct rekey_stats *st)
{
    char *plain = NULL;
    size_t len = 0;

    *out = NULL;
    if (sealed == NULL || sealed[0] == '\0')
        return 0;
    if (kn_sealed_kid(sealed) == kn_keyring_current(kr)) {
        st->already++;
        return 0;
    }
    if (kn_unseal(kr, purpose, sealed, &plain, &len) < 0)
        return KN_ECRYPTO;
    *out = kn_seal(kr, purpose, plain, len);
    explicit_bzero(plain, len);
    free(plain);
    st->values++;
    return 1;
}

/* Re-seal the string member key of object o in place.  Same returns. */
static int reseal_member(const struct kn_keyring *kr, json_t *o,
                         const char *key, const char *purpose,
                         struct rekey_stats *st)
{
    char *fresh;
    int rc = reseal(kr, purpose, json_string_value(json_object_get(o, key)),
                    &fresh, st);
    if (rc == 1) {
        json_object_set_new(o, key, json_string(fresh));
        free(fresh);
    }
    return rc;
}

/* A sealed string member of a contact object and its purpose. */
struct sealed_field {
    const char *key, *purpose;
};

/*
 * Re-seal the members f[0..n) of object o and its push tokens (p[].t), in
 * place.  Returns 1 if anything changed, 0 if not, or KN_ECRYPTO.
 */
static int reseal_object(const struct kn_keyring *kr, json_t *o,
                         const struct sealed_field *f, size_t n,
                         struct rekey_stats *st)
{
    json_t *p;
    size_t i;
    int rc, changed = 0;
    for (size_t k = 0; k < n; k++) {
        if ((rc = reseal_member(kr, o, f[k].key, f[k].purpose, st)) < 0)
            return rc;
        changed |= rc;
    }
    json_array_foreach(json_object_get(o, KN_DIR_PUSH), i, p)
    {
        if ((rc = reseal_member(kr, p, KN_DIR_PUSH_TOKEN, "push", st)) < 0)
            return rc;
        changed |= rc;
    }
    return changed;
}

/* What a contact holds sealed (e, l, nm), a further guardian of the
 * directory too (ph), and a guardian's own registration too (rl). */
static const struct sealed_field contact_fields[] = {
    {KN_DIR_EMAIL, "email"}, {KN_DIR_LINE, "line"}, {KN_DIR_NAME, "name"}};
static const struct sealed_field guardian_fields[] = {{KN_DIR_EMAIL, "email"},
                                                      {KN_DIR_LINE, "line"},
                                                      {KN_DIR_NAME, "name"},
                                                      {KN_DIR_PHONE, "phone"}};
static const struct sealed_field registered_fields[] = {
    {KN_DIR_EMAIL, "email"},
    {KN_DIR_LINE, "line"},
    {KN_DIR_NAME, "name"},
    {"rl", "name"},
    {KN_DIR_PHONE, "phone"}};

/*
 * Re-seal a contact JSON (directory "c" or an inline audience entry):
 * e (email), l (line), p[].t (push) and, for inline entries, nm (name).
 * Returns 1 and a heap JSON in *out if anything changed, 0 if not,
 * KN_ECRYPTO or KN_EINVAL (not JSON).
 */
static int reseal_contacts(const struct kn_keyring *kr, const char *cj,
                           char **out, struct rekey_stats *st)
{
    json_t *c = json_loads(cj, 0, NULL), *g;
    size_t i;
    int rc, changed;

    *out = NULL;
    if (!json_is_object(c)) {
        json_decref(c);
        return KN_EINVAL;
    }
    rc = changed =
        reseal_object(kr, c, contact_fields, KN_ARRAY_SIZE(contact_fields), st);
    /* further guardians (model/directory.h "g"): the same members, and
     * their name and phone */
    json_array_foreach(json_object_get(c, KN_DIR_GUARDIANS), i, g)
    {
        if (rc < 0)
            break;
        rc = reseal_object(kr, g, guardian_fields,
                           KN_ARRAY_SIZE(guardian_fields), st);
        changed |= rc;
    }
    if (rc >= 0 && (rc = changed) != 0)
        *out = json_dumps(c, JSON_COMPACT);
    json_decref(c);
    return rc;
}

/* Re-encrypt one directory record; retried while it changes under us. */
/* The sealed fields of a directory record beside "c", with their
 * purposes (cli/import.c writes them). */
static const struct {
    const char *field, *purpose;
} sealed_fields[] = {
    {"name", "name"},
    {"kana", "name"},
    {"guardian", "name"},
    {"phone", "phone"},
};
#define NSEALED KN_ARRAY_SIZE(sealed_fields)

static void rekey_record(const struct kn_keyring *kr, const char *tenant,
                         const char *id, struct rekey_stats *st, int dry)
{
    char *key = kn_key_rcpt(kn_cli_cfg.redis_prefix, tenant, id);

    st->records++;
    for (int t = 0; t < REKEY_TRIES; t++) {
        redisReply *h = kn_cli_cmd("HMGET %s " KN_DIR_HASH_FIELD
                                   " name kana guardian phone",
                                   key),
                   *w;
        const char *c = h->element[0]->str ? h->element[0]->str : "";
        const char *old[NSEALED];
        char *nc = NULL, *nv[NSEALED] = {NULL};
        int rc1 = 0, rc2 = 0, changed = 0, done = 1, gone = 1;
        struct kn_argv a;

        for (size_t f = 0; f <= NSEALED; f++)
            gone &= h->element[f]->str == NULL;
        if (gone) {
            freeReplyObject(h); /* deleted meanwhile */
            break;
        }
        if (c[0] != '\0')
            rc1 = reseal_contacts(kr, c, &nc, st);
        changed = rc1 == 1;
        for (size_t f = 0; f < NSEALED; f++) {
            int r;
            old[f] = h->element[f + 1]->str ? h->element[f + 1]->str : "";
            r = reseal(kr, sealed_fields[f].purpose, old[f], &nv[f], st);
            if (r < 0)
                rc2 = r;
            changed |= r == 1;
        }
        if (rc1 < 0 || rc2 < 0) {
            fprintf(stderr, "kairanctl: rekey: rcpt %s/%s: %s\n", tenant, id,
                    rc1 == KN_EINVAL ? "contacts are not JSON"
                                     : "a value does not unseal with this "
                                       "key file (was a key removed?)");
            st->failed++;
        } else if (changed && !dry) {
            kn_argv_init(&a);
            kn_argv_add(&a, key);
            kn_argv_add(&a, c);
            kn_argv_add(&a, nc ? nc : "");
            for (size_t f = 0; f < NSEALED; f++) {
                kn_argv_add(&a, sealed_fields[f].field);
                kn_argv_add(&a, old[f]);
                kn_argv_add(&a, nv[f] ? nv[f] : "");
            }
            w = kn_cli_eval(&rcpt_cas, 1, &a);
            kn_argv_free(&a);
            if (w->integer == 1)
                st->records_new++;
            else if (w->integer == 0) {
                st->raced++;
                done = 0;
            }
            freeReplyObject(w);
        } else if (changed) {
            st->records_new++;
        }
        free(nc);
        for (size_t f = 0; f < NSEALED; f++)
            free(nv[f]);
        freeReplyObject(h);
        if (done)
            break;
        if (t == REKEY_TRIES - 1) {
            fprintf(stderr,
                    "kairanctl: rekey: rcpt %s/%s kept changing; "
                    "run rekey again\n",
                    tenant, id);
            st->failed++;
        }
    }
    free(key);
}

static void rekey_directory(const struct kn_keyring *kr, struct rekey_stats *st,
                            int dry)
{
    char *tk = kn_cli_key("tenants");
    redisReply *ts = kn_cli_cmd("SMEMBERS %s", tk);

    for (size_t i = 0; i < ts->elements; i++) {
        const char *tenant = ts->element[i]->str;
        char *rk = kn_cli_key("rcpts:%s", tenant);
        redisReply *ids = kn_cli_cmd("SMEMBERS %s", rk);
        for (size_t j = 0; j < ids->elements; j++)
            rekey_record(kr, tenant, ids->element[j]->str, st, dry);
        freeReplyObject(ids);
        free(rk);
    }
    freeReplyObject(ts);
    free(tk);
}

/* Re-encrypt the inline entries ("i:" + JSON) of one audience list. */
static void rekey_list(const struct kn_keyring *kr, const char *key,
                       struct rekey_stats *st, int dry)
{
    long start = 0;

    st->lists++;
    for (;;) {
        redisReply *page =
            kn_cli_cmd("LRANGE %s %ld %ld", key, start, start + AUD_PAGE - 1);
        size_t n = page->elements;
        for (size_t i = 0; i < n; i++) {
            const char *e = page->element[i]->str;
            char *nj = NULL, *ne, idx[24];
            struct kn_argv a;
            redisReply *w;
            int rc;

            if (e == NULL || strncmp(e, "i:", 2) != 0)
                continue; /* a directory id: nothing sealed */
            rc = reseal_contacts(kr, e + 2, &nj, st);
            if (rc < 0) {
                fprintf(stderr, "kairanctl: rekey: %s[%ld]: %s\n", key,
                        start + (long)i,
                        rc == KN_EINVAL ? "entry is not JSON"
                                        : "a value does not unseal with this "
                                          "key file");
                st->failed++;
                continue;
            }
            if (rc == 0)
                continue;
            if (dry) {
                st->entries_new++;
                free(nj);
                continue;
            }
            ne = kn_xasprintf("i:%s", nj);
            snprintf(idx, sizeof(idx), "%ld", start + (long)i);
            kn_argv_init(&a);
            kn_argv_add(&a, key);
            kn_argv_add(&a, idx);
            kn_argv_add(&a, e);
            kn_argv_add(&a, ne);
            w = kn_cli_eval(&aud_cas, 1, &a);
            kn_argv_free(&a);
            /* Audience lists are written once (submit, resolve) and only
             * deleted later: a lost race means the broadcast is gone. */
            if (w->integer == 1)
                st->entries_new++;
            else
                st->raced++;
            freeReplyObject(w);
            free(ne);
            free(nj);
        }
        freeReplyObject(page);
        if (n < AUD_PAGE)
            break;
        start += AUD_PAGE;
    }
}

/*
 * Re-seal a registration's guardians (reg:<T>:<child> "g", issue 15: a
 * JSON array of what each guardian registered: e, l, nm, rl, ph, p[].t).
 * Same returns as reseal_contacts.
 */
static int reseal_registration(const struct kn_keyring *kr, const char *gj,
                               char **out, struct rekey_stats *st)
{
    json_t *a = json_loads(gj, 0, NULL), *g;
    size_t i;
    int rc = 0, changed = 0;

    *out = NULL;
    if (!json_is_array(a)) {
        json_decref(a);
        return KN_EINVAL;
    }
    json_array_foreach(a, i, g)
    {
        rc = reseal_object(kr, g, registered_fields,
                           KN_ARRAY_SIZE(registered_fields), st);
        if (rc < 0)
            break;
        changed |= rc;
    }
    if (rc >= 0 && (rc = changed) != 0)
        *out = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return rc;
}

/*
 * Re-seal one field of a hash with fn (returns as reseal: 1 and a heap
 * string when it changed), written back by compare-and-set (rekey_rcpt.lua:
 * no "c", this one field) and retried while it changes under us.  A gone
 * key is left alone; *rewritten counts what was (or, dry, would be)
 * written; bad_json and bad say what a value fn refuses (KN_EINVAL) and
 * one that does not unseal mean.
 */
static void rekey_field(const struct kn_keyring *kr, const char *key,
                        const char *field,
                        int (*fn)(const struct kn_keyring *kr, const char *v,
                                  char **out, struct rekey_stats *st),
                        const char *bad_json, const char *bad, long *rewritten,
                        struct rekey_stats *st, int dry)
{
    for (int t = 0; t < REKEY_TRIES; t++) {
        redisReply *h = kn_cli_cmd("HGET %s %s", key, field), *w;
        char *nv = NULL;
        int rc, done = 1;
        if (h->type != REDIS_REPLY_STRING) {
            freeReplyObject(h); /* deleted meanwhile */
            break;
        }
        rc = fn(kr, h->str, &nv, st);
        if (rc < 0) {
            fprintf(stderr, "kairanctl: rekey: %s: %s\n", key,
                    rc == KN_EINVAL ? bad_json : bad);
            st->failed++;
        } else if (rc == 1 && !dry) {
            struct kn_argv a;
            kn_argv_init(&a);
            kn_argv_add(&a, key);
            kn_argv_add(&a, "");
            kn_argv_add(&a, "");
            kn_argv_add(&a, field);
            kn_argv_add(&a, h->str);
            kn_argv_add(&a, nv);
            w = kn_cli_eval(&rcpt_cas, 1, &a);
            kn_argv_free(&a);
            if (w->integer == 1)
                (*rewritten)++;
            else if (w->integer == 0) {
                st->raced++;
                done = 0;
            }
            freeReplyObject(w);
        } else if (rc == 1) {
            (*rewritten)++;
        }
        kn_free_secret(nv);
        freeReplyObject(h);
        if (done)
            break;
        if (t == REKEY_TRIES - 1) {
            fprintf(stderr,
                    "kairanctl: rekey: %s kept changing; run rekey "
                    "again\n",
                    key);
            st->failed++;
        }
    }
}

/* Re-encrypt one registration record: its guardians, "g". */
static void rekey_registration(const struct kn_keyring *kr, const char *key,
                               struct rekey_stats *st, int dry)
{
    st->regs++;
    rekey_field(kr, key, "g", reseal_registration,
                "guardians are not a JSON array",
                "a value does not unseal with this key file (was a key "
                "removed?)",
                &st->regs_new, st, dry);
}

static int reseal_cred(const struct kn_keyring *kr, const char *v, char **out,
                       struct rekey_stats *st)
{
    return reseal(kr, KN_CRED_PURPOSE, v, out, st);
}

/*
 * Re-seal a shared provider credential (cred:<provider>:<account> "v",
 * model/cred.h) as it is: the sealed JSON keeps its name and iat, and its
 * generation is untouched, so running kairands notice nothing.  One
 * replaced meanwhile by a kairand is read again.
 */
static void rekey_cred(const struct kn_keyring *kr, const char *key,
                       struct rekey_stats *st, int dry)
{
    st->creds++;
    rekey_field(kr, key, "v", reseal_cred, "not a credential",
                "does not unseal with this key file (each kairand uses a "
                "token of its own until it expires, in 2 hours at most)",
                &st->creds_new, st, dry);
}

/* Each key matching pattern (under the prefix) that holds type: fn. */
static void rekey_scan(const char *pattern_tail, const char *type,
                       void (*fn)(const struct kn_keyring *kr, const char *key,
                                  struct rekey_stats *st, int dry),
                       const struct kn_keyring *kr, struct rekey_stats *st,
                       int dry)
{
    char *pattern = kn_cli_key("%s", pattern_tail);
    char *cursor = kn_xstrdup("0");

    do {
        redisReply *r =
            kn_cli_cmd("SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        free(cursor);
        cursor = kn_xstrdup(r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            const char *k = r->element[1]->element[i]->str;
            redisReply *t = kn_cli_cmd("TYPE %s", k);
            if (t->str != NULL && strcmp(t->str, type) == 0)
                fn(kr, k, st, dry);
            freeReplyObject(t);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    free(cursor);
    free(pattern);
}

static void rekey_usage(FILE *f)
{
    fprintf(f, "usage: kairanctl rekey [--dry-run] [--json]\n"
               "  re-encrypt the directory, the audience lists and the "
               "shared provider\n  credentials with the current key\n"
               "  (add one first: kairanctl key add FILE)\n");
}

static int run_rekey(int argc, char **argv)
{
    static const struct option opts[] = {{"dry-run", no_argument, NULL, 'n'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    struct rekey_stats st = {0};
    struct kn_keyring *kr = NULL;
    char err[512];
    int dry = 0, json = 0, c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "nj", opts, NULL)) != -1) {
        if (c == 'n')
            dry = 1;
        else if (c == 'j')
            json = 1;
        else if (c == 'h') {
            rekey_usage(stdout);
            return KN_EXIT_OK;
        } else {
            rekey_usage(stderr);
            return KN_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        rekey_usage(stderr);
        return KN_EXIT_USAGE;
    }
    if (!dry && kn_cli_audit_ready() < 0)
        return KN_EXIT_FAIL;
    if (kn_keyring_load(kn_cli_cfg.key_file, &kr, err, sizeof(err)) < 0) {
        fprintf(stderr, "kairanctl: %s\n", err);
        return KN_EXIT_FAIL;
    }
    rekey_directory(kr, &st, dry);
    rekey_scan("reg:*", "hash", rekey_registration, kr, &st, dry);
    rekey_scan("bc:*:aud", "list", rekey_list, kr, &st, dry);
    rekey_scan("cred:*", "hash", rekey_cred, kr, &st, dry);
    if (json) {
        printf("{\"kid\":%d,\"dry_run\":%s,\"records\":%ld,"
               "\"records_rekeyed\":%ld,\"registrations\":%ld,"
               "\"registrations_rekeyed\":%ld,\"audience_lists\":%ld,"
               "\"audience_entries_rekeyed\":%ld,\"credentials\":%ld,"
               "\"credentials_rekeyed\":%ld,\"values_rekeyed\":%ld,"
               "\"values_current\":%ld,\"retried\":%ld,\"failed\":%ld}\n",
               kn_keyring_current(kr), dry ? "true" : "false", st.records,
               st.records_new, st.regs, st.regs_new, st.lists, st.entries_new,
               st.creds, st.creds_new, st.values, st.already, st.raced,
               st.failed);
    } else {
        printf("rekey%s to key id %d: %ld directory records, %ld %s; "
               "%ld registrations, %ld %s; "
               "%ld audience lists, %ld inline entries %s; "
               "%ld provider credentials, %ld %s; %ld values "
               "re-encrypted, %ld already current; %ld retried, %ld failed\n",
               dry ? " (dry run)" : "", kn_keyring_current(kr), st.records,
               st.records_new, dry ? "to re-encrypt" : "re-encrypted", st.regs,
               st.regs_new, dry ? "to re-encrypt" : "re-encrypted", st.lists,
               st.entries_new, dry ? "to re-encrypt" : "re-encrypted", st.creds,
               st.creds_new, dry ? "to re-encrypt" : "re-encrypted", st.values,
               st.already, st.raced, st.failed);
    }
    if (!dry && st.values > 0)
        kn_cli_audit_op("rekey", NULL, NULL);
    kn_keyring_free(kr);
    return st.failed > 0 ? KN_EXIT_FAIL : KN_EXIT_OK;
}

const struct kn_cli_command kn_cli_cmd_rekey = {
    "rekey",
    "  rekey [--dry-run] [--json]\n"
    "                         re-encrypt the directory, audience lists and "
    "shared\n"
    "                         provider credentials with the current key "
    "(after key add)\n",
    1, run_rekey};

static void key_usage(FILE *f)
{
    fprintf(f, "usage: kairanctl key add FILE    add a new key (the new "
               "current key id)\n"
               "       kairanctl key list FILE   the current key id of FILE\n");
}

/* key list: load the file (which checks its mode) and print the kids. */
static int key_list(const char *path)
{
    struct kn_keyring *kr = NULL;
    char err[512];
    if (kn_keyring_load(path, &kr, err, sizeof(err)) < 0) {
        fprintf(stderr, "kairanctl: %s\n", err);
        return KN_EXIT_FAIL;
    }
    printf("current key id: %d\n", kn_keyring_current(kr));
    kn_keyring_free(kr);
    return KN_EXIT_OK;
}

static int run_key(int argc, char **argv)
{
    int kid;

    if (argc == 2 &&
        (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        key_usage(stdout);
        return KN_EXIT_OK;
    }
    if (argc != 3) {
        key_usage(stderr);
        return KN_EXIT_USAGE;
    }
    if (strcmp(argv[1], "list") == 0)
        return key_list(argv[2]);
    if (strcmp(argv[1], "add") != 0) {
        key_usage(stderr);
        return KN_EXIT_USAGE;
    }
    kid = kn_keyfile_add_key(argv[2]);
    if (kid < 0) {
        fprintf(stderr, "kairanctl: cannot add a key to %s: %s\n", argv[2],
                kn_strerror(kid));
        return KN_EXIT_FAIL;
    }
    printf("added key id %d to %s: new writes use it once kairand is "
           "restarted;\nkeep the old keys in the file, then run "
           "`kairanctl rekey`\n",
           kid, argv[2]);
    return KN_EXIT_OK;
}

const struct kn_cli_command kn_cli_cmd_keys = {
    "key",
    "  key add FILE           add a new key to a key file (rotation)\n"
    "  key list FILE          the current key id of a key file\n",
    0, run_key};
