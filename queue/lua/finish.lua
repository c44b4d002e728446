-- finish: record the final results of a batch of jobs (those that ended
-- in one loop turn) and let them leave their streams, in one atomic step.
-- KEYS: dlq, active, then per job: stream, bc, bc:r
-- ARGV: group, now, then per job: entry id, state
--       (delivered|failed|expired|cancelled|bounced: refused at RCPT, no
--       DLQ entry), detail, bcast id, job json ('' if not sent: a
--       delivered job's text is then read from its stream entry, should
--       it be needed), attempts, n, then n x (field, record): one per
--       recipient of the job, "email:<bindex>", and the final record to
--       write, "<code>|<rcpt>|<ms>|<detail>".  A LINE multicast that LINE
--       accepted, whose members' records name its group ("q|<rcpt>|<gid>",
--       lib/group.lua), may come recorded once: n = -(its members), then
--       one field "@<gid>" and its record "d|<ms>|<members>|<detail>",
--       written only if that field is new (HSETNX): else nothing is done
--       for the job (-2; its entry stays pending) and kairand sends it
--       again member by member, which counts nothing already final.
-- The records come written by kairand: every string made in Redis' Lua is
-- hashed whole, and the 500 records of a LINE multicast made here cost
-- Redis more than the HSET that writes them.  The fields of a job are
-- written as sent (one HSET, no table) unless one is final already or
-- comes twice.
-- A field that already has a final state is not counted again (a
-- duplicate).  The counters of a broadcast are added once per batch.
-- Every key's type is checked before the first write (Redis does not undo
-- the writes of a script that fails half way): a job whose keys hold the
-- wrong type, or more than 2,000 recipients, goes to the DLQ instead.
-- Returns, per job, the number of fields recorded (-1: such a job; -2: a
-- job recorded once that must come member by member).
--#include maybe_done
--#include is_final
--#include group
local codes = {delivered = 'd', failed = 'f', expired = 'x',
               cancelled = 'c', bounced = 'b'}
local group, now = ARGV[1], ARGV[2]
local function kind(k) return redis.call('TYPE', k)['ok'] end
local function is(k, ...)
  local t = kind(k)
  for _, w in ipairs({...}) do if t == w then return true end end
  return false
end
-- Check every key and the shape of the arguments first: an error after
-- the first write would leave the batch half recorded (Redis does not
-- undo a script's writes).  (active is only an index: maybe_done skips it
-- if it is not a zset.)
if not is(KEYS[1], 'stream', 'none') then
  return redis.error_reply('WRONGTYPE ' .. KEYS[1] .. ' holds a ' ..
    kind(KEYS[1]) .. ' where kairan keeps a stream')
end
if (#KEYS - 2) % 3 ~= 0 then
  return redis.error_reply('ERR keys: dlq, active, then three per job')
end
local nj = (#KEYS - 2) / 3
-- bad[j]: why job j's result cannot be recorded (it goes to the DLQ)
local at, bad = {}, {}
local wrong = 'a key of this broadcast or its stream holds the wrong type'
local MAX = 2000 -- recipients of a job (kairand's are 500 at most):
-- Lua's unpack takes about 8,000 values
local a = 3
for j = 0, nj - 1 do
  local state, n = ARGV[a + 1], tonumber(ARGV[a + 6])
  if not codes[state] then
    return redis.error_reply('ERR unknown state ' .. string.sub(tostring(state), 1, 32))
  end
  -- recorded once: one pair, for -n members
  local np = n and n < 0 and 1 or n
  if not n or n % 1 ~= 0 or a + 6 + 2 * np > #ARGV then
    return redis.error_reply('ERR job ' .. (j + 1) ..
      ': fewer fields and records than its count')
  end
  if n < 0 and (state ~= 'delivered' or -n > MAX or
      string.byte(ARGV[a + 7], 1) ~= 64) then -- '@'
    return redis.error_reply('ERR job ' .. (j + 1) ..
      ': only a delivered multicast is recorded once, in an "@" field')
  end
  at[j] = a
  if not is(KEYS[3 + 3 * j], 'stream') or
     not is(KEYS[4 + 3 * j], 'hash', 'none') or
     not is(KEYS[5 + 3 * j], 'hash', 'none') then
    bad[j] = wrong
  elseif n > MAX then
    bad[j] = 'more than ' .. MAX .. ' recipients in one job'
  end
  a = a + 7 + 2 * np
end
if a ~= #ARGV + 1 then
  return redis.error_reply('ERR arguments left after the last job')
end
-- A job's text for its DLQ entry: as sent, else its stream entry's.
local function job_text(stream, id, given)
  if given ~= '' or not is(stream, 'stream') then return given end
  local e = redis.call('XRANGE', stream, id, id)[1]
  if e then
    for k = 1, #e[2] - 1, 2 do
      if e[2][k] == 'j' then return e[2][k + 1] end
    end
  end
  return ''
end
-- A job's fields comma-joined, as a DLQ entry names them (dlq_retry).
local function field_list(a, n)
  local t = {}
  for k = 1, n do t[k] = ARGV[a + 5 + 2 * k] end
  return table.concat(t, ',')
end
local acks, per, order, out = {}, {}, {}, {}
-- The job at ARGV[a] is recorded: its entry leaves its stream at the end;
-- returns its broadcast's counts (added once per batch).
local function taken(stream, a, bc)
  local ids = acks[stream]
  if not ids then ids = {}; acks[stream] = ids end
  ids[#ids + 1] = ARGV[a]
  local b = per[bc]
  if not b then
    b = {id = ARGV[a + 3], incr = {}, final = 0}
    per[bc] = b
    order[#order + 1] = bc
  end
  return b
end
for j = 0, nj - 1 do
  local stream, bc, bcr = KEYS[3 + 3 * j], KEYS[4 + 3 * j], KEYS[5 + 3 * j]
  local a = at[j]
  local state, detail, nf = ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 6])
  if nf < 0 and bad[j] then
    out[#out + 1] = -2 -- member by member, the DLQ then says why
  elseif nf < 0 then
    -- A multicast recorded once: its group's record, if nobody wrote it
    -- or marked it before (a duplicate run, a retry, a failure).
    if redis.call('HSETNX', bcr, ARGV[a + 7], ARGV[a + 8]) == 1 then
      local b = taken(stream, a, bc)
      local f = 'n:' .. (string.match(ARGV[a + 7], '^@(%a+):') or '?') ..
        ':delivered'
      b.incr[f] = (b.incr[f] or 0) - nf
      b.final = b.final - nf
      b.delivered = true
      out[#out + 1] = -nf
    else
      out[#out + 1] = -2
    end
  elseif bad[j] then
    -- A key of this job holds the wrong type (tampered with): the
    -- result cannot be recorded; the job goes to the DLQ, not lost.
    local job = job_text(stream, ARGV[a], ARGV[a + 4])
    if is(stream, 'stream') then
      redis.call('XACK', stream, group, ARGV[a])
      redis.call('XDEL', stream, ARGV[a])
    end
    redis.call('XADD', KEYS[1], '*', 'bc', ARGV[a + 3], 'field',
      field_list(a, nf), 'job', job, 'reason',
      'cannot record the result (' .. state .. '): ' .. bad[j], 'attempts',
      ARGV[a + 5], 'failed_ms', now)
    out[#out + 1] = -1
  else
  local b = taken(stream, a, bc)
  -- One HMGET and one HSET for the job's fields (a LINE multicast job has
  -- up to 500), not two calls per field.
  local fields = {}
  for k = 1, nf do fields[k] = ARGV[a + 5 + 2 * k] end
  local cur = nf > 0 and redis.call('HMGET', bcr, unpack(fields)) or {}
  local set, seen, gc = nil, {}, {}
  local n = 0
  -- The counter of a field's channel: a job's fields are of one channel
  -- as a rule, so the last one's prefix is tried first (a plain find,
  -- no new string) before the pattern.
  local pre, f = nil, nil
  for k = 1, nf do
    local field = fields[k]
    if member_final(bcr, cur[k], gc) or seen[field] then
      if not set then
        -- the first field not written: those before it go into a table
        set = {}
        for m = 1, k - 1 do
          set[#set + 1] = fields[m]; set[#set + 1] = ARGV[a + 6 + 2 * m]
        end
      end
    else
      seen[field] = true
      if set then
        set[#set + 1] = field; set[#set + 1] = ARGV[a + 6 + 2 * k]
      end
      if not pre or string.find(field, pre, 1, true) ~= 1 then
        local ch = string.match(field, '^(%a+):')
        pre = ch and ch .. ':' or nil
        f = 'n:' .. (ch or '?') .. ':' .. state
      end
      b.incr[f] = (b.incr[f] or 0) + 1
      n = n + 1
    end
  end
  if not set then
    if nf > 0 then
      redis.call('HSET', bcr, unpack(ARGV, a + 7, a + 6 + 2 * nf))
    end
  elseif #set > 0 then
    redis.call('HSET', bcr, unpack(set))
  end
  if n > 0 then
    b.final = b.final + n
    if state == 'delivered' then
      b.delivered = true
    elseif state == 'failed' then
      redis.call('XADD', KEYS[1], '*', 'bc', ARGV[a + 3], 'field',
        field_list(a, nf), 'job', job_text(stream, ARGV[a], ARGV[a + 4]),
        'reason', detail, 'attempts', ARGV[a + 5], 'failed_ms', now)
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
    -- pcall: a counter that is no integer (the hash tampered with) loses
    -- that broadcast's count, not the counts of the others of the batch
    -- (the records are written already; a retry would count nothing).
    for f, v in pairs(b.incr) do redis.pcall('HINCRBY', bc, f, v) end
    if b.delivered then
      redis.call('HSETNX', bc, 'first_ms', now)
      redis.call('HSET', bc, 'last_ms', now)
    end
    redis.pcall('HINCRBY', bc, 'final', b.final)
    maybe_done(bc, KEYS[2], b.id, now)
  end
end
return out
