package budget

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestItemFor(t *testing.T) {
	p, err := compileYAML(t, exampleYAML)
	require.NoError(t, err)
	now := mustTime(t, "2026-11-15T10:00:30+01:00")
	scopes := p.Applicable(map[string]string{"tenant": "globex", "user": "bob"})
	require.Len(t, scopes, 3)

	var window []string
	for k := 1; k <= 10; k++ {
		window = append(window, fmt.Sprint("runaway-agent-guard|rolling600s|user=bob@", now.Unix()-30-int64(k)*60))
	}
	tests := []struct {
		scope int
		model string
		want  Item
	}{
		{0, "llama", Item{Key: "tenant-monthly|month|tenant=globex@1793487600", Limit: usd("1000"), Enforce: true,
			Expires: mustTime(t, "2026-12-01T00:00:00+01:00")}},
		{0, "free-tier-model", Item{Key: "tenant-monthly|month|tenant=globex@1793487600", Limit: usd("1000"),
			Expires: mustTime(t, "2026-12-01T00:00:00+01:00")}},
		{1, "llama", Item{Key: "fleet-daily|day|@1794700800", Limit: usd("2000"), Enforce: true,
			Expires: mustTime(t, "2026-11-16T00:00:00Z")}},
		{2, "llama", Item{Key: fmt.Sprint("runaway-agent-guard|rolling600s|user=bob@", now.Unix()-30), Window: window,
			Limit: usd("5"), Enforce: true, Expires: now.Add(11*time.Minute - 30*time.Second)}},
	}
	for _, tt := range tests {
		t.Run(tt.want.Key+" "+tt.model, func(t *testing.T) {
			got := itemFor(scopes[tt.scope], tt.model, now)
			assert.Equal(t, tt.want.Key, got.Key)
			assert.Equal(t, tt.want.Window, got.Window)
			assert.Equal(t, tt.want.Limit, got.Limit)
			assert.Equal(t, tt.want.Enforce, got.Enforce)
			assert.True(t, tt.want.Expires.Equal(got.Expires), "expires %v, want %v", got.Expires, tt.want.Expires)
		})
	}

	total, err := Compile([]Config{cfg("lifetime", "total", "tenant", "*")}, Limits{})
	require.NoError(t, err)
	got := itemFor(total.Applicable(map[string]string{"tenant": "globex"})[0], "", now)
	assert.Equal(t, Item{Key: "lifetime|total|tenant=globex@total", Limit: usd("1"), Enforce: true}, got)
}
