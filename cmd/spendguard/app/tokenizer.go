package app

import (
	"sync"

	"go.uber.org/zap"

	"github.com/spendguard/spendguard/pricing/tokencount"
)

// tokenizer owns the /tokenize client of pricing.tokenizer: started with
// the processor, replaced when a reload changes the section, closed by
// Shutdown after the gRPC server has drained (its closer goes on the
// stack before the listener's).
type tokenizer struct {
	mu     sync.Mutex
	cur    *tokencount.Client // nil: counting is off
	closed bool
}

// startTokenizer starts the client of the configuration in force, if it
// has one, and pushes its closer.
func (in *Instance) startTokenizer() {
	in.setTokenizer(in.CurrentConfig().Snapshot.Pricing.Tokenizer())
	in.stack.push(func() error {
		in.tok.mu.Lock()
		cur := in.tok.cur
		in.tok.cur, in.tok.closed = nil, true
		in.tok.mu.Unlock()
		if cur != nil {
			cur.Close()
		}
		return nil
	})
}

// setTokenizer installs a client for s into the processor, unless the
// one running has the same settings. The client it replaces is closed in
// the background: its queued counts fail, and their streams charge the
// estimate.
func (in *Instance) setTokenizer(s tokencount.Settings) {
	in.tok.mu.Lock()
	defer in.tok.mu.Unlock()
	if in.tok.closed || (in.tok.cur == nil && !s.Enabled()) || (in.tok.cur != nil && in.tok.cur.Settings() == s) {
		return
	}
	old := in.tok.cur
	in.tok.cur = nil
	if s.Enabled() {
		in.tok.cur = tokencount.New(s, nil)
		in.Processor.SetTokenizer(in.tok.cur)
		in.Log.Info("counting missing usage with the model server's /tokenize", zap.String("url", s.Endpoint),
			zap.Duration("timeout", s.Timeout), zap.Int("workers", s.Workers), zap.Int("queue", s.Queue))
	} else {
		in.Processor.SetTokenizer(nil)
	}
	if old != nil {
		go old.Close()
	}
}
