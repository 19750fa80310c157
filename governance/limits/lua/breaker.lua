-- Circuit breaker for one (provider, model). KEYS[1] state hash, KEYS[2] failure-times zset.
-- ARGV: op ('allow'|'success'|'failure'), threshold, window_ms, cooldown_ms, max_probes,
--   probe_timeout_ms, success_threshold, unique member for the failure zset.
-- Returns {allowed (1/0), state, ms until the open state ends (or 0)}.
local h, f = KEYS[1], KEYS[2]
local op = ARGV[1]
local threshold, window_ms = tonumber(ARGV[2]), tonumber(ARGV[3])
local cooldown_ms, max_probes = tonumber(ARGV[4]), tonumber(ARGV[5])
local probe_timeout_ms, success_threshold = tonumber(ARGV[6]), tonumber(ARGV[7])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local keep_ms = cooldown_ms + probe_timeout_ms + window_ms + 3600000

local v = redis.call('HMGET', h, 's', 'u', 'p', 'hs', 'ok')
local state = v[1] or 'closed'
local until_ms = tonumber(v[2] or '0')

local function open()
  redis.call('HSET', h, 's', 'open', 'u', now + cooldown_ms, 'p', 0, 'ok', 0)
  redis.call('PEXPIRE', h, keep_ms)
  redis.call('DEL', f)
  return {0, 'open', cooldown_ms}
end

-- Cool-down over: the first caller to look moves the circuit to half-open.
if state == 'open' and now >= until_ms then
  state = 'half_open'
  redis.call('HSET', h, 's', 'half_open', 'p', 0, 'ok', 0, 'hs', now)
  redis.call('PEXPIRE', h, keep_ms)
  v[3], v[4], v[5] = '0', tostring(now), '0'
end

if op == 'allow' then
  if state == 'closed' then return {1, 'closed', 0} end
  if state == 'open' then return {0, 'open', until_ms - now} end
  local probes, since = tonumber(v[3] or '0'), tonumber(v[4] or now)
  -- Probes that never reported (crashed caller) stop blocking after probe_timeout.
  if probes >= max_probes and now - since >= probe_timeout_ms then
    probes = 0
    redis.call('HSET', h, 'hs', now)
  end
  if probes < max_probes then
    redis.call('HSET', h, 'p', probes + 1)
    return {1, 'half_open', 0}
  end
  return {0, 'half_open', 0}
elseif op == 'success' then
  if state == 'half_open' then
    local ok = redis.call('HINCRBY', h, 'ok', 1)
    if ok >= success_threshold then
      redis.call('DEL', h, f)
      return {1, 'closed', 0}
    end
  end
  if state == 'open' then return {1, state, until_ms - now} end
  return {1, state, 0}
else
  if state == 'half_open' then return open() end
  if state == 'open' then return {0, 'open', until_ms - now} end
  redis.call('ZADD', f, now, ARGV[8])
  redis.call('ZREMRANGEBYSCORE', f, '-inf', now - window_ms)
  redis.call('PEXPIRE', f, window_ms + 1000)
  if redis.call('ZCARD', f) >= threshold then return open() end
  return {1, 'closed', 0}
end
