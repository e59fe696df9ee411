package redisstore

import "github.com/redis/go-redis/v9"

// The scripts share one prelude. Money is never a Lua number: Redis keeps
// counters as decimal strings, and the scripts compare, add and subtract
// amounts as pairs (hi, lo) with value hi*1e9 + lo, each part an integer
// far below 2^53, so every int64 amount is handled exactly although Lua
// numbers are doubles. Sums go back to Go as such pairs of integers.
//
// Every script runs in two phases, because Redis keeps the writes a
// script made before an error: first it validates every argument, reads
// every key it needs and computes every new value, writing nothing (a bad
// argument, a stored value that is not an amount or a key of the wrong
// type ends it there, with nothing changed); then it writes, with commands
// (HSET, HDEL, ZADD, ZREM, PEXPIRE, SET) that cannot fail on the keys the
// first phase has read. Nothing uses HINCRBY, which fails on overflow.
//
// Arithmetic is the memory store's: a sum that would pass 2^63-1 stays at
// 2^63-1 (saturates), a release never takes a counter below 0, and a cap
// is compared exactly.
//
// Every counter is two keys: the hash C ("c" committed, "r" reserved,
// "i:<id>" the amount of each live reservation) and the sorted set Z of
// live reservation ids scored by their expiry in Unix microseconds of the
// callers' clock. load notes the reservations that expired before a
// counter is read and save releases them, so a crashed replica's holds end
// by themselves.
const prelude = `
local B = 1000000000
local MH, ML = 9223372036, 854775807

local function fail(msg)
  error('spendguard: ' .. msg)
end

-- pair returns the (hi, lo) of a decimal amount in [0, 2^63-1], or fails.
local function pair(s, what)
  if type(s) ~= 'string' or not string.match(s, '^%d+$') or #s > 19
    or (#s == 19 and s > '9223372036854775807') then
    fail(what .. ' is not an amount: ' .. tostring(s))
  end
  local n = #s
  if n <= 9 then return 0, tonumber(s) end
  return tonumber(string.sub(s, 1, n - 9)), tonumber(string.sub(s, n - 8))
end

-- stored is pair for a value read from Redis: absent is 0, and so is a
-- negative integer (which no script writes).
local function stored(s, key)
  if not s then return 0, 0 end
  if string.match(s, '^%-%d+$') then return 0, 0 end
  return pair(s, key)
end

-- int parses a non-negative integer argument below 2^53 (a count, a
-- time in µs or ms).
local function int(s, what)
  if type(s) ~= 'string' or not string.match(s, '^%d+$') or #s > 16
    or tonumber(s) >= 9007199254740992 then
    fail(what .. ' is not a non-negative integer: ' .. tostring(s))
  end
  return tonumber(s)
end

local function less(ah, al, bh, bl)
  if ah ~= bh then return ah < bh end
  return al < bl
end

-- add is a + b, saturating at 2^63-1.
local function add(ah, al, bh, bl)
  local h, l = ah + bh, al + bl
  if l >= B then h, l = h + 1, l - B end
  if less(MH, ML, h, l) then return MH, ML end
  return h, l
end

-- sub is a - b, or 0 when b > a.
local function sub(ah, al, bh, bl)
  if less(ah, al, bh, bl) then return 0, 0 end
  local h, l = ah - bh, al - bl
  if l < 0 then h, l = h - 1, l + B end
  return h, l
end

local function str(h, l)
  if h == 0 then return string.format('%d', l) end
  return string.format('%d%09d', h, l)
end

-- load reads counter c (its set z) as of now, writing nothing: ch, cl
-- committed; rh, rl reserved without the reservations expired at now;
-- gone, the fields of those, which save deletes.
local function load(c, z, now)
  local v = redis.call('HMGET', c, 'c', 'r')
  local s = {c = c, z = z, gone = {}, fields = {}}
  s.ch, s.cl = stored(v[1], c)
  s.rh, s.rl = stored(v[2], c)
  s.expired = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  for _, id in ipairs(s.expired) do
    local f = 'i:' .. id
    local amt = redis.call('HGET', c, f)
    if amt then
      local h, l = stored(amt, c)
      s.rh, s.rl = sub(s.rh, s.rl, h, l)
      s.gone[f] = true
      s.fields[#s.fields + 1] = f
      s.rdirty = true
    end
  end
  return s
end

-- save writes what load and the caller changed in s.
local function save(s, now)
  for _, f in ipairs(s.fields) do redis.call('HDEL', s.c, f) end
  if #s.expired > 0 then redis.call('ZREMRANGEBYSCORE', s.z, '-inf', now) end
  if s.rdirty then redis.call('HSET', s.c, 'r', str(s.rh, s.rl)) end
  if s.cdirty then redis.call('HSET', s.c, 'c', str(s.ch, s.cl)) end
end

-- keep gives key a time to live of ms (a validated decimal string; 0:
-- none).
local function keep(key, ms)
  if tonumber(ms) ~= 0 then redis.call('PEXPIRE', key, ms) end
end

-- get returns the state of counter c from st, loading it the first time:
-- a key named twice is one state, saved once.
local function get(st, c, z, now)
  local s = st.by[c]
  if not s then
    s = load(c, z, now)
    st.by[c] = s
    st[#st + 1] = s
  end
  return s
end

local function newState() return {by = {}} end

-- window loads the counters of KEYS[k .. k+2*nwin+1] (an item's key and
-- its window) into st and returns their committed and reserved sums.
local function window(st, k, nwin, now)
  local ch, cl, rh, rl = 0, 0, 0, 0
  for w = 0, nwin do
    local s = get(st, KEYS[k + 2 * w], KEYS[k + 2 * w + 1], now)
    ch, cl = add(ch, cl, s.ch, s.cl)
    rh, rl = add(rh, rl, s.rh, s.rl)
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
local now, id = ARGV[1], ARGV[2]
local ah, al = pair(ARGV[3], 'amount')
local expiry = ARGV[4]
int(now, 'now')
int(expiry, 'expiry')
local n = int(ARGV[5], 'item count')
if #ARGV ~= 5 + 4 * n then fail('arguments do not match the items') end
if id == '' then fail('empty reservation id') end
local field = 'i:' .. id
local items, st = {}, newState()
local a, k = 6, 1
for i = 1, n do
  local it = {enforce = ARGV[a], ttl = ARGV[a + 2], nwin = int(ARGV[a + 3], 'window length')}
  int(it.ttl, 'key ttl')
  if it.enforce ~= '0' and it.enforce ~= '1' then fail('enforce is not 0 or 1') end
  it.lh, it.ll = pair(ARGV[a + 1], 'limit')
  it.k = k
  items[i] = it
  a, k = a + 4, k + 2 * (it.nwin + 1)
end
if k - 1 ~= #KEYS then fail('keys do not match the items') end

local out = {-1}
local blocked, dup = -1, false
for i, it in ipairs(items) do
  local ch, cl, rh, rl = window(st, it.k, it.nwin, now)
  it.s = st.by[KEYS[it.k]]
  if redis.call('HEXISTS', it.s.c, field) == 1 and not it.s.gone[field] then dup = true end
  if blocked < 0 and it.enforce == '1' then
    local uh, ul = add(ch, cl, rh, rl)
    if not less(uh, ul, it.lh, it.ll) then
      blocked = i - 1
    else
      local fh, fl = sub(it.lh, it.ll, uh, ul)
      if less(fh, fl, ah, al) then blocked = i - 1 end
    end
  end
  out[#out + 1] = ch
  out[#out + 1] = cl
  out[#out + 1] = rh
  out[#out + 1] = rl
end
if dup then
  for _, s in ipairs(st) do save(s, now) end
  return {-2}
end
if blocked < 0 then
  for i, it in ipairs(items) do
    it.s.rh, it.s.rl = add(it.s.rh, it.s.rl, ah, al)
    it.s.rdirty = true
    out[4 * i], out[4 * i + 1] = add(out[4 * i], out[4 * i + 1], ah, al)
  end
end

for _, s in ipairs(st) do save(s, now) end
if blocked >= 0 then
  out[1] = blocked
  return out
end
for _, it in ipairs(items) do
  redis.call('HSET', it.s.c, field, ARGV[3])
  redis.call('ZADD', it.s.z, expiry, id)
  keep(it.s.c, it.ttl)
  keep(it.s.z, it.ttl)
end
return out
`)

// settleScript: KEYS are C and Z of every item's Key, then the settle
// marker D of the id. ARGV: now (µs), id, actual, the marker's TTL in ms,
// then per item the key TTL in ms (0: none). Reply: 1, or 0 when this id
// was settled already (the marker exists): a Settle whose answer was lost
// may be sent again and counts once. The marker is written last, with the
// counters, and only when every counter could take the spend: a Settle
// that fails changes nothing and may be sent again.
var settleScript = redis.NewScript(prelude + `
local now, id = ARGV[1], ARGV[2]
int(now, 'now')
local xh, xl = pair(ARGV[3], 'actual')
local markTTL = ARGV[4]
int(markTTL, 'marker ttl')
if id == '' then fail('empty reservation id') end
local n = (#KEYS - 1) / 2
if n ~= math.floor(n) or #ARGV ~= 4 + n then fail('keys do not match the items') end
for i = 1, n do int(ARGV[4 + i], 'key ttl') end
if redis.call('EXISTS', KEYS[#KEYS]) == 1 then return 0 end

local field = 'i:' .. id
local st, its = newState(), {}
local spend = xh ~= 0 or xl ~= 0
for i = 1, n do
  local s = get(st, KEYS[2 * i - 1], KEYS[2 * i], now)
  its[i] = s
  local amt = redis.call('HGET', s.c, field)
  if amt and not s.gone[field] and not s.mine then
    local h, l = stored(amt, s.c)
    s.rh, s.rl = sub(s.rh, s.rl, h, l)
    s.rdirty = true
    s.mine = true
    s.fields[#s.fields + 1] = field
  end
  if spend then
    s.ch, s.cl = add(s.ch, s.cl, xh, xl)
    s.cdirty = true
  end
end

for _, s in ipairs(st) do
  save(s, now)
  if s.mine then redis.call('ZREM', s.z, id) end
end
if spend then
  for i, s in ipairs(its) do keep(s.c, ARGV[4 + i]) end
end
redis.call('SET', KEYS[#KEYS], '1', 'PX', markTTL)
return 1
`)

// usageScript: KEYS as for reserveScript. ARGV: now (µs), item count,
// then the window length of every item. Reply: committed and reserved
// pairs per item.
var usageScript = redis.NewScript(prelude + `
local now = ARGV[1]
int(now, 'now')
local n = int(ARGV[2], 'item count')
if #ARGV ~= 2 + n then fail('arguments do not match the items') end
local nwins, k = {}, 1
for i = 1, n do
  nwins[i] = int(ARGV[2 + i], 'window length')
  k = k + 2 * (nwins[i] + 1)
end
if k - 1 ~= #KEYS then fail('keys do not match the items') end
local out, st = {}, newState()
k = 1
for i = 1, n do
  local ch, cl, rh, rl = window(st, k, nwins[i], now)
  k = k + 2 * (nwins[i] + 1)
  out[#out + 1] = ch
  out[#out + 1] = cl
  out[#out + 1] = rh
  out[#out + 1] = rl
end
for _, s in ipairs(st) do save(s, now) end
return out
`)
