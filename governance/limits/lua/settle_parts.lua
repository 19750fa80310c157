-- Settle parts of one reservation (the items of a batch, as each finishes): each part releases its
-- share of the hold and records what it really cost. Idempotent per part: a part id already in
-- the reservation's part set changes nothing, so a worker that dies after this call and redoes
-- its chunk charges nothing twice. The reservation stays open for the parts still to come; the
-- final `release` drops what is left of the hold.
-- KEYS[1] reservations hash, KEYS[2] reservation deadlines zset, KEYS[3] the reservation's part set.
-- ARGV: rid, grace_ms, sweep_max, n, then per part: part id, reserved nano-USD, actual nano-USD.
-- Returns {outcome, hold left, parts newly settled}: outcome 'held' (hold reduced), 'expired'
-- (hold already swept; spend recorded anyway), 'closed' (reservation settled or released: the
-- parts' spend cannot be attributed), 'unknown'.
local hkey, zkey, pkey = KEYS[1], KEYS[2], KEYS[3]
local rid = ARGV[1]
local grace_ms, sweep_max, n = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local now = now_ms()

local raw = redis.call('HGET', hkey, rid)
if not raw then
  sweep(hkey, zkey, now, grace_ms, sweep_max)
  return {'unknown', '0', 0}
end
local rec = cjson.decode(raw)
if rec.s ~= 'held' and rec.s ~= 'expired' then return {'closed', rec.a, 0} end

-- Sums stay exact as doubles up to 2^53 nano-USD (about $9M per call).
local rel, spent, fresh = 0, 0, 0
for i = 1, n do
  local a = 4 + (i - 1) * 3
  if redis.call('SADD', pkey, ARGV[a + 1]) == 1 then
    fresh = fresh + 1
    rel = rel + tonumber(ARGV[a + 2])
    spent = spent + tonumber(ARGV[a + 3])
  end
end
if fresh == 0 then return {rec.s, rec.a, 0} end

local held = rec.s == 'held'
local left = tonumber(rec.a)
if held then
  if rel > left then rel = left end
  left = left - rel
end
local rel_s, spent_s = string.format('%.0f', rel), string.format('%.0f', spent)
for j, b in ipairs(rec.b) do
  if held then incr(b, 'reserved', rel_s, true) end
  if spent_s ~= '0' then
    incr(b, 'spent', spent_s, false)
    redis.call('EXPIREAT', b, rec.e[j])
  end
end
if held then
  rec.a = string.format('%.0f', left)
  redis.call('HSET', hkey, rid, cjson.encode(rec))
end
-- The part set lives as long as the reservation index, so a redo always finds it.
local ttl = redis.call('PTTL', hkey)
if ttl > 0 then extend_pttl(pkey, ttl) end
return {rec.s, rec.a, fresh}
