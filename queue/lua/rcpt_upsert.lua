-- rcpt_upsert: write a batch of recipients.
-- ARGV: prefix, tenant, now_ms, then per row (NARGS): id, hash, c, sealed
--       name, grade, class, groups ("a;b"), blind indexes ("email:<bi>
--       push:<bi> ..."), active ("" keep / new 1, "1", "0"), number,
--       sealed kana, sealed guardian, sealed phone ("" for none).
-- A row whose stored hash is the same (and active as asked) is left alone;
-- a row written again keeps its guardians' "pf" (lib/directory.lua
-- keep_prefs: by e-mail or LINE index, moved to where the guardian is now).
-- Returns {added, updated, unchanged}.
--#include keys
--#include split
--#include directory
local now = ARGV[3]
local added, updated, same = 0, 0, 0
for i = 4, #ARGV, 13 do
  local id, h, c = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local act = ARGV[i + 8]
  local k = key(P, 'rcpt', T, id)
  local old = redis.call('HMGET', k, 'hash', 'active', 'c', 'groups')
  if old[1] == h and (act == '' or act == old[2]) then
    same = same + 1
  elseif old[1] == h then
    redis.call('HSET', k, 'active', act, 'updated_ms', now)
    updated = updated + 1
  else
    local exists = redis.call('EXISTS', k) == 1
    local keep, gs = {}, split(ARGV[i + 6], ';')
    for _, g in ipairs(gs) do keep[g] = true end
    if exists then
      unindex(id, old[3])
      ungroup(id, old[4], keep)
    end
    if act == '' then act = old[2] or '1' end
    c = keep_prefs(old[3], c) -- guardians' own choices (issue 16)
    redis.call('HSET', k, 'c', c, 'active', act, 'hash', h,
      'updated_ms', now)
    local opt = {'name', 'grade', 'class', 'groups'}
    for j, f in ipairs(opt) do
      local v = ARGV[i + 2 + j]
      if v == '' then redis.call('HDEL', k, f)
      else redis.call('HSET', k, f, v) end
    end
    local opt2 = {'number', 'kana', 'guardian', 'phone'}
    for j, f in ipairs(opt2) do
      local v = ARGV[i + 8 + j]
      if v == '' then redis.call('HDEL', k, f)
      else redis.call('HSET', k, f, v) end
    end
    for _, g in ipairs(gs) do
      redis.call('SADD', key(P, 'grp', T, g), id)
      redis.call('SADD', key(P, 'groups', T), g)
    end
    for _, b in ipairs(split(ARGV[i + 7], ' ')) do
      local purpose, bi = string.match(b, '^(%a+):(.+)$')
      if purpose then
        redis.call('SADD', key(P, 'bidx', T, purpose, bi), id)
      end
    end
    redis.call('SADD', key(P, 'rcpts', T), id)
    if exists then updated = updated + 1 else added = added + 1 end
  end
end
if added + updated > 0 then redis.call('SADD', key(P, 'tenants'), T) end
return {added, updated, same}
