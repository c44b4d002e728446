-- token_revoke: mark a token revoked (the record stays).
-- KEYS: token:<id>
-- ARGV: now
-- Returns 1, 0 if it was already revoked, -1 if unknown.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local r = redis.call('HGET', KEYS[1], 'revoked_ms')
if r and r ~= '0' and r ~= '' then return 0 end
redis.call('HSET', KEYS[1], 'revoked_ms', ARGV[1])
return 1
