-- reg_line: a LINE user who sent a live link code to the school's
-- official account joins the child's registrations (issue 15), once, if
-- the sheet the sign-up was started with is still the child's live sheet
-- and not used up.  Wrong codes are counted per LINE user and overall.
-- KEYS: rline:<keyed hash of the code> (t, r, s sheet ID, tk the sign-up,
--       cs consent time ms, lg the registration page's language, which
--       becomes the guardian's "pf"."lg" unless it has one),
--       rlfail:<blind index of the user id>,
--       rlfail:all
-- ARGV: prefix, now_ms, sealed user id, its blind index, window_ms,
--       wrong codes allowed per user in the window, and overall
-- Keys made from the data read: sheet:<s>, reg:<t>:<r>, rcpt:<t>:<r>,
-- regd:<t>.
-- Returns {1, tenant, rcpt, sealed child name, '', '', sealed addresses
-- of the child's other contacts..., lg} (as reg_verify, and the code's
-- page language last, '' if none; no addresses when the sign-up's
-- guardian already exists: the channel joins it), {0} unknown, expired or
-- used code (counted as wrong), {2, lg} the sheet was reissued or is used
-- up, {3, lg} this LINE user is already registered for the child, {4}
-- too many wrong codes (of this user, or of everybody): nothing read.
-- The language only ever comes with a live code's answer: a reply worded
-- by it would otherwise tell a throttled sender which codes exist.
--#include keys
--#include others
--#include page_lang
local P, now, sealed, bi = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local win, per_user, overall = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
if tonumber(redis.call('GET', KEYS[2]) or '0') >= per_user or
    tonumber(redis.call('GET', KEYS[3]) or '0') >= overall then
  return {4}
end
local v = redis.call('HMGET', KEYS[1], 't', 'r', 's', 'tk', 'cs', 'lg')
local lg = page_lang(v[6])
if not v[1] or not v[2] or not v[3] or not v[4] then
  for i = 2, 3 do
    if redis.call('INCR', KEYS[i]) == 1 then
      redis.call('PEXPIRE', KEYS[i], win)
    end
  end
  return {0}
end
local T, R, S = v[1], v[2], v[3]
redis.call('DEL', KEYS[1])
local sk, rk = key(P, 'sheet', S), key(P, 'reg', T, R)
local sh = redis.call('HMGET', sk, 't', 'r', 'used', 'max')
if sh[1] ~= T or sh[2] ~= R or redis.call('HGET', rk, 'sheet') ~= S then
  return {2, lg or ''}
end
local gs = {}
local cur = redis.call('HGET', rk, 'g')
if cur then
  local ok, o = pcall(cjson.decode, cur)
  if ok and type(o) == 'table' then gs = o end
end
for _, g in ipairs(gs) do
  if type(g) == 'table' and g.li == bi then return {3, lg or ''} end
end
local rec = redis.call('HMGET', key(P, 'rcpt', T, R), 'c', 'name')
local out = {1, T, R, rec[2] or '', '', ''}
for _, g in ipairs(gs) do
  if type(g) == 'table' and g.tk == v[4] then
    g.l, g.li = sealed, bi
    page_lang_set(g, lg, now)
    redis.call('HSET', rk, 'g', cjson.encode(gs))
    out[#out + 1] = lg or ''
    return out
  end
end
if tonumber(sh[3] or '0') >= tonumber(sh[4] or '0') then
  return {2, lg or ''}
end
others(out, rec[1], gs, nil)
local g = {l = sealed, li = bi, at = tonumber(now), tk = v[4],
           cs = tonumber(v[5] or '0')}
page_lang_set(g, lg, now)
gs[#gs + 1] = g
redis.call('HSET', rk, 'g', cjson.encode(gs))
redis.call('HINCRBY', sk, 'used', 1)
redis.call('SADD', key(P, 'regd', T), R)
out[#out + 1] = lg or ''
return out
