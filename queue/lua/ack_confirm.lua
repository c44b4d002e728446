-- ack_confirm: record confirmations, each once.
-- KEYS: bc, bc:r, bc:ack, bc:m, and (optional) bc:fam
-- ARGV: rcpt (of the link), now, then the children to confirm: none means
--       rcpt itself; '*' every child of the link (rcpt and its siblings in
--       bc:fam); an id that is neither rcpt nor one of those is ignored
--       (a link confirms only the children of its guardian).
-- The confirmation of a child is the field bc:ack[<child id>] = time ms.
-- Returns the number recorded now (0: all already confirmed), -1 (no ack
-- broadcast or not a recipient of it).
--#include is_member
if redis.call('HGET', KEYS[1], 'ack') ~= '1' then return -1 end
if not is_member(ARGV[1]) then return -1 end
local kids = {[ARGV[1]] = true}
if KEYS[5] then
  for x in string.gmatch(redis.call('HGET', KEYS[5], ARGV[1]) or '', '[^;]+') do
    kids[x] = true
  end
end
local want = {}
if #ARGV < 3 then want[1] = ARGV[1] end
for i = 3, #ARGV do
  if ARGV[i] == '*' then
    for k in pairs(kids) do want[#want + 1] = k end
  elseif kids[ARGV[i]] then
    want[#want + 1] = ARGV[i]
  end
end
local n = 0
for _, k in ipairs(want) do
  if redis.call('HSETNX', KEYS[3], k, ARGV[2]) == 1 then
    redis.call('HINCRBY', KEYS[1], 'acked', 1)
    n = n + 1
  end
end
return n
