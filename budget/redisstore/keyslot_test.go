package redisstore_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/spendguard/spendguard/budget/redisstore"
)

// TestKeySlot pins values CLUSTER KEYSLOT gives (budget/stores'
// TestCluster compares with a live cluster too).
func TestKeySlot(t *testing.T) {
	for key, want := range map[string]int{
		"":                     0,
		"foo":                  12182,
		"123456789":            12739, // CRC-16/XMODEM check value 0x31C3
		"{user1000}.following": 3443,
		"{user1000}.followers": 3443,
		"foo{}{bar}":           8363, // an empty first tag: the whole key
		"foo{{bar}}zap":        4015, // the tag is "{bar"
		"foo{bar}{zap}":        5061, // the first tag only
	} {
		assert.Equal(t, want, redisstore.KeySlot(key), "key %q", key)
	}
}
