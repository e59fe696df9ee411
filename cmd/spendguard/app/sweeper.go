package app

import (
	"context"
	"sync"
	"time"
)

// SweepInterval is how often each replica looks for background responses
// whose limits.background_ttl has passed (processor.Server.SweepParked);
// one replica pops each, so more replicas only sweep more often.
const SweepInterval = 30 * time.Second

// startSweeper runs the processor's sweeper of parked background
// responses until Shutdown, which stops it after the gRPC server has
// drained and before the exporters flush, so its last reports are sent.
func (in *Instance) startSweeper() {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		in.Processor.RunSweeper(ctx, SweepInterval)
	}()
	in.stack.push(func() error {
		cancel()
		wg.Wait()
		return nil
	})
}
