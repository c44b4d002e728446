-- rstates: the records of some recipients of a broadcast, as HMGET reads
-- them, except that a member of a LINE multicast recorded once
-- (lib/group.lua) reads as its group's record says: 'd|<rcpt>|<ms>|
-- <detail>' once LINE accepted it, 'q|<rcpt>' before.
-- KEYS: bc:r
-- ARGV: fields
-- Returns one value per field, nil for none (HMGET's reply).
--#include is_final
--#include group
local out, gc = {}, {}
local n = #ARGV
-- HMGET in parts: Lua's unpack takes about 8,000 values, a page of the
-- recipients view up to 16,000 fields.
for s = 1, n, 1000 do
  local e = math.min(s + 999, n)
  local v = redis.call('HMGET', KEYS[1], unpack(ARGV, s, e))
  for k = 1, #v do
    out[s + k - 1] = v[k] and resolved(KEYS[1], v[k], gc) or false
  end
end
return out
