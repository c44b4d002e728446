/*
 * rstates.h - reading a broadcast's recipient records (bc:<id>:r) whole.
 *
 * A LINE multicast that LINE accepted is recorded once
 * (docs/multicast-record.md, model/child.h): its members stay queued with
 * the group's id and one field "@<gid>" says delivered.  A reader of the
 * whole hash (HGETALL) gets that reply back as if each member had its own
 * record: the "@" fields dropped, each member of a delivered group
 * "d|<rcpt>|<ms>|<detail>", any other member of a group "q|<rcpt>".
 * (Readers of some fields use the script queue/lua/rstates.lua instead.)
 */
#ifndef KN_QUEUE_RSTATES_H
#define KN_QUEUE_RSTATES_H

#include <hiredis/hiredis.h>

/* Rewrite r, an HGETALL reply of bc:<id>:r, in place (anything else is
 * left as it is). */
void kn_rstates_resolve(redisReply *r);

#endif
