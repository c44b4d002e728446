-- rcpt_edit: change one recipient from the console (PATCH
-- /v1/directory/{id}, dispatcher/http/directory_edit.c).
-- ARGV: prefix, tenant, id, now_ms, what (letters: n name, c class,
--       g groups, a active, G a guardian's flag), sealed name ("" to
--       delete), class ("" to delete), groups ("a;b", "" for none),
--       active ("1"|"0"), guardian index (0: the first, whose contacts are
--       the record's own; k: the k-th of "g"), guardian off ("1"|"0").
-- Any change clears the row hash, so that the next import of the school's
-- file writes its row again (the file stays the source of truth).
-- Returns 1, 0 if the recipient is unknown, -1 if the guardian is.
--#include keys
--#include split
--#include directory
local id, now, what = ARGV[3], ARGV[4], ARGV[5]
local k = key(P, 'rcpt', T, id)
if redis.call('EXISTS', k) == 0 then return 0 end
if string.find(what, 'G', 1, true) then
  local ok, o = pcall(cjson.decode, redis.call('HGET', k, 'c') or '')
  if not ok or type(o) ~= 'table' then return -1 end
  local i, g = tonumber(ARGV[10]), nil
  if i == 0 then g = o
  elseif type(o.g) == 'table' and type(o.g[i]) == 'table' then g = o.g[i] end
  if not g then return -1 end
  g.off = (ARGV[11] == '1') or nil
  redis.call('HSET', k, 'c', cjson.encode(o))
end
if string.find(what, 'n', 1, true) then
  if ARGV[6] == '' then redis.call('HDEL', k, 'name')
  else redis.call('HSET', k, 'name', ARGV[6]) end
end
if string.find(what, 'c', 1, true) then
  if ARGV[7] == '' then redis.call('HDEL', k, 'class')
  else redis.call('HSET', k, 'class', ARGV[7]) end
end
if string.find(what, 'g', 1, true) then
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
if string.find(what, 'a', 1, true) then
  redis.call('HSET', k, 'active', ARGV[9])
end
redis.call('HSET', k, 'hash', '', 'updated_ms', now)
return 1
