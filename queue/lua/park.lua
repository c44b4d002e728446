-- park: give up on a broadcasts entry that failed too often.  The
-- broadcast becomes `rejected` with the reason (jobs already enqueued
-- still end normally; maybe_done finishes it); if its own hash holds the
-- wrong type the reason goes to the DLQ instead, with the tenant.  The
-- entry leaves its stream, its failure count is dropped.  Each write is
-- done only on a key of the right type, so this never fails half way.
-- KEYS: bc, rejected (zset), active (zset), dlq, stream, counter
-- ARGV: id, now, reason, field, group, entry id, tenant
-- Returns 1 (rejected) or 2 (its hash unusable: in the DLQ).
--#include maybe_done
local function kind(k) return redis.call('TYPE', k)['ok'] end
local bc, now = KEYS[1], ARGV[2]
local out = 2
local bt = kind(bc)
if bt == 'hash' or bt == 'none' then
  local st = redis.call('HGET', bc, 'status')
  if st ~= 'done' and st ~= 'cancelled' then
    redis.call('HSET', bc, 'status', 'rejected', 'reason', ARGV[3],
      'field', ARGV[4], 'expanded', '1', 'rejected_ms', now)
    redis.call('HSETNX', bc, 'id', ARGV[1])
    redis.call('HSETNX', bc, 'created_ms', now)
    if ARGV[7] ~= '' then redis.call('HSETNX', bc, 'tenant', ARGV[7]) end
    redis.call('HSETNX', bc, 'jobs', 0)
    redis.call('HSETNX', bc, 'final', 0)
    local jobs = tonumber(redis.call('HGET', bc, 'jobs')) or 0
    local fin = tonumber(redis.call('HGET', bc, 'final')) or 0
    if fin >= jobs then
      if redis.call('HSETNX', bc, 'done_ms', now) == 1 then
        ended_add(KEYS[3], ARGV[1], now)
      end
      if kind(KEYS[3]) == 'zset' then redis.call('ZREM', KEYS[3], ARGV[1]) end
    end
    local rt = kind(KEYS[2])
    if rt == 'zset' or rt == 'none' then
      redis.call('ZADD', KEYS[2], now, ARGV[1])
    end
  end
  out = 1
else
  local dt = kind(KEYS[4])
  if dt == 'stream' or dt == 'none' then
    redis.call('XADD', KEYS[4], '*', 'stream', KEYS[5], 'entry', ARGV[6],
      'bc', ARGV[1], 'tenant', ARGV[7], 'reason', ARGV[3],
      'failed_ms', now)
  end
end
if kind(KEYS[5]) == 'stream' then
  redis.call('XACK', KEYS[5], ARGV[5], ARGV[6])
  redis.call('XDEL', KEYS[5], ARGV[6])
end
redis.call('DEL', KEYS[6])
return out
