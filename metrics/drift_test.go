package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestObserveDrift(t *testing.T) {
	m, err := New([]string{"tenant"})
	require.NoError(t, err)
	m.ObserveDrift("m1", 200, 50, 200, 50)
	m.ObserveDrift("m1", 77, 33, 0, 0)
	assert.Equal(t, 277.0, testutil.ToFloat64(m.drift.upstream.WithLabelValues("m1", "prompt")))
	assert.Equal(t, 50.0, testutil.ToFloat64(m.drift.recorded.WithLabelValues("m1", "generation")))
	assert.Equal(t, 77.0, testutil.ToFloat64(m.drift.drift.WithLabelValues("m1", "prompt")))
	assert.Equal(t, 33.0, testutil.ToFloat64(m.drift.drift.WithLabelValues("m1", "generation")))
	var none *Metrics
	none.ObserveDrift("m1", 1, 1, 1, 1) // no-op
}
