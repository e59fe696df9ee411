package admin

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Router is where routes are added: an *http.ServeMux or a Mux.
type Router interface {
	Handle(pattern string, handler http.Handler)
}

// Mux is the admin server's router: an http.ServeMux that remembers
// every pattern registered on it (so the OpenAPI description can be
// checked against what is served, in both directions) and answers a path
// it does not serve with 404, and a method a path does not take with
// 405 and Allow, in the API's JSON error shape rather than the
// ServeMux's plain text.
type Mux struct {
	mux      *http.ServeMux
	patterns []string
}

// NewMux returns an empty Mux.
func NewMux() *Mux { return &Mux{mux: http.NewServeMux()} }

// Handle registers handler for pattern, as http.ServeMux.Handle does
// (and panics as it does on a conflicting pattern).
func (m *Mux) Handle(pattern string, handler http.Handler) {
	m.mux.Handle(pattern, handler)
	m.patterns = append(m.patterns, pattern)
}

// HandleFunc registers f for pattern.
func (m *Mux) HandleFunc(pattern string, f func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(f))
}

// Patterns returns the registered patterns ("GET /v1/budgets/{name}"),
// sorted.
func (m *Mux) Patterns() []string {
	return slices.Sorted(slices.Values(m.patterns))
}

// ServeHTTP dispatches r to the handler of the pattern it matches.
func (m *Mux) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h, pattern := m.mux.Handler(r); pattern == "" { // the ServeMux's own 404 or 405
		rec := &headerRecorder{header: http.Header{}}
		h.ServeHTTP(rec, r)
		switch rec.status {
		case http.StatusMethodNotAllowed:
			allow := rec.header.Get("Allow")
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "method_not_allowed",
				fmt.Sprintf("%s %s is not served; this path takes %s (GET /v1/openapi.json lists every route)", r.Method, r.URL.Path, allow))
		default:
			writeError(w, http.StatusNotFound, "not_found", "not_found",
				fmt.Sprintf("no such path %s (GET /v1/openapi.json lists every route)", strings.ToValidUTF8(r.URL.Path, "?")))
		}
		return
	}
	m.mux.ServeHTTP(w, r)
}

// headerRecorder keeps the status and headers a handler writes and drops
// its body.
type headerRecorder struct {
	header http.Header
	status int
}

func (h *headerRecorder) Header() http.Header { return h.header }

func (h *headerRecorder) WriteHeader(status int) {
	if h.status == 0 {
		h.status = status
	}
}

func (h *headerRecorder) Write(b []byte) (int, error) {
	h.WriteHeader(http.StatusOK)
	return len(b), nil
}
