/*
 * lua.h - the Redis scripts of queue/lua/, embedded at build time.
 *
 * Each queue/lua/<name>.lua is assembled (its "--#include NAME" lines
 * replaced by queue/lua/lib/NAME.lua) into $(BUILD)/lua/<name>.lua and
 * compiled into the binaries by scripts/embed.c as kn_lua_<name>: the script's
 * text, NUL-terminated.  No C file holds Lua; a script's KEYS, ARGV and
 * replies are documented at the top of its file.  A new script is one
 * .lua file, one line here, and its test in
 * tests/integration/test_lua_scripts.py.
 */
#ifndef KN_QUEUE_LUA_H
#define KN_QUEUE_LUA_H

extern const char kn_lua_ack_confirm[];
extern const char kn_lua_ack_view[];
extern const char kn_lua_bounce[];
extern const char kn_lua_bounce_ref[];
extern const char kn_lua_sendgrid_events[];
extern const char kn_lua_cancel[];
extern const char kn_lua_commit_page[];
extern const char kn_lua_cred_offer[];
extern const char kn_lua_dlq_retry[];
extern const char kn_lua_expand_done[];
extern const char kn_lua_failed[];
extern const char kn_lua_fallback[];
extern const char kn_lua_finish[];
extern const char kn_lua_keep[];
extern const char kn_lua_line_events[];
extern const char kn_lua_mark_dead[];
extern const char kn_lua_park[];
extern const char kn_lua_pref_set[];
extern const char kn_lua_precheck[];
extern const char kn_lua_promote[];
extern const char kn_lua_purge_unlock[];
extern const char kn_lua_rcpt_active[];
extern const char kn_lua_rcpt_delete[];
extern const char kn_lua_rcpt_edit[];
extern const char kn_lua_rcpt_upsert[];
extern const char kn_lua_reg_device[];
extern const char kn_lua_reg_line[];
extern const char kn_lua_reg_verify[];
extern const char kn_lua_reject[];
extern const char kn_lua_rekey_aud[];
extern const char kn_lua_rekey_rcpt[];
extern const char kn_lua_rstates[];
extern const char kn_lua_resolve[];
extern const char kn_lua_retry[];
extern const char kn_lua_sched_due[];
extern const char kn_lua_sheet_issue[];
extern const char kn_lua_submit[];
extern const char kn_lua_take[];
extern const char kn_lua_token_create[];
extern const char kn_lua_token_revoke[];

#endif
