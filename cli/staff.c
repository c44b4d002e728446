/*
 * staff.c - kairanctl staff: school staff accounts (the console's logins).
 *
 *   kairanctl staff add --tenant T --login L --name NAME --role R
 *                       [--groups a,b] [--email ADDR]
 *                                             prints the initial password
 *                                             alone on its last line
 *   kairanctl staff list --tenant T [--json]  never a hash or a secret
 *   kairanctl staff deactivate --tenant T L   ends its sessions; kept
 *   kairanctl staff reset --tenant T L        a new initial password (last
 *                                             line); ends its sessions
 *   kairanctl staff role --tenant T L R [--groups a,b]
 *                                             ends its sessions
 *   kairanctl staff email --tenant T L ADDR   the account's own address
 *                                             (the console's "send to
 *                                             me"); "" removes it
 *   kairanctl staff unlock --tenant T L       lifts the account's login
 *                                             locks (per address, and for
 *                                             browsers without its device
 *                                             cookie, model/session.h)
 *
 * Records: queue/staff.h.  Passwords: model/password.h (Argon2id); an
 * initial password must be changed at the first login.  A deactivated
 * account keeps its record, so the broadcasts it sent keep its name.
 * Every change appends a line to <audit_dir>/operations.jsonl.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/codec.h"
#include "common/kn.h"
#include "common/seal.h"
#include "common/text.h"
#include "model/address.h"
#include "model/audit.h"
#include "model/gaiji.h"
#include "model/password.h"
#include "model/session.h"
#include "model/token.h"
#include "queue/keys.h"
#include "queue/staff.h"

static void staff_usage(void)
{
    fprintf(stderr,
            "usage: kairanctl staff add --tenant T --login L --name NAME "
            "--role admin|limited_admin|sender|operator [--groups a,b] "
            "[--email ADDR]\n"
            "       kairanctl staff list --tenant T [--json]\n"
            "       kairanctl staff deactivate --tenant T LOGIN\n"
            "       kairanctl staff reset --tenant T LOGIN\n"
            "       kairanctl staff role --tenant T LOGIN ROLE "
            "[--groups a,b]\n"
            "       kairanctl staff email --tenant T LOGIN ADDR|\"\"\n"
            "       kairanctl staff unlock --tenant T LOGIN\n");
}

static void op_log(const char *op, const char *tenant, const char *login,
                   const char *role)
{
    json_t *f = json_object();
    json_object_set_new(f, "tenant", json_string(tenant));
    json_object_set_new(f, "login", json_string(login));
    if (role != NULL)
        json_object_set_new(f, "role", json_string(role));
    json_object_set_new(f, "via", json_string("kairanctl"));
    kn_cli_audit_fields(op, f);
}

struct opts {
    const char *tenant, *login, *name, *role, *groups, *email;
    int json;
    char *pos[3];
    int npos;
};

/* Parse --tenant/--login/--name/--role/--groups/--json and positionals. */
static int parse(int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {{"tenant", required_argument, NULL, 't'},
                                       {"login", required_argument, NULL, 'l'},
                                       {"name", required_argument, NULL, 'n'},
                                       {"role", required_argument, NULL, 'r'},
                                       {"groups", required_argument, NULL, 'g'},
                                       {"email", required_argument, NULL, 'e'},
                                       {"json", no_argument, NULL, 'j'},
                                       {NULL, 0, NULL, 0}};
    int c;
    memset(o, 0, sizeof(*o));
    optind = 0;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 't':
            o->tenant = optarg;
            break;
        case 'l':
            o->login = optarg;
            break;
        case 'n':
            o->name = optarg;
            break;
        case 'r':
            o->role = optarg;
            break;
        case 'g':
            o->groups = optarg;
            break;
        case 'e':
            o->email = optarg;
            break;
        case 'j':
            o->json = 1;
            break;
        default:
            return -1;
        }
    }
    while (optind < argc) {
        if (o->npos == 3)
            return -1;
        o->pos[o->npos++] = argv[optind++];
    }
    if (o->tenant == NULL) {
        fprintf(stderr, "kairanctl: --tenant T is required: staff accounts "
                        "belong to one tenant\n");
        return -1;
    }
    if (!kn_tenant_valid(o->tenant)) {
        fprintf(stderr, "kairanctl: --tenant: use 1-64 letters, digits, "
                        "'-', '_', '.' (as in broadcasts)\n");
        return -1;
    }
    return 0;
}

static int login_arg_ok(const char *login)
{
    if (login == NULL || !kn_staff_login_valid(login)) {
        fprintf(stderr, "kairanctl: a login is 1-64 of a-z, 0-9, '.', '_', "
                        "'-', starting with a letter or digit (e.g. "
                        "sato.ichiro)\n");
        return 0;
    }
    return 1;
}

/* The role and groups rules shared by add and role: 0 or exit 2. */
static int role_groups_ok(const char *role_s, const char *groups)
{
    int role = kn_role_parse(role_s);
    if (role < 0) {
        fprintf(stderr, "kairanctl: the role must be admin, limited_admin, "
                        "sender or operator\n");
        return -1;
    }
    if (role == KN_ROLE_SENDER && groups == NULL) {
        fprintf(stderr, "kairanctl: a sender needs --groups a,b (the groups "
                        "it may address)\n");
        return -1;
    }
    if (groups != NULL && role != KN_ROLE_SENDER) {
        fprintf(stderr, "kairanctl: --groups is for senders only\n");
        return -1;
    }
    if (groups != NULL && !kn_staff_groups_valid(groups)) {
        fprintf(stderr, "kairanctl: --groups: a comma list of group names "
                        "(no empty item, each at most 64 bytes, no ';')\n");
        return -1;
    }
    return 0;
}

static int exists(const char *tenant, const char *login)
{
    char *k = kn_key_staff(kn_cli_cfg.redis_prefix, tenant, login);
    redisReply *r = kn_cli_cmd("EXISTS %s", k);
    int e = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    free(k);
    return e;
}

/*
 * The sealed form of a staff member's own e-mail address (purpose
 * "email", as guardians' addresses: SECURITY-PROMISES.md row 1), or NULL
 * with the reason printed (a bad address: exit 2; no key: exit 1 in *rc).
 */
static char *seal_email(const char *addr, int *rc)
{
    struct kn_keyring *kr = NULL;
    const char *why = NULL;
    char err[400], *sealed;
    if (kn_addr_check(addr, &why) < 0) {
        fprintf(stderr,
                "kairanctl: --email: not an e-mail address (%s); "
                "write it as sato@school.example.jp\n",
                why ? why : "invalid");
        *rc = KN_EXIT_USAGE;
        return NULL;
    }
    if (kn_keyring_load(kn_cli_cfg.key_file, &kr, err, sizeof(err)) < 0) {
        fprintf(stderr, "kairanctl: security.key_file: %s\n", err);
        *rc = KN_EXIT_FAIL;
        return NULL;
    }
    sealed = kn_seal(kr, "email", addr, strlen(addr));
    kn_keyring_free(kr);
    return sealed;
}

static int st_add(int argc, char **argv)
{
    struct opts o;
    char pw[21], *k, *sealed = NULL, *en, *ja;
    redisReply *r;
    int rc = KN_EXIT_OK;

    if (parse(argc, argv, &o) < 0 || o.npos != 0) {
        staff_usage();
        return KN_EXIT_USAGE;
    }
    if (!login_arg_ok(o.login))
        return KN_EXIT_USAGE;
    if (o.name != NULL && kn_gaiji_check(o.name, KN_GAIJI_NAME, "--name",
                                         "--name", &en, &ja, NULL, NULL) < 0) {
        fprintf(stderr, "kairanctl: %s\n", en);
        free(en);
        free(ja);
        return KN_EXIT_USAGE;
    }
    if (o.name == NULL || !kn_staff_name_valid(o.name)) {
        fprintf(stderr, "kairanctl: --name is required: the person's name, "
                        "1-100 bytes of text (e.g. \"佐藤 一郎\")\n");
        return KN_EXIT_USAGE;
    }
    if (o.role == NULL || role_groups_ok(o.role, o.groups) < 0)
        return KN_EXIT_USAGE;
    if (o.email != NULL && (sealed = seal_email(o.email, &rc)) == NULL)
        return rc;
    if (kn_cli_audit_ready() < 0) {
        free(sealed);
        return KN_EXIT_FAIL;
    }

    rc = kn_staff_add(kn_cli_redis(), kn_cli_cfg.redis_prefix, o.tenant,
                      o.login, o.name, o.role, o.groups, pw);
    if (rc == KN_EEXIST) {
        free(sealed);
        fprintf(stderr,
                "kairanctl: tenant %s already has a staff account '%s'; "
                "choose another login (or staff reset / role it)\n",
                o.tenant, o.login);
        return KN_EXIT_FAIL;
    }
    if (rc < 0) {
        free(sealed);
        fprintf(stderr,
                "kairanctl: Redis failed while adding %s; run the "
                "command again\n",
                o.login);
        return KN_EXIT_UNKNOWN;
    }
    if (sealed != NULL) {
        /* The account's own address ("send to me"), sealed. */
        k = kn_key_staff(kn_cli_cfg.redis_prefix, o.tenant, o.login);
        r = kn_cli_cmd("HSET %s email %s", k, sealed);
        freeReplyObject(r);
        free(k);
        free(sealed);
    }
    op_log("staff.add", o.tenant, o.login, o.role);
    printf("staff account %s added to tenant %s (%s); its initial password "
           "(shown once, to be changed at the first login):\n%s\n",
           o.login, o.tenant, o.role, pw);
    memset(pw, 0, sizeof(pw));
    return KN_EXIT_OK;
}

static const char *hs(const redisReply *r, size_t i)
{
    return r != NULL && r->type == REDIS_REPLY_ARRAY && i < r->elements &&
                   r->element[i]->type == REDIS_REPLY_STRING
               ? r->element[i]->str
               : "";
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int st_list(int argc, char **argv)
{
    struct opts o;
    char *k, **logins;
    redisReply *r;
    json_t *arr = json_array();
    size_t n;

    if (parse(argc, argv, &o) < 0 || o.npos != 0) {
        json_decref(arr);
        staff_usage();
        return KN_EXIT_USAGE;
    }
    k = kn_key_staffs(kn_cli_cfg.redis_prefix, o.tenant);
    r = kn_cli_cmd("SMEMBERS %s", k);
    free(k);
    n = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
    logins = kn_xcalloc(n + 1, sizeof(*logins));
    for (size_t i = 0; i < n; i++)
        logins[i] = r->element[i]->str;
    qsort(logins, n, sizeof(*logins), cmp_str);
    if (!o.json)
        printf("%-20s  %-13s  %-11s  %-4s  %s\n", "LOGIN", "ROLE", "STATE",
               "TOTP", "NAME [GROUPS]");
    for (size_t i = 0; i < n; i++) {
        redisReply *h;
        const char *state;
        int totp;
        k = kn_key_staff(kn_cli_cfg.redis_prefix, o.tenant, logins[i]);
        h = kn_cli_cmd(
            "HMGET %s role name groups active must_change totp email", k);
        free(k);
        state = strcmp(hs(h, 3), "1") != 0   ? "deactivated"
                : strcmp(hs(h, 4), "1") == 0 ? "new"
                                             : "active";
        totp = hs(h, 5)[0] != '\0';
        if (o.json) {
            json_t *x = json_object();
            json_object_set_new(x, "login", json_string(logins[i]));
            json_object_set_new(x, "role", json_string(hs(h, 0)));
            json_object_set_new(x, "name", json_string(hs(h, 1)));
            json_object_set_new(x, "groups", json_string(hs(h, 2)));
            json_object_set_new(x, "state", json_string(state));
            json_object_set_new(x, "totp", json_boolean(totp));
            /* Whether a "send to me" address is set; never the address. */
            json_object_set_new(x, "email", json_boolean(hs(h, 6)[0] != '\0'));
            json_array_append_new(arr, x);
        } else {
            char *nm = kn_text_safe(hs(h, 1)), *gs = kn_text_safe(hs(h, 2));
            printf("%-20s  %-13s  %-11s  %-4s  %s%s%s%s\n", logins[i], hs(h, 0),
                   state, totp ? "yes" : "no", nm, gs[0] ? " [" : "", gs,
                   gs[0] ? "]" : "");
            free(nm);
            free(gs);
        }
        freeReplyObject(h);
    }
    if (o.json) {
        char *s = json_dumps(arr, JSON_INDENT(2)), *safe = kn_text_json(s);
        printf("%s\n", safe);
        free(safe);
        free(s);
    }
    json_decref(arr);
    free(logins);
    freeReplyObject(r);
    return KN_EXIT_OK;
}

/* deactivate, reset and role: the account must exist. */
static int one_account(int argc, char **argv, struct opts *o, int npos)
{
    if (parse(argc, argv, o) < 0 || o->npos != npos) {
        staff_usage();
        return KN_EXIT_USAGE;
    }
    if (!login_arg_ok(o->pos[0]))
        return KN_EXIT_USAGE;
    if (!exists(o->tenant, o->pos[0])) {
        fprintf(stderr,
                "kairanctl: tenant %s has no staff account '%s' "
                "(kairanctl staff list --tenant %s)\n",
                o->tenant, o->pos[0], o->tenant);
        return KN_EXIT_UNKNOWN;
    }
    if (kn_cli_audit_ready() < 0)
        return KN_EXIT_FAIL;
    return KN_EXIT_OK;
}

/* A change made (queue/staff.h), or exit 3 when Redis failed. */
static void changed(int rc, const char *login)
{
    if (rc < 0) {
        fprintf(stderr,
                "kairanctl: Redis failed while changing %s (or "
                "ending its sessions); run the command again\n",
                login);
        exit(KN_EXIT_UNKNOWN);
    }
}

static int st_deactivate(int argc, char **argv)
{
    struct opts o;
    int rc = one_account(argc, argv, &o, 1);
    if (rc != KN_EXIT_OK)
        return rc;
    changed(kn_staff_deactivate(kn_cli_redis(), kn_cli_cfg.redis_prefix,
                                o.tenant, o.pos[0]),
            o.pos[0]);
    op_log("staff.deactivate", o.tenant, o.pos[0], NULL);
    printf("staff account %s of tenant %s deactivated; its sessions ended\n",
           o.pos[0], o.tenant);
    return KN_EXIT_OK;
}

static int st_reset(int argc, char **argv)
{
    struct opts o;
    char pw[21];
    int rc = one_account(argc, argv, &o, 1);
    if (rc != KN_EXIT_OK)
        return rc;
    changed(kn_staff_reset(kn_cli_redis(), kn_cli_cfg.redis_prefix, o.tenant,
                           o.pos[0], pw),
            o.pos[0]);
    op_log("staff.reset", o.tenant, o.pos[0], NULL);
    printf("password of %s (tenant %s) reset; its sessions ended; the new "
           "initial password (shown once, to be changed at the next "
           "login):\n%s\n",
           o.pos[0], o.tenant, pw);
    memset(pw, 0, sizeof(pw));
    return KN_EXIT_OK;
}

static int st_role(int argc, char **argv)
{
    struct opts o;
    int rc = one_account(argc, argv, &o, 2);
    if (rc != KN_EXIT_OK)
        return rc;
    if (role_groups_ok(o.pos[1], o.groups) < 0)
        return KN_EXIT_USAGE;
    changed(kn_staff_set_role(kn_cli_redis(), kn_cli_cfg.redis_prefix, o.tenant,
                              o.pos[0], o.pos[1], o.groups),
            o.pos[0]);
    op_log("staff.role", o.tenant, o.pos[0], o.pos[1]);
    printf("staff account %s of tenant %s is now %s; its sessions ended\n",
           o.pos[0], o.tenant, o.pos[1]);
    return KN_EXIT_OK;
}

/* staff email: set (or with "" remove) the account's own address. */
static int st_email(int argc, char **argv)
{
    struct opts o;
    char *k, *sealed = NULL;
    redisReply *r;
    int rc = one_account(argc, argv, &o, 2);
    if (rc != KN_EXIT_OK)
        return rc;
    if (o.pos[1][0] != '\0' && (sealed = seal_email(o.pos[1], &rc)) == NULL)
        return rc;
    k = kn_key_staff(kn_cli_cfg.redis_prefix, o.tenant, o.pos[0]);
    if (sealed != NULL)
        r = kn_cli_cmd("HSET %s email %s", k, sealed);
    else
        r = kn_cli_cmd("HDEL %s email", k);
    freeReplyObject(r);
    free(k);
    op_log(sealed != NULL ? "staff.email" : "staff.email_remove", o.tenant,
           o.pos[0], NULL);
    free(sealed);
    if (o.pos[1][0] != '\0')
        printf("staff account %s of tenant %s: e-mail address set (stored "
               "encrypted)\n",
               o.pos[0], o.tenant);
    else
        printf("staff account %s of tenant %s: e-mail address removed\n",
               o.pos[0], o.tenant);
    return KN_EXIT_OK;
}

/*
 * staff unlock: forget the account's failed logins (luntr, lspread and
 * every lfail of it), so that its owner can log in at once from a browser
 * without its device cookie.  Each one forgotten is a guess more for
 * whoever made them: for an owner who cannot wait, after a look at the
 * login log.  Locked device cookies stay locked (a new login gives that
 * browser a new one); the TOTP lock stays.
 */
static int st_unlock(int argc, char **argv)
{
    struct opts o;
    char *k, *pattern, *cursor;
    long long n = 0;
    redisReply *r;
    int rc = one_account(argc, argv, &o, 1);
    if (rc != KN_EXIT_OK)
        return rc;
    k = kn_key_login_untrusted(kn_cli_cfg.redis_prefix, o.tenant, o.pos[0]);
    r = kn_cli_cmd("DEL %s", k);
    n += r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    free(k);
    k = kn_key_login_spread(kn_cli_cfg.redis_prefix, o.tenant, o.pos[0]);
    freeReplyObject(kn_cli_cmd("DEL %s", k));
    free(k);
    /* lfail:<tenant>:<login>:<address>, every address (a checked login
     * holds no glob character) */
    k = kn_key_login_fail(kn_cli_cfg.redis_prefix, o.tenant, o.pos[0], "");
    pattern = kn_xasprintf("%s*", k);
    free(k);
    cursor = kn_xstrdup("0");
    do {
        r = kn_cli_cmd("SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        free(cursor);
        cursor = kn_xstrdup(r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            redisReply *d =
                kn_cli_cmd("DEL %s", r->element[1]->element[i]->str);
            n += d->type == REDIS_REPLY_INTEGER ? d->integer : 0;
            freeReplyObject(d);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    free(cursor);
    free(pattern);
    op_log("staff.unlock", o.tenant, o.pos[0], NULL);
    printf("staff account %s of tenant %s: login locks lifted (%lld)\n",
           o.pos[0], o.tenant, n);
    return KN_EXIT_OK;
}

static int run_staff(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } subs[] = {
        {"add", st_add},      {"list", st_list}, {"deactivate", st_deactivate},
        {"reset", st_reset},  {"role", st_role}, {"email", st_email},
        {"unlock", st_unlock}};
    for (size_t i = 0; argc >= 2 && i < sizeof(subs) / sizeof(subs[0]); i++) {
        if (strcmp(argv[1], subs[i].name) == 0)
            return subs[i].run(argc - 1, argv + 1);
    }
    staff_usage();
    return KN_EXIT_USAGE;
}

const struct kn_cli_command kn_cli_cmd_staff = {
    "staff",
    "  staff add --tenant T --login L --name NAME --role R [--groups a,b]\n"
    "            [--email ADDR]\n"
    "                         a staff account (initial password printed "
    "once)\n"
    "  staff list --tenant T [--json]\n"
    "  staff deactivate|reset --tenant T LOGIN\n"
    "  staff role --tenant T LOGIN ROLE [--groups a,b]\n"
    "  staff email --tenant T LOGIN ADDR   its own address (\"send to "
    "me\"); \"\" removes it\n",
    1, run_staff};
