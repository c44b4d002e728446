-- dlq_retry: send a dead-lettered job again (operator's decision).
-- KEYS: dlq, bc, bc:r, stream, active
-- ARGV: dlq entry id, fields (comma-separated), job json (attempts reset),
--       rcpts (comma-separated, one per field, same order), bcast id, now
-- Returns 1, 0 if the entry is gone, -1 if the entry cannot be sent again
-- as it stands (fields and recipients that do not pair up, a field
-- without a channel, a key of the wrong type): nothing is written then,
-- and the entry stays in the DLQ.  Everything is checked before the first
-- write, since Redis does not undo a script's writes when it fails half
-- way (the entry was once deleted first and lost on such an error).
--#include split
local function is(k, ...)
  local t = redis.call('TYPE', k)['ok']
  for _, w in ipairs({...}) do if t == w then return true end end
  return false
end
if redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])[1] == nil then
  return 0
end
local fields, rcpts = split(ARGV[2]), split(ARGV[4])
if #fields == 0 or #fields ~= #rcpts then return -1 end
for _, field in ipairs(fields) do
  if not string.match(field, '^%a+:.') then return -1 end
end
if not is(KEYS[2], 'hash') or not is(KEYS[3], 'hash', 'none') or
   not is(KEYS[4], 'stream', 'none') or not is(KEYS[5], 'zset', 'none') then
  return -1
end
redis.call('XDEL', KEYS[1], ARGV[1])
for k, field in ipairs(fields) do
  local cur = redis.call('HGET', KEYS[3], field)
  if cur and string.sub(cur, 1, 2) == 'f|' then
    local ch = string.match(field, '^(%a+):')
    redis.call('HINCRBY', KEYS[2], 'n:' .. ch .. ':failed', -1)
    redis.call('HINCRBY', KEYS[2], 'final', -1)
  end
  redis.call('HSET', KEYS[3], field, 'q|' .. rcpts[k])
end
local st = redis.call('HGET', KEYS[2], 'status')
if st == 'done' then redis.call('HSET', KEYS[2], 'status', 'sending') end
redis.call('HDEL', KEYS[2], 'done_ms')
redis.call('ZADD', KEYS[5], ARGV[6], ARGV[5])
redis.call('XADD', KEYS[4], '*', 'j', ARGV[3])
return 1
