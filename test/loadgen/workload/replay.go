package workload

import (
	"context"
	"fmt"
	"io"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
)

// Replay plays a lifecycle's messages to a Process method without gRPC,
// counting and dropping the answers: a processor's own work, without the
// transport (the benchmarks of processor and of test/loadgen). A Replay
// is used by one goroutine and can be run again.
type Replay struct {
	grpc.ServerStream
	msgs       []*extprocv3.ProcessingRequest
	next, sent int
}

// NewReplay returns a Replay of msgs.
func NewReplay(msgs []*extprocv3.ProcessingRequest) *Replay { return &Replay{msgs: msgs} }

// Run plays every message to process and checks that each was answered.
func (r *Replay) Run(process func(extprocv3.ExternalProcessor_ProcessServer) error) error {
	r.next, r.sent = 0, 0
	if err := process(r); err != nil {
		return err
	}
	if r.sent != len(r.msgs) {
		return fmt.Errorf("workload: %d answers to %d messages", r.sent, len(r.msgs))
	}
	return nil
}

// Context is the stream's context: never cancelled.
func (r *Replay) Context() context.Context { return context.Background() }

// Recv returns the next message, then io.EOF.
func (r *Replay) Recv() (*extprocv3.ProcessingRequest, error) {
	if r.next == len(r.msgs) {
		return nil, io.EOF
	}
	r.next++
	return r.msgs[r.next-1], nil
}

// Send counts an answer.
func (r *Replay) Send(*extprocv3.ProcessingResponse) error {
	r.sent++
	return nil
}

// SendMsg counts an answer sent as another message type (spendguard sends
// its response-headers answer so).
func (r *Replay) SendMsg(any) error {
	r.sent++
	return nil
}
