-- sendgrid_events: SendGrid Event Webhook bounces (issue 18), once each.
-- KEYS: sgsig:<sha-256 of timestamp LF body> (string: this signed request
--       was taken)
-- ARGV: prefix, now ms, keep ms (how long a request and an event id are
--       remembered: longer than the accepted timestamp window), soft
--       window ms, soft limit, then per event (4): sg_event_id, kairan_ref
--       (already checked: 16 of a-z 2-7), kind (hard|soft), status
-- A request whose signature was taken before changes nothing (a replay,
-- or SendGrid sending again a request it did not see answered).  An event
-- whose sg_event_id was seen (sgev:<id>) or whose reference is unknown
-- (bref:<ref>, expired or never ours) changes nothing.  Otherwise the
-- reference names the delivery and it is recorded as a bounce
-- (lib/bounce_record.lua).
-- Returns {replay 0|1, recorded, duplicates, unknown}.
--#include keys
--#include bounce_record
local P, now, keep = ARGV[1], ARGV[2], tonumber(ARGV[3])
if redis.call('SET', KEYS[1], now, 'NX', 'PX', keep) == false then
  return {1, 0, 0, 0}
end
local rec, dup, unk = 0, 0, 0
local i = 6
while i + 3 <= #ARGV do
  local id, ref, kind, status = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  i = i + 4
  local ek = key(P, 'sgev', id)
  if redis.call('SET', ek, now, 'NX', 'PX', keep) == false then
    dup = dup + 1
  else
    local r = redis.call('HMGET', key(P, 'bref', ref), 'bc', 'f', 'r', 't',
      'a', 'c')
    if not r[1] or not r[2] or not r[4] then
      unk = unk + 1
    else
      local bc = P .. 'bc:' .. kp(r[1])
      local K = {bc, bc .. ':r', key(P, 'supp', r[4]), key(P, 'soft', r[4])}
      local ok = true
      for _, k in ipairs(K) do
        local t = redis.call('TYPE', k)['ok']
        if t ~= 'hash' and t ~= 'none' then ok = false end
      end
      if ok then
        local detail = status .. ';' .. (r[6] == '1' and '1' or '0') ..
          ';sendgrid'
        local out = bounce_record(K, {r[2], kind, detail, now, r[3] or '',
          r[1], r[5] or '', ARGV[4], ARGV[5]})
        rec = rec + out[1]
      else
        unk = unk + 1
      end
    end
  end
end
return {0, rec, dup, unk}
