package redisstore_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/memstore"
	"github.com/spendguard/spendguard/budget/redisstore"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/test/redistest"
)

// FuzzAgreesWithMemory runs one random sequence of reserves, extends,
// settles and clock steps, with amounts concentrated near the int64 limit, the 2^53
// limit of Lua doubles and zero, on the memory store and on Redis; after
// every step both must give the same outcome, the same error (or none)
// and the same counters. Each step is 9 bytes: an operation byte and a
// big-endian amount.
func FuzzAgreesWithMemory(f *testing.F) {
	client, prefix := redistest.Shared(f)
	step := func(op byte, amount uint64) []byte {
		return binary.BigEndian.AppendUint64([]byte{op}, amount)
	}
	f.Add(append(step(0x00, math.MaxInt64), step(0x01, 5)...))
	f.Add(append(append(step(0x20, 10), step(0x21, 3)...), step(0x41, 1<<62)...))
	f.Add(append(append(step(0x60, 0), step(0x03, 0)...), step(0x82, 1)...))
	// reserve, extend it (near the cap, then by 2^63-1), extend one never reserved
	f.Add(append(append(append(step(0x40, 7), step(0x43, 3<<1|1)...), step(0x03, 1<<62|3)...), step(0x0b, 1)...))
	var run int
	f.Fuzz(func(t *testing.T, data []byte) {
		run++
		p := fmt.Sprintf("%sfz%d:", prefix, run)
		defer redistest.DeletePrefix(t, client, p)
		stores := []budget.Store{
			memstore.New(),
			redisstore.New(client, redisstore.Options{KeyPrefix: p, Timeout: testTimeout}),
		}
		agree(t, stores, data)
	})
}

// agree applies the steps in data to every store and requires the same
// results from all of them.
func agree(t *testing.T, stores []budget.Store, data []byte) {
	ctx := context.Background()
	end := t0.Add(24 * time.Hour)
	items := []budget.Item{
		{Key: "capped", Limit: 10 * money.PerUSD, Enforce: true, Expires: end},
		{Key: "top", Limit: math.MaxInt64, Enforce: true, Expires: end},
		{Key: "free", Expires: end},
		{Key: "window", Window: []string{"free", "capped"}, Limit: 1 << 53, Enforce: true, Expires: end},
	}
	now := t0
	var ids []string // live and expired reservations not settled yet
	reserved := map[string][]budget.Item{}
	for n := 0; len(data) >= 9 && n < 64; n++ {
		op, raw := data[0], binary.BigEndian.Uint64(data[1:9])
		data = data[9:]
		amount := shape(op>>5, raw)
		chosen := pick(items, op>>2&7)
		switch op & 3 {
		case 0: // reserve
			id := fmt.Sprint("r", n)
			ids = append(ids, id)
			reserved[id] = chosen
			var first budget.Outcome
			var firstErr error
			for i, s := range stores {
				out, err := s.Reserve(ctx, id, amount, chosen, time.Minute, now)
				if i == 0 {
					first, firstErr = out, err
					continue
				}
				require.Equal(t, firstErr == nil, err == nil, "step %d reserve %d: errors %v, %v", n, amount, firstErr, err)
				require.Equal(t, first, out, "step %d reserve %d", n, amount)
			}
		case 1: // settle a reservation once (Redis would ignore a second
			// settle, memory count it: the contract allows one), or an id
			// never reserved, with the items of its Reserve
			id := fmt.Sprint("u", n)
			if len(ids) > 0 {
				k := int(raw % uint64(len(ids)))
				id = ids[k]
				ids = append(ids[:k], ids[k+1:]...)
				chosen = reserved[id]
			}
			var firstErr error
			for i, s := range stores {
				err := s.Settle(ctx, id, amount, chosen, now)
				if i == 0 {
					firstErr = err
					continue
				}
				require.Equal(t, firstErr == nil, err == nil, "step %d settle %d: errors %v, %v", n, amount, firstErr, err)
			}
		case 2: // the clock moves
			now = now.Add(time.Duration(raw % uint64(2*time.Minute)))
		case 3:
			if raw&1 == 0 { // a negative amount: refused by every store
				for _, s := range stores {
					_, err := s.Reserve(ctx, "neg", -amount-1, chosen, time.Minute, now)
					require.ErrorIs(t, err, budget.ErrInvalidArgument)
					require.ErrorIs(t, s.Settle(ctx, "neg", -amount-1, chosen, now), budget.ErrInvalidArgument)
					_, _, err = s.Extend(ctx, "neg", -amount-1, chosen, time.Minute, now)
					require.ErrorIs(t, err, budget.ErrInvalidArgument)
				}
				break
			}
			// extend a reservation (live, expired or refused) with the
			// items of its Reserve, or one never reserved
			id := fmt.Sprint("x", n)
			if len(ids) > 0 && raw&2 != 0 {
				id = ids[int(raw>>2%uint64(len(ids)))]
				chosen = reserved[id]
			} else {
				ids = append(ids, id)
				reserved[id] = chosen
			}
			var first budget.Outcome
			var firstGranted money.Nano
			var firstErr error
			for i, s := range stores {
				granted, out, err := s.Extend(ctx, id, amount, chosen, time.Minute, now)
				if i == 0 {
					firstGranted, first, firstErr = granted, out, err
					continue
				}
				require.Equal(t, firstErr == nil, err == nil, "step %d extend %d: errors %v, %v", n, amount, firstErr, err)
				require.Equal(t, firstGranted, granted, "step %d extend %d", n, amount)
				require.Equal(t, first, out, "step %d extend %d", n, amount)
			}
		}
		var first []budget.Counter
		for i, s := range stores {
			u, err := s.Usage(ctx, items, now)
			require.NoError(t, err)
			for _, c := range u {
				require.GreaterOrEqual(t, c.Committed, money.Nano(0))
				require.GreaterOrEqual(t, c.Reserved, money.Nano(0))
			}
			if i == 0 {
				first = u
				continue
			}
			require.Equal(t, first, u, "step %d: counters", n)
		}
	}
}

// shape maps a raw amount into one of the interesting ranges.
func shape(mode byte, raw uint64) money.Nano {
	switch mode & 7 {
	case 0:
		return money.Nano(raw & math.MaxInt64)
	case 1:
		return math.MaxInt64 - money.Nano(raw%1000)
	case 2:
		return money.Nano(raw % (100 * uint64(money.PerUSD)))
	case 3:
		return 1<<53 - 500 + money.Nano(raw%1000)
	case 4:
		return math.MaxInt64/2 + money.Nano(raw%3) - 1
	default:
		return money.Nano(raw % 16)
	}
}

// pick returns a non-empty subset of items chosen by the bits of b.
func pick(items []budget.Item, b byte) []budget.Item {
	out := []budget.Item{items[int(b)%len(items)]}
	if b&4 != 0 {
		next := items[(int(b)+1)%len(items)]
		out = append(out, next)
	}
	return out
}
