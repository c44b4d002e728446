-- is_final(v): whether a bc:<id>:r value is a final state (not queued
-- 'q|...' or waiting for a retry 'r|...'); false for nil.  By bytes, so
-- that no string is made per call (finish runs it for each of a
-- multicast job's 500 members).
local function is_final(v)
  if not v then return false end
  local c, bar = string.byte(v, 1, 2)
  return bar ~= 124 or (c ~= 113 and c ~= 114) -- '|', 'q', 'r'
end
