package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/spendguard/spendguard/budget"
)

// ScanCount is the COUNT hint of each SCAN page: how many keys Redis
// looks at per call (it returns those matching the pattern).
const ScanCount = 1000

// scanner is the part of a go-redis client that CounterKeys uses.
type scanner interface {
	Scan(ctx context.Context, cursor uint64, match string, count int64) *redis.ScanCmd
}

var _ budget.Lister = (*Store)(nil)

// CounterKeys implements budget.Lister with SCAN over the counter hashes
// (P c:{prefix*), one page of ScanCount per round trip, each within the
// call timeout: Redis never blocks on it, and other commands run between
// pages. It stops at limit keys or when ctx is done. SCAN may return a
// key twice, and a key created during the scan may be missed; the admin
// API asks again at its next refresh.
func (s *Store) CounterKeys(ctx context.Context, prefix string, limit int) ([]string, bool, error) {
	match := escapeGlob(s.prefix+"c:{"+prefix) + "*"
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		return s.clusterCounterKeys(ctx, cc, match, limit)
	}
	sc, ok := s.client.(scanner)
	if !ok {
		return nil, false, errors.New("redis list: the client cannot SCAN")
	}
	var keys []string
	more, err := s.scanAll(ctx, sc, match, func(k string) bool {
		if len(keys) == limit {
			return false
		}
		keys = append(keys, k)
		return true
	})
	if err != nil {
		return nil, false, err
	}
	return keys, more, nil
}

// clusterCounterKeys runs the SCAN on every master of a Redis Cluster
// (SCAN sees the keys of one node only) at once, and merges the pages.
func (s *Store) clusterCounterKeys(ctx context.Context, cc *redis.ClusterClient, match string, limit int) ([]string, bool, error) {
	var (
		mu   sync.Mutex
		keys []string
		more bool
	)
	err := cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		m, err := s.scanAll(ctx, node, match, func(k string) bool {
			mu.Lock()
			defer mu.Unlock()
			if len(keys) == limit {
				return false
			}
			keys = append(keys, k)
			return true
		})
		if m {
			mu.Lock()
			more = true
			mu.Unlock()
		}
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return keys, more, nil
}

// scanAll pages through the keys matching match on one server, giving
// each counter key to add until add refuses one (more is then true).
func (s *Store) scanAll(ctx context.Context, sc scanner, match string, add func(string) bool) (more bool, err error) {
	var cursor uint64
	for {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		page, next, err := s.scanPage(ctx, sc, cursor, match)
		if err != nil {
			return false, err
		}
		for _, k := range page {
			if ck, ok := s.counterKeyOf("c:", k); ok && !add(ck) {
				return true, nil
			}
		}
		if next == 0 {
			return false, nil
		}
		cursor = next
	}
}

func (s *Store) scanPage(ctx context.Context, sc scanner, cursor uint64, match string) ([]string, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	page, next, err := sc.Scan(ctx, cursor, match, ScanCount).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("redis scan: %w", err)
	}
	return page, next, nil
}

// escapeGlob quotes the characters SCAN's MATCH pattern treats specially.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
