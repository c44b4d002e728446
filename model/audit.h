/*
 * audit.h - the audit logs (retention.audit_dir): login.jsonl, written by
 * kairand's HTTP server for every request that presents a token, and
 * operations.jsonl, written by kairand and kairanctl for every change an
 * operator or a token makes.
 */
#ifndef KN_MODEL_AUDIT_H
#define KN_MODEL_AUDIT_H

/*
 * Append one line (a JSON object, no newline) to <dir>/<file> with one
 * write(2) on an O_APPEND descriptor, so that lines of several processes
 * never interleave; the directory is created (mode 0750) if missing and
 * the file with mode 0640.  Returns 0 or KN_EIO.
 */
int kn_audit_append(const char *dir, const char *file, const char *line);

/*
 * The operation log (<dir>/operations.jsonl), the same for every writer:
 *  - one line {time, actor, op, ...fields}; actor says who, always in that
 *    field: "kairanctl:<login>" (kn_audit_cli_actor) or "token:<id>" (the
 *    HTTP API, which adds token, role, name and source as fields);
 *  - one policy: a change that cannot be logged is not made.  A writer
 *    calls kn_audit_ready before the change and refuses it (exit 1, HTTP
 *    503) when the log cannot be written; after the change, kn_audit_op,
 *    whose failure (the disk filled meanwhile) is reported as a warning.
 */
struct json_t;
int kn_audit_ready(const char *dir);
/* Append the line; fields (a JSON object, may be NULL) is taken.  Returns
 * 0 or KN_EIO. */
int kn_audit_op(const char *dir, const char *actor, const char *op,
                struct json_t *fields);
/* "kairanctl:<login>" ($SUDO_USER, else $USER), or "kairanctl".  Heap. */
char *kn_audit_cli_actor(void);

#endif
