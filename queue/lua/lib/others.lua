-- others(out, c, gs, skip): append to out the sealed e-mail addresses of a
-- child's contacts who are told of a new guardian (issue 15: a lost sheet
-- must not silently add a stranger): the directory record's (c, its JSON,
-- or nil: the record itself and its "g") and the registrations' (gs, the
-- decoded reg:<T>:<id> "g"), each address once (by its blind index "ei"),
-- none whose index is skip (the new guardian's own; nil: none).
local function others(out, c, gs, skip)
  local seen = {}
  if skip then seen[skip] = true end
  local function told(o)
    if type(o) == 'table' and type(o.e) == 'string' and type(o.ei) == 'string'
        and not seen[o.ei] then
      seen[o.ei] = true
      out[#out + 1] = o.e
    end
  end
  if c then
    local ok, o = pcall(cjson.decode, c)
    if ok and type(o) == 'table' then
      told(o)
      if type(o.g) == 'table' then
        for _, g in ipairs(o.g) do told(g) end
      end
    end
  end
  for _, g in ipairs(gs) do told(g) end
end
