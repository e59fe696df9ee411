package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/jackc/pgx/v5"
	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/pricing"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
	"github.com/spendguard/spendguard/test/fakevllm"
	"github.com/spendguard/spendguard/test/pgtest"
	"github.com/spendguard/spendguard/test/redistest"
)

// Issue 19's measurements: reservations that fit what requests are likely
// to cost, grow while streams run, and stop a stream at the cap. Every
// test below runs through envoysim in the shipped mode (response bodies
// FULL_DUPLEX_STREAMED) against the fake vLLM, whose answers run to a
// given length (x-fake-stop-after-tokens) as a model that stops by itself.

// growthConfig: Hunyuan at 0.60 and 0.80 USD per million tokens; the
// tenant cap, the default output limit, whether streams grow and the
// store are filled in.
const growthConfig = `
version: 1
identity:
  dimensions:
    tenant:
      - header: x-tenant-id
pricing:
  models:
    - {match: Hunyuan, input: 0.60, output: 0.80}
  default_max_output_tokens: %d
budgets:
  - name: tenant-daily
    match: {tenant: "*"}
    period: day
    hard_usd: %s
limits:
  streams:
    grow: %v
    estimate: {min_samples: 20}
%s
`

const growthBody = `{"model":"Hunyuan","messages":[{"role":"user","content":"Tell me a long story"}]%s}`

// growthWorst is what a growthBody request is reserved for at its worst
// case with the default output limit def.
func growthWorst(t *testing.T, def int64) money.Nano {
	t.Helper()
	req, err := pricing.ParseRequest(pricing.ChatCompletions, []byte(fmt.Sprintf(growthBody, "")))
	require.NoError(t, err)
	w := req.WorstCase(def)
	return money.Nano(w.Prompt*600 + w.Completion*800)
}

// burst sends n requests at once and returns their statuses; each
// request's extra headers come from hdr(i).
func burst(t *testing.T, s *stack, n int, body string, hdr func(i int) []string) []int {
	t.Helper()
	statuses := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, err := http.NewRequest(http.MethodPost, s.proxy.URL()+"/v1/chat/completions", strings.NewReader(body))
			if err != nil {
				return
			}
			req.Header.Set("content-type", "application/json")
			req.Header.Set("x-tenant-id", "acme")
			h := hdr(i)
			for k := 0; k+1 < len(h); k += 2 {
				req.Header.Set(h[k], h[k+1])
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	close(start)
	wg.Wait()
	return statuses
}

func count(statuses []int, status int) int {
	n := 0
	for _, s := range statuses {
		if s == status {
			n++
		}
	}
	return n
}

// answered counts the requests spendguard answered (served or refused
// with 402), each of which is reported; any other status (an Envoy 504
// when the machine is too loaded for the message timeout) is logged.
func answered(t *testing.T, statuses []int) int {
	n := count(statuses, http.StatusOK) + count(statuses, http.StatusPaymentRequired)
	if n != len(statuses) {
		t.Logf("%d of %d requests got neither 200 nor 402: %v", len(statuses)-n, len(statuses), statuses)
	}
	return n
}

// settledSpend waits for n reports and for nothing to stay reserved, and
// returns the tenant's committed spend and the reports' sum.
func settledSpend(t *testing.T, s *stack, n int) (committed, reported money.Nano, reps []*spendguardv1.CostReport) {
	t.Helper()
	var last budget.Counter
	settled := func() bool {
		st := s.counters(map[string]string{"tenant": "acme", "model": "Hunyuan"})
		last = st[0].Counter
		return len(s.reports.all()) >= n && last.Reserved == 0
	}
	deadline := time.Now().Add(60 * time.Second)
	for !settled() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	require.True(t, settled(), "%d of %d reports; counter %+v", len(s.reports.all()), n, last)
	reps = s.reports.all()
	for _, r := range reps {
		reported += money.Nano(r.GetCostNanoUsd())
	}
	st := s.counters(map[string]string{"tenant": "acme", "model": "Hunyuan"})
	return st[0].Committed, reported, reps
}

// TestNoOvershootWithoutMaxTokens: 200 concurrent requests without
// max_tokens, whose upstream generates 1,000 tokens each, against a cap
// that fits 10 of them at the default output limit (100 tokens): what is
// spent stays within the cap, streamed or not, on the memory and the
// Redis store. (Before issue 19: 100 admitted, 10 times the cap spent.)
func TestNoOvershootWithoutMaxTokens(t *testing.T) {
	const def = 100
	capUSD := (10 * growthWorst(t, def)).Fixed(9)
	for _, backend := range []string{"memory", "redis"} {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%v", backend, stream), func(t *testing.T) {
				store := "store:\n  backend: memory\n"
				if backend == "redis" {
					_, prefix := redistest.Shared(t)
					store = fmt.Sprintf("store:\n  backend: redis\n  redis:\n    address: %s\n    key_prefix: %q\n    timeout: 5s\n", redistest.SharedAddr, prefix)
				}
				s := newStackWith(t, fmt.Sprintf(growthConfig, def, capUSD, true, store),
					fakevllm.Config{StopAfterTokens: 1000}, stackOptions{streamThrough: true})
				extra := ""
				if stream {
					extra = `,"stream":true`
				}
				statuses := burst(t, s, 200, fmt.Sprintf(growthBody, extra), func(int) []string { return nil })
				admitted := count(statuses, http.StatusOK)
				assert.Equal(t, 200, admitted+count(statuses, http.StatusPaymentRequired), "every request is served or refused with 402")
				assert.Positive(t, admitted)

				committed, reported, reps := settledSpend(t, s, 200)
				capNano := 10 * growthWorst(t, def)
				assert.LessOrEqual(t, committed, capNano, "spent within the cap")
				assert.Equal(t, committed, reported, "the store holds what the reports charged")
				cuts := 0
				for _, r := range reps {
					if r.GetCut() {
						cuts++
					}
				}
				if stream {
					assert.Positive(t, cuts, "streams running past the cap are cut")
				} else {
					assert.Zero(t, cuts)
				}
				t.Logf("%s stream=%v: %d admitted, %d cut, spent %s of %s USD", backend, stream, admitted, cuts, committed.Fixed(6), capNano.Fixed(6))
			})
		}
	}
}

// TestStreamsReserveWhatTheyAreLikelyToCost: a cap that fits 10 streaming
// requests at a 4,096-token worst case, traffic whose answers are 200
// tokens long: once the learned estimate knows that, at least 5 times as
// many streams are admitted at once as when every stream reserves its
// worst case (limits.streams.grow: false), and the spend stays within the
// cap. The same traffic with one answer running to 4,096 tokens is cut at
// the cap, not overspent.
func TestStreamsReserveWhatTheyAreLikelyToCost(t *testing.T) {
	const def = 4096
	capNano := 10 * growthWorst(t, def)
	capUSD := capNano.Fixed(9)
	stream := fmt.Sprintf(growthBody, `,"stream":true`)
	short := func(int) []string {
		// 200 tokens, one event each 5 ms: a second or more per stream,
		// so the burst's streams are all in flight together.
		return []string{fakevllm.HeaderStopAfterTokens, "200", fakevllm.HeaderEventDelayMS, "5"}
	}

	warm := func(t *testing.T, s *stack) {
		t.Helper()
		for range 25 {
			resp := s.post("/v1/chat/completions", stream, "x-tenant-id", "warmup", fakevllm.HeaderStopAfterTokens, "200")
			require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		}
		require.Eventually(t, func() bool {
			tokens, _, ok := s.sg.Estimates.Estimate("Hunyuan", pricing.ChatCompletions.String())
			return ok && tokens == 200
		}, 10*time.Second, 20*time.Millisecond, "the estimate learns the 200-token answers")
	}

	baseline := newStackWith(t, fmt.Sprintf(growthConfig, def, capUSD, false, ""), fakevllm.Config{}, stackOptions{streamThrough: true})
	first := burst(t, baseline, 100, stream, short)
	before := count(first, http.StatusOK)
	spent, _, _ := settledSpend(t, baseline, answered(t, first))
	assert.LessOrEqual(t, spent, capNano)

	s := newStackWith(t, fmt.Sprintf(growthConfig, def, capUSD, true, ""), fakevllm.Config{}, stackOptions{streamThrough: true})
	warm(t, s)
	second := burst(t, s, 100, stream, short)
	after := count(second, http.StatusOK)
	spent, _, _ = settledSpend(t, s, 25+answered(t, second))
	assert.LessOrEqual(t, spent, capNano)
	t.Logf("admitted at once: %d reserving the worst case, %d reserving the learned estimate", before, after)
	require.Positive(t, before)
	assert.GreaterOrEqual(t, after, 5*before, "at least 5 times as many admitted at once")

	// The same traffic, 190 streams, one of which runs to 4,096 tokens:
	// together more than the cap. The long one is admitted first, then
	// the others come while it streams. Whatever is cut, the cap holds,
	// and the long one is cut.
	s = newStackWith(t, fmt.Sprintf(growthConfig, def, capUSD, true, ""), fakevllm.Config{}, stackOptions{streamThrough: true})
	warm(t, s)
	runaway := make(chan int, 1)
	go func() {
		runaway <- burst(t, s, 1, stream, func(int) []string {
			return []string{fakevllm.HeaderStopAfterTokens, "4096", fakevllm.HeaderEventDelayMS, "1", "x-request-id", "runaway"}
		})[0]
	}()
	require.Eventually(t, func() bool { return s.vllm.Count() == 26 }, 10*time.Second, time.Millisecond, "the long stream reached the upstream")
	// The burst's answers run a little past what was learned (225 tokens
	// against 200), so that together they and the long one need more than
	// the cap even if every short one finished first: the long one cannot
	// run to its end.
	statuses := burst(t, s, 189, stream, func(int) []string {
		return []string{fakevllm.HeaderStopAfterTokens, "225", fakevllm.HeaderEventDelayMS, "5"}
	})
	require.Equal(t, http.StatusOK, <-runaway)
	spent, _, reps := settledSpend(t, s, 25+1+answered(t, statuses))
	assert.LessOrEqual(t, spent, capNano, "not overspent")
	found, cuts := false, 0
	for _, r := range reps {
		if r.GetCut() {
			cuts++
		}
		if r.GetRequestId() == "runaway" {
			found = true
			assert.True(t, r.GetCut(), "the runaway is cut at the cap")
			assert.Less(t, r.GetCompletionTokens(), int64(4096))
			t.Logf("the runaway was cut after %d tokens; %d streams cut in all, %d of 190 admitted, spent %s of %s USD",
				r.GetCompletionTokens(), cuts, count(statuses, http.StatusOK)+1, spent.Fixed(6), capNano.Fixed(6))
		}
	}
	assert.True(t, found, "the runaway's report")
}

// TestStreamCutAtTheCap: a stream running past its budget is stopped with
// the endpoint's final error event; the upstream sees its client go away
// (vLLM aborts the generation); the ledger marks the request cut; and the
// OpenAI and Anthropic SDKs surface the error.
func TestStreamCutAtTheCap(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	const def = 100
	capNano := 3 * growthWorst(t, def)
	exporters := fmt.Sprintf("store:\n  backend: memory\nexporters:\n  batch_size: 1\n  postgres:\n    dsn: %q\n", dsn)
	s := newStackWith(t, fmt.Sprintf(growthConfig, def, capNano.Fixed(9), true, exporters),
		fakevllm.Config{StopAfterTokens: 100_000}, stackOptions{streamThrough: true})

	resp := s.postRaw("/v1/chat/completions", fmt.Sprintf(growthBody, `,"stream":true`), "x-tenant-id", "acme",
		fakevllm.HeaderEventDelayMS, "1", "x-request-id", "cut-1")
	require.NoError(t, resp.err, "a clean end of the response, not a reset")
	require.Equal(t, http.StatusOK, resp.status)
	evs := strings.Split(strings.TrimSuffix(resp.body, "\n\n"), "\n\n")
	require.GreaterOrEqual(t, len(evs), 3)
	assert.Equal(t, "data: [DONE]", evs[len(evs)-1])
	assert.Contains(t, evs[len(evs)-2], `"type":"budget_exceeded"`)
	assert.NotContains(t, resp.body, `"usage"`)
	delivered := int64(strings.Count(resp.body, `"delta":{"content":"`)) // one token per content chunk

	require.Eventually(t, func() bool { return s.vllm.Disconnects() == 1 }, 10*time.Second, 5*time.Millisecond,
		"the upstream request was reset: vLLM stops generating")
	committed, _, reps := settledSpend(t, s, 1)
	rep := reps[0]
	assert.True(t, rep.GetCut())
	assert.Equal(t, "tenant-daily", rep.GetBudget())
	assert.Equal(t, delivered, rep.GetCompletionTokens(), "charged what was delivered")
	assert.LessOrEqual(t, committed, capNano)
	assert.Equal(t, int64(committed), rep.GetCostNanoUsd())

	require.Eventually(t, func() bool {
		rows := queryRows(t, dsn, "SELECT request_id || ':' || cut::text FROM spendguard_ledger", func(r pgx.CollectableRow) (string, error) {
			var s string
			return s, r.Scan(&s)
		})
		return len(rows) == 1 && rows[0] == "cut-1:true"
	}, 30*time.Second, 50*time.Millisecond, "the ledger marks the request cut")

	// The SDKs see the final event as an error. A fresh tenant each: its
	// own cap.
	ctx := context.Background()
	oc := s.openaiClient("openai-sdk")
	st := oc.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model:    "Hunyuan",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Tell me a long story")},
	})
	chunks := 0
	for st.Next() {
		chunks++
	}
	require.Error(t, st.Err(), "the OpenAI SDK raises the error event")
	assert.Contains(t, st.Err().Error(), "budget")
	assert.Positive(t, chunks)

	ac := s.anthropicClient("anthropic-sdk")
	ms := ac.Messages.NewStreaming(ctx, anthropic.MessageNewParams{
		Model: "Hunyuan", MaxTokens: 100_000,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Tell me a long story"))},
	})
	for ms.Next() {
	}
	require.Error(t, ms.Err(), "the Anthropic SDK raises the error event")
	assert.Contains(t, ms.Err().Error(), "billing_error")
	require.Eventually(t, func() bool { return s.vllm.Disconnects() == 3 }, 10*time.Second, 5*time.Millisecond)
}
