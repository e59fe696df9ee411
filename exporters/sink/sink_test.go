package sink_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/spendguard/spendguard/exporters/sink"
	"github.com/spendguard/spendguard/internal/money"
)

func TestPermanentSurvivesWrapping(t *testing.T) {
	base := errors.New("HTTP 400")
	err := fmt.Errorf("helicone: %w", sink.Permanent(base))
	assert.True(t, sink.IsPermanent(err))
	assert.ErrorIs(t, err, base)
	assert.False(t, sink.IsPermanent(base))
	assert.NoError(t, sink.Permanent(nil))
}

func TestCheckStatus(t *testing.T) {
	for status, want := range map[int]string{200: "ok", 204: "ok", 400: "permanent", 401: "permanent", 404: "permanent",
		408: "retry", 413: "permanent", 429: "retry", 500: "retry", 502: "retry", 503: "retry", 301: "permanent"} {
		err := sink.CheckStatus(status, "body")
		got := "ok"
		switch {
		case sink.IsPermanent(err):
			got = "permanent"
		case err != nil:
			got = "retry"
		}
		assert.Equal(t, want, got, "%d", status)
	}
	assert.EqualError(t, sink.CheckStatus(503, "busy"), "HTTP 503: busy")
}

func TestCheckURL(t *testing.T) {
	assert.Empty(t, sink.CheckURL("https://hooks.slack.com/services/T/B/secret"))
	assert.Empty(t, sink.CheckURL("http://127.0.0.1:4318/v1/traces"))
	for _, bad := range []string{"", "hooks.slack.com/x", "ftp://x/y", "https://", "::"} {
		msg := sink.CheckURL(bad)
		assert.NotEmpty(t, msg, bad)
		if bad != "" {
			assert.NotContains(t, msg, bad, "never quotes the URL")
		}
	}
}

func TestUSDExact(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 620_000: "0.00062", 2_000_000_000: "2", 1: "0.000000001", 1_500_000_000: "1.5", -250_000_000: "-0.25"} {
		assert.Equal(t, want, string(sink.USDExact(n)))
	}
	assert.Equal(t, 0.00062, sink.USDFloat(620_000))
}

func TestBudgetState(t *testing.T) {
	s := sink.BudgetState{Committed: 30 * money.PerUSD, Reserved: 10 * money.PerUSD, Soft: 40 * money.PerUSD, Hard: 50 * money.PerUSD, HasSoft: true, HasHard: true}
	assert.True(t, s.SoftCrossed())
	assert.False(t, s.HardReached())
	assert.Equal(t, 10*money.PerUSD, s.Remaining())
	s.Blocked = true
	assert.True(t, s.HardReached())
	s.HasHard = false
	assert.False(t, s.HardReached())
	assert.Zero(t, s.Remaining())
}
