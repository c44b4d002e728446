/*
 * token.c - kairanctl token: the HTTP API's bearer tokens.
 *
 *   kairanctl token create --role R --tenant T --name NAME [--groups a,b]
 *                          [--expires 90d]      prints the token, once
 *   kairanctl token list [--json]               never a secret or a hash
 *   kairanctl token revoke ID                   exit 3 if unknown
 *
 * A token is "kn_<id>_<secret>": the id names the record <prefix>token:<id>
 * (also in the set <prefix>tokens); the secret, 32 random bytes, is printed
 * once and only its salted, keyed hash is stored (model/token.h).  A
 * revoked token keeps its record, so the login log and the broadcasts it
 * sent (which store the sender's name themselves) stay readable.
 *
 * create and revoke append a line to <audit_dir>/operations.jsonl.
 */
#include <getopt.h>
#include <jansson.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/kn.h"
#include "model/label.h"
#include "common/codec.h"
#include "common/seal.h"
#include "common/text.h"
#include "model/broadcast.h"
#include "model/audit.h"
#include "model/token.h"
#include "queue/lua.h"

/* queue/lua/token_create.lua */
static struct kn_redis_script create_script = {
    "token_create", kn_lua_token_create, ""};

/* queue/lua/token_revoke.lua */
static struct kn_redis_script revoke_script = {
    "token_revoke", kn_lua_token_revoke, ""};

/* One line to the operation log (model/audit.h); the change is made, so a
 * failure now is said, not fatal. */
static void op_log(const char *op, const char *id, const char *role,
                   const char *tenant, const char *name)
{
    json_t *f = json_object();
    json_object_set_new(f, "token", json_string(id));
    if (role != NULL)
        json_object_set_new(f, "role", json_string(role));
    if (tenant != NULL)
        json_object_set_new(f, "tenant", json_string(tenant));
    if (name != NULL)
        json_object_set_new(f, "name", json_string(name));
    json_object_set_new(f, "via", json_string("kairanctl"));
    kn_cli_audit_fields(op, f);
}

/* A name: 1-100 bytes, valid UTF-8 text without control characters. */
static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 100)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return 0;
    }
    json_t *j = json_string(s); /* jansson checks UTF-8 */
    if (j == NULL)
        return 0;
    json_decref(j);
    return 1;
}

/*
 * Groups "a,b": each name NFKC-normalised as broadcasts' audience.groups
 * are (model/label.h), so that --groups ２年Ａ組 lets the token address
 * "2年A組".  Returns the normalised list (heap), or NULL after printing
 * what is wrong.
 */
static char *groups_norm(const char *s)
{
    const char *p = s;
    char *out = kn_xstrdup("");
    for (;;) {
        size_t n = strcspn(p, ",");
        char *one = kn_xstrndup(p, n), *norm, why[160], *t;
        if (kn_label_norm(one, &norm, why, sizeof(why)) < 0) {
            char *shown = kn_text_safe(one);
            fprintf(stderr,
                    "kairanctl: --groups: \"%s\" %s (give a comma list "
                    "of group names, each 1-%d characters)\n",
                    shown, why, KN_LABEL_MAX_CHARS);
            free(shown);
            free(one);
            free(out);
            return NULL;
        }
        t = out[0] ? kn_xasprintf("%s,%s", out, norm) : kn_xstrdup(norm);
        free(out);
        free(norm);
        free(one);
        out = t;
        p += n;
        if (*p == '\0')
            return out;
        p++;
    }
}

static void tok_usage(void)
{
    fprintf(stderr,
            "usage: kairanctl token create --role admin|limited_admin|"
            "sender|operator --tenant T --name NAME [--groups a,b] "
            "[--expires 90d]\n"
            "       kairanctl token list [--json]\n"
            "       kairanctl token revoke ID\n");
}

static int tok_create(int argc, char **argv)
{
    static const struct option opts[] = {
        {"role", required_argument, NULL, 'r'},
        {"tenant", required_argument, NULL, 't'},
        {"name", required_argument, NULL, 'n'},
        {"groups", required_argument, NULL, 'g'},
        {"expires", required_argument, NULL, 'e'},
        {NULL, 0, NULL, 0}};
    const char *role_s = NULL, *tenant = NULL, *name = NULL, *groups = NULL,
               *expires_s = NULL;
    unsigned char rid[8], secret[KN_TOKEN_SECRET_BYTES],
        salt[KN_TOKEN_SALT_BYTES];
    char id[KN_TOKEN_ID_MAX + 1], salt_hex[2 * KN_TOKEN_SALT_BYTES + 1],
        hash[65], err[512], gnorm[4096];
    struct kn_keyring *kr = NULL;
    struct kn_argv a;
    int64_t now = kn_now_ms(), ttl = 0;
    char *sec64;
    redisReply *r;
    int role, c, ok;

    optind = 0; /* re-initialise getopt after main's own parsing */
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            role_s = optarg;
            break;
        case 't':
            tenant = optarg;
            break;
        case 'n':
            name = optarg;
            break;
        case 'g':
            groups = optarg;
            break;
        case 'e':
            expires_s = optarg;
            break;
        default:
            tok_usage();
            return KN_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        tok_usage();
        return KN_EXIT_USAGE;
    }
    role = kn_role_parse(role_s);
    if (role < 0) {
        fprintf(stderr, "kairanctl: --role must be admin, limited_admin, "
                        "sender or operator\n");
        return KN_EXIT_USAGE;
    }
    if (tenant == NULL && (role == KN_ROLE_LIMITED_ADMIN ||
                           role == KN_ROLE_SENDER)) {
        fprintf(stderr, "kairanctl: --tenant is required for a %s token\n",
                role_s);
        return KN_EXIT_USAGE;
    }
    if (tenant != NULL && !kn_tenant_valid(tenant)) {
        fprintf(stderr, "kairanctl: --tenant: use 1-64 letters, digits, "
                        "'-', '_', '.' (as in broadcasts)\n");
        return KN_EXIT_USAGE;
    }
    if (name == NULL || !name_ok(name)) {
        fprintf(stderr, "kairanctl: --name is required: who holds the "
                        "token, 1-100 bytes of text (e.g. \"Sato "
                        "(2-A)\")\n");
        return KN_EXIT_USAGE;
    }
    if (role == KN_ROLE_SENDER && groups == NULL) {
        fprintf(stderr, "kairanctl: a sender token needs --groups a,b (the "
                        "groups it may address)\n");
        return KN_EXIT_USAGE;
    }
    if (groups != NULL && role != KN_ROLE_SENDER) {
        fprintf(stderr, "kairanctl: --groups is for sender tokens only\n");
        return KN_EXIT_USAGE;
    }
    if (groups != NULL) {
        char *g = groups_norm(groups);
        if (g == NULL)
            return KN_EXIT_USAGE;
        if (strlen(g) >= sizeof(gnorm)) {
            fprintf(stderr, "kairanctl: --groups: at most %zu bytes\n",
                    sizeof(gnorm) - 1);
            free(g);
            return KN_EXIT_USAGE;
        }
        strcpy(gnorm, g);
        free(g);
        groups = gnorm;
    }
    /* The unit is required: "--expires 90" used to mean 90 ms. */
    if (expires_s != NULL && strcmp(expires_s, "never") != 0 &&
        (kn_duration_parse_unit(expires_s, &ttl) < 0 || ttl <= 0)) {
        fprintf(stderr, "kairanctl: --expires %s: write a duration with its "
                        "unit, such as 90d (days), 12h, 30m, 60s, or "
                        "never\n",
                expires_s);
        return KN_EXIT_USAGE;
    }
    if (kn_cli_audit_ready() < 0)
        return KN_EXIT_FAIL;
    if (kn_keyring_load(kn_cli_cfg.key_file, &kr, err, sizeof(err)) < 0) {
        fprintf(stderr, "kairanctl: security.key_file: %s\n", err);
        return KN_EXIT_FAIL;
    }

    kn_random(rid, sizeof(rid));
    kn_hex_encode(rid, sizeof(rid), id);
    kn_random(salt, sizeof(salt));
    kn_hex_encode(salt, sizeof(salt), salt_hex);
    kn_random(secret, sizeof(secret));
    sec64 = kn_b64url_encode(secret, sizeof(secret));
    memset(secret, 0, sizeof(secret));
    kn_token_hash(kr, salt_hex, sec64, hash);
    kn_keyring_free(kr);

    kn_argv_init(&a);
    kn_argv_take(&a, kn_cli_key("token:%s", id));
    kn_argv_take(&a, kn_cli_key("tokens"));
    kn_argv_add(&a, id);
    kn_argv_add(&a, "role");
    kn_argv_add(&a, kn_role_name(role));
    kn_argv_add(&a, "tenant");
    kn_argv_add(&a, tenant ? tenant : "");
    kn_argv_add(&a, "name");
    kn_argv_add(&a, name);
    kn_argv_add(&a, "groups");
    kn_argv_add(&a, groups ? groups : "");
    kn_argv_add(&a, "created_ms");
    kn_argv_addi(&a, now);
    kn_argv_add(&a, "expires_ms");
    kn_argv_addi(&a, ttl > 0 ? now + ttl : 0);
    kn_argv_add(&a, "revoked_ms");
    kn_argv_add(&a, "0");
    kn_argv_add(&a, "salt");
    kn_argv_add(&a, salt_hex);
    kn_argv_add(&a, "hash");
    kn_argv_add(&a, hash);
    kn_argv_add(&a, "alg");
    kn_argv_add(&a, KN_TOKEN_ALG);
    r = kn_cli_eval(&create_script, 2, &a);
    kn_argv_free(&a);
    ok = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    if (!ok) {
        fprintf(stderr, "kairanctl: token id collision; run again\n");
        memset(sec64, 0, strlen(sec64));
        free(sec64);
        return KN_EXIT_FAIL;
    }
    op_log("token.create", id, kn_role_name(role), tenant, name);
    printf("kn_%s_%s\n", id, sec64);
    fflush(stdout);
    memset(sec64, 0, strlen(sec64));
    free(sec64);
    fprintf(stderr,
            "kairanctl: token %s created (%s%s%s); it is shown only "
            "this once\n",
            id, kn_role_name(role), tenant ? ", tenant " : "",
            tenant ? tenant : "");
    return KN_EXIT_OK;
}

static const char *hget(const redisReply *r, size_t i)
{
    return r != NULL && r->type == REDIS_REPLY_ARRAY && i < r->elements &&
                   r->element[i]->type == REDIS_REPLY_STRING
               ? r->element[i]->str
               : NULL;
}

struct row {
    char *id;
    redisReply *h;
    long long created;
};

static int row_cmp(const void *a, const void *b)
{
    const struct row *x = a, *y = b;
    if (x->created != y->created)
        return x->created < y->created ? -1 : 1;
    return strcmp(x->id, y->id);
}

static json_t *jt(long long ms)
{
    char buf[48];
    return ms > 0 ? json_string(kn_time_jst(ms, buf, sizeof(buf)))
                  : json_null();
}

static int tok_list(int argc, char **argv)
{
    int as_json = argc == 2 && strcmp(argv[1], "--json") == 0;
    char *k;
    redisReply *ids;
    struct row *rows;
    size_t n;
    int64_t now = kn_now_ms();
    json_t *arr = json_array();

    if (argc > 2 || (argc == 2 && !as_json)) {
        tok_usage();
        json_decref(arr);
        return KN_EXIT_USAGE;
    }
    k = kn_cli_key("tokens");
    ids = kn_cli_cmd("SMEMBERS %s", k);
    free(k);
    n = ids->type == REDIS_REPLY_ARRAY ? ids->elements : 0;
    rows = kn_xcalloc(n + 1, sizeof(*rows));
    for (size_t i = 0; i < n; i++) {
        rows[i].id = ids->element[i]->str;
        k = kn_cli_key("token:%s", rows[i].id);
        rows[i].h = kn_cli_cmd("HMGET %s role tenant name groups created_ms "
                               "expires_ms revoked_ms",
                               k);
        free(k);
        rows[i].created = hget(rows[i].h, 4) ? atoll(hget(rows[i].h, 4)) : 0;
    }
    qsort(rows, n, sizeof(*rows), row_cmp);
    if (!as_json)
        printf("%-16s  %-13s  %-12s  %-8s  %-25s  %s\n", "ID", "ROLE",
               "TENANT", "STATE", "EXPIRES", "NAME [GROUPS]");
    for (size_t i = 0; i < n; i++) {
        const redisReply *h = rows[i].h;
        long long exp = hget(h, 5) ? atoll(hget(h, 5)) : 0,
                  rev = hget(h, 6) ? atoll(hget(h, 6)) : 0;
        const char *state = rev > 0                      ? "revoked"
                            : exp > 0 && now >= exp      ? "expired"
                            : hget(h, 0) == NULL         ? "missing"
                                                         : "active";
        const char *groups = hget(h, 3) ? hget(h, 3) : "";
        if (as_json) {
            json_t *o = json_object(), *g = json_array();
            const char *p = groups;
            while (*p) {
                size_t len = strcspn(p, ",");
                json_array_append_new(g, json_stringn(p, len));
                p += len;
                if (*p == ',')
                    p++;
            }
            json_object_set_new(o, "id", json_string(rows[i].id));
            json_object_set_new(o, "role", json_string(hget(h, 0) ? hget(h, 0)
                                                                  : ""));
            json_object_set_new(o, "tenant",
                                json_string(hget(h, 1) ? hget(h, 1) : ""));
            json_object_set_new(o, "name",
                                json_string(hget(h, 2) ? hget(h, 2) : ""));
            json_object_set_new(o, "groups", g);
            json_object_set_new(o, "state", json_string(state));
            json_object_set_new(o, "created", jt(rows[i].created));
            json_object_set_new(o, "expires", jt(exp));
            json_object_set_new(o, "revoked", jt(rev));
            json_array_append_new(arr, o);
        } else {
            char eb[48] = "never";
            /* names and groups are people's text: shown, not obeyed */
            char *nm = kn_text_safe(hget(h, 2)), *gs = kn_text_safe(groups);
            if (exp > 0)
                kn_time_jst(exp, eb, sizeof(eb));
            printf("%-16s  %-13s  %-12s  %-8s  %-25.25s  %s%s%s%s\n",
                   rows[i].id, hget(h, 0) ? hget(h, 0) : "?",
                   hget(h, 1) && hget(h, 1)[0] ? hget(h, 1) : "-", state, eb,
                   nm, gs[0] ? " [" : "", gs, gs[0] ? "]" : "");
            free(nm);
            free(gs);
        }
    }
    if (as_json) {
        char *s = json_dumps(arr, JSON_INDENT(2)), *safe = kn_text_json(s);
        printf("%s\n", safe);
        free(safe);
        free(s);
    }
    json_decref(arr);
    for (size_t i = 0; i < n; i++)
        freeReplyObject(rows[i].h);
    free(rows);
    freeReplyObject(ids);
    return KN_EXIT_OK;
}

static int tok_revoke(int argc, char **argv)
{
    struct kn_argv a;
    redisReply *r, *h;
    char *k;
    long long res;
    if (argc != 2) {
        tok_usage();
        return KN_EXIT_USAGE;
    }
    if (kn_cli_audit_ready() < 0)
        return KN_EXIT_FAIL;
    kn_argv_init(&a);
    kn_argv_take(&a, kn_cli_key("token:%s", argv[1]));
    kn_argv_addi(&a, kn_now_ms());
    r = kn_cli_eval(&revoke_script, 1, &a);
    kn_argv_free(&a);
    res = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    if (res < 0) {
        fprintf(stderr, "kairanctl: no token %s\n", argv[1]);
        return KN_EXIT_UNKNOWN;
    }
    if (res == 0) {
        fprintf(stderr, "kairanctl: token %s was already revoked\n",
                argv[1]);
        return KN_EXIT_FAIL;
    }
    k = kn_cli_key("token:%s", argv[1]);
    h = kn_cli_cmd("HMGET %s role tenant name", k);
    free(k);
    op_log("token.revoke", argv[1], hget(h, 0), hget(h, 1), hget(h, 2));
    freeReplyObject(h);
    printf("token %s revoked\n", argv[1]);
    return KN_EXIT_OK;
}

static int run_token(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "create") == 0)
        return tok_create(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "list") == 0)
        return tok_list(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "revoke") == 0)
        return tok_revoke(argc - 1, argv + 1);
    tok_usage();
    return KN_EXIT_USAGE;
}

const struct kn_cli_command kn_cli_cmd_token = {
    "token",
    "  token create --role R --tenant T --name NAME [--groups a,b] "
    "[--expires 90d]\n"
    "                         an API token (printed once)\n"
    "  token list [--json]    API tokens (never secrets)\n"
    "  token revoke ID        revoke an API token\n",
    1,
    run_token};
