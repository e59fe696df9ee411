package fakevllm

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMetricsCountWhatWasServed: /metrics shows, per model, the usage
// the answers reported, in vLLM's exposition format.
func TestMetricsCountWhatWasServed(t *testing.T) {
	s := New(Config{})
	do(t, s, http.MethodPost, "/v1/chat/completions", `{"model":"m1","max_tokens":7,"n":2,"messages":[{"role":"user","content":"abcdefghijkl"}]}`, nil)
	do(t, s, http.MethodPost, "/v1/completions", `{"model":"m1","prompt":["abcd","efgh"],"max_tokens":3,"stream":true}`, nil)
	do(t, s, http.MethodPost, "/v1/embeddings", `{"model":"e/5","input":"abcdefgh"}`, map[string]string{HeaderPromptTokens: "9"})
	do(t, s, http.MethodPost, "/v1/responses", `{"model":"m1","input":"hi","max_output_tokens":4}`, map[string]string{HeaderPromptTokens: "5"})
	do(t, s, http.MethodPost, "/v1/chat/completions", `{"model":"m1","messages":[]}`, map[string]string{HeaderStatus: "500"})

	rec := do(t, s, http.MethodGet, "/metrics", "", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	assert.True(t, strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain; version=0.0.4"))
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(rec.Body.String()))
	require.NoError(t, err)
	got := map[string]float64{}
	for _, name := range []string{"vllm:prompt_tokens_total", "vllm:generation_tokens_total"} {
		require.Contains(t, families, name)
		for _, m := range families[name].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "model_name" {
					got[name+" "+l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	// chat: 12 bytes / 4 = 3 prompt, 2 × 7; completions: 1 + 1 prompt, 2 × 3;
	// responses: 5 and 4. The failed answer counts nothing.
	assert.Equal(t, map[string]float64{
		"vllm:prompt_tokens_total m1": 3 + 2 + 5, "vllm:generation_tokens_total m1": 14 + 6 + 4,
		"vllm:prompt_tokens_total e/5": 9, "vllm:generation_tokens_total e/5": 0,
	}, got)
	prompt, gen := s.Tokens("m1")
	assert.Equal(t, [2]int64{10, 24}, [2]int64{prompt, gen})
}
