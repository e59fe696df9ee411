package redisstore_test

import (
	"testing"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/storetest"
)

// TestProperty runs the engine's random concurrent reserve/settle property
// on a real Redis: caps are never passed through admission, commits add
// up, reserved returns to zero.
func TestProperty(t *testing.T) {
	storetest.Property(t, func(t *testing.T) budget.Store {
		s, _, _ := newStore(t)
		return s
	}, 0)
}
