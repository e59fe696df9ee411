package config

import (
	"errors"
	"os"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the loader: it must never panic, and
// it returns either a complete configuration or at least one problem, each
// with a message.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"testdata/five-mistakes.yaml", "../cmd/spendguard/app/default.yaml"} {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(minimal))
	f.Add([]byte(minimal + "admin:\n  token: ${X}${Y}$${Z}$\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("version: 1\nidentity: &i {dimensions: {t: [{header: x}]}}\npricing: *i\n"))
	f.Add([]byte("version: 1\nbudgets:\n  - <<: [*x]\n"))
	f.Add([]byte("version: !!binary aGk=\nlimits: {reservation_ttl: -1s}\n"))
	f.Add([]byte("{version: 1, metrics: {label_dimensions: [model, model]}}"))
	loader := Loader{LookupEnv: env(map[string]string{"X": "1", "Y": "null"})}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := loader.Parse(data)
		if err == nil {
			if c == nil || c.File == nil || c.Snapshot == nil || c.Snapshot.Identity == nil ||
				c.Snapshot.Pricing == nil || c.Snapshot.Budgets == nil {
				t.Fatalf("no error but an incomplete configuration: %+v", c)
			}
			return
		}
		if c != nil {
			t.Fatal("a configuration returned with an error")
		}
		var ps Problems
		if !errors.As(err, &ps) || len(ps) == 0 {
			t.Fatalf("error is not a non-empty Problems: %T %v", err, err)
		}
		for _, p := range ps {
			if p.Msg == "" || p.Line < 0 {
				t.Fatalf("bad problem %+v", p)
			}
		}
	})
}
