-- nginx limit_req over several zones in one round trip (router/src/limits/gcra.rs has the
-- same steps in Rust). KEYS[i]: zone i's key. ARGV[1]: now in ms, or -1 for Redis's clock;
-- then per zone: rate (milli-requests/s), burst (milli-requests).
-- Returns {0, excess_1, ..., excess_n} when every zone passes (all written), or
-- {i, excess} when zone i rejects (nothing written).
local now = tonumber(ARGV[1])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local n = #KEYS
local ex = {}
local moved = {}
for i = 1, n do
  local rate = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  local v = redis.call('HMGET', KEYS[i], 'e', 'l')
  local e = 0
  moved[i] = true
  if v[1] then
    local ms = now - tonumber(v[2])
    if ms < -60000 then ms = 1 elseif ms < 0 then ms = 0 end
    e = tonumber(v[1]) - math.floor(rate * ms / 1000) + 1000
    if e < 0 then e = 0 end
    if e > burst then return {i, e} end
    moved[i] = ms ~= 0
  end
  ex[i] = e
end
local out = {0}
for i = 1, n do
  local rate = tonumber(ARGV[2 * i])
  if moved[i] then
    redis.call('HSET', KEYS[i], 'e', string.format('%d', ex[i]), 'l', string.format('%d', now))
  else
    redis.call('HSET', KEYS[i], 'e', string.format('%d', ex[i]))
  end
  local keep = math.floor(((ex[i] + 1000) * 1000 + rate - 1) / rate) + 1000
  redis.call('PEXPIRE', KEYS[i], string.format('%d', keep))
  out[i + 1] = ex[i]
end
return out
