package processor

import (
	"fmt"
	"runtime/debug"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A panic while one stream is handled never reaches the rest of the
// process. Process recovers it, settles the stream's money as for any
// stream end (released when the upstream had not answered, else the usage
// seen or the estimate), logs it with the request id and its stack, counts
// it, and ends the stream with codes.Internal, so that Envoy applies its
// failure mode (failure_mode_allow, else status_on_error). A stream that
// panicked does not go back to the pools. The recovery itself runs every
// step that could fail (the observer, the logger, settling) under its own
// recover.

// PanicObserver is an Observer that also counts recovered panics. The
// processor checks for it on its Observer; metrics.Metrics implements it.
type PanicObserver interface {
	// ObserveStreamPanic counts one panic recovered in a stream's work.
	ObserveStreamPanic()
}

// errInternal ends a stream whose work panicked.
var errInternal = status.Error(codes.Internal, "spendguard: internal error while processing the stream")

// recovered records a panic r that happened during what; it returns the
// error that ends the stream.
func (s *Server) recovered(requestID, during string, r any) error {
	s.panics.Add(1)
	guard(func() {
		if o, ok := s.opts.Observer.(PanicObserver); ok {
			o.ObserveStreamPanic()
		}
	})
	guard(func() {
		// fmt recovers a panic in r's own Error or String method.
		s.opts.Log.Error("recovered a panic; the stream ends with an error",
			zap.String("request_id", requestID), zap.String("during", during),
			zap.String("panic", fmt.Sprint(r)), zap.ByteString("stack", debug.Stack()))
	})
	return errInternal
}

// finishSafely settles the stream's money; r is a panic it recovered.
func finishSafely(st *stream) (r any) {
	defer func() { r = recover() }()
	st.finish()
	return nil
}

// guard runs f, recovering any panic in it.
func guard(f func()) {
	defer func() { _ = recover() }()
	f()
}

// Panics is the number of panics recovered since the server started (each
// ended its stream with an error), for tests and metrics.
func (s *Server) Panics() int64 { return s.panics.Load() }
