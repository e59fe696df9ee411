package app

import (
	"errors"
	"sync"
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
