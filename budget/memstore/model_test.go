package memstore_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/memstore"
	"github.com/spendguard/spendguard/internal/money"
)

// modelStore is the memory store's behaviour written plainly: every call
// releases the reservations that expired (earliest first, by key, at least
// down to zero) and drops the counters whose grace has passed, then looks
// every key up by name.
type modelStore struct {
	counters map[string]*modelCounter
	live     map[string]*modelReservation
}

type modelCounter struct {
	budget.Counter
	expires time.Time
}

type modelReservation struct {
	keys    []string
	amount  money.Nano
	expires time.Time
}

func (m *modelStore) sweep(now time.Time) {
	var ids []string
	for id, r := range m.live {
		if !now.Before(r.expires) {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(a, b string) int { return m.live[a].expires.Compare(m.live[b].expires) })
	for _, id := range ids {
		m.release(id)
	}
	for k, c := range m.counters {
		if !c.expires.IsZero() && !now.Before(c.expires.Add(memstore.Grace)) {
			delete(m.counters, k)
		}
	}
}

func (m *modelStore) release(id string) {
	r := m.live[id]
	delete(m.live, id)
	for _, k := range r.keys {
		if c := m.counters[k]; c != nil {
			c.Reserved = max(c.Reserved-r.amount, 0)
		}
	}
}

func (m *modelStore) counter(it budget.Item) *modelCounter {
	c := m.counters[it.Key]
	if c == nil {
		c = &modelCounter{expires: it.Expires}
		m.counters[it.Key] = c
	}
	return c
}

func (m *modelStore) sum(it budget.Item) budget.Counter {
	var s budget.Counter
	for _, k := range append([]string{it.Key}, it.Window...) {
		if c := m.counters[k]; c != nil {
			s.Committed += c.Committed
			s.Reserved += c.Reserved
		}
	}
	return s
}

func (m *modelStore) usage(items []budget.Item, now time.Time) []budget.Counter {
	m.sweep(now)
	out := make([]budget.Counter, len(items))
	for i, it := range items {
		out[i] = m.sum(it)
	}
	return out
}

func (m *modelStore) reserve(id string, amount money.Nano, items []budget.Item, ttl time.Duration, now time.Time) budget.Outcome {
	m.sweep(now)
	out := budget.Outcome{Blocked: -1, Counters: m.usage(items, now)}
	for i, it := range items {
		used := out.Counters[i].Used()
		if out.Blocked < 0 && it.Enforce && (used >= it.Limit || used+amount > it.Limit) {
			out.Blocked = i
		}
	}
	if !out.OK() {
		return out
	}
	r := &modelReservation{amount: amount, expires: now.Add(ttl)}
	for i, it := range items {
		m.counter(it).Reserved += amount
		r.keys = append(r.keys, it.Key)
		out.Counters[i].Reserved += amount
	}
	m.live[id] = r
	return out
}

func (m *modelStore) extend(id string, want money.Nano, items []budget.Item, ttl time.Duration, now time.Time) (money.Nano, budget.Outcome) {
	m.sweep(now)
	out := budget.Outcome{Blocked: -1, Counters: m.usage(items, now)}
	granted := want
	for i, it := range items {
		if room := max(it.Limit-out.Counters[i].Used(), 0); it.Enforce && room < granted {
			granted, out.Blocked = room, i
		}
	}
	r := m.live[id]
	if r == nil {
		r = &modelReservation{}
		for _, it := range items {
			r.keys = append(r.keys, it.Key)
		}
		m.live[id] = r
	}
	r.amount += granted
	r.expires = now.Add(ttl)
	for i, it := range items {
		m.counter(it).Reserved += granted
		out.Counters[i].Reserved += granted
	}
	return granted, out
}

func (m *modelStore) settle(id string, actual money.Nano, items []budget.Item, now time.Time) {
	m.sweep(now)
	if m.live[id] != nil {
		m.release(id)
	}
	if actual > 0 {
		for _, it := range items {
			m.counter(it).Committed += actual
		}
	}
}

// TestMemoryStoreMatchesModel runs random calls on the memory store and on
// modelStore and requires the same results (extensions included, of live,
// expired and unknown reservations): rolling windows whose slices
// are reused, copied or overwritten between calls, reservations that
// outlive their counters (a TTL of hours), late settles that recreate a
// dropped counter, and reservations on such a recreated counter.
func TestMemoryStoreMatchesModel(t *testing.T) {
	for seed := range uint64(40) {
		t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) { matchModel(t, seed) })
	}
}

func matchModel(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	ctx := context.Background()
	s := memstore.New()
	m := &modelStore{counters: map[string]*modelCounter{}, live: map[string]*modelReservation{}}
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

	// windows holds the Window slice of each rolling scope and bucket, as
	// the engine's key cache shares them.
	windows := map[string][]string{}
	rollingItem := func(scope string, at time.Time) budget.Item {
		start := at.Truncate(time.Minute)
		key := scope + "@" + strconv.FormatInt(start.Unix(), 10)
		w, ok := windows[key]
		if !ok {
			for k := 1; k <= 10; k++ {
				w = append(w, scope+"@"+strconv.FormatInt(start.Unix()-int64(k)*60, 10))
			}
			windows[key] = w
		}
		switch rng.IntN(10) {
		case 0: // equal keys in other strings
			c := make([]string, len(w))
			for i, k := range w {
				c[i] = string([]byte(k))
			}
			w = c
		case 1: // a shorter window
			w = w[:rng.IntN(len(w))]
		}
		return budget.Item{Key: key, Window: w, Limit: money.Nano(rng.IntN(400)), Enforce: rng.IntN(3) > 0, Expires: start.Add(11 * time.Minute)}
	}
	calendarItem := func(scope string, at time.Time) budget.Item {
		start := at.Truncate(time.Hour)
		return budget.Item{Key: scope + "@" + strconv.FormatInt(start.Unix(), 10), Limit: money.Nano(rng.IntN(1000)), Enforce: rng.IntN(2) > 0, Expires: start.Add(time.Hour)}
	}
	itemsAt := func(at time.Time) []budget.Item {
		var items []budget.Item
		defer func() {
			for i := range items {
				if rng.IntN(10) == 0 && !items[i].Expires.IsZero() {
					// a later end for the same key (a reloaded budget): a
					// counter recreated after its drop then lives on
					items[i].Expires = items[i].Expires.Add(time.Duration(1+rng.IntN(4)) * time.Hour)
				}
			}
		}()
		for _, sc := range []string{"r0", "r1"} {
			if rng.IntN(3) > 0 {
				items = append(items, rollingItem(sc, at))
			}
		}
		if rng.IntN(2) > 0 {
			items = append(items, calendarItem("c0", at))
		}
		if rng.IntN(4) == 0 {
			items = append(items, budget.Item{Key: "total", Limit: 1 << 40, Enforce: true})
		}
		rng.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
		return items
	}

	type past struct {
		id    string
		items []budget.Item
	}
	var reserved []past
	var times []time.Time
	seq := 0
	for step := range 3000 {
		switch r := rng.IntN(100); {
		case r < 3:
			now = now.Add(time.Duration(1+rng.IntN(3)) * time.Hour)
		case r < 40:
			now = now.Add(time.Duration(rng.IntN(90)) * time.Second)
		}
		times = append(times, now)
		at := now
		if rng.IntN(5) == 0 { // items of an earlier time: a stale or slow caller
			at = times[rng.IntN(len(times))]
		}
		switch op := rng.IntN(12); {
		case op < 4:
			seq++
			id := "r" + strconv.Itoa(seq)
			items := itemsAt(at)
			amount := money.Nano(rng.IntN(100))
			// distinct expiries (nanoseconds apart), from a second to 3h
			ttl := time.Duration(1+rng.IntN(3*3600))*time.Second + time.Duration(seq)
			got, err := s.Reserve(ctx, id, amount, items, ttl, now)
			require.NoError(t, err)
			want := m.reserve(id, amount, items, ttl, now)
			require.Equal(t, want, got, "step %d: reserve %s", step, id)
			reserved = append(reserved, past{id, items})
		case op < 7 && len(reserved) > 0:
			p := reserved[rng.IntN(len(reserved))]
			if rng.IntN(8) == 0 {
				p = past{"unknown" + strconv.Itoa(step), itemsAt(at)}
			} else {
				reserved = slices.DeleteFunc(reserved, func(q past) bool { return q.id == p.id })
			}
			actual := money.Nano(rng.IntN(60))
			if rng.IntN(4) == 0 {
				actual = 0
			}
			require.NoError(t, s.Settle(ctx, p.id, actual, p.items, now))
			m.settle(p.id, actual, p.items, now)
		case op < 9:
			// grow a reservation (live, expired or refused) or
			// one never reserved
			p := past{"unknown" + strconv.Itoa(step), itemsAt(at)}
			if len(reserved) > 0 && rng.IntN(8) > 0 {
				p = reserved[rng.IntN(len(reserved))]
			} else {
				reserved = append(reserved, p)
			}
			seq++
			want := money.Nano(rng.IntN(100))
			ttl := time.Duration(1+rng.IntN(3*3600))*time.Second + time.Duration(seq)
			granted, got, err := s.Extend(ctx, p.id, want, p.items, ttl, now)
			require.NoError(t, err)
			wantGranted, wantOut := m.extend(p.id, want, p.items, ttl, now)
			require.Equal(t, wantOut, got, "step %d: extend %s", step, p.id)
			require.Equal(t, wantGranted, granted, "step %d: extend %s", step, p.id)
		default:
			items := itemsAt(at)
			if rng.IntN(10) == 0 && len(items) > 0 && len(items[0].Window) > 0 {
				// the same slice, overwritten after a call: the store must
				// not trust it
				got, err := s.Usage(ctx, items, now)
				require.NoError(t, err)
				require.Equal(t, m.usage(items, now), got, "step %d: usage", step)
				w := items[0].Window
				old := w[0]
				for k := range m.counters { // some key with spend, if any
					w[0] = k
					break
				}
				got, err = s.Usage(ctx, items, now)
				require.NoError(t, err)
				require.Equal(t, m.usage(items, now), got, "step %d: usage, overwritten window", step)
				w[0] = old
			}
			got, err := s.Usage(ctx, items, now)
			require.NoError(t, err)
			require.Equal(t, m.usage(items, now), got, "step %d: usage", step)
		}
		counters, live := s.Len()
		require.Equal(t, len(m.counters), counters, "step %d: counters", step)
		require.Equal(t, len(m.live), live, "step %d: reservations", step)
	}
}

// TestMemoryStoreReservationOutlivesCounter: a reservation that outlives
// its counter (dropped after its grace) and a counter recreated under the
// same key (by an item with a later end) meanwhile; the reservation ends
// by settling or by expiring. The store must behave as the model does.
func TestMemoryStoreReservationOutlivesCounter(t *testing.T) {
	for _, settle := range []bool{false, true} {
		ctx, t0 := context.Background(), time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
		s := memstore.New()
		m := &modelStore{counters: map[string]*modelCounter{}, live: map[string]*modelReservation{}}
		k := budget.Item{Key: "k@1", Limit: 100, Enforce: true, Expires: t0.Add(time.Minute)}
		later := k
		later.Expires = t0.Add(5 * time.Hour)
		other := budget.Item{Key: "o@1", Window: []string{"k@1"}, Limit: 100, Enforce: true}
		both := []budget.Item{k, other}
		check := func(at time.Time, msg string) {
			t.Helper()
			got, err := s.Usage(ctx, both, at)
			require.NoError(t, err)
			require.Equal(t, m.usage(both, at), got, msg)
			counters, live := s.Len()
			require.Equal(t, []int{len(m.counters), len(m.live)}, []int{counters, live}, msg)
		}
		reserve := func(id string, amount money.Nano, items []budget.Item, ttl time.Duration, at time.Time) {
			t.Helper()
			got, err := s.Reserve(ctx, id, amount, items, ttl, at)
			require.NoError(t, err)
			require.Equal(t, m.reserve(id, amount, items, ttl, at), got, id)
		}
		reserve("long", 5, both, 3*time.Hour, t0)
		check(t0, "reserved")
		dropped := t0.Add(time.Minute + memstore.Grace)
		check(dropped, "k dropped")
		reserve("new", 7, []budget.Item{later}, time.Hour, dropped)
		check(dropped, "k recreated")
		end := dropped.Add(time.Minute)
		if settle {
			require.NoError(t, s.Settle(ctx, "long", 2, both, end))
			m.settle("long", 2, both, end)
		} else {
			end = t0.Add(3 * time.Hour)
		}
		check(end, "long ended")
		check(end.Add(time.Hour), "new expired")
	}
}
