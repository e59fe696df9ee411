package memstore

// The reservations' lifecycle: expiry in deadline order (a heap), release
// of what they hold, and reuse of their storage.

import (
	"container/heap"
	"time"
)

// sweep releases the reservations that expired at or before now and drops
// the counters whose grace has passed.
func (m *Store) sweep(now time.Time) {
	for len(m.queue) > 0 && !now.Before(m.queue[0].expires) {
		r := heap.Pop(&m.queue).(*memReservation)
		m.release(r)
		m.recycle(r)
	}
	if m.nextPrune.IsZero() || now.Before(m.nextPrune) {
		return
	}
	m.nextPrune = time.Time{}
	for k, c := range m.counters {
		if c.expires.IsZero() {
			continue
		}
		d := c.expires.Add(Grace)
		if !now.Before(d) {
			delete(m.counters, k)
			c.dropped = true
			m.gen++
		} else if m.nextPrune.IsZero() || d.Before(m.nextPrune) {
			m.nextPrune = d
		}
	}
}

// release takes a reservation's amount off its counters; r must already
// be out of the heap.
func (m *Store) release(r *memReservation) {
	delete(m.live, r.id)
	for i, c := range r.counters {
		if c.dropped { // the key's counter now, if any, is another one
			if c = m.counters[r.keys[i]]; c == nil {
				continue
			}
		}
		c.Reserved -= r.amount
		if c.Reserved < 0 {
			c.Reserved = 0
		}
	}
}

// newReservation returns an empty reservation with room for n keys and
// counters, reusing a released one when it can.
func (m *Store) newReservation(n int) *memReservation {
	var r *memReservation
	if k := len(m.free); k > 0 {
		r = m.free[k-1]
		m.free[k-1] = nil
		m.free = m.free[:k-1]
	} else {
		r = &memReservation{}
	}
	if n <= inlineItems {
		r.keys, r.counters = r.inline[:0], r.inlineC[:0]
	} else {
		r.keys, r.counters = make([]string, 0, n), make([]*memCounter, 0, n)
	}
	return r
}

// recycle keeps r, out of the heap and the live map and no longer used,
// for newReservation.
func (m *Store) recycle(r *memReservation) {
	if len(m.free) >= maxFreeReservations {
		return
	}
	*r = memReservation{}
	m.free = append(m.free, r)
}

// reservationHeap orders live reservations by expiry (container/heap).
type reservationHeap []*memReservation

func (h reservationHeap) Len() int           { return len(h) }
func (h reservationHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h reservationHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}

func (h *reservationHeap) Push(x any) {
	r := x.(*memReservation)
	r.index = len(*h)
	*h = append(*h, r)
}

func (h *reservationHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	r.index = -1
	return r
}
