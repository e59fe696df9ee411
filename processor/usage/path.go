package usage

// A JSONScanner captures the member at a path of object keys, by default
// just {"usage"}: the top-level usage member. SSEScanner uses the path
// {"response", "usage"} for the events of the Responses API, whose usage is
// inside the response object. The rules of the package documentation hold
// for every key on the path: keys match exactly after unescaping, and when a
// key repeats in its object, the last member wins whatever it holds, so a
// later "response" member that is not an object, or that has no usage, hides
// the usage of an earlier one.

// responsesUsagePath leads to the usage of a Responses API stream event.
var responsesUsagePath = []string{"response", usageKey}

// resetPath is Reset, then makes the scanner capture the member at path
// instead of the top-level usage member. path must be non-empty, must not
// be modified afterwards, and its keys may only hold ASCII letters, digits
// and '_' (escapeByte relies on it).
func (s *JSONScanner) resetPath(path []string) {
	s.Reset()
	s.path = path
}

// target is the key matched at depth level+1.
func (s *JSONScanner) target() string {
	if s.path == nil {
		return usageKey
	}
	return s.path[s.level]
}

// pathLen is the number of keys on the path; the captured value starts at
// depth pathLen.
func (s *JSONScanner) pathLen() int {
	if s.path == nil {
		return 1
	}
	return len(s.path)
}

// keyMatched handles the end of a key that equals the path's next key.
func (s *JSONScanner) keyMatched() {
	if s.level+1 < s.pathLen() {
		s.nextEnters = true
	} else {
		s.nextIsUsage = true
	}
}

// enter handles the start of the value of a key on the path, before its
// last key. That value replaces whatever an earlier member with the same key
// held; only an object is entered.
func (s *JSONScanner) enter(c byte) {
	s.nextEnters = false
	s.occ, s.usageErr = occNone, nil
	if c == '{' {
		s.level++
	}
}
