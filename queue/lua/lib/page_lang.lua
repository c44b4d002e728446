-- page_lang(lg): the language of a registration page as stored with a
-- pending sign-up (checked by kn_lang_valid before it was stored, checked
-- again here: a tag of 2-3 letters, optionally a subtag), or nil.
-- page_lang_set(g, lg, now): a guardian's "pf"."lg" (model/directory.h)
-- from that page, unless the guardian chose one already (my page).
local function page_lang(lg)
  if type(lg) ~= 'string' then return nil end
  if string.match(lg, '^[a-z][a-z][a-z]?$') or
     string.match(lg, '^[a-z][a-z][a-z]?%-[A-Za-z0-9][A-Za-z0-9]+$') then
    return lg
  end
  return nil
end
local function page_lang_set(g, lg, now)
  if not lg then return end
  if type(g.pf) ~= 'table' then g.pf = {} end
  if not g.pf.lg then
    g.pf.lg, g.pf.at = lg, tonumber(now)
  end
end
