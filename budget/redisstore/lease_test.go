package redisstore_test

import (
	"testing"

	"github.com/spendguard/spendguard/budget/lease"
	"github.com/spendguard/spendguard/budget/lease/leasetest"
	"github.com/spendguard/spendguard/budget/redisstore"
)

// TestLeaseConformance runs the lease.Backend suite on Redis.
func TestLeaseConformance(t *testing.T) {
	leasetest.Run(t, func(t *testing.T) lease.Backend {
		s, _, _ := newStore(t)
		return s
	})
}

var _ lease.Backend = (*redisstore.Store)(nil)
