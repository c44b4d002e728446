/*
 * scripts.h - the Lua scripts for every queue step that must be atomic.
 * Each one is queue/lua/<name>.lua, embedded at build time (queue/lua.h),
 * with its KEYS, ARGV and replies documented at its top.
 * kn_scripts_init() computes their SHA-1s once at start.
 */
#ifndef KN_QUEUE_SCRIPTS_H
#define KN_QUEUE_SCRIPTS_H

#include "queue/redis_uv.h"

extern struct kn_redis_script kn_script_submit;
extern struct kn_redis_script kn_script_reject;
extern struct kn_redis_script kn_script_resolve;
extern struct kn_redis_script kn_script_commit_page;
extern struct kn_redis_script kn_script_expand_done;
extern struct kn_redis_script kn_script_precheck;
extern struct kn_redis_script kn_script_finish;
extern struct kn_redis_script kn_script_bounce;          /* issue 18 */
extern struct kn_redis_script kn_script_bounce_ref;      /* issue 18 */
extern struct kn_redis_script kn_script_sendgrid_events; /* issue 18 */
extern struct kn_redis_script kn_script_retry;
extern struct kn_redis_script kn_script_promote;
extern struct kn_redis_script kn_script_cancel;
extern struct kn_redis_script kn_script_dlq_retry;
extern struct kn_redis_script kn_script_fallback;
extern struct kn_redis_script kn_script_mark_dead;
extern struct kn_redis_script kn_script_line_events;
extern struct kn_redis_script kn_script_take;
extern struct kn_redis_script kn_script_keep;
/* a guardian's own choices, "pf" (issue 16: my page, one-click unsubscribe) */
extern struct kn_redis_script kn_script_pref_set;
extern struct kn_redis_script kn_script_failed;
extern struct kn_redis_script kn_script_park;
/* a provider credential shared by every process (model/cred.h) */
extern struct kn_redis_script kn_script_cred_offer;

void kn_scripts_init(void);

/* The six queue streams in the order commit_page takes them. */
#define KN_QUEUE_STREAMS 6
/* Stream suffix i: "email:urgent", "email:normal", "line:urgent", ... */
const char *kn_queue_stream_name(int i);

#endif
