package metrics_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/exporters/sink/sinktest"
	"github.com/spendguard/spendguard/metrics"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
)

func TestUsageSourceCounter(t *testing.T) {
	m, err := metrics.New(nil)
	require.NoError(t, err)
	assert.Contains(t, scrape(t, m), `spendguard_usage_source_total{source="counted"} 0`, "every source has a series from the start")
	for i, s := range []spendguardv1.UsageSource{
		spendguardv1.UsageSource_USAGE_SOURCE_REPORTED,
		spendguardv1.UsageSource_USAGE_SOURCE_COUNTED,
		spendguardv1.UsageSource_USAGE_SOURCE_COUNTED,
		spendguardv1.UsageSource_USAGE_SOURCE_ESTIMATED,
		spendguardv1.UsageSource_USAGE_SOURCE_UNSPECIFIED, // rejected: no usage, not counted
		spendguardv1.UsageSource(99),
	} {
		r := sinktest.Report(i)
		r.UsageSource = s
		m.ObserveReport(r)
	}
	out := scrape(t, m)
	assert.Contains(t, out, `spendguard_usage_source_total{source="reported"} 1`)
	assert.Contains(t, out, `spendguard_usage_source_total{source="counted"} 2`)
	assert.Contains(t, out, `spendguard_usage_source_total{source="estimated"} 1`)
	assert.NotContains(t, out, `source="none"`)
}
