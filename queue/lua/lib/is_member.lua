-- is_member(r): whether recipient r belongs to the ack broadcast.
-- KEYS[1] bc, KEYS[2] bc:r, KEYS[3] bc:ack, KEYS[4] bc:m.
-- A recipient belongs when commit_page put it in the set bc:<id>:m while
-- expanding; a confirmation already recorded proves it too.  Both are O(1):
-- the cost of opening a link must not grow with the broadcast.  A broadcast
-- expanded before the set existed (no "ack_m" in bc) gets its set built
-- once from bc:r, then marked; while it is still being expanded by an older
-- kairand the scan is repeated (never marked).
local function is_member(r)
  if redis.call('SISMEMBER', KEYS[4], r) == 1 then return true end
  if redis.call('HEXISTS', KEYS[3], r) == 1 then return true end
  if redis.call('HGET', KEYS[1], 'ack_m') == '1' then return false end
  for _, v in ipairs(redis.call('HVALS', KEYS[2])) do
    local m = string.match(v, '^%a|([^|]*)')
    if m then redis.call('SADD', KEYS[4], m) end
  end
  if redis.call('HGET', KEYS[1], 'expanded') == '1' then
    redis.call('HSET', KEYS[1], 'ack_m', '1')
  end
  return redis.call('SISMEMBER', KEYS[4], r) == 1
end
