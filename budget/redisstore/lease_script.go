package redisstore

import "github.com/redis/go-redis/v9"

// leaseScript is Store.Sync. KEYS: C and H of the item's Key, then C and
// H of each Window key (each counter once). ARGV: now (µs), the lease's
// expiry (µs), holder, seq (a decimal uint64), commit, reserved, need,
// ask, extra, enforce (1/0), limit, key TTL in ms (0: none). Reply:
// {applied (1/0), lease hi, lo, committed hi, lo, leased hi, lo, reserved
// hi, lo, holders, forfeited hi, lo}, totals over every counter given.
//
// A forfeit that leaves the holder's forfeit above 0 keeps its reported
// reservations as k:<holder>; an applied call adds commit to the
// holder's y:<holder> and drops its k:<holder>.
//
// Like the other scripts it reads and checks everything, and computes
// every new value, before its first write. Its own fields it reads
// strictly: a lease field that is not an amount in [0, 2^63-1], or a
// seq that is not a uint64, fails the call ("c" and "r" are read as the
// other scripts read them).
var leaseScript = redis.NewScript(prelude + `
local now, expiry = int(ARGV[1], 'now'), int(ARGV[2], 'expiry')
local nowS = dec(now)
local holder, seq = ARGV[3], ARGV[4]
local cmh, cml = pair(ARGV[5], 'commit')
local rsh, rsl = pair(ARGV[6], 'reserved')
local ndh, ndl = pair(ARGV[7], 'need')
local akh, akl = pair(ARGV[8], 'ask')
local exh, exl = pair(ARGV[9], 'extra')
local enforce = ARGV[10]
local lih, lil = pair(ARGV[11], 'limit')
local ttl = int(ARGV[12], 'key ttl')
if #ARGV ~= 12 then fail('wrong argument count') end
if holder == '' then fail('empty holder') end
if enforce ~= '0' and enforce ~= '1' then fail('enforce is not 0 or 1') end
if #KEYS < 2 or #KEYS % 2 ~= 0 then fail('keys are not pairs') end
if expiry < now then fail('expiry before now') end

-- seqOf checks a decimal uint64 above 0 (absent: 0, as '').
local function seqOf(s, what)
  if not s then return '' end
  if type(s) ~= 'string' or not string.match(s, '^[1-9]%d*$') or #s > 20
    or (#s == 20 and s > '18446744073709551615') then
    fail(what .. ' is not a sequence number: ' .. tostring(s))
  end
  return s
end
local function seqLess(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end
-- amt is a lease field: absent is 0, anything but an amount fails.
local function amt(s, what)
  if not s then return 0, 0 end
  return pair(s, what)
end
-- div is (h, l) / d for an integer 1 <= d < 2^53, rounded down.
local function div(h, l, d)
  if d <= 9000000 then
    local qh = math.floor(h / d)
    local rem = h - qh * d
    local x = rem * B + l
    local ql = math.floor(x / d)
    return qh, ql
  end
  local s, q, rem = str(h, l), {}, 0
  for i = 1, #s do
    rem = rem * 10 + tonumber(string.sub(s, i, i))
    local digit = math.floor(rem / d)
    q[i] = string.char(48 + digit)
    rem = rem - digit * d
  end
  local qs = string.gsub(table.concat(q), '^0+', '')
  if qs == '' then qs = '0' end
  return pair(qs, 'quotient')
end
seq = seqOf(seq, 'seq')

-- N counters: index 1 is the item's Key. Per counter: committed (kh, kl),
-- reserved outside leases (xh, xl), leased (lh, ll), reported (qh, ql).
local N = #KEYS / 2
local kh, kl, xh, xl, lh, ll, qh, ql = {}, {}, {}, {}, {}, {}, {}, {}
local me = {}
for i = 1, N do
  local c = KEYS[2 * i - 1]
  local v
  if i == 1 then
    v = redis.call('HMGET', c, 'c', 'r', 'l', 'q', 'l:' .. holder, 'q:' .. holder, 's:' .. holder, 'f:' .. holder,
      'y:' .. holder, 'k:' .. holder)
    me.lh, me.ll = amt(v[5], c .. ' l:' .. holder)
    me.qh, me.ql = amt(v[6], c .. ' q:' .. holder)
    me.seq = seqOf(v[7], c .. ' s:' .. holder)
    me.fh, me.fl = amt(v[8], c .. ' f:' .. holder)
    me.yh, me.yl = amt(v[9], c .. ' y:' .. holder)
    amt(v[10], c .. ' k:' .. holder)
    me.kept = v[10] and true or false
  else
    v = redis.call('HMGET', c, 'c', 'r', 'l', 'q')
  end
  kh[i], kl[i] = stored(v[1], c)
  xh[i], xl[i] = stored(v[2], c)
  lh[i], ll[i] = amt(v[3], c .. ' l')
  qh[i], ql[i] = amt(v[4], c .. ' q')
end

local applied = seqLess(me.seq, seq)
-- FF[i]: the forfeits on counter i, a list of {id, new forfeit hi, lo}.
local FF = {}
local lease_h, lease_l = me.lh, me.ll
if applied then
  -- 1. forfeits of the expired leases.
  for i = 1, N do
    FF[i] = {}
    if i == 1 or lh[i] ~= 0 or ll[i] ~= 0 then
      local c, h = KEYS[2 * i - 1], KEYS[2 * i]
      local ids = redis.call('ZRANGEBYSCORE', h, '-inf', nowS)
      for _, id in ipairs(ids) do
        if i ~= 1 or id ~= holder then
          local v = redis.call('HMGET', c, 'l:' .. id, 'q:' .. id, 'f:' .. id)
          local ah, al = amt(v[1], c .. ' l:' .. id)
          local bh, bl = amt(v[2], c .. ' q:' .. id)
          local fh, fl = amt(v[3], c .. ' f:' .. id)
          kh[i], kl[i] = add(kh[i], kl[i], ah, al)
          lh[i], ll[i] = sub(lh[i], ll[i], ah, al)
          qh[i], ql[i] = sub(qh[i], ql[i], bh, bl)
          fh, fl = add(fh, fl, ah, al)
          -- the reservations stay beside a forfeit that is not 0.
          local kept = (fh ~= 0 or fl ~= 0) and (bh ~= 0 or bl ~= 0)
          FF[i][#FF[i] + 1] = {id, fh, fl, ah ~= 0 or al ~= 0, kept and str(bh, bl)}
        end
      end
    end
  end
  -- 2. the commit, less the credit against the holder's forfeit.
  local crh, crl = cmh, cml
  if less(me.fh, me.fl, crh, crl) then crh, crl = me.fh, me.fl end
  me.fh, me.fl = sub(me.fh, me.fl, crh, crl)
  kh[1], kl[1] = add(kh[1], kl[1], sub(cmh, cml, crh, crl))
  me.yh, me.yl = add(me.yh, me.yl, cmh, cml)
  -- 3. the room: the limit less committed, leased by others and
  -- reserved outside leases, over every counter.
  local rmh, rml = MH, ML
  if enforce == '1' then
    local uh, ul = sub(lh[1], ll[1], me.lh, me.ll)
    uh, ul = add(uh, ul, kh[1], kl[1])
    uh, ul = add(uh, ul, xh[1], xl[1])
    for i = 2, N do
      uh, ul = add(uh, ul, kh[i], kl[i])
      uh, ul = add(uh, ul, lh[i], ll[i])
      uh, ul = add(uh, ul, xh[i], xl[i])
    end
    rmh, rml = sub(lih, lil, uh, ul)
  end
  -- 4. the lease: need + ask + extra.
  if enforce == '1' then
    -- the live holders on Key but this one: after the forfeits, every
    -- other member of the set.
    local others = redis.call('ZCARD', KEYS[2]) - #FF[1]
    if redis.call('ZSCORE', KEYS[2], holder) then others = others - 1 end
    local fh, fl = sub(rmh, rml, ndh, ndl)
    local ah, al = akh, akl
    if less(fh, fl, ah, al) then ah, al = fh, fl end
    fh, fl = sub(fh, fl, ah, al)
    fh, fl = div(fh, fl, 2 * (others + 1))
    if less(fh, fl, exh, exl) then fh, fl = 0, 0 else fh, fl = exh, exl end
    lease_h, lease_l = add(ndh, ndl, ah, al)
    lease_h, lease_l = add(lease_h, lease_l, fh, fl)
  else
    lease_h, lease_l = add(ndh, ndl, akh, akl)
    lease_h, lease_l = add(lease_h, lease_l, exh, exl)
  end
  -- 5. the holder's fields and the totals.
  lh[1], ll[1] = sub(lh[1], ll[1], me.lh, me.ll)
  lh[1], ll[1] = add(lh[1], ll[1], lease_h, lease_l)
  qh[1], ql[1] = sub(qh[1], ql[1], me.qh, me.ql)
  qh[1], ql[1] = add(qh[1], ql[1], rsh, rsl)

  -- Writes: the forfeits, then Key's fields in one HSET.
  for i = 1, N do
    local c, h = KEYS[2 * i - 1], KEYS[2 * i]
    for _, f in ipairs(FF[i]) do
      local id = f[1]
      if f[5] then
        redis.call('HDEL', c, 'l:' .. id, 'q:' .. id)
        redis.call('HSET', c, 'f:' .. id, str(f[2], f[3]), 'k:' .. id, f[5])
      else
        redis.call('HDEL', c, 'l:' .. id, 'q:' .. id, 'k:' .. id)
        if f[4] then redis.call('HSET', c, 'f:' .. id, str(f[2], f[3])) end
      end
      redis.call('ZREM', h, id)
    end
    if i > 1 and #FF[i] > 0 then
      redis.call('HSET', c, 'c', str(kh[i], kl[i]), 'l', str(lh[i], ll[i]), 'q', str(qh[i], ql[i]))
    end
  end
  local c, h = KEYS[1], KEYS[2]
  local gone = lease_h == 0 and lease_l == 0 and rsh == 0 and rsl == 0
  local del = {}
  local set = {'c', str(kh[1], kl[1]), 'l', str(lh[1], ll[1]), 'q', str(qh[1], ql[1]), 's:' .. holder, seq}
  if gone then
    del[#del + 1], del[#del + 2] = 'l:' .. holder, 'q:' .. holder
    redis.call('ZREM', h, holder)
  else
    set[#set + 1], set[#set + 2] = 'l:' .. holder, str(lease_h, lease_l)
    set[#set + 1], set[#set + 2] = 'q:' .. holder, str(rsh, rsl)
    redis.call('ZADD', h, dec(expiry), holder)
  end
  if me.fh ~= 0 or me.fl ~= 0 then
    set[#set + 1], set[#set + 2] = 'f:' .. holder, str(me.fh, me.fl)
  else
    del[#del + 1] = 'f:' .. holder
  end
  if cmh ~= 0 or cml ~= 0 then
    set[#set + 1], set[#set + 2] = 'y:' .. holder, str(me.yh, me.yl)
  end
  if me.kept then del[#del + 1] = 'k:' .. holder end
  redis.call('HSET', c, unpack(set))
  if #del > 0 then redis.call('HDEL', c, unpack(del)) end
  keep(c, ttl)
  keep(h, ttl)
end

-- The reply: the state now, over every counter.
local ch, cl, lth, ltl, rh, rl = 0, 0, 0, 0, 0, 0
for i = 1, N do
  ch, cl = add(ch, cl, kh[i], kl[i])
  lth, ltl = add(lth, ltl, lh[i], ll[i])
  rh, rl = add(rh, rl, qh[i], ql[i])
  rh, rl = add(rh, rl, xh[i], xl[i])
end
local holders = redis.call('ZCOUNT', KEYS[2], '(' .. nowS, '+inf')
local ap = 0
if applied then ap = 1 end
return {ap, lease_h, lease_l, ch, cl, lth, ltl, rh, rl, holders, me.fh, me.fl}
`)

// forfeitScript is Store.SettleForfeit. KEYS: C and H of the item's Key.
// ARGV: now (µs), holder, spent. Reply: {status, refund hi, lo, forfeit
// hi, lo}, status 1 when applied, 0 when there was no forfeit to settle,
// 2 (nothing changed) when the holder's lease is live at now.
//
// A holder still in H whose lease expired at now is forfeited first, as
// leaseScript's step 1 would. Then, with f its forfeit, y its synced sum
// and k its reservations at its last sync (those of the forfeit, or of
// the lease just forfeited): refund = f - (max(spent - y, 0) + k), or 0,
// comes off "c" (not below 0), and f:, y: and k: go.
var forfeitScript = redis.NewScript(prelude + `
local now = int(ARGV[1], 'now')
local holder = ARGV[2]
local sph, spl = pair(ARGV[3], 'spent')
if #ARGV ~= 3 then fail('wrong argument count') end
if holder == '' then fail('empty holder') end
if #KEYS ~= 2 then fail('keys are not one counter') end
local c, h = KEYS[1], KEYS[2]
local function amt(s, what)
  if not s then return 0, 0 end
  return pair(s, what)
end
local v = redis.call('HMGET', c, 'c', 'l', 'q', 'l:' .. holder, 'q:' .. holder, 'f:' .. holder, 'y:' .. holder, 'k:' .. holder)
local kh, kl = stored(v[1], c)
local lh, ll = amt(v[2], c .. ' l')
local qh, ql = amt(v[3], c .. ' q')
local ah, al = amt(v[4], c .. ' l:' .. holder)
local bh, bl = amt(v[5], c .. ' q:' .. holder)
local fh, fl = amt(v[6], c .. ' f:' .. holder)
local yh, yl = amt(v[7], c .. ' y:' .. holder)
local rh, rl = amt(v[8], c .. ' k:' .. holder)
local score = redis.call('ZSCORE', h, holder)
local lost = false
if score then
  local e = tonumber(score)
  if not e then fail(h .. ' score of ' .. holder .. ' is not a number') end
  if e > now then return {2, 0, 0, 0, 0} end
  -- the holder's lease expired: forfeit it.
  lost = true
  kh, kl = add(kh, kl, ah, al)
  lh, ll = sub(lh, ll, ah, al)
  qh, ql = sub(qh, ql, bh, bl)
  fh, fl = add(fh, fl, ah, al)
  rh, rl = bh, bl
end
local set = {'c', str(kh, kl)}
local del = {'k:' .. holder}
if lost then
  set[3], set[4], set[5], set[6] = 'l', str(lh, ll), 'q', str(qh, ql)
  del[2], del[3] = 'l:' .. holder, 'q:' .. holder
end
if fh == 0 and fl == 0 then
  if lost then
    redis.call('HSET', c, unpack(set))
    redis.call('HDEL', c, unpack(del))
    redis.call('ZREM', h, holder)
  end
  return {0, 0, 0, 0, 0}
end
local xh, xl = sub(sph, spl, yh, yl)
xh, xl = add(xh, xl, rh, rl)
local dh, dl = sub(fh, fl, xh, xl)
kh, kl = sub(kh, kl, dh, dl)
set[2] = str(kh, kl)
del[#del + 1], del[#del + 2] = 'f:' .. holder, 'y:' .. holder
redis.call('HSET', c, unpack(set))
redis.call('HDEL', c, unpack(del))
if lost then redis.call('ZREM', h, holder) end
return {1, dh, dl, fh, fl}
`)
