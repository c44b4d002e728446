-- resolve: append the directory part of the audience (groups and
-- recipient ids, de-duplicated) to bc:aud, once, and decide once whether
-- the broadcast is of an emergency category (issue 16: the built-in
-- "emergency" or one the tenant's list cats:<T> flags "emergency";
-- model/label.c kn_category_emergency, keep them equal), stored as "emg"
-- ("1"/"0") in bc: the expander ignores guardians' opt-outs for it and the
-- worker gives its e-mail no List-Unsubscribe.
--
-- An audience of at most `step` ids is written in this one call (sorted
-- unless a single group).  A larger one (a whole board of education:
-- 1,000,000 ids took 1.2 s in one call, two overlapping groups 3 s, and
-- Redis answers nobody else meanwhile) is written in calls of about
-- `step` ids each: the recipient ids first, then each group in the order
-- given, read with SSCAN (its cursor kept in bc as res_g, res_c) and
-- de-duplicated against the set bc:seen (SSCAN may return an id twice;
-- an id added or removed meanwhile may or may not be included, as with
-- any edit made while a broadcast is sent).  A call cut off (a crash, an
-- error) is made again: what it wrote is in bc:seen as well, so nothing
-- is written twice.
--
-- A SCAN cursor means something only to the Redis process that gave it
-- (each process hashes with its own random seed): after a restart or a
-- failover, going on from it would skip members.  So the process's
-- run_id (INFO server) is kept with the cursor (res_r), and a call made
-- on another process scans every group again from the start (bc:seen
-- keeps the ids already written out).  Where the ACL refuses INFO
-- (kairan's user needs +info since 0.5.0), the audience is written at
-- once, as before.
--
-- KEYS: bc, bc:aud, cats (the tenant's categories; optional), bc:seen
--   (needed when the audience is larger than step)
-- ARGV: prefix, tenant, step, ngroups, groups..., recipient ids...  (a
--   call that goes on needs only the first three: it reads the groups
--   from bc's "groups", and the ids from "rcpt_ids" should it start again)
-- Returns {1, audience size, emg (0/1)}; {3, ids written so far} when a
-- call must follow (the same KEYS); {0, reason} for an unknown group or
-- recipient (nothing written; the reason names its place, e.g.
-- "audience.groups[2]", never the value: reasons are shown to the
-- operators of every tenant), or {2, 0} if cancelled.
--#include keys
-- bc:seen freed in the background (1,000,000 ids take Redis 0.23 s to
-- free in place), or in place where the ACL does not allow UNLINK
-- (contrib/redis-kairan.conf does since 0.5.0).
local function drop_seen()
  if KEYS[4] and redis.call('EXISTS', KEYS[4]) == 1 then
    local r = redis.pcall('UNLINK', KEYS[4])
    if type(r) == 'table' and r.err then redis.call('DEL', KEYS[4]) end
  end
end

local st = redis.call('HGET', KEYS[1], 'status')
if st == 'cancelled' then
  drop_seen()
  return {2, 0}
end
if redis.call('HGET', KEYS[1], 'resolved') == '1' then
  return {1, tonumber(redis.call('HGET', KEYS[1], 'aud_n')),
    redis.call('HGET', KEYS[1], 'emg') == '1' and 1 or 0}
end
local P, T = ARGV[1], ARGV[2]
local step = tonumber(ARGV[3])

-- Append ids (at most 1,000 at a time: unpack's limit) as 'd:<id>'.
local function push(ids)
  for i = 1, #ids, 1000 do
    local chunk = {}
    for j = i, math.min(i + 999, #ids) do
      chunk[#chunk + 1] = 'd:' .. ids[j]
    end
    redis.call('RPUSH', KEYS[2], unpack(chunk))
  end
end

-- Append those of ids not in bc:seen yet, and remember them there (an id
-- given twice in ids once).
local function push_new(ids)
  local once = {}
  for i = 1, #ids, 1000 do
    local part = {}
    for j = i, math.min(i + 999, #ids) do
      if not once[ids[j]] then
        once[ids[j]] = true
        part[#part + 1] = ids[j]
      end
    end
    local had = #part > 0 and redis.call('SMISMEMBER', KEYS[4],
      unpack(part)) or {}
    local new = {}
    for j = 1, #part do
      if had[j] == 0 then new[#new + 1] = part[j] end
    end
    if #new > 0 then
      redis.call('SADD', KEYS[4], unpack(new))
      push(new)
    end
  end
end

local function finish()
  local n = redis.call('LLEN', KEYS[2])
  local emg = 0
  local cat = redis.call('HGET', KEYS[1], 'category')
  if cat == 'emergency' then
    emg = 1
  elseif cat and KEYS[3] then
    local fl = redis.call('HGET', KEYS[3], cat)
    if fl and string.find(fl, 'emergency', 1, true) then emg = 1 end
  end
  drop_seen()
  redis.call('HDEL', KEYS[1], 'res_g', 'res_c', 'res_r')
  redis.call('HSET', KEYS[1], 'resolved', '1', 'aud_n', n,
    'status', 'sending', 'emg', emg)
  return {1, n, emg}
end

-- This Redis process's run_id, or nil where the ACL refuses INFO.
local function run_id()
  local i = redis.pcall('INFO', 'server')
  if type(i) ~= 'string' then return nil end
  return string.match(i, 'run_id:(%x+)')
end

local rg = redis.call('HGET', KEYS[1], 'res_g')
if rg then
  -- Going on: the next `step` ids of the groups, from where the last
  -- call stopped, if that was this process; else from the start.
  local groups = cjson.decode(redis.call('HGET', KEYS[1], 'groups') or '[]')
  local cur = redis.call('HGET', KEYS[1], 'res_c') or '0'
  local rid = run_id()
  local left = step
  rg = tonumber(rg)
  if rid == nil then
    -- INFO refused since the last call: the rest at once.
    for i = 1, #groups do
      push_new(redis.call('SMEMBERS', key(P, 'grp', T, groups[i])))
    end
    return finish()
  end
  if rid ~= redis.call('HGET', KEYS[1], 'res_r') then
    rg, cur = 0, '0'
  end
  while rg < #groups and left > 0 do
    local r = redis.call('SSCAN', key(P, 'grp', T, groups[rg + 1]), cur,
      'COUNT', math.min(left, 1000))
    cur = r[1]
    push_new(r[2])
    -- A sparse table answers few ids a scan: a call still ends.
    left = left - math.max(#r[2], 100)
    if cur == '0' then rg = rg + 1 end
  end
  if rg >= #groups then return finish() end
  redis.call('HSET', KEYS[1], 'res_g', rg, 'res_c', cur, 'res_r', rid)
  return {3, redis.call('LLEN', KEYS[2])}
end

-- The first call: every name is checked before anything is written.  A
-- call that would go on while bc holds no place (Redis lost the first
-- call's writes: a failover, an AOF cut short) starts again, with the
-- names bc keeps.
local G, I = {}, {}
if ARGV[4] then
  local ng = tonumber(ARGV[4])
  for i = 5, 4 + ng do G[#G + 1] = ARGV[i] end
  for i = 5 + ng, #ARGV do I[#I + 1] = ARGV[i] end
else
  G = cjson.decode(redis.call('HGET', KEYS[1], 'groups') or '[]')
  I = cjson.decode(redis.call('HGET', KEYS[1], 'rcpt_ids') or '[]')
end
local total = #I
for i = 1, #G do
  local gk = key(P, 'grp', T, G[i])
  if redis.call('EXISTS', gk) == 0 then
    return {0, 'audience.groups[' .. (i - 1) .. ']: unknown group ' ..
      'in tenant "' .. T .. '" (see kairanctl groups list)'}
  end
  total = total + redis.call('SCARD', gk)
end
for i = 1, #I do
  if redis.call('EXISTS', key(P, 'rcpt', T, I[i])) == 0 then
    return {0, 'audience.recipients[' .. (i - 1) .. ']: ' ..
      'unknown recipient in tenant "' .. T .. '" (see kairanctl ' ..
      'recipients export)'}
  end
end

local rid = total > step and KEYS[4] and run_id()
if rid then
  -- In steps: the recipient ids now (checked above), the groups in the
  -- calls that follow.
  push_new(I)
  redis.call('HSET', KEYS[1], 'res_g', 0, 'res_c', '0', 'res_r', rid)
  return {3, redis.call('LLEN', KEYS[2])}
end

-- At once.  One group and nothing else (a class, a grade): its members
-- are already unique, and their order is fixed once written, so neither
-- the seen table nor the sort is needed (for 50,000 members that saved
-- ~50 ms before the first message could leave).
local seen, ids = {}, {}
if #G == 1 and #I == 0 then
  ids = redis.call('SMEMBERS', key(P, 'grp', T, G[1]))
else
  for i = 1, #G do
    for _, m in ipairs(redis.call('SMEMBERS', key(P, 'grp', T, G[i]))) do
      if not seen[m] then seen[m] = true; ids[#ids + 1] = m end
    end
  end
  for i = 1, #I do
    local m = I[i]
    if not seen[m] then seen[m] = true; ids[#ids + 1] = m end
  end
  table.sort(ids)
end
push(ids)
return finish()
