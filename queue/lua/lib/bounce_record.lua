-- bounce_record(K, a): record one bounce (issue 18); what bounce.lua and
-- sendgrid_events.lua share.
-- K: {bc, bc:r, supp:<tenant>, soft:<tenant>} (types checked by the caller)
-- a: {field ("email:<blind index>"), kind (hard|soft|delayed), detail
--     (status;carrier;source), now ms, rcpt, bcast, sealed address, soft
--     window ms, soft limit}
-- hard, soft: a delivered (or failed) record becomes bounced
--   'b|<rcpt>|<ms>|<detail>' (the one change allowed after delivered), the
--   counters move from n:email:delivered (failed) to n:email:bounced.
-- delayed: the record stays; a soft bounce is counted (n:email:soft).
-- hard: the address is suppressed for the tenant at once; soft, delayed:
--   after soft limit soft bounces (each broadcast once) within the window.
-- A bounce of a record already bounced changes nothing but the
-- suppression (a DSN delivered twice).
-- Returns {recorded 0|1, suppressed now 0|1}.
local function bounce_record(K, a)
  local field, kind, detail, now = a[1], a[2], a[3], a[4]
  local rcpt, bcast, sealed = a[5], a[6], a[7]
  local window, limit = tonumber(a[8]), tonumber(a[9])
  local bi = string.match(field, '^email:(.+)$')
  if not bi then return {0, 0} end
  local cur = redis.call('HGET', K[2], field)
  local code = cur and string.sub(cur, 1, 2)
  -- (a hard bounce sets the suppression again: the refusal at RCPT
  -- records 'b|' through finish, before or after this)
  if code == 'b|' and kind ~= 'hard' then return {0, 0} end
  if kind ~= 'delayed' and (code == 'd|' or code == 'f|') then
    redis.call('HSET', K[2], field, 'b|' .. rcpt .. '|' .. now .. '|' ..
      detail)
    redis.call('HINCRBY', K[1],
      code == 'd|' and 'n:email:delivered' or 'n:email:failed', -1)
    redis.call('HINCRBY', K[1], 'n:email:bounced', 1)
  end
  local entry = table.concat({'', now, detail, rcpt, bcast, sealed}, '|')
  if kind == 'hard' then
    local was = redis.call('HEXISTS', K[3], bi)
    redis.call('HSET', K[3], bi, 'h' .. entry)
    redis.call('HDEL', K[4], bi)
    return {code == 'b|' and 0 or 1, 1 - was}
  end
  if kind == 'delayed' then
    redis.call('HINCRBY', K[1], 'n:email:soft', 1)
  end
  -- soft: the times within the window, each broadcast once
  local keep, seen = {}, false
  for item in string.gmatch(redis.call('HGET', K[4], bi) or '', '[^,]+') do
    local ms, b = string.match(item, '^(%d+)/(.*)$')
    if ms and tonumber(ms) > tonumber(now) - window then
      keep[#keep + 1] = item
      if b == bcast then seen = true end
    end
  end
  if seen then return {1, 0} end
  keep[#keep + 1] = now .. '/' .. bcast
  if #keep >= limit and redis.call('HEXISTS', K[3], bi) == 0 then
    redis.call('HSET', K[3], bi, 's' .. entry)
    redis.call('HDEL', K[4], bi)
    return {1, 1}
  end
  redis.call('HSET', K[4], bi, table.concat(keep, ','))
  return {1, 0}
end
