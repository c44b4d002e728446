-- sheet_issue: issue a recipient's registration sheet (issue 15), unless
-- its sheet is still live (not used up) and the caller does not reissue.
-- KEYS: reg:<T>:<id>, sheet:<new ID>, sheets:<T>
-- ARGV: prefix, tenant, recipient id, new ID, passcode hash, max guardians,
--       now_ms, reissue ("1"|"0")
-- Returns 1 issued (an older sheet, live or used up, is deleted: its
-- passcode no longer works), 0 skipped (a live sheet and no reissue), -1
-- the new ID is taken (the caller draws another).
--#include keys
local P, T, R, ID = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local old = redis.call('HGET', KEYS[1], 'sheet')
if old then
  local ok = key(P, 'sheet', old)
  local s = redis.call('HMGET', ok, 'used', 'max')
  local live = s[2] and tonumber(s[1] or '0') < tonumber(s[2])
  if live and ARGV[8] ~= '1' then return 0 end
  redis.call('DEL', ok)
  redis.call('SREM', KEYS[3], old)
end
redis.call('HSET', KEYS[2], 't', T, 'r', R, 'h', ARGV[5], 'max', ARGV[6],
           'used', '0', 'issued_ms', ARGV[7])
redis.call('HSET', KEYS[1], 'sheet', ID)
redis.call('SADD', KEYS[3], ID)
return 1
