-- precheck: what a worker must know before sending.
-- KEYS: bc, bc:r
-- ARGV: field
-- Returns {status, expires_ms, recipient state}: a member of a multicast
-- recorded once (lib/group.lua) reads as its group's record says.
--#include is_final
--#include group
local v = redis.call('HMGET', KEYS[1], 'status', 'expires_ms')
local r = resolved(KEYS[2], redis.call('HGET', KEYS[2], ARGV[1]), {})
return {v[1] or '', v[2] or '0', r or ''}
