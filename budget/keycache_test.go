package budget

import (
	"hash/maphash"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestKeyCacheGivesItemFor walks every period kind across its boundaries
// (and a DST change) a few seconds at a time, asking each instant twice:
// the cached item is always itemFor's, after a hit as after a miss, for
// scopes that share a cache slot, and for a reloaded budget of the same
// name.
func TestKeyCacheGivesItemFor(t *testing.T) {
	const src = `
budgets:
  - {name: hourly, match: {user: "*"}, period: hour, hard_usd: 1}
  - {name: daily-berlin, match: {tenant: "*"}, period: day, timezone: Europe/Berlin, hard_usd: 10, on_hard: {allow_models: [free]}}
  - {name: weekly, period: week, soft_usd: 5}
  - {name: monthly, match: {tenant: "*"}, period: month, hard_usd: 100}
  - {name: guard, match: {user: "*"}, rolling: 10m, hard_usd: 2}
  - {name: forever, period: total, hard_usd: 1000}
`
	p, err := compileYAML(t, src)
	require.NoError(t, err)
	reloaded, err := compileYAML(t, src)
	require.NoError(t, err)
	c := newKeyCache()
	var scopes []Scope
	for _, user := range []string{"bob", "alice", "carol"} {
		dims := map[string]string{"tenant": "acme-" + user, "user": user}
		scopes = append(scopes, p.Applicable(dims)...)
		scopes = append(scopes, reloaded.Applicable(dims)...)
	}
	// collided looks s up after another scope's keys took its slot.
	c2 := newKeyCache()
	slot := func(s Scope) int { return int(maphash.String(c2.seed, s.Key) % keyCacheSlots) }
	collided := func(s, other Scope, model string, now time.Time) Item {
		c2.item(other, model, now)
		c2.slots[slot(s)].Store(c2.slots[slot(other)].Load())
		return c2.item(s, model, now)
	}
	start := mustTime(t, "2026-10-25T00:55:00Z") // Berlin leaves summer time at 01:00 UTC
	for now := start; now.Before(start.Add(3 * time.Hour)); now = now.Add(47 * time.Second) {
		for i, s := range scopes {
			other := scopes[(i+1)%len(scopes)]
			for _, model := range []string{"m", "free"} {
				want := itemFor(s, model, now)
				assert.Equal(t, want, c.item(s, model, now), "%s at %s", s.Key, now)
				assert.Equal(t, want, c.item(s, model, now), "%s at %s, again", s.Key, now)
				assert.Equal(t, want, collided(s, other, model, now), "%s at %s, after %s", s.Key, now, other.Key)
			}
		}
	}
}
