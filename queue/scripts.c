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
#include "queue/keys.h"

/* Shared prelude: a broadcast is done when it is fully expanded and every
 * job has a final state. */
#define MAYBE_DONE                                                             \
    "local function maybe_done(bc, active, id, now)\n"                         \
    "  if redis.call('HGET', bc, 'expanded') ~= '1' then return end\n"         \
    "  local jobs = tonumber(redis.call('HGET', bc, 'jobs') or '0')\n"         \
    "  local fin = tonumber(redis.call('HGET', bc, 'final') or '0')\n"         \
    "  if fin < jobs then return end\n"                                        \
    "  local st = redis.call('HGET', bc, 'status')\n"                          \
    "  if st == 'sending' or st == 'queued' then\n"                            \
    "    redis.call('HSET', bc, 'status', 'done')\n"                           \
    "  end\n"                                                                  \
    "  redis.call('HSETNX', bc, 'done_ms', now)\n"                             \
    "  if redis.call('TYPE', active)['ok'] == 'zset' then\n"                   \
    "    redis.call('ZREM', active, id)\n"                                     \
    "  end\n"                                                                  \
    "end\n"

#define SPLIT                                                                  \
    "local function split(s)\n"                                                \
    "  local t = {}\n"                                                         \
    "  for x in string.gmatch(s, '[^,]+') do t[#t + 1] = x end\n"              \
    "  return t\n"                                                             \
    "end\n"

#define IS_FINAL                                                               \
    "local function is_final(v)\n"                                             \
    "  if not v then return false end\n"                                       \
    "  local c = string.sub(v, 1, 2)\n"                                        \
    "  return c ~= 'q|' and c ~= 'r|'\n"                                       \
    "end\n"

/*
 * submit: store a new broadcast, its inline audience, and announce it.
 * KEYS: bc, bc:aud, broadcasts, bcs (zset), active (zset), idem (hash of
 *       the tenant: idempotency key -> name)
 * ARGV: name, now, key ("" for none), nfields, field/value...,
 *       audience entries...
 * Also counts broadcasts per category in the hash "categories" (beside
 * "bcs").
 * Returns {1, name}, or {0, name} of the broadcast this tenant already
 * submitted with the same key (or of the same name), creating nothing; or
 * an error "WRONGTYPE <key> holds a ..." before any write when one of
 * these keys holds the wrong type.
 */
struct kn_redis_script kn_script_submit = {
    "submit",
    "local want = {'hash', 'list', 'stream', 'zset', 'zset', 'hash'}\n"
    "local ck = string.gsub(KEYS[4], 'bcs$', 'categories')\n"
    "-- Every key's type first: Redis does not undo the writes of a script\n"
    "-- that fails half way (a broadcast stored but never announced).\n"
    "local keys = {KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], ck}\n"
    "for i, k in ipairs(keys) do\n"
    "  local t = redis.call('TYPE', k)['ok']\n"
    "  if t ~= 'none' and t ~= (want[i] or 'hash') then\n"
    "    return redis.error_reply('WRONGTYPE ' .. k .. ' holds a ' .. t ..\n"
    "      ' where kairan keeps a ' .. (want[i] or 'hash') ..\n"
    "      '; delete the stray key')\n"
    "  end\n"
    "end\n"
    "if ARGV[3] ~= '' then\n"
    "  local prev = redis.call('HGET', KEYS[6], ARGV[3])\n"
    "  if prev then return {0, prev} end\n"
    "end\n"
    "if redis.call('EXISTS', KEYS[1]) == 1 then return {0, ARGV[1]} end\n"
    "local last = 4 + tonumber(ARGV[4])\n"
    "local i = 5\n"
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
    "if ARGV[3] ~= '' then redis.call('HSET', KEYS[6], ARGV[3], ARGV[1]) end\n"
    "local cat = redis.call('HGET', KEYS[1], 'category')\n"
    "if cat then\n"
    "  redis.call('HINCRBY', ck, cat, 1)\n"
    "end\n"
    "redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])\n"
    "redis.call('ZADD', KEYS[5], ARGV[2], ARGV[1])\n"
    "redis.call('XADD', KEYS[3], '*', 'id', ARGV[1])\n"
    "return {1, ARGV[1]}\n",
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
 * recipient (nothing written; the reason names its place, e.g.
 * "audience.groups[2]", never the value: reasons are shown to the
 * operators of every tenant), or {2, 0} if cancelled.
 */
struct kn_redis_script kn_script_resolve = {
    "resolve",
    "local st = redis.call('HGET', KEYS[1], 'status')\n"
    "if st == 'cancelled' then return {2, 0} end\n"
    "if redis.call('HGET', KEYS[1], 'resolved') == '1' then\n"
    "  return {1, tonumber(redis.call('HGET', KEYS[1], 'aud_n'))}\n"
    "end\n" KN_LUA_KEYPART "local P, T = ARGV[1], ARGV[2]\n"
    "local ng = tonumber(ARGV[3])\n"
    "local seen, ids = {}, {}\n"
    "for i = 4, 3 + ng do\n"
    "  local gk = P .. 'grp:' .. kp(T) .. ':' .. kp(ARGV[i])\n"
    "  if redis.call('EXISTS', gk) == 0 then\n"
    "    return {0, 'audience.groups[' .. (i - 4) .. ']: unknown group ' ..\n"
    "      'in tenant \"' .. T .. '\" (see kairanctl groups list)'}\n"
    "  end\n"
    "  for _, m in ipairs(redis.call('SMEMBERS', gk)) do\n"
    "    if not seen[m] then seen[m] = true; ids[#ids + 1] = m end\n"
    "  end\n"
    "end\n"
    "for i = 4 + ng, #ARGV do\n"
    "  local m = ARGV[i]\n"
    "  if redis.call('EXISTS', P .. 'rcpt:' .. kp(T) .. ':' .. kp(m)) == 0 then\n"
    "    return {0, 'audience.recipients[' .. (i - 4 - ng) .. ']: ' ..\n"
    "      'unknown recipient in tenant \"' .. T .. '\" (see kairanctl ' ..\n"
    "      'recipients export)'}\n"
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
 * KEYS: bc, bc:r, the six queue streams (scripts.h order), bc:m
 * ARGV: page, recipients without any usable contact on this page, prefix,
 *       then entries.  A single job: stream index (0-5), field, job json,
 *       rcpt.  A group job (LINE multicast): 100 + stream index, member
 *       count n, base job json, "", then n x (field, rcpt, sealed, bindex);
 *       the members that are new (HSETNX) and not dead become the job's
 *       "r", "a" and "i" arrays.
 * An address in the set dead:<channel> (a blocked LINE user, an
 * unregistered token) gets no job; it is counted in n:<channel>:dead.
 * Of an "ack" broadcast every recipient of the page also goes into the set
 * bc:m, so that a personal link is checked in O(1) (ack.c); "ack_m" in bc
 * says the set is complete (written from the first page on).
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
    "local P = ARGV[3]\n"
    "local members = redis.call('HGET', KEYS[1], 'ack') == '1' and KEYS[9]\n"
    "if members and xc == 0 then redis.call('HSET', KEYS[1], 'ack_m', '1') end\n"
    "local n = 0\n"
    "local counts = {}\n"
    "local function count(f)\n"
    "  counts[f] = (counts[f] or 0) + 1\n"
    "end\n"
    "local function take(field, rcpt)\n"
    "  if members then redis.call('SADD', members, rcpt) end\n"
    "  local ch, bi = string.match(field, '^(%a+):(.*)$')\n"
    "  if redis.call('SISMEMBER', P .. 'dead:' .. ch, bi) == 1 then\n"
    "    if redis.call('HSETNX', KEYS[2], field, 'x|' .. rcpt .. '|0|dead') == 1\n"
    "    then count('n:' .. ch .. ':dead') end\n"
    "    return false\n"
    "  end\n"
    "  if redis.call('HSETNX', KEYS[2], field, 'q|' .. rcpt) == 1 then\n"
    "    count('n:' .. ch .. ':total')\n"
    "    n = n + 1\n"
    "    return true\n"
    "  end\n"
    "  return false\n"
    "end\n"
    "local i = 4\n"
    "while i <= #ARGV do\n"
    "  local si = tonumber(ARGV[i])\n"
    "  if si < 100 then\n"
    "    if take(ARGV[i + 1], ARGV[i + 3]) then\n"
    "      redis.call('XADD', KEYS[3 + si], '*', 'j', ARGV[i + 2])\n"
    "    end\n"
    "    i = i + 4\n"
    "  else\n"
    "    local cnt = tonumber(ARGV[i + 1])\n"
    "    local job = cjson.decode(ARGV[i + 2])\n"
    "    local r, a, b = {}, {}, {}\n"
    "    for k = 0, cnt - 1 do\n"
    "      local j = i + 4 + 4 * k\n"
    "      if take(ARGV[j], ARGV[j + 1]) then\n"
    "        r[#r + 1] = ARGV[j + 1]; a[#a + 1] = ARGV[j + 2]\n"
    "        b[#b + 1] = ARGV[j + 3]\n"
    "      end\n"
    "    end\n"
    "    if #r > 0 then\n"
    "      job.r = r; job.a = a; job.i = b\n"
    "      redis.call('XADD', KEYS[3 + si - 100], '*', 'j', cjson.encode(job))\n"
    "    end\n"
    "    i = i + 4 + 4 * cnt\n"
    "  end\n"
    "end\n"
    "for f, v in pairs(counts) do redis.call('HINCRBY', KEYS[1], f, v) end\n"
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
    MAYBE_DONE "redis.call('HSET', KEYS[1], 'expanded', '1')\n"
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
 * finish: record the final results of a batch of jobs (those that ended
 * in one loop turn) and let them leave their streams, in one atomic step.
 * KEYS: dlq, active, then per job: stream, bc, bc:r
 * ARGV: group, now, then per job (8): entry id, fields
 *       (comma-separated: one per recipient of the job, "email:<bindex>"),
 *       state (delivered|failed|expired|cancelled), rcpts (comma-separated,
 *       same order), detail, bcast id, job json, attempts
 * A field that already has a final state is not counted again (a
 * duplicate).  The counters of a broadcast are added once per batch.
 * Every key's type is checked before the first write (Redis does not undo
 * the writes of a script that fails half way): a job whose keys hold the
 * wrong type goes to the DLQ instead.
 * Returns, per job, the number of fields recorded (-1: such a job).
 */
struct kn_redis_script kn_script_finish = {
    "finish",
    MAYBE_DONE IS_FINAL SPLIT
    "local codes = {delivered = 'd', failed = 'f', expired = 'x',\n"
    "               cancelled = 'c'}\n"
    "local group, now = ARGV[1], ARGV[2]\n"
    "local function kind(k) return redis.call('TYPE', k)['ok'] end\n"
    "local function is(k, ...)\n"
    "  local t = kind(k)\n"
    "  for _, w in ipairs({...}) do if t == w then return true end end\n"
    "  return false\n"
    "end\n"
    "-- Check every key first: an error after the first write would leave\n"
    "-- the batch half recorded (Redis does not undo a script's writes).\n"
    "-- (active is only an index: maybe_done skips it if it is not a zset.)\n"
    "if not is(KEYS[1], 'stream', 'none') then\n"
    "  return redis.error_reply('WRONGTYPE ' .. KEYS[1] .. ' holds a ' ..\n"
    "    kind(KEYS[1]) .. ' where kairan keeps a stream')\n"
    "end\n"
    "local nj = (#KEYS - 2) / 3\n"
    "local bad = {}\n"
    "for j = 0, nj - 1 do\n"
    "  local state = ARGV[3 + 8 * j + 2]\n"
    "  if not codes[state] then\n"
    "    return redis.error_reply('ERR unknown state ' .. tostring(state))\n"
    "  end\n"
    "  if not is(KEYS[3 + 3 * j], 'stream') or\n"
    "     not is(KEYS[4 + 3 * j], 'hash', 'none') or\n"
    "     not is(KEYS[5 + 3 * j], 'hash', 'none') then bad[j] = true end\n"
    "end\n"
    "local acks, per, order, out = {}, {}, {}, {}\n"
    "for j = 0, nj - 1 do\n"
    "  local stream, bc, bcr = KEYS[3 + 3 * j], KEYS[4 + 3 * j], KEYS[5 + 3 * j]\n"
    "  local a = 3 + 8 * j\n"
    "  local state, detail = ARGV[a + 2], ARGV[a + 4]\n"
    "  local code = codes[state]\n"
    "  if bad[j] then\n"
    "    -- A key of this job holds the wrong type (tampered with): the\n"
    "    -- result cannot be recorded; the job goes to the DLQ, not lost.\n"
    "    if is(stream, 'stream') then\n"
    "      redis.call('XACK', stream, group, ARGV[a])\n"
    "      redis.call('XDEL', stream, ARGV[a])\n"
    "    end\n"
    "    redis.call('XADD', KEYS[1], '*', 'bc', ARGV[a + 5], 'field',\n"
    "      ARGV[a + 1], 'job', ARGV[a + 6], 'reason',\n"
    "      'cannot record the result (' .. state .. '): a key of this '\n"
    "      .. 'broadcast or its stream holds the wrong type', 'attempts',\n"
    "      ARGV[a + 7], 'failed_ms', now)\n"
    "    out[#out + 1] = -1\n"
    "  else\n"
    "  local ids = acks[stream]\n"
    "  if not ids then ids = {}; acks[stream] = ids end\n"
    "  ids[#ids + 1] = ARGV[a]\n"
    "  local b = per[bc]\n"
    "  if not b then\n"
    "    b = {id = ARGV[a + 5], incr = {}, final = 0}\n"
    "    per[bc] = b\n"
    "    order[#order + 1] = bc\n"
    "  end\n"
    "  local fields, rcpts = split(ARGV[a + 1]), split(ARGV[a + 3])\n"
    "  local n = 0\n"
    "  for k, field in ipairs(fields) do\n"
    "    if not is_final(redis.call('HGET', bcr, field)) then\n"
    "      redis.call('HSET', bcr, field, code .. '|' .. (rcpts[k] or '') ..\n"
    "        '|' .. now .. '|' .. detail)\n"
    "      local f = 'n:' .. (string.match(field, '^(%a+):') or '?') .. ':' ..\n"
    "        state\n"
    "      b.incr[f] = (b.incr[f] or 0) + 1\n"
    "      n = n + 1\n"
    "    end\n"
    "  end\n"
    "  if n > 0 then\n"
    "    b.final = b.final + n\n"
    "    if state == 'delivered' then\n"
    "      b.delivered = true\n"
    "    elseif state == 'failed' then\n"
    "      redis.call('XADD', KEYS[1], '*', 'bc', ARGV[a + 5], 'field',\n"
    "        ARGV[a + 1], 'job', ARGV[a + 6], 'reason', detail, 'attempts',\n"
    "        ARGV[a + 7], 'failed_ms', now)\n"
    "    end\n"
    "  end\n"
    "  out[#out + 1] = n\n"
    "  end\n"
    "end\n"
    "for stream, ids in pairs(acks) do\n"
    "  redis.call('XACK', stream, group, unpack(ids))\n"
    "  redis.call('XDEL', stream, unpack(ids))\n"
    "end\n"
    "for _, bc in ipairs(order) do\n"
    "  local b = per[bc]\n"
    "  if b.final > 0 then\n"
    "    for f, v in pairs(b.incr) do redis.call('HINCRBY', bc, f, v) end\n"
    "    if b.delivered then\n"
    "      redis.call('HSETNX', bc, 'first_ms', now)\n"
    "      redis.call('HSET', bc, 'last_ms', now)\n"
    "    end\n"
    "    redis.call('HINCRBY', bc, 'final', b.final)\n"
    "    maybe_done(bc, KEYS[2], b.id, now)\n"
    "  end\n"
    "end\n"
    "return out\n",
    ""};

/*
 * keep: reset the idle time of jobs a worker holds (waiting for a send
 * slot), so that no other process's XAUTOCLAIM takes them over; only
 * those still pending for this consumer.
 * KEYS: urgent stream, normal stream
 * ARGV: group, consumer, then pairs: 1 (urgent) | 2 (normal), entry id
 * Returns the pairs no longer pending for this consumer (taken over by
 * another process, or already recorded).
 */
struct kn_redis_script kn_script_keep = {
    "keep",
    "local lost = {}\n"
    "for i = 3, #ARGV - 1, 2 do\n"
    "  local key, id = KEYS[tonumber(ARGV[i])], ARGV[i + 1]\n"
    "  local p = redis.call('XPENDING', key, ARGV[1], id, id, 1, ARGV[2])\n"
    "  if #p == 1 then\n"
    "    redis.call('XCLAIM', key, ARGV[1], ARGV[2], 0, id, 'JUSTID')\n"
    "  else\n"
    "    lost[#lost + 1] = ARGV[i]\n"
    "    lost[#lost + 1] = id\n"
    "  end\n"
    "end\n"
    "return lost\n",
    ""};

/*
 * retry: park a job in the retry zset until due.
 * KEYS: stream, retry (zset), bc:r
 * ARGV: group, entry id, due ms, new job json, fields (comma-separated),
 *       rcpts (comma-separated), detail
 * Returns 1, or 0 if every field is already final (nothing parked), or
 * an error "WRONGTYPE <key> holds a ..." before any write when a key
 * holds the wrong type (the job is then dead-lettered by the worker).
 */
struct kn_redis_script kn_script_retry = {
    "retry",
    IS_FINAL SPLIT
    "local want = {'stream', 'zset', 'hash'}\n"
    "for i, k in ipairs(KEYS) do\n"
    "  local t = redis.call('TYPE', k)['ok']\n"
    "  if t ~= 'none' and t ~= want[i] then\n"
    "    return redis.error_reply('WRONGTYPE ' .. k .. ' holds a ' .. t ..\n"
    "      ' where kairan keeps a ' .. want[i])\n"
    "  end\n"
    "end\n"
    "redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])\n"
    "redis.call('XDEL', KEYS[1], ARGV[2])\n"
    "local fields, rcpts = split(ARGV[5]), split(ARGV[6])\n"
    "local open = 0\n"
    "for k, field in ipairs(fields) do\n"
    "  if not is_final(redis.call('HGET', KEYS[3], field)) then\n"
    "    redis.call('HSET', KEYS[3], field, 'r|' .. (rcpts[k] or '') .. '|' ..\n"
    "      ARGV[7])\n"
    "    open = open + 1\n"
    "  end\n"
    "end\n"
    "if open == 0 then return 0 end\n"
    "redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])\n"
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
 * ARGV: dlq entry id, fields (comma-separated), job json (attempts reset),
 *       rcpts (comma-separated), bcast id, now
 * Returns 1, or 0 if the entry is gone.
 */
struct kn_redis_script kn_script_dlq_retry = {
    "dlq_retry",
    SPLIT
    "if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then return 0 end\n"
    "local fields, rcpts = split(ARGV[2]), split(ARGV[4])\n"
    "for k, field in ipairs(fields) do\n"
    "  local cur = redis.call('HGET', KEYS[3], field)\n"
    "  if cur and string.sub(cur, 1, 2) == 'f|' then\n"
    "    local ch = string.match(field, '^(%a+):')\n"
    "    redis.call('HINCRBY', KEYS[2], 'n:' .. ch .. ':failed', -1)\n"
    "    redis.call('HINCRBY', KEYS[2], 'final', -1)\n"
    "  end\n"
    "  redis.call('HSET', KEYS[3], field, 'q|' .. (rcpts[k] or ''))\n"
    "end\n"
    "local st = redis.call('HGET', KEYS[2], 'status')\n"
    "if st == 'done' then redis.call('HSET', KEYS[2], 'status', 'sending') end\n"
    "redis.call('HDEL', KEYS[2], 'done_ms')\n"
    "redis.call('ZADD', KEYS[5], ARGV[6], ARGV[5])\n"
    "redis.call('XADD', KEYS[4], '*', 'j', ARGV[3])\n"
    "return 1\n",
    ""};

/*
 * fallback: a recipient's channel failed for good (policy preferred):
 * enqueue the next channel's job, once.
 * KEYS: bc, bc:r, stream of the next channel
 * ARGV: field of the next channel, rcpt, job json
 * Returns 1 if enqueued, 0 if that address already had a job.
 */
struct kn_redis_script kn_script_fallback = {
    "fallback",
    "if redis.call('HSETNX', KEYS[2], ARGV[1], 'q|' .. ARGV[2]) == 0 then\n"
    "  return 0\n"
    "end\n"
    "local ch = string.match(ARGV[1], '^(%a+):')\n"
    "redis.call('HINCRBY', KEYS[1], 'n:' .. ch .. ':total', 1)\n"
    "redis.call('HINCRBY', KEYS[1], 'n:' .. ch .. ':fallback', 1)\n"
    "redis.call('HINCRBY', KEYS[1], 'jobs', 1)\n"
    "redis.call('XADD', KEYS[3], '*', 'j', ARGV[3])\n"
    "return 1\n",
    ""};

/*
 * mark_dead: an address is gone (unregistered token, blocked LINE user):
 * no job is made for it again until it is marked alive.
 * KEYS: dead:<channel> (set)
 * ARGV: "dead" or "alive", bindex...
 */
struct kn_redis_script kn_script_mark_dead = {
    "mark_dead",
    "for i = 2, #ARGV do\n"
    "  if ARGV[1] == 'dead' then redis.call('SADD', KEYS[1], ARGV[i])\n"
    "  else redis.call('SREM', KEYS[1], ARGV[i]) end\n"
    "end\n"
    "return #ARGV - 1\n",
    ""};

/*
 * line_events: follow / unfollow events of the LINE webhook, applied in
 * the order of their own time, not of their arrival (LINE redelivers
 * events: an old "unfollow" must not mark a user dead again after a newer
 * "follow").  The hash line:event_ms keeps, per user's blind index (never
 * the user id), the time of the latest event applied; an older event is
 * ignored.  An event without a time (0) applies only to a user without a
 * recorded one with a time.
 * KEYS: dead:line (set), line:event_ms (hash)
 * ARGV: triples: "dead" | "alive", bindex, event ms
 * Returns the number of events applied.
 */
struct kn_redis_script kn_script_line_events = {
    "line_events",
    "local n = 0\n"
    "for i = 1, #ARGV - 2, 3 do\n"
    "  local bi, ts = ARGV[i + 1], tonumber(ARGV[i + 2]) or 0\n"
    "  local last = tonumber(redis.call('HGET', KEYS[2], bi) or '-1')\n"
    "  if ts >= last then\n"
    "    if ARGV[i] == 'dead' then redis.call('SADD', KEYS[1], bi)\n"
    "    else redis.call('SREM', KEYS[1], bi) end\n"
    "    if ts > last then redis.call('HSET', KEYS[2], bi, ts) end\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n",
    ""};

/*
 * take: a token bucket shared by every kairand process, so that N
 * processes together stay under a provider's published rate.  While a
 * 429 came recently (slow_until), the rate is halved.
 * KEYS: rate:<bucket> (hash: tokens, ts, slow_until)
 * ARGV: rate per second, burst, now ms, tokens wanted
 * Returns {granted, ms to wait when nothing was granted}.
 */
struct kn_redis_script kn_script_take = {
    "take",
    "local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local now, want = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "-- The bucket is kairan's own cache of a minute: a key of another\n"
    "-- type there (written by someone else) is dropped, not obeyed.\n"
    "local kt = redis.call('TYPE', KEYS[1])['ok']\n"
    "if kt ~= 'hash' and kt ~= 'none' then redis.call('DEL', KEYS[1]) end\n"
    "local h = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'slow_until')\n"
    "local tokens = tonumber(h[1]) or burst\n"
    "local ts = tonumber(h[2]) or now\n"
    "if tonumber(h[3] or '0') > now then rate = rate / 2 end\n"
    "tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)\n"
    "local got = math.min(want, math.floor(tokens))\n"
    "tokens = tokens - got\n"
    "redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)\n"
    "redis.call('PEXPIRE', KEYS[1], 60000)\n"
    "local wait = 0\n"
    "if got == 0 then wait = math.ceil((1 - tokens) * 1000 / rate) end\n"
    "return {got, wait}\n",
    ""};

/*
 * failed: count one failure of a stream entry (shared by every process,
 * kept KN_POISON_TTL_MS), and tell the types of the keys its step
 * touches, so that the reason of a parked entry can name the wrong one.
 * KEYS: the counter (fail:<stream>:<entry>), then the keys to look at
 * ARGV: ttl ms, counted (1: count this failure, 0: only read)
 * Returns {failures, type of KEYS[2], type of KEYS[3], ...}.
 */
struct kn_redis_script kn_script_failed = {
    "failed",
    "local kt = redis.call('TYPE', KEYS[1])['ok']\n"
    "if kt ~= 'string' and kt ~= 'none' then redis.call('DEL', KEYS[1]) end\n"
    "local n\n"
    "if ARGV[2] == '1' then\n"
    "  n = redis.call('INCR', KEYS[1])\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[1])\n"
    "else\n"
    "  n = tonumber(redis.call('GET', KEYS[1]) or '0') or 0\n"
    "end\n"
    "local out = {n}\n"
    "for i = 2, #KEYS do out[i] = redis.call('TYPE', KEYS[i])['ok'] end\n"
    "return out\n",
    ""};

/*
 * park: give up on a broadcasts entry that failed too often.  The
 * broadcast becomes `rejected` with the reason (jobs already enqueued
 * still end normally; maybe_done finishes it); if its own hash holds the
 * wrong type the reason goes to the DLQ instead, with the tenant.  The
 * entry leaves its stream, its failure count is dropped.  Each write is
 * done only on a key of the right type, so this never fails half way.
 * KEYS: bc, rejected (zset), active (zset), dlq, stream, counter
 * ARGV: id, now, reason, field, group, entry id, tenant
 * Returns 1 (rejected) or 2 (its hash unusable: in the DLQ).
 */
struct kn_redis_script kn_script_park = {
    "park",
    "local function kind(k) return redis.call('TYPE', k)['ok'] end\n"
    "local bc, now = KEYS[1], ARGV[2]\n"
    "local out = 2\n"
    "local bt = kind(bc)\n"
    "if bt == 'hash' or bt == 'none' then\n"
    "  local st = redis.call('HGET', bc, 'status')\n"
    "  if st ~= 'done' and st ~= 'cancelled' then\n"
    "    redis.call('HSET', bc, 'status', 'rejected', 'reason', ARGV[3],\n"
    "      'field', ARGV[4], 'expanded', '1', 'rejected_ms', now)\n"
    "    redis.call('HSETNX', bc, 'id', ARGV[1])\n"
    "    redis.call('HSETNX', bc, 'created_ms', now)\n"
    "    if ARGV[7] ~= '' then redis.call('HSETNX', bc, 'tenant', ARGV[7]) end\n"
    "    redis.call('HSETNX', bc, 'jobs', 0)\n"
    "    redis.call('HSETNX', bc, 'final', 0)\n"
    "    local jobs = tonumber(redis.call('HGET', bc, 'jobs')) or 0\n"
    "    local fin = tonumber(redis.call('HGET', bc, 'final')) or 0\n"
    "    if fin >= jobs then\n"
    "      redis.call('HSETNX', bc, 'done_ms', now)\n"
    "      if kind(KEYS[3]) == 'zset' then redis.call('ZREM', KEYS[3], ARGV[1]) end\n"
    "    end\n"
    "    local rt = kind(KEYS[2])\n"
    "    if rt == 'zset' or rt == 'none' then\n"
    "      redis.call('ZADD', KEYS[2], now, ARGV[1])\n"
    "    end\n"
    "  end\n"
    "  out = 1\n"
    "else\n"
    "  local dt = kind(KEYS[4])\n"
    "  if dt == 'stream' or dt == 'none' then\n"
    "    redis.call('XADD', KEYS[4], '*', 'stream', KEYS[5], 'entry', ARGV[6],\n"
    "      'bc', ARGV[1], 'tenant', ARGV[7], 'reason', ARGV[3],\n"
    "      'failed_ms', now)\n"
    "  end\n"
    "end\n"
    "if kind(KEYS[5]) == 'stream' then\n"
    "  redis.call('XACK', KEYS[5], ARGV[5], ARGV[6])\n"
    "  redis.call('XDEL', KEYS[5], ARGV[6])\n"
    "end\n"
    "redis.call('DEL', KEYS[6])\n"
    "return out\n",
    ""};

static struct kn_redis_script *const all[] = {
    &kn_script_submit,      &kn_script_reject,      &kn_script_resolve,
    &kn_script_commit_page, &kn_script_expand_done, &kn_script_precheck,
    &kn_script_finish,      &kn_script_retry,       &kn_script_promote,
    &kn_script_cancel,      &kn_script_dlq_retry,   &kn_script_fallback,
    &kn_script_mark_dead,   &kn_script_take,        &kn_script_keep,
    &kn_script_failed,      &kn_script_park,        &kn_script_line_events,
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
