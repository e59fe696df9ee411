package config

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Problem is one mistake in a configuration file.
type Problem struct {
	// Line is the 1-based line of the mistake, 0 when it concerns the file
	// as a whole (an empty file, a missing section).
	Line int
	// Msg starts with the path of the offending key when there is one:
	// "store.backend: unknown backend ...".
	Msg string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("line %d: %s", p.Line, p.Msg)
	}
	return p.Msg
}

// Problems is every mistake found in a file, sorted by line (problems of
// the file as a whole first). Parse returns it as its error, so callers
// can print one problem per line or use errors.As to get the list.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// problems collects the mistakes of one Parse call.
type problems struct {
	list Problems
	seen map[Problem]bool
}

func (ps *problems) add(line int, format string, args ...any) {
	p := Problem{Line: line, Msg: fmt.Sprintf(format, args...)}
	if ps.seen == nil {
		ps.seen = map[Problem]bool{}
	}
	if !ps.seen[p] {
		ps.seen[p] = true
		ps.list = append(ps.list, p)
	}
}

// lineRE finds the "line N:" that every package puts in its errors, either
// first ("line 5: budget ...") or after a path ("pricing.models[1].input:
// line 9: ...").
var lineRE = regexp.MustCompile(`(?s)^(.*?)\bline (\d+):\s*(.*)$`)

// addErr records err, which a section's Compile or the YAML decoder
// returned. A joined error (errors.Join, yaml.TypeError) becomes one
// problem per part. The "line N:" in a message becomes the problem's line;
// a message without one gets fallback (the line of the section's key).
// section ("pricing") is put in front of a message that does not already
// start with it, so every problem names where it is.
func (ps *problems) addErr(err error, section string, fallback int) {
	for _, msg := range flatten(err) {
		line := fallback
		if m := lineRE.FindStringSubmatch(msg); m != nil {
			if n, convErr := strconv.Atoi(m[2]); convErr == nil {
				line = n
				msg = strings.TrimSpace(strings.TrimSpace(m[1]) + " " + m[3])
			}
		}
		msg = strings.TrimPrefix(msg, "yaml: ")
		if section != "" && !strings.HasPrefix(msg, section) {
			msg = section + ": " + msg
		}
		ps.add(line, "%s", msg)
	}
}

// flatten splits joined errors and yaml.TypeError into their messages.
func flatten(err error) []string {
	if err == nil {
		return nil
	}
	if te, ok := err.(*yaml.TypeError); ok {
		return te.Errors
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []string{err.Error()}
}

// err returns the sorted Problems, or nil when there are none. On a line
// whose ${VAR} is not set, only that is reported: what a section then says
// of the empty value ("is required") follows from it.
func (ps *problems) err() error {
	if len(ps.list) == 0 {
		return nil
	}
	unset := map[int]bool{}
	for _, p := range ps.list {
		if strings.Contains(p.Msg, "environment variable ") && strings.HasSuffix(p.Msg, " is not set") {
			unset[p.Line] = true
		}
	}
	kept := ps.list[:0]
	for _, p := range ps.list {
		if !unset[p.Line] || strings.HasSuffix(p.Msg, " is not set") {
			kept = append(kept, p)
		}
	}
	ps.list = kept
	sort.SliceStable(ps.list, func(i, j int) bool { return ps.list[i].Line < ps.list[j].Line })
	return ps.list
}
