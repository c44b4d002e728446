-- rcpt_active: set active to ARGV[4] on an existing recipient.
-- ARGV: prefix, tenant, id, "1"|"0", now.  Returns 1, or 0 if unknown.
--#include keys
local k = key(ARGV[1], 'rcpt', ARGV[2], ARGV[3])
if redis.call('EXISTS', k) == 0 then return 0 end
if redis.call('HGET', k, 'active') ~= ARGV[4] then
  redis.call('HSET', k, 'active', ARGV[4], 'updated_ms', ARGV[5])
end
return 1
