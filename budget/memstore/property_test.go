package memstore_test

import (
	"flag"
	"testing"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/memstore"
	"github.com/spendguard/spendguard/budget/storetest"
)

var propertySeed = flag.Uint64("budget.seed", 0, "seed for the property test (0: random, logged)")

func TestMemoryStoreProperty(t *testing.T) {
	for range 3 {
		storetest.Property(t, func(*testing.T) budget.Store { return memstore.New() }, *propertySeed)
	}
}
