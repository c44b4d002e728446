-- submit: store a new broadcast, its inline audience, and announce it.
-- KEYS: bc, bc:aud, broadcasts, bcs (zset), active (zset), idem (hash of
--       the tenant: idempotency key -> name), categories (hash: category ->
--       broadcasts), cats (hash of the tenant: its own categories -> flags),
--       tbcs (zset of the tenant: its broadcasts by created time, as bcs)
--       and, for a large audience (queue/submit.h, kn_submit_tx), the
--       staging list bc:aud_in that the same MULTI filled just before
-- ARGV: name, now, key ("" for none), nfields, field/value...,
--       audience entries... (with the staging list instead: their count;
--       the list becomes bc:aud when the broadcast is stored, and is
--       deleted whenever nothing is)
-- Returns {1, name}, or {0, name} of the broadcast this tenant already
-- submitted with the same key (or of the same name), creating nothing;
-- {2, reason} when the category is neither built in (notice, event,
-- drill, emergency: model/label.c's kn_category_builtin, keep them equal) nor in
-- the tenant's list, creating nothing; or
-- an error "WRONGTYPE <key> holds a ..." before any write when one of
-- these keys holds the wrong type, or "ERR the audience reached Redis
-- incomplete" when the staging list is short.
local want = {'hash', 'list', 'stream', 'zset', 'zset', 'hash', 'hash',
  'hash', 'zset'}
local ck = KEYS[7]
local tb = KEYS[9]
local stage = KEYS[10]
local function refuse(reply)
  if stage then redis.call('DEL', stage) end
  return reply
end
-- Every key's type first: Redis does not undo the writes of a script
-- that fails half way (a broadcast stored but never announced).
local keys = {KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], ck,
  KEYS[8], tb}
for i, k in ipairs(keys) do
  local t = redis.call('TYPE', k)['ok']
  if t ~= 'none' and t ~= (want[i] or 'hash') then
    return refuse(redis.error_reply('WRONGTYPE ' .. k .. ' holds a ' .. t ..
      ' where kairan keeps a ' .. (want[i] or 'hash') ..
      '; delete the stray key'))
  end
end
if ARGV[3] ~= '' then
  local prev = redis.call('HGET', KEYS[6], ARGV[3])
  if prev then return refuse({0, prev}) end
end
if redis.call('EXISTS', KEYS[1]) == 1 then return refuse({0, ARGV[1]}) end
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
    return refuse({2, 'not one of the tenant\'s categories'})
  end
end
local last = 4 + tonumber(ARGV[4])
local inline_n = #ARGV - last
if stage then
  -- Every RPUSH of the transaction must have landed (one refused for
  -- memory would leave a hole in the audience).
  inline_n = tonumber(ARGV[last + 1])
  local got = redis.call('LLEN', stage)
  if got ~= inline_n then
    return refuse(redis.error_reply('ERR the audience reached Redis ' ..
      'incomplete (' .. got .. ' of ' .. inline_n .. ' entries); submit ' ..
      'again'))
  end
end
local i = 5
while i <= last do
  local hi = math.min(i + 999, last)
  redis.call('HSET', KEYS[1], unpack(ARGV, i, hi))
  i = hi + 1
end
i = last + 1
if stage then
  -- bc:aud of a broadcast that is not there (checked above) is a stray.
  redis.call('DEL', KEYS[2])
  if inline_n > 0 then redis.call('RENAMENX', stage, KEYS[2]) end
  i = #ARGV + 1
end
while i <= #ARGV do
  local hi = math.min(i + 999, #ARGV)
  redis.call('RPUSH', KEYS[2], unpack(ARGV, i, hi))
  i = hi + 1
end
redis.call('HSET', KEYS[1], 'status', 'queued', 'inline_n', inline_n)
if ARGV[3] ~= '' then redis.call('HSET', KEYS[6], ARGV[3], ARGV[1]) end
local cat = redis.call('HGET', KEYS[1], 'category')
if cat then
  redis.call('HINCRBY', ck, cat, 1)
end
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[5], ARGV[2], ARGV[1])
if tb then redis.call('ZADD', tb, ARGV[2], ARGV[1]) end
redis.call('XADD', KEYS[3], '*', 'id', ARGV[1])
return {1, ARGV[1]}
