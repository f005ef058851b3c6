-- Atomically check and reserve one request against every scope's limits (see docs/cache-and-quotas.md).
-- ARGV: 1 request_id, 2 est_tokens, 3 est_micro_usd, 4 reservation_ttl_ms, 5 day_id, 6 month_id,
--       7 next_month_start_ms, 8 n_scopes, then per scope: prefix, rpm, tpm, tpd, budget_micro (-1 = none)
-- Returns {status, reason, scope_index, retry_ms, minute, n, per scope: rpm_used, rpm_reset_ms, tpm_used, tpm_reset_ms}
-- status: 1 reserved, 0 refused, 2 this request id already holds a reservation (nothing changed).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local WINDOW = 60000
local rid = ARGV[1]
local est_tok = tonumber(ARGV[2])
local est_usd = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local day = ARGV[5]
local month = ARGV[6]
local month_reset = tonumber(ARGV[7])
local n = tonumber(ARGV[8])
local minute = math.floor(now / WINDOW)
local into = now - minute * WINDOW

local stats = {}
local refused = nil

for i = 0, n - 1 do
  local b = 9 + i * 5
  local p = ARGV[b]
  local rpm = tonumber(ARGV[b + 1])
  local tpm = tonumber(ARGV[b + 2])
  local tpd = tonumber(ARGV[b + 3])
  local budget = tonumber(ARGV[b + 4])
  local resv, rexp, pend = p .. ':resv', p .. ':rexp', p .. ':pend'

  -- release reservations whose TTL ran out (their request crashed or never settled)
  local expired = redis.call('ZRANGEBYSCORE', rexp, '-inf', now)
  if #expired > 0 then
    for _, r in ipairs(expired) do
      local v = redis.call('HGET', resv, r)
      if v then
        local sep = string.find(v, ':', 1, true)
        redis.call('HINCRBY', pend, 'tok', 0 - tonumber(string.sub(v, 1, sep - 1)))
        redis.call('HINCRBY', pend, 'usd', 0 - tonumber(string.sub(v, sep + 1)))
        redis.call('HDEL', resv, r)
      end
    end
    redis.call('ZREMRANGEBYSCORE', rexp, '-inf', now)
  end
  if i == 0 and redis.call('HEXISTS', resv, rid) == 1 then
    return {2, '', -1, 0, minute, 0}
  end

  -- requests per minute: sliding-window log (exact)
  local rkey = p .. ':rpm'
  redis.call('ZREMRANGEBYSCORE', rkey, '-inf', now - WINDOW)
  local rcount = redis.call('ZCARD', rkey)
  local rreset = 0
  if rcount > 0 then
    local newest = redis.call('ZRANGE', rkey, -1, -1, 'WITHSCORES')
    rreset = tonumber(newest[2]) + WINDOW - now
  end
  if rpm >= 0 and not refused and rcount >= rpm then
    local retry = WINDOW
    if rcount > 0 then
      local oldest = redis.call('ZRANGE', rkey, 0, 0, 'WITHSCORES')
      retry = tonumber(oldest[2]) + WINDOW - now
    end
    if retry < 1 then retry = 1 end
    refused = {'requests', i, retry}
  end

  -- tokens per minute: sliding-window counter over two fixed minute buckets
  local cur = tonumber(redis.call('GET', p .. ':tpm:' .. minute) or '0')
  local prev = tonumber(redis.call('GET', p .. ':tpm:' .. (minute - 1)) or '0')
  local tused = math.floor(prev * (WINDOW - into) / WINDOW + cur)
  if tpm >= 0 and not refused and tused + est_tok > tpm then
    local retry
    if cur + est_tok > tpm or prev <= 0 then
      retry = WINDOW - into
    else
      retry = math.ceil((WINDOW - into) - (tpm - cur - est_tok) * WINDOW / prev)
    end
    if retry < 1 then retry = 1 end
    refused = {'tokens', i, retry}
  end

  -- tokens per day and monthly budget: committed (settled) + pending reservations
  local pt = tonumber(redis.call('HGET', pend, 'tok') or '0')
  local pu = tonumber(redis.call('HGET', pend, 'usd') or '0')
  local dused = tonumber(redis.call('GET', p .. ':tpd:' .. day) or '0') + pt
  local uused = tonumber(redis.call('GET', p .. ':usd:' .. month) or '0') + pu
  if tpd >= 0 and not refused and dused + est_tok > tpd then
    refused = {'tokens_per_day', i, 86400000 - (now % 86400000)}
  end
  if budget >= 0 and not refused and uused + est_usd > budget then
    local retry = month_reset - now
    if retry < 1000 then retry = 1000 end
    refused = {'monthly_budget', i, retry}
  end

  stats[#stats + 1] = rcount
  stats[#stats + 1] = rreset
  stats[#stats + 1] = tused
  stats[#stats + 1] = WINDOW - into
end

local out
if refused then
  out = {0, refused[1], refused[2], refused[3], minute, n}
else
  local keep = ttl * 2 + WINDOW
  for i = 0, n - 1 do
    local p = ARGV[9 + i * 5]
    local rkey = p .. ':rpm'
    redis.call('ZADD', rkey, now, rid)
    redis.call('PEXPIRE', rkey, WINDOW)
    local tk = p .. ':tpm:' .. minute
    redis.call('INCRBY', tk, est_tok)
    redis.call('PEXPIRE', tk, 2 * WINDOW + 1000)
    redis.call('HSET', p .. ':resv', rid, est_tok .. ':' .. est_usd)
    redis.call('ZADD', p .. ':rexp', now + ttl, rid)
    redis.call('HINCRBY', p .. ':pend', 'tok', est_tok)
    redis.call('HINCRBY', p .. ':pend', 'usd', est_usd)
    redis.call('PEXPIRE', p .. ':resv', keep)
    redis.call('PEXPIRE', p .. ':rexp', keep)
    redis.call('PEXPIRE', p .. ':pend', keep)
    stats[i * 4 + 1] = stats[i * 4 + 1] + 1
    stats[i * 4 + 2] = WINDOW
    stats[i * 4 + 3] = stats[i * 4 + 3] + est_tok
  end
  out = {1, '', -1, 0, minute, n}
end
for _, v in ipairs(stats) do
  out[#out + 1] = v
end
return out
