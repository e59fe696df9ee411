package budget

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStatus(t *testing.T) {
	f := newFixture(t, exampleYAML, "2026-11-15T10:00:00+01:00")
	dims := map[string]string{"tenant": "globex", "team": "search", "user": "bob"}
	f.commit(t, dims, usd("4.5"))
	f.commit(t, map[string]string{"tenant": "globex"}, usd("800"))
	_, _, err := f.eng.Reserve(context.Background(), f.p, f.p.Applicable(dims), "m", usd("0.5"), "r")
	require.NoError(t, err)

	st, err := f.eng.Status(context.Background(), f.p.Applicable(dims))
	require.NoError(t, err)
	require.Len(t, st, 3)
	tests := []struct {
		budget, level, remaining string
		counter                  Counter
		start, resets            string
	}{
		{"tenant-monthly", "soft", "195", Counter{usd("804.5"), usd("0.5")}, "2026-11-01T00:00:00+01:00", "2026-12-01T00:00:00+01:00"},
		{"fleet-daily", "ok", "1195", Counter{usd("804.5"), usd("0.5")}, "2026-11-15T00:00:00Z", "2026-11-16T00:00:00Z"},
		{"runaway-agent-guard", "hard", "0", Counter{usd("4.5"), usd("0.5")}, "2026-11-15T08:50:00Z", "2026-11-15T09:11:00Z"},
	}
	for i, tt := range tests {
		t.Run(tt.budget, func(t *testing.T) {
			assert.Equal(t, tt.budget, st[i].Scope.Budget.Name())
			assert.Equal(t, tt.level, st[i].Level)
			assert.Equal(t, usd(tt.remaining), st[i].Remaining)
			assert.Equal(t, tt.counter, st[i].Counter)
			assert.Equal(t, tt.start, st[i].Start.Format(time.RFC3339))
			assert.Equal(t, tt.resets, st[i].ResetsAt.Format(time.RFC3339))
		})
	}
}
