-- rcpt_edit: change one recipient from the console (PATCH
-- /v1/directory/{id}, dispatcher/http/directory_edit.c).
-- ARGV: prefix, tenant, id, now_ms, what (letters: n name, c class,
--       g groups, a active, G a guardian's flag, N its name, E its
--       e-mail address, P its phone), sealed name ("" to
--       delete), class ("" to delete), groups ("a;b", "" for none),
--       active ("1"|"0"), guardian index (0: the first, whose contacts are
--       the record's own; k: the k-th of "g"), guardian off ("1"|"0"),
--       the guardian's sealed name, sealed e-mail address, its blind
--       index, sealed phone (as the import stores them: the first
--       guardian's name and phone in the hash fields guardian and phone,
--       a further one's in its "nm" and "ph"; the address in "e" and
--       "ei", indexed in bidx:<tenant>:email:<bi>).
-- Any change clears the row hash, so that the next import of the school's
-- file writes its row again (the file stays the source of truth).
-- Returns 1, 0 if the recipient is unknown, -1 if the guardian is.
--#include keys
--#include split
--#include directory
local id, now, what = ARGV[3], ARGV[4], ARGV[5]
local k = key(P, 'rcpt', T, id)
local function has(l) return string.find(what, l, 1, true) ~= nil end
if redis.call('EXISTS', k) == 0 then return 0 end
if has('G') or has('N') or has('E') or has('P') then
  local ok, o = pcall(cjson.decode, redis.call('HGET', k, 'c') or '')
  if not ok or type(o) ~= 'table' then return -1 end
  local i, g = tonumber(ARGV[10]), nil
  if i == 0 then g = o
  elseif type(o.g) == 'table' and type(o.g[i]) == 'table' then g = o.g[i] end
  if not g then return -1 end
  if has('G') then g.off = (ARGV[11] == '1') or nil end
  if has('N') then
    if i == 0 then redis.call('HSET', k, 'guardian', ARGV[12])
    else g.nm = ARGV[12] end
  end
  if has('P') then
    if i == 0 then redis.call('HSET', k, 'phone', ARGV[15])
    else g.ph = ARGV[15] end
  end
  if has('E') then
    local old = g.ei
    g.e, g.ei = ARGV[13], ARGV[14]
    -- the old address leaves the index unless another guardian of this
    -- child still has it
    if type(old) == 'string' and old ~= g.ei then
      local still = o.ei == old
      if type(o.g) == 'table' then
        for _, x in ipairs(o.g) do
          if type(x) == 'table' and x.ei == old then still = true end
        end
      end
      if not still then
        redis.call('SREM', key(P, 'bidx', T, 'email', old), id)
      end
    end
    redis.call('SADD', key(P, 'bidx', T, 'email', g.ei), id)
  end
  redis.call('HSET', k, 'c', cjson.encode(o))
end
if has('n') then
  if ARGV[6] == '' then redis.call('HDEL', k, 'name')
  else redis.call('HSET', k, 'name', ARGV[6]) end
end
if has('c') then
  if ARGV[7] == '' then redis.call('HDEL', k, 'class')
  else redis.call('HSET', k, 'class', ARGV[7]) end
end
if has('g') then
  local keep, gs = {}, split(ARGV[8], ';')
  for _, g in ipairs(gs) do keep[g] = true end
  ungroup(id, redis.call('HGET', k, 'groups'), keep)
  for _, g in ipairs(gs) do
    redis.call('SADD', key(P, 'grp', T, g), id)
    redis.call('SADD', key(P, 'groups', T), g)
  end
  if ARGV[8] == '' then redis.call('HDEL', k, 'groups')
  else redis.call('HSET', k, 'groups', ARGV[8]) end
end
if has('a') then
  redis.call('HSET', k, 'active', ARGV[9])
end
redis.call('HSET', k, 'hash', '', 'updated_ms', now)
return 1
