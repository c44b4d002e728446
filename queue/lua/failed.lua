-- failed: count one failure of a stream entry (shared by every process,
-- kept KN_POISON_TTL_MS), and tell the types of the keys its step
-- touches, so that the reason of a parked entry can name the wrong one.
-- KEYS: the counter (fail:<stream>:<entry>), then the keys to look at
-- ARGV: ttl ms, counted (1: count this failure, 0: only read)
-- Returns {failures, type of KEYS[2], type of KEYS[3], ...}.
local kt = redis.call('TYPE', KEYS[1])['ok']
if kt ~= 'string' and kt ~= 'none' then redis.call('DEL', KEYS[1]) end
local n
if ARGV[2] == '1' then
  n = redis.call('INCR', KEYS[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
else
  n = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
end
local out = {n}
for i = 2, #KEYS do out[i] = redis.call('TYPE', KEYS[i])['ok'] end
return out
