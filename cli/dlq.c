/*
 * dlq.c - kairanctl dlq: the dead-lettered jobs listed, and sent again by
 * an operator's decision (queue/lua/dlq_retry.lua).  A DLQ entry is what
 * anyone with Redis access could have written, so an entry is sent again
 * only when its job, its fields and its recipients agree.
 */
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/argv.h"
#include "common/buf.h"
#include "common/kn.h"
#include "common/text.h"
#include "model/broadcast.h"
#include "model/job.h"
#include "queue/keys.h"
#include "queue/scripts.h"

static const char *efield(const redisReply *e, const char *f)
{
    const redisReply *kv = e->element[1];
    for (size_t i = 0; i + 1 < kv->elements; i += 2) {
        if (strcmp(kv->element[i]->str, f) == 0)
            return kv->element[i + 1]->str;
    }
    return NULL;
}

static int dlq_list(int as_json)
{
    char *k = kn_cli_key("dlq");
    redisReply *r = kn_cli_cmd("XRANGE %s - + COUNT 1000", k);
    json_t *arr = json_array();
    free(k);
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *e = r->element[i];
        const char *f = efield(e, "field"), *ms = efield(e, "failed_ms");
        json_t *o = json_object();
        char ch[16] = "";
        if (f != NULL && strchr(f, ':'))
            snprintf(ch, sizeof(ch), "%.*s", (int)(strchr(f, ':') - f), f);
        json_object_set_new(o, "entry", kn_cli_jtext(e->element[0]->str));
        json_object_set_new(o, "broadcast", kn_cli_jtext(efield(e, "bc")));
        json_object_set_new(o, "channel", kn_cli_jtext(ch));
        json_object_set_new(o, "reason", kn_cli_jtext(efield(e, "reason")));
        json_object_set_new(o, "attempts",
                            json_integer(efield(e, "attempts")
                                             ? atoll(efield(e, "attempts"))
                                             : 0));
        json_object_set_new(o, "failed_ms", json_integer(ms ? atoll(ms) : 0));
        json_array_append_new(arr, o);
        if (!as_json) {
            char t[48],
                *bc = kn_text_safe(efield(e, "bc") ? efield(e, "bc") : "-"),
                *why = kn_text_safe(efield(e, "reason")),
                *n = kn_text_safe(efield(e, "attempts") ? efield(e, "attempts")
                                                        : "-");
            printf("%s  %s  %s  attempts=%s  %s  %s\n", e->element[0]->str,
                   kn_time_jst(ms ? atoll(ms) : 0, t, sizeof(t)), bc, n, ch,
                   why);
            free(bc);
            free(why);
            free(n);
        }
    }
    if (as_json)
        kn_cli_print_json(arr);
    json_decref(arr);
    freeReplyObject(r);
    return KN_EXIT_OK;
}

/* 1 if q names one of the job streams (never a key made of a stored
 * value). */
static int known_queue(const char *q)
{
    for (int i = 0; q != NULL && i < KN_QUEUE_STREAMS; i++) {
        if (strcmp(q, kn_queue_stream_name(i)) == 0)
            return 1;
    }
    return 0;
}

/* A recipient id as dlq_retry pairs it with a field: not empty, no
 * comma (the list's separator). */
static int plain_rcpt(const json_t *v)
{
    const char *s = json_string_value(v);
    return s != NULL && s[0] != '\0' && strchr(s, ',') == NULL;
}

/* The number of comma-separated parts of s (none empty), or -1. */
static long count_parts(const char *s)
{
    long n = 1;
    if (s[0] == '\0' || s[0] == ',')
        return -1;
    for (; *s != '\0'; s++) {
        if (*s == ',' && (s[1] == ',' || s[1] == '\0'))
            return -1;
        n += *s == ',';
    }
    return n;
}

/*
 * Send one DLQ entry again; returns 1 if re-queued.  The entry is what
 * anyone with Redis access could have written: its job must name a known
 * queue, the entry's broadcast, and as many plain recipients as the entry
 * has fields, else it is left in the DLQ with the reason.  An entry whose
 * message was sent but whose result could not be recorded is not sent
 * again.
 */
static int dlq_retry_one(const redisReply *e)
{
    const char *id = e->element[0]->str, *bc = efield(e, "bc"),
               *f = efield(e, "field"), *job = efield(e, "job"),
               *why = efield(e, "reason");
    static const char unrecorded[] = "cannot record the result (";
    json_t *j, *r0, *b;
    struct kn_argv a;
    redisReply *r;
    const char *q, *bad = NULL;
    struct kn_buf rl = KN_BUF_INIT;
    long nf;
    int ok;
    if (bc == NULL || f == NULL || job == NULL ||
        (j = json_loads(job, 0, NULL)) == NULL) {
        fprintf(stderr,
                "kairanctl: %s is not a delivery job; left in the DLQ\n", id);
        return 0;
    }
    if (why != NULL && strncmp(why, unrecorded, sizeof(unrecorded) - 1) == 0 &&
        strncmp(why + sizeof(unrecorded) - 1, "failed)", 7) != 0) {
        fprintf(stderr,
                "kairanctl: %s: its message went out; only its result could "
                "not be recorded, so it is not sent again (delete the entry "
                "once the broadcast's keys are repaired)\n",
                id);
        json_decref(j);
        return 0;
    }
    q = json_string_value(json_object_get(j, "q"));
    r0 = json_object_get(j, "r");
    b = json_object_get(j, "b");
    nf = count_parts(f);
    /* One recipient, or a LINE multicast's members (an array, in the
     * order of the entry's fields): dlq_retry takes them comma-joined. */
    if (!known_queue(q))
        bad = "its job names no known queue";
    else if (b != NULL &&
             (!json_is_string(b) || strcmp(json_string_value(b), bc) != 0))
        bad = "its job is of another broadcast than the entry";
    else if (json_is_array(r0) && (long)json_array_size(r0) == nf) {
        json_t *v;
        size_t i;
        json_array_foreach(r0, i, v)
        {
            if (!plain_rcpt(v))
                bad = "a recipient of its job is not a plain id";
            else {
                if (i > 0)
                    kn_buf_addc(&rl, ',');
                kn_buf_add(&rl, json_string_value(v));
            }
        }
    } else if (plain_rcpt(r0) && nf == 1)
        kn_buf_add(&rl, json_string_value(r0));
    else
        bad = "its recipients do not pair up with its fields";
    if (bad != NULL) {
        fprintf(stderr, "kairanctl: %s: %s; left in the DLQ\n", id, bad);
        kn_buf_free(&rl);
        json_decref(j);
        return 0;
    }
    json_object_set_new(j, "n", json_integer(0));
    /* Recorded member by member: the group of a multicast may never have
     * been marked (a DLQ entry of a key of the wrong type), and its
     * members are "q|<rcpt>" now, naming no group (docs/
     * multicast-record.md). */
    json_object_del(j, KN_JOB_GROUPREC);
    kn_argv_init(&a);
    kn_argv_take(&a, kn_cli_key("dlq"));
    kn_argv_take(&a, kn_key_bc(kn_cli_cfg.redis_prefix, bc, ""));
    kn_argv_take(&a, kn_key_bc(kn_cli_cfg.redis_prefix, bc, ":r"));
    kn_argv_take(&a, kn_cli_key("q:%s", q));
    kn_argv_take(&a, kn_cli_key("active"));
    kn_argv_add(&a, id);
    kn_argv_add(&a, f);
    kn_argv_take(&a, json_dumps(j, JSON_COMPACT));
    kn_argv_add(&a, kn_buf_str(&rl));
    kn_argv_add(&a, bc);
    kn_argv_addi(&a, kn_now_ms());
    r = kn_cli_eval(&kn_script_dlq_retry, 5, &a);
    ok = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    if (r->type == REDIS_REPLY_INTEGER && r->integer < 0)
        fprintf(stderr,
                "kairanctl: %s: its fields do not pair up with its "
                "recipients, or a key of its broadcast holds the wrong "
                "type; left in the DLQ\n",
                id);
    freeReplyObject(r);
    kn_argv_free(&a);
    kn_buf_free(&rl);
    json_decref(j);
    return ok;
}

static int do_dlq(int argc, char **argv)
{
    char *k;
    redisReply *r;
    int n = 0, rc = KN_EXIT_OK;
    if (argc >= 2 && strcmp(argv[1], "list") == 0 && argc <= 3)
        return dlq_list(argc == 3 && strcmp(argv[2], "--json") == 0);
    if (argc != 3 || strcmp(argv[1], "retry") != 0) {
        fprintf(stderr, "usage: kairanctl dlq list [--json] | dlq retry "
                        "ENTRY|--all\n");
        return KN_EXIT_USAGE;
    }
    k = kn_cli_key("dlq");
    if (strcmp(argv[2], "--all") == 0)
        r = kn_cli_cmd("XRANGE %s - +", k);
    else
        r = kn_cli_cmd("XRANGE %s %s %s", k, argv[2], argv[2]);
    free(k);
    if (r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "kairanctl: %s is not a DLQ entry id\n", argv[2]);
        freeReplyObject(r);
        return KN_EXIT_USAGE;
    }
    if (r->elements == 0 && strcmp(argv[2], "--all") != 0) {
        fprintf(stderr, "kairanctl: no DLQ entry %s\n", argv[2]);
        rc = KN_EXIT_UNKNOWN;
    }
    for (size_t i = 0; i < r->elements; i++)
        n += dlq_retry_one(r->element[i]);
    freeReplyObject(r);
    if (rc == KN_EXIT_OK)
        printf("%d job(s) queued again\n", n);
    return rc;
}

const struct kn_cli_command kn_cli_cmd_dlq = {
    .name = "dlq",
    .usage = "  dlq list [--json]      dead-lettered jobs\n"
             "  dlq retry ENTRY|--all  send dead-lettered jobs again\n",
    .needs_config = 1,
    .run = do_dlq,
};
