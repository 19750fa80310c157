-- Shared helpers, prepended to admit/settle/spend by the Python loader (scripts cannot import).
-- Money travels as decimal integer strings: Lua numbers are doubles and cjson/tostring print
-- only 14 significant digits, so amounts are never round-tripped through Lua numbers when stored.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end

-- HINCRBY by a non-negative integer string, negated if asked ("-0" is not a valid integer to Redis).
local function incr(key, field, amount, negate)
  if amount == '0' then return end
  if negate then amount = '-' .. amount end
  redis.call('HINCRBY', key, field, amount)
end

-- Only ever extend a key's life: several writers set different horizons on shared keys.
local function extend_pttl(key, ms)
  ms = math.ceil(ms)
  local cur = redis.call('PTTL', key)
  if cur >= 0 and cur >= ms then return end
  redis.call('PEXPIRE', key, ms)
end

-- Token bucket (equivalent to GCRA) refilled to `now`; returns tokens available (may be < 0: debt).
-- Storing (tokens, timestamp) keeps the stored magnitudes small, so float error stays ~1e-12 tokens.
local function bucket_tokens(key, limit, period_ms, now)
  local v = redis.call('HMGET', key, 'v', 't')
  if not v[1] then return limit end
  local tokens = tonumber(v[1]) + (now - tonumber(v[2])) * limit / period_ms
  if tokens > limit then tokens = limit end
  return tokens
end

local function bucket_store(key, tokens, limit, period_ms, now)
  redis.call('HSET', key, 'v', tokens, 't', now)
  -- Once full again the key carries no information: let it expire then (+1 s slack).
  local refill_ms = (limit - tokens) * period_ms / limit
  if refill_ms < 0 then refill_ms = 0 end
  redis.call('PEXPIRE', key, math.ceil(refill_ms) + 1000)
end

-- Release reservations whose TTL passed (a crashed process never settles) and purge tombstones.
-- Bounded per call so one request never pays for a large backlog.
local function sweep(hkey, zkey, now, grace_ms, max_items)
  local due = redis.call('ZRANGEBYSCORE', zkey, '-inf', now, 'LIMIT', 0, max_items)
  for _, rid in ipairs(due) do
    local raw = redis.call('HGET', hkey, rid)
    local rec = raw and cjson.decode(raw)
    if rec and rec.s == 'held' then
      for _, b in ipairs(rec.b) do
        if redis.call('EXISTS', b) == 1 then incr(b, 'reserved', rec.a, true) end
      end
      -- Keep the record a while: a late settle still records money that was really spent.
      rec.s = 'expired'
      redis.call('HSET', hkey, rid, cjson.encode(rec))
      redis.call('ZADD', zkey, now + grace_ms, rid)
    else
      redis.call('HDEL', hkey, rid)
      redis.call('ZREM', zkey, rid)
    end
  end
end
