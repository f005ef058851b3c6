-- Current usage of one scope. ARGV: 1 prefix, 2 day_id, 3 month_id
-- Returns {rpm_used, rpm_reset_ms, tpm_used, tpm_reset_ms, tokens_today, pending_tokens, micro_usd_month, pending_micro_usd, reservations}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local WINDOW = 60000
local p = ARGV[1]
local minute = math.floor(now / WINDOW)
local into = now - minute * WINDOW
local rkey = p .. ':rpm'
local rcount = redis.call('ZCOUNT', rkey, now - WINDOW + 1, '+inf')
local rreset = 0
if rcount > 0 then
  local newest = redis.call('ZRANGE', rkey, -1, -1, 'WITHSCORES')
  rreset = tonumber(newest[2]) + WINDOW - now
end
local cur = tonumber(redis.call('GET', p .. ':tpm:' .. minute) or '0')
local prev = tonumber(redis.call('GET', p .. ':tpm:' .. (minute - 1)) or '0')
local tused = math.floor(prev * (WINDOW - into) / WINDOW + cur)
-- pending reservations that have not expired yet
local live = redis.call('ZRANGEBYSCORE', p .. ':rexp', '(' .. now, '+inf')
local pt, pu = 0, 0
for _, r in ipairs(live) do
  local v = redis.call('HGET', p .. ':resv', r)
  if v then
    local sep = string.find(v, ':', 1, true)
    pt = pt + tonumber(string.sub(v, 1, sep - 1))
    pu = pu + tonumber(string.sub(v, sep + 1))
  end
end
return {rcount, rreset, tused, WINDOW - into,
  tonumber(redis.call('GET', p .. ':tpd:' .. ARGV[2]) or '0'), pt,
  tonumber(redis.call('GET', p .. ':usd:' .. ARGV[3]) or '0'), pu, #live}
