-- token_create: store a new token record and index it.
-- KEYS: token:<id>, tokens (set)
-- ARGV: id, field/value...
-- Returns 1, or 0 if the id exists (never overwritten).
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('SADD', KEYS[2], ARGV[1])
return 1
