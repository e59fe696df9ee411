package metrics_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/metrics"
	"github.com/spendguard/spendguard/processor"
)

// The processor finds the panic counter on its Observer.
var _ processor.PanicObserver = (*metrics.Metrics)(nil)

func TestStreamPanicsAreCounted(t *testing.T) {
	m, err := metrics.New(nil)
	require.NoError(t, err)
	assert.Equal(t, "0", sample(scrape(t, m), "spendguard_stream_panics_total", nil), "present before any panic")
	m.ObserveStreamPanic()
	m.ObserveStreamPanic()
	assert.Equal(t, "2", sample(scrape(t, m), "spendguard_stream_panics_total", nil))

	var none *metrics.Metrics
	none.ObserveStreamPanic() // a no-op, like every method on nil
}
