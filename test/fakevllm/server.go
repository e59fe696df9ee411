// Package fakevllm is an in-process stand-in for vLLM's OpenAI-compatible HTTP
// server, for end-to-end tests and the local demo. It follows vLLM's own
// serving code for every endpoint below: key order, Python spacing where
// vLLM uses json.dumps, compact bodies as Starlette renders them.
//
// Endpoints:
//
//	POST /v1/chat/completions     JSON or SSE
//	POST /v1/completions          JSON or SSE; use_beam_search + stream: one event
//	POST /v1/embeddings           float, base64, bytes (usage in the "metadata"
//	                              header), bytes_only (no usage anywhere)
//	POST /v1/responses            JSON, SSE, background (queued, usage null)
//	GET  /v1/responses/{id}       a stored response; a background one completes
//	                              after Config.BackgroundDelay
//	POST /v1/responses/{id}/cancel a pending background response → cancelled
//	POST /v1/messages             Anthropic Messages API, JSON or SSE
//	POST /invocations             routed by body shape (below)
//	POST /inference/v1/generate   token ids in, token ids out
//	POST /v1/audio/transcriptions multipart; usage {"type":"duration","seconds":N}
//	POST /v1/audio/translations   multipart; no usage in JSON, as in vLLM
//	POST /rerank, /v1/rerank, /v2/rerank   usage {prompt_tokens,total_tokens}
//	POST /score, /v1/score, /pooling, /classify   the standard usage object
//	POST /tokenize, /detokenize   the fake's tokenizer (below)
//	GET  /v1/models, /health, /metrics
//
// Errors use vLLM's shape {"error":{"message","type","param","code"}};
// FastAPI request validation errors have type "Bad Request" and param
// "body.<field>"; unknown paths get FastAPI's {"detail":"Not Found"}. On
// /v1/messages, errors from the handler (unknown model, x-fake-status) are
// Anthropic's {"type":"error","error":{"type","message"}} with vLLM's OpenAI
// type names (NotFoundError), while validation errors (max_tokens missing or
// not positive) keep the OpenAI shape, as vLLM answers them.
//
// # Token counts
//
// Token counts are the configured ones, or derived from the request with
// one rule, the fake's tokenizer: text is one token per 4 bytes (rounded
// down), a token id one token, a prompt at least 1 token. A chat prompt
// counts the text of every content/text string of its messages (system and
// messages for /v1/messages, instructions and input for /v1/responses); a
// completions or embeddings prompt list counts each prompt; rerank and
// score count each (query, document) pair together; /inference/v1/generate
// counts its token_ids; audio prompts are the file's seconds. Completion
// tokens are max_tokens (chat: max_completion_tokens first; responses:
// max_output_tokens; generate: sampling_params.max_tokens; audio:
// max_completion_tokens) or 16, per choice; finish_reason is "length" when
// the completion reaches the request's limit (responses: status
// "incomplete"; messages: stop_reason "max_tokens"), else "stop". With n>1
// every choice has the same completion and usage.completion_tokens is the
// sum.
//
// The generated text is one 4-byte filler word per completion token ("Once",
// " fox", " ran", …; at most 16384 words, usage always reports the whole
// count), so delivered text tokenizes back to the tokens that produced it.
// POST /tokenize ({model, prompt} or {model, messages}) answers
// {"count":N,"max_model_len":32768,"tokens":[…],"token_strs":null} with N
// exactly the prompt_tokens the fake reports for that prompt or those
// messages; with "add_special_tokens": false a prompt has no at-least-1
// token, so delivered text of k words counts k. Token ids are the 4 bytes of
// each token read as a big-endian number (1 is the BOS token of an empty
// prompt); /detokenize inverts them. Requests the fake will not generate for
// (n over 128, dimensions over 65536, embed_dtype other than float32) get a
// 400 whose message starts "fakevllm:".
//
// # Streams
//
// Chat and completions stream one SSE event per word, flushed one by one.
// Usage follows vLLM's should_include_usage: a stream_options object turns
// it on unless include_usage is false or null (an empty object turns it on);
// continuous_usage_stats then puts usage on every chunk, the chat role
// chunks included, where completion_tokens is THAT CHOICE's running count
// and prompt_tokens that choice's prompt; the final "choices":[] chunk
// carries the sums, then "data: [DONE]". Config.ForceIncludeUsage
// (--enable-force-include-usage) turns usage and per-chunk usage on for every
// stream. Chat chunks without usage have no usage key; completions chunks
// carry "usage":null. /inference/v1/generate streams one chunk per token with
// the same usage rules (force-include-usage does not apply there, as in
// vLLM). Audio streams take stream_include_usage and
// stream_continuous_usage_stats form fields.
//
// /v1/responses streams response.created, response.in_progress,
// response.output_item.added, response.content_part.added, one
// response.output_text.delta per word, response.output_text.done,
// response.content_part.done, response.output_item.done and
// response.completed (with usage, also when the status is incomplete), each
// "event: T" + "data: …" with sequence_number from 0. /v1/messages streams
// message_start (input tokens, output 0), content_block_start, one
// content_block_delta (text_delta) per word, content_block_stop,
// message_delta (stop_reason and the whole usage) and message_stop.
//
// # /invocations
//
// Routed as vLLM's SageMaker handler tries its request types, first match
// wins: messages → chat, prompt (or prompt_embeds) → completions, input →
// embeddings, query + documents → rerank, queries + documents, queries +
// items, data_1 + data_2 or text_1 + text_2 → score, data → pooling; any
// other body is a 400 naming the types it expected.
//
// # Overrides
//
// Each request may override the configuration with headers (a header given
// replaces the Config value, 0 included); they apply to every endpoint where
// they make sense:
//
//	x-fake-prompt-tokens      prompt tokens to report (the total over all prompts)
//	x-fake-completion-tokens  completion tokens per choice
//	x-fake-cached-tokens      >0 reports prompt_tokens_details {"cached_tokens":N}
//	x-fake-status             answer with this HTTP status; non-2xx gets an error body
//	                          (Anthropic's shape on /v1/messages)
//	x-fake-latency-ms         wait this long before the first byte
//	x-fake-embedding-dims     length of each embedding (and pooling) vector
//	x-fake-model              the model name to report, like Config.ServedModelName
//	x-fake-force-include-usage  true/false: Config.ForceIncludeUsage for this request
//	x-fake-background-ms      how long a background response stays pending
//	x-fake-background-status  what it reports meanwhile: queued (default) or in_progress
//
// A malformed override header is answered with 400 and a message starting
// "fakevllm:". Replay queues exact bytes (a recorded fixture) for a path.
//
//	x-fake-abort-after-events cut the connection (no final chunk) after N SSE events
//	x-fake-error-after-events end with the endpoint's error event after N content
//	                          events: chat, completions, generate and audio send
//	                          {"error": {...}} in json.dumps spacing then [DONE];
//	                          responses an "error" event; messages an Anthropic
//	                          "error" event; never any usage
//	x-fake-event-delay-ms     pause between SSE events (a slow generation)
//	x-fake-stop-after-tokens  the tokens per choice the model generates before it
//	                          stops by itself (Config.StopAfterTokens)
//
// A stream whose client goes away before its end (the connection closed,
// as when a proxy resets the upstream request) stops generating, as vLLM
// aborts such a request; Server.Disconnects counts those streams.
//
// GET /metrics answers in vLLM's Prometheus format with its
// vllm:prompt_tokens_total and vllm:generation_tokens_total counters of the
// tokens this server reported, by model_name (Server.Tokens reads them): an
// answer counts whole when it starts, replays and error answers not at all.
package fakevllm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultModel is the model name reported when neither the request, the
// Config.ServedModelName nor Config.KnownModels names one.
const DefaultModel = "fake-model"

// Override headers; see the package documentation.
const (
	HeaderPromptTokens     = "x-fake-prompt-tokens"
	HeaderCompletionTokens = "x-fake-completion-tokens"
	HeaderCachedTokens     = "x-fake-cached-tokens"
	HeaderStatus           = "x-fake-status"
	HeaderLatencyMS        = "x-fake-latency-ms"
	HeaderEmbeddingDims    = "x-fake-embedding-dims"
	HeaderModel            = "x-fake-model"
	HeaderAbortAfterEvents = "x-fake-abort-after-events"
	HeaderStopAfterTokens  = "x-fake-stop-after-tokens"
	HeaderErrorAfterEvents = "x-fake-error-after-events"
	HeaderEventDelayMS     = "x-fake-event-delay-ms"

	HeaderForceIncludeUsage = "x-fake-force-include-usage"
	HeaderBackgroundMS      = "x-fake-background-ms"
	HeaderBackgroundStatus  = "x-fake-background-status"
)

const (
	defaultCompletionTokens = 16
	defaultEmbeddingDims    = 8
	defaultWriteChunkSize   = 16 << 10
	maxModelLen             = 32768

	// Bounds on what one request makes the fake generate, so a test or a
	// fuzzer cannot make it allocate gigabytes.
	maxTextWords   = 16384 // filler words per choice; usage still reports the full count
	maxChoices     = 128
	maxRequestDims = 1 << 16
)

// Config is what the server reports. The zero value derives every count from
// the request. Negative numbers count as zero.
type Config struct {
	// PromptTokens and CompletionTokens are the usage to report; 0 derives
	// them (see the package documentation). CompletionTokens is per choice.
	PromptTokens, CompletionTokens int
	// CachedTokens > 0 reports prompt_tokens_details {"cached_tokens":N}
	// (chat and completions) and input_tokens_details.cached_tokens
	// (responses); otherwise prompt_tokens_details is null.
	CachedTokens int
	// Latency is the wait before the first byte of any answer.
	Latency time.Duration
	// ServedModelName is the model every answer names, as vLLM names its
	// first --served-model-name; "" echoes the request's model.
	ServedModelName string
	// KnownModels, when not empty, are the only models accepted: any other
	// gets vLLM's 404. They are also what GET /v1/models lists.
	KnownModels []string
	// EmbeddingDims is the length of each embedding vector; 0 means 8, or the
	// request's "dimensions".
	EmbeddingDims int
	// WriteChunkSize is the size of the pieces a JSON body is written and
	// flushed in, so a proxy sees a large body as several chunks; 0 means 16 KiB.
	WriteChunkSize int
	// ForceIncludeUsage is vLLM's --enable-force-include-usage: every stream
	// carries usage, on every chunk and in a final usage chunk, whatever the
	// request's stream_options.
	ForceIncludeUsage bool
	// BackgroundDelay is how long a background response (POST /v1/responses
	// with "background": true) stays queued before GET /v1/responses/{id}
	// finds it completed; 0 completes it at once.
	BackgroundDelay time.Duration
	// StopAfterTokens is how many tokens per choice the model generates
	// before it stops by itself (its end-of-sequence token): a request
	// without an output limit gets that many, one with a limit the smaller
	// of the two (finish_reason "length" when the limit is what stopped
	// it). 0 means 16 tokens for a request without a limit and its limit
	// otherwise. A real vLLM without max_tokens runs to the end of the
	// context; this is how a test plays an answer of a given length.
	StopAfterTokens int
}

// Recorded is one request as the server received it.
type Recorded struct {
	Method   string
	Path     string
	RawQuery string
	Header   http.Header
	Body     []byte
}

type replayed struct {
	status int
	body   []byte
}

// Server is a fake vLLM. It is an http.Handler and is safe for concurrent use.
type Server struct {
	cfg atomic.Pointer[Config]

	mu       sync.Mutex
	recorded []Recorded
	replays  map[string][]replayed
	httpSrv  *http.Server
	tokens   tokenCounts   // served tokens by model, for GET /metrics
	store    responseStore // background responses by id

	disconnects atomic.Int64 // streams whose client went away before their end
}

// Disconnects counts the streams whose client went away before the end of
// the stream (their generation stopped there), since New.
func (s *Server) Disconnects() int { return int(s.disconnects.Load()) }

// New returns a server answering with cfg.
func New(cfg Config) *Server {
	s := &Server{replays: make(map[string][]replayed)}
	s.SetConfig(cfg)
	return s
}

// SetConfig replaces the configuration for the requests that arrive after it.
func (s *Server) SetConfig(cfg Config) {
	cfg.KnownModels = append([]string(nil), cfg.KnownModels...)
	s.cfg.Store(&cfg)
}

// Config returns the current configuration.
func (s *Server) Config() Config {
	cfg := *s.cfg.Load()
	cfg.KnownModels = append([]string(nil), cfg.KnownModels...)
	return cfg
}

// Requests returns copies of every request received since New or Reset, in
// arrival order, health checks included.
func (s *Server) Requests() []Recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Recorded, len(s.recorded))
	for i, r := range s.recorded {
		out[i] = Recorded{
			Method:   r.Method,
			Path:     r.Path,
			RawQuery: r.RawQuery,
			Header:   r.Header.Clone(),
			Body:     bytes.Clone(r.Body),
		}
	}
	return out
}

// Count is len(Requests()).
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recorded)
}

// Reset forgets the recorded requests and the pending replays.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recorded = nil
	s.replays = make(map[string][]replayed)
}

// Replay queues one answer for path: the next request to that path, whatever
// its method and body, gets exactly status and body. Several calls queue in
// order. A body starting with "data:" or "event:" is sent as
// text/event-stream, one flushed write per event; any other body as
// application/json. Latency and x-fake-latency-ms still apply.
func (s *Server) Replay(path string, status int, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replays[path] = append(s.replays[path], replayed{status: status, body: bytes.Clone(body)})
}

func (s *Server) nextReplay(path string) (replayed, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.replays[path]
	if len(q) == 0 {
		return replayed{}, false
	}
	s.replays[path] = q[1:]
	return q[0], true
}

// Start serves on addr (":0" picks a free port) until Close, and returns the
// base URL, e.g. "http://127.0.0.1:41234".
func (s *Server) Start(addr string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.httpSrv != nil {
		return "", errors.New("fakevllm: already started")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.httpSrv = srv
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), nil
}

// Close stops a server started with Start, closing its connections; requests
// waiting out a latency end at once. It is a no-op otherwise.
func (s *Server) Close() error {
	s.mu.Lock()
	srv := s.httpSrv
	s.httpSrv = nil
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Close()
}

// ServeHTTP records the request, applies the overrides and answers.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "fakevllm: reading the body: "+err.Error(), "")
		return
	}
	s.record(r, body)

	p, err := resolve(*s.cfg.Load(), r.Header)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), "")
		return
	}
	p.tokens, p.responses, p.path = &s.tokens, &s.store, r.URL.Path
	p.ctx, p.disconnects = r.Context(), &s.disconnects
	if !wait(r.Context(), p.latency) {
		return
	}
	if rep, ok := s.nextReplay(r.URL.Path); ok {
		writeReplay(w, rep, p.chunkSize)
		return
	}
	route(w, r, body, p)
}

func (s *Server) record(r *http.Request, body []byte) {
	rec := Recorded{
		Method:   r.Method,
		Path:     r.URL.Path,
		RawQuery: r.URL.RawQuery,
		Header:   r.Header.Clone(),
		Body:     body,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recorded = append(s.recorded, rec)
}

// wait sleeps d, or less if ctx ends first; it reports whether d passed.
func wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func writeReplay(w http.ResponseWriter, rep replayed, chunkSize int) {
	trimmed := bytes.TrimLeft(rep.body, " \t\r\n")
	if !bytes.HasPrefix(trimmed, []byte("data:")) && !bytes.HasPrefix(trimmed, []byte("event:")) {
		writeBody(w, rep.status, contentTypeJSON, rep.body, chunkSize)
		return
	}
	sse := newSSEWriter(w, params{status: rep.status})
	rest := rep.body
	for len(rest) > 0 {
		n := bytes.Index(rest, []byte("\n\n"))
		if n < 0 {
			n = len(rest)
		} else {
			n += 2
		}
		sse.raw(rest[:n])
		rest = rest[n:]
	}
}

const (
	contentTypeJSON = "application/json"
	contentTypeSSE  = "text/event-stream; charset=utf-8"
)

// writeBody sends body with a Content-Length, as uvicorn does, in flushed
// pieces of chunkSize bytes.
func writeBody(w http.ResponseWriter, status int, contentType string, body []byte, chunkSize int) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	rc := http.NewResponseController(w)
	for len(body) > 0 {
		n := min(chunkSize, len(body))
		if _, err := w.Write(body[:n]); err != nil {
			return
		}
		_ = rc.Flush()
		body = body[n:]
	}
}
