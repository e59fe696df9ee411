package budget

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget/estimate"
)

func TestStreamEstimateDefaults(t *testing.T) {
	p, err := compileYAML(t, exampleYAML)
	require.NoError(t, err)
	assert.Equal(t, estimate.DefaultConfig(), p.StreamEstimate())
	assert.Equal(t, estimate.Config{Quantile: 0.95, Window: 1000, MinSamples: 20}, p.StreamEstimate())
	var none *Policies
	assert.Equal(t, estimate.DefaultConfig(), none.StreamEstimate())

	p, err = compileYAML(t, "limits:\n  streams:\n    estimate: {window: 50}\n")
	require.NoError(t, err)
	assert.Equal(t, estimate.Config{Quantile: 0.95, Window: 50, MinSamples: 20}, p.StreamEstimate(), "unset keys keep their defaults")

	p, err = compileYAML(t, "limits:\n  streams:\n    estimate:\n      quantile: 0.9\n      window: 200\n      min_samples: 200\n")
	require.NoError(t, err)
	assert.Equal(t, estimate.Config{Quantile: 0.9, Window: 200, MinSamples: 200}, p.StreamEstimate())

	p, err = Compile(nil, Limits{Streams: Streams{Estimate: StreamEstimate{Quantile: 0.5}}})
	require.NoError(t, err)
	assert.Equal(t, estimate.Config{Quantile: 0.5, Window: 1000, MinSamples: 20}, p.StreamEstimate(), "built in code: zero is unset")
}

func TestStreamEstimateErrors(t *testing.T) {
	for _, tt := range []struct {
		name, src string
		want      []string
	}{
		{"out of range", `
limits:
  streams:
    estimate:
      quantile: 0
      window: 100001
      min_samples: -1`, []string{
			"line 5: limits.streams.estimate.quantile must be above 0 and at most 1",
			"line 6: limits.streams.estimate.window must be 1..100000 completions, not 100001",
			"line 7: limits.streams.estimate.min_samples must be at least 1, not -1"}},
		{"quantile above 1, explicit zero window", `
limits:
  streams:
    estimate: {quantile: 1.5, window: 0}`, []string{
			"line 4: limits.streams.estimate.quantile must be above 0 and at most 1 (0.95 is the 95th percentile), not 1.5",
			"line 4: limits.streams.estimate.window must be 1..100000 completions, not 0"}},
		{"min_samples above window", `
limits:
  streams:
    estimate:
      window: 10
      min_samples: 11`, []string{
			"line 6: limits.streams.estimate.min_samples (11) must be at most window (10)"}},
		{"default min_samples above a small window: at the window", `
limits:
  streams:
    estimate:
      window: 10`, []string{
			"line 5: limits.streams.estimate.min_samples (20) must be at most window (10)"}},
		{"unknown key", `
limits:
  streams:
    estimate:
      quantil: 0.9`, []string{
			`line 5: limits.streams.estimate.quantil: unknown key; did you mean "quantile"? (allowed: quantile, window, min_samples)`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := compileYAML(t, tt.src)
			require.Error(t, err)
			assert.Nil(t, p)
			require.Len(t, strings.Split(err.Error(), "\n"), len(tt.want), err.Error())
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			var ce *ConfigError
			assert.True(t, errors.As(err, &ce))
		})
	}
}
