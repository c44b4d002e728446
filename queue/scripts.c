/*
 * scripts.c - the Lua steps of the queue.  Each runs atomically in Redis,
 * so a crash between two of its commands cannot happen: a job is never
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

/* Shared prelude: a broadcast is done when it is fully expanded and every
 * job has a final state. */
#define MAYBE_DONE                                                            \
    "local function maybe_done(bc, active, id, now)\n"                        \
    "  if redis.call('HGET', bc, 'expanded') ~= '1' then return end\n"        \
    "  local jobs = tonumber(redis.call('HGET', bc, 'jobs') or '0')\n"        \
    "  local fin = tonumber(redis.call('HGET', bc, 'final') or '0')\n"        \
    "  if fin < jobs then return end\n"                                       \
    "  local st = redis.call('HGET', bc, 'status')\n"                         \
    "  if st == 'sending' or st == 'queued' then\n"                           \
    "    redis.call('HSET', bc, 'status', 'done')\n"                          \
    "  end\n"                                                                 \
    "  redis.call('HSETNX', bc, 'done_ms', now)\n"                            \
    "  redis.call('ZREM', active, id)\n"                                      \
    "end\n"

#define IS_FINAL                                                              \
    "local function is_final(v)\n"                                            \
    "  if not v then return false end\n"                                      \
    "  local c = string.sub(v, 1, 2)\n"                                       \
    "  return c ~= 'q|' and c ~= 'r|'\n"                                      \
    "end\n"

/*
 * submit: store a new broadcast, its inline audience, and announce it.
 * KEYS: bc, bc:aud, broadcasts, bcs (zset), active (zset)
 * ARGV: id, now, nfields, field/value..., audience entries...
 * Returns {1,'queued'} or {0, status} when the id exists (idempotent).
 */
struct kn_redis_script kn_script_submit = {
    "submit",
    "if redis.call('EXISTS', KEYS[1]) == 1 then\n"
    "  return {0, redis.call('HGET', KEYS[1], 'status') or ''}\n"
    "end\n"
    "local last = 3 + tonumber(ARGV[3])\n"
    "local i = 4\n"
    "while i <= last do\n"
    "  local hi = math.min(i + 999, last)\n"
    "  redis.call('HSET', KEYS[1], unpack(ARGV, i, hi))\n"
    "  i = hi + 1\n"
    "end\n"
    "i = last + 1\n"
    "while i <= #ARGV do\n"
    "  local hi = math.min(i + 999, #ARGV)\n"
    "  redis.call('RPUSH', KEYS[2], unpack(ARGV, i, hi))\n"
    "  i = hi + 1\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'status', 'queued', 'inline_n', #ARGV - last)\n"
    "redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])\n"
    "redis.call('ZADD', KEYS[5], ARGV[2], ARGV[1])\n"
    "redis.call('XADD', KEYS[3], '*', 'id', ARGV[1])\n"
    "return {1, 'queued'}\n",
    ""};

/*
 * reject: keep a broadcast that failed validation after it reached Redis.
 * KEYS: bc, rejected (zset), bcs (zset)
 * ARGV: id, now, reason, field, masked json, tenant
 */
struct kn_redis_script kn_script_reject = {
    "reject",
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'id', ARGV[1], 'status', 'rejected',\n"
    "  'reason', ARGV[3], 'field', ARGV[4], 'masked', ARGV[5],\n"
    "  'tenant', ARGV[6], 'created_ms', ARGV[2], 'done_ms', ARGV[2],\n"
    "  'expanded', '1', 'jobs', 0, 'final', 0)\n"
    "redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])\n"
    "redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])\n"
    "return 1\n",
    ""};

/*
 * resolve: append the directory part of the audience (groups and
 * recipient ids, de-duplicated, sorted) to bc:aud, once.
 * KEYS: bc, bc:aud
 * ARGV: prefix, tenant, ngroups, groups..., recipient ids...
 * Returns {1, audience size}, {0, reason} for an unknown group or
 * recipient (nothing written), or {2, 0} if cancelled.
 */
struct kn_redis_script kn_script_resolve = {
    "resolve",
    "local st = redis.call('HGET', KEYS[1], 'status')\n"
    "if st == 'cancelled' then return {2, 0} end\n"
    "if redis.call('HGET', KEYS[1], 'resolved') == '1' then\n"
    "  return {1, tonumber(redis.call('HGET', KEYS[1], 'aud_n'))}\n"
    "end\n"
    "local P, T = ARGV[1], ARGV[2]\n"
    "local ng = tonumber(ARGV[3])\n"
    "local seen, ids = {}, {}\n"
    "for i = 4, 3 + ng do\n"
    "  local gk = P .. 'grp:' .. T .. ':' .. ARGV[i]\n"
    "  if redis.call('EXISTS', gk) == 0 then\n"
    "    return {0, 'audience.groups: unknown group \"' .. ARGV[i] ..\n"
    "      '\" in tenant \"' .. T .. '\" (see kairanctl groups list)'}\n"
    "  end\n"
    "  for _, m in ipairs(redis.call('SMEMBERS', gk)) do\n"
    "    if not seen[m] then seen[m] = true; ids[#ids + 1] = m end\n"
    "  end\n"
    "end\n"
    "for i = 4 + ng, #ARGV do\n"
    "  local m = ARGV[i]\n"
    "  if redis.call('EXISTS', P .. 'rcpt:' .. T .. ':' .. m) == 0 then\n"
    "    return {0, 'audience.recipients: unknown recipient \"' .. m ..\n"
    "      '\" in tenant \"' .. T .. '\"'}\n"
    "  end\n"
    "  if not seen[m] then seen[m] = true; ids[#ids + 1] = m end\n"
    "end\n"
    "table.sort(ids)\n"
    "for i = 1, #ids, 1000 do\n"
    "  local chunk = {}\n"
    "  for j = i, math.min(i + 999, #ids) do\n"
    "    chunk[#chunk + 1] = 'd:' .. ids[j]\n"
    "  end\n"
    "  redis.call('RPUSH', KEYS[2], unpack(chunk))\n"
    "end\n"
    "local n = redis.call('LLEN', KEYS[2])\n"
    "redis.call('HSET', KEYS[1], 'resolved', '1', 'aud_n', n,\n"
    "  'status', 'sending')\n"
    "return {1, n}\n",
    ""};

/*
 * commit_page: enqueue one expansion page, if it is the next one.
 * KEYS: bc, bc:r, the six queue streams (scripts.h order)
 * ARGV: page, recipients without any usable contact on this page, then
 *       per job: stream index (0-5), field, job json, rcpt
 * Returns {1, jobs added}, {0, 0} if this page was already committed,
 * {-1, 0} if the broadcast was cancelled.
 */
struct kn_redis_script kn_script_commit_page = {
    "commit_page",
    "if redis.call('HGET', KEYS[1], 'status') == 'cancelled' then\n"
    "  return {-1, 0}\n"
    "end\n"
    "local xc = tonumber(redis.call('HGET', KEYS[1], 'xc') or '0')\n"
    "if xc ~= tonumber(ARGV[1]) then return {0, 0} end\n"
    "local n = 0\n"
    "for i = 3, #ARGV, 4 do\n"
    "  local si, field = tonumber(ARGV[i]), ARGV[i + 1]\n"
    "  if redis.call('HSETNX', KEYS[2], field, 'q|' .. ARGV[i + 3]) == 1 then\n"
    "    redis.call('XADD', KEYS[3 + si], '*', 'j', ARGV[i + 2])\n"
    "    local ch = string.match(field, '^(%a+):')\n"
    "    redis.call('HINCRBY', KEYS[1], 'n:' .. ch .. ':total', 1)\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "redis.call('HINCRBY', KEYS[1], 'jobs', n)\n"
    "redis.call('HINCRBY', KEYS[1], 'unreachable', tonumber(ARGV[2]))\n"
    "redis.call('HSET', KEYS[1], 'xc', xc + 1)\n"
    "return {1, n}\n",
    ""};

/*
 * expand_done: the whole audience is enqueued (or the broadcast was
 * cancelled during expansion).
 * KEYS: bc, active
 * ARGV: id, now
 */
struct kn_redis_script kn_script_expand_done = {
    "expand_done",
    MAYBE_DONE
    "redis.call('HSET', KEYS[1], 'expanded', '1')\n"
    "maybe_done(KEYS[1], KEYS[2], ARGV[1], ARGV[2])\n"
    "return redis.call('HGET', KEYS[1], 'status')\n",
    ""};

/*
 * precheck: what a worker must know before sending.
 * KEYS: bc, bc:r
 * ARGV: field
 * Returns {status, expires_ms, recipient state}.
 */
struct kn_redis_script kn_script_precheck = {
    "precheck",
    "local v = redis.call('HMGET', KEYS[1], 'status', 'expires_ms')\n"
    "local r = redis.call('HGET', KEYS[2], ARGV[1])\n"
    "return {v[1] or '', v[2] or '0', r or ''}\n",
    ""};

/*
 * finish: record a final result and let the job leave its stream.
 * KEYS: stream, bc, bc:r, dlq, active
 * ARGV: group, entry id, field, state (delivered|failed|expired|cancelled),
 *       now, rcpt, detail, bcast id, job json, attempts
 * Returns 1, or 0 if the field already had a final state (a duplicate).
 */
struct kn_redis_script kn_script_finish = {
    "finish",
    MAYBE_DONE IS_FINAL
    "redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])\n"
    "redis.call('XDEL', KEYS[1], ARGV[2])\n"
    "if is_final(redis.call('HGET', KEYS[3], ARGV[3])) then return 0 end\n"
    "local code = ({delivered = 'd', failed = 'f', expired = 'x',\n"
    "               cancelled = 'c'})[ARGV[4]]\n"
    "redis.call('HSET', KEYS[3], ARGV[3],\n"
    "  code .. '|' .. ARGV[6] .. '|' .. ARGV[5] .. '|' .. ARGV[7])\n"
    "local ch = string.match(ARGV[3], '^(%a+):')\n"
    "redis.call('HINCRBY', KEYS[2], 'n:' .. ch .. ':' .. ARGV[4], 1)\n"
    "if ARGV[4] == 'delivered' then\n"
    "  redis.call('HSETNX', KEYS[2], 'first_ms', ARGV[5])\n"
    "  redis.call('HSET', KEYS[2], 'last_ms', ARGV[5])\n"
    "elseif ARGV[4] == 'failed' then\n"
    "  redis.call('XADD', KEYS[4], '*', 'bc', ARGV[8], 'field', ARGV[3],\n"
    "    'job', ARGV[9], 'reason', ARGV[7], 'attempts', ARGV[10],\n"
    "    'failed_ms', ARGV[5])\n"
    "end\n"
    "redis.call('HINCRBY', KEYS[2], 'final', 1)\n"
    "maybe_done(KEYS[2], KEYS[5], ARGV[8], ARGV[5])\n"
    "return 1\n",
    ""};

/*
 * retry: park a job in the retry zset until due.
 * KEYS: stream, retry (zset), bc:r
 * ARGV: group, entry id, due ms, new job json, field, rcpt, detail
 * Returns 1, or 0 if the field is already final (nothing parked).
 */
struct kn_redis_script kn_script_retry = {
    "retry",
    IS_FINAL
    "redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])\n"
    "redis.call('XDEL', KEYS[1], ARGV[2])\n"
    "if is_final(redis.call('HGET', KEYS[3], ARGV[5])) then return 0 end\n"
    "redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])\n"
    "redis.call('HSET', KEYS[3], ARGV[5], 'r|' .. ARGV[6] .. '|' .. ARGV[7])\n"
    "return 1\n",
    ""};

/*
 * promote: move due retries back to their streams, atomically.
 * KEYS: retry (zset)
 * ARGV: now, prefix, limit
 * Returns the number moved.
 */
struct kn_redis_script kn_script_promote = {
    "promote",
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1],\n"
    "  'LIMIT', 0, tonumber(ARGV[3]))\n"
    "for _, m in ipairs(due) do\n"
    "  local ok, j = pcall(cjson.decode, m)\n"
    "  if ok and type(j) == 'table' and type(j.q) == 'string' and\n"
    "     string.match(j.q, '^%a+:%a+$') then\n"
    "    redis.call('XADD', ARGV[2] .. 'q:' .. j.q, '*', 'j', m)\n"
    "  else\n"
    "    redis.call('XADD', ARGV[2] .. 'dlq', '*', 'job', m,\n"
    "      'reason', 'unreadable retry entry', 'failed_ms', ARGV[1])\n"
    "  end\n"
    "  redis.call('ZREM', KEYS[1], m)\n"
    "end\n"
    "return #due\n",
    ""};

/*
 * cancel: stop a broadcast; queued jobs are skipped as they come up.
 * KEYS: bc, active
 * ARGV: id, now
 * Returns 'cancelled' when this call cancelled it, 'already:<status>' when
 * it had ended or was cancelled before, '' if the broadcast is unknown.
 */
struct kn_redis_script kn_script_cancel = {
    "cancel",
    MAYBE_DONE
    "local st = redis.call('HGET', KEYS[1], 'status')\n"
    "if not st then return '' end\n"
    "if st == 'done' or st == 'rejected' or st == 'cancelled' then\n"
    "  return 'already:' .. st\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'status', 'cancelled', 'cancelled_ms',\n"
    "  ARGV[2])\n"
    "maybe_done(KEYS[1], KEYS[2], ARGV[1], ARGV[2])\n"
    "return 'cancelled'\n",
    ""};

/*
 * dlq_retry: send a dead-lettered job again (operator's decision).
 * KEYS: dlq, bc, bc:r, stream, active
 * ARGV: dlq entry id, field, job json (attempts reset), rcpt, bcast id, now
 * Returns 1, or 0 if the entry is gone.
 */
struct kn_redis_script kn_script_dlq_retry = {
    "dlq_retry",
    "if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then return 0 end\n"
    "local cur = redis.call('HGET', KEYS[3], ARGV[2])\n"
    "if cur and string.sub(cur, 1, 2) == 'f|' then\n"
    "  local ch = string.match(ARGV[2], '^(%a+):')\n"
    "  redis.call('HINCRBY', KEYS[2], 'n:' .. ch .. ':failed', -1)\n"
    "  redis.call('HINCRBY', KEYS[2], 'final', -1)\n"
    "end\n"
    "redis.call('HSET', KEYS[3], ARGV[2], 'q|' .. ARGV[4])\n"
    "local st = redis.call('HGET', KEYS[2], 'status')\n"
    "if st == 'done' then redis.call('HSET', KEYS[2], 'status', 'sending') end\n"
    "redis.call('HDEL', KEYS[2], 'done_ms')\n"
    "redis.call('ZADD', KEYS[5], ARGV[6], ARGV[5])\n"
    "redis.call('XADD', KEYS[4], '*', 'j', ARGV[3])\n"
    "return 1\n",
    ""};

static struct kn_redis_script *const all[] = {
    &kn_script_submit,  &kn_script_reject,      &kn_script_resolve,
    &kn_script_commit_page, &kn_script_expand_done, &kn_script_precheck,
    &kn_script_finish,  &kn_script_retry,       &kn_script_promote,
    &kn_script_cancel,  &kn_script_dlq_retry,
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
