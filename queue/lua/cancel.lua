-- cancel: stop a broadcast; queued jobs are skipped as they come up.
-- KEYS: bc, active
-- ARGV: id, now
-- Returns 'cancelled' when this call cancelled it, 'already:<status>' when
-- it had ended or was cancelled before, '' if the broadcast is unknown.
--#include maybe_done
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return '' end
if st == 'done' or st == 'rejected' or st == 'cancelled' then
  return 'already:' .. st
end
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'cancelled_ms',
  ARGV[2])
maybe_done(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
return 'cancelled'
