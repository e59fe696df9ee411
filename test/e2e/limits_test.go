package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/cmd/spendguard/app"
	"github.com/spendguard/spendguard/test/fakevllm"
)

// limitsConfig is a cap no test here reaches.
var limitsConfig = fmt.Sprintf(capConfig, "1000")

// chatOfSize is a chat completion request of exactly n bytes.
func chatOfSize(t *testing.T, n int, stream bool) string {
	t.Helper()
	head := `{"model":"Hunyuan","max_tokens":100,"stream":` + map[bool]string{true: "true", false: "false"}[stream] +
		`,"messages":[{"role":"user","content":"`
	const tail = `"}]}`
	pad := n - len(head) - len(tail)
	require.Positive(t, pad)
	return head + strings.Repeat("lorem ipsum ", pad/12) + strings.Repeat("x", pad%12) + tail
}

// TestPromptAtEnvoyBufferLimitIsCharged sends a request body of exactly
// envoy/envoy.yaml's buffer limit (the largest Envoy forwards) through
// envoysim configured from that file to the real gRPC server: it is
// priced, admitted, forwarded and charged. With gRPC-Go's default 4 MiB
// receive limit it ended in RESOURCE_EXHAUSTED and a 500. The streaming
// request's body comes back rewritten (stream_options added), so the
// answer is larger than the body Envoy sent.
func TestPromptAtEnvoyBufferLimitIsCharged(t *testing.T) {
	s := newStackWith(t, limitsConfig, fakevllm.Config{}, stackOptions{shippedEnvoy: true})
	for _, stream := range []bool{false, true} {
		name := map[bool]string{false: "non-streaming", true: "streaming"}[stream]
		t.Run(name, func(t *testing.T) {
			body := chatOfSize(t, app.EnvoyBufferLimit, stream)
			require.Greater(t, len(body), 4<<20, "over gRPC-Go's default receive limit")
			before := len(s.reports.all())
			upBefore := s.vllm.Count()
			resp := s.post("/v1/chat/completions", body, "x-tenant-id", name,
				fakevllm.HeaderPromptTokens, "2000000", fakevllm.HeaderCompletionTokens, "100")
			require.Equal(t, http.StatusOK, resp.status, "%.300s", resp.body)

			reqs := s.vllm.Requests()
			require.Len(t, reqs, upBefore+1, "forwarded to the upstream")
			sent := reqs[len(reqs)-1].Body
			if stream {
				assert.Greater(t, len(sent), len(body), "stream_options was added")
				assert.Contains(t, string(sent), `"include_usage":true`)
			} else {
				assert.Equal(t, body, string(sent), "forwarded unchanged")
			}

			reps := s.reports.all()
			require.Len(t, reps, before+1)
			rep := reps[len(reps)-1]
			// 2,000,000 × 600 + 100 × 800 nano-USD.
			assert.Equal(t, int64(1_200_080_000), rep.GetCostNanoUsd())
			assert.False(t, rep.GetEstimated())
			st := s.counters(map[string]string{"tenant": name, "model": "Hunyuan"})
			require.Len(t, st, 1)
			assert.EqualValues(t, 1_200_080_000, st[0].Committed, "charged")
			assert.Zero(t, st[0].Reserved, "no reservation left")
		})
	}
}

// TestBodyOverEnvoyBufferLimitIs413 sends one byte more than the buffer
// limit: Envoy answers 413 itself, and envoy.yaml's local_reply_config
// gives it OpenAI's error shape. Nothing reaches the upstream, nothing is
// charged or left reserved.
func TestBodyOverEnvoyBufferLimitIs413(t *testing.T) {
	s := newStackWith(t, limitsConfig, fakevllm.Config{}, stackOptions{shippedEnvoy: true})
	resp := s.post("/v1/chat/completions", chatOfSize(t, app.EnvoyBufferLimit+1, false), "x-tenant-id", "acme")
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.status, "%.300s", resp.body)
	assert.Equal(t, "application/json", resp.header.Get("content-type"))
	var e struct {
		Error struct {
			Message, Type, Code string
		}
	}
	require.NoError(t, json.Unmarshal(resp.body, &e), "%s", resp.body)
	assert.Equal(t, "invalid_request_error", e.Error.Type)
	assert.Equal(t, "request_too_large", e.Error.Code)
	assert.Contains(t, e.Error.Message, "8388608 bytes")
	assert.Zero(t, s.vllm.Count(), "the upstream never saw it")

	for _, r := range s.reports.all() {
		assert.Zero(t, r.GetCostNanoUsd(), "nothing is charged for Envoy's own 413")
	}
	st := s.counters(map[string]string{"tenant": "acme", "model": "Hunyuan"})
	require.Len(t, st, 1)
	assert.Zero(t, st[0].Committed)
	assert.Zero(t, st[0].Reserved)

	// The stack still serves.
	resp = s.post("/v1/chat/completions", smallChat, "x-tenant-id", "acme")
	assert.Equal(t, http.StatusOK, resp.status)
}

// TestMessageOverSpendguardLimit is the drift the two limits must not
// have: Envoy buffers more than spendguard accepts. The request fails
// closed (Envoy's status_on_error, 500), spendguard logs what to raise,
// and no money is reserved or charged.
func TestMessageOverSpendguardLimit(t *testing.T) {
	logs := &lockedBuffer{}
	s := newStackWith(t, limitsConfig, fakevllm.Config{}, stackOptions{shippedEnvoy: true, grpcMaxMessageBytes: 1 << 20, logs: logs})
	resp := s.post("/v1/chat/completions", chatOfSize(t, 2<<20, false), "x-tenant-id", "acme")
	assert.Equal(t, http.StatusInternalServerError, resp.status)
	assert.Zero(t, s.vllm.Count(), "fail closed: the upstream never saw it")
	assert.Contains(t, logs.String(), "larger than --grpc-max-message-bytes")
	assert.Contains(t, logs.String(), `"grpc_max_message_bytes":1048576`)
	st := s.counters(map[string]string{"tenant": "acme", "model": "Hunyuan"})
	require.Len(t, st, 1)
	assert.Zero(t, st[0].Committed)
	assert.Zero(t, st[0].Reserved)
}
