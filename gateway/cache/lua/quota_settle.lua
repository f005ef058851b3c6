-- Replace one request's reservation by its actual usage, exactly once per request id.
-- ARGV: 1 base_prefix, 2 request_id, 3 actual_tokens, 4 actual_micro_usd, 5 est_tokens,
--       6 reserved_minute (-1 = no reservation: fail-open ticket), 7 day_id, 8 month_id,
--       9 settled_marker_ttl_ms, 10 n_scopes, then one prefix per scope.
-- Returns 1 when settled now, 0 when this request id was settled before (no-op).
if not redis.call('SET', ARGV[1] .. ':q:done:' .. ARGV[2], '1', 'NX', 'PX', tonumber(ARGV[9])) then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local WINDOW = 60000
local cur_minute = math.floor(now / WINDOW)
local rid = ARGV[2]
local actual = tonumber(ARGV[3])
local actual_usd = tonumber(ARGV[4])
local est = tonumber(ARGV[5])
local minute = tonumber(ARGV[6])
local day = ARGV[7]
local month = ARGV[8]
local n = tonumber(ARGV[10])
for i = 0, n - 1 do
  local p = ARGV[11 + i]
  local v = redis.call('HGET', p .. ':resv', rid)
  if v then
    local sep = string.find(v, ':', 1, true)
    redis.call('HINCRBY', p .. ':pend', 'tok', 0 - tonumber(string.sub(v, 1, sep - 1)))
    redis.call('HINCRBY', p .. ':pend', 'usd', 0 - tonumber(string.sub(v, sep + 1)))
    redis.call('HDEL', p .. ':resv', rid)
    redis.call('ZREM', p .. ':rexp', rid)
  end
  local delta
  local tk
  if minute < 0 then
    tk, delta = p .. ':tpm:' .. cur_minute, actual
  elseif minute >= cur_minute - 1 then
    tk, delta = p .. ':tpm:' .. minute, actual - est
  else
    tk, delta = p .. ':tpm:' .. cur_minute, math.max(actual - est, 0)
  end
  if delta ~= 0 then
    redis.call('INCRBY', tk, delta)
    if redis.call('PTTL', tk) < 0 then redis.call('PEXPIRE', tk, 2 * WINDOW + 1000) end
  end
  local dk = p .. ':tpd:' .. day
  redis.call('INCRBY', dk, actual)
  redis.call('PEXPIRE', dk, 2 * 86400000)
  local mk = p .. ':usd:' .. month
  redis.call('INCRBY', mk, actual_usd)
  redis.call('PEXPIRE', mk, 62 * 86400000)
end
return 1
