package budget

import "github.com/spendguard/spendguard/internal/money"

// TestStore is what the tests of this package need of a store: a real
// one that can list its counters and take restored spend, the memory
// store. Package budget cannot import budget/memstore (which imports
// budget), so the external test file memstore_test.go sets NewTestStore
// in an init function, before any test or benchmark runs.
type TestStore interface {
	Store
	Lister
	RestoreCommitted(it Item, committed money.Nano)
}

// NewTestStore returns an empty TestStore (a memstore.Store).
var NewTestStore func() TestStore
