-- promote: move due retries back to their streams, atomically.
-- KEYS: retry (zset)
-- ARGV: now, prefix, limit
-- Returns the number moved.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1],
  'LIMIT', 0, tonumber(ARGV[3]))
for _, m in ipairs(due) do
  local ok, j = pcall(cjson.decode, m)
  if ok and type(j) == 'table' and type(j.q) == 'string' and
     string.match(j.q, '^%a+:%a+$') then
    redis.call('XADD', ARGV[2] .. 'q:' .. j.q, '*', 'j', m)
  else
    redis.call('XADD', ARGV[2] .. 'dlq', '*', 'job', m,
      'reason', 'unreadable retry entry', 'failed_ms', ARGV[1])
  end
  redis.call('ZREM', KEYS[1], m)
end
return #due
