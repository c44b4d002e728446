-- rcpt_delete: remove recipients with their group and index entries.
-- ARGV: prefix, tenant, ids...   Returns how many existed.
--#include keys
--#include split
--#include directory
local n = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local k = key(P, 'rcpt', T, id)
  if redis.call('EXISTS', k) == 1 then
    local old = redis.call('HMGET', k, 'c', 'groups')
    unindex(id, old[1])
    ungroup(id, old[2], {})
    redis.call('DEL', k)
    n = n + 1
  end
  redis.call('SREM', key(P, 'rcpts', T), id)
end
return n
