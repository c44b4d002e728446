-- reject: keep a broadcast that failed validation after it reached Redis.
-- KEYS: bc, rejected (zset), bcs (zset)
-- ARGV: id, now, reason, field, masked json, tenant
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'status', 'rejected',
  'reason', ARGV[3], 'field', ARGV[4], 'masked', ARGV[5],
  'tenant', ARGV[6], 'created_ms', ARGV[2], 'done_ms', ARGV[2],
  'expanded', '1', 'jobs', 0, 'final', 0)
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return 1
