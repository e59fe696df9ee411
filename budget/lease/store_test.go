package lease_test

import (
	"context"
	"testing"
	"time"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/lease"
	"github.com/spendguard/spendguard/budget/lease/leasetest"
	"github.com/spendguard/spendguard/budget/storetest"
)

// newStore is a lease Store on a fresh Model, without background loop.
func newStore(t testing.TB, b lease.Backend) *lease.Store {
	t.Helper()
	s := lease.New(b, lease.Options{SyncInterval: -1, Now: func() time.Time { return storetest.T0 }})
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// TestStoreContract: one replica on leases keeps the budget.Store
// contract exactly (the suite's exact fits, windows, expiry, extends and
// absurd amounts).
func TestStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) budget.Store { return newStore(t, leasetest.NewModel()) })
}
