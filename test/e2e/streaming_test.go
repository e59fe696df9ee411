package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/test/fakevllm"
)

const streamConfig = `
version: 1
identity:
  dimensions:
    tenant:
      - header: x-tenant-id
      - default: anonymous
pricing:
  models:
    - {match: gpt-5-nano-2025-08-07, input: 0.05, output: 0.40}
    - {match: babbage-002, input: 0.40, output: 0.40}
    - {match: "meta-llama/*", input: 0.30, output: 0.90}
budgets:
  - name: ledger
    match: {tenant: "*"}
    period: total
    hard_usd: 1000
`

// withoutUsageEvent removes the usage-only event (choices [] and a usage
// object) from an SSE text, as the client must see it when spendguard
// injected include_usage.
func withoutUsageEvent(t *testing.T, sse string) string {
	t.Helper()
	events := strings.SplitAfter(sse, "\n\n")
	var out strings.Builder
	removed := 0
	for _, ev := range events {
		if strings.Contains(ev, `"choices":[]`) && strings.Contains(ev, `"usage":{`) {
			removed++
			continue
		}
		out.WriteString(ev)
	}
	require.Equal(t, 1, removed, "the fixture has exactly one usage event")
	return out.String()
}

func (s *stack) lastReport() (cost, prompt, completion int64, estimated bool) {
	s.t.Helper()
	var rep interface {
		GetCostNanoUsd() int64
		GetPromptTokens() int64
		GetCompletionTokens() int64
		GetEstimated() bool
	}
	require.Eventually(s.t, func() bool { return len(s.reports.all()) > 0 }, 5*time.Second, time.Millisecond)
	reps := s.reports.all()
	rep = reps[len(reps)-1]
	return rep.GetCostNanoUsd(), rep.GetPromptTokens(), rep.GetCompletionTokens(), rep.GetEstimated()
}

// TestStreamFixtures replays the recorded SSE streams at random splits, with
// usage asked for by the client (bytes untouched) and injected by
// spendguard (bytes minus the usage event).
func TestStreamFixtures(t *testing.T) {
	cases := []struct {
		file, path, model  string
		prompt, completion int64
	}{
		{"openai-chat-stream-usage.sse", "/v1/chat/completions", "gpt-5-nano-2025-08-07", 12, 100},
		{"openai-completion-stream-usage.sse", "/v1/completions", "babbage-002", 31, 25},
	}
	for _, tc := range cases {
		fixtureBody := fixture(t, tc.file)
		want := expectedStreamCost(tc.model, tc.prompt, tc.completion)
		for round := range 4 {
			for _, injected := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/injected=%v/%d", tc.file, injected, round), func(t *testing.T) {
					s := newStack(t, streamConfig, fakevllm.Config{})
					s.vllm.Replay(tc.path, http.StatusOK, fixtureBody)
					body := streamRequest(tc.path, tc.model, !injected)
					resp := s.post(tc.path, body, "x-tenant-id", "acme")
					require.Equal(t, http.StatusOK, resp.status)
					expected := string(fixtureBody)
					if injected {
						expected = withoutUsageEvent(t, expected)
					}
					assert.Equal(t, expected, string(resp.body), "client bytes")
					cost, prompt, completion, estimated := s.lastReport()
					assert.Equal(t, int64(want), cost)
					assert.Equal(t, tc.prompt, prompt)
					assert.Equal(t, tc.completion, completion)
					assert.False(t, estimated)

					sent := s.vllm.Requests()[0]
					assert.Equal(t, strconv.Itoa(len(sent.Body)), sent.Header.Get("Content-Length"))
					var opts struct {
						StreamOptions struct {
							IncludeUsage bool `json:"include_usage"`
						} `json:"stream_options"`
					}
					require.NoError(t, json.Unmarshal(sent.Body, &opts))
					assert.True(t, opts.StreamOptions.IncludeUsage)
					if !injected {
						// Its stream grows: vLLM is asked for usage on every chunk too
						// (hidden from the client), nothing else changes.
						grown := strings.Replace(body, `"include_usage":true}`, `"include_usage":true,"continuous_usage_stats":true}`, 1)
						assert.Equal(t, grown, string(sent.Body), "a client that asked for usage: only continuous usage added")
					}
					st := s.counters(map[string]string{"tenant": "acme", "model": tc.model})
					assert.Equal(t, want, st[0].Committed)
					assert.Zero(t, st[0].Reserved)
				})
			}
		}
	}
}

func expectedStreamCost(model string, prompt, completion int64) money.Nano {
	p := map[string][2]int64{"gpt-5-nano-2025-08-07": {50, 400}, "babbage-002": {400, 400}, "meta-llama/Llama-3.1-8B": {300, 900}}[model]
	return money.Nano(prompt*p[0] + completion*p[1])
}

func streamRequest(path, model string, askUsage bool) string {
	opts := ""
	if askUsage {
		opts = `,"stream_options":{"include_usage":true}`
	}
	switch path {
	case "/v1/completions":
		return fmt.Sprintf(`{"model":%q,"prompt":"def fib(n):","max_tokens":50,"stream":true%s}`, model, opts)
	case "/v1/responses":
		return fmt.Sprintf(`{"model":%q,"input":"Tell me a story","max_output_tokens":50,"stream":true}`, model)
	}
	return fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"Count to ten, slowly ✨"}],"max_tokens":200,"stream":true%s}`, model, opts)
}

// TestGeneratedStreams runs fakevllm's vLLM-shaped streams on every
// streaming endpoint, injected and asked-for, and with continuous usage.
func TestGeneratedStreams(t *testing.T) {
	s := newStack(t, streamConfig, fakevllm.Config{})
	model := "meta-llama/Llama-3.1-8B"
	var total money.Nano
	for _, path := range []string{"/v1/chat/completions", "/v1/completions", "/v1/responses"} {
		for _, ask := range []bool{false, true} {
			for _, tokens := range [][2]int64{{3, 1}, {57, 49}} {
				t.Run(fmt.Sprintf("%s/ask=%v/%d", path, ask, tokens[1]), func(t *testing.T) {
					resp := s.post(path, streamRequest(path, model, ask), "x-tenant-id", "acme",
						fakevllm.HeaderPromptTokens, strconv.FormatInt(tokens[0], 10),
						fakevllm.HeaderCompletionTokens, strconv.FormatInt(tokens[1], 10))
					require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
					text := string(resp.body)
					if path != "/v1/responses" {
						assert.Equal(t, ask, strings.Contains(text, `"usage":{`), "the usage event reaches the client only when it asked")
						assert.True(t, strings.HasSuffix(text, "data: [DONE]\n\n"))
					}
					cost, _, completion, estimated := s.lastReport()
					assert.Equal(t, int64(expectedStreamCost(model, tokens[0], tokens[1])), cost)
					assert.Equal(t, tokens[1], completion)
					assert.False(t, estimated)
				})
				total += expectedStreamCost(model, tokens[0], tokens[1])
			}
		}
	}
	resp := s.post("/v1/chat/completions",
		`{"model":"meta-llama/Llama-3.1-8B","messages":[{"role":"user","content":"hi"}],"max_tokens":20,"stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true}}`,
		"x-tenant-id", "acme", fakevllm.HeaderPromptTokens, "9", fakevllm.HeaderCompletionTokens, "20")
	require.Equal(t, http.StatusOK, resp.status)
	assert.Greater(t, strings.Count(string(resp.body), `"usage":{`), 20, "continuous usage on every chunk")
	cost, _, _, _ := s.lastReport()
	assert.Equal(t, int64(expectedStreamCost(model, 9, 20)), cost, "the last usage wins")
	total += expectedStreamCost(model, 9, 20)

	st := s.counters(map[string]string{"tenant": "acme", "model": model})
	assert.Equal(t, total, st[0].Committed)
	assert.Zero(t, st[0].Reserved)
}

// TestStreamAborts checks every way a stream can end early: nothing stays
// reserved, and the charge follows behaviour.md. A stream whose
// reservation grows carries vLLM's running usage on every chunk and is
// charged it, as reported; one that does not grow (limits.streams.grow:
// false) is charged one token per content event seen, estimated.
func TestStreamAborts(t *testing.T) {
	for _, grow := range []bool{true, false} {
		t.Run(fmt.Sprintf("grow=%v", grow), func(t *testing.T) { testStreamAborts(t, grow) })
	}
}

func testStreamAborts(t *testing.T, grow bool) {
	streamConfig := streamConfig
	if !grow {
		streamConfig += "limits:\n  streams:\n    grow: false\n"
	}
	model := "meta-llama/Llama-3.1-8B"
	body := streamRequest("/v1/chat/completions", model, false)
	committed := func(s *stack) money.Nano {
		st := s.counters(map[string]string{"tenant": "acme", "model": model})
		return st[0].Committed
	}
	settled := func(s *stack) bool {
		st := s.counters(map[string]string{"tenant": "acme", "model": model})
		return st[0].Reserved == 0 && len(s.reports.all()) == 1
	}

	t.Run("client abort before the upstream answers", func(t *testing.T) {
		s := newStackWith(t, streamConfig, fakevllm.Config{Latency: 2 * time.Second}, stackOptions{streamThrough: true})
		ctx, cancel := context.WithCancel(context.Background())
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.proxy.URL()+"/v1/chat/completions", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("x-tenant-id", "acme")
		go func() {
			require.Eventually(t, func() bool { return s.vllm.Count() == 1 }, 5*time.Second, time.Millisecond)
			cancel()
		}()
		_, err = http.DefaultClient.Do(req)
		require.Error(t, err)
		require.Eventually(t, func() bool { return settled(s) }, 10*time.Second, 5*time.Millisecond)
		assert.Zero(t, committed(s), "nothing charged")
	})

	t.Run("client abort mid-stream", func(t *testing.T) {
		s := newStackWith(t, streamConfig, fakevllm.Config{CompletionTokens: 200}, stackOptions{streamThrough: true})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.proxy.URL()+"/v1/chat/completions", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("x-tenant-id", "acme")
		req.Header.Set(fakevllm.HeaderEventDelayMS, "20") // 200 events: seconds of stream
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		r := bufio.NewReader(resp.Body)
		for range 3 { // read a few events, then hang up
			_, err := r.ReadString('\n')
			require.NoError(t, err)
		}
		cancel()
		resp.Body.Close()
		require.Eventually(t, func() bool { return settled(s) }, 10*time.Second, 5*time.Millisecond)
		rep := s.reports.all()[0]
		assert.True(t, rep.GetAborted())
		assert.Equal(t, int64(committed(s)), rep.GetCostNanoUsd())
		assert.Equal(t, !grow, rep.GetEstimated())
		assert.Positive(t, rep.GetCompletionTokens(), "one token per content event seen, or the running usage")
		assert.Less(t, rep.GetCompletionTokens(), int64(200))
		assert.Positive(t, committed(s), "a stream the upstream served is charged")
	})

	t.Run("upstream reset mid-stream", func(t *testing.T) {
		s := newStackWith(t, streamConfig, fakevllm.Config{}, stackOptions{streamThrough: true})
		resp := s.postRaw("/v1/chat/completions", body, "x-tenant-id", "acme", fakevllm.HeaderAbortAfterEvents, "6")
		assert.Error(t, resp.err, "the client sees a cut body")
		require.Eventually(t, func() bool { return settled(s) }, 10*time.Second, 5*time.Millisecond)
		rep := s.reports.all()[0]
		assert.Equal(t, !grow, rep.GetEstimated())
		// Six events: the role chunk and five words, one token each.
		assert.Equal(t, int64(5), rep.GetCompletionTokens())
		assert.Equal(t, int64(committed(s)), rep.GetCostNanoUsd())
	})

	t.Run("mid-stream error event", func(t *testing.T) {
		s := newStackWith(t, streamConfig, fakevllm.Config{}, stackOptions{streamThrough: true})
		resp := s.postRaw("/v1/chat/completions", body, "x-tenant-id", "acme", fakevllm.HeaderErrorAfterEvents, "4")
		require.NoError(t, resp.err)
		assert.Contains(t, resp.body, `data: {"error":`)
		require.Eventually(t, func() bool { return settled(s) }, 10*time.Second, 5*time.Millisecond)
		rep := s.reports.all()[0]
		assert.Equal(t, !grow, rep.GetEstimated())
		assert.Equal(t, int64(4), rep.GetCompletionTokens(), "one token per content event seen, or the running usage")
	})
}

type rawResponse struct {
	status int
	body   string
	err    error // error reading the body (a cut stream)
}

// postRaw is post for responses that may be cut: it reports the read error
// instead of failing.
func (s *stack) postRaw(path, body string, headers ...string) rawResponse {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.proxy.URL()+path, strings.NewReader(body))
	require.NoError(s.t, err)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return rawResponse{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return rawResponse{status: resp.StatusCode, body: string(b), err: err}
}
