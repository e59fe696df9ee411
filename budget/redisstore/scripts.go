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
// callers' clock. read notes the reservations that expired before a
// counter is read and saveAll releases them, so a crashed replica's holds
// end by themselves. Redis itself refuses a script for lack of memory
// (maxmemory) only at its first write, never between two.
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
-- time in µs or ms). It is cheaper than pair (no pattern; Lua patterns
-- cost about a microsecond each), and accepts what tonumber does (such as
-- 1e3 or 0x10) when the value is a whole number in range: such an
-- argument is never an amount.
local function int(s, what)
  local n = tonumber(s)
  if type(s) ~= 'string' or not n or n < 0 or n >= 9007199254740992 or n ~= math.floor(n) then
    fail(what .. ' is not a non-negative integer: ' .. tostring(s))
  end
  return n
end

-- dec is integer n as a decimal string, the only form of a number the
-- scripts pass to Redis (which refuses 1e3 where it wants an integer).
local function dec(n)
  return string.format('%d', n)
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

-- The counters a call may write, by index j (BY maps a key C[j] to j,
-- so a key named twice is one counter, saved once): C[j] and Z[j] its
-- keys; CH, CL committed and RH, RL reserved, as the call will leave
-- them; EXP[j] whether reservations expired at now; DEL[j] the hash
-- fields to delete and GONE[j] the set of those that expired (false:
-- none); OWN[j] the value of field FIELD, the call's reservation (false:
-- absent); RD[j], CD[j] whether r, c changed; SETV[j] a value to give
-- FIELD (false: none); MINE[j] whether the call released its own
-- reservation there. Flat arrays rather than a table per counter, and
-- only for the counters that need them (an item's own key, or one with
-- expired reservations), not every bucket of a rolling window: Lua
-- tables cost more than the Redis calls.
local C, Z, CH, CL, RH, RL, EXP, DEL, GONE, OWN, RD, CD, SETV, MINE =
  {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}
local BY, A = {}, {}
local FIELD = false

-- read reads counter c (its set z) as of now, writing nothing, and
-- returns its index (false when it needs none: reg is false and nothing
-- expired) and its committed and reserved amounts.
local function read(c, z, now, reg)
  local j = BY[c]
  if j then return j, CH[j], CL[j], RH[j], RL[j] end
  local v
  if reg and FIELD then v = redis.call('HMGET', c, 'c', 'r', FIELD) else v = redis.call('HMGET', c, 'c', 'r') end
  local ch, cl = stored(v[1], c)
  local rh, rl = stored(v[2], c)
  local exp = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  if not reg and #exp == 0 then return false, ch, cl, rh, rl end
  j = #C + 1
  BY[c] = j
  C[j], Z[j], OWN[j] = c, z, v[3] or false
  EXP[j], DEL[j], GONE[j], RD[j], CD[j], SETV[j], MINE[j] = #exp > 0, false, false, false, false, false, false
  for _, id in ipairs(exp) do
    local f = 'i:' .. id
    local amt = redis.call('HGET', c, f)
    if amt then
      local h, l = stored(amt, c)
      rh, rl = sub(rh, rl, h, l)
      if not DEL[j] then DEL[j], GONE[j] = {}, {} end
      GONE[j][f] = true
      DEL[j][#DEL[j] + 1] = f
      RD[j] = true
    end
  end
  if EXP[j] and FIELD and not reg then OWN[j] = redis.call('HGET', c, FIELD) or false end
  CH[j], CL[j], RH[j], RL[j] = ch, cl, rh, rl
  return j, ch, cl, rh, rl
end

-- load is read for a counter the call writes: it returns its index.
local function load(c, z, now)
  return (read(c, z, now, true))
end

-- live reports whether FIELD names a live reservation on counter j.
local function live(j)
  return OWN[j] and not (GONE[j] and GONE[j][FIELD])
end

-- release takes the call's own reservation off counter j, if live there.
local function release(j)
  if not live(j) or MINE[j] then return end
  local h, l = stored(OWN[j], C[j])
  RH[j], RL[j] = sub(RH[j], RL[j], h, l)
  RD[j], MINE[j] = true, true
  if not DEL[j] then DEL[j] = {} end
  DEL[j][#DEL[j] + 1] = FIELD
end

-- saveAll writes what the loads and the caller changed: the fields to
-- delete, the expired set members, and r, c and FIELD where changed.
local function saveAll(now)
  for j = 1, #C do
    local c = C[j]
    if DEL[j] then
      for _, f in ipairs(DEL[j]) do redis.call('HDEL', c, f) end
    end
    if EXP[j] then redis.call('ZREMRANGEBYSCORE', Z[j], '-inf', now) end
    if MINE[j] then redis.call('ZREM', Z[j], string.sub(FIELD, 3)) end
    local n = 0
    if RD[j] then
      A[n + 1], A[n + 2], n = 'r', str(RH[j], RL[j]), n + 2
    end
    if CD[j] then
      A[n + 1], A[n + 2], n = 'c', str(CH[j], CL[j]), n + 2
    end
    if SETV[j] then
      A[n + 1], A[n + 2], n = FIELD, SETV[j], n + 2
    end
    if n > 0 then redis.call('HSET', c, unpack(A, 1, n)) end
  end
end

-- keep gives key a time to live of ms (a number from int; 0: none).
local function keep(key, ms)
  if ms ~= 0 then redis.call('PEXPIRE', key, dec(ms)) end
end

-- window reads the counters of KEYS[k .. k+2*nwin+1] (an item's key,
-- loaded when reg is set, and its window) and returns their committed and
-- reserved sums.
local function window(k, nwin, now, reg)
  local ch, cl, rh, rl = 0, 0, 0, 0
  for w = 0, nwin do
    local _, a, b, c, d = read(KEYS[k + 2 * w], KEYS[k + 2 * w + 1], now, reg and w == 0)
    ch, cl = add(ch, cl, a, b)
    rh, rl = add(rh, rl, c, d)
  end
  return ch, cl, rh, rl
end
-- items checks the arguments of Reserve and Extend from ARGV[5] on (the
-- item count n, then per item: enforce, limit, key TTL in ms, window
-- length) against KEYS (the items' keys, then the settle marker) and id,
-- sets FIELD, and returns n and, by item:
-- enforce ('1' or '0'), the limit as (hi, lo) in two tables, the key TTL,
-- the window length and the index in KEYS of the item's own C.
local function items(id)
  local n = int(ARGV[5], 'item count')
  if #ARGV ~= 5 + 4 * n then fail('arguments do not match the items') end
  if id == '' then fail('empty reservation id') end
  FIELD = 'i:' .. id
  local enforce, lh, ll, ttl, nwin, first = {}, {}, {}, {}, {}, {}
  local a, k = 6, 1
  for i = 1, n do
    enforce[i], ttl[i] = ARGV[a], int(ARGV[a + 2], 'key ttl')
    if enforce[i] ~= '0' and enforce[i] ~= '1' then fail('enforce is not 0 or 1') end
    lh[i], ll[i] = pair(ARGV[a + 1], 'limit')
    nwin[i] = int(ARGV[a + 3], 'window length')
    first[i] = k
    a, k = a + 4, k + 2 * (nwin[i] + 1)
  end
  if k ~= #KEYS then fail('keys do not match the items') end
  return n, enforce, lh, ll, ttl, nwin, first
end
`

// reserveScript: KEYS are, per item, C and Z of its Key then C and Z of
// each Window key, and last the settle marker D of the id (see
// settleScript). ARGV: now (µs), id, amount, expiry (µs), item count,
// then per item: enforce (1/0), limit, key TTL in ms (0: none), window
// length. Reply: {blocked} followed by committed and reserved pairs per
// item; blocked is -1 when reserved, the 0-based index of the first
// blocking item, -2 when id names a live reservation, or -3 (alone) when
// id was settled within the marker's lifetime.
//
// The marker check is what makes the engine's background release of a
// Reserve that timed out safe: that Reserve may still reach Redis after
// its release (a socket's backlog, a paused or busy server), and must
// then hold nothing. The marker is a key of its own, in another hash
// slot than the counters, so the scripts that read it need one Redis
// node (or every key on one): the store runs on a single node (or a
// primary with replicas), not on Redis Cluster. Settle has always read
// the marker so; Reserve and Extend now do too.
var reserveScript = redis.NewScript(prelude + `
local now, id = dec(int(ARGV[1], 'now')), ARGV[2]
local ah, al = pair(ARGV[3], 'amount')
local expiry = dec(int(ARGV[4], 'expiry'))
local n, enforce, lh, ll, ttl, nwin, first = items(id)
if redis.call('EXISTS', KEYS[#KEYS]) == 1 then return {-3} end
local at = {}

local out = {-1}
local blocked, dup = -1, false
for i = 1, n do
  local ch, cl, rh, rl = window(first[i], nwin[i], now, true)
  local j = BY[KEYS[first[i]]]
  at[i] = j
  if live(j) then dup = true end
  if blocked < 0 and enforce[i] == '1' then
    local uh, ul = add(ch, cl, rh, rl)
    if not less(uh, ul, lh[i], ll[i]) then
      blocked = i - 1
    else
      local fh, fl = sub(lh[i], ll[i], uh, ul)
      if less(fh, fl, ah, al) then blocked = i - 1 end
    end
  end
  out[#out + 1] = ch
  out[#out + 1] = cl
  out[#out + 1] = rh
  out[#out + 1] = rl
end
if dup then
  saveAll(now)
  return {-2}
end
if blocked >= 0 then
  saveAll(now)
  out[1] = blocked
  return out
end
for i = 1, n do
  local j = at[i]
  RH[j], RL[j] = add(RH[j], RL[j], ah, al)
  RD[j], SETV[j] = true, ARGV[3]
  out[4 * i], out[4 * i + 1] = add(out[4 * i], out[4 * i + 1], ah, al)
end

saveAll(now)
for i = 1, n do
  local j = at[i]
  redis.call('ZADD', Z[j], expiry, id)
  keep(C[j], ttl[i])
  keep(Z[j], ttl[i])
end
return out
`)

// extendScript: KEYS and ARGV as for reserveScript, the amount being the
// amount wanted and the expiry the reservation's new one. Reply: {blocked,
// granted hi, granted lo} followed by committed and reserved pairs per
// item, after the call; blocked is -1 when the amount wanted was granted
// in full, else the 0-based index of the first item whose room is what
// was granted. Where id is live its field grows by the grant; elsewhere
// (an expired reservation, released by read, or none) it is set to the
// grant. Reply {-3} (nothing written) when id was settled within the
// marker's lifetime: an Extend that timed out and reaches Redis after
// the request's Settle must not hold its grant until the TTL.
var extendScript = redis.NewScript(prelude + `
local now, id = dec(int(ARGV[1], 'now')), ARGV[2]
local gh, gl = pair(ARGV[3], 'amount')
local expiry = dec(int(ARGV[4], 'expiry'))
local n, enforce, lh, ll, ttl, nwin, first = items(id)
if redis.call('EXISTS', KEYS[#KEYS]) == 1 then return {-3} end
local at, own = {}, {}

local out = {-1, 0, 0}
for i = 1, n do
  local ch, cl, rh, rl = window(first[i], nwin[i], now, true)
  local j = BY[KEYS[first[i]]]
  at[i] = j
  if live(j) then
    own[i] = {stored(OWN[j], C[j])}
  else
    own[i] = {0, 0}
  end
  if enforce[i] == '1' then
    local uh, ul = add(ch, cl, rh, rl)
    local fh, fl = 0, 0
    if less(uh, ul, lh[i], ll[i]) then fh, fl = sub(lh[i], ll[i], uh, ul) end
    if less(fh, fl, gh, gl) then
      gh, gl = fh, fl
      out[1] = i - 1
    end
  end
  out[#out + 1] = ch
  out[#out + 1] = cl
  out[#out + 1] = rh
  out[#out + 1] = rl
end
for i = 1, n do
  local j = at[i]
  RH[j], RL[j] = add(RH[j], RL[j], gh, gl)
  RD[j], SETV[j] = true, str(add(own[i][1], own[i][2], gh, gl))
  out[4 * i + 2], out[4 * i + 3] = add(out[4 * i + 2], out[4 * i + 3], gh, gl)
end
out[2], out[3] = gh, gl

saveAll(now)
for i = 1, n do
  local j = at[i]
  redis.call('ZADD', Z[j], expiry, id)
  keep(C[j], ttl[i])
  keep(Z[j], ttl[i])
end
return out
`)

// settleScript: KEYS are C and Z of every item's Key, then the settle
// marker D of the id (P d:<id>). ARGV: now (µs), id, actual, the marker's
// TTL in ms, then per item the key TTL in ms (0: none). Reply: 1, or 0
// when this id was settled already (the marker exists): a Settle whose
// answer was lost may be sent again and counts once, and a Reserve or
// Extend of the id that arrives later holds nothing (reserveScript). The marker is written last, with the
// counters, and only when every counter could take the spend: a Settle
// that fails changes nothing and may be sent again.
var settleScript = redis.NewScript(prelude + `
local now, id = dec(int(ARGV[1], 'now')), ARGV[2]
local xh, xl = pair(ARGV[3], 'actual')
local markTTL = dec(int(ARGV[4], 'marker ttl'))
if id == '' then fail('empty reservation id') end
local n = (#KEYS - 1) / 2
if n ~= math.floor(n) or #ARGV ~= 4 + n then fail('keys do not match the items') end
local ttl = {}
for i = 1, n do ttl[i] = int(ARGV[4 + i], 'key ttl') end
if redis.call('EXISTS', KEYS[#KEYS]) == 1 then return 0 end

FIELD = 'i:' .. id
local spend = xh ~= 0 or xl ~= 0
local at = {}
for i = 1, n do
  local j = load(KEYS[2 * i - 1], KEYS[2 * i], now)
  at[i] = j
  release(j)
  if spend then
    CH[j], CL[j] = add(CH[j], CL[j], xh, xl)
    CD[j] = true
  end
end

saveAll(now)
if spend then
  for i = 1, n do keep(C[at[i]], ttl[i]) end
end
redis.call('SET', KEYS[#KEYS], '1', 'PX', markTTL)
return 1
`)

// usageScript: KEYS as for reserveScript. ARGV: now (µs), item count,
// then the window length of every item. Reply: committed and reserved
// pairs per item.
var usageScript = redis.NewScript(prelude + `
local now = dec(int(ARGV[1], 'now'))
local n = int(ARGV[2], 'item count')
if #ARGV ~= 2 + n then fail('arguments do not match the items') end
local nwin, k = {}, 1
for i = 1, n do
  nwin[i] = int(ARGV[2 + i], 'window length')
  k = k + 2 * (nwin[i] + 1)
end
if k - 1 ~= #KEYS then fail('keys do not match the items') end
local out = {}
k = 1
for i = 1, n do
  local ch, cl, rh, rl = window(k, nwin[i], now, false)
  k = k + 2 * (nwin[i] + 1)
  out[#out + 1] = ch
  out[#out + 1] = cl
  out[#out + 1] = rh
  out[#out + 1] = rl
end
saveAll(now)
return out
`)
