-- Settle (actual cost) or release (nothing spent) one reservation. Idempotent: the record turns
-- into a tombstone, so a repeated call finds it settled/released and changes nothing.
-- KEYS[1] reservations hash, KEYS[2] reservation deadlines zset.
-- ARGV: rid, mode ('settle'|'release'), actual nano-USD, actual tokens ('' = no TPM adjustment),
--   grace_ms, sweep_max, period_ms.
-- Returns {outcome, reserved_amount}: outcome one of settled, released, late_settled,
-- late_released, already_settled, already_released, unknown.
local hkey, zkey = KEYS[1], KEYS[2]
local rid, mode, actual, actual_tokens = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local grace_ms, sweep_max, period_ms = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local now = now_ms()

local raw = redis.call('HGET', hkey, rid)
if not raw then
  sweep(hkey, zkey, now, grace_ms, sweep_max)
  return {'unknown', '0'}
end
local rec = cjson.decode(raw)
if rec.s == 'settled' then return {'already_settled', rec.a} end
if rec.s == 'released' then return {'already_released', rec.a} end

local held = rec.s == 'held'
for j, b in ipairs(rec.b) do
  if held then incr(b, 'reserved', rec.a, true) end
  if mode == 'settle' then
    incr(b, 'spent', actual, false)
    -- The bucket may have expired if the settle is very late; keep its retention bounded.
    redis.call('EXPIREAT', b, rec.e[j])
  end
end

-- TPM was charged with the estimate; correct it by the difference (credit or debt).
if mode == 'settle' and actual_tokens ~= '' then
  local delta = tonumber(actual_tokens) - tonumber(rec.tk)
  if delta ~= 0 then
    for _, t in ipairs(rec.r) do
      local limit = tonumber(t[2])
      local avail = bucket_tokens(t[1], limit, period_ms, now) - delta
      if avail > limit then avail = limit end
      bucket_store(t[1], avail, limit, period_ms, now)
    end
  end
end

local outcome = (mode == 'settle') and 'settled' or 'released'
redis.call('HSET', hkey, rid, cjson.encode({s = outcome, a = rec.a}))
redis.call('ZADD', zkey, now + grace_ms, rid)
extend_pttl(hkey, grace_ms + 60000)
extend_pttl(zkey, grace_ms + 60000)
sweep(hkey, zkey, now, grace_ms, sweep_max)
if not held then outcome = 'late_' .. outcome end
return {outcome, rec.a}
