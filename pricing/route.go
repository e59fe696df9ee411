package pricing

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Invocations is the route of vLLM's SageMaker-style /invocations, whose
// kind the body decides (ParseBody resolves it, as vLLM does, to
// ChatCompletions, Completions, Embeddings, Rerank, Score or Pooling and
// sets Request.Endpoint). It is not itself a kind of request: no loop over
// the kinds (up to LastEndpoint) meets it.
const Invocations = LastEndpoint + 1

// RouteKind says what spendguard does with a request, from its method and
// path alone.
type RouteKind uint8

// The route kinds.
const (
	// RouteFree: the request costs nothing and passes untouched (every
	// method but POST, and POSTs to the free paths).
	RouteFree RouteKind = iota
	// RouteCost: a POST to a path that costs money; Route.Endpoint is its
	// kind, or Invocations when the body decides it.
	RouteCost
	// RouteResponseLookup: GET /v1/responses/{id}, which reads a stored
	// (possibly background) response. It costs nothing by itself; it is
	// reported apart so that a background response's reservation can be
	// settled from it.
	RouteResponseLookup
	// RouteRefused: a POST to a path that is neither priced nor free. It
	// is refused: a path nobody priced would be a way around every budget
	// (see Route.Path for what to name in the answer).
	RouteRefused
)

// Route is where a request goes: its kind and, for RouteCost, its
// endpoint.
type Route struct {
	Kind     RouteKind
	Endpoint Endpoint
}

// Built-in routes: every path vLLM serves that costs money, and the ones
// that cost nothing which a client may POST to.
var (
	builtinCost = map[string]Endpoint{
		"/v1/chat/completions":     ChatCompletions,
		"/v1/completions":          Completions,
		"/v1/embeddings":           Embeddings,
		"/v1/responses":            Responses,
		"/v1/messages":             Messages,
		"/invocations":             Invocations,
		"/inference/v1/generate":   Generate,
		"/v1/audio/transcriptions": Transcriptions,
		"/v1/audio/translations":   Translations,
		"/rerank":                  Rerank,
		"/v1/rerank":               Rerank,
		"/v2/rerank":               Rerank,
		"/score":                   Score,
		"/v1/score":                Score,
		"/pooling":                 Pooling,
		"/classify":                Classify,
	}
	// builtinFree are the paths vLLM serves that use no GPU time for a
	// client: listings, health, metrics, tokenizing. (Its administrative
	// POSTs, such as /sleep, /reset_prefix_cache or
	// /v1/load_lora_adapter, are not here: they are refused unless an
	// operator lists them, since they act on the whole server.)
	builtinFree = []string{
		"/v1/models", "/health", "/ping", "/version", "/metrics",
		"/tokenize", "/detokenize", "/load", "/server_info", "/is_sleeping",
		// Tokenizing only: the Anthropic SDKs' count_tokens (Claude Code
		// calls it) and the render endpoints, which apply the chat
		// template and return token ids without generating.
		"/v1/messages/count_tokens", "/v1/chat/completions/render",
		"/v1/completions/render", "/v1/messages/render",
	}
)

// kindNames are the endpoint kinds as pricing.paths names them.
var kindNames = map[string]Endpoint{
	"chat": ChatCompletions, "completions": Completions, "embeddings": Embeddings,
	"responses": Responses, "messages": Messages, "generate": Generate,
	"transcriptions": Transcriptions, "translations": Translations, "rerank": Rerank,
	"score": Score, "pooling": Pooling, "classify": Classify, "invocations": Invocations,
}

// KindName is the name pricing.paths uses for e ("chat", "rerank", ...).
func KindName(e Endpoint) string {
	for name, k := range kindNames {
		if k == e {
			return name
		}
	}
	return e.String()
}

// Router maps a request's method and path to its route. It is compiled
// from the built-in table and the pricing section (free_paths, paths) and
// is immutable, so safe for concurrent use.
type Router struct {
	cost     map[string]Endpoint
	free     map[string]bool
	prefixes []string // free path prefixes, each ending in "/"
}

// RouteEntry is one compiled route, for check-config's summary.
type RouteEntry struct {
	// Path is an exact path, or a prefix ending in "/*".
	Path string
	// Free: the path costs nothing; else Endpoint is its kind.
	Free     bool
	Endpoint Endpoint
	// Configured: from the file rather than built in.
	Configured bool
}

// Route returns the route of a request. The path is read as vLLM's HTTP
// stack routes it: the query string is ignored, and the rest is
// percent-decoded (an escape that is not two hex digits stays as
// written, as Python's unquote leaves it), so "/v1/chat%2Fcompletions"
// costs what "/v1/chat/completions" costs. There is no other
// normalisation: no case folding, and a trailing or doubled slash is
// another path.
//
// Every method but POST is free (vLLM serves no cost path for GET),
// except that GET /v1/responses/{id} is RouteResponseLookup. A POST is
// RouteCost on a priced path, RouteFree on a free one (and on
// /v1/responses/{id}/cancel), and RouteRefused on any other.
func (r *Router) Route(method, path string) Route {
	p := decodePath(path)
	if method != "POST" {
		if method == "GET" && responseID(p, "") {
			return Route{Kind: RouteResponseLookup}
		}
		return Route{Kind: RouteFree}
	}
	if e, ok := r.cost[p]; ok {
		return Route{Kind: RouteCost, Endpoint: e}
	}
	if r.free[p] || responseID(p, "/cancel") {
		return Route{Kind: RouteFree}
	}
	for _, pre := range r.prefixes {
		if strings.HasPrefix(p, pre) {
			return Route{Kind: RouteFree}
		}
	}
	return Route{Kind: RouteRefused}
}

// Entries lists every route, sorted by path: what check-config prints.
func (r *Router) Entries() []RouteEntry {
	var out []RouteEntry
	for p, e := range r.cost {
		b, ok := builtinCost[p]
		out = append(out, RouteEntry{Path: p, Endpoint: e, Configured: !ok || b != e})
	}
	for p := range r.free {
		out = append(out, RouteEntry{Path: p, Free: true, Configured: !slices.Contains(builtinFree, p)})
	}
	for _, pre := range r.prefixes {
		out = append(out, RouteEntry{Path: pre + "*", Free: true, Configured: true})
	}
	out = append(out, RouteEntry{Path: "/v1/responses/{id}/cancel", Free: true})
	slices.SortFunc(out, func(a, b RouteEntry) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// responseID reports whether p is /v1/responses/{id} followed by tail,
// with a non-empty id without a slash.
func responseID(p, tail string) bool {
	const pre = "/v1/responses/"
	if !strings.HasPrefix(p, pre) || !strings.HasSuffix(p, tail) {
		return false
	}
	id := p[len(pre) : len(p)-len(tail)]
	return id != "" && strings.IndexByte(id, '/') < 0 && len(pre)+len(tail) <= len(p)
}

// decodePath is the path without its query string, percent-decoded as
// Python's urllib.parse.unquote decodes it (what uvicorn gives the
// router): a "%" not followed by two hex digits stays as it is.
func decodePath(path string) string {
	path, _, _ = strings.Cut(path, "?")
	i := strings.IndexByte(path, '%')
	if i < 0 {
		return path
	}
	b := make([]byte, 0, len(path))
	b = append(b, path[:i]...)
	for ; i < len(path); i++ {
		c := path[i]
		if c == '%' && i+2 < len(path) && isHex(path[i+1]) && isHex(path[i+2]) {
			b = append(b, unhex(path[i+1])<<4|unhex(path[i+2]))
			i += 2
			continue
		}
		b = append(b, c)
	}
	return string(b)
}

func isHex(c byte) bool {
	return isDigit(c) || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case isDigit(c):
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// compileRouter builds the router from the built-in table and the file's
// free_paths and paths, or returns one error per problem: a path that is
// not absolute, has a query string or a "*" other than a final "/*"; an
// unknown kind; a path both free and priced; a free path (or prefix) that
// covers a built-in cost path (which would let it through unmetered).
// pricing.paths may map a built-in free path, or change the kind of a
// built-in cost path (for a server that routes differently).
func compileRouter(c Config) (*Router, []error) {
	r := &Router{cost: make(map[string]Endpoint, len(builtinCost)+len(c.Paths)), free: make(map[string]bool)}
	for p, e := range builtinCost {
		r.cost[p] = e
	}
	var errs []error
	for _, p := range slices.Sorted(maps.Keys(c.Paths)) {
		kind := c.Paths[p]
		where := "pricing.paths." + p
		if err := checkPath(p, false); err != nil {
			errs = append(errs, fieldErr(where, kind.Line, "%v", err))
			continue
		}
		e, ok := kindNames[kind.Value]
		if !ok || kind.err != nil {
			errs = append(errs, fieldErr(where, kind.Line, "%q is not an endpoint kind: want one of %s",
				kind.Value, strings.Join(slices.Sorted(maps.Keys(kindNames)), ", ")))
			continue
		}
		r.cost[p] = e
	}
	for _, p := range builtinFree {
		if _, priced := r.cost[p]; !priced {
			r.free[p] = true
		}
	}
	for i, fp := range c.FreePaths {
		where := fmt.Sprintf("pricing.free_paths[%d]", i)
		if fp.err != nil {
			errs = append(errs, fieldErr(where, fp.Line, "%v", fp.err))
			continue
		}
		p := fp.Value
		if err := checkPath(p, true); err != nil {
			errs = append(errs, fieldErr(where, fp.Line, "%v", err))
			continue
		}
		if pre, ok := strings.CutSuffix(p, "*"); ok {
			if covered := coveredCost(r.cost, pre); covered != "" {
				errs = append(errs, fieldErr(where, fp.Line, "%q covers %s, which costs money: it would pass unmetered", p, covered))
				continue
			}
			r.prefixes = append(r.prefixes, pre)
			continue
		}
		if _, priced := r.cost[p]; priced {
			errs = append(errs, fieldErr(where, fp.Line, "%q costs money (built in or in pricing.paths); it cannot also be free", p))
			continue
		}
		r.free[p] = true
	}
	return r, errs
}

// coveredCost is the first (sorted) cost path starting with prefix, "" when
// none.
func coveredCost(cost map[string]Endpoint, prefix string) string {
	for _, p := range slices.Sorted(maps.Keys(cost)) {
		if strings.HasPrefix(p, prefix) {
			return p
		}
	}
	return ""
}

// checkPath checks a configured path: absolute, without query string or
// percent escape (paths are compared decoded), with "*" only as a final
// "/*" where prefix is allowed.
func checkPath(p string, prefix bool) error {
	switch {
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("%q: a path must start with /", p)
	case strings.ContainsAny(p, "?#"):
		return fmt.Errorf("%q: a path has no query string (queries are ignored when routing)", p)
	case strings.IndexByte(p, '%') >= 0:
		return fmt.Errorf("%q: write the path decoded (requests are routed after percent-decoding)", p)
	}
	star := strings.IndexByte(p, '*')
	switch {
	case star < 0:
		return nil
	case !prefix:
		return fmt.Errorf("%q: pricing.paths takes exact paths, not prefixes", p)
	case star != len(p)-1 || !strings.HasSuffix(p, "/*") || p == "/*":
		return fmt.Errorf("%q: a prefix is written as a path ending in /* (and not /* alone, which would make every path free)", p)
	}
	return nil
}
