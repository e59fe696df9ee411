package processor_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/memstore"
	"github.com/spendguard/spendguard/config"
	"github.com/spendguard/spendguard/exporters/sink"
	"github.com/spendguard/spendguard/metrics"
	"github.com/spendguard/spendguard/processor"
)

// panicky is the metrics observer, except that observing phase panics:
// a bug anywhere in a stream's work, after that phase's answer.
type panicky struct {
	*metrics.Metrics
	phase string
}

func (p panicky) ObserveMessage(phase string, d time.Duration) {
	if phase == p.phase {
		panic("boom in " + phase)
	}
	p.Metrics.ObserveMessage(phase, d)
}

// panickyReporter panics on every report, that is inside settling.
type panickyReporter struct{}

func (panickyReporter) Report(*sink.Event) { panic("reporter bug") }

func panicsCounted(t *testing.T, m *metrics.Metrics) float64 {
	t.Helper()
	families, err := m.Registry().Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() == "spendguard_stream_panics_total" {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("no spendguard_stream_panics_total")
	return 0
}

// TestPanicEndsOnlyItsStream forces a panic inside one stream of the real
// gRPC server: the stream ends with codes.Internal (Envoy's failure mode
// applies), its money is settled as for any end, the panic is counted,
// and the next stream on the same server is served as usual.
func TestPanicEndsOnlyItsStream(t *testing.T) {
	json := fixture(t, "vllm-chat.json")
	for _, tc := range []struct {
		name     string
		phase    string
		reporter processor.Reporter
		charged  func(t *testing.T, c budget.Counter)
	}{
		{"before the upstream answered: released", "request_body", nil, func(t *testing.T, c budget.Counter) { assert.Zero(t, c.Committed) }},
		{"after the upstream answered: the estimate", "response_headers", nil, func(t *testing.T, c budget.Counter) { assert.Positive(t, c.Committed) }},
		{"inside settling: charged once", "", panickyReporter{}, func(t *testing.T, c budget.Counter) { assert.Equal(t, exactCost, c.Committed) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(testConfig))
			require.NoError(t, err)
			m, err := metrics.New(nil)
			require.NoError(t, err)
			h := serveHarness(t, cfg, cfg.Snapshot, memstore.New(), func(o *processor.Options) {
				o.Observer = panicky{Metrics: m, phase: tc.phase}
				if tc.reporter != nil {
					o.Reporter = tc.reporter
				}
			})
			_, err = h.play(seq(reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"), reqBody(chatBody), respHeaders("200"), chunks(json, 100, true))...)
			assert.Equal(t, codes.Internal, status.Code(err), "%v", err)
			c := h.spend("acme")
			assert.Zero(t, c.Reserved, "no reservation outlives the stream")
			tc.charged(t, c)
			assert.EqualValues(t, 1, h.srv.Panics())
			assert.EqualValues(t, 1, panicsCounted(t, m))

			// The server goes on: a stream that reaches neither the
			// panicking phase nor the reporter is served.
			answers, err := h.play(reqHeaders("/v1/models"))
			require.NoError(t, err)
			require.Len(t, answers, 1)
			assert.NotNil(t, answers[0].GetRequestHeaders())
		})
	}
}
