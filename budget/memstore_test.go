package budget_test

import (
	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/memstore"
)

// The in-package tests run on the memory store (see TestStore).
func init() {
	budget.NewTestStore = func() budget.TestStore { return memstore.New() }
}
