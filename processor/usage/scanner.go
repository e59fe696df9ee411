package usage

import (
	"errors"
	"fmt"

	"github.com/spendguard/spendguard/internal/jsonscan"
	"github.com/spendguard/spendguard/pricing"
)

// MaxUsageBytes is the most bytes of a top-level usage value the scanner
// captures. A larger value is an error (ErrUsageTooLarge).
const MaxUsageBytes = 64 << 10

// maxDepth is the deepest nesting of objects and arrays accepted: the same
// limit as encoding/json.
const maxDepth = 10000

// usageKey is the top-level key whose value is captured (unless the scanner
// was given another path, see path.go).
const usageKey = "usage"

// Errors returned by JSONScanner.Result and ParseUsageObject, always wrapped
// with details; test with errors.Is.
var (
	// ErrMalformed: the body is not valid JSON.
	ErrMalformed = errors.New("usage: malformed JSON")
	// ErrTruncated: the body ended before its JSON value was complete.
	ErrTruncated = errors.New("usage: truncated JSON")
	// ErrUsage: the usage member is present but cannot be decoded.
	ErrUsage = errors.New("usage: undecodable usage")
	// ErrUsageTooLarge: the usage member is larger than MaxUsageBytes. Errors
	// wrapping it also wrap ErrUsage.
	ErrUsageTooLarge = errors.New("usage: usage object too large")
)

var (
	errUsageNotObject = fmt.Errorf("%w: usage is not an object", ErrUsage)
	errUsageTooLarge  = fmt.Errorf("%w: %w: more than %d bytes", ErrUsage, ErrUsageTooLarge, MaxUsageBytes)
)

// state is what the scanner expects next.
type state uint8

const (
	stValue       state = iota // a value: body start, after ':', after ',' in an array
	stArrayFirst               // after '[': a value or ']'
	stObjectFirst              // after '{': a key or '}'
	stKey                      // after ',' in an object: a key
	stColon                    // after a key: ':'
	stAfterValue               // ',' or a close; at depth 0 only whitespace
	stString                   // inside a string
	stEscape                   // after '\' in a string
	stHex                      // inside the four hex digits of \uXXXX
	stLiteral                  // inside true, false or null
	stMinus                    // after a leading '-': a digit
	stZero                     // after a leading '0'
	stInt                      // integer digits
	stDot                      // after '.': a digit
	stFrac                     // fraction digits
	stExpMark                  // after 'e' or 'E': a sign or a digit
	stExpSign                  // after the exponent's sign: a digit
	stExp                      // exponent digits
	stError                    // a bad byte was seen; the rest is ignored
)

// occurrence is what the last top-level usage member held.
type occurrence uint8

const (
	occNone   occurrence = iota // no usage member, or null
	occFound                    // a decodable usage object
	occFailed                   // an undecodable or oversized value
)

// JSONScanner finds the top-level "usage" object of one JSON body fed to it
// in chunks. The zero value is ready to use; Reset makes it ready for the
// next body. It is not safe for concurrent use. It takes about 1.3 KiB (the
// nesting stack, sized for the depth limit) plus a capture buffer of at most
// MaxUsageBytes that is only allocated for a usage value. See the package
// documentation for exactly what it accepts and reports.
type JSONScanner struct {
	state  state
	inKey  bool  // the current string is an object key
	keyPos int8  // bytes of usageKey the current top-level key matches; -1: no match possible
	nHex   uint8 // hex digits still expected in \uXXXX
	hexVal rune
	lit    string // the literal being matched (true, false, null)
	litPos uint8

	depth int
	// arrays has bit d set when the container at depth d+1 is an array.
	arrays [maxDepth/64 + 1]uint64

	// path lists the keys from the top-level object to the captured member;
	// nil stands for {usageKey}. level is how many of its keys lead to the
	// object being read: keys are matched at depth level+1 against
	// path[level].
	path  []string
	level int

	nextIsUsage bool // the value about to start is the member to capture
	nextEnters  bool // the value about to start is an object on the path
	capturing   bool // bytes are being copied into buf
	capStart    int  // where the capture starts in the current chunk
	noSkipDepth int  // > 0: skipValue is not tried at this depth or deeper
	buf         []byte

	off int64 // body bytes before the current chunk
	err error // set with stError

	occ      occurrence
	usage    pricing.Usage
	details  Details
	usageErr error

	model modelCapture // the top-level model member (model.go)
}

// NewJSONScanner returns a scanner ready for one body.
func NewJSONScanner() *JSONScanner { return &JSONScanner{} }

// Reset forgets everything about the previous body. It keeps a small capture
// buffer for reuse.
func (s *JSONScanner) Reset() {
	buf := s.buf[:0]
	if cap(buf) > 4<<10 {
		buf = nil
	}
	raw := s.model.raw[:0]
	// Zeroed in place and then set: a composite literal of the whole
	// scanner would be built in a temporary on the stack first, a frame
	// of over a kilobyte on every stream's response path.
	*s = JSONScanner{}
	s.buf, s.model.pos, s.model.raw = buf, -1, raw
}

// Result reports the usage of the body fed so far, as if it ended here. It
// does not change the scanner, so it may be called more than once. found is
// true only when the last top-level usage member is an object that decodes;
// when err is not nil, u is zero and found is false.
func (s *JSONScanner) Result() (u pricing.Usage, found bool, err error) {
	if err := s.endErr(); err != nil {
		return pricing.Usage{}, false, err
	}
	switch s.occ {
	case occFound:
		return s.usage, true, nil
	case occFailed:
		return pricing.Usage{}, false, s.usageErr
	}
	return pricing.Usage{}, false, nil
}

// Details reports the informational counts of the usage that Result reports;
// it is zero whenever Result does not report found.
func (s *JSONScanner) Details() Details {
	if _, found, _ := s.Result(); !found {
		return Details{}
	}
	return s.details
}

func (s *JSONScanner) endErr() error {
	switch {
	case s.state == stError:
		return s.err
	case s.depth > 0:
		return fmt.Errorf("%w: body ended after %d bytes with %d objects or arrays unclosed", ErrTruncated, s.off, s.depth)
	}
	switch s.state {
	case stAfterValue, stZero, stInt, stFrac, stExp:
		return nil
	case stValue:
		return fmt.Errorf("%w: body has no JSON value (%d bytes)", ErrTruncated, s.off)
	}
	return fmt.Errorf("%w: body ended after %d bytes inside a value", ErrTruncated, s.off)
}

// Write feeds the next chunk of the body. It never retains p, and it does not
// allocate unless p holds part of the top-level usage value or an error.
// After an error, further chunks are ignored.
func (s *JSONScanner) Write(p []byte) {
	if s.state == stError {
		return
	}
	s.capStart, s.model.start = 0, 0
	n := len(p)
scan:
	for i := 0; i < n; i++ {
		c := p[i]
		switch s.state {
		case stValue, stArrayFirst, stObjectFirst, stKey, stColon, stAfterValue:
			for isSpace(c) {
				if i++; i == n {
					break scan
				}
				c = p[i]
			}
			if end := s.wholeToken(p, i); end > 0 {
				i = end - 1
				continue
			}
			s.structByte(c, p, i)
		case stString:
			if s.keyPos < 0 && s.model.pos < 0 {
				if i += jsonscan.PlainRun(p[i:]); i == n {
					break scan
				}
				c = p[i]
			}
			if c == '"' && s.model.capturing {
				s.model.capturing = false
				s.addModel(p[s.model.start : i+1])
			}
			s.stringByte(c, i)
		case stInt, stFrac, stExp:
			for isDigit(c) {
				if i++; i == n {
					break scan
				}
				c = p[i]
			}
			s.numberByte(c, p, i)
		case stMinus, stZero, stDot, stExpMark, stExpSign:
			s.numberByte(c, p, i)
		case stEscape:
			s.escapeByte(c, i)
		case stHex:
			s.hexByte(c, i)
		case stLiteral:
			if c != s.lit[s.litPos] {
				s.unexpected(c, i)
				break scan
			}
			if s.litPos++; int(s.litPos) == len(s.lit) {
				s.state = stAfterValue
			}
		case stError:
			break scan
		}
	}
	if s.capturing {
		s.appendCapture(p[s.capStart:])
	}
	if s.model.capturing {
		s.addModel(p[s.model.start:])
	}
	s.off += int64(n)
}
