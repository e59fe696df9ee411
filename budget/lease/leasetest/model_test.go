package leasetest_test

import (
	"testing"

	"github.com/spendguard/spendguard/budget/lease"
	"github.com/spendguard/spendguard/budget/lease/leasetest"
)

func TestModelConformance(t *testing.T) {
	leasetest.Run(t, func(*testing.T) lease.Backend { return leasetest.NewModel() })
}

func TestModelForfeits(t *testing.T) {
	leasetest.RunForfeits(t, func(*testing.T) leasetest.Settler { return leasetest.NewModel() })
}
