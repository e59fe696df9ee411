package pricing

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// routeBenchConfig adds to the built-in routes what an operator may
// configure: a priced path of their own and free paths, exact and prefix.
const routeBenchConfig = `
pricing:
  default: {input: 1, output: 2}
  free_paths: [/sleep, /admin/*]
  paths:
    /my/chat: chat
`

// BenchmarkRoute is the router's work for one request's headers: every
// built-in cost path in turn, then single paths as clients send them
// (the common chat POST, a configured path, a free GET, a background
// response lookup, an escaped path, a query string, a refused POST).
func BenchmarkRoute(b *testing.B) {
	tab := compile(b, routeBenchConfig)
	b.Run("builtin-cost", func(b *testing.B) {
		paths := make([]string, 0, len(builtinCost))
		for p := range builtinCost {
			paths = append(paths, p)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if r := tab.Route("POST", paths[i]); r.Kind != RouteCost {
				b.Fatalf("%s: %+v", paths[i], r)
			}
			i++
			if i == len(paths) {
				i = 0
			}
		}
	})
	cases := []struct {
		name, method, path string
		want               RouteKind
	}{
		{"chat", "POST", "/v1/chat/completions", RouteCost},
		{"configured", "POST", "/my/chat", RouteCost},
		{"free-get", "GET", "/v1/models", RouteFree},
		{"free-prefix", "POST", "/admin/reload", RouteFree},
		{"lookup", "GET", "/v1/responses/resp_0123456789abcdef", RouteResponseLookup},
		{"escaped", "POST", "/v1/chat%2Fcompletions", RouteCost},
		{"query", "POST", "/v1/chat/completions?api-version=2024-06-01", RouteCost},
		{"refused", "POST", "/v1/load_lora_adapter", RouteRefused},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			require.Equal(b, c.want, tab.Route(c.method, c.path).Kind)
			b.ReportAllocs()
			for b.Loop() {
				tab.Route(c.method, c.path)
			}
		})
	}
}
