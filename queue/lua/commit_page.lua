-- commit_page: enqueue one expansion page, if it is the next one.
-- KEYS: bc, bc:r, the six queue streams (scripts.h order), bc:m, and
--       (optional) bc:fam
-- ARGV: page, recipients without any usable contact on this page, prefix,
--       then entries.  A single job: stream index (0-5), field, job json,
--       rcpt.  A group job (LINE multicast): 100 + stream index, member
--       count n, base job json, "", then the n fields, the n records
--       ('q|<rcpt>'), the n sealed addresses and the n indexes; the members
--       that are new (HSETNX) and not dead become the job's "r", "a" and
--       "i" arrays.  A whole group job (what the expander
--       sends): 200 + stream index, n, the job json with every member in
--       "r", "a", "i", its group id (the job's "key", or ""), then the n
--       fields, then the n records to write ('q|<rcpt>|<group id>', or
--       'q|<rcpt>' without an id: made by the expander, so that Redis
--       neither parses nor joins a string per member); the job is enqueued
--       as given when every member is new and not dead, else with those
--       only.  A member queued is recorded 'q|<rcpt>|<group id>'
--       (lib/group.lua: its delivery is then recorded once, in
--       '@<group id>'), or 'q|<rcpt>' without an id.
--       A guardian's address left out for its own choice (issue 16:
--       opt-out, stopped channel): 300, field, rcpt; recorded
--       'o|<rcpt>|0|opted_out' and counted in n:<channel>:opted_out unless
--       the field has a state already; a job for the same address later
--       (a sibling's guardian who did not opt out) replaces the record.
-- An address in the set dead:<channel> (a blocked LINE user, an
-- unregistered token) gets no job; it is counted in n:<channel>:dead.
-- An e-mail address in the tenant's hash supp:<tenant> (bounced: issue 18)
-- gets no job either; it is recorded 's|<rcpt>|0|suppressed' and counted
-- in n:email:suppressed, never silently.
-- Of an "ack" broadcast every recipient of the page also goes into the set
-- bc:m, so that a personal link is checked in O(1) (ack.c); "ack_m" in bc
-- says the set is complete (written from the first page on).
-- Of an "ack" broadcast, a recipient whose address already has a job of
-- another recipient (the guardian of siblings gets one message) is noted
-- in the hash bc:fam: field = the recipient whose job (and personal link)
-- reaches that address, value = the other recipients it reaches, joined by
-- ';', so that the confirmation page behind that link lists every child.
-- Returns {1, jobs added, then the length of each of the six streams
-- after it (-1: not a stream)}, so that the expander measures them
-- without an XLEN of its own; {0, 0} if this page was already committed,
-- {-1, 0} if the broadcast was cancelled, {-2, checkpoint} if a page
-- before it is not committed yet (the expander sends a page's commit
-- before the last one's answer: one that came first, resent out of
-- order, commits nothing).
--#include keys
if redis.call('HGET', KEYS[1], 'status') == 'cancelled' then
  return {-1, 0}
end
local xc = tonumber(redis.call('HGET', KEYS[1], 'xc') or '0')
if xc > tonumber(ARGV[1]) then return {0, 0} end
if xc < tonumber(ARGV[1]) then return {-2, xc} end
local P = ARGV[3]
local members = redis.call('HGET', KEYS[1], 'ack') == '1' and KEYS[9]
if members and xc == 0 then redis.call('HSET', KEYS[1], 'ack_m', '1') end
local n = 0
local counts = {}
local function count(f, by)
  counts[f] = (counts[f] or 0) + (by or 1)
end
local fam = members and KEYS[10]
local supp = key(P, 'supp', redis.call('HGET', KEYS[1], 'tenant') or '')
-- rcpt reached through the job of the recipient already at field (first:
-- that recipient when known here, a group's member not written yet)
local function sibling(field, rcpt, first)
  if not first then
    local cur = redis.call('HGET', KEYS[2], field)
    first = cur and string.match(cur, '^%a|([^|]*)')
  end
  if not first or first == rcpt then return end
  local list = redis.call('HGET', fam, first) or ''
  for x in string.gmatch(list, '[^;]+') do
    if x == rcpt then return end
  end
  redis.call('HSET', fam, first, list == '' and rcpt or list .. ';' .. rcpt)
end
local function take(field, rcpt)
  if members then redis.call('SADD', members, rcpt) end
  local ch, bi = string.match(field, '^(%a+):(.*)$')
  if redis.call('SISMEMBER', key(P, 'dead', ch), bi) == 1 then
    if redis.call('HSETNX', KEYS[2], field, 'x|' .. rcpt .. '|0|dead') == 1
    then count('n:' .. ch .. ':dead') end
    return false
  end
  if ch == 'email' and redis.call('HEXISTS', supp, bi) == 1 then
    if redis.call('HSETNX', KEYS[2], field, 's|' .. rcpt .. '|0|suppressed')
      == 1 then count('n:email:suppressed') end
    return false
  end
  if redis.call('HSETNX', KEYS[2], field, 'q|' .. rcpt) == 1 then
    count('n:' .. ch .. ':total')
    n = n + 1
    return true
  end
  if string.sub(redis.call('HGET', KEYS[2], field), 1, 2) == 'o|' then
    redis.call('HSET', KEYS[2], field, 'q|' .. rcpt)
    count('n:' .. ch .. ':total')
    count('n:' .. ch .. ':opted_out', -1)
    n = n + 1
    return true
  end
  if fam then sibling(field, rcpt) end
  return false
end
-- The members of a group (its cnt fields from ARGV[first], then the cnt
-- records to write: 'q|<rcpt>', or 'q|<rcpt>|<gid>' when gid is not ''),
-- marked queued (or dead) as take() would, in at most four calls for the
-- whole group (SCARD, SMISMEMBER, HMGET, HSET) instead of two per member:
-- the per-call cost of redis.call was most of Redis' time per LINE
-- recipient.  A dead set that is empty (the usual case) is not asked, and
-- nothing is parsed or joined per member; a record's recipient is cut out
-- of it only where it is needed (a dead address, an "ack" broadcast's
-- sets).  The same field twice counts once, as HSETNX would.  Returns the
-- k taken, in order.
local function take_block(cnt, first, gid)
  local took, nt = {}, 0
  if cnt == 0 then return took end
  local tlen = gid ~= '' and #gid + 1 or 0
  local vfirst = first + cnt
  local function rcpt_of(k)
    local v = ARGV[vfirst + k]
    return string.sub(v, 3, #v - tlen)
  end
  local ch = string.match(ARGV[first], '^(%a+):')
  local dkey = key(P, 'dead', ch or '')
  local dead = {}
  if redis.call('SCARD', dkey) > 0 then
    local bis, cut = {}, #(ch or '') + 2
    for k = 0, cnt - 1 do bis[k + 1] = string.sub(ARGV[first + k], cut) end
    dead = redis.call('SMISMEMBER', dkey, unpack(bis))
  end
  local cur = redis.call('HMGET', KEYS[2], unpack(ARGV, first, vfirst - 1))
  local set, seen, ns = {}, {}, 0
  local ndead, ntotal = 0, 0
  for k = 0, cnt - 1 do
    local f, c = ARGV[first + k], cur[k + 1]
    if members then redis.call('SADD', members, rcpt_of(k)) end
    if c and not seen[f] and string.sub(c, 1, 2) == 'o|' then
      c = false -- a guardian's opt-out record: the job wins
      count('n:' .. ch .. ':opted_out', -1)
    end
    if c or seen[f] then
      -- seen[f]: the member of this group whose record is not written yet
      if fam and dead[k + 1] ~= 1 then
        sibling(f, rcpt_of(k), seen[f] and rcpt_of(seen[f]) or nil)
      end
    elseif dead[k + 1] == 1 then
      seen[f] = k
      set[ns + 1] = f; set[ns + 2] = 'x|' .. rcpt_of(k) .. '|0|dead'
      ns = ns + 2
      ndead = ndead + 1
    else
      seen[f] = k
      set[ns + 1] = f; set[ns + 2] = ARGV[vfirst + k]
      ns = ns + 2
      ntotal = ntotal + 1
      nt = nt + 1
      took[nt] = k
    end
  end
  n = n + ntotal
  if ndead > 0 then count('n:' .. ch .. ':dead', ndead) end
  if ntotal > 0 then count('n:' .. ch .. ':total', ntotal) end
  if ns > 0 then redis.call('HSET', KEYS[2], unpack(set)) end
  return took
end
local i = 4
while i <= #ARGV do
  local si = tonumber(ARGV[i])
  if si == 300 then
    local c = string.match(ARGV[i + 1], '^(%a+):')
    if redis.call('HSETNX', KEYS[2], ARGV[i + 1],
        'o|' .. ARGV[i + 2] .. '|0|opted_out') == 1 then
      count('n:' .. c .. ':opted_out')
    end
    i = i + 3
  elseif si < 100 then
    if take(ARGV[i + 1], ARGV[i + 3]) then
      redis.call('XADD', KEYS[3 + si], '*', 'j', ARGV[i + 2])
    end
    i = i + 4
  elseif si < 200 then
    local cnt = tonumber(ARGV[i + 1])
    local job = cjson.decode(ARGV[i + 2])
    local r, a, b = {}, {}, {}
    for _, k in ipairs(take_block(cnt, i + 4, '')) do
      local v = ARGV[i + 4 + cnt + k]
      r[#r + 1] = string.sub(v, 3)
      a[#a + 1] = ARGV[i + 4 + 2 * cnt + k]
      b[#b + 1] = ARGV[i + 4 + 3 * cnt + k]
    end
    if #r > 0 then
      job.r = r; job.a = a; job.i = b
      redis.call('XADD', KEYS[3 + si - 100], '*', 'j', cjson.encode(job))
    end
    i = i + 4 + 4 * cnt
  else
    -- The job comes whole, with every member in r, a, i: as is when
    -- every member is taken (no JSON work here), else only those taken.
    local cnt = tonumber(ARGV[i + 1])
    local took = take_block(cnt, i + 4, ARGV[i + 3])
    if #took == cnt and cnt > 0 then
      redis.call('XADD', KEYS[3 + si - 200], '*', 'j', ARGV[i + 2])
    elseif #took > 0 then
      local job = cjson.decode(ARGV[i + 2])
      local r, a, b = {}, {}, {}
      for _, k in ipairs(took) do
        r[#r + 1] = job.r[k + 1]; a[#a + 1] = job.a[k + 1]
        b[#b + 1] = job.i[k + 1]
      end
      job.r = r; job.a = a; job.i = b
      redis.call('XADD', KEYS[3 + si - 200], '*', 'j', cjson.encode(job))
    end
    i = i + 4 + 2 * cnt
  end
end
for f, v in pairs(counts) do redis.call('HINCRBY', KEYS[1], f, v) end
redis.call('HINCRBY', KEYS[1], 'jobs', n)
redis.call('HINCRBY', KEYS[1], 'unreachable', tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], 'xc', xc + 1)
local res = {1, n}
-- (A stream of the wrong type, one this broadcast may never use: -1, not
-- an error, which would fail a page that is committed already.)
for s = 3, 8 do
  local len = redis.pcall('XLEN', KEYS[s])
  res[#res + 1] = type(len) == 'number' and len or -1
end
return res
