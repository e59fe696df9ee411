package usage

import (
	"flag"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/spendguard/spendguard/test/fixtures"

	"github.com/spendguard/spendguard/pricing"
)

var splitSeed = flag.Uint64("usage.seed", 0, "base seed for random chunk splits (0: derived from the clock)")

// baseSeed returns the base seed for random splits and logs it, so a failure
// can be replayed with -usage.seed.
func baseSeed(t testing.TB) uint64 {
	t.Helper()
	seed := *splitSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("random splits use -usage.seed=%d", seed)
	return seed
}

// upstreamFixtures returns the directory of the shared upstream body
// fixtures; the test fails if it is missing.
func upstreamFixtures(t testing.TB) string { return fixtures.Dir(t) }

// outcome is everything a scanner reports for one body.
type outcome struct {
	Usage   pricing.Usage
	Details Details
	Found   bool
	Err     string
	err     error
}

// scan feeds body to a fresh scanner in chunks of the sizes next returns (a
// size may be 0). Every chunk is copied into a scratch buffer that is
// clobbered after Write, so retaining p would change the result.
func scan(body []byte, next func(rest int) int) outcome {
	return scanPath(body, nil, next)
}

// scanPath is scan with a scanner that captures the member at path (nil:
// the default, top-level usage).
func scanPath(body []byte, path []string, next func(rest int) int) outcome {
	s := NewJSONScanner()
	if path != nil {
		s.resetPath(path)
	}
	scratch := make([]byte, 0, len(body))
	for rest := body; ; {
		n := min(next(len(rest)), len(rest))
		scratch = append(scratch[:0], rest[:n]...)
		s.Write(scratch)
		for i := range scratch {
			scratch[i] = '"'
		}
		rest = rest[n:]
		if len(rest) == 0 {
			break
		}
	}
	return result(s)
}

func result(s *JSONScanner) outcome {
	u, found, err := s.Result()
	o := outcome{Usage: u, Details: s.Details(), Found: found, err: err}
	if err != nil {
		o.Err = err.Error()
	}
	return o
}

func scanWhole(body []byte) outcome {
	return scan(body, func(rest int) int { return rest })
}

func scanBytewise(body []byte) outcome {
	return scan(body, func(int) int { return 1 })
}

// scanRandom splits body at points drawn from seed, including empty chunks
// and chunks of every scale.
func scanRandom(body []byte, seed uint64) outcome {
	return scan(body, randomSplits(seed))
}

// randomSplits returns chunk sizes drawn from seed for scan and scanSSE:
// empty chunks and chunks of every scale.
func randomSplits(seed uint64) func(rest int) int {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	return func(rest int) int {
		switch r.IntN(4) {
		case 0:
			return r.IntN(3)
		case 1:
			return r.IntN(17)
		case 2:
			return r.IntN(300)
		default:
			return r.IntN(rest + 1)
		}
	}
}
