package budget

import (
	"hash/maphash"
	"slices"
	"sync/atomic"
)

// scopeCache remembers the applicable scopes of recently seen requests, so
// that the requests of one tenant or user that follow do not rebuild them:
// finding the budgets that apply, and for each its scope values and counter
// key, takes a map and a string per scope. Requests are told apart by their
// values of the policies' match keys (the only dimensions that decide what
// applies) and by which of those keys are known (ApplicableKnown).
//
// Like keyCache it is a fixed array of slots indexed by a hash — bounded,
// lock-free, a miss only costs the rebuild — and its entries are
// immutable: the scopes handed out are shared by every request that finds
// them, which is why Applicable's results must not be modified.
type scopeCache struct {
	seed  maphash.Seed
	slots [scopeCacheSlots]atomic.Pointer[scopeEntry]
}

const scopeCacheSlots = 1 << 12

// maxCachedKeys bounds the match keys a cached lookup handles: the known
// keys are a bit mask, and the values fit in an array on the stack.
const maxCachedKeys = 16

type scopeEntry struct {
	known  uint32
	values []string // the request's value of each of the policies' keys, "" when absent
	scopes []Scope
}

func newScopeCache() *scopeCache { return &scopeCache{seed: maphash.MakeSeed()} }

// applicableCached is applicable through the cache; keys are the
// policies' match keys (Dimensions), at most maxCachedKeys of them.
func (p *Policies) applicableCached(dims map[string]string, known func(string) bool) []Scope {
	var buf [maxCachedKeys]string
	values := buf[:len(p.keys)]
	var mask uint32
	h := uint64(0)
	for i, k := range p.keys {
		if known != nil && !known(k) {
			continue
		}
		mask |= 1 << i
		values[i] = dims[k]
		h = h*0x100000001b3 ^ maphash.String(p.scopes.seed, values[i])
	}
	h ^= uint64(mask) * 0x9e3779b97f4a7c15
	slot := &p.scopes.slots[h%scopeCacheSlots]
	if e := slot.Load(); e != nil && e.known == mask && slices.Equal(e.values, values) {
		return e.scopes
	}
	scopes := slices.Clip(p.applicable(dims, known))
	slot.Store(&scopeEntry{known: mask, values: slices.Clone(values), scopes: scopes})
	return scopes
}
