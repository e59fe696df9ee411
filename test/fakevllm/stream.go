package fakevllm

// Server-sent events, a first version: one event per completion word, each
// flushed, then the usage event when asked for, then [DONE]. Chunks follow
// vLLM's dumps: chat chunks exclude unset fields, completions chunks include
// them all ("usage":null), final usage chunks exclude None.

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"
)

type sseWriter struct {
	w          http.ResponseWriter
	rc         *http.ResponseController
	broken     bool
	events     int // events written
	content    int // content events written
	abortAfter int
	errorAfter int
	delay      time.Duration

	ctx         context.Context // the request's: done when the client went away
	disconnects *atomic.Int64
}

// hangup is the request context's Done channel (nil without one).
func (s *sseWriter) hangup() <-chan struct{} {
	if s.ctx == nil {
		return nil
	}
	return s.ctx.Done()
}

// midStreamError is the event vLLM sends when generation fails in a 200
// stream: Python json.dumps of its ErrorResponse, spaces after ':' and ','.
const midStreamError = `{"error": {"message": "fakevllm: generation failed mid-stream", "type": "InternalServerError", "param": null, "code": 500}}`

func newSSEWriter(w http.ResponseWriter, p params) *sseWriter {
	w.Header().Set("Content-Type", contentTypeSSE)
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(p.okStatus())
	return &sseWriter{w: w, rc: http.NewResponseController(w), abortAfter: p.abortAfter, errorAfter: p.errorAfter, delay: p.eventDelay,
		ctx: p.ctx, disconnects: p.disconnects}
}

// gone notes that the client went away: generation stops (every later
// write is skipped) and the server counts one disconnect.
func (s *sseWriter) gone() {
	if s.broken {
		return
	}
	s.broken = true
	if s.disconnects != nil {
		s.disconnects.Add(1)
	}
}

// counted notes one event; past x-fake-abort-after-events the connection
// is cut as a crashing server would (the client sees no end of body).
func (s *sseWriter) counted() {
	s.events++
	if s.abortAfter > 0 && s.events >= s.abortAfter {
		panic(http.ErrAbortHandler)
	}
}

// failNow reports, before a content event, whether the stream must end with
// vLLM's mid-stream error event instead; it then sends it and [DONE].
func (s *sseWriter) failNow() bool {
	return s.failNowWith(func() {
		s.raw([]byte(`data: ` + midStreamError + "\n\n"))
		s.done()
	})
}

// failNowWith is failNow with the endpoint's own error ending.
func (s *sseWriter) failNowWith(end func()) bool {
	if s.errorAfter <= 0 || s.content < s.errorAfter {
		s.content++
		return false
	}
	end()
	return true
}

// raw writes b and flushes; after a failed write (client gone) it does nothing.
func (s *sseWriter) raw(b []byte) {
	if s.broken {
		return
	}
	if s.delay > 0 && s.events > 0 {
		t := time.NewTimer(s.delay)
		select {
		case <-t.C:
		case <-s.hangup():
		}
		t.Stop()
	}
	if s.hangup() != nil {
		select {
		case <-s.hangup():
			s.gone()
			return
		default:
		}
	}
	if _, err := s.w.Write(b); err != nil {
		s.gone()
		return
	}
	_ = s.rc.Flush()
}

func (s *sseWriter) data(v any) {
	s.raw(append(append([]byte("data: "), marshal(v)...), "\n\n"...))
	s.counted()
}

func (s *sseWriter) event(name string, v any) {
	s.raw(append(append([]byte("event: "+name+"\ndata: "), marshal(v)...), "\n\n"...))
	s.counted()
}

func (s *sseWriter) done() { s.raw([]byte("data: [DONE]\n\n")) }

func (pl plan) streamUsage() *streamUsage {
	u := streamUsage(pl.usage)
	return &u
}

// usageFor is the usage of one chunk under continuous_usage_stats, as vLLM
// counts it: the prompt of the chunk's own prompt and the completion tokens
// of the chunk's own choice so far, not the sums over choices.
func (pl plan) usageFor(choice, sent int) usageInfo {
	prompt := pl.promptOf(choice)
	return usageInfo{PromptTokens: prompt, TotalTokens: prompt + sent, CompletionTokens: sent}
}

type chatChunk struct {
	ID      string            `json:"id"`
	Object  string            `json:"object"`
	Created int64             `json:"created"`
	Model   string            `json:"model"`
	Choices []chatChunkChoice `json:"choices"`
	Usage   *streamUsage      `json:"usage,omitempty"`
}

type chatChunkChoice struct {
	Index        int       `json:"index"`
	Delta        chatDelta `json:"delta"`
	Logprobs     null      `json:"logprobs"`
	FinishReason *string   `json:"finish_reason"`
	StopReason   *null     `json:"stop_reason,omitempty"` // set on the last chunk only
}

type chatDelta struct {
	Role    string `json:"role,omitempty"`
	Content string `json:"content"`
}

// streamChat sends, for every choice, a role chunk, then one chunk per word
// (choices interleaved), the last one with finish_reason. With continuous
// usage every chunk, the role chunks included, carries its choice's usage.
func streamChat(w http.ResponseWriter, p params, pl plan, includeUsage, continuous bool) {
	s := newSSEWriter(w, p)
	base := chatChunk{ID: newID("chatcmpl-", 16), Object: "chat.completion.chunk", Created: time.Now().Unix(), Model: pl.model}
	sent := make([]int, pl.choices) // completion tokens streamed so far, per choice
	send := func(choice chatChunkChoice) {
		c := base
		c.Choices = []chatChunkChoice{choice}
		if continuous {
			u := streamUsage(pl.usageFor(choice.Index, sent[choice.Index]))
			c.Usage = &u
		}
		s.data(c)
	}
	for i := range pl.choices {
		send(chatChunkChoice{Index: i, Delta: chatDelta{Role: "assistant"}})
	}
	last := max(pl.words, 1) - 1
	for k := range last + 1 {
		for i := range pl.choices {
			c := chatChunkChoice{Index: i}
			if k < pl.words {
				if s.failNow() {
					return
				}
				c.Delta.Content = fillerWord(k)
				sent[i]++
			}
			if k == last {
				c.FinishReason, c.StopReason = &pl.finish, &null{}
				sent[i] = pl.perChoice
			}
			send(c)
		}
	}
	if includeUsage {
		c := base
		c.Choices = []chatChunkChoice{}
		c.Usage = pl.streamUsage()
		s.data(c)
	}
	s.done()
}

type textChunk struct {
	ID      string            `json:"id"`
	Object  string            `json:"object"`
	Created int64             `json:"created"`
	Model   string            `json:"model"`
	Choices []textChunkChoice `json:"choices"`
	Usage   *usageInfo        `json:"usage"`
}

type textChunkChoice struct {
	Index          int     `json:"index"`
	Text           string  `json:"text"`
	Logprobs       null    `json:"logprobs"`
	FinishReason   *string `json:"finish_reason"`
	StopReason     null    `json:"stop_reason"`
	PromptTokenIDs null    `json:"prompt_token_ids"`
	TokenIDs       null    `json:"token_ids"`
}

// textUsageChunk is the final completions usage chunk, dumped without Nones.
type textUsageChunk struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices emptyList    `json:"choices"`
	Usage   *streamUsage `json:"usage"`
}

// streamCompletions sends one chunk per word (choices interleaved), the last
// one with finish_reason. Completions chunks are dumped with every field, so
// a chunk without usage has "usage":null and a continuous usage has
// "prompt_tokens_details":null.
func streamCompletions(w http.ResponseWriter, p params, pl plan, includeUsage, continuous bool) {
	s := newSSEWriter(w, p)
	id, created := newID("cmpl-", 32), time.Now().Unix()
	sent := make([]int, pl.choices)
	last := max(pl.words, 1) - 1
	for k := range last + 1 {
		for i := range pl.choices {
			c := textChunkChoice{Index: i}
			if k < pl.words {
				if s.failNow() {
					return
				}
				c.Text = fillerWord(k)
				sent[i]++
			}
			if k == last {
				c.FinishReason = &pl.finish
				sent[i] = pl.perChoice
			}
			chunk := textChunk{ID: id, Object: "text_completion", Created: created, Model: pl.model, Choices: []textChunkChoice{c}}
			if continuous {
				u := pl.usageFor(i, sent[i])
				chunk.Usage = &u
			}
			s.data(chunk)
		}
	}
	if includeUsage {
		s.data(textUsageChunk{ID: id, Object: "text_completion", Created: created, Model: pl.model, Usage: pl.streamUsage()})
	}
	s.done()
}
