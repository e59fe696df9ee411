package redisstore_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/redisstore"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/test/redistest"
)

// BenchmarkScriptServerTime measures what the scripts cost Redis itself,
// apart from the network and the client: a request's Reserve on three
// budgets (one a rolling window of ten buckets) and its Settle, on a
// private redis-server, reported as the server's own microseconds per
// script call (INFO commandstats) beside the usual wall time.
func BenchmarkScriptServerTime(b *testing.B) {
	srv := redistest.Start(b)
	c := srv.Client()
	s := redisstore.New(c, redisstore.Options{Timeout: 5 * time.Second})
	ctx, end := context.Background(), t0.Add(time.Hour)
	window := make([]string, 9)
	for i := range window {
		window[i] = "guard|rolling|user=u@" + strconv.Itoa(i)
	}
	items := []budget.Item{
		{Key: "fleet|day|@1", Limit: 1 << 62, Enforce: true, Expires: end},
		{Key: "tenant|day|tenant=acme@1", Limit: 1 << 62, Enforce: true, Expires: end},
		{Key: "guard|rolling|user=u@9", Window: window, Limit: 1 << 62, Enforce: true, Expires: end},
	}
	if err := c.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	for i := 0; b.Loop(); i++ {
		id := "r" + strconv.Itoa(i)
		out, err := s.Reserve(ctx, id, money.PerUSD, items, time.Minute, t0)
		if err != nil || !out.OK() {
			b.Fatal(err, out)
		}
		if err := s.Settle(ctx, id, money.PerUSD/2, items, t0); err != nil {
			b.Fatal(err)
		}
	}
	reportServerTime(b, c)
}

// reportServerTime reports the Redis server's own microseconds per script
// call (EVAL and EVALSHA in INFO commandstats) since the last CONFIG
// RESETSTAT.
func reportServerTime(b *testing.B, c *redis.Client) {
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	var usec, calls float64
	for _, line := range strings.Split(info, "\r\n") {
		if !strings.HasPrefix(line, "cmdstat_evalsha:") && !strings.HasPrefix(line, "cmdstat_eval:") {
			continue
		}
		for _, kv := range strings.Split(strings.SplitN(line, ":", 2)[1], ",") {
			k, v, _ := strings.Cut(kv, "=")
			f, _ := strconv.ParseFloat(v, 64)
			switch k {
			case "usec":
				usec += f
			case "calls":
				calls += f
			}
		}
	}
	if calls > 0 {
		b.ReportMetric(usec/calls, "redis-µs/call")
	}
}
