package fakevllm

// Server-sent events, a first version: one event per completion word, each
// flushed, then the usage event when asked for, then [DONE]. Chunks follow
// vLLM's dumps: chat chunks exclude unset fields, completions chunks include
// them all ("usage":null), final usage chunks exclude None.

import (
	"net/http"
	"time"
)

type sseWriter struct {
	w      http.ResponseWriter
	rc     *http.ResponseController
	broken bool
}

func newSSEWriter(w http.ResponseWriter, status int) *sseWriter {
	w.Header().Set("Content-Type", contentTypeSSE)
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(status)
	return &sseWriter{w: w, rc: http.NewResponseController(w)}
}

// raw writes b and flushes; after a failed write (client gone) it does nothing.
func (s *sseWriter) raw(b []byte) {
	if s.broken {
		return
	}
	if _, err := s.w.Write(b); err != nil {
		s.broken = true
		return
	}
	_ = s.rc.Flush()
}

func (s *sseWriter) data(v any) {
	s.raw(append(append([]byte("data: "), marshal(v)...), "\n\n"...))
}

func (s *sseWriter) event(name string, v any) {
	s.raw(append(append([]byte("event: "+name+"\ndata: "), marshal(v)...), "\n\n"...))
}

func (s *sseWriter) done() { s.raw([]byte("data: [DONE]\n\n")) }

func (pl plan) streamUsage() *streamUsage {
	u := streamUsage(pl.usage)
	return &u
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
// (choices interleaved), the last one with finish_reason.
func streamChat(w http.ResponseWriter, p params, pl plan, includeUsage bool) {
	s := newSSEWriter(w, p.okStatus())
	base := chatChunk{ID: newID("chatcmpl-", 16), Object: "chat.completion.chunk", Created: time.Now().Unix(), Model: pl.model}
	send := func(choice chatChunkChoice) {
		c := base
		c.Choices = []chatChunkChoice{choice}
		s.data(c)
	}
	for i := range pl.choices {
		send(chatChunkChoice{Index: i, Delta: chatDelta{Role: "assistant"}})
	}
	for k := range max(pl.words, 1) {
		for i := range pl.choices {
			c := chatChunkChoice{Index: i}
			if k < pl.words {
				c.Delta.Content = fillerWord(k)
			}
			if k == max(pl.words, 1)-1 {
				c.FinishReason, c.StopReason = &pl.finish, &null{}
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
	Usage   *streamUsage      `json:"usage"`
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
// one with finish_reason.
func streamCompletions(w http.ResponseWriter, p params, pl plan, includeUsage bool) {
	s := newSSEWriter(w, p.okStatus())
	id, created := newID("cmpl-", 32), time.Now().Unix()
	for k := range max(pl.words, 1) {
		for i := range pl.choices {
			c := textChunkChoice{Index: i}
			if k < pl.words {
				c.Text = fillerWord(k)
			}
			if k == max(pl.words, 1)-1 {
				c.FinishReason = &pl.finish
			}
			s.data(textChunk{ID: id, Object: "text_completion", Created: created, Model: pl.model, Choices: []textChunkChoice{c}})
		}
	}
	if includeUsage {
		s.data(textUsageChunk{ID: id, Object: "text_completion", Created: created, Model: pl.model, Usage: pl.streamUsage()})
	}
	s.done()
}

type responseEvent struct {
	Response       responsesResponse `json:"response"`
	SequenceNumber int               `json:"sequence_number"`
	Type           string            `json:"type"`
}

// streamResponses sends only response.created (in progress, no output, no
// usage) and response.completed (the whole response); no deltas yet.
func streamResponses(w http.ResponseWriter, p params, resp responsesResponse) {
	s := newSSEWriter(w, p.okStatus())
	created := resp
	created.Status, created.Output, created.Usage = "in_progress", []outputMessage{}, nil
	s.event("response.created", responseEvent{Response: created, SequenceNumber: 0, Type: "response.created"})
	s.event("response.completed", responseEvent{Response: resp, SequenceNumber: 1, Type: "response.completed"})
}
