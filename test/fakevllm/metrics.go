package fakevllm

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync"
)

// tokenCounts is what the server served, per model: vLLM's
// vllm:prompt_tokens_total and vllm:generation_tokens_total.
type tokenCounts struct {
	mu     sync.Mutex
	counts map[string][2]int64 // model -> prompt, generation
}

// add counts one answer. An answer is counted whole when it starts (a
// stream that is cut short counts its full plan); replays and errors are
// not counted.
func (c *tokenCounts) add(model string, prompt, generation int) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts = map[string][2]int64{}
	}
	t := c.counts[model]
	c.counts[model] = [2]int64{t[0] + int64(prompt), t[1] + int64(generation)}
}

func (c *tokenCounts) get(model string) (prompt, generation int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.counts[model]
	return t[0], t[1]
}

// Tokens returns the prompt and generation tokens served for model so far
// (what GET /metrics shows for it).
func (s *Server) Tokens(model string) (prompt, generation int64) { return s.tokens.get(model) }

// serveMetrics answers GET /metrics in the Prometheus text format that
// vLLM's server uses (prometheus_client): HELP, TYPE, the counters with
// engine and model_name labels and float values, and their _created
// series.
func serveMetrics(w http.ResponseWriter, _ []byte, p params) {
	c := p.tokens
	c.mu.Lock()
	counts := maps.Clone(c.counts)
	c.mu.Unlock()
	models := slices.Sorted(maps.Keys(counts))
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.WriteHeader(p.okStatus())
	fmt.Fprint(w, "# HELP vllm:num_requests_running Number of requests in model execution batches.\n# TYPE vllm:num_requests_running gauge\n")
	for _, m := range models {
		fmt.Fprintf(w, "vllm:num_requests_running{engine=\"0\",model_name=%s} 0.0\n", strconv.Quote(m))
	}
	for i, name := range []string{"prompt", "generation"} {
		help := [2]string{"Number of prefill tokens processed.", "Number of generation tokens processed."}[i]
		fmt.Fprintf(w, "# HELP vllm:%s_tokens_total %s\n# TYPE vllm:%s_tokens_total counter\n", name, help, name)
		for _, m := range models {
			fmt.Fprintf(w, "vllm:%s_tokens_total{engine=\"0\",model_name=%s} %d.0\n", name, strconv.Quote(m), counts[m][i])
		}
		fmt.Fprintf(w, "# HELP vllm:%s_tokens_created %s\n# TYPE vllm:%s_tokens_created gauge\n", name, help, name)
		for _, m := range models {
			fmt.Fprintf(w, "vllm:%s_tokens_created{engine=\"0\",model_name=%s} 1.7642e+09\n", name, strconv.Quote(m))
		}
	}
}
