package postgres

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// vllmText is what vLLM's /metrics shows (prometheus_client's text
// format: HELP, TYPE, _created series, an engine label).
func vllmText(counts map[string]tokens) string {
	var sb strings.Builder
	sb.WriteString("# HELP vllm:num_requests_running Number of requests in model execution batches.\n# TYPE vllm:num_requests_running gauge\n")
	for _, name := range []string{"prompt", "generation"} {
		fmt.Fprintf(&sb, "# HELP vllm:%s_tokens_total Number of %s tokens processed.\n# TYPE vllm:%s_tokens_total counter\n", name, name, name)
		for m, c := range counts {
			v := c.prompt
			if name == "generation" {
				v = c.generation
			}
			fmt.Fprintf(&sb, "vllm:%s_tokens_total{engine=\"0\",model_name=%q} %d.0\n", name, m, v)
		}
		fmt.Fprintf(&sb, "# HELP vllm:%s_tokens_created Number of %s tokens processed.\n# TYPE vllm:%s_tokens_created gauge\n", name, name, name)
		for m := range counts {
			fmt.Fprintf(&sb, "vllm:%s_tokens_created{engine=\"0\",model_name=%q} 1.7642e+09\n", name, m)
		}
	}
	return sb.String()
}

func TestParseVLLMMetrics(t *testing.T) {
	got, err := parseVLLMMetrics(strings.NewReader(vllmText(map[string]tokens{"m1": {12, 100}, "m/2": {5, 0}}) +
		`vllm:prompt_tokens_total{engine="1",model_name="m1"} 8.0` + "\n"))
	require.NoError(t, err)
	assert.Equal(t, map[string]tokens{"m1": {20, 100}, "m/2": {5, 0}}, got, "engines of one model add up")

	got, err = parseVLLMMetrics(strings.NewReader("# nothing of vLLM's here\nup 1\n"))
	require.NoError(t, err)
	assert.Empty(t, got)
	_, err = parseVLLMMetrics(strings.NewReader("vllm:prompt_tokens_total{model_name=\"m\"} -3\n"))
	assert.Error(t, err)
	_, err = parseVLLMMetrics(strings.NewReader("<html>not metrics</html>\n"))
	assert.Error(t, err)
}

func FuzzParseVLLMMetrics(f *testing.F) {
	f.Add(vllmText(map[string]tokens{"m1": {12, 100}}))
	f.Add("vllm:prompt_tokens_total{model_name=\"a\\\"b\"} 1e3\n")
	f.Fuzz(func(t *testing.T, body string) {
		got, err := parseVLLMMetrics(strings.NewReader(body))
		if err != nil {
			return
		}
		for _, c := range got {
			if c.prompt < 0 || c.generation < 0 {
				t.Fatalf("negative count %+v", c)
			}
		}
	})
}

// fakeVLLM serves counters the test sets.
type fakeVLLM struct {
	mu     sync.Mutex
	counts map[string]tokens
}

func (f *fakeVLLM) set(c map[string]tokens) { f.mu.Lock(); f.counts = c; f.mu.Unlock() }
func (f *fakeVLLM) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	fmt.Fprint(w, vllmText(f.counts))
}

type driftLog struct {
	mu   sync.Mutex
	seen map[string][4]int64
}

func (d *driftLog) ObserveDrift(model string, up, ug, rp, rg int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen == nil {
		d.seen = map[string][4]int64{}
	}
	s := d.seen[model]
	d.seen[model] = [4]int64{s[0] + up, s[1] + ug, s[2] + rp, s[3] + rg}
}

// TestReconcile: windows whose requests all went through spendguard show
// no drift; tokens vLLM served around it show as drift; ledger rows of
// models this upstream does not serve, or of requests that started before
// the first sample, are ignored; a vLLM restart skips its window; and
// only one replica leads.
func TestReconcile(t *testing.T) {
	l := openLedger(t)
	ctx := context.Background()
	vllm := &fakeVLLM{}
	srv := httptest.NewServer(vllm)
	defer srv.Close()
	obs := &driftLog{}
	cfg := ReconcileConfig{VLLMMetricsURLs: []string{srv.URL + "/metrics"}, Interval: time.Second, SettleDelay: 5 * time.Second, Timeout: 5 * time.Second}
	r := newReconciler(l, cfg, obs, zap.NewNop())
	defer r.resign()

	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	tick := func(s int) { r.tick(ctx, base.Add(time.Duration(s)*time.Second)) }
	ended := func(id string, s int, model string, prompt, completion int64) {
		rep := report(id, 0, map[string]string{"tenant": "acme"})
		end := base.Add(time.Duration(s) * time.Second)
		rep.StartTime, rep.EndTime = timestamppb.New(end.Add(-time.Second)), timestamppb.New(end)
		rep.ResponseModel, rep.PromptTokens, rep.CompletionTokens = model, prompt, completion
		require.NoError(t, l.Export(ctx, events(rep)))
	}

	vllm.set(map[string]tokens{"m1": {1000, 500}}) // including a request running at the first sample
	tick(0)
	early := report("early", 0, map[string]string{"tenant": "acme"})
	early.StartTime, early.EndTime = timestamppb.New(base.Add(-time.Second)), timestamppb.New(base.Add(2*time.Second))
	early.ResponseModel, early.PromptTokens, early.CompletionTokens = "m1", 700, 300
	require.NoError(t, l.Export(ctx, events(early)))
	ended("a", 3, "m1", 120, 30)
	ended("b", 4, "m1", 80, 20)
	ended("c", 4, "other-upstreams-model", 9999, 9999)
	vllm.set(map[string]tokens{"m1": {1200, 550}})
	tick(10) // too fresh to compare
	tick(20) // compares (0s, 10s]
	assert.Equal(t, map[string][4]int64{"m1": {200, 50, 200, 50}}, obs.seen, "metered traffic: no drift")

	vllm.set(map[string]tokens{"m1": {1200 + 77, 550 + 33}}) // around spendguard
	tick(30)                                                 // compares (10s, 20s]: nothing new
	tick(40)                                                 // compares (20s, 30s]
	assert.Equal(t, map[string][4]int64{"m1": {277, 83, 200, 50}}, obs.seen, "bypass shows as drift")

	vllm.set(map[string]tokens{"m1": {10, 10}}) // vLLM restarted
	tick(50)                                    // compares (30s, 40s]
	tick(60)                                    // (40s, 50s] has a counter going down: skipped
	assert.Equal(t, map[string][4]int64{"m1": {277, 83, 200, 50}}, obs.seen)

	drift, err := l.Drift(ctx, base, base.Add(time.Hour))
	require.NoError(t, err)
	require.Len(t, drift, 1)
	d := drift[0]
	assert.Equal(t, "m1", d.Model)
	assert.Equal(t, srv.URL+"/metrics", d.Upstream)
	assert.Equal(t, int64(77), d.PromptDrift())
	assert.Equal(t, int64(33), d.GenerationDrift())
	assert.Equal(t, int64(4), d.Windows)
	assert.Equal(t, base, d.Start.UTC())
	assert.Equal(t, base.Add(40*time.Second), d.End.UTC())

	// Another replica reconciling the same upstream waits for the lock.
	other := newReconciler(l, cfg, &driftLog{}, zap.NewNop())
	defer other.resign()
	assert.False(t, other.lead(ctx))
	r.resign()
	assert.True(t, other.lead(ctx), "the lock is free once the leader's session ends")
}
