-- bounce_ref: remember what a VERP bounce reference names (issue 18), for
-- as long as the delivery records are kept.
-- KEYS: bref:<ref>
-- ARGV: ttl ms, then field/value pairs: bc (broadcast), f (the bc:r field
--       "email:<blind index>"), r (recipient id), t (tenant), s (salt,
--       hex), h (HMAC-SHA-256(salt, normalised address), hex), c (carrier
--       domain 0|1), a (the sealed address: only kairanctl, which holds the
--       key, can open it for `suppression list`).
-- A job sent again (a retry) writes the same reference again: harmless.
-- Returns 1.
local t = redis.call('TYPE', KEYS[1])['ok']
if t ~= 'hash' and t ~= 'none' then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
