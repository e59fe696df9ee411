package processor_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/memstore"
	"github.com/spendguard/spendguard/config"
	"github.com/spendguard/spendguard/internal/money"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
)

// flakyStore is a memory store whose calls fail while down is set: the
// real boundary is a network store becoming unreachable.
type flakyStore struct {
	*memstore.Store
	down atomic.Bool
}

var errDown = errors.New("store unreachable")

func (f *flakyStore) Reserve(ctx context.Context, id string, amount money.Nano, items []budget.Item, ttl time.Duration, now time.Time) (budget.Outcome, error) {
	if f.down.Load() {
		return budget.Outcome{}, errDown
	}
	return f.Store.Reserve(ctx, id, amount, items, ttl, now)
}

func (f *flakyStore) Settle(ctx context.Context, id string, actual money.Nano, items []budget.Item, now time.Time) error {
	if f.down.Load() {
		return errDown
	}
	return f.Store.Settle(ctx, id, actual, items, now)
}

func (f *flakyStore) Usage(ctx context.Context, items []budget.Item, now time.Time) ([]budget.Counter, error) {
	if f.down.Load() {
		return nil, errDown
	}
	return f.Store.Usage(ctx, items, now)
}

var _ budget.Store = (*flakyStore)(nil)

func newFlakyHarness(t *testing.T, failOpen bool) (*harness, *flakyStore) {
	t.Helper()
	cfg, err := config.Parse([]byte(testConfig))
	require.NoError(t, err)
	snap := *cfg.Snapshot
	snap.FailOpen = failOpen
	store := &flakyStore{Store: memstore.New()}
	h := serveHarness(t, cfg, &snap, store)
	return h, store
}

// serve runs one whole request whose response reports 12 prompt and 100
// completion tokens, and returns the report.
func (h *harness) serve() *spendguardv1.CostReport {
	h.t.Helper()
	s, cancel := h.open()
	defer cancel()
	resp := h.roundTrip(s, reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"))
	require.NotNil(h.t, resp.GetRequestHeaders(), "%v", resp)
	resp = h.roundTrip(s, reqBody(chatBody))
	require.NotNil(h.t, resp.GetRequestBody(), "%v", resp)
	h.roundTrip(s, respHeaders("200"))
	h.roundTrip(s, respBody(fixture(h.t, "vllm-chat.json"), true))
	select {
	case r := <-h.reports:
		return r
	case <-time.After(5 * time.Second):
		h.t.Fatal("no cost report")
		return nil
	}
}

const chatCost = money.Nano(12*600 + 100*800)

func TestStoreDownFailClosedAnswers503(t *testing.T) {
	h, store := newFlakyHarness(t, false)
	store.down.Store(true)
	s, cancel := h.open()
	defer cancel()
	resp := h.roundTrip(s, reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"))
	ir := resp.GetImmediateResponse()
	require.NotNil(t, ir, "%v", resp)
	assert.Equal(t, 503, int(ir.GetStatus().GetCode()))
	refused := <-h.reports
	assert.Equal(t, spendguardv1.Decision_DECISION_REJECTED, refused.GetDecision(), "a refused request is reported too")
	assert.Zero(t, refused.GetCostNanoUsd())

	store.down.Store(false)
	r := h.serve()
	assert.Equal(t, spendguardv1.Decision_DECISION_ALLOWED, r.GetDecision(), "recovers by itself")
	assert.Equal(t, chatCost, h.spend("acme").Committed)
}

func TestStoreDownFailOpenServesUnmetered(t *testing.T) {
	h, store := newFlakyHarness(t, true)
	store.down.Store(true)
	r := h.serve()
	assert.Equal(t, spendguardv1.Decision_DECISION_UNMETERED, r.GetDecision())
	assert.Equal(t, int64(chatCost), r.GetCostNanoUsd(), "the report still carries the actual cost")

	store.down.Store(false)
	assert.Equal(t, budget.Counter{}, h.spend("acme"), "nothing was charged")
	r = h.serve()
	assert.Equal(t, spendguardv1.Decision_DECISION_ALLOWED, r.GetDecision(), "metered again once the store answers")
	assert.Equal(t, chatCost, h.spend("acme").Committed)
}

// TestStoreFailsAtBodyFailOpen: the headers check passed, then the store
// fails at the reservation: the request is still served unmetered.
func TestStoreFailsAtBodyFailOpen(t *testing.T) {
	h, store := newFlakyHarness(t, true)
	s, cancel := h.open()
	defer cancel()
	resp := h.roundTrip(s, reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"))
	require.NotNil(t, resp.GetRequestHeaders())
	store.down.Store(true)
	resp = h.roundTrip(s, reqBody(chatBody))
	require.NotNil(t, resp.GetRequestBody(), "%v", resp)
	cancel() // the client goes away before the upstream answers
	assert.Equal(t, spendguardv1.Decision_DECISION_UNMETERED, (<-h.reports).GetDecision())
}
