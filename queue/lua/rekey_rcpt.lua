-- rekey_rcpt: rewrite one directory record if unchanged since it was read.
-- KEYS: rcpt:<T>:<id>
-- ARGV: old c, old name (or "" when absent), new c, new name
-- Returns 1 (written), 0 (changed meanwhile) or -1 (gone).
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local c = redis.call('HGET', KEYS[1], 'c') or ''
local n = redis.call('HGET', KEYS[1], 'name') or ''
if c ~= ARGV[1] or n ~= ARGV[2] then return 0 end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'c', ARGV[3]) end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'name', ARGV[4]) end
return 1
