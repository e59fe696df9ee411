package fakevllm

// The fake server: its configuration, the requests it records, replays,
// and the routing of each request to its endpoint's handler.

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
