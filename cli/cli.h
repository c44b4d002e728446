/*
 * cli.h - what kairanctl's command files share: the loaded config, a
 * synchronous Redis connection, keys with the prefix, and the table of
 * commands.  A command file (cli/<name>.c) defines its commands; each is
 * one row of the table in kairanctl.c.
 *
 * Exit codes, for every command: 0 success; 1 failure; 2 usage; 3 unknown
 * id or Redis unreachable.
 */
#ifndef KN_CLI_CLI_H
#define KN_CLI_CLI_H

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "common/argv.h"
#include "config/config.h"
#include "queue/redis_uv.h"

enum {
    KN_EXIT_OK = 0,
    KN_EXIT_FAIL = 1,
    KN_EXIT_USAGE = 2,
    KN_EXIT_UNKNOWN = 3
};

extern struct kn_config kn_cli_cfg;

/*
 * When not 0, the exit code for "Redis did not do it" (unreachable, the
 * connection lost, an error reply to kn_cli_eval) instead of 3 and 1:
 * kairanctl bounce sets 75 (EX_TEMPFAIL), which Postfix's pipe(8) takes
 * as "try again later"; any other non-zero code not in sysexits.h makes it
 * bounce the message, and a DSN bounced is a DSN lost.
 */
extern int kn_cli_tempfail_exit;

/* The connection (made on first use; exits 3 if Redis is unreachable). */
redisContext *kn_cli_redis(void);
/* A command; exits 3 if the connection is lost.  Caller frees. */
redisReply *kn_cli_cmd(const char *fmt, ...);
/* A command from an argv list; same rules. */
redisReply *kn_cli_cmdargv(const struct kn_argv *a);
/* EVAL a script (keys first in a); exits 1 on a script error. */
redisReply *kn_cli_eval(const struct kn_redis_script *s, int nkeys,
                        struct kn_argv *a);
/* prefix + formatted tail: heap string. */
char *kn_cli_key(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The whole of a file ("-": stdin), NUL-terminated; NULL if unreadable. */
char *kn_cli_read_file(const char *path, size_t *len);
/*
 * Validate, seal and store a broadcast (JSON text), print its id and log
 * the operation; what "kairanctl submit" does.  Returns an exit code.
 */
int kn_cli_submit_json(const char *json, size_t len);
/*
 * A copy of v for a terminal or a text or HTML report: every string and
 * every object key through kn_text_safe() (common/text.h), so that escape
 * sequences from outside (a subject, a name, a reason) are shown, not
 * obeyed.  Returns a new reference.
 */
json_t *kn_cli_safe_json(json_t *v);
/* A JSON string of text from Redis: bytes that are not UTF-8 as \\xNN
 * (json_string() would return NULL and the value would be lost). */
json_t *kn_cli_jtext(const char *s);
/* Print a JSON document: JSON escapes, plus C1 and bidi controls. */
void kn_cli_print_json(json_t *v);
/* Append {time, actor, op, broadcast, tenant} to the operation log. */
void kn_cli_audit_op(const char *op, const char *bcast, const char *tenant);
/* One line {op, ...fields} to the operation log as this kairanctl user
 * (fields, a JSON object, is taken); a failure is a warning on stderr:
 * the change is already made. */
void kn_cli_audit_fields(const char *op, json_t *fields);
/* 0 if the operation log can be written now; else -1 after saying so (the
 * caller then changes nothing: model/audit.h's policy). */
int kn_cli_audit_ready(void);

struct kn_cli_command {
    const char *name;                  /* "recipients" */
    const char *usage;                 /* one or more lines for --help */
    int needs_config;                  /* 1: the config is loaded before run */
    int (*run)(int argc, char **argv); /* argv[0] is the name */
};

/*
 * The commands defined in their own files, one row each in kairanctl.c's
 * table (a new command: a file, a declaration here, a row there).
 */
extern const struct kn_cli_command kn_cli_cmd_purge, kn_cli_cmd_tenant,
    kn_cli_cmd_recipients, kn_cli_cmd_groups, kn_cli_cmd_rekey, kn_cli_cmd_keys,
    kn_cli_cmd_report, kn_cli_cmd_drill, kn_cli_cmd_token, kn_cli_cmd_migrate,
    kn_cli_cmd_category, kn_cli_cmd_staff, kn_cli_cmd_bounce, kn_cli_cmd_supp,
    kn_cli_cmd_dlq;

#endif
