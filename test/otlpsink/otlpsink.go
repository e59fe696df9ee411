// Package otlpsink is an OTLP/HTTP traces receiver for tests: it decodes
// each POST body (gzip or not) as a real ExportTraceServiceRequest
// protobuf, with the OpenTelemetry proto definitions, and keeps the spans
// with their attributes as plain Go values. A body that does not decode is
// answered 400 and counted, never kept.
package otlpsink

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"

	"github.com/spendguard/spendguard/test/httpsink"
)

// Span is one received span.
type Span struct {
	TraceID  string // hex
	SpanID   string // hex
	ParentID string // hex, "" for a root span
	Name     string
	Kind     string
	Start    time.Time
	End      time.Time
	Status   string // STATUS_CODE_UNSET, STATUS_CODE_ERROR, ...
	Message  string // status message
	Attrs    map[string]any
	Resource map[string]any
	Scope    string // instrumentation scope name
}

// Sink receives OTLP traces.
type Sink struct {
	*httpsink.Server
	mu      sync.Mutex
	spans   []Span
	invalid atomic.Int64
}

// New starts a sink on 127.0.0.1. Point an exporter at URL()+"/v1/traces".
func New() *Sink {
	s := &Sink{}
	s.Server = httpsink.New(s.handle)
	return s
}

// Spans returns every span received, in arrival order.
func (s *Sink) Spans() []Span {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Span(nil), s.spans...)
}

// Invalid counts requests whose body was not a valid OTLP protobuf.
func (s *Sink) Invalid() int64 { return s.invalid.Load() }

func (s *Sink) handle(w http.ResponseWriter, r httpsink.Request) int {
	spans, err := Decode(r.Header, r.Body)
	if err != nil {
		s.invalid.Add(1)
		w.Header().Set("Content-Type", "text/plain")
		return http.StatusBadRequest
	}
	s.mu.Lock()
	s.spans = append(s.spans, spans...)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	return 0
}

// Decode decodes an OTLP/HTTP protobuf traces request body.
func Decode(h http.Header, body []byte) ([]Span, error) {
	if ct := h.Get("Content-Type"); ct != "application/x-protobuf" {
		return nil, fmt.Errorf("content-type %q is not application/x-protobuf", ct)
	}
	if h.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		if body, err = io.ReadAll(zr); err != nil {
			return nil, err
		}
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		return nil, err
	}
	var out []Span
	for _, rs := range req.GetResourceSpans() {
		res := attrs(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				out = append(out, Span{
					TraceID:  hex.EncodeToString(sp.GetTraceId()),
					SpanID:   hex.EncodeToString(sp.GetSpanId()),
					ParentID: hex.EncodeToString(sp.GetParentSpanId()),
					Name:     sp.GetName(),
					Kind:     sp.GetKind().String(),
					Start:    time.Unix(0, int64(sp.GetStartTimeUnixNano())),
					End:      time.Unix(0, int64(sp.GetEndTimeUnixNano())),
					Status:   sp.GetStatus().GetCode().String(),
					Message:  sp.GetStatus().GetMessage(),
					Attrs:    attrs(sp.GetAttributes()),
					Resource: res,
					Scope:    ss.GetScope().GetName(),
				})
			}
		}
	}
	return out, nil
}

func attrs(kvs []*commonpb.KeyValue) map[string]any {
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		m[kv.GetKey()] = value(kv.GetValue())
	}
	return m
}

// value converts an AnyValue: string, bool, int64, float64, []any or
// map[string]any.
func value(v *commonpb.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonpb.AnyValue_ArrayValue:
		out := make([]any, 0, len(x.ArrayValue.GetValues()))
		for _, e := range x.ArrayValue.GetValues() {
			out = append(out, value(e))
		}
		return out
	case *commonpb.AnyValue_KvlistValue:
		return attrs(x.KvlistValue.GetValues())
	case *commonpb.AnyValue_BytesValue:
		return x.BytesValue
	default:
		return nil
	}
}
