-- promote: move due retries back to their streams, atomically.
-- KEYS: retry (zset), dlq (stream)
-- ARGV: now, prefix, limit
-- A member that is not a job of a known queue goes to the DLQ.
-- Returns the number moved.
--#include keys
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1],
  'LIMIT', 0, tonumber(ARGV[3]))
for _, m in ipairs(due) do
  local ok, j = pcall(cjson.decode, m)
  local ch, pr
  if ok and type(j) == 'table' and type(j.q) == 'string' then
    ch, pr = string.match(j.q, '^(%a+):(%a+)$')
  end
  if ch then
    redis.call('XADD', key(ARGV[2], 'q', ch, pr), '*', 'j', m)
  else
    redis.call('XADD', KEYS[2], '*', 'job', m,
      'reason', 'unreadable retry entry', 'failed_ms', ARGV[1])
  end
  redis.call('ZREM', KEYS[1], m)
end
return #due
