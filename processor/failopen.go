package processor

import (
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"

	"github.com/spendguard/spendguard/budget"
)

// store.on_error: fail_open. When a budget store call fails and the
// snapshot says FailOpen, the request is served unmetered instead of
// answered 503: no reservation is made and no budget is charged, but the
// response is followed to its end as usual and reported with
// DECISION_UNMETERED and its actual cost. Once a stream is unmetered it
// makes no more store calls. The policy is read per stream, so the next
// request after the store recovers is metered again.

// unmeteredOnError decides a store error: true when the request goes on
// unmetered (logged once per stream; the report's DECISION_UNMETERED is
// what the metrics count), false for the 503.
func (st *stream) unmeteredOnError(err error) bool {
	if !st.snap.FailOpen {
		return false
	}
	if !st.unmetered {
		st.unmetered = true
		st.log.Warn("budget store failed; serving the request unmetered (store.on_error: fail_open)",
			zap.String("request_id", st.requestID), zap.Error(err))
	}
	return true
}

// serveUnmetered answers the request body of an unmetered request: an
// empty reservation (settling it calls no store) lets the response phase
// run as for any request. mutated is a body already rewritten by a
// soft-cap downgrade, or nil.
func (st *stream) serveUnmetered(mutated []byte) *extprocv3.ProcessingResponse {
	st.reservation = &budget.Reservation{ID: st.reservationID()}
	if mutated == nil {
		return answerRequestBody
	}
	return bodyReplace(mutated)
}
