/*
 * scripts.c - the Lua steps of the queue, by name.  Each runs atomically in
 * Redis, so a crash between two of its commands cannot happen: a job is never
 * acknowledged without its result recorded, never recorded twice, and an
 * expansion page is written whole or not at all.
 *
 * Per-recipient state lives in the hash bc:<id>:r, one field per
 * (channel, address) "email:<blind index>", valued
 *   q|<rcpt>                 queued
 *   r|<rcpt>|<detail>        waiting for a retry
 *   d|<rcpt>|<ms>|<detail>   delivered     (final)
 *   f|<rcpt>|<ms>|<detail>   failed (DLQ)  (final)
 *   x|<rcpt>|<ms>|<detail>   expired       (final)
 *   c|<rcpt>|<ms>|<detail>   cancelled     (final)
 * The field doubles as the de-duplication key of the expansion (HSETNX):
 * one address gets one message per broadcast and channel.
 *
 * Never XTRIM/MAXLEN: in Redis 7.0 trimming deletes pending entries, which
 * XAUTOCLAIM then drops silently.  Entries leave by XACK + XDEL here.
 */
#include "scripts.h"

#include "common/kn.h"
#include "queue/lua.h"

/* The scripts themselves are queue/lua/<name>.lua, embedded at build time
 * (queue/lua.h); each file documents its KEYS, ARGV and replies. */
struct kn_redis_script kn_script_submit = {"submit", kn_lua_submit, ""};
struct kn_redis_script kn_script_reject = {"reject", kn_lua_reject, ""};
struct kn_redis_script kn_script_resolve = {"resolve", kn_lua_resolve, ""};
struct kn_redis_script kn_script_commit_page = {"commit_page",
                                                kn_lua_commit_page, ""};
struct kn_redis_script kn_script_expand_done = {"expand_done",
                                                kn_lua_expand_done, ""};
struct kn_redis_script kn_script_precheck = {"precheck", kn_lua_precheck, ""};
struct kn_redis_script kn_script_finish = {"finish", kn_lua_finish, ""};
struct kn_redis_script kn_script_bounce = {"bounce", kn_lua_bounce, ""};
struct kn_redis_script kn_script_bounce_ref = {"bounce_ref", kn_lua_bounce_ref,
                                               ""};
struct kn_redis_script kn_script_sendgrid_events = {"sendgrid_events",
                                                    kn_lua_sendgrid_events, ""};
struct kn_redis_script kn_script_keep = {"keep", kn_lua_keep, ""};
struct kn_redis_script kn_script_retry = {"retry", kn_lua_retry, ""};
struct kn_redis_script kn_script_promote = {"promote", kn_lua_promote, ""};
struct kn_redis_script kn_script_cancel = {"cancel", kn_lua_cancel, ""};
struct kn_redis_script kn_script_dlq_retry = {"dlq_retry", kn_lua_dlq_retry,
                                              ""};
struct kn_redis_script kn_script_fallback = {"fallback", kn_lua_fallback, ""};
struct kn_redis_script kn_script_mark_dead = {"mark_dead", kn_lua_mark_dead,
                                              ""};
struct kn_redis_script kn_script_line_events = {"line_events",
                                                kn_lua_line_events, ""};
struct kn_redis_script kn_script_take = {"take", kn_lua_take, ""};
struct kn_redis_script kn_script_failed = {"failed", kn_lua_failed, ""};
struct kn_redis_script kn_script_park = {"park", kn_lua_park, ""};
struct kn_redis_script kn_script_pref_set = {"pref_set", kn_lua_pref_set, ""};
struct kn_redis_script kn_script_cred_offer = {"cred_offer", kn_lua_cred_offer,
                                               ""};

static struct kn_redis_script *const all[] = {
    &kn_script_submit,      &kn_script_reject,      &kn_script_resolve,
    &kn_script_commit_page, &kn_script_expand_done, &kn_script_precheck,
    &kn_script_finish,      &kn_script_retry,       &kn_script_promote,
    &kn_script_cancel,      &kn_script_dlq_retry,   &kn_script_fallback,
    &kn_script_mark_dead,   &kn_script_take,        &kn_script_keep,
    &kn_script_failed,      &kn_script_park,        &kn_script_line_events,
    &kn_script_bounce,      &kn_script_bounce_ref,  &kn_script_sendgrid_events,
    &kn_script_pref_set,    &kn_script_cred_offer,
};

void kn_scripts_init(void)
{
    for (size_t i = 0; i < KN_ARRAY_SIZE(all); i++)
        kn_redis_script_init(all[i]);
}

const char *kn_queue_stream_name(int i)
{
    static const char *names[KN_QUEUE_STREAMS] = {
        "email:urgent", "email:normal", "line:urgent",
        "line:normal",  "push:urgent",  "push:normal"};
    return names[i];
}
