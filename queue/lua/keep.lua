-- keep: reset the idle time of jobs a worker holds (waiting for a send
-- slot), so that no other process's XAUTOCLAIM takes them over; only
-- those still pending for this consumer.
-- KEYS: urgent stream, normal stream
-- ARGV: group, consumer, then pairs: 1 (urgent) | 2 (normal), entry id
-- Returns the pairs no longer pending for this consumer (taken over by
-- another process, or already recorded).
local lost = {}
for i = 3, #ARGV - 1, 2 do
  local key, id = KEYS[tonumber(ARGV[i])], ARGV[i + 1]
  local p = redis.call('XPENDING', key, ARGV[1], id, id, 1, ARGV[2])
  if #p == 1 then
    redis.call('XCLAIM', key, ARGV[1], ARGV[2], 0, id, 'JUSTID')
  else
    lost[#lost + 1] = ARGV[i]
    lost[#lost + 1] = id
  end
end
return lost
