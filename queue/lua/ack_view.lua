-- ack_view: what the confirmation page shows to a recipient of an ack
-- broadcast.
-- KEYS: bc, bc:r, bc:ack, bc:m
-- ARGV: rcpt
-- Returns {subject, body, drill, confirmation or '', choices or ''}, or {}
-- when the broadcast asks no confirmation or the recipient is not one of
-- it.  The confirmation is bc:ack's value (a JSON object or, stored before
-- answers, a plain time: model/broadcast.h, kn_ack_value_parse); choices
-- the broadcast's JSON array of answers.
--#include is_member
local h = redis.call('HMGET', KEYS[1], 'ack', 'subject', 'body', 'drill',
                     'choices')
if h[1] ~= '1' or not is_member(ARGV[1]) then return {} end
local at = redis.call('HGET', KEYS[3], ARGV[1]) or ''
return {h[2] or '', h[3] or '', h[4] or '0', at, h[5] or ''}
