-- ack_view: what the confirmation page shows to a recipient of an ack
-- broadcast.
-- KEYS: bc, bc:r, bc:ack, bc:m, and (optional) bc:fam
-- ARGV: rcpt, and (optional) a language: the subject and body of the
-- broadcast's translation in it (its field "translations", issue 16), if
-- it has one; then the reply ends with one more element, the language
-- used ('' when none: the Japanese text)
-- Returns {subject, body, drill, confirmation of rcpt or '', choices or '',
-- tenant, then per child: id, confirmation or ''}: the children are rcpt
-- itself, then the siblings whose guardian this link reaches (bc:fam,
-- commit_page.lua), so that the page lists each child of the guardian in
-- this broadcast.  A confirmation is bc:ack's value (a JSON object or,
-- stored before answers, a plain time: model/broadcast.h,
-- kn_ack_value_parse); choices the broadcast's JSON array of answers.
-- Returns {} when the broadcast asks no confirmation or the recipient is
-- not one of it.
--#include is_member
local h = redis.call('HMGET', KEYS[1], 'ack', 'subject', 'body', 'drill',
                     'choices', 'tenant')
if h[1] ~= '1' or not is_member(ARGV[1]) then return {} end
local at = redis.call('HGET', KEYS[3], ARGV[1]) or ''
local out = {h[2] or '', h[3] or '', h[4] or '0', at, h[5] or '', h[6] or '',
             ARGV[1], at}
local lang = nil
if ARGV[2] then
  local ok, tr = pcall(cjson.decode,
                       redis.call('HGET', KEYS[1], 'translations') or '{}')
  local t = ok and type(tr) == 'table' and tr[ARGV[2]]
  if type(t) == 'table' and type(t.subject) == 'string' and
     type(t.body) == 'string' then
    out[1], out[2], lang = t.subject, t.body, ARGV[2]
  end
end
if KEYS[5] then
  for x in string.gmatch(redis.call('HGET', KEYS[5], ARGV[1]) or '', '[^;]+') do
    out[#out + 1] = x
    out[#out + 1] = redis.call('HGET', KEYS[3], x) or ''
  end
end
if ARGV[2] then out[#out + 1] = lang or '' end
return out
