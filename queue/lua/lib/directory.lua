-- The directory scripts' shared part (rcpt_upsert, rcpt_delete): the
-- prefix P and tenant T (ARGV[1], ARGV[2]); split(s, sep); unindex(id, c)
-- removes a recipient's blind-index entries (read from its old "c");
-- ungroup(id, old, keep) its group memberships but those in keep (a group
-- left empty loses its name too, so that a broadcast to it is rejected as
-- unknown).  Needs kp().
local P, T = ARGV[1], ARGV[2]
local function split(s, sep)
  local t = {}
  for x in string.gmatch(s or '', '[^' .. sep .. ']+') do
    t[#t + 1] = x
  end
  return t
end
local function unindex(id, c)
  if not c then return end
  local ok, o = pcall(cjson.decode, c)
  if not ok or type(o) ~= 'table' then return end
  local b = P .. 'bidx:' .. T .. ':'
  if type(o.ei) == 'string' then
    redis.call('SREM', b .. 'email:' .. o.ei, id)
  end
  if type(o.li) == 'string' then
    redis.call('SREM', b .. 'line:' .. o.li, id)
  end
  if type(o.p) == 'table' then
    for _, t in ipairs(o.p) do
      if type(t) == 'table' and type(t.ti) == 'string' then
        redis.call('SREM', b .. 'push:' .. t.ti, id)
      end
    end
  end
end
local function ungroup(id, old, keep)
  for _, g in ipairs(split(old, ';')) do
    if not keep[g] then
      local gk = P .. 'grp:' .. kp(T) .. ':' .. kp(g)
      redis.call('SREM', gk, id)
      if redis.call('SCARD', gk) == 0 then
        redis.call('SREM', P .. 'groups:' .. T, g)
      end
    end
  end
end
