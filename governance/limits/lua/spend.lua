-- Read spent + reserved of budget buckets, after releasing expired reservations so the numbers
-- do not include money held by crashed processes.
-- KEYS[1] reservations hash, KEYS[2] deadlines zset, KEYS[3..] budget buckets.
-- ARGV: grace_ms, sweep_max. Returns a flat list spent1, reserved1, spent2, ...
local now = now_ms()
sweep(KEYS[1], KEYS[2], now, tonumber(ARGV[1]), tonumber(ARGV[2]))
local out = {}
for i = 3, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 'spent', 'reserved')
  out[#out + 1] = v[1] or '0'
  out[#out + 1] = v[2] or '0'
end
return out
