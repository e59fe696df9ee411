package processor

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
)

// maxStreamBytes is the allocator's size class the stream struct fits:
// every request in flight holds one for its whole life (pooled, but one
// per concurrent stream), so crossing into the next class (2048, then
// 2304) costs every idle in-flight stream that much more memory.
const maxStreamBytes = 1792

// TestStreamSize guards the memory of an in-flight request. Issue 18 had
// grown the stream from 1656 to 2112 bytes, mostly through
// pricing.Body's fields; a new field that pushes it past the class should
// be weighed against that (docs/performance.md, "What is left").
func TestStreamSize(t *testing.T) {
	assert.LessOrEqual(t, unsafe.Sizeof(stream{}), uintptr(maxStreamBytes),
		"the stream struct outgrew its size class")
}
