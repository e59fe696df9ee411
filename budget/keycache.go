package budget

import (
	"hash/maphash"
	"sync/atomic"
	"time"
)

// keyCache remembers the counter keys of recently used scopes for their
// current period, so that the calls of one request (the headers check,
// then the reservation) and the requests that follow do not rebuild them:
// a rolling window has a key per bucket. It is a fixed array of slots
// indexed by a hash of the scope key — bounded, lock-free, and a miss only
// costs the rebuild. Entries are immutable; the key strings and windows
// they hand out are shared and never modified.
type keyCache struct {
	seed  maphash.Seed
	slots [keyCacheSlots]atomic.Pointer[periodKeys]
}

const keyCacheSlots = 1 << 10

// periodKeys are a scope's keys while now is in [from, until).
type periodKeys struct {
	budget      *Budget // a reloaded budget is another pointer: a miss
	scope       string
	forever     bool // a total budget's key never changes
	from, until time.Time
	key         string
	window      []string
	expires     time.Time
}

func newKeyCache() *keyCache { return &keyCache{seed: maphash.MakeSeed()} }

// item is itemFor through the cache.
func (c *keyCache) item(s Scope, model string, now time.Time) Item {
	b := s.Budget
	slot := &c.slots[maphash.String(c.seed, s.Key)%keyCacheSlots]
	k := slot.Load()
	if k == nil || k.budget != b || k.scope != s.Key || !k.forever && (now.Before(k.from) || !now.Before(k.until)) {
		it := itemFor(s, model, now)
		k = &periodKeys{budget: b, scope: s.Key, key: it.Key, window: it.Window, expires: it.Expires}
		switch b.period {
		case PeriodTotal:
			k.forever = true
		case PeriodRolling:
			k.from = b.bucketStart(now)
			k.until = k.from.Add(b.rolling.bucket)
		default:
			k.from, k.until = b.Window(now)
		}
		slot.Store(k)
		return it
	}
	return Item{Key: k.key, Window: k.window, Limit: b.hard, Enforce: b.hasHard && !b.Allows(model), Expires: k.expires}
}

// items is itemsFor through the cache.
func (c *keyCache) items(scopes []Scope, model string, now time.Time) []Item {
	return c.appendItems(make([]Item, 0, len(scopes)), scopes, model, now)
}

// appendItems appends the items of scopes to dst.
func (c *keyCache) appendItems(dst []Item, scopes []Scope, model string, now time.Time) []Item {
	for _, s := range scopes {
		dst = append(dst, c.item(s, model, now))
	}
	return dst
}
