package postgres

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// vLLM's token counters, labelled by model_name (the first
// --served-model-name). Older vLLM versions exposed the same names.
const (
	vllmPromptTokens     = "vllm:prompt_tokens_total"
	vllmGenerationTokens = "vllm:generation_tokens_total"
	vllmModelLabel       = "model_name"
)

// tokens is a pair of token counts.
type tokens struct{ prompt, generation int64 }

// maxScrapeBytes bounds one /metrics body.
const maxScrapeBytes = 16 << 20

// parseVLLMMetrics reads vLLM's Prometheus text exposition and returns
// its prompt and generation token counters by model, summed over the
// other labels (engine, ...). A body without them gives an empty map.
func parseVLLMMetrics(r io.Reader) (map[string]tokens, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(io.LimitReader(r, maxScrapeBytes))
	if err != nil {
		return nil, err
	}
	out := map[string]tokens{}
	add := func(name string, set func(*tokens, int64)) error {
		mf := families[name]
		if mf == nil {
			return nil
		}
		for _, m := range mf.GetMetric() {
			v, ok := value(m)
			if !ok || v < 0 || v > math.MaxInt64/2 || math.IsNaN(v) {
				return fmt.Errorf("%s: not a token count", name)
			}
			key := label(m, vllmModelLabel)
			t := out[key]
			set(&t, int64(math.Round(v)))
			out[key] = t
		}
		return nil
	}
	if err := add(vllmPromptTokens, func(t *tokens, v int64) { t.prompt += v }); err != nil {
		return nil, err
	}
	if err := add(vllmGenerationTokens, func(t *tokens, v int64) { t.generation += v }); err != nil {
		return nil, err
	}
	return out, nil
}

func value(m *dto.Metric) (float64, bool) {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue(), true
	case m.GetUntyped() != nil:
		return m.GetUntyped().GetValue(), true
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue(), true
	}
	return 0, false
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// scrape reads every URL and adds the counters up by model.
func scrape(ctx context.Context, client *http.Client, urls []string) (map[string]tokens, error) {
	total := map[string]tokens{}
	for _, u := range urls {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "text/plain;version=0.0.4")
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		counts, err := func() (map[string]tokens, error) {
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return nil, fmt.Errorf("%s answered %d", u, resp.StatusCode)
			}
			return parseVLLMMetrics(resp.Body)
		}()
		if err != nil {
			return nil, fmt.Errorf("scraping %s: %w", u, err)
		}
		for m, t := range counts {
			s := total[m]
			s.prompt += t.prompt
			s.generation += t.generation
			total[m] = s
		}
	}
	return total, nil
}
