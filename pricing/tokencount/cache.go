package tokencount

import (
	"container/list"
	"crypto/sha256"
	"sync"
)

// key identifies a count: the model, the kind and the SHA-256 of the
// /tokenize body (which holds the text and every option that changes the
// count).
type key struct {
	model string
	kind  Kind
	sum   [sha256.Size]byte
}

func keyOf(q query) key { return key{model: q.model, kind: q.kind, sum: sha256.Sum256(q.body)} }

// cache is a least-recently-used map of counts holding at most max
// entries. It is safe for concurrent use.
type cache struct {
	mu    sync.Mutex
	max   int
	order *list.List // of *entry, most recent first
	items map[key]*list.Element
}

type entry struct {
	k     key
	count int64
}

func newCache(max int) *cache {
	return &cache{max: max, order: list.New(), items: make(map[key]*list.Element, min(max, 1024))}
}

// get returns the count of k and marks it recently used.
func (c *cache) get(k key) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[k]
	if !ok {
		return 0, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*entry).count, true
}

// put stores the count of k, evicting the least recently used entry when
// the cache is full.
func (c *cache) put(k key, count int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		el.Value.(*entry).count = count
		c.order.MoveToFront(el)
		return
	}
	if c.order.Len() >= c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*entry).k)
	}
	c.items[k] = c.order.PushFront(&entry{k: k, count: count})
}

// len is the number of entries.
func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
