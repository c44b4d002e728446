-- mark_dead: an address is gone (unregistered token, blocked LINE user):
-- no job is made for it again until it is marked alive.
-- KEYS: dead:<channel> (set)
-- ARGV: "dead" or "alive", bindex...
for i = 2, #ARGV do
  if ARGV[1] == 'dead' then redis.call('SADD', KEYS[1], ARGV[i])
  else redis.call('SREM', KEYS[1], ARGV[i]) end
end
return #ARGV - 1
