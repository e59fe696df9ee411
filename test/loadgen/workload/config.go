package workload

import (
	"errors"
	"fmt"

	"github.com/spendguard/spendguard/config"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/pricing"
)

// Store names the budget store of a spendguard target.
type Store string

// Stores spendguard runs with. MemoryLedger is the memory store with the
// PostgreSQL spend ledger on (LedgerSection): every request's row
// written to the local spool before its last answer, then shipped.
const (
	Memory       Store = "memory"
	Redis        Store = "redis"
	MemoryLedger Store = "memory+ledger"
)

// Ledger says whether spendguard runs with the PostgreSQL ledger for s.
func (s Store) Ledger() bool { return s == MemoryLedger }

// Config is spendguard's configuration under load, shaped like the
// example configuration: a per-tenant monthly budget with a soft-cap
// downgrade, a fleet-wide daily budget and a per-user rolling guard, all
// with caps no run can reach. storeSection is the `store:` section.
func Config(storeSection string) string {
	return `version: 1
identity:
  dimensions:
    tenant:
      - header: x-tenant-id
      - default: unknown
    user:
      - header: x-user-id
      - body_field: user
      - default: anonymous
pricing:
  models:
    - match: ` + Model + `
      input: 0.60
      cached_input: 0.30
      output: 0.80
    - match: meta-llama/Llama-3.1-8B-Instruct
      input: 0.06
      output: 0.06
  default_max_output_tokens: 1024
budgets:
  - name: tenant-monthly
    match: {tenant: "*"}
    period: month
    soft_usd: 900000
    hard_usd: 1000000
    on_soft:
      downgrade:
        ` + Model + `: meta-llama/Llama-3.1-8B-Instruct
  - name: fleet-daily
    period: day
    hard_usd: 1000000
  - name: runaway-agent-guard
    match: {user: "*"}
    rolling: 10m
    hard_usd: 100000
limits:
  max_request_usd: 2.00
  reservation_ttl: 10m
` + storeSection
}

// StoreSection is the `store:` section for a store; a Redis store uses
// the server at redisAddr under prefix, with a call timeout loose enough
// for two loaded cores. MemoryLedger's is the memory store's: its
// ledger is LedgerSection.
func StoreSection(s Store, redisAddr, prefix string) string {
	if s == Redis {
		return fmt.Sprintf("store:\n  backend: redis\n  redis:\n    address: %s\n    key_prefix: %q\n    timeout: 1s\n", redisAddr, prefix)
	}
	return "store:\n  backend: memory\n"
}

// LedgerSection is the `exporters:` section of the PostgreSQL spend
// ledger writing to the database at dsn through a spool in spoolDir.
func LedgerSection(dsn, spoolDir string) string {
	return fmt.Sprintf("exporters:\n  postgres:\n    dsn: %q\n    spool:\n      dir: %q\n", dsn, spoolDir)
}

// ExpectedCost is what spendguard charges for one lifecycle: the usage
// every response reports, priced by Config.
func ExpectedCost() (money.Nano, error) {
	cfg, err := config.Parse([]byte(Config(StoreSection(Memory, "", ""))))
	if err != nil {
		return 0, err
	}
	price, ok := cfg.Snapshot.Pricing.Lookup(Model)
	if !ok {
		return 0, errors.New("workload: the model has no price")
	}
	return price.Cost(pricing.Usage{Prompt: PromptTokens, Completion: CompletionTokens}).Total, nil
}
