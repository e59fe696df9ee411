// Package otlp exports one OpenTelemetry span per metered request over
// OTLP/HTTP (protobuf), for Langfuse's OTLP endpoint or any OTLP traces
// backend (Tempo, Jaeger, Phoenix).
//
// Spans are built with the OpenTelemetry Go SDK and sent with its
// otlptracehttp exporter, but the SDK's own batching and retries are not
// used: the fan-out (package exporters) queues, batches and retries, and
// Export sends one batch per call. Each span carries the GenAI semantic
// convention attributes (gen_ai.*), Langfuse's langfuse.observation.*
// attributes (type generation, model name, usage_details, cost_details),
// user.id and the request's scope as spendguard.scope.<dimension> (and as
// Langfuse trace metadata). See docs/exporters.md for the full list.
//
// Trace and span ids are derived from the request id (SHA-256), so a
// retried batch re-sends the same spans instead of duplicating them, and
// anyone holding an x-request-id can compute its trace id (TraceID).
package otlp

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/spendguard/spendguard/exporters/sink"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
)

// Exporter sends spans to one OTLP/HTTP endpoint. Export is safe for
// concurrent use.
type Exporter struct {
	cfg    Config
	client *otlptrace.Exporter
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer

	mu    sync.Mutex // serialises span building into ended
	ended []sdktrace.ReadOnlySpan
}

var _ sink.Exporter = (*Exporter)(nil)

// New returns an Exporter for cfg (validated by the caller). version is
// spendguard's version, exported as service.version.
func New(cfg Config, version string) (*Exporter, error) {
	cfg = cfg.WithDefaults()
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("otlp exporter: %s: %s", errs[0].Field, errs[0].Msg)
	}
	compression := otlptracehttp.GzipCompression
	if cfg.Compression == "none" {
		compression = otlptracehttp.NoCompression
	}
	client, err := otlptrace.New(context.Background(), otlptracehttp.NewClient(
		otlptracehttp.WithEndpointURL(cfg.Endpoint),
		otlptracehttp.WithHeaders(cfg.Headers),
		otlptracehttp.WithCompression(compression),
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}),
		otlptracehttp.WithHTTPClient(&http.Client{Transport: statusTransport{http.DefaultTransport}}),
	))
	if err != nil {
		return nil, fmt.Errorf("otlp exporter: %w", err)
	}
	e := &Exporter{cfg: cfg, client: client}
	res := resource.NewSchemaless(attribute.String("service.name", cfg.ServiceName), attribute.String("service.version", version))
	e.tp = sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithIDGenerator(requestIDs{}),
		sdktrace.WithSpanProcessor(collector{e}),
		sdktrace.WithRawSpanLimits(sdktrace.SpanLimits{
			AttributeCountLimit: 128, EventCountLimit: 0, LinkCountLimit: 0,
			AttributeValueLengthLimit: 4096, AttributePerEventCountLimit: 0, AttributePerLinkCountLimit: 0,
		}),
	)
	e.tracer = e.tp.Tracer("github.com/spendguard/spendguard/exporters/otlp")
	return e, nil
}

// Export sends one span per event in one OTLP request. A 4xx answer other
// than 408 and 429 is a permanent error; anything else may be retried.
func (e *Exporter) Export(ctx context.Context, batch []*sink.Event) error {
	spans := e.build(batch)
	var status int
	err := e.client.ExportSpans(withStatus(ctx, &status), spans)
	if err == nil {
		return nil
	}
	if status != 0 && !sink.Retryable(status) && (status < 200 || status > 299) {
		return sink.Permanent(err)
	}
	return err
}

// build turns the batch into ended spans.
func (e *Exporter) build(batch []*sink.Event) []sdktrace.ReadOnlySpan {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ended = make([]sdktrace.ReadOnlySpan, 0, len(batch))
	for _, ev := range batch {
		r := ev.Report
		ctx := context.WithValue(context.Background(), requestIDKey{}, r.GetRequestId())
		_, span := e.tracer.Start(ctx, spanName(r),
			trace.WithNewRoot(),
			trace.WithSpanKind(trace.SpanKindClient),
			trace.WithTimestamp(r.GetStartTime().AsTime()),
			trace.WithAttributes(e.attributes(r)...))
		code, msg := status(r)
		span.SetStatus(code, msg)
		span.End(trace.WithTimestamp(r.GetEndTime().AsTime()))
	}
	spans := e.ended
	e.ended = nil
	return spans
}

// status is the span status: Error for a rejection, an upstream error or
// an abort; Unset otherwise (the convention for successful client spans).
func status(r *spendguardv1.CostReport) (codes.Code, string) {
	switch {
	case r.GetDecision() == spendguardv1.Decision_DECISION_REJECTED:
		return codes.Error, r.GetRejectReason()
	case r.GetUpstreamStatus() >= 400:
		return codes.Error, fmt.Sprintf("upstream answered %d", r.GetUpstreamStatus())
	case r.GetCut():
		return codes.Error, cutMessage(r)
	case r.GetAborted():
		return codes.Error, "request ended before the response was complete"
	}
	return codes.Unset, ""
}

// Close releases the HTTP client.
func (e *Exporter) Close(ctx context.Context) error {
	return e.client.Shutdown(ctx)
}

// TraceID is the trace id of the span exported for requestID.
func TraceID(requestID string) trace.TraceID {
	sum := sha256.Sum256([]byte(requestID))
	var id trace.TraceID
	copy(id[:], sum[:16])
	return id
}

// requestIDs derives ids from the request id in the context.
type requestIDs struct{}

type requestIDKey struct{}

func (requestIDs) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	id, _ := ctx.Value(requestIDKey{}).(string)
	sum := sha256.Sum256([]byte(id))
	var t trace.TraceID
	var s trace.SpanID
	copy(t[:], sum[:16])
	copy(s[:], sum[16:24])
	return t, s
}

func (g requestIDs) NewSpanID(ctx context.Context, _ trace.TraceID) trace.SpanID {
	_, s := g.NewIDs(ctx)
	return s
}

// collector is a span processor that hands ended spans to build.
type collector struct{ e *Exporter }

func (collector) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (c collector) OnEnd(s sdktrace.ReadOnlySpan)                 { c.e.ended = append(c.e.ended, s) }
func (collector) Shutdown(context.Context) error                  { return nil }
func (collector) ForceFlush(context.Context) error                { return nil }

// statusTransport records the HTTP status of an export in the request's
// context (see withStatus), so that Export can tell a permanent answer
// from a transient one.
type statusTransport struct{ next http.RoundTripper }

type statusKey struct{}

func withStatus(ctx context.Context, status *int) context.Context {
	return context.WithValue(ctx, statusKey{}, status)
}

func (t statusTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if p, ok := req.Context().Value(statusKey{}).(*int); ok && resp != nil {
		*p = resp.StatusCode
	}
	return resp, err
}
