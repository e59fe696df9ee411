package budget

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// BenchmarkEngineRequest is the budget work of one request on the example
// configuration with the memory store: applicable budgets, the headers
// check, admission (soft-cap check and reservation) and settle.
func BenchmarkEngineRequest(b *testing.B) {
	var s section
	require.NoError(b, yaml.Unmarshal([]byte(exampleYAML), &s))
	p, err := Compile(s.Budgets, s.Limits)
	require.NoError(b, err)
	t0 := time.Date(2026, 11, 15, 10, 0, 0, 0, time.UTC)
	eng := NewEngine(NewTestStore(), func() time.Time { return t0 })
	ctx := context.Background()
	const model = "meta-llama/Llama-3.1-70B-Instruct"

	request := func(b *testing.B, id string, dims map[string]string) {
		scopes := p.ApplicableKnown(dims, func(k string) bool { return k != "model" && k != "user" })
		if rej, err := eng.Exhausted(ctx, scopes, ""); err != nil || rej != nil {
			b.Fatal(err, rej)
		}
		scopes = p.Applicable(dims)
		adm, err := eng.Admit(ctx, Claim{ID: id, Scopes: scopes, Model: model, Amount: 1000, TTL: p.ReservationTTL()}, nil)
		if err != nil || adm.Reservation == nil {
			b.Fatal(err, adm)
		}
		if err := eng.Settle(ctx, adm.Reservation, 500); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("serial", func(b *testing.B) {
		dims := map[string]string{"tenant": "acme", "team": "search", "user": "u0", "model": model}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			request(b, "s"+strconv.Itoa(i), dims)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		var worker atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			w := strconv.FormatInt(worker.Add(1), 10)
			dims := map[string]string{"tenant": "t" + w, "team": "search", "user": "u" + w, "model": model}
			for i := 0; pb.Next(); i++ {
				request(b, "p"+w+"-"+strconv.Itoa(i), dims)
			}
		})
	})
}

// loadgenYAML is the budgets and limits of test/loadgen's configuration:
// a calendar month with a soft-cap downgrade, a calendar day and a rolling
// window, so three scopes per request, one with ten older buckets.
const loadgenYAML = `
budgets:
  - name: tenant-monthly
    match: {tenant: "*"}
    period: month
    soft_usd: 900000
    hard_usd: 1000000
    on_soft:
      downgrade:
        meta-llama/Llama-3.1-70B-Instruct: meta-llama/Llama-3.1-8B-Instruct
  - name: fleet-daily
    period: day
    hard_usd: 1000000
  - name: runaway-agent-guard
    match: {user: "*"}
    rolling: 10m
    hard_usd: 100000
limits:
  max_request_usd: 2.00
  reservation_ttl: 10m
`

// BenchmarkEngineRequestLoadgen is BenchmarkEngineRequest on the load
// generator's budgets: with the rolling window's older buckets empty
// (fresh) and all holding spend (full), serially and in parallel.
func BenchmarkEngineRequestLoadgen(b *testing.B) {
	var s section
	require.NoError(b, yaml.Unmarshal([]byte(loadgenYAML), &s))
	p, err := Compile(s.Budgets, s.Limits)
	require.NoError(b, err)
	t0 := time.Date(2026, 11, 15, 10, 0, 0, 0, time.UTC)
	ctx := context.Background()
	const model = "meta-llama/Llama-3.1-70B-Instruct"
	request := func(b *testing.B, eng *Engine, id string, dims map[string]string) {
		scopes := p.ApplicableKnown(dims, func(k string) bool { return k != "model" && k != "user" })
		if rej, err := eng.Exhausted(ctx, scopes, ""); err != nil || rej != nil {
			b.Fatal(err, rej)
		}
		scopes = p.Applicable(dims)
		adm, err := eng.Admit(ctx, Claim{ID: id, Scopes: scopes, Model: model, Amount: 1000, TTL: p.ReservationTTL()}, nil)
		if err != nil || adm.Reservation == nil {
			b.Fatal(err, adm)
		}
		if err := eng.Settle(ctx, adm.Reservation, 500); err != nil {
			b.Fatal(err)
		}
	}
	dimsOf := func(w string) map[string]string {
		return map[string]string{"tenant": "t" + w, "user": "u" + w, "model": model}
	}
	for _, full := range []bool{false, true} {
		name := "fresh"
		if full {
			name = "full"
		}
		newEngine := func(b *testing.B, workers int) *Engine {
			store := NewTestStore()
			if full { // spend in every bucket of the window
				for m := 10; m > 0; m-- {
					at := t0.Add(-time.Duration(m) * time.Minute)
					seed := NewEngine(store, func() time.Time { return at })
					for w := range workers + 1 {
						request(b, seed, "seed"+strconv.Itoa(m)+"-"+strconv.Itoa(w), dimsOf(strconv.Itoa(w)))
					}
				}
			}
			return NewEngine(store, func() time.Time { return t0 })
		}
		b.Run(name+"/serial", func(b *testing.B) {
			eng := newEngine(b, 0)
			dims := dimsOf("0")
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				request(b, eng, "s"+strconv.Itoa(i), dims)
			}
		})
		b.Run(name+"/parallel", func(b *testing.B) {
			eng := newEngine(b, 64)
			var worker atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				w := strconv.FormatInt(worker.Add(1), 10)
				dims := dimsOf(w)
				for i := 0; pb.Next(); i++ {
					request(b, eng, "p"+w+"-"+strconv.Itoa(i), dims)
				}
			})
		})
	}
}
