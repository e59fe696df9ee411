package usage

import (
	"strings"
	"testing"

	"github.com/spendguard/spendguard/pricing"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Events of a vLLM chat stream (vLLM's key order, usage omitted from token
// events), written for these tests.
const (
	tokA      = `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hé"},"logprobs":null,"finish_reason":null}]}`
	tokB      = `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"日本😀"},"logprobs":null,"finish_reason":null}]}`
	tokRole   = `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}`
	tokStop   = `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"stop","stop_reason":null}]}`
	usageOnly = `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":12,"total_tokens":15,"completion_tokens":3}}`
	done      = `data: [DONE]`
)

var u12x3 = pricing.Usage{Prompt: 12, Completion: 3}

// lines joins lines with eol and ends the last with eol too.
func lines(eol string, l ...string) string { return strings.Join(l, eol) + eol }

// event is one event: its lines, then a blank line.
func event(eol string, l ...string) string { return lines(eol, l...) + eol }

type sseCase struct {
	name    string
	kind    SSEKind
	body    string
	dropped string // the text dropUsageEvent removes ("": none)
	found   bool
	usage   pricing.Usage
	err     error // sentinel Result's error wraps
	content int
}

func sseCases() []sseCase {
	basic := func(eol string) sseCase {
		return sseCase{
			body: event(eol, tokRole) + event(eol, tokA) + event(eol, tokB) + event(eol, tokStop) +
				event(eol, usageOnly) + event(eol, done),
			dropped: event(eol, usageOnly), found: true, usage: u12x3, content: 2,
		}
	}
	named := func(name string, c sseCase) sseCase { c.name = name; return c }
	return []sseCase{
		named("LF", basic("\n")),
		named("CRLF", basic("\r\n")),
		named("CR", basic("\r")),
		{name: "mixed line endings",
			body:    event("\n", tokA) + "data: {\"choices\":[],\r\ndata: \"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3}}\r\r" + event("\r\n", done),
			dropped: "data: {\"choices\":[],\r\ndata: \"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3}}\r\r",
			found:   true, usage: u12x3, content: 1},
		{name: "keep-alive comments, fields and extra blank lines",
			body: ": keep-alive\n\n" + event("\n", "id: 1", tokA) + "\n\n: ping\n\n" + event("\n", "retry: 100", "event: message", tokB) +
				event("\n", ": before usage", usageOnly, ": after usage") + ":\n\n" + event("\n", done),
			dropped: event("\n", ": before usage", usageOnly, ": after usage"),
			found:   true, usage: u12x3, content: 2},
		{name: "data without space and with two",
			body:    "data:" + tokA[len("data: "):] + "\n\ndata:  " + usageOnly[len("data: "):] + "\n\ndata:[DONE]\n\n",
			dropped: "data:  " + usageOnly[len("data: "):] + "\n\n",
			found:   true, usage: u12x3, content: 1},
		{name: "usage event over several data lines",
			body:    event("\n", tokA) + event("\n", `data: {"choices":`, `data: [ ],`, `data:`, `data: "usage": {"prompt_tokens": 12, "completion_tokens": 3}}`) + event("\n", done),
			dropped: event("\n", `data: {"choices":`, `data: [ ],`, `data:`, `data: "usage": {"prompt_tokens": 12, "completion_tokens": 3}}`),
			found:   true, usage: u12x3, content: 1},
		{name: "unknown fields and a data field without colon",
			body:    event("\n", "datum: {\"usage\":{\"prompt_tokens\":1}}", "dataset", tokA) + event("\n", "data", "data") + event("\n", done),
			content: 1},
		{name: "continuous usage stats, last wins",
			body: event("\n", `data: {"choices":[{"delta":{"content":"a"}}],"usage":{"prompt_tokens":12,"total_tokens":13,"completion_tokens":1}}`) +
				event("\n", `data: {"choices":[{"delta":{"content":"b"}}],"usage":{"prompt_tokens":12,"total_tokens":14,"completion_tokens":2}}`) +
				event("\n", usageOnly) + event("\n", done),
			dropped: event("\n", usageOnly), found: true, usage: u12x3, content: 2},
		{name: "continuous usage stats without the usage-only event",
			body: event("\n", `data: {"choices":[{"delta":{"content":"a"}}],"usage":{"prompt_tokens":12,"completion_tokens":1}}`) +
				event("\n", `data: {"choices":[{"delta":{"content":"b"}}],"usage":{"prompt_tokens":12,"completion_tokens":3}}`) + event("\n", done),
			found: true, usage: u12x3, content: 2},
		{name: "usage null on every event (OpenAI)",
			body:    event("\n", `data: {"choices":[{"delta":{"content":"a"}}],"usage":null}`) + event("\n", `data: {"choices":[],"usage" : null}`) + event("\n", done),
			content: 1},
		{name: "later events without usage keep it",
			body:    event("\n", usageOnly) + event("\n", `data: {"choices":[{"delta":{"content":"late"}}],"usage":null}`) + event("\n", done),
			dropped: event("\n", usageOnly), found: true, usage: u12x3, content: 1},
		{name: "undecodable last usage wins",
			body:    event("\n", usageOnly) + event("\n", `data: {"choices":[],"usage":{"prompt_tokens":-1}}`),
			dropped: event("\n", usageOnly) + event("\n", `data: {"choices":[],"usage":{"prompt_tokens":-1}}`),
			err:     ErrUsage},
		{name: "escaped usage key",
			body:    event("\n", `data: {"choices":[],"us\u0061ge":{"prompt_tokens":12,"completion_tokens":3}}`),
			dropped: event("\n", `data: {"choices":[],"us\u0061ge":{"prompt_tokens":12,"completion_tokens":3}}`),
			found:   true, usage: u12x3},
		{name: "usage decoys in content and nested",
			body: event("\n", `data: {"choices":[{"delta":{"content":"\"usage\":{\"prompt_tokens\":5}"}}]}`) +
				event("\n", `data: {"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"usage\": 1}"}}]},"usage":{"prompt_tokens":5}}]}`) +
				event("\n", `data: {"x\"usage":{"prompt_tokens":5},"choices":[]}`),
			content: 2},
		{name: "choices empty but usage null is kept",
			body: event("\n", `data: {"choices":[],"usage":null}`) + event("\n", `data: {"choices":[]}`)},
		{name: "not JSON",
			body:    event("\n", `data: {"usage":{"prompt_tokens":12},`) + event("\n", "data: hello") + event("\n", `data: {"choices":[{"delta":{"content":"a"}}]}`),
			content: 1},
		{name: "mid-stream error then DONE",
			body:    event("\n", tokA) + event("\n", `data: {"error": {"message": "CUDA out of memory", "type": "InternalServerError", "param": null, "code": 500}}`) + event("\n", done),
			content: 1},
		{name: "flat error, first error kept",
			body: event("\n", `data: {"object":"error","message":"bad \u00e9","type":"BadRequestError","code":400}`) + event("\n", `data: {"error":{"message":"second"}}`)},
		{name: "flat error with spaces",
			body: event("\n", `data: {"object" : "error", "message": "too long", "type": "BadRequestError", "param": null, "code": 400}`)},
		{name: "error without message",
			body: event("\n", `data: {"error":{"code":500}}`)},
		{name: "error decoys",
			body:    event("\n", `data: {"choices":[{"delta":{"content":"error"}}],"error":null}`) + event("\n", `data: {"choices":[{"delta":{"content":"{\"error\":{}}"}}]}`),
			content: 2},
		{name: "no blank line after the usage event",
			body:  event("\n", tokA) + lines("\n", usageOnly),
			found: true, usage: u12x3, content: 1},
		{name: "unterminated last line",
			body:  event("\n", tokA) + usageOnly,
			found: true, usage: u12x3, content: 1},
		{name: "truncated mid-event",
			body:    event("\n", tokA) + event("\n", tokB) + tokA[:40],
			content: 2},
		{name: "empty"},
		{name: "DONE unterminated", body: done},
	}
}

func TestSSEScanner(t *testing.T) {
	seed := baseSeed(t)
	for _, c := range append(sseCases(), responsesCases()...) {
		t.Run(c.name, func(t *testing.T) {
			wantDropped := c.body
			if c.dropped != "" {
				require.Equal(t, 1, strings.Count(c.body, c.dropped), "the dropped text occurs once")
				wantDropped = strings.Replace(c.body, c.dropped, "", 1)
			}
			got := checkSSE(t, []byte(c.body), c.kind, 0, wantDropped, seed, 50)
			if c.err != nil {
				assert.ErrorIs(t, got.err, c.err)
				assert.False(t, got.Found)
			} else {
				assert.NoError(t, got.err)
				assert.Equal(t, c.found, got.Found)
				assert.Equal(t, c.usage, got.Usage)
			}
			assert.Equal(t, c.content, got.Content, "content events")
		})
	}
}

// TestSSEDropChangesOnlyTheUsageChunk: fed one event per chunk, with
// dropping on, only the chunk of the usage-only event changes (to nothing).
func TestSSEDropChangesOnlyTheUsageChunk(t *testing.T) {
	for _, eol := range []string{"\n", "\r\n", "\r"} {
		s := NewSSEScanner(SSEChat, true)
		for _, ev := range []string{tokRole, tokA, tokB, tokStop, usageOnly, done} {
			chunk := []byte(event(eol, ev))
			out, changed := s.Write(chunk)
			if ev == usageOnly {
				assert.True(t, changed)
				assert.Empty(t, out)
			} else {
				assert.False(t, changed, "%q", chunk)
				assert.Equal(t, chunk, out)
			}
		}
		assert.Empty(t, s.Finish())
		u, found, err := s.Result()
		require.NoError(t, err)
		assert.True(t, found)
		assert.Equal(t, u12x3, u)
	}
}

// TestSSEEventLimitBoundary: an event of exactly the limit (counting its
// blank line) can still be dropped, one byte more cannot, however split.
func TestSSEEventLimitBoundary(t *testing.T) {
	seed := baseSeed(t)
	for _, eol := range []string{"\n", "\r\n"} {
		usageEvent := event(eol, usageOnly)
		body := event(eol, tokA) + usageEvent + event(eol, done)
		size := len(usageEvent)
		if eol == "\r\n" {
			size-- // the '\n' after the last '\r' is not counted
		}
		got := checkSSE(t, []byte(body), SSEChat, size, event(eol, tokA)+event(eol, done), seed, 50)
		assert.Equal(t, u12x3, got.Usage)
		got = checkSSE(t, []byte(body), SSEChat, size-1, body, seed, 50)
		assert.Equal(t, u12x3, got.Usage)
	}
}

func TestSSEScannerReuse(t *testing.T) {
	body := []byte(event("\n", tokA) + event("\n", usageOnly) + "data: {\"partial")
	s := NewSSEScanner(SSEChat, true)
	out, changed := s.Write(body)
	require.True(t, changed)
	assert.Equal(t, event("\n", tokA), string(out))
	assert.Equal(t, `data: {"partial`, string(s.Finish()))
	out, changed = s.Write([]byte("data: after finish\n\n"))
	assert.False(t, changed, "after Finish chunks are forwarded unread")
	assert.Equal(t, "data: after finish\n\n", string(out))

	s.Reset(SSEResponses, true)
	_, found, err := s.Result()
	require.NoError(t, err)
	assert.False(t, found)
	assert.Zero(t, s.ContentEvents())
	chunk := []byte(event("\n", "event: response.output_text.delta", respDelta))
	out, changed = s.Write(chunk)
	assert.False(t, changed)
	assert.Equal(t, chunk, out)
	assert.Empty(t, s.Finish())
	assert.Equal(t, 1, s.ContentEvents())
}

func TestSSEScannerZeroValue(t *testing.T) {
	var s SSEScanner
	body := []byte(sseCases()[0].body)
	out, changed := s.Write(body)
	assert.False(t, changed)
	assert.Equal(t, body, out)
	assert.Empty(t, s.Finish())
	u, found, err := s.Result()
	require.NoError(t, err)
	assert.True(t, found)
	assert.Equal(t, u12x3, u)
}
