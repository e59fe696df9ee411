package metrics_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/metrics"
)

func TestReservationReleasesAreCounted(t *testing.T) {
	m, err := metrics.New(nil)
	require.NoError(t, err)
	const name = "spendguard_reservations_released_total"
	for _, r := range []string{budget.ReleaseTimeout, budget.ReleaseCanceled, budget.ReleaseConnection} {
		assert.Equal(t, "0", sample(scrape(t, m), name, map[string]string{"reason": r}), "%s present before any release", r)
	}
	m.ObserveReservationRelease(budget.ReleaseTimeout)
	m.ObserveReservationRelease(budget.ReleaseTimeout)
	m.ObserveReservationRelease(budget.ReleaseConnection)
	text := scrape(t, m)
	assert.Equal(t, "2", sample(text, name, map[string]string{"reason": "timeout"}))
	assert.Equal(t, "1", sample(text, name, map[string]string{"reason": "connection"}))

	var none *metrics.Metrics
	none.ObserveReservationRelease(budget.ReleaseTimeout) // a no-op on nil
}
