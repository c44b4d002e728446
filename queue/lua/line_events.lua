-- line_events: follow / unfollow events of the LINE webhook, applied in
-- the order of their own time, not of their arrival (LINE redelivers
-- events: an old "unfollow" must not mark a user dead again after a newer
-- "follow").  The hash line:event_ms keeps, per user's blind index (never
-- the user id), the time of the latest event applied; an older event is
-- ignored.  An event without a time (0) applies only to a user without a
-- recorded one with a time.
-- KEYS: dead:line (set), line:event_ms (hash)
-- ARGV: triples: "dead" | "alive", bindex, event ms
-- Returns the number of events applied.
local n = 0
for i = 1, #ARGV - 2, 3 do
  local bi, ts = ARGV[i + 1], tonumber(ARGV[i + 2]) or 0
  local last = tonumber(redis.call('HGET', KEYS[2], bi) or '-1')
  if ts >= last then
    if ARGV[i] == 'dead' then redis.call('SADD', KEYS[1], bi)
    else redis.call('SREM', KEYS[1], bi) end
    if ts > last then redis.call('HSET', KEYS[2], bi, ts) end
    n = n + 1
  end
end
return n
