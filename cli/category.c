/*
 * category.c - kairanctl category add|list|remove: the categories a
 * tenant's administrators keep (行事, 部活動, 緊急連絡 ...), each with a flag
 * "emergency" (never unsubscribable, later).
 *
 *   kairanctl category add --tenant T NAME [--emergency]
 *   kairanctl category list --tenant T
 *   kairanctl category remove --tenant T NAME
 *
 * Names are NFKC-normalised like every category a broadcast names
 * (model/label.h), so that "行事" added here is the "行事" of a broadcast
 * however it was typed.  The list is the hash cats:<T> (name -> flags);
 * a broadcast's category must be in it or be built in (notice, event,
 * drill, emergency: kn_category_builtin), which queue/lua/submit.lua checks for
 * every producer.  Every change goes to the operation log first (a change
 * that cannot be logged is not made).
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/kn.h"
#include "common/text.h"
#include "model/audit.h"
#include "model/label.h"
#include "queue/keys.h"

static void cat_usage(void)
{
    fprintf(stderr,
            "usage: kairanctl category add --tenant T NAME [--emergency]\n"
            "       kairanctl category list --tenant T\n"
            "       kairanctl category remove --tenant T NAME\n");
}

static void log_op(const char *op, const char *tenant, const char *name,
                   int emergency)
{
    json_t *f = json_object();
    json_object_set_new(f, "tenant", json_string(tenant));
    json_object_set_new(f, "category", json_string(name));
    if (emergency >= 0)
        json_object_set_new(f, "emergency", json_boolean(emergency));
    kn_cli_audit_fields(op, f);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The tenant's own categories, sorted: "name\tflags" lines to stdout. */
static int cat_list(const char *tenant)
{
    static const char *const builtin[] = {"notice", "emergency", "event",
                                          "drill"};
    char *k = kn_key_cats(kn_cli_cfg.redis_prefix, tenant);
    redisReply *r = kn_cli_cmd("HGETALL %s", k);
    size_t n = r->type == REDIS_REPLY_ARRAY ? r->elements / 2 : 0;
    char **names = kn_xcalloc(n + 1, sizeof(*names));
    free(k);
    for (size_t i = 0; i < KN_ARRAY_SIZE(builtin); i++)
        printf("%s\t%s\tbuilt in\n", builtin[i],
               kn_category_builtin(builtin[i]) == KN_CAT_EMERGENCY ? "emergency"
                                                                   : "-");
    for (size_t i = 0; i < n; i++)
        names[i] = kn_xasprintf(
            "%s\t%s", r->element[2 * i]->str,
            r->element[2 * i + 1]->str[0] ? r->element[2 * i + 1]->str : "-");
    qsort(names, n, sizeof(*names), cmp_str);
    for (size_t i = 0; i < n; i++) {
        /* a name is people's text: shown, not obeyed (it holds no tab:
         * kn_label_norm refuses controls) */
        char *tab = strchr(names[i], '\t'), *shown;
        *tab = '\0';
        shown = kn_text_safe(names[i]);
        printf("%s\t%s\ttenant\n", shown, tab + 1);
        free(shown);
        free(names[i]);
    }
    free(names);
    freeReplyObject(r);
    return KN_EXIT_OK;
}

/*
 * add or remove NAME.  Returns an exit code:
 *  1. a name that is not a label, or a built-in one: 2 (usage), with why;
 *  2. remove of a name the tenant does not have: 3;
 *  3. the operation log unusable: 1, nothing changed.
 */
static int cat_change(int add, const char *tenant, const char *raw,
                      int emergency)
{
    char why[200], *name = NULL, *k;
    redisReply *r;
    if (kn_label_norm(raw, &name, why, sizeof(why)) < 0) {
        char *shown = kn_text_safe(raw);
        fprintf(stderr, "kairanctl: category \"%s\" %s\n", shown, why);
        free(shown);
        return KN_EXIT_USAGE;
    }
    if (kn_category_builtin(name) != KN_CAT_OWN) {
        fprintf(stderr,
                "kairanctl: %s is built in: every tenant has it "
                "and it cannot be %s\n",
                name, add ? "added again" : "removed");
        free(name);
        return KN_EXIT_USAGE;
    }
    if (kn_cli_audit_ready() < 0) {
        free(name);
        return KN_EXIT_FAIL;
    }
    k = kn_key_cats(kn_cli_cfg.redis_prefix, tenant);
    if (add) {
        r = kn_cli_cmd("HSET %s %s %s", k, name, emergency ? "emergency" : "");
        log_op("category.add", tenant, name, emergency);
        printf("%s\n", name); /* as stored (normalised) */
    } else {
        r = kn_cli_cmd("HDEL %s %s", k, name);
        if (r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
            char *shown = kn_text_safe(name);
            fprintf(stderr, "kairanctl: tenant %s has no category \"%s\"\n",
                    tenant, shown);
            free(shown);
            freeReplyObject(r);
            free(k);
            free(name);
            return KN_EXIT_UNKNOWN;
        }
        log_op("category.remove", tenant, name, -1);
    }
    freeReplyObject(r);
    free(k);
    free(name);
    return KN_EXIT_OK;
}

static int run_category(int argc, char **argv)
{
    static const struct option opts[] = {
        {"tenant", required_argument, NULL, 't'},
        {"emergency", no_argument, NULL, 'e'},
        {NULL, 0, NULL, 0}};
    const char *verb = argc > 1 ? argv[1] : "", *tenant = NULL;
    int emergency = 0, c;
    optind = 0; /* glibc: start afresh */
    while ((c = getopt_long(argc - 1, argv + 1, "", opts, NULL)) != -1) {
        if (c == 't')
            tenant = optarg;
        else if (c == 'e')
            emergency = 1;
        else {
            cat_usage();
            return KN_EXIT_USAGE;
        }
    }
    if (tenant == NULL || !kn_tenant_valid(tenant)) {
        fprintf(stderr, "kairanctl: --tenant T is required: 1-64 letters, "
                        "digits, '-', '_', '.'\n");
        return KN_EXIT_USAGE;
    }
    optind++; /* argv + 1 was parsed: past the verb */
    if (strcmp(verb, "list") == 0 && optind == argc && !emergency)
        return cat_list(tenant);
    if ((strcmp(verb, "add") == 0 || strcmp(verb, "remove") == 0) &&
        optind == argc - 1 && (!emergency || verb[0] == 'a'))
        return cat_change(verb[0] == 'a', tenant, argv[optind], emergency);
    cat_usage();
    return KN_EXIT_USAGE;
}

const struct kn_cli_command kn_cli_cmd_category = {
    "category",
    "  category add --tenant T NAME [--emergency]\n"
    "  category list --tenant T\n"
    "  category remove --tenant T NAME\n"
    "                         the tenant's categories (notice, emergency, "
    "event and\n"
    "                         drill are built in); a broadcast's category "
    "must be one\n",
    1, run_category};
