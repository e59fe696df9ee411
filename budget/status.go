package budget

import (
	"context"
	"fmt"
	"time"

	"github.com/spendguard/spendguard/internal/money"
)

// State is a scope's standing in its current period, for the admin API.
type State struct {
	Scope    Scope
	Start    time.Time // period start (zero for total)
	ResetsAt time.Time // zero for total
	Counter
	// Remaining is the hard cap minus committed and reserved, at least 0
	// (0 without a hard cap).
	Remaining money.Nano
	// Level is "hard" once committed+reserved has reached the hard cap,
	// "soft" once it has reached the soft cap, else "ok".
	Level string
}

// Status returns the state of every scope, with one Usage call.
func (e *Engine) Status(ctx context.Context, scopes []Scope) ([]State, error) {
	if len(scopes) == 0 {
		return nil, nil
	}
	now := e.now()
	counters, err := e.store.Usage(ctx, itemsFor(scopes, "", now), now)
	if err != nil {
		return nil, fmt.Errorf("budget usage: %w", err)
	}
	out := make([]State, len(scopes))
	for i, s := range scopes {
		b, c := s.Budget, counters[i]
		st := State{Scope: s, Counter: c, Level: "ok"}
		st.Start, st.ResetsAt = b.Window(now)
		if b.hasHard {
			st.Remaining = max(b.hard-c.Used(), 0)
		}
		switch {
		case b.hasHard && c.Used() >= b.hard:
			st.Level = "hard"
		case b.hasSoft && c.Used() >= b.soft:
			st.Level = "soft"
		}
		out[i] = st
	}
	return out, nil
}
