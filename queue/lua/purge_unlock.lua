-- purge_unlock: release the purge lock, only if this process still holds it
-- (the lock may have expired and been taken by another process).
-- KEYS: lock:purge (string: the owner)
-- ARGV: owner
-- Returns 1 if released, 0 if not held by this owner.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
