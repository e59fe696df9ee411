// Package exporters fans spendguard's reporting events (sink.Event) out to
// the configured destinations — OTLP traces (Langfuse and any OTLP
// backend), Helicone, budget alert webhooks, a JSON log — and to those
// built outside and passed to New (the PostgreSQL spend ledger,
// exporters/postgres, which the app opens because it also reads it),
// without ever slowing a request down. It imports neither the processor
// nor the metrics: the app hands each event to both and shows Stats in
// the metrics (cmd/spendguard/app/reporting.go).
//
// # The request path only enqueues
//
// Fanout.Report offers the *sink.Event to each exporter's bounded queue
// with a non-blocking send. A full queue drops the report and
// counts the drop (spendguard_exporter_dropped_total{reason="queue_full"});
// nothing on the request path waits for a network, a disk or a lock held
// during I/O. The webhook exporter additionally detects budget cap crossings
// at that point (a map lookup per budget state under a mutex), so that an
// alert is never lost to a full queue.
//
// # Per-exporter queues
//
// Each exporter has its own queue (exporters.queue_size) and workers, so a
// destination that hangs or fails fills only its own queue: the others
// keep delivering. A worker takes whatever is queued, up to
// exporters.batch_size (OTLP, log, ledger) or one item (Helicone, webhook: one
// HTTP call per item), without waiting for more, and delivers it with a
// per-attempt timeout (exporters.timeout). A failure is retried after a
// random wait of up to retry_backoff·2^n (capped at retry_backoff_max:
// exponential backoff with full jitter) for exporters.retry_for from the
// batch's first attempt, and at most exporters.max_retries times when that
// is set, unless it is permanent (a 4xx answer other than 408 and 429). A
// batch that still fails is dropped and counted (reason="failed"). The
// queue keeps accepting meanwhile, up to its size. Failures are logged
// once per outage: when the first attempt fails, and when one succeeds
// again, with how long it lasted and what it dropped.
//
// # Shutdown
//
// Fanout.Shutdown stops accepting reports and lets every exporter flush its
// queue in parallel until the context's deadline; then deliveries in
// progress are cancelled and what is left is dropped and counted
// (reason="shutdown"). Every report offered to an exporter is counted
// exactly once: sent or dropped with a reason.
//
// # What an event carries besides the report
//
// sink.Event carries the request JSON (Helicone only: see
// WantsRequestBody) and the post-settle budget states (WantsBudgets) from
// which the webhook detects crossings and the metrics set per-scope
// gauges. The processor gathers only what these ask for.
//
// # Configuration
//
// Config is the `exporters:` section, decoded strictly (unknown keys are
// errors with their line, even though yaml.v3 drops KnownFields inside a
// custom unmarshaler) and validated with every problem reported at once.
// docs/exporters.md documents every key and each format.
package exporters
