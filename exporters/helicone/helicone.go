// Package helicone logs every forwarded request to Helicone's custom-model
// endpoint (POST /custom/v1/log), one call per request, with
// "Authorization: Bearer <api_key>".
//
// The body (docs/exporters.md shows a full example):
//
//		{"providerRequest": {"url": "custom-model-nopath", "json": <request>, "meta": {...}},
//		 "providerResponse": {"json": <response>, "status": <upstream status>, "headers": {}},
//		 "timing": {"startTime": {"seconds", "milliseconds"}, "endTime": {...}, "timeToFirstToken": <ms>}}
//
//	  - providerRequest.json is the request body as forwarded upstream. When
//	    it was not captured, is not a JSON object, or is larger than
//	    max_request_bytes, a stub {"model": ..., "spendguard_request_omitted": reason}
//	    stands in.
//	  - providerResponse.json is the upstream's body when the processor kept
//	    it (small, non-streamed responses), else a synthetic OpenAI-style
//	    body carrying the usage spendguard parsed (for streams: the final
//	    usage event), so that Helicone counts the tokens. A synthetic body
//	    says so in "spendguard": {"synthetic": true, ...}.
//	  - meta holds Helicone-User-Id (the user dimension), one
//	    Helicone-Property-<dimension> per scope value, and
//	    Helicone-Property-Spendguard-* properties (decision, budget, cost in
//	    USD, estimated, request id). Helicone-Request-Id is the request id
//	    when it is a UUID.
//	  - timeToFirstToken is the upstream's time to its response headers in
//	    milliseconds (for a stream, close to the first token).
//
// Requests spendguard rejected itself never reached a model and are not
// logged to Helicone (Accept); metrics, OTLP and the JSON log show them.
package helicone

import (
	"context"
	"net/http"

	"github.com/spendguard/spendguard/exporters/sink"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
)

// Exporter sends logs to Helicone.
type Exporter struct {
	cfg     Config
	client  *http.Client
	headers map[string]string
}

var _ sink.Exporter = (*Exporter)(nil)

// New returns an Exporter for cfg (validated by the caller).
func New(cfg Config) *Exporter {
	cfg = cfg.WithDefaults()
	return &Exporter{
		cfg:     cfg,
		client:  &http.Client{Transport: http.DefaultTransport},
		headers: map[string]string{"Authorization": "Bearer " + cfg.APIKey},
	}
}

// Concurrency is how many logs may be in flight at once.
func (e *Exporter) Concurrency() int { return e.cfg.Concurrency }

// MaxQueueBytes is the cap on the bodies held in the exporter's queue.
func (e *Exporter) MaxQueueBytes() int64 { return e.cfg.MaxQueueBytes }

// Size is what ev holds in the queue, for MaxQueueBytes: its request body
// plus a little for the report.
func Size(ev *sink.Event) int64 { return int64(len(ev.RequestJSON)) + 1024 }

// Accept reports whether ev is logged: every request that was forwarded
// upstream (not rejected by spendguard).
func Accept(ev *sink.Event) bool {
	return ev.Report.GetDecision() != spendguardv1.Decision_DECISION_REJECTED
}

// Export sends each event of the batch in its own call (the fan-out runs
// this exporter with batches of one, so a retry never repeats a log that
// was already accepted).
func (e *Exporter) Export(ctx context.Context, batch []*sink.Event) error {
	for _, ev := range batch {
		body, err := Body(ev, e.cfg)
		if err != nil {
			return sink.Permanent(err)
		}
		if err := sink.PostJSON(ctx, e.client, e.cfg.Endpoint, e.headers, body); err != nil {
			return err
		}
	}
	return nil
}

// Close releases idle connections.
func (e *Exporter) Close(context.Context) error {
	e.client.CloseIdleConnections()
	return nil
}
