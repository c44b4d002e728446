-- maybe_done(bc, active, id, now): a broadcast is done when it is fully
-- expanded and every job has a final state; then its status becomes done
-- (unless cancelled or rejected), done_ms is set once and it leaves the
-- active index (only if active is a zset: it is only an index).
local function maybe_done(bc, active, id, now)
  if redis.call('HGET', bc, 'expanded') ~= '1' then return end
  local jobs = tonumber(redis.call('HGET', bc, 'jobs') or '0')
  local fin = tonumber(redis.call('HGET', bc, 'final') or '0')
  if fin < jobs then return end
  local st = redis.call('HGET', bc, 'status')
  if st == 'sending' or st == 'queued' then
    redis.call('HSET', bc, 'status', 'done')
  end
  redis.call('HSETNX', bc, 'done_ms', now)
  if redis.call('TYPE', active)['ok'] == 'zset' then
    redis.call('ZREM', active, id)
  end
end
