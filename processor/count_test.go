package processor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget/memstore"
	"github.com/spendguard/spendguard/config"
	"github.com/spendguard/spendguard/pricing"
	"github.com/spendguard/spendguard/pricing/tokencount"
	"github.com/spendguard/spendguard/processor"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
)

// tokenizeServer is a /tokenize stand-in speaking vLLM's wire format
// ({"count":N,"max_model_len":M,"tokens":[…]}). Its tokenizer is one token
// per whitespace-separated word; a chat prompt adds two per message and
// one for the generation prompt (its "template").
type tokenizeServer struct {
	*httptest.Server
	calls   atomic.Int64
	release chan struct{} // when set, answers wait for it to close
	mu      sync.Mutex
	got     []map[string]any
}

func newTokenizeServer(t testing.TB, release chan struct{}) *tokenizeServer {
	ts := &tokenizeServer{release: release}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.calls.Add(1)
		var req map[string]any
		if r.URL.Path != "/tokenize" || json.NewDecoder(r.Body).Decode(&req) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		ts.mu.Lock()
		ts.got = append(ts.got, req)
		ts.mu.Unlock()
		if ts.release != nil {
			<-ts.release
		}
		n := 0
		if p, ok := req["prompt"].(string); ok {
			n = len(strings.Fields(p))
		} else {
			msgs, _ := req["messages"].([]any)
			for _, m := range msgs {
				mm, _ := m.(map[string]any)
				content, _ := mm["content"].(string)
				n += 2 + len(strings.Fields(content))
			}
			n++
		}
		toks := make([]int, n)
		w.Header().Set("content-type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"count": n, "max_model_len": 32768, "tokens": toks})
	}))
	t.Cleanup(ts.Close)
	return ts
}

// countHarness serves testConfig with pricing.tokenizer at url ("" for
// none), the tokenizer started as the app starts it.
func countHarness(t *testing.T, url string, timeout string) *harness {
	t.Helper()
	yaml := testConfig
	if url != "" {
		yaml = strings.Replace(testConfig, "  default_max_output_tokens: 1000\n",
			fmt.Sprintf("  default_max_output_tokens: 1000\n  tokenizer:\n    url: %s\n    timeout: %s\n", url, timeout), 1)
	}
	cfg, err := config.Parse([]byte(yaml))
	require.NoError(t, err)
	h := serveHarness(t, cfg, cfg.Snapshot, memstore.New())
	if s := cfg.Snapshot.Pricing.Tokenizer(); s.Enabled() {
		c := tokencount.New(s, nil)
		t.Cleanup(c.Close)
		h.srv.SetTokenizer(c)
	}
	return h
}

func chatEvent(content string) []byte {
	return []byte(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"Hunyuan","choices":[{"index":0,"delta":{"content":` +
		strings.TrimSpace(string(mustJSON(content))) + `},"logprobs":null,"finish_reason":null}]}` + "\n\n")
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// abortedChat streams two content events (five words: "Hello big world"
// and " once more") and then the client goes away.
func abortedChat(h *harness) *spendguardv1.CostReport {
	h.t.Helper()
	s, cancel := h.open()
	h.roundTrip(s, reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"))
	h.roundTrip(s, reqBody(chatBody))
	h.roundTrip(s, respHeadersCT("200", "text/event-stream"))
	h.roundTrip(s, respBody(chatEvent("Hello big world"), false))
	h.roundTrip(s, respBody(chatEvent(" once more"), false))
	require.NoError(h.t, s.CloseSend())
	cancel()
	h.eventually(func() bool { c := h.spend("acme"); return c.Reserved == 0 && c.Committed > 0 })
	select {
	case rep := <-h.reports:
		return rep
	case <-time.After(5 * time.Second):
		h.t.Fatal("no report")
		return nil
	}
}

func countedCost(t *testing.T, h *harness, u pricing.Usage) int64 {
	t.Helper()
	p, ok := h.cfg.Snapshot.Pricing.Lookup("Hunyuan")
	require.True(t, ok)
	return int64(p.Cost(u).Total)
}

// chatPromptCount is the stand-in's count of chatBody's prompt: one
// message (2) + "Write a short introduction to LLMs" (6) + generation
// prompt (1).
const chatPromptCount = 9

func TestAbortedStreamIsChargedTheCountedUsage(t *testing.T) {
	ts := newTokenizeServer(t, nil)
	h := countHarness(t, ts.URL, "5s")
	rep := abortedChat(h)

	assert.True(t, rep.GetAborted())
	assert.Equal(t, int64(chatPromptCount), rep.GetPromptTokens(), "the prompt is vLLM's count, template applied")
	assert.Equal(t, int64(5), rep.GetCompletionTokens(), "the delivered text, counted (an estimate would say 2: one per event)")
	assert.Equal(t, spendguardv1.UsageSource_USAGE_SOURCE_COUNTED, rep.GetUsageSource())
	assert.False(t, rep.GetEstimated())
	want := countedCost(t, h, pricing.Usage{Prompt: rep.GetPromptTokens(), Completion: rep.GetCompletionTokens()})
	assert.Equal(t, want, rep.GetCostNanoUsd())
	assert.Equal(t, want, int64(h.spend("acme").Committed), "charged exactly the counted usage")

	ts.mu.Lock()
	defer ts.mu.Unlock()
	require.Len(t, ts.got, 2, "the prompt and the delivered text")
	var chat, text map[string]any
	for _, g := range ts.got {
		if _, ok := g["messages"]; ok {
			chat = g
		} else {
			text = g
		}
	}
	require.NotNil(t, chat)
	require.NotNil(t, text)
	assert.Equal(t, "Hello big world once more", text["prompt"])
	assert.Equal(t, false, text["add_special_tokens"])
	assert.Equal(t, "Hunyuan", chat["model"])
	assert.Equal(t, []any{map[string]any{"role": "user", "content": "Write a short introduction to LLMs"}}, chat["messages"])
	assert.NotContains(t, chat, "max_tokens", "only what /tokenize takes")
}

func TestTokenizerDownChargesTheEstimate(t *testing.T) {
	ts := newTokenizeServer(t, nil)
	url := ts.URL
	ts.Close()
	down := abortedChat(countHarness(t, url, "1s"))
	plain := abortedChat(countHarness(t, "", ""))

	assert.Equal(t, spendguardv1.UsageSource_USAGE_SOURCE_ESTIMATED, down.GetUsageSource())
	assert.True(t, down.GetEstimated())
	assert.Equal(t, plain.GetPromptTokens(), down.GetPromptTokens(), "the same estimate as without a tokenizer")
	assert.Equal(t, plain.GetCompletionTokens(), down.GetCompletionTokens())
	assert.Equal(t, plain.GetCostNanoUsd(), down.GetCostNanoUsd())
	assert.Equal(t, spendguardv1.UsageSource_USAGE_SOURCE_ESTIMATED, plain.GetUsageSource())
}

func TestSlowTokenizerIsWaitedForAtMostItsTimeout(t *testing.T) {
	release := make(chan struct{})
	ts := newTokenizeServer(t, release)
	defer close(release)
	rep := abortedChat(countHarness(t, ts.URL, "100ms"))
	assert.Equal(t, spendguardv1.UsageSource_USAGE_SOURCE_ESTIMATED, rep.GetUsageSource())
	assert.True(t, rep.GetEstimated())
	assert.Positive(t, ts.calls.Load(), "it was asked")
}

func TestReportedUsageIsNeverCounted(t *testing.T) {
	ts := newTokenizeServer(t, nil)
	h := countHarness(t, ts.URL, "5s")
	s, cancel := h.open()
	defer cancel()
	h.roundTrip(s, reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"))
	h.roundTrip(s, reqBody(`{"model":"Hunyuan","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	h.roundTrip(s, respHeadersCT("200", "text/event-stream"))
	h.roundTrip(s, respBody(chatEvent("Hello"), false))
	h.roundTrip(s, respBody([]byte(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"Hunyuan","choices":[],"usage":{"prompt_tokens":12,"total_tokens":13,"completion_tokens":1}}`+"\n\ndata: [DONE]\n\n"), true))
	require.NoError(t, s.CloseSend())
	rep := <-h.reports
	assert.Equal(t, spendguardv1.UsageSource_USAGE_SOURCE_REPORTED, rep.GetUsageSource())
	assert.Equal(t, int64(12), rep.GetPromptTokens())
	assert.False(t, rep.GetAborted())
	assert.Zero(t, ts.calls.Load(), "a stream with usage never calls /tokenize")
}

// TestCountingNeverDelaysTheLastChunk: an embeddings answer without usage
// (vLLM's bytes_only has none) is counted after the stream; the answer to
// its last chunk does not wait for the count, and the count is exact.
func TestCountingNeverDelaysTheLastChunk(t *testing.T) {
	release := make(chan struct{})
	ts := newTokenizeServer(t, release)
	h := countHarness(t, ts.URL, "5s")
	s, cancel := h.open()
	defer cancel()
	h.roundTrip(s, reqHeaders("/v1/embeddings", "x-tenant-id", "acme"))
	h.roundTrip(s, reqBody(`{"model":"Hunyuan","input":["one two three","four five"]}`))
	h.roundTrip(s, respHeaders("200"))
	resp := h.roundTrip(s, respBody([]byte(`{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1]}],"model":"Hunyuan"}`), true))
	require.NotNil(t, resp.GetResponseBody(), "the last chunk was answered")
	require.NoError(t, s.CloseSend())
	require.Eventually(t, func() bool { return ts.calls.Load() == 2 }, 5*time.Second, time.Millisecond, "the counts run after the stream")
	assert.Empty(t, h.reports, "not settled while the count runs")
	assert.Positive(t, h.spend("acme").Reserved)
	close(release)

	rep := <-h.reports
	assert.Equal(t, spendguardv1.UsageSource_USAGE_SOURCE_COUNTED, rep.GetUsageSource())
	assert.False(t, rep.GetEstimated())
	assert.False(t, rep.GetAborted(), "it completed; only its usage was missing")
	assert.Equal(t, int64(5), rep.GetPromptTokens())
	assert.Zero(t, rep.GetCompletionTokens())
	h.eventually(func() bool { c := h.spend("acme"); return c.Reserved == 0 })
	assert.Equal(t, countedCost(t, h, pricing.Usage{Prompt: 5}), int64(h.spend("acme").Committed))
}

// TestSetTokenizerNilTurnsCountingOff: a reload that removes the
// tokenizer leaves later streams estimated, without calls.
func TestSetTokenizerNilTurnsCountingOff(t *testing.T) {
	ts := newTokenizeServer(t, nil)
	h := countHarness(t, ts.URL, "5s")
	h.srv.SetTokenizer(nil)
	rep := abortedChat(h)
	assert.Equal(t, spendguardv1.UsageSource_USAGE_SOURCE_ESTIMATED, rep.GetUsageSource())
	assert.Zero(t, ts.calls.Load())
}

var _ processor.Tokenizer = (*tokencount.Client)(nil)

// panickyTokenizer panics in every count.
type panickyTokenizer struct{ s tokencount.Settings }

func (p panickyTokenizer) ChatPrompt(context.Context, string, []byte) *tokencount.Count {
	panic("tokenizer bug")
}
func (p panickyTokenizer) Prompts(context.Context, string, string, []byte) *tokencount.Count {
	panic("tokenizer bug")
}
func (p panickyTokenizer) ChatMessages(context.Context, string, tokencount.ChatInput) *tokencount.Count {
	panic("tokenizer bug")
}
func (p panickyTokenizer) Text(context.Context, string, []byte) *tokencount.Count {
	panic("tokenizer bug")
}
func (p panickyTokenizer) Settings() tokencount.Settings { return p.s }

// TestPanicWhileCountingStillSettles: the reservation is settled with the
// estimate, whatever the tokenizer does.
func TestPanicWhileCountingStillSettles(t *testing.T) {
	h := countHarness(t, "", "")
	h.srv.SetTokenizer(panickyTokenizer{s: tokencount.Settings{Timeout: time.Second}})
	rep := abortedChat(h)
	assert.Equal(t, spendguardv1.UsageSource_USAGE_SOURCE_ESTIMATED, rep.GetUsageSource())
	assert.Equal(t, int64(1), h.srv.Panics(), "recovered and counted")
	assert.Zero(t, h.spend("acme").Reserved)
}

// FuzzStreamSequencesCounted is FuzzStreamSequences with a tokenizer:
// whatever the order of messages, counting never leaks a reservation,
// never panics, and never turns a served request free.
func FuzzStreamSequencesCounted(f *testing.F) {
	ts := newTokenizeServer(f, nil)
	c := tokencount.New(tokencount.Settings{Endpoint: ts.URL + "/tokenize", Timeout: 2 * time.Second, Queue: 64, Workers: 2, CacheEntries: 64}, nil)
	f.Cleanup(c.Close)
	fuzzStreamSequences(f, func(srv *processor.Server) { srv.SetTokenizer(c) })
}
