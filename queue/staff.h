/*
 * staff.h - the Redis records of staff accounts and sessions, and the
 * synchronous steps that end sessions (kairanctl staff, kairanctl tenant
 * close, the retention purge).  kairand's HTTP server reads and writes the
 * same records asynchronously (dispatcher/http/session*.c).
 *
 * staff:<T>:<login> (hash): id (16 hex, stable: a sender's broadcasts
 *   record it as their sender_token "st_<id>"), login, name, role (a
 *   model/token.h role name), groups (comma list, senders), active
 *   ("1"/"0"), hash (Argon2id, model/password.h), must_change ("1" until
 *   the first password change), created_ms, deactivated_ms, gen (bumped
 *   whenever every session must end: deactivation, role change, password
 *   reset or change), totp (the TOTP secret sealed with purpose "totp"),
 *   totp_pending (the same, during setup), totp_last (last step used),
 *   email (the account's own address for the console's "send to me",
 *   sealed with purpose "email" like a guardian's; kairanctl staff add
 *   --email or staff email; absent: none).
 * staffs:<T> (set): the logins of T.
 * sess:<hash> (hash, PEXPIRE 12 h): tenant, login, gen, created_ms,
 *   seen_ms, csrf (hex SHA-256 of the CSRF token).
 * stsess:<T>:<login> (set): the account's session hashes.
 */
#ifndef KN_QUEUE_STAFF_H
#define KN_QUEUE_STAFF_H

#include <hiredis/hiredis.h>

/* End every session of one account: bump its gen (so a session read in
 * flight fails too) and delete its session records.  Returns the number
 * of sessions deleted, or -1 when Redis failed. */
long long kn_staff_end_sessions(redisContext *c, const char *prefix,
                                const char *tenant, const char *login);

/* End every session of every account of tenant.  Returns the number of
 * sessions deleted, or -1. */
long long kn_staff_end_tenant_sessions(redisContext *c, const char *prefix,
                                       const char *tenant);

/* Delete every account and session of tenant (its erasure after tenant
 * close).  Returns the number of keys deleted. */
long long kn_staff_erase_tenant(redisContext *c, const char *prefix,
                                const char *tenant);

/*
 * The retention purge's part: delete every account deactivated before
 * cutoff_ms (ms since the epoch), with its sessions, from every tenant
 * (found with SCAN over staffs:*, never KEYS).  The broadcasts such an
 * account sent keep its name (it is stored in them).  Returns the number
 * of accounts deleted, or -1 when Redis failed.
 */
long long kn_staff_purge_deactivated(redisContext *c, const char *prefix,
                                     long long cutoff_ms);

/*
 * The account changes of "kairanctl staff" and the console's 職員 page
 * (POST /v1/staff...), one function each so that both write the same
 * records; the caller has checked login, name, role and groups
 * (model/session.h, model/token.h) and writes the operation-log line.
 * Each returns 0, KN_ENOENT (no such account), KN_EEXIST (add: the login
 * is taken) or KN_EIO (Redis failed).
 *  - add: a new account with a fresh initial password (pw, shown once;
 *    Argon2id: slow, never on the loop), which must be changed first;
 *  - deactivate: active 0, every session ended; the record stays so that
 *    the broadcasts it sent keep its name;
 *  - reset: a new initial password (pw), every session ended;
 *  - set_role: role and groups (groups "" for other roles than sender),
 *    every session ended.
 */
int kn_staff_add(redisContext *c, const char *prefix, const char *tenant,
                 const char *login, const char *name, const char *role,
                 const char *groups, char pw[21]);
int kn_staff_deactivate(redisContext *c, const char *prefix, const char *tenant,
                        const char *login);
int kn_staff_reset(redisContext *c, const char *prefix, const char *tenant,
                   const char *login, char pw[21]);
int kn_staff_set_role(redisContext *c, const char *prefix, const char *tenant,
                      const char *login, const char *role, const char *groups);

/* 1 if the account exists, 0 if not, -1 when Redis failed. */
int kn_staff_exists(redisContext *c, const char *prefix, const char *tenant,
                    const char *login);

#endif
