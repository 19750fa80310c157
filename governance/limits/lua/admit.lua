-- Combined pre-check: rate limits + budget reservation, all-or-nothing, one round trip.
-- KEYS[1] reservations hash, KEYS[2] reservation deadlines zset,
-- KEYS[3 .. 2+nr] rate-limit buckets, KEYS[3+nr .. 2+nr+nb] budget buckets.
-- ARGV: rid, amount, tokens, ttl_ms, grace_ms, sweep_max, period_ms, nr, nb,
--   then per rate limit: limit, cost, is_tpm (3 each); then per budget: limit (-1 = none), expireat.
-- Returns {status, index, wait_ms, spent, reserved}; status 1 ok, 0 rate denied,
-- 3 rate impossible (cost > limit), 2 budget denied. index is 1-based within its group.
local hkey, zkey = KEYS[1], KEYS[2]
local rid, amount = ARGV[1], ARGV[2]
local tokens, ttl_ms, grace_ms = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local sweep_max, period_ms = tonumber(ARGV[6]), tonumber(ARGV[7])
local nr, nb = tonumber(ARGV[8]), tonumber(ARGV[9])
local now = now_ms()

sweep(hkey, zkey, now, grace_ms, sweep_max)

-- 1. Rate limits: evaluate all, write nothing yet.
local after = {}
local worst, worst_wait = 0, -1
for i = 1, nr do
  local a = 9 + (i - 1) * 3
  local limit, cost = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  if cost > limit then return {3, i, -1, 0, 0} end
  local avail = bucket_tokens(KEYS[2 + i], limit, period_ms, now)
  if avail + 1e-9 < cost then
    local wait = (cost - avail) * period_ms / limit
    if wait > worst_wait then worst, worst_wait = i, wait end
  end
  after[i] = avail - cost
end
if worst > 0 then return {0, worst, tostring(worst_wait), 0, 0} end

-- 2. Budgets: spent + reserved + amount must fit every limited budget.
local need = tonumber(amount)
local ba = 9 + nr * 3
for j = 1, nb do
  local limit = tonumber(ARGV[ba + (j - 1) * 2 + 1])
  if limit >= 0 then
    local v = redis.call('HMGET', KEYS[2 + nr + j], 'spent', 'reserved')
    local spent, reserved = tonumber(v[1] or '0'), tonumber(v[2] or '0')
    if spent + reserved + need > limit then
      return {2, j, 0, v[1] or '0', v[2] or '0'}
    end
  end
end

-- 3. Commit.
local tpm = {}
for i = 1, nr do
  local a = 9 + (i - 1) * 3
  local limit = tonumber(ARGV[a + 1])
  bucket_store(KEYS[2 + i], after[i], limit, period_ms, now)
  if ARGV[a + 3] == '1' then tpm[#tpm + 1] = {KEYS[2 + i], ARGV[a + 1]} end
end
local bkeys, bexp = {}, {}
-- The reservation index must outlive every bucket it may still release a hold from: were it to
-- expire first (org idle past the TTL), a crashed process's hold would never be swept.
local keep_ms = ttl_ms + grace_ms + 60000
for j = 1, nb do
  local key, expireat = KEYS[2 + nr + j], ARGV[ba + (j - 1) * 2 + 2]
  incr(key, 'reserved', amount, false)
  if amount == '0' then redis.call('HSETNX', key, 'reserved', '0') end
  redis.call('EXPIREAT', key, expireat)
  bkeys[j], bexp[j] = key, expireat
  local until_ms = tonumber(expireat) * 1000 - now
  if until_ms > keep_ms then keep_ms = until_ms end
end
local rec = {s = 'held', a = amount, tk = tokens, b = bkeys, e = bexp, r = tpm}
redis.call('HSET', hkey, rid, cjson.encode(rec))
redis.call('ZADD', zkey, now + ttl_ms, rid)
extend_pttl(hkey, keep_ms)
extend_pttl(zkey, keep_ms)
return {1, 0, 0, 0, 0}
