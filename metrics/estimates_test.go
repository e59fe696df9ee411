package metrics_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget/estimate"
	"github.com/spendguard/spendguard/metrics"
)

func TestOutputEstimateSeriesComeFromTheEstimatorAtScrape(t *testing.T) {
	m, err := metrics.New(nil)
	require.NoError(t, err)
	assert.NotContains(t, scrapeNoNet(t, m), "spendguard_output_estimate", "no series before the app wires an estimator")

	e, err := estimate.New(estimate.Config{Quantile: 1, Window: 10, MinSamples: 2}, estimate.Options{})
	require.NoError(t, err)
	m.SetOutputEstimates(func() []estimate.Series { _, s := e.Snapshot(); return s })
	e.Observe("m1", "chat_completions", 300)
	e.Observe("m1", "chat_completions", 500)
	e.Observe("m2", "completions", 90)
	text := scrapeNoNet(t, m)
	assert.Contains(t, text, `spendguard_output_estimate_tokens{endpoint="chat_completions",model="m1"} 500`)
	assert.Contains(t, text, `spendguard_output_estimate_samples{endpoint="chat_completions",model="m1"} 2`)
	assert.Contains(t, text, `spendguard_output_estimate_samples{endpoint="completions",model="m2"} 1`)
	assert.NotContains(t, text, `spendguard_output_estimate_tokens{endpoint="completions",model="m2"}`,
		"below min_samples there is no estimate in use")

	var none *metrics.Metrics
	none.SetOutputEstimates(nil) // a nil Metrics is a no-op
}
