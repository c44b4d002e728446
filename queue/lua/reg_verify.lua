-- reg_verify: a guardian's verified e-mail address joins the child's
-- registrations (issue 15), once, if the sheet it was started with is
-- still the child's live sheet and not used up.
-- KEYS: rver:<hash of the link token> (the pending verification: t, r, s
--       sheet ID, e sealed address, ei its blind index, nm sealed name,
--       rl sealed relation, cs consent time ms, tk the sign-up it came
--       from: one sign-up is one guardian, whatever channels it adds;
--       lg the language of the registration page, '' none: it becomes
--       the guardian's "pf"."lg", model/directory.h)
-- ARGV: prefix, now_ms
-- Keys made from the data read: sheet:<s>, reg:<t>:<r>, rcpt:<t>:<r>,
-- regd:<t> (the set of children with a registration).
-- Returns {1, tenant, rcpt, sealed child name, sealed guardian name,
-- sealed relation, sealed addresses of the child's other contacts...}
-- (the directory's and the earlier registrations': they are told),
-- the same with no addresses when the sign-up's guardian already exists
-- (a channel added to it: nobody new to tell about, no sheet use),
-- {0} unknown or expired, {2} the sheet was reissued or is used up,
-- {3} this address is already registered for the child.  Every answer
-- but {0} deletes the pending verification: a link works once.
--#include keys
--#include others
--#include page_lang
local P, now = ARGV[1], ARGV[2]
local v = redis.call('HMGET', KEYS[1], 't', 'r', 's', 'e', 'ei', 'nm', 'rl',
                     'cs', 'tk', 'lg')
local lg = page_lang(v[10])
if not v[1] or not v[2] or not v[3] or not v[4] or not v[5] then
  return {0}
end
local T, R, S = v[1], v[2], v[3]
redis.call('DEL', KEYS[1])
local sk, rk = key(P, 'sheet', S), key(P, 'reg', T, R)
local sh = redis.call('HMGET', sk, 't', 'r', 'used', 'max')
if sh[1] ~= T or sh[2] ~= R or redis.call('HGET', rk, 'sheet') ~= S then
  return {2}
end
local gs = {}
local cur = redis.call('HGET', rk, 'g')
if cur then
  local ok, o = pcall(cjson.decode, cur)
  if ok and type(o) == 'table' then gs = o end
end
for _, g in ipairs(gs) do
  if type(g) == 'table' and g.ei == v[5] then return {3} end
end
local rec = redis.call('HMGET', key(P, 'rcpt', T, R), 'c', 'name')
local out = {1, T, R, rec[2] or '', v[6] or '', v[7] or ''}
for _, g in ipairs(gs) do
  if type(g) == 'table' and v[9] and g.tk == v[9] then
    g.e, g.ei = v[4], v[5]
    if v[6] and v[6] ~= '' then g.nm = v[6] end
    if v[7] and v[7] ~= '' then g.rl = v[7] end
    g.cs = tonumber(v[8] or '0')
    page_lang_set(g, lg, now)
    redis.call('HSET', rk, 'g', cjson.encode(gs))
    return out
  end
end
if tonumber(sh[3] or '0') >= tonumber(sh[4] or '0') then return {2} end
others(out, rec[1], gs, v[5])
local g = {e = v[4], ei = v[5], at = tonumber(now), cs = tonumber(v[8] or '0')}
if v[9] then g.tk = v[9] end
if v[6] and v[6] ~= '' then g.nm = v[6] end
if v[7] and v[7] ~= '' then g.rl = v[7] end
page_lang_set(g, lg, now)
gs[#gs + 1] = g
redis.call('HSET', rk, 'g', cjson.encode(gs))
redis.call('HINCRBY', sk, 'used', 1)
redis.call('SADD', key(P, 'regd', T), R)
return out
