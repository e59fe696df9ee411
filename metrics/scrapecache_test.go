package metrics_test

import (
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/metrics"
)

// countingCollector counts how often the registry is gathered.
type countingCollector struct {
	desc  *prometheus.Desc
	calls atomic.Int32
}

func (c *countingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c *countingCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.calls.Add(1)
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n))
}

// Must show: any number of scrapes within the sharing time cost one
// gather per format (text, OpenMetrics), answered with the same body;
// after it a scrape gathers again; a client cannot miss the cache by
// varying its Accept header beyond the formats there are.
func TestCachedHandlerGathersOncePerFormatAndTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, err := metrics.New(nil)
		require.NoError(t, err)
		c := &countingCollector{desc: prometheus.NewDesc("test_gathers", "gathers", nil, nil)}
		m.Registry().MustRegister(c)
		h := m.CachedHandler(time.Second)
		scrape := func(accept string) string {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("GET", "/metrics", nil)
			if accept != "" {
				req.Header.Set("Accept", accept)
			}
			h.ServeHTTP(rec, req)
			require.Equal(t, 200, rec.Code)
			return rec.Body.String()
		}
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				accept := "text/plain;version=0.0.4;q=0." + strings.Repeat("9", i%5+1) // different headers, one format
				assert.Contains(t, scrape(accept), "test_gathers 1")
			})
		}
		wg.Wait()
		assert.Equal(t, int32(1), c.calls.Load(), "20 concurrent text scrapes, one gather")

		om := scrape("application/openmetrics-text;version=1.0.0")
		assert.Contains(t, om, "# EOF", "OpenMetrics is its own answer")
		assert.Equal(t, int32(2), c.calls.Load())

		time.Sleep(time.Second)
		assert.Contains(t, scrape(""), "test_gathers 3", "after the sharing time a scrape gathers again")
	})
}
