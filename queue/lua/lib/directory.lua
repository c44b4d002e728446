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
