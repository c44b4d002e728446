-- A LINE multicast delivered is recorded once (docs/multicast-record.md):
-- commit_page writes its members queued with the job's key,
-- 'q|<rcpt>|<gid>', and finish, when LINE accepted the request, writes
-- one field '@<gid>' = 'd|<ms>|<members>|<detail>' instead of 500.  Any
-- other writer of such a member first leaves the marker '@<gid>' = '-'
-- (HSETNX), so that a later "recorded once" (a duplicate run) loses and
-- counts nothing twice.  Needs is_final.
--
-- group_of(v): the group id and recipient of a member record
-- 'q|<rcpt>|<gid>', else nil.  By bytes first: most records are no such
-- member (e-mail, push, final states).
local function group_of(v)
  if not v then return nil end
  local c, bar = string.byte(v, 1, 2)
  if c ~= 113 or bar ~= 124 then return nil end -- 'q', '|'
  local at = string.find(v, '|', 3, true)
  if not at then return nil end
  return string.sub(v, at + 1), string.sub(v, 3, at - 1)
end
-- group_read(bcr, gid, cache): the record '@<gid>' (false: none), read
-- once per script run (cache: gid -> value).
local function group_read(bcr, gid, cache)
  local g = cache[gid]
  if g == nil then
    g = redis.call('HGET', bcr, '@' .. gid) or false
    cache[gid] = g
  end
  return g
end
-- resolved(bcr, v, cache): what the member record v stands for: a member
-- of a multicast recorded once as delivered reads 'd|<rcpt>|<ms>|<detail>',
-- another queued member 'q|<rcpt>'; any other record as it is.
local function resolved(bcr, v, cache)
  local gid, rcpt = group_of(v)
  if not gid then return v end
  local g = group_read(bcr, gid, cache)
  if g then
    local ms, rest = string.match(g, '^d|(%d+)|%d+|(.*)$')
    if ms then return 'd|' .. rcpt .. '|' .. ms .. '|' .. rest end
  end
  return 'q|' .. rcpt
end
-- member_final(bcr, v, cache): is_final(v) for a writer about to replace
-- the record v: a member of a multicast recorded once as delivered is
-- final; any other member of a group gets its marker first (cache: gid ->
-- value, as group_read's, so a script marks a group once).
local function member_final(bcr, v, cache)
  local gid = group_of(v)
  if not gid then return is_final(v) end
  local g = cache[gid]
  if g == nil or g == false then
    if redis.call('HSETNX', bcr, '@' .. gid, '-') == 1 then
      g = '-'
    else
      g = redis.call('HGET', bcr, '@' .. gid) or '-'
    end
    cache[gid] = g
  end
  -- delivered only as finish writes it (what resolved() reads too); any
  -- other value, tampered with, counts as a mark: members one by one
  return string.find(g, '^d|%d+|%d+|') ~= nil
end
