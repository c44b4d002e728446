-- expand_done: the whole audience is enqueued (or the broadcast was
-- cancelled during expansion).
-- KEYS: bc, active
-- ARGV: id, now
--#include maybe_done
redis.call('HSET', KEYS[1], 'expanded', '1')
maybe_done(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
return redis.call('HGET', KEYS[1], 'status')
