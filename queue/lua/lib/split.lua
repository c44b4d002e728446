-- split(s): the comma-separated parts of s.
local function split(s)
  local t = {}
  for x in string.gmatch(s, '[^,]+') do t[#t + 1] = x end
  return t
end
