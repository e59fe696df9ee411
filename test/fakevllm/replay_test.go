package fakevllm

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReplayReturnsTheFixtureByteForByte(t *testing.T) {
	tests := []struct {
		fixture, path string
		status        int
		wantType      string
	}{
		{"vllm-chat.json", "/v1/chat/completions", 200, contentTypeJSON},
		{"vllm-completion.json", "/v1/completions", 200, contentTypeJSON},
		{"vllm-embeddings.json", "/v1/embeddings", 200, contentTypeJSON},
		{"vllm-error-400.json", "/v1/chat/completions", 400, contentTypeJSON},
		{"openai-chat.json", "/v1/chat/completions", 200, contentTypeJSON},
		{"openai-completion.json", "/v1/completions", 200, contentTypeJSON},
		{"openai-embeddings.json", "/v1/embeddings", 200, contentTypeJSON},
		{"openai-error-404-model-not-found.json", "/v1/chat/completions", 404, contentTypeJSON},
		{"openai-chat-stream-usage.sse", "/v1/chat/completions", 200, contentTypeSSE},
		{"openai-chat-stream-no-usage.sse", "/v1/chat/completions", 200, contentTypeSSE},
		{"openai-completion-stream-usage.sse", "/v1/completions", 200, contentTypeSSE},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			want := readFixture(t, tt.fixture)
			s := New(Config{KnownModels: []string{"only-this"}})
			s.Replay(tt.path, tt.status, want)

			// Neither the body, the method nor the known models matter to a replay.
			rec := post(t, s, tt.path, `not json`)
			assert.Equal(t, tt.status, rec.Code)
			assert.Equal(t, tt.wantType, rec.Header().Get("Content-Type"))
			assert.True(t, bytes.Equal(want, rec.Body.Bytes()), "the body differs from %s", tt.fixture)
		})
	}
}

func TestReplayedEventsAreFlushedOneByOne(t *testing.T) {
	sse := readFixture(t, "openai-chat-stream-usage.sse")
	events := bytes.Count(sse, []byte("\n\n"))
	require.Greater(t, events, 2)

	s := New(Config{})
	s.Replay("/v1/chat/completions", 200, sse)
	rec := post(t, s, "/v1/chat/completions", `{}`)
	assert.GreaterOrEqual(t, rec.flushes, events)
	assert.Equal(t, string(sse), rec.Body.String())
}

func TestReplayQueuesPerPathThenGenerates(t *testing.T) {
	s := New(Config{})
	s.Replay("/v1/completions", 200, []byte(`{"first":1}`))
	s.Replay("/v1/completions", 503, []byte(`{"second":2}`))
	s.Replay("/metrics", 200, []byte(`{"any":"path"}`))

	rec := post(t, s, "/v1/chat/completions", `{"model":"m","messages":[]}`)
	assert.Contains(t, rec.Body.String(), `"object":"chat.completion"`, "another path is not replayed")

	rec = post(t, s, "/v1/completions", `{}`)
	assert.Equal(t, 200, rec.Code)
	assert.Equal(t, `{"first":1}`, rec.Body.String())

	rec = post(t, s, "/v1/completions", `{}`)
	assert.Equal(t, 503, rec.Code)
	assert.Equal(t, `{"second":2}`, rec.Body.String())

	rec = post(t, s, "/v1/completions", `{"model":"m","prompt":"a"}`)
	assert.Equal(t, 200, rec.Code)
	assert.Contains(t, rec.Body.String(), `"object":"text_completion"`, "the queue is empty: generated again")

	rec = do(t, s, http.MethodGet, "/metrics", "", nil)
	assert.Equal(t, `{"any":"path"}`, rec.Body.String(), "any path can be replayed")

	s.Replay("/v1/completions", 200, []byte(`{}`))
	s.Reset()
	rec = post(t, s, "/v1/completions", `{"model":"m","prompt":"a"}`)
	assert.Contains(t, rec.Body.String(), `"object":"text_completion"`, "Reset drops pending replays")
}

func TestReplayKeepsItsOwnCopy(t *testing.T) {
	body := []byte(`{"a":1}`)
	s := New(Config{})
	s.Replay("/v1/completions", 200, body)
	body[2] = 'X'
	assert.Equal(t, `{"a":1}`, post(t, s, "/v1/completions", `{}`).Body.String())
}
