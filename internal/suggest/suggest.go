// Package suggest proposes the configuration key a user probably meant, for
// "unknown key" errors.
package suggest

import (
	"fmt"
	"strings"
)

// Key returns `; did you mean "x"?` for the allowed key closest to key,
// when one is a likely misspelling of it (at most two edits away, or a
// prefix of it or the other way round), else "". Keys shorter than three
// letters get no suggestion.
func Key(key string, allowed []string) string {
	if len(key) < 3 {
		return ""
	}
	best, bestDist := "", 3
	lower := strings.ToLower(key)
	for _, a := range allowed {
		d := editDistance(lower, a)
		if strings.HasPrefix(a, lower) || strings.HasPrefix(lower, a) {
			d = min(d, 2) // a shortened or lengthened key
		}
		if d < bestDist {
			best, bestDist = a, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// editDistance is the Levenshtein distance, for short keys.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev, cur := make([]int, len(b)+1), make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
