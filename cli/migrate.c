/*
 * migrate.c - kairanctl migrate: bring records made by an older kairan to
 * today's key scheme (queue/keys.h).  Safe to run again; stop kairand or
 * let its queues drain first.
 *
 *   1. Broadcasts (bcs, rejected): a name with a byte outside letters,
 *      digits, '.', '_', '-' (":" was allowed before) moves from bc:<name>
 *      to bc:<encoded name> with its :r, :aud and :ack.  Each broadcast's
 *      old id becomes its tenant's idempotency key (idem:<tenant>), so
 *      that submitting the same id again still finds it.
 *   2. The directory: a recipient id or a group name with such a byte
 *      moves from rcpt:<T>:<id> / grp:<T>:<group> to its encoded key.  A
 *      tenant whose name is no longer valid is reported and left alone.
 *   3. Categories (schema 3): every category a tenant's broadcasts used
 *      that is not built in (notice, event, emergency, drill) joins the
 *      tenant's
 *      list cats:<T>, so that producers of an older kairan, which took any
 *      word, keep working now that a broadcast's category must be in it.
 *      Tokens' --groups lists are NFKC-normalised as group names now are
 *      (model/label.h), so that a token made with "２年Ａ組" still reaches
 *      "2年A組".  Directory records need nothing: a record without the
 *      class-list fields or further guardians reads as before.
 *   4. schema = 3 under the prefix.
 * Prints what it moved; exit 0, or 1 when something was left (named).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/kn.h"
#include "common/log.h"
#include "model/label.h"
#include "queue/keys.h"

struct mig {
    long long moved, keys, left, cats, tokens;
};

/* RENAMENX old -> new when old exists; 1 if moved. */
static int move_key(struct mig *m, const char *old, const char *new_)
{
    redisReply *r = kn_cli_cmd("RENAMENX %s %s", old, new_);
    int ok = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    if (r->type == REDIS_REPLY_ERROR && strstr(r->str, "no such key") == NULL) {
        fprintf(stderr, "kairanctl: migrate: %s: %s\n", old, r->str);
        m->left++;
    } else if (r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
        fprintf(stderr,
                "kairanctl: migrate: %s exists already; %s left as it is\n",
                new_, old);
        m->left++;
    }
    freeReplyObject(r);
    m->keys += ok;
    return ok;
}

static void migrate_broadcast(struct mig *m, const char *id)
{
    const char *p = kn_cli_cfg.redis_prefix;
    char *enc = kn_key_part(id);
    static const char *const sfx[] = {"", ":r", ":aud", ":ack", ":m", ":fam"};
    redisReply *h;
    if (strcmp(enc, id) != 0) {
        /* bc:<id> must be this broadcast's hash, not another broadcast's
         * list that only looks like it ("X:aud" of "X"). */
        char *old = kn_xasprintf("%sbc:%s", p, id);
        redisReply *t = kn_cli_cmd("TYPE %s", old);
        int is_hash = t->type == REDIS_REPLY_STATUS && t->str != NULL &&
                      strcmp(t->str, "hash") == 0;
        freeReplyObject(t);
        free(old);
        for (size_t i = 0; is_hash && i < KN_ARRAY_SIZE(sfx); i++) {
            char *o = kn_xasprintf("%sbc:%s%s", p, id, sfx[i]);
            char *n = kn_key_bc(p, id, sfx[i]);
            move_key(m, o, n);
            free(o);
            free(n);
        }
        if (is_hash)
            m->moved++;
    }
    free(enc);

    /* The old id is the tenant's idempotency key for it; its category
     * one of the tenant's. */
    {
        char *bk = kn_key_bc(p, id, "");
        h = kn_cli_cmd("HMGET %s tenant category", bk);
        if (h->type == REDIS_REPLY_ARRAY && h->elements == 2 &&
            h->element[0]->type == REDIS_REPLY_STRING &&
            h->element[1]->type == REDIS_REPLY_STRING &&
            kn_tenant_valid(h->element[0]->str) &&
            kn_label_is_norm(h->element[1]->str) &&
            kn_category_builtin(h->element[1]->str) == KN_CAT_OWN) {
            char *ck = kn_key_cats(p, h->element[0]->str);
            redisReply *r =
                kn_cli_cmd("HSETNX %s %s %s", ck, h->element[1]->str, "");
            m->cats += r->type == REDIS_REPLY_INTEGER && r->integer == 1;
            freeReplyObject(r);
            free(ck);
        }
        freeReplyObject(h);
        h = kn_cli_cmd("HMGET %s tenant key", bk);
        if (h->type == REDIS_REPLY_ARRAY && h->elements == 2 &&
            h->element[0]->type == REDIS_REPLY_STRING &&
            h->element[1]->type != REDIS_REPLY_STRING &&
            kn_tenant_valid(h->element[0]->str)) {
            char *ik = kn_key_idem(p, h->element[0]->str);
            redisReply *r = kn_cli_cmd("HSETNX %s %s %s", ik, id, id);
            freeReplyObject(r);
            r = kn_cli_cmd("HSET %s key %s", bk, id);
            freeReplyObject(r);
            free(ik);
        }
        freeReplyObject(h);
        free(bk);
    }
}

static void migrate_members(struct mig *m, const char *set, const char *kind,
                            const char *tenant)
{
    const char *p = kn_cli_cfg.redis_prefix;
    redisReply *r = kn_cli_cmd("SMEMBERS %s", set);
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const char *v = r->element[i]->str;
        char *enc = kn_key_part(v);
        if (v != NULL && strcmp(enc, v) != 0) {
            char *o = kn_xasprintf("%s%s:%s:%s", p, kind, tenant, v);
            char *n = strcmp(kind, "rcpt") == 0 ? kn_key_rcpt(p, tenant, v)
                                                : kn_key_grp(p, tenant, v);
            m->moved += move_key(m, o, n);
            free(o);
            free(n);
        }
        free(enc);
    }
    freeReplyObject(r);
}

/* A token's groups "a,b" NFKC-normalised (model/label.h); a name that
 * is no label at all is left as it is (it never matched a broadcast). */
static void migrate_token(struct mig *m, const char *id)
{
    char *k = kn_cli_key("token:%s", id), *out = kn_xstrdup("");
    redisReply *r = kn_cli_cmd("HGET %s groups", k);
    const char *p = r->type == REDIS_REPLY_STRING ? r->str : "";
    while (*p) {
        size_t n = strcspn(p, ",");
        char *one = kn_xstrndup(p, n), *norm = NULL, why[8], *t;
        if (kn_label_norm(one, &norm, why, sizeof(why)) < 0)
            norm = kn_xstrdup(one);
        t = out[0] ? kn_xasprintf("%s,%s", out, norm) : kn_xstrdup(norm);
        free(out);
        free(norm);
        free(one);
        out = t;
        p += n + (p[n] == ',');
    }
    if (r->type == REDIS_REPLY_STRING && strcmp(out, r->str) != 0) {
        redisReply *w = kn_cli_cmd("HSET %s groups %s", k, out);
        freeReplyObject(w);
        m->tokens++;
    }
    freeReplyObject(r);
    free(out);
    free(k);
}

static int do_migrate(int argc, char **argv)
{
    struct mig m = {0, 0, 0, 0, 0};
    redisReply *r;
    char *k;
    if (argc != 1) {
        fprintf(stderr, "usage: kairanctl migrate\n");
        return KN_EXIT_USAGE;
    }
    for (int z = 0; z < 2; z++) {
        k = kn_cli_key("%s", z == 0 ? "bcs" : "rejected");
        r = kn_cli_cmd("ZRANGE %s 0 -1", k);
        free(k);
        for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
            migrate_broadcast(&m, r->element[i]->str);
        freeReplyObject(r);
    }
    k = kn_cli_key("tenants");
    r = kn_cli_cmd("SMEMBERS %s", k);
    free(k);
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const char *t = r->element[i]->str;
        char *set;
        if (!kn_tenant_valid(t)) {
            char shown[200];
            kn_mask_text(t, shown, sizeof(shown));
            fprintf(stderr,
                    "kairanctl: migrate: tenant \"%s\" is no longer a valid "
                    "name (1-64 letters, digits, '-', '_', '.'): its "
                    "directory is left as it is; export it, close the "
                    "tenant and import it under a new name\n",
                    shown);
            m.left++;
            continue;
        }
        set = kn_cli_key("rcpts:%s", t);
        migrate_members(&m, set, "rcpt", t);
        free(set);
        set = kn_cli_key("groups:%s", t);
        migrate_members(&m, set, "grp", t);
        free(set);
    }
    freeReplyObject(r);
    k = kn_cli_key("tokens");
    r = kn_cli_cmd("SMEMBERS %s", k);
    free(k);
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        migrate_token(&m, r->element[i]->str);
    freeReplyObject(r);
    k = kn_cli_key("schema");
    r = kn_cli_cmd("SET %s 3", k);
    freeReplyObject(r);
    free(k);
    printf("migrate: %lld records moved (%lld keys renamed), %lld left\n",
           m.moved, m.keys, m.left);
    printf("migrate: %lld categories added to their tenant's list, %lld "
           "token group lists normalised\n",
           m.cats, m.tokens);
    return m.left > 0 ? KN_EXIT_FAIL : KN_EXIT_OK;
}

const struct kn_cli_command kn_cli_cmd_migrate = {
    .name = "migrate",
    .usage = "  migrate                bring records of an older kairan to "
             "today's key names\n",
    .needs_config = 1,
    .run = do_migrate,
};
