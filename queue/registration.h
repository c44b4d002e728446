/*
 * registration.h - what guardians registered themselves and the sheets
 * they did it with (issue 15; the keys in queue/keys.h), where retention
 * and tenant close reach them, on the synchronous connection that
 * "kairanctl purge", "tenant close" and kairand's daily purge use.
 *
 *  - tenant close voids the tenant's sheets at once (their passcodes stop
 *    working: sheet:<ID> deleted), like its tokens and sessions;
 *  - a closed tenant's erasure deletes its sheets, every reg:<T>:<id>
 *    (registered addresses, names, relations, consent times), the school
 *    app's device credentials (rdev:, rdevs:<T>) and the sets sheets:<T>
 *    and regd:<T>;
 *  - the daily purge erases the registrations and the sheet of a child
 *    no longer in the directory (deleted, or left out of an import with
 *    --replace): an import never changes a registration, but a child who
 *    has left takes its guardians' registrations with it.
 * Each returns the number of keys deleted, or -1 on a Redis failure.
 */
#ifndef KN_QUEUE_REGISTRATION_H
#define KN_QUEUE_REGISTRATION_H

#include <hiredis/hiredis.h>

long long kn_reg_void_sheets(redisContext *c, const char *prefix,
                             const char *tenant);
long long kn_reg_erase_tenant(redisContext *c, const char *prefix,
                              const char *tenant);
long long kn_reg_purge_orphans(redisContext *c, const char *prefix);

#endif
