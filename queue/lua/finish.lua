-- finish: record the final results of a batch of jobs (those that ended
-- in one loop turn) and let them leave their streams, in one atomic step.
-- KEYS: dlq, active, then per job: stream, bc, bc:r
-- ARGV: group, now, then per job (8): entry id, fields
--       (comma-separated: one per recipient of the job, "email:<bindex>"),
--       state (delivered|failed|expired|cancelled|bounced: refused at
--       RCPT, no DLQ entry), rcpts (comma-separated,
--       same order), detail, bcast id, job json, attempts
-- A field that already has a final state is not counted again (a
-- duplicate).  The counters of a broadcast are added once per batch.
-- Every key's type is checked before the first write (Redis does not undo
-- the writes of a script that fails half way): a job whose keys hold the
-- wrong type goes to the DLQ instead.
-- Returns, per job, the number of fields recorded (-1: such a job).
--#include maybe_done
--#include is_final
--#include split
local codes = {delivered = 'd', failed = 'f', expired = 'x',
               cancelled = 'c', bounced = 'b'}
local group, now = ARGV[1], ARGV[2]
local function kind(k) return redis.call('TYPE', k)['ok'] end
local function is(k, ...)
  local t = kind(k)
  for _, w in ipairs({...}) do if t == w then return true end end
  return false
end
-- Check every key first: an error after the first write would leave
-- the batch half recorded (Redis does not undo a script's writes).
-- (active is only an index: maybe_done skips it if it is not a zset.)
if not is(KEYS[1], 'stream', 'none') then
  return redis.error_reply('WRONGTYPE ' .. KEYS[1] .. ' holds a ' ..
    kind(KEYS[1]) .. ' where kairan keeps a stream')
end
local nj = (#KEYS - 2) / 3
local bad = {}
for j = 0, nj - 1 do
  local state = ARGV[3 + 8 * j + 2]
  if not codes[state] then
    return redis.error_reply('ERR unknown state ' .. tostring(state))
  end
  if not is(KEYS[3 + 3 * j], 'stream') or
     not is(KEYS[4 + 3 * j], 'hash', 'none') or
     not is(KEYS[5 + 3 * j], 'hash', 'none') then bad[j] = true end
end
local acks, per, order, out = {}, {}, {}, {}
for j = 0, nj - 1 do
  local stream, bc, bcr = KEYS[3 + 3 * j], KEYS[4 + 3 * j], KEYS[5 + 3 * j]
  local a = 3 + 8 * j
  local state, detail = ARGV[a + 2], ARGV[a + 4]
  local code = codes[state]
  if bad[j] then
    -- A key of this job holds the wrong type (tampered with): the
    -- result cannot be recorded; the job goes to the DLQ, not lost.
    if is(stream, 'stream') then
      redis.call('XACK', stream, group, ARGV[a])
      redis.call('XDEL', stream, ARGV[a])
    end
    redis.call('XADD', KEYS[1], '*', 'bc', ARGV[a + 5], 'field',
      ARGV[a + 1], 'job', ARGV[a + 6], 'reason',
      'cannot record the result (' .. state .. '): a key of this '
      .. 'broadcast or its stream holds the wrong type', 'attempts',
      ARGV[a + 7], 'failed_ms', now)
    out[#out + 1] = -1
  else
  local ids = acks[stream]
  if not ids then ids = {}; acks[stream] = ids end
  ids[#ids + 1] = ARGV[a]
  local b = per[bc]
  if not b then
    b = {id = ARGV[a + 5], incr = {}, final = 0}
    per[bc] = b
    order[#order + 1] = bc
  end
  local fields, rcpts = split(ARGV[a + 1]), split(ARGV[a + 3])
  local n = 0
  -- One HMGET and one HSET for the job's fields (a LINE multicast job has
  -- up to 500), not two calls per field.  A field twice in one job is
  -- recorded once.
  local cur = #fields > 0 and redis.call('HMGET', bcr, unpack(fields)) or {}
  local set, seen = {}, {}
  -- The counter of a field's channel: a job's fields are of one channel
  -- as a rule, so the last one's prefix is tried first (a plain find,
  -- no new string) before the pattern.
  local pre, f = nil, nil
  local tail = '|' .. now .. '|' .. detail
  for k, field in ipairs(fields) do
    if not is_final(cur[k]) and not seen[field] then
      seen[field] = true
      set[#set + 1] = field
      set[#set + 1] = code .. '|' .. (rcpts[k] or '') .. tail
      if not pre or string.find(field, pre, 1, true) ~= 1 then
        local ch = string.match(field, '^(%a+):')
        pre = ch and ch .. ':' or nil
        f = 'n:' .. (ch or '?') .. ':' .. state
      end
      b.incr[f] = (b.incr[f] or 0) + 1
      n = n + 1
    end
  end
  if #set > 0 then redis.call('HSET', bcr, unpack(set)) end
  if n > 0 then
    b.final = b.final + n
    if state == 'delivered' then
      b.delivered = true
    elseif state == 'failed' then
      redis.call('XADD', KEYS[1], '*', 'bc', ARGV[a + 5], 'field',
        ARGV[a + 1], 'job', ARGV[a + 6], 'reason', detail, 'attempts',
        ARGV[a + 7], 'failed_ms', now)
    end
  end
  out[#out + 1] = n
  end
end
for stream, ids in pairs(acks) do
  redis.call('XACK', stream, group, unpack(ids))
  redis.call('XDEL', stream, unpack(ids))
end
for _, bc in ipairs(order) do
  local b = per[bc]
  if b.final > 0 then
    for f, v in pairs(b.incr) do redis.call('HINCRBY', bc, f, v) end
    if b.delivered then
      redis.call('HSETNX', bc, 'first_ms', now)
      redis.call('HSET', bc, 'last_ms', now)
    end
    redis.call('HINCRBY', bc, 'final', b.final)
    maybe_done(bc, KEYS[2], b.id, now)
  end
end
return out
