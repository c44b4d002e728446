-- The directory scripts' shared part (rcpt_upsert, rcpt_delete): the
-- prefix P and tenant T (ARGV[1], ARGV[2]); unindex(id, c)
-- removes a recipient's blind-index entries (read from its old "c");
-- ungroup(id, old, keep) its group memberships but those in keep (a group
-- left empty loses its name too, so that a broadcast to it is rejected as
-- unknown).  Needs key() (keys) and split().
local P, T = ARGV[1], ARGV[2]
local function unindex_one(id, o)
  if type(o.ei) == 'string' then
    redis.call('SREM', key(P, 'bidx', T, 'email', o.ei), id)
  end
  if type(o.li) == 'string' then
    redis.call('SREM', key(P, 'bidx', T, 'line', o.li), id)
  end
  if type(o.p) == 'table' then
    for _, t in ipairs(o.p) do
      if type(t) == 'table' and type(t.ti) == 'string' then
        redis.call('SREM', key(P, 'bidx', T, 'push', t.ti), id)
      end
    end
  end
end
local function unindex(id, c)
  if not c then return end
  local ok, o = pcall(cjson.decode, c)
  if not ok or type(o) ~= 'table' then return end
  unindex_one(id, o)
  -- further guardians (model/directory.h "g")
  if type(o.g) == 'table' then
    for _, g in ipairs(o.g) do
      if type(g) == 'table' then unindex_one(id, g) end
    end
  end
end
local function ungroup(id, old, keep)
  for _, g in ipairs(split(old, ';')) do
    if not keep[g] then
      local gk = key(P, 'grp', T, g)
      redis.call('SREM', gk, id)
      if redis.call('SCARD', gk) == 0 then
        redis.call('SREM', key(P, 'groups', T), g)
      end
    end
  end
end
-- What guardians chose (model/directory.h "pf", issue 16) survives the
-- school's re-import: keep_prefs(old c, new c) gives the new record with
-- the "pf" of every old guardian (the record itself, then its "g") whose
-- e-mail or LINE index ("ei", "li") a guardian of the new record has,
-- moved to that guardian.  Without any "pf" in the old record the new one
-- is returned as it is (no JSON work).
local function keep_prefs(old, new)
  if not old or not string.find(old, '"pf"', 1, true) then return new end
  local ok1, o = pcall(cjson.decode, old)
  local ok2, n = pcall(cjson.decode, new)
  if not ok1 or not ok2 or type(o) ~= 'table' or type(n) ~= 'table' then
    return new
  end
  local by = {}
  local function collect(g)
    if type(g) == 'table' and type(g.pf) == 'table' then
      if type(g.ei) == 'string' then by['e' .. g.ei] = by['e' .. g.ei] or g.pf end
      if type(g.li) == 'string' then by['l' .. g.li] = by['l' .. g.li] or g.pf end
    end
  end
  collect(o)
  if type(o.g) == 'table' then for _, g in ipairs(o.g) do collect(g) end end
  local moved = false
  local function give(g)
    if type(g) ~= 'table' then return end
    local pf = (type(g.ei) == 'string' and by['e' .. g.ei]) or
      (type(g.li) == 'string' and by['l' .. g.li])
    if pf then g.pf = pf; moved = true end
  end
  give(n)
  if type(n.g) == 'table' then for _, g in ipairs(n.g) do give(g) end end
  if not moved then return new end
  return cjson.encode(n)
end
