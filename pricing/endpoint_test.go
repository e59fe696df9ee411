package pricing

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func builtinRouter(t *testing.T, c Config) *Router {
	t.Helper()
	r, errs := compileRouter(c)
	require.Empty(t, errs)
	return r
}

func TestRouteBuiltins(t *testing.T) {
	r := builtinRouter(t, Config{})
	cost := map[string]Endpoint{
		"/v1/chat/completions": ChatCompletions, "/v1/completions": Completions,
		"/v1/embeddings": Embeddings, "/v1/responses": Responses, "/v1/messages": Messages,
		"/invocations": Invocations, "/inference/v1/generate": Generate,
		"/v1/audio/transcriptions": Transcriptions, "/v1/audio/translations": Translations,
		"/rerank": Rerank, "/v1/rerank": Rerank, "/v2/rerank": Rerank,
		"/score": Score, "/v1/score": Score, "/pooling": Pooling, "/classify": Classify,
	}
	for p, e := range cost {
		assert.Equal(t, Route{Kind: RouteCost, Endpoint: e}, r.Route("POST", p), p)
		assert.Equal(t, Route{Kind: RouteFree}, r.Route("GET", p), "GET %s", p)
	}
	for _, p := range []string{"/v1/models", "/health", "/ping", "/version", "/metrics", "/tokenize",
		"/detokenize", "/load", "/server_info", "/is_sleeping", "/v1/responses/resp_1/cancel",
		"/v1/messages/count_tokens", "/v1/chat/completions/render", "/v1/completions/render", "/v1/messages/render"} {
		assert.Equal(t, Route{Kind: RouteFree}, r.Route("POST", p), p)
	}
	for e := ChatCompletions; e <= Invocations; e++ {
		assert.Equal(t, Route{Kind: RouteCost, Endpoint: e}, r.Route("POST", e.String()), e.String())
	}
}

func TestRoutePaths(t *testing.T) {
	r := builtinRouter(t, Config{})
	tests := []struct {
		method, path string
		want         Route
	}{
		{"POST", "/v1/chat/completions?api-version=1&x=/v1/models", Route{RouteCost, ChatCompletions}},
		{"POST", "/v1/embeddings?", Route{RouteCost, Embeddings}},
		{"POST", "/v1/chat%2Fcompletions", Route{RouteCost, ChatCompletions}}, // decoded before routing
		{"POST", "/v1/%63ompletions", Route{RouteCost, Completions}},
		{"POST", "/v1/%6D%65ssages", Route{RouteCost, Messages}},
		{"POST", "/v1/chat/completions/", Route{Kind: RouteRefused}},
		{"POST", "//v1/chat/completions", Route{Kind: RouteRefused}},
		{"POST", "/V1/chat/completions", Route{Kind: RouteRefused}},
		{"POST", "/v1/chat/completions%zz", Route{Kind: RouteRefused}}, // a bad escape stays as written
		{"POST", "/v1/chat/completions%3Fa=b", Route{Kind: RouteRefused}},
		{"POST", "/health%", Route{Kind: RouteRefused}},
		{"POST", "/v1/responses/resp_123", Route{Kind: RouteRefused}},
		{"POST", "/v1/responses//cancel", Route{Kind: RouteRefused}},
		{"POST", "/sleep", Route{Kind: RouteRefused}},
		{"POST", "", Route{Kind: RouteRefused}},
		{"post", "/v1/chat/completions", Route{Kind: RouteFree}}, // vLLM answers 405
		{"PUT", "/anything", Route{Kind: RouteFree}},
		{"GET", "/v1/responses/resp_123", Route{Kind: RouteResponseLookup}},
		{"GET", "/v1/responses/resp_123?stream=true", Route{Kind: RouteResponseLookup}},
		{"GET", "/v1/responses/resp%5F123", Route{Kind: RouteResponseLookup}},
		{"GET", "/v1/responses/", Route{Kind: RouteFree}},
		{"GET", "/v1/responses/a/b", Route{Kind: RouteFree}},
		{"GET", "/v1/responses", Route{Kind: RouteFree}},
		{"DELETE", "/v1/responses/resp_123", Route{Kind: RouteFree}},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			assert.Equal(t, tt.want, r.Route(tt.method, tt.path))
		})
	}
}

func TestRouteConfigured(t *testing.T) {
	r := builtinRouter(t, Config{
		FreePaths: []Setting{{Value: "/sleep"}, {Value: "/admin/*"}},
		Paths:     map[string]Setting{"/my/chat": {Value: "chat"}, "/tokenize": {Value: "embeddings"}, "/v1/rerank": {Value: "score"}, "/sm": {Value: "invocations"}},
	})
	assert.Equal(t, Route{Kind: RouteFree}, r.Route("POST", "/sleep"))
	assert.Equal(t, Route{Kind: RouteFree}, r.Route("POST", "/admin/x/y"))
	assert.Equal(t, Route{Kind: RouteRefused}, r.Route("POST", "/admin"))
	assert.Equal(t, Route{RouteCost, ChatCompletions}, r.Route("POST", "/my/chat"))
	assert.Equal(t, Route{RouteCost, ChatCompletions}, r.Route("POST", "/my%2Fchat"))
	assert.Equal(t, Route{RouteCost, Embeddings}, r.Route("POST", "/tokenize"))
	assert.Equal(t, Route{RouteCost, Score}, r.Route("POST", "/v1/rerank"))
	assert.Equal(t, Route{RouteCost, Invocations}, r.Route("POST", "/sm"))
	assert.Equal(t, Route{RouteCost, Rerank}, r.Route("POST", "/rerank"))

	entries := r.Entries()
	assert.Contains(t, entries, RouteEntry{Path: "/my/chat", Endpoint: ChatCompletions, Configured: true})
	assert.Contains(t, entries, RouteEntry{Path: "/admin/*", Free: true, Configured: true})
	assert.Contains(t, entries, RouteEntry{Path: "/v1/models", Free: true})
	assert.Contains(t, entries, RouteEntry{Path: "/v1/chat/completions", Endpoint: ChatCompletions})
	assert.NotContains(t, entries, RouteEntry{Path: "/tokenize", Free: true})
}

func TestRouteConfigErrors(t *testing.T) {
	_, errs := compileRouter(Config{
		FreePaths: []Setting{{Value: "v1/x", Line: 3}, {Value: "/v1/chat/completions", Line: 4}, {Value: "/v1/*", Line: 5},
			{Value: "/*", Line: 6}, {Value: "/a*", Line: 7}, {Value: "/a?b", Line: 8}, {Value: "/a%20b", Line: 9}, {Value: "/my/chat", Line: 10}},
		Paths: map[string]Setting{"/my/chat": {Value: "chat", Line: 11}, "/x/*": {Value: "chat", Line: 12}, "/y": {Value: "chatt", Line: 13}},
	})
	var msgs []string
	for _, err := range errs {
		msgs = append(msgs, err.Error())
	}
	assert.Equal(t, []string{
		`pricing.paths./x/*: line 12: "/x/*": pricing.paths takes exact paths, not prefixes`,
		`pricing.paths./y: line 13: "chatt" is not an endpoint kind: want one of chat, classify, completions, embeddings, generate, invocations, messages, pooling, rerank, responses, score, transcriptions, translations`,
		`pricing.free_paths[0]: line 3: "v1/x": a path must start with /`,
		`pricing.free_paths[1]: line 4: "/v1/chat/completions" costs money (built in or in pricing.paths); it cannot also be free`,
		`pricing.free_paths[2]: line 5: "/v1/*" covers /v1/audio/transcriptions, which costs money: it would pass unmetered`,
		`pricing.free_paths[3]: line 6: "/*": a prefix is written as a path ending in /* (and not /* alone, which would make every path free)`,
		`pricing.free_paths[4]: line 7: "/a*": a prefix is written as a path ending in /* (and not /* alone, which would make every path free)`,
		`pricing.free_paths[5]: line 8: "/a?b": a path has no query string (queries are ignored when routing)`,
		`pricing.free_paths[6]: line 9: "/a%20b": write the path decoded (requests are routed after percent-decoding)`,
		`pricing.free_paths[7]: line 10: "/my/chat" costs money (built in or in pricing.paths); it cannot also be free`,
	}, msgs)
}

func TestEndpointString(t *testing.T) {
	assert.Equal(t, "/v1/messages", Messages.String())
	assert.Equal(t, "/invocations", Invocations.String())
	assert.Equal(t, "Endpoint(0)", Endpoint(0).String())
	assert.Equal(t, "Endpoint(14)", (Invocations + 1).String())
	for e := ChatCompletions; e <= Invocations; e++ {
		assert.Equal(t, e, kindNames[KindName(e)])
	}
}

// FuzzRoute: routing any path never panics, ignores the query string,
// decodes as url.PathUnescape does wherever that accepts the path, and
// refuses no method but POST.
func FuzzRoute(f *testing.F) {
	for _, s := range []string{"/v1/chat/completions", "/v1/chat%2Fcompletions", "/v1/%zz", "/%", "/v1/responses/r%5F1", "/admin/%2A", "", "?", "/v1/responses/x/cancel?y"} {
		f.Add("POST", s, "a=b")
	}
	f.Add("GET", "/v1/responses/abc", "")
	r, errs := compileRouter(Config{FreePaths: []Setting{{Value: "/admin/*"}}, Paths: map[string]Setting{"/é": {Value: "chat"}}})
	require.Empty(f, errs)
	f.Fuzz(func(t *testing.T, method, path, query string) {
		got := r.Route(method, path)
		if !strings.Contains(path, "?") {
			assert.Equal(t, got, r.Route(method, path+"?"+query))
		}
		if method != "POST" && got.Kind != RouteFree && got.Kind != RouteResponseLookup {
			t.Fatalf("%s %q routed %v", method, path, got)
		}
		p, _, _ := strings.Cut(path, "?")
		if want, err := url.PathUnescape(p); err == nil {
			assert.Equal(t, want, decodePath(path), "%q", path)
		}
	})
}
