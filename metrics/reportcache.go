package metrics

import (
	"hash/maphash"
	"slices"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spendguard/spendguard/exporters/sink"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
)

// Decisions by index, for the requests series of a reportSeries. Every
// other Decision value is named "unspecified" by sink.DecisionName, so it
// shares decisionOther.
const (
	decisionAllowed = iota
	decisionDowngraded
	decisionRejected
	decisionUnmetered
	decisionOther
	numDecisions
)

// decisionNames are the decision labels, by index.
var decisionNames = [numDecisions]string{
	decisionAllowed:    sink.DecisionName(spendguardv1.Decision_DECISION_ALLOWED),
	decisionDowngraded: sink.DecisionName(spendguardv1.Decision_DECISION_DOWNGRADED),
	decisionRejected:   sink.DecisionName(spendguardv1.Decision_DECISION_REJECTED),
	decisionUnmetered:  sink.DecisionName(spendguardv1.Decision_DECISION_UNMETERED),
	decisionOther:      sink.DecisionName(spendguardv1.Decision_DECISION_UNSPECIFIED),
}

func decisionIndex(d spendguardv1.Decision) int {
	switch d {
	case spendguardv1.Decision_DECISION_ALLOWED:
		return decisionAllowed
	case spendguardv1.Decision_DECISION_DOWNGRADED:
		return decisionDowngraded
	case spendguardv1.Decision_DECISION_REJECTED:
		return decisionRejected
	case spendguardv1.Decision_DECISION_UNMETERED:
		return decisionUnmetered
	}
	return decisionOther
}

// Token types by index, for the tokens series of a reportSeries.
const (
	tokenInput = iota
	tokenCachedInput
	tokenOutput
	tokenReasoning
	numTokenTypes
)

// tokenTypes are the type labels of tokens_total, by index.
var tokenTypes = [numTokenTypes]string{
	tokenInput:       "input",
	tokenCachedInput: "cached_input",
	tokenOutput:      "output",
	tokenReasoning:   "reasoning",
}

// reportCounts is what one report adds: a request of a decision, USD
// spent or unmetered (at most one of them), tokens by type.
type reportCounts struct {
	decision         int
	spend, unmetered int64 // nano-USD
	tokens           [numTokenTypes]int64
}

// reportSeries are the series of one combination of label-dimension
// values: values (and their hash), then the requests series by decision,
// the tokens series by type and the spend series. A series is resolved
// when a report first adds to it (nil until then), so that the scrape
// shows only series something was counted in, as with a lookup per
// report.
//
// A reportSeries in the cache is never modified: resolving one more series
// stores a completed copy in its place.
type reportSeries struct {
	hash      uint64
	values    []string
	requests  [numDecisions]prometheus.Counter
	tokens    [numTokenTypes]prometheus.Counter
	spend     *usdSeries
	unmetered *usdSeries
}

// covers tells whether every series c adds to is resolved.
func (s *reportSeries) covers(c *reportCounts) bool {
	if s.requests[c.decision] == nil || c.spend > 0 && s.spend == nil || c.unmetered > 0 && s.unmetered == nil {
		return false
	}
	for t, n := range c.tokens {
		if n > 0 && s.tokens[t] == nil {
			return false
		}
	}
	return true
}

// add counts c into the series, which must cover it.
func (s *reportSeries) add(c *reportCounts) {
	s.requests[c.decision].Inc()
	if c.spend > 0 {
		s.spend.nano.Add(c.spend)
	}
	if c.unmetered > 0 {
		s.unmetered.nano.Add(c.unmetered)
	}
	for t, n := range c.tokens {
		if n > 0 {
			s.tokens[t].Add(float64(n))
		}
	}
}

// reportCache holds the reportSeries of recently counted combinations of
// label-dimension values, so that a report of a known combination costs
// no label lookup, no lock and no allocation. It is a fixed number of sets
// of reportCacheWays entries, the set chosen by a hash of the values:
// bounded and lock-free. An entry is used only if its values are the
// report's, so a hash collision or an eviction only costs the lookups a
// report took without the cache. Several ways per set keep two busy
// combinations of the same set from evicting each other on every report.
//
// Handing out cached series is right because spendguard never deletes a
// series of requests_total, tokens_total or the USD counters, nor resets
// them: a deleted series would be counted into while absent from the
// scrape. Code that starts doing so must clear the cache (make it anew)
// at the same time.
type reportCache struct {
	seed      maphash.Seed
	sets      [][reportCacheWays]atomic.Pointer[reportSeries] // a power of two of them
	evictions atomic.Uint32                                   // picks the entry a full set loses
}

const (
	reportCacheSets = 1 << 9
	reportCacheWays = 4
)

// newReportCache returns a cache of sets sets, a power of two.
func newReportCache(sets int) *reportCache {
	return &reportCache{seed: maphash.MakeSeed(), sets: make([][reportCacheWays]atomic.Pointer[reportSeries], sets)}
}

// hash returns the hash of values: each value's hash, mixed in turn so
// that the order counts (("a", "") and ("", "a") hash differently).
func (c *reportCache) hash(values []string) uint64 {
	h := uint64(len(values))
	for _, v := range values {
		h = h*0x9e3779b97f4a7c15 ^ maphash.String(c.seed, v)
	}
	return h
}

// victim returns the way of set a new entry takes: an empty one, else
// each of them in turn.
func (c *reportCache) victim(set *[reportCacheWays]atomic.Pointer[reportSeries]) int {
	for w := range set {
		if set[w].Load() == nil {
			return w
		}
	}
	return int(c.evictions.Add(1) % reportCacheWays)
}

// seriesFor returns the series of values, covering c: from the cache when
// they are there, else resolved and cached. values is not retained.
func (m *Metrics) seriesFor(values []string, c *reportCounts) *reportSeries {
	h := m.reports.hash(values)
	set := &m.reports.sets[h&uint64(len(m.reports.sets)-1)]
	e, way := find(set, h, values)
	if e != nil && e.covers(c) {
		return e
	}
	var s *reportSeries
	if e != nil {
		cp := *e
		s = &cp
	} else {
		s = &reportSeries{hash: h, values: slices.Clone(values)}
		way = m.reports.victim(set)
	}
	m.resolve(s, c)
	set[way].Store(s)
	return s
}

// find returns the entry of values in set and its way, or nil.
func find(set *[reportCacheWays]atomic.Pointer[reportSeries], hash uint64, values []string) (*reportSeries, int) {
	for w := range set {
		if e := set[w].Load(); e != nil && e.hash == hash && slices.Equal(e.values, values) {
			return e, w
		}
	}
	return nil, -1
}

// resolve looks up the series of s.values that c adds to and s lacks.
func (m *Metrics) resolve(s *reportSeries, c *reportCounts) {
	// labels[0] is the decision or token type, labels[1:] the values.
	labels := append([]string{""}, s.values...)
	if s.requests[c.decision] == nil {
		labels[0] = decisionNames[c.decision]
		s.requests[c.decision] = m.requests.WithLabelValues(labels...)
	}
	if c.spend > 0 && s.spend == nil {
		s.spend = m.spend.series(s.values)
	}
	if c.unmetered > 0 && s.unmetered == nil {
		s.unmetered = m.unmetered.series(s.values)
	}
	for t, n := range c.tokens {
		if n > 0 && s.tokens[t] == nil {
			labels[0] = tokenTypes[t]
			s.tokens[t] = m.tokens.WithLabelValues(labels...)
		}
	}
}
