package budget

import (
	"net/url"
	"strings"
)

// Scope is one budget applied to one request: the budget and the values of
// its match keys in that request. Two requests with equal Keys share the
// budget's counters.
type Scope struct {
	Budget *Budget
	// Values holds the request's value of each of the budget's match keys
	// (the actual value also for a "*" key).
	Values map[string]string
	// Key identifies the scope's counters, without the period: the budget's
	// name and period kind plus the sorted, escaped key=value pairs. It is
	// stable across restarts and replicas.
	Key string
}

// String names the scope for people and for the x-spendguard-scope header:
// "tenant=acme,team=search" sorted by key, or "all" for a budget without
// match keys.
func (s Scope) String() string {
	if s.Budget == nil || len(s.Budget.keys) == 0 {
		return "all"
	}
	var sb strings.Builder
	for i, k := range s.Budget.keys {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(k)
		sb.WriteByte('=')
		sb.WriteString(s.Values[k])
	}
	return sb.String()
}

// group holds the budgets that compete under the precedence rule: the same
// set of match keys and the same period kind (see the package doc).
type group struct {
	keys    []string
	budgets []*Budget
}

func groupBudgets(budgets []*Budget) []group {
	var groups []group
	idx := map[string]int{}
	for _, b := range budgets {
		sig := periodKey(b) + "\x00" + strings.Join(b.keys, "\x00")
		i, ok := idx[sig]
		if !ok {
			i = len(groups)
			idx[sig] = i
			groups = append(groups, group{keys: b.keys})
		}
		groups[i].budgets = append(groups[i].budgets, b)
	}
	return groups
}

// Applicable returns the budgets that apply to a request with the given
// dimension values, in configuration order (the order every Engine method
// reports in). A budget applies when each of its match keys has a
// non-empty value in dims equal to the match value or matched by "*".
// Among applicable budgets with the same match keys and the same period
// kind, a budget is dropped when another one is at least as exact on every
// key and more exact on one (an exact value beats "*"); budgets that are
// more exact on different keys both apply, and budgets with different key
// sets or periods all apply.
//
// dims may be partial: a budget with a key missing from dims does not
// apply. See ApplicableKnown for the request-headers phase.
//
// The result is shared with other callers that pass the same values
// (recent results are cached): it and its scopes' Values must not be
// modified. Appending to it copies it.
func (p *Policies) Applicable(dims map[string]string) []Scope {
	return p.lookup(dims, nil)
}

// ApplicableKnown is Applicable restricted to the budgets whose match keys
// are all known now (known(key) is true). At request-headers time the
// processor passes a known that is false for "model" and for every
// dimension whose value may still come from a body_field source, so that
// it checks exactly the budgets it can decide before reading the body;
// precedence is decided among budgets with the same key set, so leaving a
// key set out never changes which of the others apply. The body phase
// then calls Applicable with all dimensions.
func (p *Policies) ApplicableKnown(dims map[string]string, known func(key string) bool) []Scope {
	return p.lookup(dims, known)
}

// lookup is applicable through the scope cache when the policies have one
// (a compiled Policies with at most maxCachedKeys match keys).
func (p *Policies) lookup(dims map[string]string, known func(string) bool) []Scope {
	if p == nil || p.scopes == nil || len(p.keys) > maxCachedKeys {
		return p.applicable(dims, known)
	}
	return p.applicableCached(dims, known)
}

func (p *Policies) applicable(dims map[string]string, known func(string) bool) []Scope {
	if p == nil {
		return nil
	}
	var out []Scope
	var masks []uint64
	for _, g := range p.groups {
		if known != nil && !allKnown(g.keys, known) {
			continue
		}
		masks = masks[:0]
		first := len(out)
		for _, b := range g.budgets {
			mask, ok := matches(b, dims)
			if !ok {
				continue
			}
			out = append(out, Scope{Budget: b})
			masks = append(masks, mask)
		}
		out = dropLessExact(out, first, masks)
	}
	// Restore configuration order across groups (insertion sort: few scopes).
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].Budget.index < out[j-1].Budget.index; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	for i := range out {
		out[i].Values, out[i].Key = scopeValues(out[i].Budget, dims)
	}
	return out
}

func allKnown(keys []string, known func(string) bool) bool {
	for _, k := range keys {
		if !known(k) {
			return false
		}
	}
	return true
}

// matches reports whether b applies to dims and which of its keys (bit i
// for keys[i]) match exactly rather than by "*". Budgets with more than 64
// keys compare only their first 64 keys for precedence.
func matches(b *Budget, dims map[string]string) (uint64, bool) {
	var mask uint64
	for i, k := range b.keys {
		v, ok := dims[k]
		if !ok || v == "" {
			return 0, false
		}
		want := b.match[k]
		if want == "*" {
			continue
		}
		if want != v {
			return 0, false
		}
		if i < 64 {
			mask |= 1 << i
		}
	}
	return mask, true
}

// dropLessExact removes from out[first:] every scope whose exact-key mask
// is a strict subset of another's; masks[i] belongs to out[first+i].
func dropLessExact(out []Scope, first int, masks []uint64) []Scope {
	if len(masks) < 2 {
		return out
	}
	keep := out[:first]
	for i, mi := range masks {
		dominated := false
		for j, mj := range masks {
			if i != j && mi&mj == mi && mj != mi {
				dominated = true
				break
			}
		}
		if !dominated {
			keep = append(keep, out[first+i])
		}
	}
	return keep
}

func scopeValues(b *Budget, dims map[string]string) (map[string]string, string) {
	values := make(map[string]string, len(b.keys))
	n := len(b.keyPrefix)
	for _, k := range b.keys {
		n += len(k) + len(dims[k]) + 2
	}
	var sb strings.Builder
	sb.Grow(n + n/4) // room for some escapes
	sb.WriteString(b.keyPrefix)
	for i, k := range b.keys {
		v := dims[k]
		values[k] = v
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(escape(k))
		sb.WriteByte('=')
		sb.WriteString(escape(v))
	}
	return values, sb.String()
}

// escape makes s safe inside a counter key: the separators | , = @ never
// appear unescaped, so distinct scopes never share a key.
func escape(s string) string { return url.QueryEscape(s) }

// ParseCounterKey is the inverse of the counter keys the Engine writes
// (see the package doc): it finds the budget of key among p's budgets and
// returns its scope and the period part after the last '@' ("total", or
// the Unix second at which a calendar period or a rolling sub-bucket
// starts). ok is false for a key of no budget of p (one renamed or
// removed, or whose period kind changed), and for a key that is not
// exactly what the Engine would write for that scope.
func (p *Policies) ParseCounterKey(key string) (s Scope, period string, ok bool) {
	if p == nil {
		return Scope{}, "", false
	}
	name, rest, ok1 := strings.Cut(key, "|")
	kind, rest, ok2 := strings.Cut(rest, "|")
	at := strings.LastIndexByte(rest, '@')
	if !ok1 || !ok2 || at < 0 {
		return Scope{}, "", false
	}
	b := p.byPrefix[name+"|"+kind+"|"]
	if b == nil {
		return Scope{}, "", false
	}
	pairs, period := rest[:at], rest[at+1:]
	values, ok := parsePairs(b, pairs)
	if !ok {
		return Scope{}, "", false
	}
	s = Scope{Budget: b}
	s.Values, s.Key = scopeValues(b, values)
	if s.Key != key[:len(b.keyPrefix)+at] { // not canonical: never written by us
		return Scope{}, "", false
	}
	return s, period, true
}

// parsePairs decodes "k=v,k=v" for b's sorted keys; every value must be
// non-empty and agree with b's match (equal, or matched by "*").
func parsePairs(b *Budget, pairs string) (map[string]string, bool) {
	values := make(map[string]string, len(b.keys))
	if len(b.keys) == 0 {
		return values, pairs == ""
	}
	parts := strings.Split(pairs, ",")
	if len(parts) != len(b.keys) {
		return nil, false
	}
	for i, part := range parts {
		ek, ev, ok := strings.Cut(part, "=")
		k, err1 := url.QueryUnescape(ek)
		v, err2 := url.QueryUnescape(ev)
		if !ok || err1 != nil || err2 != nil || k != b.keys[i] || v == "" {
			return nil, false
		}
		if want := b.match[k]; want != "*" && want != v {
			return nil, false
		}
		values[k] = v
	}
	return values, true
}

// ScopeOf returns b's scope for the given values of its match keys (extra
// entries are ignored). ok is false when a key has no value or a value
// that b's match does not accept.
func (b *Budget) ScopeOf(values map[string]string) (Scope, bool) {
	for _, k := range b.keys {
		v := values[k]
		if v == "" || (b.match[k] != "*" && b.match[k] != v) {
			return Scope{}, false
		}
	}
	s := Scope{Budget: b}
	s.Values, s.Key = scopeValues(b, values)
	return s, true
}
