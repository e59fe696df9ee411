package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/spendguard/spendguard/budget"
)

// newReleaseCounter is spendguard_reservations_released_total, with its
// three reasons present from the start.
func newReleaseCounter() *prometheus.CounterVec {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "reservations_released_total",
		Help: "Reservations released in the background because their store call failed with an unknown outcome (it may have been applied), by reason: timeout, canceled, connection. Each would otherwise have held its amount until the reservation TTL.",
	}, []string{"reason"})
	for _, r := range []string{budget.ReleaseTimeout, budget.ReleaseCanceled, budget.ReleaseConnection} {
		vec.WithLabelValues(r)
	}
	return vec
}

// ObserveReservationRelease counts one background release of a
// reservation whose Reserve failed with an unknown outcome, by the
// reason budget.SettleRetry.OnRelease gives.
func (m *Metrics) ObserveReservationRelease(reason string) {
	if m == nil {
		return
	}
	m.released.WithLabelValues(reason).Inc()
}
