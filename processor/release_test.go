package processor_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/redisstore"
	"github.com/spendguard/spendguard/config"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
	"github.com/spendguard/spendguard/test/redistest"
)

// TestStalledReserveLeavesNoReservation: Redis stalls while a request's
// body is admitted; the Reserve times out (the processor answers 503, or
// serves the request unmetered under fail_open) but Redis runs it when it
// wakes. The engine releases the id in the background, so the budget ends
// with nothing reserved and no reservation field, whichever of the late
// Reserve and its release Redis runs first.
func TestStalledReserveLeavesNoReservation(t *testing.T) {
	for _, failOpen := range []bool{false, true} {
		name := "FailClosed"
		if failOpen {
			name = "FailOpen"
		}
		t.Run(name, func(t *testing.T) {
			srv := redistest.Start(t, redistest.DebugArgs()...)
			opts, err := redisstore.ClientOptions(budget.RedisConfig{Address: srv.Addr,
				Timeout:     budget.Duration{Value: 50 * time.Millisecond, Set: true},
				DialTimeout: budget.Duration{Value: 5 * time.Second, Set: true}})
			require.NoError(t, err)
			hurried := redis.NewClient(opts)
			t.Cleanup(func() { hurried.Close() })
			redistest.WarmPool(t, hurried, 4)
			cfg, err := config.Parse([]byte(testConfig))
			require.NoError(t, err)
			snap := *cfg.Snapshot
			snap.FailOpen = failOpen
			h := serveHarness(t, cfg, &snap, redisstore.New(hurried, redisstore.Options{KeyPrefix: "t:", Timeout: 50 * time.Millisecond}))
			h.engine.RetrySettles(budget.SettleRetry{Backoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
			t.Cleanup(func() { h.engine.Close() }) // a release whose answer was lost may still be retrying
			calm := srv.Client()
			calmEngine := budget.NewEngine(redisstore.New(calm, redisstore.Options{KeyPrefix: "t:", Timeout: 10 * time.Second}), nil)
			scopes := cfg.Snapshot.Budgets.Applicable(map[string]string{"tenant": "acme", "model": "Hunyuan"})
			// Redis has the scripts, as on any replica after its first
			// requests (another tenant's counter, so acme's stays empty).
			warm, _, err := calmEngine.Reserve(context.Background(), cfg.Snapshot.Budgets,
				cfg.Snapshot.Budgets.Applicable(map[string]string{"tenant": "warm", "model": "Hunyuan"}), "Hunyuan", 0, "warm")
			require.NoError(t, err)
			require.NoError(t, calmEngine.Settle(context.Background(), warm, 0))

			s, cancel := h.open()
			defer cancel()
			resp := h.roundTrip(s, reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"))
			require.NotNil(t, resp.GetRequestHeaders(), "%v", resp)
			woke := srv.Stall(400 * time.Millisecond)
			resp = h.roundTrip(s, reqBody(chatBody))
			if failOpen {
				require.NotNil(t, resp.GetRequestBody(), "%v", resp)
				<-woke
				h.roundTrip(s, respHeaders("200"))
				h.roundTrip(s, respBody(fixture(t, "vllm-chat.json"), true))
				assert.Equal(t, spendguardv1.Decision_DECISION_UNMETERED, (<-h.reports).GetDecision())
			} else {
				require.NotNil(t, resp.GetImmediateResponse(), "%v", resp)
				assert.Equal(t, 503, int(resp.GetImmediateResponse().GetStatus().GetCode()))
				assert.Equal(t, spendguardv1.Decision_DECISION_REJECTED, (<-h.reports).GetDecision())
				<-woke
			}
			assert.Equal(t, int64(1), h.engine.Released(), "the timed-out reserve is released")

			require.Eventually(t, func() bool {
				st, err := calmEngine.Status(context.Background(), scopes)
				return err == nil && len(redistest.Keys(t, calm, "t:d:")) == 2 && // warm's settle and the release
					st[0].Reserved == 0 && st[0].Committed == 0 && len(reservationFields(t, calm)) == 0
			}, 10*time.Second, 10*time.Millisecond, "released, and nothing held for the request")
		})
	}
}

// reservationFields are the live reservation fields ("i:<id>") of every
// counter under the prefix "t:".
func reservationFields(t *testing.T, c *redis.Client) []string {
	t.Helper()
	var out []string
	for _, k := range redistest.Keys(t, c, "t:c:") {
		fields, err := c.HKeys(context.Background(), k).Result()
		require.NoError(t, err)
		for _, f := range fields {
			if strings.HasPrefix(f, "i:") {
				out = append(out, k+" "+f)
			}
		}
	}
	return out
}
