-- fallback: a recipient's channel failed for good (policy preferred):
-- enqueue the next channel's job, once.
-- KEYS: bc, bc:r, stream of the next channel
-- ARGV: field of the next channel, rcpt, job json
-- Returns 1 if enqueued, 0 if that address already had a job.
if redis.call('HSETNX', KEYS[2], ARGV[1], 'q|' .. ARGV[2]) == 0 then
  return 0
end
local ch = string.match(ARGV[1], '^(%a+):')
redis.call('HINCRBY', KEYS[1], 'n:' .. ch .. ':total', 1)
redis.call('HINCRBY', KEYS[1], 'n:' .. ch .. ':fallback', 1)
redis.call('HINCRBY', KEYS[1], 'jobs', 1)
redis.call('XADD', KEYS[3], '*', 'j', ARGV[3])
return 1
