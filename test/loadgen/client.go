package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/spendguard/spendguard/test/loadgen/workload"
)

// Load describes one run of lifecycles against one processor.
type Load struct {
	Addr string // the processor's gRPC address
	Kind workload.Kind
	// Concurrency is the number of lifecycles in flight (default 32).
	Concurrency int
	// Conns is the number of HTTP/2 connections the streams share, as
	// Envoy's workers share theirs (default 2).
	Conns int
	// Duration ends the run (after the lifecycles in flight complete);
	// Count, when set, ends it after that many lifecycles instead.
	Duration time.Duration
	Count    int
	// Tenants is the number of distinct tenants (default 8); each worker
	// is its own user.
	Tenants int
	// Window is how many response chunks may await their answer, as
	// Envoy pipelines STREAMED bodies (default 16).
	Window int
}

func (l Load) withDefaults() Load {
	if l.Concurrency <= 0 {
		l.Concurrency = 32
	}
	if l.Conns <= 0 {
		l.Conns = 2
	}
	if l.Tenants <= 0 {
		l.Tenants = 8
	}
	if l.Window <= 0 {
		l.Window = 16
	}
	return l
}

// Result is what a run did.
type Result struct {
	Lifecycles int64         // completed without error
	Errors     int64         // lifecycles that failed
	FirstError error         // the first failure, if any
	Elapsed    time.Duration // from the first lifecycle start to the last end
	// Latencies of the completed lifecycles, sorted: from opening the
	// stream to its end (Envoy's half-close answered by the processor's
	// end of stream).
	Latencies []time.Duration
	// MutatedChunks counts response body answers that changed the body
	// (spendguard hides the usage event it asked for).
	MutatedChunks int64
	// HeaderMutations counts response headers answers that set headers.
	HeaderMutations int64
}

// PerSecond is the throughput of the run.
func (r Result) PerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Lifecycles) / r.Elapsed.Seconds()
}

// Percentile returns the latency below which a fraction p (0..1) of the
// lifecycles completed.
func (r Result) Percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := int(p * float64(len(r.Latencies)-1))
	return r.Latencies[i]
}

// Run drives full lifecycles over real gRPC streams until the duration
// has passed or the count is reached, Concurrency at a time.
func Run(ctx context.Context, l Load) (Result, error) {
	l = l.withDefaults()
	if l.Duration <= 0 && l.Count <= 0 {
		return Result{}, errors.New("loadgen: a run needs a Duration or a Count")
	}
	conns, err := dial(l.Addr, l.Conns)
	if err != nil {
		return Result{}, err
	}
	defer closeAll(conns)

	var (
		started  atomic.Int64
		deadline time.Time
		mu       sync.Mutex
		res      Result
		wg       sync.WaitGroup
	)
	more := func() bool {
		if l.Count > 0 {
			return started.Add(1) <= int64(l.Count)
		}
		return time.Now().Before(deadline)
	}
	begin := time.Now()
	deadline = begin.Add(l.Duration)
	for i := range l.Concurrency {
		w := newWorker(conns[i%len(conns)], l.Kind, i, l.Tenants, l.Window)
		wg.Go(func() {
			var lat []time.Duration
			for ctx.Err() == nil && more() {
				t0 := time.Now()
				if err := w.one(ctx); err != nil {
					mu.Lock()
					res.Errors++
					if res.FirstError == nil {
						res.FirstError = err
					}
					mu.Unlock()
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			res.Latencies = append(res.Latencies, lat...)
			res.MutatedChunks += w.mutatedChunks
			res.HeaderMutations += w.headerMutations
			mu.Unlock()
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(begin)
	res.Lifecycles = int64(len(res.Latencies))
	slices.Sort(res.Latencies)
	return res, ctx.Err()
}

func dial(addr string, n int) ([]*grpc.ClientConn, error) {
	conns := make([]*grpc.ClientConn, 0, n)
	for range n {
		// Each ClientConn is its own HTTP/2 connection.
		c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			closeAll(conns)
			return nil, fmt.Errorf("loadgen: dial %s: %w", addr, err)
		}
		conns = append(conns, c)
	}
	return conns, nil
}

func closeAll(conns []*grpc.ClientConn) {
	for _, c := range conns {
		_ = c.Close()
	}
}

// worker runs one lifecycle at a time with its own messages.
type worker struct {
	client          extprocv3.ExternalProcessorClient
	lc              *workload.Lifecycle
	window          int
	stream          extprocv3.ExternalProcessor_ProcessClient // the current lifecycle's
	mutatedChunks   int64
	headerMutations int64
}

// newWorker returns worker i: tenant i%tenants, user i.
func newWorker(conn *grpc.ClientConn, kind workload.Kind, i, tenants, window int) *worker {
	return &worker{
		client: extprocv3.NewExternalProcessorClient(conn),
		lc:     workload.NewDuplexLifecycle(kind, "t"+strconv.Itoa(i%tenants), "u"+strconv.Itoa(i), "loadgen-"+strconv.Itoa(i)),
		window: window,
	}
}

// midStreamChunks is how far into an SSE response start(midStream) goes.
const midStreamChunks = 10

// start opens a stream and runs the request phase as envoysim does:
// request headers, then the buffered body, each awaiting its answer. With
// midStream it goes on with the response headers and the first
// midStreamChunks response chunks.
func (w *worker) start(ctx context.Context, midStream bool) error {
	s, err := w.client.Process(ctx)
	if err != nil {
		return fmt.Errorf("open stream: %w", err)
	}
	w.stream = s
	if _, err := call(s, w.lc.RequestHeaders); err != nil {
		return err
	}
	if _, err := call(s, w.lc.RequestBody); err != nil {
		return err
	}
	if !midStream {
		return nil
	}
	if _, err := call(s, w.lc.ResponseHeaders); err != nil {
		return err
	}
	for _, c := range w.lc.ResponseBody[:min(midStreamChunks, len(w.lc.ResponseBody)-1)] {
		if _, err := call(s, c); err != nil {
			return err
		}
	}
	return nil
}

// one runs a whole lifecycle: the request phase; the response headers;
// the response chunks pipelined up to the window, answers matched in
// order; then Envoy's half-close, and the reset once the processor has
// ended the stream.
func (w *worker) one(ctx context.Context) error {
	ctx, reset := context.WithCancel(ctx)
	defer reset()
	if err := w.start(ctx, false); err != nil {
		return err
	}
	s := w.stream
	ans, err := call(s, w.lc.ResponseHeaders)
	if err != nil {
		return err
	}
	if len(ans.GetResponseHeaders().GetResponse().GetHeaderMutation().GetSetHeaders()) > 0 {
		w.headerMutations++
	}
	sent, answered := 0, 0
	for answered < len(w.lc.ResponseBody) {
		if sent < len(w.lc.ResponseBody) && sent-answered < w.window {
			if err := s.Send(w.lc.ResponseBody[sent]); err != nil {
				return fmt.Errorf("send response chunk %d: %w", sent, err)
			}
			sent++
			continue
		}
		ans, err := recv(s, w.lc.ResponseBody[answered])
		if err != nil {
			return fmt.Errorf("response chunk %d: %w", answered, err)
		}
		if m := ans.GetResponseBody().GetResponse().GetBodyMutation(); m != nil {
			// In FULL_DUPLEX_STREAMED mode every chunk is answered with the
			// bytes to forward: only other bytes count as a change.
			sr := m.GetStreamedResponse()
			if sr == nil || !bytes.Equal(sr.GetBody(), w.lc.ResponseBody[answered].GetResponseBody().GetBody()) {
				w.mutatedChunks++
			}
		}
		answered++
	}
	if err := s.CloseSend(); err != nil {
		return fmt.Errorf("half-close: %w", err)
	}
	if m, err := s.Recv(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("the processor did not end the stream after the half-close: %v %v", m, err)
	}
	return nil
}

// call sends one message and awaits its answer.
func call(s extprocv3.ExternalProcessor_ProcessClient, req *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, error) {
	if err := s.Send(req); err != nil {
		return nil, fmt.Errorf("send %s: %w", phase(req), err)
	}
	return recv(s, req)
}

// recv reads the answer to req and checks that it is of the kind Envoy
// awaits; a local reply (ImmediateResponse) is a failure here, since every
// lifecycle is meant to be served.
func recv(s extprocv3.ExternalProcessor_ProcessClient, req *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, error) {
	ans, err := s.Recv()
	if err != nil {
		return nil, fmt.Errorf("answer to %s: %w", phase(req), err)
	}
	if ir := ans.GetImmediateResponse(); ir != nil {
		return nil, fmt.Errorf("%s answered with a local reply %d: %s", phase(req), ir.GetStatus().GetCode(), ir.GetBody())
	}
	var ok bool
	switch req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		ok = ans.GetRequestHeaders() != nil
	case *extprocv3.ProcessingRequest_RequestBody:
		ok = ans.GetRequestBody() != nil
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		ok = ans.GetResponseHeaders() != nil
	case *extprocv3.ProcessingRequest_ResponseBody:
		ok = ans.GetResponseBody() != nil
	}
	if !ok {
		return nil, fmt.Errorf("spurious answer to %s: %v", phase(req), ans)
	}
	return ans, nil
}

func phase(req *extprocv3.ProcessingRequest) string {
	switch req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return "request_headers"
	case *extprocv3.ProcessingRequest_RequestBody:
		return "request_body"
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return "response_headers"
	}
	return "response_body"
}
