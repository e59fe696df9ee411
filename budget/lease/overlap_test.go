package lease_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/lease"
	"github.com/spendguard/spendguard/budget/lease/leasetest"
)

// gated is a Backend that counts the syncs in flight per counter, holds
// the syncs of one counter until released, and loses the reply of the
// next sync of another.
type gated struct {
	lease.Backend
	mu       sync.Mutex
	inFlight map[string]int
	overlap  bool
	hold     string
	release  chan struct{}
	held     chan struct{}
	lose     string
}

func (g *gated) Sync(ctx context.Context, r lease.SyncRequest) (lease.SyncReply, error) {
	g.mu.Lock()
	k := r.Item.Key
	g.inFlight[k]++
	g.overlap = g.overlap || g.inFlight[k] > 1
	hold, lose := k == g.hold, k == g.lose
	if lose {
		g.lose = ""
	}
	g.mu.Unlock()
	if hold {
		g.held <- struct{}{}
		<-g.release
	}
	rep, err := g.Backend.Sync(ctx, r)
	g.mu.Lock()
	g.inFlight[k]--
	g.mu.Unlock()
	if lose {
		return lease.SyncReply{}, fmt.Errorf("reply lost: %w", context.DeadlineExceeded)
	}
	return rep, err
}

// TestOneSyncPerCounterAtATime: a call over a counter with a sync of
// unknown outcome and a counter whose sync is under way waits for that
// sync; it never starts a second sync of the same counter beside it.
func TestOneSyncPerCounterAtATime(t *testing.T) {
	clk := newClock()
	g := &gated{Backend: leasetest.NewModel(), inFlight: map[string]int{}, release: make(chan struct{}), held: make(chan struct{}, 1)}
	s := replica(t, g, clk, "r")
	a, b := capItem("a|day|@1", 1_000_000), capItem("b|day|@1", 1_000_000)
	ctx := context.Background()

	g.lose = a.Key // a's sync applies, its reply is lost: a is unacked
	_, err := s.Reserve(ctx, "first", 10, []budget.Item{a}, time.Minute, clk.Now())
	require.ErrorIs(t, err, context.DeadlineExceeded)

	g.hold = b.Key // b's sync waits at the backend: b is busy
	done := make(chan error, 1)
	go func() {
		_, err := s.Reserve(ctx, "second", 10, []budget.Item{b}, time.Minute, clk.Now())
		done <- err
	}()
	<-g.held
	both := make(chan error, 1)
	go func() {
		out, err := s.Reserve(ctx, "third", 10, []budget.Item{a, b}, time.Minute, clk.Now())
		if err == nil && !out.OK() {
			err = fmt.Errorf("refused: %+v", out)
		}
		both <- err
	}()
	time.Sleep(50 * time.Millisecond) // let the third call reach b (not an assertion)
	g.mu.Lock()
	g.hold = ""
	g.mu.Unlock()
	close(g.release)
	require.NoError(t, <-done)
	require.NoError(t, <-both)
	assert.False(t, g.overlap, "two syncs of one counter ran at once")
}
