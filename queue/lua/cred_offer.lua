-- cred_offer: store a provider credential shared by every kairand (an
-- APNs provider token; model/cred.h) unless another process replaced it
-- first: a compare-and-set on its generation, so that of several
-- processes renewing at once exactly one does, and the others adopt its
-- credential from the reply.
-- KEYS: cred:<provider>:<account> (hash: n, iat, early, v)
-- ARGV: the generation the offer replaces (0: none), iat ms, early (0|1),
--       the sealed value, lifetime ms (PEXPIRE)
-- Returns {1, n, iat, early, v}: stored, n its generation; or
-- {0, n, iat, early, v}: another generation is stored, this one (to
-- adopt).  Nothing stored (never, or expired) takes any offer.  A key of
-- another type is an error (WRONGTYPE): the caller keeps its own.
local kt = redis.call('TYPE', KEYS[1])['ok']
if kt ~= 'hash' and kt ~= 'none' then
  return redis.error_reply('WRONGTYPE cred key is a ' .. kt)
end
local h = redis.call('HMGET', KEYS[1], 'n', 'iat', 'early', 'v')
local n = tonumber(h[1]) or 0
if n ~= 0 and n ~= tonumber(ARGV[1]) then
  return {0, n, h[2] or '', h[3] or '', h[4] or ''}
end
n = n + 1
redis.call('HSET', KEYS[1], 'n', n, 'iat', ARGV[2], 'early', ARGV[3],
           'v', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {1, n, ARGV[2], ARGV[3], ARGV[4]}
