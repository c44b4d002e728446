-- bounce: record that a message came back (issue 18): a DSN through
-- `kairanctl bounce`, a 5xx at RCPT.  (SendGrid's events:
-- sendgrid_events.lua, the same rules.)
-- KEYS: bc, bc:r, supp:<tenant>, soft:<tenant>
-- ARGV: field, kind (hard|soft|delayed), detail, now ms, rcpt, bcast,
--       sealed address, soft window ms, soft limit: see
--       lib/bounce_record.lua for what each does.
-- Returns {recorded 0|1, suppressed now 0|1}.
--#include bounce_record
for i = 1, 4 do
  local t = redis.call('TYPE', KEYS[i])['ok']
  if t ~= 'hash' and t ~= 'none' then
    return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' holds a ' .. t ..
      ' where kairan keeps a hash')
  end
end
if not string.match(ARGV[1], '^email:.') then
  return redis.error_reply('ERR not an e-mail field')
end
return bounce_record(KEYS, ARGV)
