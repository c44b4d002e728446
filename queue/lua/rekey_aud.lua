-- rekey_aud: rewrite one audience entry if unchanged.
-- KEYS: bc:<id>:aud
-- ARGV: index, old entry, new entry
-- Returns 1 (written) or 0 (changed or gone).
if redis.call('LINDEX', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('LSET', KEYS[1], ARGV[1], ARGV[3])
return 1
