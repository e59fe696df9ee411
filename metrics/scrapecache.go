package metrics

import (
	"bytes"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"
)

// CachedHandler is Handler with its answers shared: a scrape within ttl
// of the last one in the same format (text or OpenMetrics, gzip or not)
// gets that answer again, so any number of scrapers cost one gather and
// encoding per ttl and format, never more. Gathers run one at a time;
// scrapes arriving meanwhile wait for the one under way. ttl <= 0 is
// Handler itself.
func (m *Metrics) CachedHandler(ttl time.Duration) http.Handler {
	if ttl <= 0 {
		return m.Handler()
	}
	return &scrapeCache{next: m.Handler(), ttl: ttl, entries: map[string]*scrapeEntry{}}
}

type scrapeCache struct {
	next http.Handler
	ttl  time.Duration

	mu      sync.Mutex // held while gathering: one gather at a time
	entries map[string]*scrapeEntry
}

// scrapeEntry is one recorded answer.
type scrapeEntry struct {
	at     time.Time
	status int
	header http.Header
	body   []byte
}

func (c *scrapeCache) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The key is what the answer depends on, normalised, so that a client
	// cannot miss the cache by varying its headers.
	format := expfmt.NegotiateAccept(r.Header, expfmt.DefaultOpenMetricsAcceptedFormats()...)
	gzip := strings.Contains(strings.ToLower(r.Header.Get("Accept-Encoding")), "gzip")
	key := string(format)
	if gzip {
		key += "|gzip"
	}
	c.mu.Lock()
	e := c.entries[key]
	if e == nil || time.Since(e.at) >= c.ttl {
		req := r.Clone(r.Context())
		req.Header = http.Header{"Accept": {string(format)}}
		if gzip {
			req.Header.Set("Accept-Encoding", "gzip")
		}
		rec := &recorder{header: http.Header{}, status: http.StatusOK}
		c.next.ServeHTTP(rec, req)
		e = &scrapeEntry{at: time.Now(), status: rec.status, header: rec.header, body: rec.body.Bytes()}
		c.entries[key] = e
	}
	c.mu.Unlock()
	for k, v := range e.header {
		w.Header()[k] = slices.Clone(v)
	}
	w.WriteHeader(e.status)
	_, _ = w.Write(e.body)
}

// recorder keeps an answer to replay it.
type recorder struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if !r.wrote {
		r.status, r.wrote = status, true
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	r.wrote = true
	return r.body.Write(p)
}
