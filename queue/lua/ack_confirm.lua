-- ack_confirm: record a recipient's confirmation (and answer), once.
-- KEYS: bc, bc:r, bc:ack, bc:m
-- ARGV: rcpt, now, value, answer
--   value: what bc:ack keeps for rcpt, the JSON {"t": ms, "a": index,
--          "c": sealed comment} of model/broadcast.h (kn_ack_value);
--          absent: now (the plain time of confirmations before answers)
--   answer: the index of the chosen answer, "" (or absent) for none
-- Returns 1 (recorded; "acked" and the answer's "ans:<index>" counted in
-- bc), 0 (already confirmed: nothing changes), -1 (no ack broadcast or not
-- a recipient of it), -2 (the broadcast has "choices" and answer is not
-- the index of one of them), -3 (an answer to a broadcast without choices).
--#include is_member
local h = redis.call('HMGET', KEYS[1], 'ack', 'nchoices')
if h[1] ~= '1' then return -1 end
if not is_member(ARGV[1]) then return -1 end
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then return 0 end
local n = tonumber(h[2] or '0') or 0
local a = ARGV[4] or ''
if n > 0 then
  local i = tonumber(a)
  if i == nil or i < 0 or i >= n or i ~= math.floor(i) or
     tostring(i) ~= a then
    return -2
  end
elseif a ~= '' then
  return -3
end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3] or ARGV[2])
redis.call('HINCRBY', KEYS[1], 'acked', 1)
if a ~= '' then redis.call('HINCRBY', KEYS[1], 'ans:' .. a, 1) end
return 1
