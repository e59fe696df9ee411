package compose

import (
	"bufio"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/cmd/spendguard/app"
)

// stage is one FROM ... AS name section of a Dockerfile.
type stage struct {
	name, from string
	lines      []string // the instructions after FROM, continuation lines joined
}

// parseDockerfile splits a Dockerfile into its stages. It understands only
// what this repository's Dockerfile uses: comments, `\` continuations and
// FROM [--platform=...] image [AS name].
func parseDockerfile(t *testing.T, file string) []stage {
	t.Helper()
	f, err := os.Open(file)
	require.NoError(t, err)
	defer f.Close()
	var stages []stage
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		fields := strings.Fields(line)
		if strings.EqualFold(fields[0], "FROM") {
			args := fields[1:]
			if len(args) > 0 && strings.HasPrefix(args[0], "--platform=") {
				args = args[1:]
			}
			s := stage{from: args[0]}
			if len(args) == 3 && strings.EqualFold(args[1], "AS") {
				s.name = args[2]
			}
			stages = append(stages, s)
			return
		}
		if len(stages) > 0 {
			stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, line)
		}
	}
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if body, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(line)
		flush()
	}
	require.NoError(t, sc.Err())
	return stages
}

func dockerfileStages(t *testing.T, file string) []string {
	var names []string
	for _, s := range parseDockerfile(t, file) {
		names = append(names, s.name)
	}
	return names
}

func stageNamed(stages []stage, name string) *stage {
	for i := range stages {
		if stages[i].name == name {
			return &stages[i]
		}
	}
	return nil
}

func TestDockerfile(t *testing.T) {
	file := filepath.Join(root(t), "Dockerfile")
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	stages := parseDockerfile(t, file)
	require.NotEmpty(t, stages)

	// `docker build .` without --target builds the last stage: spendguard.
	assert.Equal(t, "spendguard", stages[len(stages)-1].name, "the default (last) stage")

	// The toolchain is the one go.mod asks for.
	gomod, err := os.ReadFile(filepath.Join(root(t), "go.mod"))
	require.NoError(t, err)
	goVersion := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod)
	require.NotNil(t, goVersion)
	assert.Regexp(t, `(?m)^ARG GO_VERSION=`+regexp.QuoteMeta(string(goVersion[1]))+`$`, string(data))

	// Runtime images: distroless static, non-root, one static binary each.
	for _, name := range []string{"spendguard", "fakevllm"} {
		s := stageNamed(stages, name)
		require.NotNil(t, s, "stage %s", name)
		assert.True(t, strings.HasPrefix(s.from, "gcr.io/distroless/static") || s.from == "scratch",
			"%s runs on distroless static or scratch, not %s", name, s.from)
		assert.Contains(t, s.from, ":nonroot", "%s: the nonroot variant", name)
		assert.Contains(t, s.lines, "USER 65532:65532", "%s: a numeric non-root USER", name)
	}

	// Builds: static, and spendguard's version stamped from the build arg.
	var builds []string
	for _, s := range stages {
		for _, l := range s.lines {
			if strings.Contains(l, "go build") {
				builds = append(builds, l)
				assert.Contains(t, l, "CGO_ENABLED=0", "stage %s", s.name)
			}
		}
	}
	require.Len(t, builds, 2)
	const versionVar = "github.com/spendguard/spendguard/cmd/spendguard/app.Version"
	assert.Contains(t, strings.Join(builds, "\n"), `-X `+versionVar+`=${VERSION}`)
	// -X can only set a package-level string variable.
	assert.Equal(t, reflect.String, reflect.TypeOf(&app.Version).Elem().Kind())
}

// TestDockerignoreKeepsTheBuildInputs checks that no .dockerignore pattern
// drops a file the image builds need.
func TestDockerignoreKeepsTheBuildInputs(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(root(t), ".dockerignore"))
	require.NoError(t, err)
	needed := []string{
		"go.mod", "go.sum", "cmd/spendguard/main.go", "cmd/spendguard/app/app.go",
		"cmd/spendguard/app/default.yaml", "cmd/fakevllm/main.go", "test/fakevllm/server.go",
	}
	for _, line := range strings.Split(string(data), "\n") {
		pattern := strings.TrimSpace(line)
		if pattern == "" || strings.HasPrefix(pattern, "#") {
			continue
		}
		require.False(t, strings.HasPrefix(pattern, "!"), "keep .dockerignore to exclusions: %s", pattern)
		for _, file := range needed {
			assert.False(t, ignores(pattern, file), ".dockerignore %q excludes %s", pattern, file)
		}
	}
	assert.True(t, ignores("**/testdata", "a/b/testdata/x.json"))
	assert.True(t, ignores(".git", ".git/config"))
	assert.False(t, ignores("bin", "cmd/bin.go"))
}

// ignores reports whether a .dockerignore pattern excludes file: the
// pattern matches the file or one of its parent directories ("**/" matches
// any number of leading directories).
func ignores(pattern, file string) bool {
	anyDepth := strings.HasPrefix(pattern, "**/")
	pattern = strings.TrimPrefix(pattern, "**/")
	parts := strings.Split(file, "/")
	for start := range parts {
		if start > 0 && !anyDepth {
			break
		}
		for end := start + 1; end <= len(parts); end++ {
			if ok, _ := path.Match(pattern, strings.Join(parts[start:end], "/")); ok {
				return true
			}
		}
	}
	return false
}
