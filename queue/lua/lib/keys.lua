-- kp(s): the Lua twin of kn_key_part (queue/keys.c): every byte but
-- letters, digits, '.', '_', '-' becomes %XX, so a part never holds the ':'
-- that separates the parts of a key name.
local function kp(s)
  return (string.gsub(s, '[^0-9A-Za-z_%.%-]', function(c)
    return string.format('%%%02X', string.byte(c))
  end))
end
