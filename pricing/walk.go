package pricing

import "github.com/spendguard/spendguard/internal/jsonscan"

// walker walks the members of an object or the elements of an array while
// it validates the container, accepting exactly what jsonscan.ValidValue
// accepts. It checks the container's own syntax (brackets, keys, colons,
// commas); the caller validates each value, which lets it measure a value
// (a prompt's text) in the same scan that validates it:
//
//	var w walker
//	w.open(b, i, depth)
//	for {
//		key, v, ok := w.next()
//		if !ok {
//			break
//		}
//		w.after(jsonscan.ValidValue(b, v, w.depth))
//	}
//	end := w.end() // -1 when the container is not valid
type walker struct {
	b []byte
	// i is where the next member or element starts; once the container
	// is closed, its end; -1 once it is found invalid.
	i int
	// depth is the depth of the values inside, for jsonscan.ValidValue.
	depth  int
	object bool
	closed bool
}

// open starts the walk of the object or array at b[i], a value depth
// containers deep, as jsonscan.ValidValue(b, i, depth) would check it.
// (It sets w in place: a walker returned by value was copied with wide
// moves just after its fields were written, which stalled the CPU.)
func (w *walker) open(b []byte, i, depth int) {
	w.b, w.depth, w.object, w.closed = b, depth+1, b[i] == '{', false
	if depth >= jsonscan.MaxDepth {
		w.i = -1
		return
	}
	w.i = jsonscan.SkipSpace(b, i+1)
	if w.i < len(b) && b[w.i] == w.closer() {
		w.i++
		w.closed = true
	}
}

func (w *walker) closer() byte {
	if w.object {
		return '}'
	}
	return ']'
}

// next returns where the next value starts, and in an object its key as
// written (the bytes between the quotes, already validated); false after
// the last value or once the container is found invalid.
func (w *walker) next() (key []byte, v int, ok bool) {
	if w.closed || w.i < 0 {
		return nil, 0, false
	}
	if !w.object {
		return nil, w.i, true
	}
	b, i := w.b, w.i
	if i >= len(b) || b[i] != '"' {
		w.i = -1
		return nil, 0, false
	}
	kend := jsonscan.ValidValue(b, i, w.depth) // a string: depth is unused
	if kend < 0 {
		w.i = -1
		return nil, 0, false
	}
	if j := jsonscan.SkipSpace(b, kend); j < len(b) && b[j] == ':' {
		return b[i+1 : kend-1], jsonscan.SkipSpace(b, j+1), true
	}
	w.i = -1
	return nil, 0, false
}

// after moves past the value next returned, which ends at end (-1 when it
// is not valid), and past the comma or the closing bracket after it.
func (w *walker) after(end int) {
	if end < 0 {
		w.i = -1
		return
	}
	i := jsonscan.SkipSpace(w.b, end)
	switch {
	case i >= len(w.b):
		w.i = -1
	case w.b[i] == ',':
		w.i = jsonscan.SkipSpace(w.b, i+1)
	case w.b[i] == w.closer():
		w.i = i + 1
		w.closed = true
	default:
		w.i = -1
	}
}

// end returns the end of the container once next has returned false: the
// index after its closing bracket, or -1 when it is not valid.
func (w *walker) end() int {
	if !w.closed {
		return -1
	}
	return w.i
}

// at is b[i], or 0 past the end of b.
func at(b []byte, i int) byte {
	if i < len(b) {
		return b[i]
	}
	return 0
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
