package pricing

import (
	"fmt"
	"testing"

	"github.com/spendguard/spendguard/internal/jsonscan"
	"github.com/stretchr/testify/assert"
)

// TestFieldOf checks fieldOf's switch against fieldNames, and that it
// matches keys as jsonscan.KeyIs does.
func TestFieldOf(t *testing.T) {
	for k, name := range fieldNames {
		assert.Equal(t, field(k), fieldOf([]byte(name)), name)
		// The first letter written as a \u escape decodes to the name too.
		esc := []byte(fmt.Sprintf(`\u%04x%s`, name[0], name[1:]))
		assert.True(t, jsonscan.KeyIs(esc, name))
		assert.Equal(t, field(k), fieldOf(esc), "%s", esc)
		assert.Equal(t, noField, fieldOf([]byte(name+"x")), name+"x")
		assert.Equal(t, noField, fieldOf([]byte(name+`\n`)), name+`\n`)
	}
	assert.Equal(t, noField, fieldOf([]byte("temperature")))
	assert.Equal(t, noField, fieldOf([]byte("mod\xffel")))
}
