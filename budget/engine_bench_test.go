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
	eng := NewEngine(NewMemoryStore(), func() time.Time { return t0 })
	ctx := context.Background()
	const model = "meta-llama/Llama-3.1-70B-Instruct"

	request := func(b *testing.B, id string, dims map[string]string) {
		scopes := p.ApplicableKnown(dims, func(k string) bool { return k != "model" && k != "user" })
		if rej, err := eng.Exhausted(ctx, scopes, ""); err != nil || rej != nil {
			b.Fatal(err, rej)
		}
		scopes = p.Applicable(dims)
		adm, err := eng.Admit(ctx, p, scopes, model, 1000, id)
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
