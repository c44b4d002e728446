-- take: a token bucket shared by every kairand process, so that N
-- processes together stay under a provider's published rate.  While a
-- 429 came recently (slow_until), the rate is halved.
-- KEYS: rate:<bucket> (hash: tokens, ts, slow_until)
-- ARGV: rate per second, burst, now ms, tokens wanted
-- Returns {granted, ms to wait when nothing was granted}.
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local now, want = tonumber(ARGV[3]), tonumber(ARGV[4])
-- The bucket is kairan's own cache of a minute: a key of another
-- type there (written by someone else) is dropped, not obeyed.
local kt = redis.call('TYPE', KEYS[1])['ok']
if kt ~= 'hash' and kt ~= 'none' then redis.call('DEL', KEYS[1]) end
local h = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'slow_until')
local tokens = tonumber(h[1]) or burst
local ts = tonumber(h[2]) or now
if tonumber(h[3] or '0') > now then rate = rate / 2 end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
local got = math.min(want, math.floor(tokens))
tokens = tokens - got
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], 60000)
local wait = 0
if got == 0 then wait = math.ceil((1 - tokens) * 1000 / rate) end
return {got, wait}
