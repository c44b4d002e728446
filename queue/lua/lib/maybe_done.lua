-- ended_add(active, id, now): put a broadcast that has just ended into the
-- index of the just ended, the zset "ended" beside "active" (same prefix;
-- score done_ms), trimmed to the last 15 minutes as it is written: the
-- operators' list shows them on top of the active ones (broadcasts.c), so
-- that one that ended a minute ago is there however many were created
-- since.  Only an index: skipped if the key holds another type, and its
-- commands by pcall (an error here must not stop the script that records
-- results).  Trimmed with ZRANGEBYSCORE and ZREM, commands kairan's
-- Redis user had already (contrib/redis-kairan.conf): an upgrade must not
-- need a new one in its ACL for finish to work.
local function ended_add(active, id, now)
  if string.sub(active, -6) ~= 'active' then return end
  local ended = string.sub(active, 1, -7) .. 'ended'
  local t = redis.call('TYPE', ended)['ok']
  if t ~= 'zset' and t ~= 'none' then return end
  redis.pcall('ZADD', ended, now, id)
  local old = redis.pcall('ZRANGEBYSCORE', ended, '-inf',
    '(' .. (tonumber(now) - 15 * 60 * 1000), 'LIMIT', 0, 100)
  if type(old) == 'table' and #old > 0 then
    redis.pcall('ZREM', ended, unpack(old))
  end
end
-- maybe_done(bc, active, id, now): a broadcast is done when it is fully
-- expanded and every job has a final state; then its status becomes done
-- (unless cancelled or rejected), done_ms is set once, it leaves the
-- active index (only if active is a zset: it is only an index) and enters
-- the index of the just ended.
local function maybe_done(bc, active, id, now)
  if redis.call('HGET', bc, 'expanded') ~= '1' then return end
  local jobs = tonumber(redis.call('HGET', bc, 'jobs')) or 0
  local fin = tonumber(redis.call('HGET', bc, 'final')) or 0
  if fin < jobs then return end
  local st = redis.call('HGET', bc, 'status')
  if st == 'sending' or st == 'queued' then
    redis.call('HSET', bc, 'status', 'done')
  end
  if redis.call('HSETNX', bc, 'done_ms', now) == 1 then
    ended_add(active, id, now)
  end
  if redis.call('TYPE', active)['ok'] == 'zset' then
    redis.call('ZREM', active, id)
  end
end
