// Package heliconesink is a Helicone-shaped receiver for tests: it accepts
// POST /custom/v1/log with a bearer token, decodes the body strictly into
// the documented HeliconeAsyncLogRequest shape (unknown fields are an
// error) and answers 200 with a helicone-id header, as Helicone does. A
// body that does not fit is answered 400 and counted, never kept.
package heliconesink

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/spendguard/spendguard/test/httpsink"
)

// Log is one received log, in Helicone's documented shape.
type Log struct {
	ProviderRequest struct {
		URL  string            `json:"url"`
		JSON map[string]any    `json:"json"`
		Meta map[string]string `json:"meta"`
	} `json:"providerRequest"`
	ProviderResponse struct {
		JSON     map[string]any    `json:"json"`
		TextBody string            `json:"textBody"`
		Status   int               `json:"status"`
		Headers  map[string]string `json:"headers"`
	} `json:"providerResponse"`
	Timing *struct {
		StartTime        Stamp    `json:"startTime"`
		EndTime          Stamp    `json:"endTime"`
		TimeToFirstToken *float64 `json:"timeToFirstToken"`
	} `json:"timing"`

	// Authorization is the request's Authorization header.
	Authorization string `json:"-"`
}

// Stamp is Helicone's time: whole seconds and the milliseconds past them.
type Stamp struct {
	Seconds      int64 `json:"seconds"`
	Milliseconds int64 `json:"milliseconds"`
}

// Sink receives Helicone logs.
type Sink struct {
	*httpsink.Server
	mu      sync.Mutex
	logs    []Log
	invalid atomic.Int64
	ids     atomic.Int64
}

// New starts a sink on 127.0.0.1. Point the exporter at URL()+"/custom/v1/log".
func New() *Sink {
	s := &Sink{}
	s.Server = httpsink.New(s.handle)
	return s
}

// Logs returns the logs received, in arrival order.
func (s *Sink) Logs() []Log {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Log(nil), s.logs...)
}

// Invalid counts bodies that did not fit the documented shape.
func (s *Sink) Invalid() int64 { return s.invalid.Load() }

func (s *Sink) handle(w http.ResponseWriter, r httpsink.Request) int {
	l, err := Decode(r)
	if err != nil {
		s.invalid.Add(1)
		return http.StatusBadRequest
	}
	s.mu.Lock()
	s.logs = append(s.logs, l)
	s.mu.Unlock()
	w.Header().Set("helicone-id", fmt.Sprintf("00000000-0000-4000-8000-%012d", s.ids.Add(1)))
	return 0
}

// Decode checks a request the way Helicone's endpoint would.
func Decode(r httpsink.Request) (Log, error) {
	var l Log
	if r.Method != http.MethodPost || r.Path != "/custom/v1/log" {
		return l, fmt.Errorf("%s %s is not POST /custom/v1/log", r.Method, r.Path)
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		return l, fmt.Errorf("content-type %q", r.Header.Get("Content-Type"))
	}
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "Bearer ") || len(auth) == len("Bearer ") {
		return l, fmt.Errorf("no bearer token")
	}
	if len(r.Body) > 10<<20 {
		return l, fmt.Errorf("body over 10 MB")
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return l, err
	}
	if l.ProviderRequest.URL == "" || l.ProviderRequest.JSON == nil || l.ProviderResponse.Status == 0 {
		return l, fmt.Errorf("providerRequest.url, providerRequest.json and providerResponse.status are required")
	}
	l.Authorization = auth
	return l, nil
}
