package app

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"
)

// cleanup is a stack of closers. Start pushes the closer of each
// resource as soon as the resource is open, so the stack always holds
// exactly what is open; unwind runs the closers last-pushed first. Start
// unwinds it when a later step fails and Shutdown unwinds it to stop, so
// the two cannot disagree on what to close or in which order.
//
// unwind runs every closer even when some fail, returns their errors
// joined, and leaves the stack empty: a second unwind does nothing. It is
// safe for concurrent use.
type cleanup struct {
	mu      sync.Mutex
	closers []func() error
}

// push adds close on top of the stack.
func (c *cleanup) push(close func() error) {
	c.mu.Lock()
	c.closers = append(c.closers, close)
	c.mu.Unlock()
}

// unwind pops and runs every closer, the last pushed first.
func (c *cleanup) unwind() error {
	c.mu.Lock()
	closers := c.closers
	c.closers = nil
	c.mu.Unlock()
	var errs []error
	for i := len(closers) - 1; i >= 0; i-- {
		errs = append(errs, closers[i]())
	}
	return errors.Join(errs...)
}

// The closers of Start's resources, in the order Shutdown runs them
// (the background loops' stops are pushed where they start: reload.go,
// metrics.go, budgetsapi.go; health turns NOT_SERVING before stopGRPC).

// stopGRPC stops the ext_proc server gracefully within the shutdown
// timeout, then by force; before the server exists it releases the
// listener alone.
func (in *Instance) stopGRPC() error {
	if in.grpc != nil {
		done := make(chan struct{})
		go func() { in.grpc.GracefulStop(); close(done) }()
		timer := time.NewTimer(in.opts.ShutdownTimeout)
		defer timer.Stop()
		select {
		case <-done:
		case <-timer.C:
			in.Log.Warn("shutdown timeout: cancelling in-flight streams", zap.Int64("streams", in.Processor.Active()))
			in.grpc.Stop()
			<-done
		}
	}
	_ = in.grpcLis.Close() // already closed by the server once it served
	return nil
}

// flushExporters stops the exporters, delivering what they have queued
// within the exporter flush timeout; what is left is counted as dropped.
func (in *Instance) flushExporters() error {
	ctx, cancel := context.WithTimeout(context.Background(), in.opts.ExporterFlushTimeout)
	defer cancel()
	var wg sync.WaitGroup
	if l := in.Ledger; l != nil { // ships what it can; the rest stays in its spool
		wg.Go(func() {
			if err := l.Close(ctx); err != nil {
				in.Log.Error("closing the ledger spool failed", zap.Error(err))
			}
		})
	}
	if err := in.Exporters.Shutdown(ctx); err != nil {
		in.Log.Warn("exporters did not flush every report in time", zap.Error(err))
	}
	wg.Wait()
	return nil
}

// closeBudgets stops the engine's settle retries; a settle still
// pending is lost (its reservation expires after the TTL) and logged.
func (in *Instance) closeBudgets() error {
	if lost := in.Budgets.Close(); lost > 0 {
		in.Log.Error("spend of requests not committed to the budget store at shutdown (their reservations expire after the TTL)", zap.Int("requests", lost))
	}
	return nil
}

// closeStore closes the budget store (the memory store writes its last
// snapshot).
func (in *Instance) closeStore() error {
	err := in.Store.Close()
	if err != nil {
		in.Log.Error("closing the budget store failed", zap.Error(err))
	}
	return err
}

// stopAdmin stops the admin server, waiting up to 5s for the answers in
// progress; before the server exists it releases the listener, if bound.
func (in *Instance) stopAdmin() error {
	if in.admin == nil {
		if in.adminLis != nil {
			_ = in.adminLis.Close()
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return in.admin.Shutdown(ctx)
}
