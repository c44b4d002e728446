-- resolve: append the directory part of the audience (groups and
-- recipient ids, de-duplicated; sorted unless a single group) to bc:aud,
-- once, and decide once whether the broadcast is of an emergency category
-- (issue 16: the built-in "emergency" or one the tenant's list cats:<T>
-- flags "emergency"; model/label.c kn_category_emergency, keep them
-- equal), stored as "emg" ("1"/"0") in bc: the expander ignores guardians'
-- opt-outs for it and the worker gives its e-mail no List-Unsubscribe.
-- KEYS: bc, bc:aud, cats (the tenant's categories; optional)
-- ARGV: prefix, tenant, ngroups, groups..., recipient ids...
-- Returns {1, audience size, emg (0/1)}, {0, reason} for an unknown group or
-- recipient (nothing written; the reason names its place, e.g.
-- "audience.groups[2]", never the value: reasons are shown to the
-- operators of every tenant), or {2, 0} if cancelled.
--#include keys
local st = redis.call('HGET', KEYS[1], 'status')
if st == 'cancelled' then return {2, 0} end
if redis.call('HGET', KEYS[1], 'resolved') == '1' then
  return {1, tonumber(redis.call('HGET', KEYS[1], 'aud_n')),
    redis.call('HGET', KEYS[1], 'emg') == '1' and 1 or 0}
end
local P, T = ARGV[1], ARGV[2]
local ng = tonumber(ARGV[3])
local seen, ids = {}, {}
-- One group and nothing else (a class, a grade, a whole board of
-- education): its members are already unique, and their order is fixed
-- once written, so neither the seen table nor the sort is needed.  For
-- 50,000 members that saves ~50 ms before the first message can leave.
local single = ng == 1 and #ARGV == 4
for i = 4, 3 + ng do
  local gk = key(P, 'grp', T, ARGV[i])
  if redis.call('EXISTS', gk) == 0 then
    return {0, 'audience.groups[' .. (i - 4) .. ']: unknown group ' ..
      'in tenant "' .. T .. '" (see kairanctl groups list)'}
  end
  if single then
    ids = redis.call('SMEMBERS', gk)
  else
    for _, m in ipairs(redis.call('SMEMBERS', gk)) do
      if not seen[m] then seen[m] = true; ids[#ids + 1] = m end
    end
  end
end
for i = 4 + ng, #ARGV do
  local m = ARGV[i]
  if redis.call('EXISTS', key(P, 'rcpt', T, m)) == 0 then
    return {0, 'audience.recipients[' .. (i - 4 - ng) .. ']: ' ..
      'unknown recipient in tenant "' .. T .. '" (see kairanctl ' ..
      'recipients export)'}
  end
  if not seen[m] then seen[m] = true; ids[#ids + 1] = m end
end
if not single then table.sort(ids) end
for i = 1, #ids, 1000 do
  local chunk = {}
  for j = i, math.min(i + 999, #ids) do
    chunk[#chunk + 1] = 'd:' .. ids[j]
  end
  redis.call('RPUSH', KEYS[2], unpack(chunk))
end
local n = redis.call('LLEN', KEYS[2])
local emg = 0
do
  local cat = redis.call('HGET', KEYS[1], 'category')
  if cat == 'emergency' then
    emg = 1
  elseif cat and KEYS[3] then
    local fl = redis.call('HGET', KEYS[3], cat)
    if fl and string.find(fl, 'emergency', 1, true) then emg = 1 end
  end
end
redis.call('HSET', KEYS[1], 'resolved', '1', 'aud_n', n,
  'status', 'sending', 'emg', emg)
return {1, n, emg}
