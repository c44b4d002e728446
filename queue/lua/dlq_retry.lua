-- dlq_retry: send a dead-lettered job again (operator's decision).
-- KEYS: dlq, bc, bc:r, stream, active
-- ARGV: dlq entry id, fields (comma-separated), job json (attempts reset),
--       rcpts (comma-separated), bcast id, now
-- Returns 1, or 0 if the entry is gone.
--#include split
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
local fields, rcpts = split(ARGV[2]), split(ARGV[4])
for k, field in ipairs(fields) do
  local cur = redis.call('HGET', KEYS[3], field)
  if cur and string.sub(cur, 1, 2) == 'f|' then
    local ch = string.match(field, '^(%a+):')
    redis.call('HINCRBY', KEYS[2], 'n:' .. ch .. ':failed', -1)
    redis.call('HINCRBY', KEYS[2], 'final', -1)
  end
  redis.call('HSET', KEYS[3], field, 'q|' .. (rcpts[k] or ''))
end
local st = redis.call('HGET', KEYS[2], 'status')
if st == 'done' then redis.call('HSET', KEYS[2], 'status', 'sending') end
redis.call('HDEL', KEYS[2], 'done_ms')
redis.call('ZADD', KEYS[5], ARGV[6], ARGV[5])
redis.call('XADD', KEYS[4], '*', 'j', ARGV[3])
return 1
