-- rekey_rcpt: rewrite one directory record if unchanged since it was read.
-- KEYS: rcpt:<T>:<id>
-- ARGV: old c, new c ("" to keep), then per sealed field (name, kana,
--       guardian, phone): field, old value ("" when absent), new value
--       ("" to keep)
-- Returns 1 (written), 0 (changed meanwhile) or -1 (gone).
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if (redis.call('HGET', KEYS[1], 'c') or '') ~= ARGV[1] then return 0 end
for i = 3, #ARGV, 3 do
  if (redis.call('HGET', KEYS[1], ARGV[i]) or '') ~= ARGV[i + 1] then
    return 0
  end
end
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'c', ARGV[2]) end
for i = 3, #ARGV, 3 do
  if ARGV[i + 2] ~= '' then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2]) end
end
return 1
