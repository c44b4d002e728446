-- pref_set: change what one guardian chose (issue 16; model/directory.h
-- "pf": lg language, ch channel order, ox categories opted out of, xc
-- channels stopped, at time of the change).  The guardian is found by the blind index of one
-- of its addresses (ei, li or a push token's ti) among the child's
-- guardians: the directory record rcpt:<T>:<C> "c" (the record itself is
-- the first guardian, then its "g") and the registrations reg:<T>:<C> "g".
-- The caller has checked every value (kn_lang_valid, channel names, that
-- a category is not an emergency one); this script only applies them.
-- ARGV: prefix, tenant, child, index, now_ms, patch (JSON object):
--   {"lg": "en"}             set the language
--   {"ch": ["line", ...]}    set the channel order ([] clears it)
--   {"ox_add": "行事"}       opt out of a category
--   {"ox_del": "行事"}       opt in again
--   {"ox": ["行事", ...]}    set the whole list
--   {"xc": ["email", ...]}   set the channels stopped ([] clears it)
-- (several members at once are applied in that order).
-- Returns {1, old pf JSON, new pf JSON} when something changed,
-- {0, pf JSON, pf JSON} when nothing did, {-1} when no guardian of the
-- child has that index (or the child is unknown), {-2} for a patch that
-- is not a JSON object.
--#include keys
local P, T, C, I, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local okp, patch = pcall(cjson.decode, ARGV[6])
if not okp or type(patch) ~= 'table' then return {-2} end

local function has(o)
  if type(o) ~= 'table' then return false end
  if o.ei == I or o.li == I then return true end
  if type(o.p) == 'table' then
    for _, t in ipairs(o.p) do
      if type(t) == 'table' and t.ti == I then return true end
    end
  end
  return false
end

local function enc(pf)
  if pf == nil then return '{}' end
  return cjson.encode(pf)
end

local function same_list(a, b)
  a, b = a or {}, b or {}
  if #a ~= #b then return false end
  for i = 1, #a do
    if a[i] ~= b[i] then return false end
  end
  return true
end

local function copy_list(a)
  local out = {}
  if type(a) == 'table' then
    for _, v in ipairs(a) do out[#out + 1] = v end
  end
  return out
end

-- Apply the patch to guardian g; returns old pf JSON, new pf JSON and
-- whether anything changed (the time "at" alone is no change).
local function apply(g)
  local cur = type(g.pf) == 'table' and g.pf or {}
  local old = enc(g.pf)
  local lg, ch, ox = cur.lg, copy_list(cur.ch), copy_list(cur.ox)
  local xc = copy_list(cur.xc)
  if type(patch.lg) == 'string' then lg = patch.lg end
  if type(patch.xc) == 'table' then xc = copy_list(patch.xc) end
  if type(patch.ch) == 'table' then ch = copy_list(patch.ch) end
  if type(patch.ox) == 'table' then ox = copy_list(patch.ox) end
  if type(patch.ox_add) == 'string' then
    local found = false
    for _, c in ipairs(ox) do found = found or c == patch.ox_add end
    if not found then ox[#ox + 1] = patch.ox_add end
  end
  if type(patch.ox_del) == 'string' then
    local keep = {}
    for _, c in ipairs(ox) do
      if c ~= patch.ox_del then keep[#keep + 1] = c end
    end
    ox = keep
  end
  if lg == cur.lg and same_list(ch, cur.ch) and same_list(ox, cur.ox)
      and same_list(xc, cur.xc) then
    return old, old, false
  end
  local pf = {}
  pf.lg = lg
  if #ch > 0 then pf.ch = ch end
  if #ox > 0 then pf.ox = ox end
  if #xc > 0 then pf.xc = xc end
  pf.at = tonumber(now)
  g.pf = pf
  return old, enc(pf), true
end

local rk = key(P, 'rcpt', T, C)
local c = redis.call('HGET', rk, 'c')
if c then
  local ok, o = pcall(cjson.decode, c)
  if ok and type(o) == 'table' then
    local target = nil
    if has(o) then
      target = o
    elseif type(o.g) == 'table' then
      for _, g in ipairs(o.g) do
        if has(g) then target = g break end
      end
    end
    if target then
      local old, new, changed = apply(target)
      if not changed then return {0, old, old} end
      redis.call('HSET', rk, 'c', cjson.encode(o))
      return {1, old, new}
    end
  end
else
  return {-1}
end
local gk = key(P, 'reg', T, C)
local gs = redis.call('HGET', gk, 'g')
if gs then
  local ok, o = pcall(cjson.decode, gs)
  if ok and type(o) == 'table' then
    for _, g in ipairs(o) do
      if has(g) then
        local old, new, changed = apply(g)
        if not changed then return {0, old, old} end
        redis.call('HSET', gk, 'g', cjson.encode(o))
        return {1, old, new}
      end
    end
  end
end
return {-1}
