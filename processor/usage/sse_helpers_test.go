package usage

import (
	"testing"

	"github.com/spendguard/spendguard/pricing"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sseOutcome is everything an SSEScanner reports for one stream, with the
// bytes it forwarded.
type sseOutcome struct {
	Out     string
	Usage   pricing.Usage
	Details Details
	Found   bool
	Err     string
	Content int
	Model   string
	err     error
}

// sseRun says how to run a scanner over a stream.
type sseRun struct {
	kind  SSEKind
	drop  bool
	strip StripMode
	limit int // 0: MaxSSEEventBytes
}

// scanSSE feeds body to a fresh scanner in chunks of the sizes next returns
// (a size may be 0), collects what it forwards and reports how many chunks
// came back changed. Every chunk is copied into a scratch buffer that is
// clobbered after Write, so retaining it would change the result. An
// unchanged chunk must be returned as the very slice passed in.
func scanSSE(t testing.TB, body []byte, run sseRun, next func(rest int) int) (o sseOutcome, changedChunks int) {
	t.Helper()
	s := NewSSEScanner(run.kind, run.drop)
	s.SetStripChunkUsage(run.strip)
	if run.limit > 0 {
		s.limit = run.limit
	}
	var out []byte
	scratch := make([]byte, 0, len(body))
	for rest := body; ; {
		n := min(next(len(rest)), len(rest))
		scratch = append(scratch[:0], rest[:n]...)
		got, changed := s.Write(scratch)
		if changed {
			changedChunks++
		} else if n > 0 && (len(got) != n || &got[0] != &scratch[0]) {
			require.FailNow(t, "an unchanged chunk must be returned as is")
		}
		out = append(out, got...)
		for i := range scratch {
			scratch[i] = '\n'
		}
		rest = rest[n:]
		if len(rest) == 0 {
			break
		}
	}
	out = append(out, s.Finish()...)
	require.Empty(t, s.Finish(), "a second Finish returns nothing")

	u, found, err := s.Result()
	o = sseOutcome{Out: string(out), Usage: u, Details: s.Details(), Found: found, err: err, Content: s.ContentEvents(), Model: s.Model("")}
	if err != nil {
		o.Err = err.Error()
	}
	return o, changedChunks
}

// feed writes body to s in chunks of the sizes next returns (at least 1
// byte each), overwriting each chunk with poison once written, since a
// scanner that kept a chunk would then read changed bytes; then Finish.
func feed(s *SSEScanner, body []byte, next func(rest int) int, poison byte) {
	scratch := make([]byte, 0, len(body))
	for rest := body; len(rest) > 0; {
		n := max(min(next(len(rest)), len(rest)), 1)
		scratch = append(scratch[:0], rest[:n]...)
		s.Write(scratch)
		for i := range scratch {
			scratch[i] = poison
		}
		rest = rest[n:]
	}
	s.Finish()
}

func whole(rest int) int    { return rest }
func bytewise(rest int) int { return 1 }

// checkSSE runs body whole, byte by byte and at seeds random splits, with
// dropUsageEvent false and true, and checks that
//   - without dropping, every chunk comes back unchanged;
//   - with dropping, the output is wantDropped;
//   - every run reports the same, which is returned (Out is the output
//     without dropping).
func checkSSE(t *testing.T, body []byte, kind SSEKind, limit int, wantDropped string, seed uint64, seeds int) sseOutcome {
	t.Helper()
	keep := sseRun{kind: kind, limit: limit}
	drop := sseRun{kind: kind, drop: true, limit: limit}
	want, _ := scanSSE(t, body, keep, whole)
	require.Equal(t, string(body), want.Out, "without dropping the output is the input")

	check := func(name string, next func(int) int) bool {
		got, changed := scanSSE(t, body, keep, next)
		ok := assert.Zero(t, changed, "%s: chunks changed without dropping", name) &&
			assert.Equal(t, want, got, "%s, keep", name)
		got, _ = scanSSE(t, body, drop, next)
		want := want
		want.Out = wantDropped
		return assert.Equal(t, want, got, "%s, drop", name) && ok
	}
	if !check("whole", whole) || !check("byte by byte", bytewise) {
		return want
	}
	for k := range uint64(seeds) {
		if !check("random split", randomSplits(seed+k)) {
			t.Logf("failed with -usage.seed=%d", seed+k)
			break
		}
	}
	return want
}
