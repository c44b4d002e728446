-- is_final(v): whether a bc:<id>:r value is a final state (not queued
-- 'q|...' or waiting for a retry 'r|...'); false for nil.
local function is_final(v)
  if not v then return false end
  local c = string.sub(v, 1, 2)
  return c ~= 'q|' and c ~= 'r|'
end
