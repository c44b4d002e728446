-- submit: store a new broadcast, its inline audience, and announce it.
-- KEYS: bc, bc:aud, broadcasts, bcs (zset), active (zset), idem (hash of
--       the tenant: idempotency key -> name), categories (hash: category ->
--       broadcasts), cats (hash of the tenant: its own categories -> flags)
-- ARGV: name, now, key ("" for none), nfields, field/value...,
--       audience entries...
-- Returns {1, name}, or {0, name} of the broadcast this tenant already
-- submitted with the same key (or of the same name), creating nothing;
-- {2, reason} when the category is neither built in (notice, event,
-- drill, emergency: model/label.c's kn_category_builtin, keep them equal) nor in
-- the tenant's list, creating nothing; or
-- an error "WRONGTYPE <key> holds a ..." before any write when one of
-- these keys holds the wrong type.
local want = {'hash', 'list', 'stream', 'zset', 'zset', 'hash', 'hash',
  'hash'}
local ck = KEYS[7]
-- Every key's type first: Redis does not undo the writes of a script
-- that fails half way (a broadcast stored but never announced).
local keys = {KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], ck,
  KEYS[8]}
for i, k in ipairs(keys) do
  local t = redis.call('TYPE', k)['ok']
  if t ~= 'none' and t ~= (want[i] or 'hash') then
    return redis.error_reply('WRONGTYPE ' .. k .. ' holds a ' .. t ..
      ' where kairan keeps a ' .. (want[i] or 'hash') ..
      '; delete the stray key')
  end
end
if ARGV[3] ~= '' then
  local prev = redis.call('HGET', KEYS[6], ARGV[3])
  if prev then return {0, prev} end
end
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, ARGV[1]} end
local builtin = {notice = true, event = true, drill = true,
  emergency = true}
do
  local cat = nil
  local last0 = 4 + tonumber(ARGV[4])
  for j = 5, last0, 2 do
    if ARGV[j] == 'category' then cat = ARGV[j + 1] end
  end
  if cat and not builtin[cat] and
      redis.call('HEXISTS', KEYS[8], cat) == 0 then
    return {2, 'not one of the tenant\'s categories'}
  end
end
local last = 4 + tonumber(ARGV[4])
local i = 5
while i <= last do
  local hi = math.min(i + 999, last)
  redis.call('HSET', KEYS[1], unpack(ARGV, i, hi))
  i = hi + 1
end
i = last + 1
while i <= #ARGV do
  local hi = math.min(i + 999, #ARGV)
  redis.call('RPUSH', KEYS[2], unpack(ARGV, i, hi))
  i = hi + 1
end
redis.call('HSET', KEYS[1], 'status', 'queued', 'inline_n', #ARGV - last)
if ARGV[3] ~= '' then redis.call('HSET', KEYS[6], ARGV[3], ARGV[1]) end
local cat = redis.call('HGET', KEYS[1], 'category')
if cat then
  redis.call('HINCRBY', ck, cat, 1)
end
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[5], ARGV[2], ARGV[1])
redis.call('XADD', KEYS[3], '*', 'id', ARGV[1])
return {1, ARGV[1]}
