package webhook

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget/redisstore"
	"github.com/spendguard/spendguard/exporters/sink"
	"github.com/spendguard/spendguard/test/httpsink"
	"github.com/spendguard/spendguard/test/redistest"
)

// Three replicas detect the same crossing from their own budget states;
// sharing a Redis claim, exactly one of them posts each alert, and a
// retry by that one is not refused. Rolling windows stay per replica.
func TestReplicasSharingClaimsSendEachAlertOnce(t *testing.T) {
	c, prefix := redistest.Shared(t)
	claims := redisstore.New(c, redisstore.Options{KeyPrefix: prefix, Timeout: 2 * time.Second})
	hook := httpsink.New(nil)
	defer hook.Close()
	var senders []*Sender
	for _, owner := range []string{"replica-a", "replica-b", "replica-c"} {
		s := newSender(t, Config{URL: hook.URL()})
		s.ShareWith(claims, owner)
		senders = append(senders, s)
	}
	ctx := context.Background()
	for _, s := range senders {
		alerts := s.Detect([]sink.BudgetState{state(day1, "50")}) // soft and hard at once
		require.Len(t, alerts, 2)
		require.NoError(t, s.Send(ctx, alerts[:1]))
		require.NoError(t, s.Send(ctx, alerts[1:]))
	}
	reqs := hook.Requests()
	require.Len(t, reqs, 2, "one soft_cap_crossed and one hard_cap_reached for the fleet")
	// The replica that claimed an alert may send it again (a retry).
	first := senders[0].Detect([]sink.BudgetState{state(day1.AddDate(0, 0, 1), "40")})
	require.Len(t, first, 1)
	require.NoError(t, senders[0].Send(ctx, first))
	require.NoError(t, senders[0].Send(ctx, first))
	assert.Len(t, hook.Requests(), 4, "the owner's retry is sent")

	roll := state(day1, "41")
	roll.Budget, roll.Key = "team-guard", "team-guard|10m|team=search"
	roll.Rolling, roll.PeriodStart, roll.ResetsAt = true, time.Time{}, time.Time{}
	for _, s := range senders {
		alerts := s.Detect([]sink.BudgetState{roll})
		require.Len(t, alerts, 1)
		require.NoError(t, s.Send(ctx, alerts))
	}
	assert.Len(t, hook.Requests(), 7, "a rolling window's alert is each replica's own")
}
