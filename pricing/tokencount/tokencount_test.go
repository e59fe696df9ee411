package tokencount

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// vllm is a /tokenize stand-in speaking vLLM's wire format: it counts one
// token per whitespace-separated word of the prompt, or of the messages'
// contents plus two per message for the template (plus one for the
// generation prompt unless add_generation_prompt is false).
type vllm struct {
	t      *testing.T
	calls  atomic.Int64
	status int           // answer this status when set
	raw    string        // answer this body when set
	delay  time.Duration // wait before answering
	block  chan struct{} // wait for this to close before answering
	mu     sync.Mutex
	bodies []map[string]any
}

func (v *vllm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v.calls.Add(1)
	if r.URL.Path != "/tokenize" || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	var req map[string]any
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	v.mu.Lock()
	v.bodies = append(v.bodies, req)
	v.mu.Unlock()
	if v.block != nil {
		select {
		case <-v.block:
		case <-r.Context().Done():
			return
		}
	}
	if v.delay > 0 {
		select {
		case <-time.After(v.delay):
		case <-r.Context().Done():
			return
		}
	}
	if v.status != 0 {
		w.WriteHeader(v.status)
		_, _ = w.Write([]byte(`{"error":{"message":"boom","type":"InternalServerError","param":null,"code":500}}`))
		return
	}
	w.Header().Set("content-type", "application/json")
	if v.raw != "" {
		_, _ = w.Write([]byte(v.raw))
		return
	}
	n := fakeCount(req)
	toks := make([]int, n)
	for i := range toks {
		toks[i] = 100 + i
	}
	out, _ := json.Marshal(map[string]any{"count": n, "max_model_len": 4096, "tokens": toks})
	_, _ = w.Write(out)
}

// fakeCount is the stand-in's count of a decoded /tokenize request.
func fakeCount(req map[string]any) int {
	if p, ok := req["prompt"].(string); ok {
		return len(strings.Fields(p))
	}
	n := 0
	msgs, _ := req["messages"].([]any)
	for _, m := range msgs {
		n += 2
		switch c := m.(map[string]any)["content"].(type) {
		case string:
			n += len(strings.Fields(c))
		case []any:
			for _, p := range c {
				s, _ := p.(map[string]any)["text"].(string)
				n += len(strings.Fields(s))
			}
		}
	}
	if g, ok := req["add_generation_prompt"].(bool); !ok || g {
		n++
	}
	return n
}

func start(t *testing.T, v *vllm, s Settings) *Client {
	t.Helper()
	srv := httptest.NewServer(v)
	t.Cleanup(srv.Close)
	if s.Timeout == 0 {
		s.Timeout = 2 * time.Second
	}
	s.Endpoint = srv.URL + "/tokenize"
	s.Queue, s.Workers, s.CacheEntries = max(s.Queue, 8), max(s.Workers, 2), max(s.CacheEntries, 16)
	c := New(s, nil)
	t.Cleanup(c.Close)
	return c
}

func wait(t *testing.T, n *Count) (int64, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return n.Wait(ctx)
}

const chatBody = `{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hello there world"}]}],"tools":[{"type":"function","function":{"name":"f"}}],"chat_template_kwargs":{"enable_thinking":false},"add_special_tokens":null,"max_tokens":5}`

func TestChatPromptSendsTheMessagesAndOptions(t *testing.T) {
	v := &vllm{t: t}
	c := start(t, v, Settings{})
	n, err := wait(t, c.ChatPrompt(context.Background(), "served", []byte(chatBody)))
	require.NoError(t, err)
	assert.Equal(t, int64(2+2+2+3+1), n)
	require.Len(t, v.bodies, 1)
	got := v.bodies[0]
	assert.Equal(t, "served", got["model"])
	assert.Len(t, got["messages"], 2)
	assert.NotNil(t, got["tools"])
	assert.Equal(t, map[string]any{"enable_thinking": false}, got["chat_template_kwargs"])
	assert.NotContains(t, got, "add_special_tokens", "null keeps vLLM's default")
	assert.NotContains(t, got, "max_tokens")
}

func TestPromptsCountStringsAndTokenIDs(t *testing.T) {
	v := &vllm{t: t}
	c := start(t, v, Settings{})
	for _, tc := range []struct {
		name, body string
		field      string
		want       int64
		calls      int
	}{
		{"string", `{"prompt":"one two three","add_special_tokens":false}`, "prompt", 3, 1},
		{"list of strings", `{"prompt":["a b","c d e"]}`, "prompt", 5, 2},
		{"token ids", `{"prompt":[1,2,3,4]}`, "prompt", 4, 0},
		{"lists of token ids", `{"prompt":[[1,2],[3]]}`, "prompt", 3, 0},
		{"embedding input", `{"input":"x y"}`, "input", 2, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := v.calls.Load()
			n, err := wait(t, c.Prompts(context.Background(), "m", tc.field, []byte(tc.body)))
			require.NoError(t, err)
			assert.Equal(t, tc.want, n)
			assert.Equal(t, int64(tc.calls), v.calls.Load()-before)
		})
	}
	assert.Equal(t, false, v.bodies[0]["add_special_tokens"], "the request's add_special_tokens is passed on")
}

func TestUncountablePrompts(t *testing.T) {
	c := start(t, &vllm{t: t}, Settings{})
	for name, body := range map[string]string{
		"image part":     `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"http://x"}}]}]}`,
		"no messages":    `{"model":"m"}`,
		"messages items": `{"messages":{"a":1}}`,
		"not json":       `{"messages":[`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := wait(t, c.ChatPrompt(context.Background(), "m", []byte(body)))
			assert.ErrorIs(t, err, ErrUncountable)
		})
	}
	for name, body := range map[string]string{"object": `{"prompt":{}}`, "empty list": `{"prompt":[]}`, "absent": `{}`, "mixed": `{"prompt":[{"a":1}]}`} {
		t.Run(name, func(t *testing.T) {
			_, err := wait(t, c.Prompts(context.Background(), "m", "prompt", []byte(body)))
			assert.ErrorIs(t, err, ErrUncountable)
		})
	}
}

func TestTextHasNoSpecialTokensAndIsCopied(t *testing.T) {
	v := &vllm{t: t}
	c := start(t, v, Settings{})
	text := []byte("the quick brown fox")
	n := c.Text(context.Background(), "m", text)
	copy(text, "XXXXXXXXXXXXXXXXXXX") // the caller reuses its buffer at once
	got, err := wait(t, n)
	require.NoError(t, err)
	assert.Equal(t, int64(4), got)
	assert.Equal(t, false, v.bodies[0]["add_special_tokens"])
	assert.Equal(t, "the quick brown fox", v.bodies[0]["prompt"])

	got, err = wait(t, c.Text(context.Background(), "m", nil))
	require.NoError(t, err)
	assert.Zero(t, got, "no text is zero tokens without a call")
	assert.Equal(t, int64(1), v.calls.Load())
}

func TestCacheHit(t *testing.T) {
	v := &vllm{t: t}
	c := start(t, v, Settings{})
	for range 3 {
		n, err := wait(t, c.Text(context.Background(), "m", []byte("a b c")))
		require.NoError(t, err)
		assert.Equal(t, int64(3), n)
	}
	assert.Equal(t, int64(1), v.calls.Load(), "answered from the cache after the first call")
	assert.Equal(t, int64(2), c.Stats().Hits)
	// Another model or kind is another key.
	_, err := wait(t, c.Text(context.Background(), "other", []byte("a b c")))
	require.NoError(t, err)
	_, err = wait(t, c.Prompts(context.Background(), "m", "prompt", []byte(`{"prompt":"a b c"}`)))
	require.NoError(t, err)
	assert.Equal(t, int64(3), v.calls.Load())
}

func TestCacheIsBoundedAndLRU(t *testing.T) {
	c := newCache(2)
	k := func(s string) key { return keyOf(query{model: "m", kind: Text, body: []byte(s)}) }
	c.put(k("a"), 1)
	c.put(k("b"), 2)
	_, _ = c.get(k("a")) // a is now the most recent
	c.put(k("c"), 3)
	assert.Equal(t, 2, c.len())
	_, ok := c.get(k("b"))
	assert.False(t, ok, "the least recently used entry was evicted")
	got, ok := c.get(k("a"))
	assert.True(t, ok)
	assert.Equal(t, int64(1), got)
	c.put(k("a"), 7)
	got, _ = c.get(k("a"))
	assert.Equal(t, int64(7), got)
	assert.Equal(t, 2, c.len())
}

func TestNon2xxFails(t *testing.T) {
	v := &vllm{t: t, status: http.StatusInternalServerError}
	c := start(t, v, Settings{})
	_, err := wait(t, c.Text(context.Background(), "m", []byte("a")))
	var se *StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, 500, se.Status)
	assert.Contains(t, se.Error(), "boom")
	// Failures are not cached.
	_, err = wait(t, c.Text(context.Background(), "m", []byte("a")))
	require.Error(t, err)
	assert.Equal(t, int64(2), v.calls.Load())
	assert.Equal(t, int64(2), c.Stats().Failed)
}

func TestAbsurdCounts(t *testing.T) {
	for name, raw := range map[string]string{
		"negative":          `{"count":-1,"max_model_len":10,"tokens":[]}`,
		"disagrees":         `{"count":3,"max_model_len":10,"tokens":[1,2]}`,
		"beyond context":    `{"count":11,"max_model_len":10}`,
		"more than bytes":   `{"count":500,"max_model_len":0}`,
		"no count":          `{"max_model_len":10,"tokens":[]}`,
		"not json":          `count: 3`,
		"trailing data":     `{"count":1} {"count":2}`,
		"count not integer": `{"count":1.5}`,
	} {
		t.Run(name, func(t *testing.T) {
			c := start(t, &vllm{t: t, raw: raw}, Settings{})
			_, err := wait(t, c.Text(context.Background(), "m", []byte("a b")))
			require.Error(t, err)
			if strings.HasPrefix(name, "negative") || name == "disagrees" || name == "beyond context" || name == "more than bytes" {
				assert.ErrorIs(t, err, ErrAbsurd)
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	v := &vllm{t: t, delay: 5 * time.Second}
	c := start(t, v, Settings{Timeout: 50 * time.Millisecond})
	began := time.Now()
	_, err := wait(t, c.Text(context.Background(), "m", []byte("a")))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(began), 4*time.Second, "the call gave up at its timeout, not the server's answer")
}

func TestUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c := New(Settings{Endpoint: url + "/tokenize", Timeout: time.Second, Queue: 1, Workers: 1, CacheEntries: 1}, nil)
	defer c.Close()
	_, err := wait(t, c.Text(context.Background(), "m", []byte("a")))
	require.Error(t, err)
}

func TestQueueFullFallsBackAtOnce(t *testing.T) {
	v := &vllm{t: t, block: make(chan struct{})}
	srv := httptest.NewServer(v)
	defer srv.Close()
	c := New(Settings{Endpoint: srv.URL + "/tokenize", Timeout: 10 * time.Second, Queue: 1, Workers: 1, CacheEntries: 8}, nil)
	defer c.Close()
	defer close(v.block)
	first := c.Text(context.Background(), "m", []byte("one"))
	require.Eventually(t, func() bool { return v.calls.Load() == 1 }, 5*time.Second, time.Millisecond, "the worker holds the first call")
	second := c.Text(context.Background(), "m", []byte("two")) // waits in the queue
	began := time.Now()
	third := c.Text(context.Background(), "m", []byte("three"))
	assert.Less(t, time.Since(began), time.Second, "Submit never waits for room")
	_, err := third.Wait(context.Background())
	assert.ErrorIs(t, err, ErrQueueFull)
	assert.Equal(t, int64(1), c.Stats().Dropped)
	_ = first
	_ = second
}

func TestCancel(t *testing.T) {
	t.Run("while queued, the call is never made", func(t *testing.T) {
		v := &vllm{t: t, block: make(chan struct{})}
		srv := httptest.NewServer(v)
		defer srv.Close()
		c := New(Settings{Endpoint: srv.URL + "/tokenize", Timeout: 10 * time.Second, Queue: 4, Workers: 1, CacheEntries: 8}, nil)
		defer c.Close()
		_ = c.Text(context.Background(), "m", []byte("one"))
		require.Eventually(t, func() bool { return v.calls.Load() == 1 }, 5*time.Second, time.Millisecond)
		ctx, cancel := context.WithCancel(context.Background())
		queued := c.Text(ctx, "m", []byte("two"))
		cancel()
		_, err := queued.Wait(ctx)
		assert.ErrorIs(t, err, context.Canceled)
		close(v.block)
		_, err = queued.Wait(context.Background()) // the worker's own answer
		assert.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, int64(1), v.calls.Load(), "the cancelled count was not sent")
	})
	t.Run("in flight, the call is abandoned", func(t *testing.T) {
		v := &vllm{t: t, delay: 10 * time.Second}
		c := start(t, v, Settings{Timeout: 20 * time.Second})
		ctx, cancel := context.WithCancel(context.Background())
		n := c.Text(ctx, "m", []byte("a"))
		require.Eventually(t, func() bool { return v.calls.Load() == 1 }, 5*time.Second, time.Millisecond)
		cancel()
		_, err := n.Wait(context.Background())
		assert.ErrorIs(t, err, context.Canceled)
	})
}

func TestClose(t *testing.T) {
	c := start(t, &vllm{t: t}, Settings{})
	c.Close()
	c.Close()
	_, err := wait(t, c.Text(context.Background(), "m", []byte("a")))
	assert.ErrorIs(t, err, ErrClosed)
}

func TestWaitSumsPartsAndStopsAtTheFirstFailure(t *testing.T) {
	ok := make(chan result, 1)
	ok <- result{count: 2}
	bad := make(chan result, 1)
	bad <- result{err: errors.New("x")}
	_, err := (&Count{known: 1, parts: []chan result{ok, bad}}).Wait(context.Background())
	assert.EqualError(t, err, "x")
	ok <- result{count: 2}
	n, err := (&Count{known: 1, parts: []chan result{ok}}).Wait(context.Background())
	require.NoError(t, err)
	assert.Equal(t, int64(3), n)
}

func TestNewFillsZeroSettings(t *testing.T) {
	v := &vllm{t: t}
	srv := httptest.NewServer(v)
	defer srv.Close()
	c := New(Settings{Endpoint: srv.URL + "/tokenize"}, nil)
	defer c.Close()
	assert.Equal(t, Settings{Endpoint: srv.URL + "/tokenize", Timeout: DefaultTimeout, Queue: 1, Workers: 1, CacheEntries: 1}, c.Settings())
	for range 2 {
		n, err := wait(t, c.Text(context.Background(), "m", []byte("a b")))
		require.NoError(t, err)
		assert.Equal(t, int64(2), n)
	}
	assert.Equal(t, int64(1), v.calls.Load(), "a one-entry cache still caches")
}
