-- submit: store a new broadcast, its inline audience, and announce it.
-- KEYS: bc, bc:aud, broadcasts, bcs (zset), active (zset), idem (hash of
--       the tenant: idempotency key -> name)
-- ARGV: name, now, key ("" for none), nfields, field/value...,
--       audience entries...
-- Also counts broadcasts per category in the hash "categories" (beside
-- "bcs").
-- Returns {1, name}, or {0, name} of the broadcast this tenant already
-- submitted with the same key (or of the same name), creating nothing; or
-- an error "WRONGTYPE <key> holds a ..." before any write when one of
-- these keys holds the wrong type.
local want = {'hash', 'list', 'stream', 'zset', 'zset', 'hash'}
local ck = string.gsub(KEYS[4], 'bcs$', 'categories')
-- Every key's type first: Redis does not undo the writes of a script
-- that fails half way (a broadcast stored but never announced).
local keys = {KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], ck}
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
