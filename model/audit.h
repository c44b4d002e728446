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

#endif
