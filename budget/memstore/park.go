package memstore

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/spendguard/spendguard/budget"
)

// parking holds the records of budget.Parker, under a lock of its own:
// parking never touches a counter.
type parking struct {
	mu      sync.Mutex
	records map[string]parkedRecord
}

type parkedRecord struct {
	record   []byte
	deadline time.Time
}

var _ budget.Parker = (*Store)(nil)

// Park implements budget.Parker. Parked records are written to the
// snapshot file with the counters and reservations.
func (m *Store) Park(ctx context.Context, key string, record []byte, deadline time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if key == "" || record == nil {
		return fmt.Errorf("%w: park key %q with a nil record", budget.ErrInvalidArgument, key)
	}
	p := &m.parking
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.records[key]; ok {
		return fmt.Errorf("%w: %q", budget.ErrParked, key)
	}
	if p.records == nil {
		p.records = map[string]parkedRecord{}
	}
	p.records[key] = parkedRecord{record: bytes.Clone(record), deadline: deadline}
	return nil
}

// Take implements budget.Parker.
func (m *Store) Take(ctx context.Context, key string) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	p := &m.parking
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.records[key]
	if !ok {
		return nil, false, nil
	}
	delete(p.records, key)
	return r.record, true, nil
}

// PopExpired implements budget.Parker. It looks at every parked record:
// there are as many as background responses in flight.
func (m *Store) PopExpired(ctx context.Context, now time.Time, max int) ([]budget.Parked, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if max <= 0 {
		return nil, nil
	}
	p := &m.parking
	p.mu.Lock()
	defer p.mu.Unlock()
	var due []budget.Parked
	for k, r := range p.records {
		if !r.deadline.After(now) {
			due = append(due, budget.Parked{Key: k, Record: r.record, Deadline: r.deadline})
		}
	}
	slices.SortFunc(due, func(a, b budget.Parked) int {
		return cmp.Or(a.Deadline.Compare(b.Deadline), cmp.Compare(a.Key, b.Key))
	})
	due = due[:min(len(due), max)]
	for _, d := range due {
		delete(p.records, d.Key)
	}
	return due, nil
}
