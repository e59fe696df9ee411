package budget

import (
	"context"
	"sync"
	"time"
)

// usageItems holds the item slices of Usage calls, which the store does
// not keep (Store contract): the request-headers check then allocates
// none.
var usageItems = sync.Pool{New: func() any { return new([]Item) }}

// usage returns the store's counters of scopes for model at now, in scope
// order, building their items in a pooled slice that goes back to the pool
// before usage returns.
func (e *Engine) usage(ctx context.Context, scopes []Scope, model string, now time.Time) ([]Counter, error) {
	buf := usageItems.Get().(*[]Item)
	items := e.keys.appendItems((*buf)[:0], scopes, model, now)
	counters, err := e.store.Usage(ctx, items, now)
	clear(items)
	*buf = items[:0]
	usageItems.Put(buf)
	return counters, err
}
