-- split(s, sep): the parts of s between separators sep (default ','), empty
-- parts dropped; {} for nil.  sep is one character, not a Lua pattern
-- special one.
local function split(s, sep)
  local t = {}
  for x in string.gmatch(s or '', '[^' .. (sep or ',') .. ']+') do
    t[#t + 1] = x
  end
  return t
end
