package redisstore

import "github.com/redis/go-redis/v9"

// The scripts share one prelude. Money is never a Lua number: Redis keeps
// counters as 64-bit integers (HINCRBY with decimal strings from Go), and
// the scripts compare and add amounts as pairs (hi, lo) with value
// hi*1e9 + lo, each part an integer far below 2^53, so every int64 amount
// is handled exactly although Lua numbers are doubles. Sums go back to Go
// as such pairs of integers.
//
// Every counter is two keys: the hash C ("c" committed, "r" reserved,
// "i:<id>" the amount of each live reservation) and the sorted set Z of
// live reservation ids scored by their expiry in Unix microseconds of the
// callers' clock. sweep releases the expired reservations of a counter
// before it is read, so a crashed replica's holds end by themselves.
const prelude = `
local B = 1000000000

local function split(s)
  if not s or s == '' or string.sub(s, 1, 1) == '-' then return 0, 0 end
  local n = #s
  if n <= 9 then return 0, tonumber(s) end
  return tonumber(string.sub(s, 1, n - 9)), tonumber(string.sub(s, n - 8))
end

local function add(ah, al, bh, bl)
  local l = al + bl
  if l >= B then return ah + bh + 1, l - B end
  return ah + bh, l
end

local function less(ah, al, bh, bl)
  if ah ~= bh then return ah < bh end
  return al < bl
end

local function sweep(c, z, now)
  local ids = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  if #ids == 0 then return end
  for _, id in ipairs(ids) do
    local f = 'i:' .. id
    local amt = redis.call('HGET', c, f)
    if amt then
      if amt ~= '0' then redis.call('HINCRBY', c, 'r', '-' .. amt) end
      redis.call('HDEL', c, f)
    end
  end
  redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
end

local function keep(key, ms)
  if ms ~= '0' then redis.call('PEXPIRE', key, ms) end
end

-- read sweeps and sums the counters of KEYS[k .. k+2*nwin+1] (the item's
-- key and its window) and returns committed and reserved as pairs.
local function read(k, nwin, now)
  local ch, cl, rh, rl = 0, 0, 0, 0
  for w = 0, nwin do
    local c, z = KEYS[k + 2 * w], KEYS[k + 2 * w + 1]
    sweep(c, z, now)
    local v = redis.call('HMGET', c, 'c', 'r')
    local x, y = split(v[1])
    ch, cl = add(ch, cl, x, y)
    x, y = split(v[2])
    rh, rl = add(rh, rl, x, y)
  end
  return ch, cl, rh, rl
end
`

// reserveScript: KEYS are, per item, C and Z of its Key then C and Z of
// each Window key. ARGV: now (µs), id, amount, expiry (µs), item count,
// then per item: enforce (1/0), limit, key TTL in ms (0: none), window
// length. Reply: {blocked} followed by committed and reserved pairs per
// item; blocked is -1 when reserved, the 0-based index of the first
// blocking item, or -2 when id names a live reservation.
var reserveScript = redis.NewScript(prelude + `
local now, id, amount, expiry = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local n = tonumber(ARGV[5])
local ah, al = split(amount)
local field = 'i:' .. id
local out = {-1}
local blocked = -1
local firsts, ttls = {}, {}
local k, a = 1, 6
for i = 1, n do
  local enforce, limit, ttl, nwin = ARGV[a], ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
  a = a + 4
  local ch, cl, rh, rl = read(k, nwin, now)
  if redis.call('HEXISTS', KEYS[k], field) == 1 then return {-2} end
  if blocked < 0 and enforce == '1' then
    local uh, ul = add(ch, cl, rh, rl)
    local lh, ll = split(limit)
    local th, tl = add(uh, ul, ah, al)
    if not less(uh, ul, lh, ll) or less(lh, ll, th, tl) then blocked = i - 1 end
  end
  firsts[i], ttls[i] = k, ttl
  k = k + 2 * (nwin + 1)
  out[#out + 1] = ch
  out[#out + 1] = cl
  out[#out + 1] = rh
  out[#out + 1] = rl
end
if blocked >= 0 then
  out[1] = blocked
  return out
end
for i = 1, n do
  local c, z = KEYS[firsts[i]], KEYS[firsts[i] + 1]
  redis.call('HINCRBY', c, 'r', amount)
  redis.call('HSET', c, field, amount)
  redis.call('ZADD', z, expiry, id)
  keep(c, ttls[i])
  keep(z, ttls[i])
  out[4 * i], out[4 * i + 1] = add(out[4 * i], out[4 * i + 1], ah, al)
end
return out
`)

// settleScript: KEYS are C and Z of every item's Key, then the settle
// marker D of the id. ARGV: now (µs), id, actual, the marker's TTL in ms,
// then per item the key TTL in ms (0: none). Reply: 1, or 0 when this id
// was settled already (the marker exists): a Settle whose answer was lost
// may be sent again and counts once.
var settleScript = redis.NewScript(prelude + `
local now, id, actual = ARGV[1], ARGV[2], ARGV[3]
if not redis.call('SET', KEYS[#KEYS], '1', 'NX', 'PX', ARGV[4]) then return 0 end
local field = 'i:' .. id
for i = 1, (#KEYS - 1) / 2 do
  local c, z = KEYS[2 * i - 1], KEYS[2 * i]
  sweep(c, z, now)
  local amt = redis.call('HGET', c, field)
  if amt then
    if amt ~= '0' then redis.call('HINCRBY', c, 'r', '-' .. amt) end
    redis.call('HDEL', c, field)
    redis.call('ZREM', z, id)
  end
  if actual ~= '0' then
    redis.call('HINCRBY', c, 'c', actual)
    keep(c, ARGV[4 + i])
  end
end
return 1
`)

// usageScript: KEYS as for reserveScript. ARGV: now (µs), item count,
// then the window length of every item. Reply: committed and reserved
// pairs per item.
var usageScript = redis.NewScript(prelude + `
local now = ARGV[1]
local n = tonumber(ARGV[2])
local out = {}
local k = 1
for i = 1, n do
  local nwin = tonumber(ARGV[2 + i])
  local ch, cl, rh, rl = read(k, nwin, now)
  k = k + 2 * (nwin + 1)
  out[#out + 1] = ch
  out[#out + 1] = cl
  out[#out + 1] = rh
  out[#out + 1] = rl
end
return out
`)
