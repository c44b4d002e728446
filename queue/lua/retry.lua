-- retry: park a job in the retry zset until due.
-- KEYS: stream, retry (zset), bc:r
-- ARGV: group, entry id, due ms, new job json, fields (comma-separated),
--       rcpts (comma-separated), detail
-- Returns 1, or 0 if every field is already final (nothing parked), or
-- an error "WRONGTYPE <key> holds a ..." before any write when a key
-- holds the wrong type (the job is then dead-lettered by the worker).
-- A member of a multicast recorded once (lib/group.lua) that was delivered
-- is final; any other member of a group marks its group first.
--#include is_final
--#include group
--#include split
local want = {'stream', 'zset', 'hash'}
for i, k in ipairs(KEYS) do
  local t = redis.call('TYPE', k)['ok']
  if t ~= 'none' and t ~= want[i] then
    return redis.error_reply('WRONGTYPE ' .. k .. ' holds a ' .. t ..
      ' where kairan keeps a ' .. want[i])
  end
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
local fields, rcpts = split(ARGV[5]), split(ARGV[6])
local open, gc = 0, {}
for k, field in ipairs(fields) do
  if not member_final(KEYS[3], redis.call('HGET', KEYS[3], field), gc) then
    redis.call('HSET', KEYS[3], field, 'r|' .. (rcpts[k] or '') .. '|' ..
      ARGV[7])
    open = open + 1
  end
end
if open == 0 then return 0 end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
return 1
