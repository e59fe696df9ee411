package exporters_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestImportDirections keeps the arrows of docs/design.md's package map:
// no exporter knows the processor or the metrics, the metrics know no
// exporter, and the leaves under internal/ import nothing of ours but
// other leaves.
func TestImportDirections(t *testing.T) {
	const mod = "github.com/spendguard/spendguard/"
	deps := func(pkg string) []string {
		out, err := exec.Command("go", "list", "-deps", mod+pkg).Output()
		require.NoError(t, err, "go list %s", pkg)
		var ours []string
		for _, p := range strings.Fields(string(out)) {
			if strings.HasPrefix(p, mod) && p != mod+pkg {
				ours = append(ours, strings.TrimPrefix(p, mod))
			}
		}
		return ours
	}
	forbid := map[string][]string{
		"exporters/...":       {"processor", "metrics", "cmd/"},
		"metrics":             {"exporters/otlp", "exporters/helicone", "exporters/webhook", "exporters/jsonlog", "exporters/postgres", "processor", "cmd/"},
		"processor":           {"exporters/otlp", "exporters/helicone", "exporters/webhook", "exporters/jsonlog", "exporters/postgres", "metrics", "config", "cmd/"},
		"identity":            {"processor", "budget", "pricing", "config", "cmd/"},
		"internal/money":      {""},
		"internal/jsonscan":   {""},
		"internal/mono":       {""},
		"internal/suggest":    {""},
		"internal/strictyaml": {"budget", "pricing", "identity", "processor", "config", "exporters", "metrics"},
	}
	for pkg, bad := range forbid {
		pkgs := []string{pkg}
		if strings.HasSuffix(pkg, "/...") {
			out, err := exec.Command("go", "list", mod+pkg).Output()
			require.NoError(t, err)
			pkgs = nil
			for _, p := range strings.Fields(string(out)) {
				pkgs = append(pkgs, strings.TrimPrefix(p, mod))
			}
		}
		for _, p := range pkgs {
			for _, d := range deps(p) {
				for _, b := range bad {
					if b == "" { // a leaf: only other internal leaves
						assert.True(t, strings.HasPrefix(d, "internal/"), "%s imports %s", p, d)
						continue
					}
					under := strings.TrimSuffix(b, "/")
					assert.False(t, d == under || strings.HasPrefix(d, under+"/"), "%s imports %s", p, d)
				}
			}
		}
	}
}
