-- Key names built from data a script reads (a group's members, a job's
-- queue): the one way to build them in Lua, the twin of queue/keys.c.
-- kp(s): kn_key_part: every byte but letters, digits, '.', '_', '-'
-- becomes %XX, so a part never holds the ':' that separates the parts.
-- key(P, kind, ...): P .. kind, then ':' .. kp(part) for each part; P is
-- the prefix, which the script gets in ARGV.  (A tenant is checked by the
-- C callers, so kp() leaves it as it is: "groups:<T>" is the key C builds.)
-- Keys known before the call are passed in KEYS, never built here.
local function kp(s)
  return (string.gsub(s, '[^0-9A-Za-z_%.%-]', function(c)
    return string.format('%%%02X', string.byte(c))
  end))
end
local function key(P, kind, ...)
  local k = P .. kind
  for _, part in ipairs({...}) do k = k .. ':' .. kp(part) end
  return k
end
