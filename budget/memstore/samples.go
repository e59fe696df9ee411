package memstore

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/spendguard/spendguard/budget/estimate"
)

// samples holds the lists of estimate.Samples under a lock of their own:
// they never touch a counter.
type samples struct {
	mu    sync.Mutex
	lists map[string][]int64
}

var _ estimate.Samples = (*Store)(nil)

// AppendSamples implements estimate.Samples. The lists are written to the
// snapshot file with the counters, so a restarted replica keeps its
// learned estimates.
func (m *Store) AppendSamples(ctx context.Context, batches []estimate.Batch, keep int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if keep < 1 {
		return fmt.Errorf("append samples: keep %d < 1", keep)
	}
	p := &m.samples
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lists == nil {
		p.lists = map[string][]int64{}
	}
	for _, b := range batches {
		if len(b.Values) == 0 {
			continue
		}
		l := append(p.lists[b.Key], b.Values...)
		if over := len(l) - keep; over > 0 {
			// Copy down rather than reslice, so the array does not grow
			// without bound.
			l = append(l[:0], l[over:]...)
		}
		p.lists[b.Key] = l
	}
	return nil
}

// LoadSamples implements estimate.Samples.
func (m *Store) LoadSamples(ctx context.Context, keep int) (map[string][]int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if keep < 1 {
		return nil, fmt.Errorf("load samples: keep %d < 1", keep)
	}
	p := &m.samples
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string][]int64, len(p.lists))
	for k, l := range p.lists {
		out[k] = slices.Clone(l[max(len(l)-keep, 0):])
	}
	return out, nil
}

// exportSamples copies the lists for the snapshot (nil when none).
func (m *Store) exportSamples() map[string][]int64 {
	p := &m.samples
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.lists) == 0 {
		return nil
	}
	out := make(map[string][]int64, len(p.lists))
	for k, l := range p.lists {
		out[k] = slices.Clone(l)
	}
	return out
}

// importSamples installs the lists of a snapshot, refusing a negative
// value (the file is then not what spendguard wrote).
func (m *Store) importSamples(lists map[string][]int64) error {
	for k, l := range lists {
		if k == "" || slices.ContainsFunc(l, func(v int64) bool { return v < 0 }) {
			return fmt.Errorf("samples %q: empty key or negative value", k)
		}
	}
	if len(lists) > 0 {
		m.samples.lists = lists
	}
	return nil
}
