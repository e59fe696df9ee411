package app_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/cmd/spendguard/app"
	"github.com/spendguard/spendguard/internal/money"
)

// scrapeBenchConfig has one counter per tenant, every tenant a label.
const scrapeBenchConfig = `version: 1
identity:
  dimensions:
    tenant:
      - header: x-tenant-id
pricing:
  default: {input: 1.00, output: 2.00}
budgets:
  - name: tenant-daily
    match: {tenant: "*"}
    period: day
    hard_usd: 1000000
store:
  backend: memory
metrics:
  label_dimensions: [tenant]
`

const scrapeBenchScopes = 50_000

// BenchmarkScrapeUnderLoad measures what the processor waits on per
// request (a budget Reserve and Settle on the store, for one of 50,000
// tenants with counters) alone, then while 10 clients scrape /metrics
// in a loop, then while 10 clients each walk the store per scrape as
// /metrics did before its gauges became a cache. Each case reports the
// p50 and p99 of that work and its p99 against the unloaded one
// (p99-vs-idle), all in the same run; run it with -bench ScrapeUnderLoad
// so the three cases run in order.
func BenchmarkScrapeUnderLoad(b *testing.B) {
	in := startWith(b, scrapeBenchConfig, app.ServeOptions{})
	snap := in.CurrentConfig().Snapshot
	ctx := context.Background()
	scopesOf := func(i int) []budget.Scope {
		return snap.Budgets.Applicable(map[string]string{"tenant": "t" + strconv.Itoa(i), "model": "m"})
	}
	for i := range scrapeBenchScopes {
		res, rej, err := in.Budgets.Reserve(ctx, snap.Budgets, scopesOf(i), "m", money.PerUSD/1000, "fill-"+strconv.Itoa(i))
		require.NoError(b, err)
		require.Nil(b, rej)
		require.NoError(b, in.Budgets.Settle(ctx, res, money.PerUSD/2000))
	}
	require.NoError(b, in.RefreshBudgetGauges(ctx))
	url := "http://" + in.AdminAddr() + "/metrics"
	t0 := time.Now()
	require.NoError(b, scrapeOnce(url))
	b.Logf("one scrape: %v", time.Since(t0))

	var idleP99 float64
	cases := []struct {
		name   string
		scrape func() error // one scrape by one client; nil = no scrapers
	}{
		{"idle", nil},
		{"10-scrapers-cached", func() error { return scrapeOnce(url) }},
		{"10-scrapers-walking-the-store", func() error {
			if err := in.RefreshBudgetGauges(ctx); err != nil {
				return err
			}
			return scrapeOnce(url)
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var scrapes, failed sync.Map
			if c.scrape != nil {
				for w := range 10 {
					wg.Go(func() {
						n, bad := 0, 0
						for {
							select {
							case <-stop:
								scrapes.Store(w, n)
								failed.Store(w, bad)
								return
							default:
							}
							if err := c.scrape(); err != nil {
								bad++ // the walk outlasted its timeout: that is the point
							}
							n++
						}
					})
				}
			}
			lat := make([]time.Duration, 0, 1<<16)
			i := 0
			for b.Loop() {
				i++
				start := time.Now()
				res, _, err := in.Budgets.Reserve(ctx, snap.Budgets, scopesOf(i%scrapeBenchScopes), "m", money.PerUSD/1000, "bench-"+strconv.Itoa(i))
				if err == nil {
					err = in.Budgets.Settle(ctx, res, money.PerUSD/2000)
				}
				lat = append(lat, time.Since(start))
				if err != nil {
					b.Fatal(err)
				}
			}
			close(stop)
			wg.Wait()
			sum := func(m *sync.Map) (n int) {
				m.Range(func(_, v any) bool { n += v.(int); return true })
				return n
			}
			slices.Sort(lat)
			p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
			b.ReportMetric(float64(p50.Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(p99.Nanoseconds()), "p99-ns")
			b.ReportMetric(float64(sum(&scrapes)), "scrapes")
			b.ReportMetric(float64(sum(&failed)), "failed-scrapes")
			if c.scrape == nil {
				idleP99 = float64(p99)
			}
			if idleP99 > 0 {
				b.ReportMetric(float64(p99)/idleP99, "p99-vs-idle")
			}
		})
	}
}

// scrapeClient asks for gzip as Prometheus does, and does not inflate
// the answer (only the scrape's cost to the server is of interest).
var scrapeClient = &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 10}}

// scrapeOnce fetches url as Prometheus would and discards the body.
func scrapeOnce(url string) error {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := scrapeClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
