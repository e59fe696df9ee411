package app

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestCleanupUnwindsInReverseOnce(t *testing.T) {
	var order []string
	var c cleanup
	for _, name := range []string{"store", "exporters", "grpc"} {
		c.push(func() error {
			order = append(order, name)
			if name == "exporters" {
				return errors.New("exporters: flush timed out")
			}
			return nil
		})
	}
	err := c.unwind()
	assert.Equal(t, []string{"grpc", "exporters", "store"}, order, "last opened, first closed; a failing closer does not stop the others")
	assert.EqualError(t, err, "exporters: flush timed out")
	assert.NoError(t, c.unwind(), "a second unwind has nothing left to close")
	assert.Len(t, order, 3)
}
