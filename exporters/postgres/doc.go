// Package postgres is spendguard's durable spend ledger in PostgreSQL
// (14 or later): the exporter that writes one row per CostReport, the
// reports that read it, the rebuilding of memory-store counters from it at
// start-up, and the reconciliation of its token counts with vLLM's own
// counters.
//
// # Writing
//
// A serving spendguard opens the ledger with OpenSpooled: Record writes
// each request's row to a local disk spool (package spool) on the
// request's path, before the request is answered, and a shipper writes
// the spooled rows to PostgreSQL in order, in batches, retrying for as
// long as PostgreSQL is away, and removes them from the spool only once
// they are committed. Admit lets the processor refuse requests while the
// spool is full (spool.on_full: refuse). Open is the plain form (tests,
// tools): connected and migrated at once, written with Export.
//
// A batch is one transaction: COPY into a temporary staging table, then
// INSERT ... ON CONFLICT DO NOTHING into spendguard_ledger, whose key is
// (request_id, start_time, end_time). x-request-id comes from clients and
// may repeat, so the id alone is no key; a batch shipped again after a
// crash carries the identical reports and adds no row.
//
// # Schema
//
// The migrations in migrations/ are embedded and applied by Open (or at
// OpenSpooled's first connection) in one
// transaction under an advisory lock, so replicas starting together apply
// each exactly once; spendguard_schema_migrations lists what was applied.
//
// # Reading
//
// Spend aggregates rows by calendar period in any time zone and by scope
// dimensions or built-in keys (spendguard report, GET /v1/spend). Recover
// raises a memory store's counters to the ledger's sums for the current
// periods (never adding, so a snapshot and the ledger count once). The
// reconciler (reconcile.go) compares vLLM's vllm:prompt_tokens_total and
// vllm:generation_tokens_total with the ledger per model and window,
// writes spendguard_reconciliation and reports the drift as metrics.
//
// docs/ledger.md documents the configuration, the table and the reports.
package postgres
