-- ack_confirm: record a recipient's confirmation, once.
-- KEYS: bc, bc:r, bc:ack, bc:m
-- ARGV: rcpt, now
-- Returns 1 (recorded), 0 (already confirmed), -1 (no ack broadcast or not
-- a recipient of it).
--#include is_member
if redis.call('HGET', KEYS[1], 'ack') ~= '1' then return -1 end
if not is_member(ARGV[1]) then return -1 end
if redis.call('HSETNX', KEYS[3], ARGV[1], ARGV[2]) == 0 then
  return 0
end
redis.call('HINCRBY', KEYS[1], 'acked', 1)
return 1
