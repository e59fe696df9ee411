package app_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/test/redistest"
)

// TestReplicasOnOneRedisAnswerWithTheSharedNumbers runs two spendguards
// on one Redis: each lists every scope, including those only the other
// one has charged, with the same numbers once their leases have synced.
func TestReplicasOnOneRedisAnswerWithTheSharedNumbers(t *testing.T) {
	_, prefix := redistest.Shared(t)
	store := fmt.Sprintf("  backend: redis\n  redis:\n    address: %s\n    key_prefix: %q\n    timeout: 2s", redistest.SharedAddr, prefix)
	a, b := newSpendStack(t, store), newSpendStack(t, store)

	require.Equal(t, http.StatusOK, a.spend("acme", "search", 10, 30))
	require.Equal(t, http.StatusOK, a.spend("acme", "search", 10, 30))
	require.Equal(t, http.StatusOK, b.spend("globex", "ads", 5, 5))
	require.Equal(t, http.StatusOK, b.spend("initech", "", 10, 30))
	require.Equal(t, http.StatusOK, a.spend("initech", "", 10, 70))

	// Each replica sends its spend to Redis with its next lease sync
	// (store.redis.leases.sync_interval, 500ms): within a second or so
	// both answer with every replica's spend.
	var answers [][]string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		answers = nil
		for _, s := range []*spendStack{a, b} {
			status, resp, body := budgets(t, s.sg.AdminAddr(), "s3cret", "")
			require.Equal(t, http.StatusOK, status, body)
			answers = append(answers, digest(resp))
		}
		if assert.ObjectsAreEqual(seededDigest, answers[0]) && assert.ObjectsAreEqual(answers[0], answers[1]) || time.Now().After(deadline) {
			break
		}
	}
	assert.Equal(t, seededDigest, answers[0])
	assert.Equal(t, answers[0], answers[1], "both replicas give the shared numbers")

	// The hard cap reached through a holds on b.
	assert.Equal(t, http.StatusPaymentRequired, b.spend("initech", "", 1, 1))
	_, resp, _ := budgets(t, b.sg.AdminAddr(), "s3cret", "?tenant=globex")
	assert.Equal(t, []string{
		"tenant-daily tenant=globex 0.010000 0.000000 ok",
		"team-rolling team=ads,tenant=globex 0.010000 0.000000 ok",
	}, digest(resp))
}
