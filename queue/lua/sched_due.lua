-- sched_due: move scheduled broadcasts (send_at) that are due back to the
-- broadcasts stream, at most 100 a call.
-- KEYS: sched (zset: broadcast name by due ms), broadcasts (stream)
-- ARGV: now ms
-- Returns the number moved.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100)
for _, id in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'id', id)
  redis.call('ZREM', KEYS[1], id)
end
return #due
