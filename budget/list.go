package budget

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Lister is what the admin API needs of a store to list every scope of a
// budget with a "*" key: the store alone knows which values have
// counters. memstore.Store and redisstore.Store implement it.
type Lister interface {
	// CounterKeys returns the keys of the counters the store holds that
	// start with prefix, in no particular order, possibly with duplicates
	// and possibly with counters whose period has ended but that the
	// store has not dropped yet. It returns at most limit keys; more
	// reports that it stopped there. A networked store pages through its
	// keyspace (never a blocking listing of every key) and stops at
	// limit or when ctx is done.
	CounterKeys(ctx context.Context, prefix string, limit int) (keys []string, more bool, err error)
}

// Defaults of ListOptions.
const (
	DefaultListKeys   = 100_000
	DefaultListScopes = 10_000
	listBatch         = 256 // items per Usage call
)

// ListOptions select the scopes Engine.List returns.
type ListOptions struct {
	// Budget keeps only the budget of this name ("" for all).
	Budget string
	// Filter keeps the scopes whose budget has each key of Filter as a
	// match key, with that value (tenant=acme keeps tenant-monthly for
	// acme and search-team-daily for acme/search, not fleet-daily).
	Filter map[string]string
	// MaxKeys bounds the counter keys read from the store
	// (DefaultListKeys when 0), MaxScopes the scopes returned
	// (DefaultListScopes when 0).
	MaxKeys, MaxScopes int
}

// Listing is the result of Engine.List.
type Listing struct {
	// States holds one entry per scope, in configuration order of the
	// budgets and, within a budget, sorted by scope text.
	States []State
	// Truncated is true when a bound of ListOptions left scopes out.
	Truncated bool
}

// ErrNotListable is returned by List for a store that is no Lister when
// a budget has a "*" key.
var ErrNotListable = errors.New("budget: the store cannot list its counters")

// List returns the state of every scope of p's budgets in the current
// period: each budget without a "*" key once (even with no spend), and
// each value of a "*" key that has a counter in the current period (or
// that Filter names: tenant=newco lists newco's scope at zero). A scope
// is left out when the precedence rule hands its values to another
// budget (an old tenant-monthly counter for acme once acme-monthly
// exists). The store is listed at most once, then read with one Usage
// call per 256 scopes.
func (e *Engine) List(ctx context.Context, p *Policies, l Lister, opts ListOptions) (Listing, error) {
	if p == nil {
		return Listing{}, nil
	}
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = DefaultListKeys
	}
	if opts.MaxScopes <= 0 {
		opts.MaxScopes = DefaultListScopes
	}
	now := e.now()
	var out Listing
	found := map[*Budget][]Scope{}
	var scan []*Budget
	for _, b := range p.budgets {
		if (opts.Budget != "" && b.name != opts.Budget) || !fits(b, opts.Filter) {
			continue
		}
		if s, ok := b.ScopeOf(pinned(b, opts.Filter)); ok {
			found[b] = []Scope{s}
		} else {
			scan = append(scan, b)
		}
	}
	if len(scan) > 0 {
		if l == nil {
			return Listing{}, ErrNotListable
		}
		prefix := "" // one pass over every counter serves many budgets
		if len(scan) == 1 {
			prefix = scan[0].keyPrefix
		}
		keys, more, err := l.CounterKeys(ctx, prefix, opts.MaxKeys)
		if err != nil {
			return Listing{}, fmt.Errorf("listing budget counters: %w", err)
		}
		out.Truncated = more
		seen := map[string]bool{}
		for _, k := range keys {
			s, period, ok := p.ParseCounterKey(k)
			if !ok || !slices.Contains(scan, s.Budget) || seen[s.Key] ||
				!s.Budget.current(period, now) || !matchesFilter(s, opts.Filter) {
				continue
			}
			seen[s.Key] = true
			found[s.Budget] = append(found[s.Budget], s)
		}
	}
	var scopes []Scope
	for _, b := range p.budgets {
		list := found[b]
		slices.SortFunc(list, func(a, b Scope) int { return strings.Compare(a.String(), b.String()) })
		for _, s := range list {
			if !applies(p, s) {
				continue
			}
			if len(scopes) == opts.MaxScopes {
				out.Truncated = true
				break
			}
			scopes = append(scopes, s)
		}
	}
	for i := 0; i < len(scopes); i += listBatch {
		st, err := e.Status(ctx, scopes[i:min(i+listBatch, len(scopes))])
		if err != nil {
			return Listing{}, err
		}
		out.States = append(out.States, st...)
	}
	return out, nil
}

// fits reports whether every filter key is a match key of b whose match
// accepts the filter's value.
func fits(b *Budget, filter map[string]string) bool {
	for k, v := range filter {
		want, ok := b.match[k]
		if !ok || (want != "*" && want != v) {
			return false
		}
	}
	return true
}

// pinned returns the values of b's keys known without the store: exact
// match values, and filter values for "*" keys.
func pinned(b *Budget, filter map[string]string) map[string]string {
	values := make(map[string]string, len(b.keys))
	for _, k := range b.keys {
		if v := b.match[k]; v != "*" {
			values[k] = v
		} else if v, ok := filter[k]; ok {
			values[k] = v
		}
	}
	return values
}

func matchesFilter(s Scope, filter map[string]string) bool {
	for k, v := range filter {
		if s.Values[k] != v {
			return false
		}
	}
	return true
}

// applies reports whether s's budget applies to requests with s's values
// (the precedence rule may hand them to a more exact budget).
func applies(p *Policies, s Scope) bool {
	for _, a := range p.Applicable(s.Values) {
		if a.Budget == s.Budget {
			return true
		}
	}
	return false
}

// current reports whether the period part of a counter key (see
// ParseCounterKey) belongs to b's period at now: the current calendar
// period, "total", or a sub-bucket inside the current rolling window.
func (b *Budget) current(period string, now time.Time) bool {
	switch b.period {
	case PeriodTotal:
		return period == "total"
	case PeriodRolling:
		at, err := strconv.ParseInt(period, 10, 64)
		if err != nil {
			return false
		}
		step := int64(b.rolling.bucket / time.Second)
		cur := b.bucketStart(now).Unix()
		oldest := cur - int64(b.rolling.bucketsBack())*step
		return at <= cur && at >= oldest && (cur-at)%step == 0
	default:
		start, _ := b.Window(now)
		return period == strconv.FormatInt(start.Unix(), 10)
	}
}
