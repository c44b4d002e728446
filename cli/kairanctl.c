/*
 * kairanctl - the operator's tool on the server.  It talks to Redis
 * directly and holds the key, so it has every right (like redis-cli).
 *
 *   kairanctl -c FILE submit FILE|-      prints only the broadcast id
 *   kairanctl -c FILE status [--json]
 *   kairanctl -c FILE watch ID
 *   kairanctl -c FILE cancel ID
 *   kairanctl -c FILE dlq list [--json]
 *   kairanctl -c FILE dlq retry ENTRY|--all
 *   kairanctl keygen FILE
 *
 * Exit codes (every command): 0 success; 1 failure (invalid broadcast;
 * for watch: the broadcast ended with something failed, expired,
 * cancelled or rejected); 2 usage; 3 unknown id or Redis unreachable.
 */
#include <errno.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/argv.h"
#include "common/buf.h"
#include "common/file.h"
#include "common/kn.h"
#include "common/log.h"
#include "common/seal.h"
#include "common/text.h"
#include "queue/keys.h"
#include "config/config.h"
#include "model/broadcast.h"
#include "model/audit.h"
#include "queue/scripts.h"
#include "queue/sentinel.h"
#include "queue/submit.h"

#ifndef KN_VERSION
#define KN_VERSION "0.5.0"
#endif

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_UNKNOWN = 3 };

int kn_cli_tempfail_exit;

struct kn_config kn_cli_cfg;
#define cfg kn_cli_cfg
static const char *cfg_path = "/etc/kairan/kairan.conf";
static redisContext *rc_;

/* The commands of their own files (cli.h), in the order --help lists
 * them; submit, status, watch, cancel, dlq and keygen are this file's. */
static const struct kn_cli_command *const commands[] = {
    &kn_cli_cmd_purge,   &kn_cli_cmd_tenant,   &kn_cli_cmd_recipients,
    &kn_cli_cmd_groups,  &kn_cli_cmd_rekey,    &kn_cli_cmd_keys,
    &kn_cli_cmd_report,  &kn_cli_cmd_drill,    &kn_cli_cmd_token,
    &kn_cli_cmd_migrate, &kn_cli_cmd_category, &kn_cli_cmd_staff,
    &kn_cli_cmd_bounce,  &kn_cli_cmd_supp,     &kn_cli_cmd_dlq,
};

static void usage(FILE *f)
{
    fprintf(f, "usage: kairanctl [-c FILE] COMMAND ...\n"
               "  submit FILE|-          submit a broadcast (JSON); prints its "
               "id\n"
               "  status [--json]        queues, retries, DLQ, broadcasts\n"
               "  watch ID               progress until the broadcast ends\n"
               "  cancel ID              stop a broadcast\n"
               "  keygen FILE            create a new key file (mode 0600)\n");
    for (size_t i = 0; i < KN_ARRAY_SIZE(commands); i++)
        fprintf(f, "%s", commands[i]->usage);
    fprintf(f, "options: -c FILE (default /etc/kairan/kairan.conf), -h, -V\n"
               "exit: 0 ok, 1 failed, 2 usage, 3 unknown id, Redis "
               "unreachable, or a submit not confirmed by "
               "redis.wait_replicas replicas (its id printed)\n");
}

char *kn_cli_key(const char *fmt, ...)
{
    va_list ap;
    char *tail, *k;
    va_start(ap, fmt);
    if (vasprintf(&tail, fmt, ap) < 0)
        KN_PANIC("out of memory");
    va_end(ap);
    k = kn_xasprintf("%s%s", cfg.redis_prefix, tail);
    free(tail);
    return k;
}

/* Redis unreachable or the connection lost: 3, or the command's own
 * temporary-failure code (kairanctl bounce: 75). */
static int down_exit(void)
{
    return kn_cli_tempfail_exit ? kn_cli_tempfail_exit : EXIT_UNKNOWN;
}

/*
 * Connect (synchronously) or exit 3 with the reason.  With redis.sentinels
 * the primary is asked of the sentinels and checked (queue/sentinel.h);
 * during a failover that goes on for up to 15 s, until they name one.
 */
redisContext *kn_cli_redis(void)
{
    struct kn_sentinel *s;
    char why[512];
    if (rc_ != NULL)
        return rc_;
    s = kn_sentinel_new(&cfg);
    rc_ = kn_redis_connect_sync(&cfg, s, s != NULL ? 15000 : 3000, why,
                                sizeof(why));
    kn_sentinel_free(s);
    if (rc_ == NULL) {
        fprintf(stderr, "kairanctl: %s\n", why);
        exit(down_exit());
    }
    return rc_;
}

/* Run a command; exit 3 if Redis is gone.  Caller frees the reply. */
redisReply *kn_cli_cmd(const char *fmt, ...)
{
    va_list ap;
    redisReply *r;
    va_start(ap, fmt);
    r = redisvCommand(kn_cli_redis(), fmt, ap);
    va_end(ap);
    if (r == NULL) {
        fprintf(stderr, "kairanctl: Redis connection lost: %s\n", rc_->errstr);
        exit(down_exit());
    }
    return r;
}

redisReply *kn_cli_cmdargv(const struct kn_argv *a)
{
    redisReply *r =
        redisCommandArgv(kn_cli_redis(), a->n, (const char **)a->v, a->len);
    if (r == NULL) {
        fprintf(stderr, "kairanctl: Redis connection lost: %s\n", rc_->errstr);
        exit(down_exit());
    }
    return r;
}

/* EVAL a script with argv (keys first). */
redisReply *kn_cli_eval(const struct kn_redis_script *s, int nkeys,
                        struct kn_argv *a)
{
    struct kn_argv full;
    redisReply *r;
    kn_argv_init(&full);
    kn_argv_add(&full, "EVAL");
    kn_argv_add(&full, s->src);
    kn_argv_addi(&full, nkeys);
    kn_argv_extend(&full, a);
    r = redisCommandArgv(kn_cli_redis(), full.n, (const char **)full.v,
                         full.len);
    kn_argv_free(&full);
    if (r == NULL) {
        fprintf(stderr, "kairanctl: Redis connection lost: %s\n", rc_->errstr);
        exit(down_exit());
    }
    if (r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "kairanctl: Redis error in %s: %s\n", s->name, r->str);
        freeReplyObject(r);
        exit(kn_cli_tempfail_exit ? kn_cli_tempfail_exit : EXIT_FAIL);
    }
    return r;
}

static const char *hget(const redisReply *h, const char *k)
{
    for (size_t i = 0; h && h->type == REDIS_REPLY_ARRAY && i + 1 < h->elements;
         i += 2) {
        if (strcmp(h->element[i]->str, k) == 0)
            return h->element[i + 1]->str;
    }
    return NULL;
}

static long long hgeti(const redisReply *h, const char *k)
{
    const char *v = hget(h, k);
    return v ? strtoll(v, NULL, 10) : 0;
}

/* ---- submit ---- */

char *kn_cli_read_file(const char *path, size_t *len)
{
    char *buf;
    if (kn_file_read(path, 0, &buf, len) < 0)
        return NULL;
    return buf;
}

json_t *kn_cli_jtext(const char *s)
{
    char *t = kn_text_utf8(s ? s : "", s ? strlen(s) : 0);
    json_t *j = json_string(t);
    free(t);
    return j;
}

void kn_cli_print_json(json_t *v)
{
    char *s = json_dumps(v, JSON_INDENT(2)), *safe = kn_text_json(s);
    printf("%s\n", safe);
    free(safe);
    free(s);
}

json_t *kn_cli_safe_json(json_t *v)
{
    json_t *c, *x;
    const char *k;
    char *s;
    size_t i;
    if (json_is_string(v)) {
        s = kn_text_safe(json_string_value(v));
        c = json_string(s);
        free(s);
        return c;
    }
    if (json_is_array(v)) {
        c = json_array();
        json_array_foreach(v, i, x)
            json_array_append_new(c, kn_cli_safe_json(x));
        return c;
    }
    if (json_is_object(v)) {
        c = json_object();
        json_object_foreach(v, k, x)
        {
            s = kn_text_safe(k);
            json_object_set_new(c, s, kn_cli_safe_json(x));
            free(s);
        }
        return c;
    }
    return json_incref(v);
}

void kn_cli_audit_fields(const char *op, json_t *fields)
{
    char *actor = kn_audit_cli_actor();
    if (kn_audit_op(cfg.audit_dir, actor, op, fields) < 0)
        fprintf(stderr,
                "kairanctl: warning: cannot append to %s/"
                "operations.jsonl (retention.audit_dir)\n",
                cfg.audit_dir);
    free(actor);
}

void kn_cli_audit_op(const char *op, const char *bcast, const char *tenant)
{
    json_t *f = json_object();
    json_object_set_new(f, "broadcast",
                        bcast ? json_string(bcast) : json_null());
    json_object_set_new(f, "tenant",
                        tenant ? json_string(tenant) : json_null());
    json_object_set_new(f, "via", json_string("kairanctl"));
    kn_cli_audit_fields(op, f);
}

int kn_cli_audit_ready(void)
{
    if (kn_audit_ready(cfg.audit_dir) == 0)
        return 0;
    fprintf(stderr,
            "kairanctl: cannot write the operation log %s/operations.jsonl "
            "(retention.audit_dir): %s; nothing was changed (a change that "
            "cannot be logged is not made)\n",
            cfg.audit_dir, strerror(errno));
    return -1;
}

/*
 * redis.wait_replicas: WAIT until that many replicas have the submit, on
 * this connection (kairanctl's own, where the submit was written; WAIT
 * counts the replicas that have everything it wrote).  Returns EXIT_OK,
 * or EXIT_UNKNOWN (3) with the reason: the id is printed already, and
 * submitting again with the same "id" (key) is safe.
 */
static int wait_replicas(const char *name)
{
    long long want = cfg.redis_wait_replicas;
    long long ms = cfg.redis_wait_timeout_ms;
    int64_t budget = cfg.redis_wait_timeout_ms + cfg.redis_timeout_ms;
    struct timeval tv = {(time_t)(budget / 1000),
                         (suseconds_t)(budget % 1000) * 1000};
    redisReply *w;
    long long got = -1;

    if (want <= 0)
        return EXIT_OK;
    redisSetTimeout(kn_cli_redis(), tv);
    w = redisCommand(kn_cli_redis(), "WAIT %lld %lld", want, ms);
    if (w != NULL && w->type == REDIS_REPLY_INTEGER)
        got = w->integer;
    if (w != NULL)
        freeReplyObject(w);
    if (got >= want)
        return EXIT_OK;
    if (got < 0)
        fprintf(stderr,
                "kairanctl: broadcast %s was stored, but WAIT got no answer: "
                "it may not be on any replica yet; submit again with the "
                "same \"id\" (it is idempotent)\n",
                name);
    else
        fprintf(stderr,
                "kairanctl: broadcast %s was stored, but only %lld of %lld "
                "replicas confirmed it within %lld ms (redis.wait_replicas): "
                "a failover now could lose it; submit again with the same "
                "\"id\" (it is idempotent)\n",
                name, got, want, ms);
    return EXIT_UNKNOWN;
}

/* Send a large submit's transaction (queue/submit.h) pipelined; returns
 * EXEC's answer (an error if a command was refused while queued). */
static redisReply *submit_tx(const struct kn_submit_tx *tx)
{
    redisContext *c = kn_cli_redis();
    redisReply *last = NULL;
    for (size_t i = 0; i < tx->n; i++)
        if (redisAppendCommandArgv(c, tx->cmd[i].n, (const char **)tx->cmd[i].v,
                                   tx->cmd[i].len) != REDIS_OK) {
            fprintf(stderr, "kairanctl: out of memory\n");
            exit(EXIT_UNKNOWN);
        }
    for (size_t i = 0; i < tx->n; i++) {
        void *rep = NULL;
        if (redisGetReply(c, &rep) != REDIS_OK || rep == NULL) {
            fprintf(stderr, "kairanctl: Redis connection lost: %s\n",
                    c->errstr);
            exit(EXIT_UNKNOWN);
        }
        freeReplyObject(last);
        last = rep;
    }
    return last;
}

int kn_cli_submit_json(const char *json, size_t len)
{
    struct kn_limits lim = {cfg.max_subject, cfg.max_body, cfg.max_recipients,
                            cfg.default_ttl_ms, 0};
    struct kn_broadcast b;
    struct kn_keyring *kr = NULL;
    struct kn_argv a;
    struct kn_submit_tx tx;
    char err[1100], field[128];
    redisReply *whole;
    const redisReply *r;
    int rc, was_tx;

    rc = kn_broadcast_parse(json, len, &lim, &b, err, sizeof(err), field,
                            sizeof(field));
    if (rc < 0) {
        fprintf(stderr, "kairanctl: invalid broadcast: %s\n", err);
        return EXIT_FAIL;
    }
    if (kn_keyring_load(cfg.key_file, &kr, err, sizeof(err)) < 0) {
        fprintf(stderr, "kairanctl: security.key_file: %s\n", err);
        kn_broadcast_free(&b);
        return EXIT_FAIL;
    }
    if (kn_cli_audit_ready() < 0) {
        kn_broadcast_free(&b);
        kn_keyring_free(kr);
        return EXIT_FAIL;
    }
    b.id = kn_broadcast_new_id();
    if (b.sender == NULL)
        b.sender = kn_xstrdup("kairanctl");
    kn_argv_init(&a);
    /* Addresses are sealed here: plaintext never reaches Redis. */
    kn_broadcast_submit_call(&b, kr, cfg.redis_prefix, NULL, &a, &tx);
    was_tx = tx.n > 0;
    if (was_tx) {
        whole = submit_tx(&tx);
        kn_submit_tx_free(&tx);
    } else {
        whole = kn_cli_eval(&kn_script_submit, KN_SUBMIT_NKEYS, &a);
    }
    kn_argv_free(&a);
    r = was_tx ? kn_submit_tx_answer(whole) : whole;
    if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        char *e = kn_text_safe(r->str);
        int oom = strncmp(r->str, "OOM", 3) == 0 ||
                  strncmp(r->str, "EXECABORT", 9) == 0;
        fprintf(stderr, "kairanctl: Redis error in submit: %s%s\n", e,
                oom ? " (Redis refused to store it, out of memory?; nothing "
                      "was stored: submit again when it has room)"
                    : "");
        free(e);
        freeReplyObject(whole);
        kn_broadcast_free(&b);
        kn_keyring_free(kr);
        return EXIT_FAIL;
    }
    /* {1, name} stored; {0, name} of the tenant's broadcast that already
     * has this key: print that one (submitting again is safe). */
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[1]->type != REDIS_REPLY_STRING) {
        fprintf(stderr, "kairanctl: unexpected answer from the submit "
                        "script\n");
        freeReplyObject(whole);
        kn_broadcast_free(&b);
        kn_keyring_free(kr);
        return EXIT_FAIL;
    }
    if (r->element[0]->integer == 2) {
        char *cat = kn_text_safe(b.category);
        fprintf(stderr,
                "kairanctl: invalid broadcast: category: \"%s\" is not one "
                "of tenant %s's categories: add it with kairanctl category "
                "add --tenant %s NAME, or use notice, event, emergency or "
                "drill (kairanctl category list --tenant %s)\n",
                cat, b.tenant, b.tenant, b.tenant);
        free(cat);
        freeReplyObject(whole);
        kn_broadcast_free(&b);
        kn_keyring_free(kr);
        return EXIT_FAIL;
    }
    if (r->element[0]->integer == 1)
        kn_cli_audit_op("broadcast.submit", b.id, b.tenant);
    printf("%s\n", r->element[1]->str);
    rc = wait_replicas(r->element[1]->str);
    freeReplyObject(whole);
    kn_broadcast_free(&b);
    kn_keyring_free(kr);
    return rc;
}

static int do_submit(int argc, char **argv)
{
    size_t len = 0;
    char *json;
    int rc;

    if (argc != 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    json = kn_cli_read_file(argv[1], &len);
    if (json == NULL) {
        fprintf(stderr, "kairanctl: cannot read %s\n", argv[1]);
        return EXIT_USAGE;
    }
    rc = kn_cli_submit_json(json, len);
    free(json);
    return rc;
}

/* ---- status ---- */

static int do_status(int argc, char **argv)
{
    int as_json = argc > 1 && strcmp(argv[1], "--json") == 0;
    json_t *root = json_object(), *queues = json_array(), *rej = json_array(),
           *act = json_array();
    redisReply *r, *ids;
    int64_t now = kn_now_ms();
    char *k;

    if (argc > 2 || (argc == 2 && !as_json)) {
        usage(stderr);
        return EXIT_USAGE;
    }
    for (int i = 0; i < KN_QUEUE_STREAMS; i++) {
        const char *name = kn_queue_stream_name(i);
        long long len, pending = 0, oldest = 0;
        json_t *q = json_object();
        char ch[16];
        k = kn_cli_key("q:%s", name);
        r = kn_cli_cmd("XLEN %s", k);
        len = r->integer;
        freeReplyObject(r);
        r = kn_cli_cmd("XPENDING %s kairand", k);
        if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1)
            pending = r->element[0]->integer;
        freeReplyObject(r);
        r = kn_cli_cmd("XRANGE %s - + COUNT 1", k);
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 1)
            oldest = now - strtoll(r->element[0]->element[0]->str, NULL, 10);
        freeReplyObject(r);
        free(k);
        snprintf(ch, sizeof(ch), "%.*s", (int)(strchr(name, ':') - name), name);
        json_object_set_new(q, "channel", json_string(ch));
        json_object_set_new(q, "priority", json_string(strchr(name, ':') + 1));
        json_object_set_new(q, "depth", json_integer(len - pending));
        json_object_set_new(q, "pending", json_integer(pending));
        json_object_set_new(q, "oldest_age_ms",
                            json_integer(oldest > 0 ? oldest : 0));
        json_array_append_new(queues, q);
    }
    json_object_set_new(root, "queues", queues);
    k = kn_cli_key("retry");
    r = kn_cli_cmd("ZCARD %s", k);
    json_object_set_new(root, "retry", json_integer(r->integer));
    freeReplyObject(r);
    free(k);
    k = kn_cli_key("dlq");
    r = kn_cli_cmd("XLEN %s", k);
    json_object_set_new(root, "dlq", json_integer(r->integer));
    freeReplyObject(r);
    free(k);

    k = kn_cli_key("active");
    ids = kn_cli_cmd("ZRANGE %s 0 49", k);
    free(k);
    for (size_t i = 0; ids->type == REDIS_REPLY_ARRAY && i < ids->elements;
         i++) {
        json_t *o = json_object();
        k = kn_key_bc(kn_cli_cfg.redis_prefix, ids->element[i]->str, "");
        r = kn_cli_cmd("HGETALL %s", k);
        free(k);
        json_object_set_new(o, "id", kn_cli_jtext(ids->element[i]->str));
        json_object_set_new(
            o, "status",
            kn_cli_jtext(hget(r, "status") ? hget(r, "status") : "?"));
        json_object_set_new(o, "jobs", json_integer(hgeti(r, "jobs")));
        json_object_set_new(o, "final", json_integer(hgeti(r, "final")));
        json_array_append_new(act, o);
        freeReplyObject(r);
    }
    freeReplyObject(ids);
    json_object_set_new(root, "active", act);

    k = kn_cli_key("rejected");
    ids = kn_cli_cmd("ZREVRANGE %s 0 19", k);
    free(k);
    for (size_t i = 0; ids->type == REDIS_REPLY_ARRAY && i < ids->elements;
         i++) {
        json_t *o = json_object();
        k = kn_key_bc(kn_cli_cfg.redis_prefix, ids->element[i]->str, "");
        r = kn_cli_cmd("HMGET %s reason created_ms", k);
        free(k);
        json_object_set_new(o, "id", kn_cli_jtext(ids->element[i]->str));
        json_object_set_new(o, "reason", kn_cli_jtext(r->element[0]->str));
        json_object_set_new(
            o, "rejected_ms",
            json_integer(r->element[1]->str
                             ? strtoll(r->element[1]->str, NULL, 10)
                             : 0));
        json_array_append_new(rej, o);
        freeReplyObject(r);
    }
    freeReplyObject(ids);
    json_object_set_new(root, "rejected", rej);

    {
        /* Broadcasts per category (emergency, notice, drill...). */
        json_t *cats = json_object();
        k = kn_cli_key("categories");
        r = kn_cli_cmd("HGETALL %s", k);
        free(k);
        for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements;
             i += 2) {
            /* a category is the producer's word: kept whatever its bytes */
            char *cat = kn_text_utf8(r->element[i]->str, r->element[i]->len);
            json_object_set_new(cats, cat,
                                json_integer(atoll(r->element[i + 1]->str)));
            free(cat);
        }
        freeReplyObject(r);
        json_object_set_new(root, "categories", cats);
    }
    {
        /* The shared rate-limit buckets (dispatcher/worker.c): tokens at
         * hand and whether a 429 slowed the bucket down. */
        static const char *const buckets[] = {
            "line:multicast", "line:push", "push:fcm", "push:apns", "sendgrid"};
        json_t *rate = json_object();
        for (size_t i = 0; i < KN_ARRAY_SIZE(buckets); i++) {
            json_t *o = json_object();
            long long slow;
            k = kn_cli_key("rate:%s", buckets[i]);
            r = kn_cli_cmd("HMGET %s tokens slow_until", k);
            free(k);
            slow = r->element[1]->str ? atoll(r->element[1]->str) : 0;
            json_object_set_new(
                o, "tokens",
                json_real(r->element[0]->str ? atof(r->element[0]->str) : -1));
            json_object_set_new(o, "slowed", json_boolean(slow > now));
            json_object_set_new(rate, buckets[i], o);
            freeReplyObject(r);
        }
        json_object_set_new(root, "rate", rate);
    }

    if (as_json) {
        kn_cli_print_json(root);
    } else {
        size_t i;
        json_t *q, *shown = kn_cli_safe_json(root);
        /* outside strings (ids, reasons, categories) shown, not obeyed */
        json_decref(root);
        root = shown;
        act = json_object_get(root, "active");
        rej = json_object_get(root, "rejected");
        printf("%-8s %-8s %10s %10s %12s\n", "CHANNEL", "PRIO", "DEPTH",
               "PENDING", "OLDEST");
        json_array_foreach(json_object_get(root, "queues"), i, q)
        {
            printf("%-8s %-8s %10lld %10lld %10.1fs\n",
                   json_string_value(json_object_get(q, "channel")),
                   json_string_value(json_object_get(q, "priority")),
                   json_integer_value(json_object_get(q, "depth")),
                   json_integer_value(json_object_get(q, "pending")),
                   json_integer_value(json_object_get(q, "oldest_age_ms")) /
                       1000.0);
        }
        printf("retry: %lld   dlq: %lld\n",
               json_integer_value(json_object_get(root, "retry")),
               json_integer_value(json_object_get(root, "dlq")));
        json_array_foreach(act, i, q)
        {
            printf("active: %s %s %lld/%lld\n",
                   json_string_value(json_object_get(q, "id")),
                   json_string_value(json_object_get(q, "status")),
                   json_integer_value(json_object_get(q, "final")),
                   json_integer_value(json_object_get(q, "jobs")));
        }
        {
            const char *cat;
            json_t *v;
            json_object_foreach(json_object_get(root, "categories"), cat, v)
                printf("category %s: %lld broadcasts\n", cat,
                       json_integer_value(v));
        }
        {
            const char *bn;
            json_t *v;
            json_object_foreach(json_object_get(root, "rate"), bn, v)
            {
                double t = json_real_value(json_object_get(v, "tokens"));
                if (t < 0)
                    continue; /* never used */
                printf("rate %s: %.0f tokens%s\n", bn, t,
                       json_is_true(json_object_get(v, "slowed"))
                           ? " (slowed down after a 429)"
                           : "");
            }
        }
        json_array_foreach(rej, i, q)
        {
            printf("rejected: %s: %s\n",
                   json_string_value(json_object_get(q, "id")),
                   json_string_value(json_object_get(q, "reason")));
        }
    }
    json_decref(root);
    return EXIT_OK;
}

/* ---- watch ---- */

static long long count_state(const redisReply *h, const char *state)
{
    long long n = 0;
    for (size_t i = 0; h && i + 1 < h->elements; i += 2) {
        const char *f = h->element[i]->str;
        size_t fl = strlen(f), sl = strlen(state);
        if (strncmp(f, "n:", 2) == 0 && fl > sl &&
            strcmp(f + fl - sl, state) == 0 && f[fl - sl - 1] == ':')
            n += kn_bc_count(h->element[i + 1]->str);
    }
    return n;
}

static int do_watch(int argc, char **argv)
{
    int tty = isatty(STDOUT_FILENO);
    char *k, last[256] = "";
    struct timespec ts = {0, 200 * 1000 * 1000};
    int64_t last_print = 0;

    if (argc != 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    k = kn_key_bc(kn_cli_cfg.redis_prefix, argv[1], "");
    for (;;) {
        redisReply *h = kn_cli_cmd("HGETALL %s", k);
        const char *st = hget(h, "status");
        long long jobs, del, fail, exp, can, fin;
        int ended;
        char line[256];
        if (st == NULL) {
            fprintf(stderr, "kairanctl: no broadcast %s\n", argv[1]);
            freeReplyObject(h);
            free(k);
            return EXIT_UNKNOWN;
        }
        jobs = kn_bc_count(hget(h, "jobs"));
        fin = kn_bc_count(hget(h, "final"));
        del = count_state(h, "delivered");
        fail = count_state(h, "failed");
        exp = count_state(h, "expired");
        can = count_state(h, "cancelled");
        ended = hget(h, "done_ms") != NULL || strcmp(st, "rejected") == 0;
        if (strcmp(st, "rejected") == 0) {
            char *why = kn_text_safe(hget(h, "reason"));
            snprintf(line, sizeof(line), "%s rejected: %s", argv[1], why);
            free(why);
        } else {
            int pct = jobs > 0 ? (int)((fin < jobs ? fin : jobs) * 100 / jobs)
                               : (ended ? 100 : 0);
            char bar[41];
            int fill = pct * 40 / 100;
            memset(bar, '#', (size_t)fill);
            memset(bar + fill, '.', (size_t)(40 - fill));
            bar[40] = '\0';
            snprintf(line, sizeof(line),
                     "%s [%s] %3d%% %s delivered %lld failed %lld expired "
                     "%lld cancelled %lld of %lld",
                     argv[1], bar, pct, st, del, fail, exp, can, jobs);
        }
        if (tty) {
            printf("\r%s", line);
            fflush(stdout);
        } else if (strcmp(line, last) != 0 &&
                   (ended || kn_mono_ms() - last_print >= 1000)) {
            printf("%s\n", line);
            fflush(stdout);
            last_print = kn_mono_ms();
            snprintf(last, sizeof(last), "%s", line);
        }
        if (ended) {
            int ok = strcmp(st, "rejected") != 0 &&
                     strcmp(st, "cancelled") != 0 && fail == 0 && exp == 0 &&
                     can == 0;
            if (tty)
                printf("\n");
            freeReplyObject(h);
            free(k);
            return ok ? EXIT_OK : EXIT_FAIL;
        }
        freeReplyObject(h);
        nanosleep(&ts, NULL);
    }
}

/* ---- cancel ---- */

static int do_cancel(int argc, char **argv)
{
    struct kn_argv a;
    redisReply *r;
    int rc;
    if (argc != 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (kn_cli_audit_ready() < 0)
        return EXIT_FAIL;
    kn_argv_init(&a);
    kn_argv_take(&a, kn_key_bc(kn_cli_cfg.redis_prefix, argv[1], ""));
    kn_argv_take(&a, kn_cli_key("active"));
    kn_argv_add(&a, argv[1]);
    kn_argv_addi(&a, kn_now_ms());
    r = kn_cli_eval(&kn_script_cancel, 2, &a);
    kn_argv_free(&a);
    if (r->type != REDIS_REPLY_STRING || r->str[0] == '\0') {
        fprintf(stderr, "kairanctl: no broadcast %s\n", argv[1]);
        rc = EXIT_UNKNOWN;
    } else if (strcmp(r->str, "cancelled") == 0) {
        redisReply *t;
        char *k = kn_key_bc(kn_cli_cfg.redis_prefix, argv[1], "");
        t = kn_cli_cmd("HGET %s tenant", k);
        free(k);
        kn_cli_audit_op("broadcast.cancel", argv[1],
                        t->type == REDIS_REPLY_STRING ? t->str : NULL);
        freeReplyObject(t);
        printf("%s cancelled\n", argv[1]);
        rc = EXIT_OK;
    } else {
        fprintf(stderr, "kairanctl: %s is already %s\n", argv[1],
                strncmp(r->str, "already:", 8) == 0 ? r->str + 8 : r->str);
        rc = EXIT_FAIL;
    }
    freeReplyObject(r);
    return rc;
}

static const struct kn_cli_command *find_command(const char *name)
{
    for (size_t i = 0; i < KN_ARRAY_SIZE(commands); i++) {
        if (strcmp(commands[i]->name, name) == 0)
            return commands[i];
    }
    return NULL;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    int c, rc;
    const char *sub;
    const struct kn_cli_command *c_;

    while ((c = getopt_long(argc, argv, "+c:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            cfg_path = optarg;
            break;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        case 'V':
            printf("kairanctl %s\n", KN_VERSION);
            return EXIT_OK;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    sub = argv[optind];
    argc -= optind;
    argv += optind;
    /* "kairanctl CMD ... --help" is the help, never an argument: without
     * this, "keygen --help" made a key file named --help. */
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return EXIT_OK;
        }
    }
    if (strcmp(sub, "keygen") == 0) {
        if (argc != 2) {
            usage(stderr);
            return EXIT_USAGE;
        }
        rc = kn_keyfile_generate(argv[1]);
        if (rc < 0) {
            fprintf(stderr, "kairanctl: cannot create %s: %s\n", argv[1],
                    kn_strerror(rc));
            return EXIT_FAIL;
        }
        return EXIT_OK;
    }
    c_ = find_command(sub);
    if (c_ != NULL && !c_->needs_config)
        return c_->run(argc, argv);
    if (kn_config_load(&cfg, cfg_path, stderr) < 0)
        return EXIT_USAGE;
    if (strcmp(sub, "submit") == 0)
        rc = do_submit(argc, argv);
    else if (strcmp(sub, "status") == 0)
        rc = do_status(argc, argv);
    else if (strcmp(sub, "watch") == 0)
        rc = do_watch(argc, argv);
    else if (strcmp(sub, "cancel") == 0)
        rc = do_cancel(argc, argv);
    else if ((c_ = find_command(sub)) != NULL)
        rc = c_->run(argc, argv);
    else {
        fprintf(stderr, "kairanctl: unknown command '%s'\n", sub);
        usage(stderr);
        rc = EXIT_USAGE;
    }
    if (rc_ != NULL)
        redisFree(rc_);
    kn_config_free(&cfg);
    return rc;
}
