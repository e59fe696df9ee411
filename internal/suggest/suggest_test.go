package suggest

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestKey(t *testing.T) {
	allowed := []string{"backend", "memory", "redis", "on_error", "timezone"}
	tests := map[string]string{
		"backnd":   `; did you mean "backend"?`,
		"Redis":    `; did you mean "redis"?`,
		"timezon":  `; did you mean "timezone"?`,
		"time":     `; did you mean "timezone"?`,
		"zzz":      "",
		"re":       "",
		"onerror":  `; did you mean "on_error"?`,
		"complete": "",
	}
	for in, want := range tests {
		assert.Equal(t, want, Key(in, allowed), in)
	}
	assert.Equal(t, 3, editDistance("kitten", "sitting"))
}
