-- ack_confirm: record confirmations (with their answer), each once.
-- KEYS: bc, bc:r, bc:ack, bc:m, and (optional) bc:fam
-- ARGV: rcpt (of the link), now, value, answer, then the children to
--       confirm: none means rcpt itself; '*' every child of the link (rcpt
--       and its siblings in bc:fam); an id that is neither rcpt nor one of
--       those is ignored (a link confirms only the children of its
--       guardian).
--   value: what bc:ack keeps for each child, the JSON {"t": ms, "a": index,
--          "c": sealed comment} of model/broadcast.h (kn_ack_value); ''
--          or absent: now (the plain time of confirmations before answers)
--   answer: the index of the chosen answer, '' (or absent) for none
-- The confirmation of a child is the field bc:ack[<child id>] = value.
-- Returns the number recorded now ("acked" and the answer's "ans:<index>"
-- counted in bc for each; 0: all already confirmed), -1 (no ack broadcast
-- or not a recipient of it), -2 (the broadcast has "choices" and answer is
-- not the index of one of them), -3 (an answer to a broadcast without
-- choices).
--#include is_member
local h = redis.call('HMGET', KEYS[1], 'ack', 'nchoices')
if h[1] ~= '1' then return -1 end
if not is_member(ARGV[1]) then return -1 end
local nc = tonumber(h[2] or '0') or 0
local a = ARGV[4] or ''
if nc > 0 then
  local i = tonumber(a)
  if i == nil or i < 0 or i >= nc or i ~= math.floor(i) or
     tostring(i) ~= a then
    return -2
  end
elseif a ~= '' then
  return -3
end
local value = ARGV[3]
if value == nil or value == '' then value = ARGV[2] end
local kids = {[ARGV[1]] = true}
if KEYS[5] then
  for x in string.gmatch(redis.call('HGET', KEYS[5], ARGV[1]) or '', '[^;]+') do
    kids[x] = true
  end
end
local want = {}
if #ARGV < 5 then want[1] = ARGV[1] end
for i = 5, #ARGV do
  if ARGV[i] == '*' then
    for k in pairs(kids) do want[#want + 1] = k end
  elseif kids[ARGV[i]] then
    want[#want + 1] = ARGV[i]
  end
end
local n = 0
for _, k in ipairs(want) do
  if redis.call('HSETNX', KEYS[3], k, value) == 1 then
    redis.call('HINCRBY', KEYS[1], 'acked', 1)
    if a ~= '' then redis.call('HINCRBY', KEYS[1], 'ans:' .. a, 1) end
    n = n + 1
  end
end
return n
