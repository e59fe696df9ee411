package usage

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzSSEScanner checks, for any stream and any split of it, that nothing
// panics and
//   - what is forwarded (Write outputs, then Finish) and everything
//     reported are the same as for the stream fed whole and byte by byte;
//   - without dropUsageEvent every chunk comes back unchanged, so the output
//     is the input;
//   - with dropUsageEvent the findings are the same and the output is the
//     input with some bytes removed (whole events, see the tests).
//   - with each chunk's usage hidden (SSEChat), see checkStrip.
//
// small lowers the event limit (to 1..256 bytes) so that held-back events
// outgrow it. kind picks SSEChat, SSEResponses or SSEAnthropic. The text
// captured and PromptOnly are the same for every split too.
func FuzzSSEScanner(f *testing.F) {
	for _, dir := range []string{upstreamFixtures(f), "testdata"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.sse"))
		require.NoError(f, err)
		require.NotEmpty(f, files)
		for i, file := range files {
			body, err := os.ReadFile(file)
			require.NoError(f, err)
			for k := range uint8(3) {
				f.Add(body, uint64(i), k, uint8(0))
			}
			f.Add(body, uint64(i), uint8(1), uint8(200))
		}
	}
	for i, body := range []string{
		"data: {\"usage\":{\"completion_tokens\":1},\"choices\":[{\"index\":0}]}\r\n\r\n",
		"data:{ \"choices\" : [ {} ] , \"usage\" : {\"prompt_tokens\":2} , \"us\\u0061ge\" : 1 }\n: c\n\n",
		"data: {\"choices\":[{}],\"usage\":{\"completion_tokens\":2}}",
	} {
		f.Add([]byte(body), uint64(i), uint8(SSEChat), uint8(0))
	}
	for i, c := range append(sseCases(), responsesCases()...) {
		f.Add([]byte(c.body), uint64(i), uint8(c.kind), uint8(i))
	}

	f.Fuzz(func(t *testing.T, body []byte, seed uint64, kindByte uint8, small uint8) {
		kind := SSEKind(kindByte % 3)
		limit := 0
		if small > 0 {
			limit = int(small)
		}
		keep := sseRun{kind: kind, limit: limit}
		want, _ := scanSSE(t, body, keep, whole)
		require.Equal(t, string(body), want.Out)
		for _, next := range []func(int) int{bytewise, randomSplits(seed)} {
			got, changed := scanSSE(t, body, keep, next)
			require.Zero(t, changed, "chunks changed without dropping")
			require.Equal(t, want, got)
		}

		drop := sseRun{kind: kind, drop: true, limit: limit}
		dropped, _ := scanSSE(t, body, drop, whole)
		for _, next := range []func(int) int{bytewise, randomSplits(seed)} {
			got, _ := scanSSE(t, body, drop, next)
			require.Equal(t, dropped, got, "seed %d", seed)
		}
		require.True(t, isSubsequence(dropped.Out, string(body)), "the output only removes bytes")
		dropped.Out = want.Out
		require.Equal(t, want, dropped, "dropping changes what is found")

		if kind == SSEChat {
			checkStrip(t, body, seed, limit)
		}

		textLimit := int(seed % 512)
		extra := scanExtra(body, kind, textLimit, whole)
		for _, next := range []func(int) int{bytewise, randomSplits(seed)} {
			require.Equal(t, extra, scanExtra(body, kind, textLimit, next))
		}
		require.LessOrEqual(t, len(extra.Text), textLimit)
		if extra.PromptOK {
			require.Equal(t, SSEAnthropic, kind)
			require.False(t, want.Found)
			require.Empty(t, want.Err)
		}
	})
}

// isSubsequence reports whether s is t with some bytes removed.
func isSubsequence(s, t string) bool {
	for i := 0; i < len(t) && len(s) > 0; i++ {
		if t[i] == s[0] {
			s = s[1:]
		}
	}
	return len(s) == 0
}
