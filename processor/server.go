package processor

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync/atomic"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/identity"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/internal/mono"
	"github.com/spendguard/spendguard/pricing"
)

// Snapshot is one immutable, validated configuration. A stream takes the
// snapshot current when it starts and keeps it to its end, so a reload never
// changes the rules in the middle of a request.
type Snapshot struct {
	Identity *identity.Resolver
	Pricing  *pricing.Table
	Budgets  *budget.Policies
	// MaxRequest is limits.max_request_usd; 0 means no per-request ceiling.
	MaxRequest money.Nano
	// FailOpen is store.on_error: fail_open: a request whose budget store
	// call fails is served unmetered instead of answered 503.
	FailOpen bool
}

// Budgets is what the processor needs of the budget engine
// (*budget.Engine), one call per phase of a request:
//
//   - Exhausted, at the request headers: the Rejection of a scope whose
//     hard cap is already reached (model "" while the body is unread), nil
//     when none.
//   - Admit, at the request body: one decision on the request's claim. It
//     reserves the claim or refuses it at a hard cap, or, past a soft cap
//     that maps the claim's model, asks d.Downgrade for the claim of the
//     cheaper model and decides on that (Admission.Downgrade names it).
//     An error is the store's; Admission.Downgrade is still set when it
//     came after the downgrade was decided.
//   - Settle, once the response is over: commits actual (0 releases) on
//     a Reservation Admit returned.
//   - Status: the current state of scopes, for reports that carry it.
type Budgets interface {
	Exhausted(ctx context.Context, scopes []budget.Scope, model string) (*budget.Rejection, error)
	Admit(ctx context.Context, c budget.Claim, d budget.Downgrader) (budget.Admission, error)
	Settle(ctx context.Context, res *budget.Reservation, actual money.Nano) error
	Extend(ctx context.Context, res *budget.Reservation, want money.Nano, ttl time.Duration) (money.Nano, error)
	Status(ctx context.Context, scopes []budget.Scope) ([]budget.State, error)
}

// Observer receives the processor's measurements (Prometheus). Calls are
// cheap and never block.
type Observer interface {
	// ObserveMessage records how long one ext_proc message took to answer;
	// phase is request_headers, request_body, response_headers or
	// response_body.
	ObserveMessage(phase string, d time.Duration)
	// AddReservationsInFlight adds +1 when a reservation is made and -1
	// when it is settled.
	AddReservationsInFlight(delta int)
}

// Options configure a Server.
type Options struct {
	Log      *zap.Logger
	Budgets  Budgets
	Reporter Reporter // optional (report.go)
	// Recorder, optional, gets every event synchronously before the
	// answer that ends its request (report.go).
	Recorder Recorder
	// Admission, optional, may refuse requests on cost paths with 503
	// before anything is reserved (report.go).
	Admission Admission
	Gather    Gather   // the optional parts of each event the Reporter uses
	Observer  Observer // optional
	// Parking, optional, parks background responses until their result
	// is read (background.go); nil settles them at once, charging the
	// queued answer its worst case.
	Parking Parking
	// Estimates, optional, is the learned output estimate of each model
	// and endpoint, for the initial reservation of streamed responses
	// (estimates.go); nil means there is none.
	Estimates OutputEstimates
	Now       func() time.Time
	// SettleTimeout bounds the store calls made after a stream has ended
	// (its own context is gone by then). Default 2s.
	SettleTimeout time.Duration
}

// Server implements the ext_proc service.
type Server struct {
	extprocv3.UnimplementedExternalProcessorServer
	cfg    atomic.Pointer[loaded]
	opts   Options
	active atomic.Int64

	panics atomic.Int64                 // streams ended by a recovered panic
	tok    atomic.Pointer[tokenizerRef] // SetTokenizer (count.go)
	// runningUsage turns stream.runningUsage on for every stream; only
	// tests set it (export_test.go) until the lead decides it per stream.
	runningUsage atomic.Bool
}

// New returns a Server answering with snap until Swap replaces it.
func New(snap *Snapshot, opts Options) *Server {
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SettleTimeout <= 0 {
		opts.SettleTimeout = 2 * time.Second
	}
	s := &Server{opts: opts}
	s.Swap(snap)
	return s
}

// loaded is a Snapshot and what streams need to know of it.
type loaded struct {
	snap       *Snapshot
	modelKeyed bool // some budget matches on the model
}

// Swap installs a new configuration for the streams that start after it.
func (s *Server) Swap(snap *Snapshot) {
	c := &loaded{snap: snap}
	if snap != nil && snap.Budgets != nil {
		c.modelKeyed = slices.Contains(snap.Budgets.Dimensions(), identity.ModelDimension)
	}
	s.cfg.Store(c)
}

// Snapshot returns the configuration new streams use.
func (s *Server) Snapshot() *Snapshot { return s.cfg.Load().snap }

// Active is the number of streams in flight.
func (s *Server) Active() int64 { return s.active.Load() }

// Process runs one HTTP request's stream. It returns nil when Envoy closes
// the stream, whatever the state of the request: the request's money is
// settled on the way out. A message Envoy never sends in that state (a
// second request body, a response before the request was admitted, ...)
// ends the stream with InvalidArgument; a panic while handling the stream
// ends it with Internal (recover.go). Either way the money is settled as
// for any other end.
func (s *Server) Process(stream extprocv3.ExternalProcessor_ProcessServer) (err error) {
	growStack() // first, while the stack is shallow (wire.go)
	s.active.Add(1)
	defer s.active.Add(-1)
	st := newStream(s, s.cfg.Load())
	defer func() {
		panicked := false
		if r := recover(); r != nil {
			err, panicked = s.recovered(st.requestID, "handling a message", r), true
		}
		if r := finishSafely(st); r != nil {
			err, panicked = s.recovered(st.requestID, "settling the stream", r), true
		}
		if !panicked { // else its state is suspect: it does not go back to the pools
			st.release()
		}
	}()
	return s.serve(stream, st)
}

// serve reads and answers the stream's messages until it ends.
func (s *Server) serve(stream extprocv3.ExternalProcessor_ProcessServer, st *stream) error {
	ctx := stream.Context()
	for {
		req, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled || errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}
		began := mono.Now()
		st.observeProtocol(req)
		resp := st.handle(ctx, req)
		if resp == nil {
			st.log.Warn("ext_proc message out of order; ending the stream", zap.String("request_id", st.requestID), zap.String("why", st.violation))
			return status.Error(codes.InvalidArgument, "spendguard: unexpected ext_proc message: "+st.violation)
		}
		if st.duplex {
			resp = st.duplexAnswer(req, resp) // duplex.go
		}
		_, done := resp.Response.(*extprocv3.ProcessingResponse_ImmediateResponse)
		err = st.wire.send(stream, resp)
		took := mono.Now() - began
		st.procTime += took
		if s.opts.Observer != nil {
			s.opts.Observer.ObserveMessage(phaseOf(req), took)
		}
		if err != nil {
			return err
		}
		if done {
			// Envoy ends processing after a local reply; stop reading.
			return nil
		}
	}
}

// phaseOf names the phase of a message, for metrics.
func phaseOf(req *extprocv3.ProcessingRequest) string {
	switch req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return "request_headers"
	case *extprocv3.ProcessingRequest_RequestBody:
		return "request_body"
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return "response_headers"
	case *extprocv3.ProcessingRequest_ResponseBody:
		return "response_body"
	}
	return "trailers"
}
