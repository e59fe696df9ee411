package processor_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget/memstore"
	"github.com/spendguard/spendguard/config"
	"github.com/spendguard/spendguard/exporters/sink"
	"github.com/spendguard/spendguard/processor"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
)

// ledgerStandIn is a processor.Recorder and processor.Admission: it keeps
// the request ids recorded, and refuses while full is set.
type ledgerStandIn struct {
	mu   sync.Mutex
	ids  []string
	reps []*spendguardv1.CostReport
	full atomic.Bool
}

func (l *ledgerStandIn) Record(ev *sink.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ids = append(l.ids, ev.Report.GetRequestId())
	l.reps = append(l.reps, ev.Report)
}

func (l *ledgerStandIn) Admit() error {
	if l.full.Load() {
		return errors.New("spool full")
	}
	return nil
}

func (l *ledgerStandIn) recorded() []*spendguardv1.CostReport {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*spendguardv1.CostReport(nil), l.reps...)
}

func recorderHarness(t *testing.T, with func(*processor.Options)) *harness {
	cfg, err := config.Parse([]byte(testConfig))
	require.NoError(t, err)
	return serveHarness(t, cfg, cfg.Snapshot, memstore.New(), with)
}

// The row exists when the answer that ends the request arrives: Record
// runs before the processor answers the last response body, not in the
// background (a kill right after the answer must not lose it).
func TestTheRowIsRecordedBeforeTheLastAnswer(t *testing.T) {
	led := &ledgerStandIn{}
	h := recorderHarness(t, func(o *processor.Options) {
		o.Recorder, o.Admission = led, led
		o.Gather.Budgets = true // the Reporter's event is completed in the background
	})
	s, cancel := h.open()
	defer cancel()
	h.roundTrip(s, reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"))
	h.roundTrip(s, reqBody(chatBody))
	h.roundTrip(s, respHeaders("200"))
	require.Empty(t, led.recorded(), "nothing is recorded before the response ends")
	h.roundTrip(s, respBody(fixture(t, "vllm-chat.json"), true))

	reps := led.recorded() // no waiting: it is there with the answer
	require.Len(t, reps, 1)
	assert.Equal(t, "rid-1", reps[0].GetRequestId())
	assert.Equal(t, int64(100), reps[0].GetCompletionTokens())
	assert.Equal(t, spendguardv1.Decision_DECISION_ALLOWED, reps[0].GetDecision())
	rep := <-h.reports
	assert.Same(t, reps[0], rep, "the Reporter gets the same event")
}

func TestAdmissionRefusesWith503AndRecordsTheRefusal(t *testing.T) {
	led := &ledgerStandIn{}
	led.full.Store(true)
	h := recorderHarness(t, func(o *processor.Options) {
		o.Recorder, o.Admission = led, led
	})
	s, cancel := h.open()
	defer cancel()
	resp := h.roundTrip(s, reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"))
	imm := resp.GetImmediateResponse()
	require.NotNil(t, imm, "%v", resp)
	assert.EqualValues(t, 503, imm.GetStatus().GetCode())
	assert.Contains(t, string(imm.GetBody()), "cannot record the cost")
	assert.Zero(t, h.spend("acme").Reserved, "nothing reserved")
	reps := led.recorded()
	require.Len(t, reps, 1)
	assert.Equal(t, spendguardv1.Decision_DECISION_REJECTED, reps[0].GetDecision())
	assert.Equal(t, map[string]string{"tenant": "acme"}, reps[0].GetScope(), "refused after the identity is known")

	// A free path is not refused: it costs nothing to record.
	s2, cancel2 := h.open()
	defer cancel2()
	free := reqHeaders("/v1/models", "x-tenant-id", "acme")
	free.GetRequestHeaders().Headers.Headers[0].RawValue = []byte("GET")
	resp = h.roundTrip(s2, free)
	assert.Nil(t, resp.GetImmediateResponse())

	led.full.Store(false)
	s3, cancel3 := h.open()
	defer cancel3()
	resp = h.roundTrip(s3, reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"))
	assert.NotNil(t, resp.GetRequestHeaders(), "admitted again once the spool has room")
}
