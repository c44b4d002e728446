-- reg_device: the school app's push token joins a guardian's
-- registration (issue 15, POST /v1/devices), or a registered device's
-- token is replaced by its new one (tokens rotate).
-- KEYS: rapp:<hash of the app code> (mode "new": t, r, s sheet ID, tk the
--       sign-up, lg the registration page's language: the guardian's
--       "pf"."lg" unless it has one) or rdev:<hash of the device credential> (mode "rotate":
--       t, r, tk, ti the token's blind index)
-- ARGV: prefix, mode, now_ms, platform ("fcm"|"apns"), sealed token, its
--       blind index, the new credential's hash (mode "new")
-- Keys made from the data read: sheet:<s>, reg:<t>:<r>, regd:<t>,
-- rdev:<credential hash>, rdevs:<t> (every device of the tenant).
-- One sign-up is one guardian: a token from a sign-up that already
-- registered a channel joins that guardian (no sheet use).
-- Returns {1, tenant, rcpt} done, {0} unknown or expired (a code works
-- once) or the school closed, {2} the sheet was reissued or is used up, {3} this token is
-- already registered for the child.
-- A token the app registers (done, or already registered) leaves
-- dead:push: a provider once called it dead (APNs 410, FCM UNREGISTERED),
-- and the app has just proved it current (APNs: a token registered again
-- after the 410's time is valid again).
--#include keys
--#include page_lang
local P, mode, now = ARGV[1], ARGV[2], ARGV[3]
local k, t, ti, cred = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local function alive() redis.call('SREM', key(P, 'dead', 'push'), ti) end
local function load(rk)
  local cur = redis.call('HGET', rk, 'g')
  if cur then
    local ok, o = pcall(cjson.decode, cur)
    if ok and type(o) == 'table' then return o end
  end
  return {}
end
-- A closed school (kairanctl tenant close) takes no new data: its
-- devices' credentials and codes stop at once, answered as unknown.
local function closed(T)
  return redis.call('HEXISTS', key(P, 'tenant', T), 'closed_ms') == 1
end
if mode == 'rotate' then
  local v = redis.call('HMGET', KEYS[1], 't', 'r', 'tk', 'ti')
  if not v[1] or closed(v[1]) then return {0} end
  local rk = key(P, 'reg', v[1], v[2])
  local gs = load(rk)
  for _, g in ipairs(gs) do
    if type(g) == 'table' and g.tk == v[3] and type(g.p) == 'table' then
      for _, d in ipairs(g.p) do
        if type(d) == 'table' and d.ti == v[4] then
          d.k, d.t, d.ti = k, t, ti
          redis.call('HSET', rk, 'g', cjson.encode(gs))
          redis.call('HSET', KEYS[1], 'ti', ti)
          alive()
          return {1, v[1], v[2]}
        end
      end
    end
  end
  redis.call('DEL', KEYS[1])           -- its registration is gone
  redis.call('SREM', key(P, 'rdevs', v[1]), cred)
  return {0}
end
local v = redis.call('HMGET', KEYS[1], 't', 'r', 's', 'tk', 'lg')
if not v[1] or not v[2] or not v[3] or not v[4] or closed(v[1]) then
  return {0}
end
local T, R, S = v[1], v[2], v[3]
redis.call('DEL', KEYS[1])
local sk, rk = key(P, 'sheet', S), key(P, 'reg', T, R)
local sh = redis.call('HMGET', sk, 't', 'r', 'used', 'max')
if sh[1] ~= T or sh[2] ~= R or redis.call('HGET', rk, 'sheet') ~= S then
  return {2}
end
local gs = load(rk)
local mine
for _, g in ipairs(gs) do
  if type(g) == 'table' then
    if type(g.p) == 'table' then
      for _, d in ipairs(g.p) do
        if type(d) == 'table' and d.ti == ti then alive(); return {3} end
      end
    end
    if g.tk == v[4] then mine = g end
  end
end
if not mine then
  if tonumber(sh[3] or '0') >= tonumber(sh[4] or '0') then return {2} end
  mine = {tk = v[4], at = tonumber(now)}
  gs[#gs + 1] = mine
  redis.call('HINCRBY', sk, 'used', 1)
  redis.call('SADD', key(P, 'regd', T), R)
end
if type(mine.p) ~= 'table' then mine.p = {} end
mine.p[#mine.p + 1] = {k = k, t = t, ti = ti}
page_lang_set(mine, page_lang(v[5]), now)
redis.call('HSET', rk, 'g', cjson.encode(gs))
redis.call('HSET', key(P, 'rdev', cred), 't', T, 'r', R, 'tk', v[4], 'ti', ti)
redis.call('SADD', key(P, 'rdevs', T), cred)
alive()
return {1, T, R}
