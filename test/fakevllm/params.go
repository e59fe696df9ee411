package fakevllm

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
)

// derive marks a token count to be derived from the request.
const derive = -1

// params is the configuration for one request: Config with the override
// headers applied.
type params struct {
	prompt, completion int // derive, or the count to report
	cached             int
	status             int // 0: answer normally
	latency            time.Duration
	model              string // "" echoes the request's model
	knownModels        []string
	dims               int // 0: the request's dimensions, or the default
	chunkSize          int
	abortAfter         int           // >0: cut the connection after this many SSE events
	eventDelay         time.Duration // pause before each SSE event after the first
	errorAfter         int           // >0: send a mid-stream error event after this many content events
	tokens             *tokenCounts  // the server's counters (GET /metrics)
	forceUsage         bool          // vLLM's --enable-force-include-usage
	backgroundDelay    time.Duration // how long a background response stays pending
	backgroundStatus   string        // what a pending background response reports
	responses          *responseStore
	path               string // the request's path
	contentType        string // the request's Content-Type, for multipart bodies
	stopAfter          int    // >0: tokens per choice before the model stops by itself
	ctx                context.Context
	disconnects        *atomic.Int64 // the server's count of streams cut by their client
}

func resolve(cfg Config, h http.Header) (params, error) {
	p := params{
		prompt:           positiveOr(cfg.PromptTokens, derive),
		completion:       positiveOr(cfg.CompletionTokens, derive),
		cached:           max(cfg.CachedTokens, 0),
		latency:          max(cfg.Latency, 0),
		model:            cfg.ServedModelName,
		knownModels:      cfg.KnownModels,
		dims:             max(cfg.EmbeddingDims, 0),
		chunkSize:        positiveOr(cfg.WriteChunkSize, defaultWriteChunkSize),
		forceUsage:       cfg.ForceIncludeUsage,
		backgroundDelay:  max(cfg.BackgroundDelay, 0),
		backgroundStatus: "queued",
		stopAfter:        max(cfg.StopAfterTokens, 0),
	}
	ints := []struct {
		name     string
		min, max int
		dst      *int
	}{
		{HeaderPromptTokens, 0, 1 << 40, &p.prompt},
		{HeaderCompletionTokens, 0, 1 << 40, &p.completion},
		{HeaderCachedTokens, 0, 1 << 40, &p.cached},
		{HeaderStatus, 100, 599, &p.status},
		{HeaderEmbeddingDims, 1, 1 << 20, &p.dims},
		{HeaderAbortAfterEvents, 1, 1 << 30, &p.abortAfter},
		{HeaderErrorAfterEvents, 1, 1 << 30, &p.errorAfter},
		{HeaderStopAfterTokens, 1, 1 << 30, &p.stopAfter},
	}
	for _, f := range ints {
		if err := headerInt(h, f.name, f.min, f.max, f.dst); err != nil {
			return params{}, err
		}
	}
	ms := -1
	if err := headerInt(h, HeaderLatencyMS, 0, 1<<31, &ms); err != nil {
		return params{}, err
	}
	if ms >= 0 {
		p.latency = time.Duration(ms) * time.Millisecond
	}
	ms = -1
	if err := headerInt(h, HeaderEventDelayMS, 0, 60_000, &ms); err != nil {
		return params{}, err
	}
	if ms >= 0 {
		p.eventDelay = time.Duration(ms) * time.Millisecond
	}
	ms = -1
	if err := headerInt(h, HeaderBackgroundMS, 0, 1<<40, &ms); err != nil {
		return params{}, err
	}
	if ms >= 0 {
		p.backgroundDelay = time.Duration(ms) * time.Millisecond
	}
	switch v := h.Get(HeaderBackgroundStatus); v {
	case "":
	case "queued", "in_progress":
		p.backgroundStatus = v
	default:
		return params{}, fmt.Errorf("fakevllm: header %s=%q: want queued or in_progress", HeaderBackgroundStatus, v)
	}
	switch v := h.Get(HeaderForceIncludeUsage); v {
	case "":
	case "1", "true":
		p.forceUsage = true
	case "0", "false":
		p.forceUsage = false
	default:
		return params{}, fmt.Errorf("fakevllm: header %s=%q: want true or false", HeaderForceIncludeUsage, v)
	}
	if v := h.Get(HeaderModel); v != "" {
		p.model = v
	}
	return p, nil
}

// headerInt sets *dst from header name when it is present.
func headerInt(h http.Header, name string, lo, hi int, dst *int) error {
	v := h.Get(name)
	if v == "" {
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return fmt.Errorf("fakevllm: header %s=%q: want an integer in [%d, %d]", name, v, lo, hi)
	}
	*dst = n
	return nil
}

func positiveOr(v, fallback int) int {
	if v > 0 {
		return v
	}
	return fallback
}

// modelFor returns the model name to report for a request naming requested,
// or ok=false when the model is not served.
func (p params) modelFor(requested string) (name string, ok bool) {
	if requested != "" && len(p.knownModels) > 0 && !slices.Contains(p.knownModels, requested) {
		return "", false
	}
	switch {
	case p.model != "":
		return p.model, true
	case requested != "":
		return requested, true
	case len(p.knownModels) > 0:
		return p.knownModels[0], true
	default:
		return DefaultModel, true
	}
}

// servedModels is what GET /v1/models lists.
func (p params) servedModels() []string {
	var out []string
	for _, m := range append([]string{p.model}, p.knownModels...) {
		if m != "" && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		out = []string{DefaultModel}
	}
	return out
}
