package pricing

import (
	"fmt"

	"github.com/spendguard/spendguard/internal/jsonscan"
)

// tally is what a request's prompt adds up to, or what one prompt field
// (messages, prompt, input) adds to it; err is the first error found in
// the field, which makes the request invalid.
type tally struct {
	bytes    int64 // UTF-8 bytes of prompt text
	tokens   int64 // prompt tokens given as ids
	messages int
	prompts  int
	nonText  int
	err      error
}

// add adds what a prompt field counted, or returns its error.
func (t *tally) add(u *tally) error {
	if u.err != nil {
		return u.err
	}
	t.bytes += u.bytes
	t.tokens += u.tokens
	t.messages += u.messages
	t.prompts += u.prompts
	t.nonText += u.nonText
	return nil
}

// where names a list element for error messages ("messages[2]" plus sub),
// formatted only when an error is reported.
type where struct {
	list string
	i    int
	sub  string
}

func (w where) String() string {
	if w.i < 0 { // a field, not a list element
		return w.list + w.sub
	}
	return fmt.Sprintf("%s[%d]%s", w.list, w.i, w.sub)
}

// The walkers below count a prompt field while they validate it, in one
// scan of its bytes: each takes the value that starts at s.b[i], a value
// depth containers deep, and returns its end as jsonscan.ValidValue does
// (-1 when it is not valid JSON). What the value adds to the prompt goes
// to t, or, when the value is valid JSON that the endpoint does not
// accept, the error, which t keeps; the first error of a field is the one
// reported, as when the field is read element by element and the first
// error returned, and a value after it is only validated. An error is
// formatted only when it is the first, so a body with many bad elements
// costs no more than one with a single one.

// messageList counts a chat "messages" array.
func (s *scan) messageList(i, depth int, t *tally) int {
	switch at(s.b, i) {
	case 'n':
		return jsonscan.ValidValue(s.b, i, depth)
	case '[':
		return s.items("messages", i, depth, t)
	}
	if t.err == nil {
		t.err = invalid("messages", "must be an array of messages")
	}
	return jsonscan.ValidValue(s.b, i, depth)
}

// responsesInput counts the "input" of /v1/responses: a string, or a list of
// items (messages, function calls and their outputs, ...).
func (s *scan) responsesInput(i, depth int, t *tally) int {
	switch at(s.b, i) {
	case 'n':
		return jsonscan.ValidValue(s.b, i, depth)
	case '"':
		end, n := jsonscan.ValidStringLen(s.b, i)
		t.bytes += int64(n)
		t.messages++
		return end
	case '[':
		return s.items("input", i, depth, t)
	}
	if t.err == nil {
		t.err = invalid("input", "must be a string or an array of input items")
	}
	return jsonscan.ValidValue(s.b, i, depth)
}

// items counts the array of chat messages or Responses input items at
// s.b[i], named list in errors.
func (s *scan) items(list string, i, depth int, t *tally) int {
	var w walker
	w.open(s.b, i, depth)
	for j := 0; ; j++ {
		_, v, ok := w.next()
		if !ok {
			return w.end()
		}
		w.after(s.item(where{list: list, i: j}, v, w.depth, t))
	}
}

// item counts one chat message or Responses input item: its content by its
// text, and every other field (role, name, tool_calls, arguments, output,
// ...) by its JSON length, which is at least the length of the text a chat
// template can render from it. The members are kept until the object
// ends: only the last of members with the same name counts.
func (s *scan) item(w where, i, depth int, t *tally) int {
	b := s.b
	if at(b, i) != '{' {
		if t.err == nil {
			t.err = invalid(w.String(), "must be an object")
		}
		return jsonscan.ValidValue(b, i, depth)
	}
	obj := jsonscan.Object(s.itemBuf[:0])
	var content tally // what the last "content" member adds
	var o walker
	o.open(b, i, depth)
	for {
		key, v, ok := o.next()
		if !ok {
			break
		}
		var end int
		if jsonscan.KeyIs(key, "content") {
			content = tally{}
			end = s.content(where{list: w.list, i: w.i, sub: ".content"}, v, o.depth, &content)
		} else {
			end = jsonscan.ValidValue(b, v, o.depth)
		}
		if end >= 0 {
			// Set in place: a Member built and then copied into obj
			// was read back with wide moves just after it was
			// written, which stalled the CPU.
			obj = append(obj, jsonscan.Member{})
			m := &obj[len(obj)-1]
			m.Key, m.Value = key, b[v:end]
		}
		o.after(end)
	}
	end := o.end()
	if end < 0 || t.err != nil {
		return end
	}
	t.messages++
	for j, m := range obj {
		if !obj.Unique(j) {
			continue // a later duplicate replaces it
		}
		if jsonscan.KeyIs(m.Key, "content") {
			if err := t.add(&content); err != nil {
				t.err = err
				return end
			}
			continue
		}
		t.bytes += int64(len(m.Value))
	}
	return end
}

// content counts a message content: a string, null, or an array of parts.
func (s *scan) content(field where, i, depth int, t *tally) int {
	b := s.b
	switch at(b, i) {
	case 'n':
		return jsonscan.ValidValue(b, i, depth)
	case '"':
		end, n := jsonscan.ValidStringLen(b, i)
		t.bytes += int64(n)
		return end
	case '[':
	default:
		if t.err == nil {
			t.err = invalid(field.String(), "must be a string, an array of content parts or null")
		}
		return jsonscan.ValidValue(b, i, depth)
	}
	var parts walker
	parts.open(b, i, depth)
	for j := 0; ; j++ {
		_, v, ok := parts.next()
		if !ok {
			return parts.end()
		}
		var end int
		switch at(b, v) {
		case '"':
			var n int
			end, n = jsonscan.ValidStringLen(b, v)
			t.bytes += int64(n)
		case '{':
			end = s.part(field, j, v, parts.depth, t)
		default:
			if t.err == nil {
				t.err = invalid(fmt.Sprintf("%s[%d]", field, j), "must be a content part object")
			}
			end = jsonscan.ValidValue(b, v, parts.depth)
		}
		parts.after(end)
	}
}

// part counts the content part object at s.b[i], part j of field: a text
// part by its "text", any other by its JSON length. The last "type" and
// "text" members are the ones that count.
func (s *scan) part(field where, j, i, depth int, t *tally) int {
	b := s.b
	var typ []byte
	text, textIsString := 0, false
	var o walker
	o.open(b, i, depth)
	for {
		key, v, ok := o.next()
		if !ok {
			break
		}
		var end int
		switch {
		case jsonscan.KeyIs(key, "text"):
			if textIsString = at(b, v) == '"'; textIsString {
				end, text = jsonscan.ValidStringLen(b, v)
			} else {
				end = jsonscan.ValidValue(b, v, o.depth)
			}
		case jsonscan.KeyIs(key, "type"):
			end = jsonscan.ValidValue(b, v, o.depth)
			if end >= 0 {
				typ = b[v:end]
			}
		default:
			end = jsonscan.ValidValue(b, v, o.depth)
		}
		o.after(end)
	}
	end := o.end()
	switch {
	case end < 0 || t.err != nil:
	case !isTextPart(typ):
		t.bytes += int64(end - i)
		t.nonText++
	case !textIsString:
		name, _ := asString(typ)
		t.err = invalid(fmt.Sprintf("%s[%d].text", field, j), "must be a string in a %q part", name)
	default:
		t.bytes += int64(text)
	}
	return end
}

// promptList counts the prompt of /v1/completions or the input of
// /v1/embeddings: a string, an array of strings, an array of token ids, or
// an array of arrays of token ids. Each string or token array is one prompt
// of the batch.
func (s *scan) promptList(field string, i, depth int, t *tally) int {
	b := s.b
	switch at(b, i) {
	case 'n':
		return jsonscan.ValidValue(b, i, depth)
	case '"':
		end, n := jsonscan.ValidStringLen(b, i)
		t.bytes += int64(n)
		t.prompts++
		return end
	case '[':
	default:
		if t.err == nil {
			t.err = invalid(field, "must be a string, an array of strings or an array of token ids")
		}
		return jsonscan.ValidValue(b, i, depth)
	}
	var list walker
	list.open(b, i, depth)
	idPrompt := false
	for j := 0; ; j++ {
		_, v, ok := list.next()
		if !ok {
			break
		}
		var end int
		switch c := at(b, v); {
		case c == '"':
			var n int
			end, n = jsonscan.ValidStringLen(b, v)
			t.bytes += int64(n)
			t.prompts++
		case c == '-' || isDigit(c):
			end = jsonscan.ValidValue(b, v, list.depth)
			t.tokens++
			idPrompt = true
		case c == '[':
			end = s.tokenIDs(field, j, v, list.depth, t)
		default:
			if t.err == nil {
				t.err = invalid(fmt.Sprintf("%s[%d]", field, j), "must be a string or an array of token ids")
			}
			end = jsonscan.ValidValue(b, v, list.depth)
		}
		list.after(end)
	}
	if idPrompt {
		t.prompts++
	}
	return list.end()
}

// tokenIDs counts the array of token ids at s.b[i], prompt j of field.
func (s *scan) tokenIDs(field string, j, i, depth int, t *tally) int {
	var ids walker
	ids.open(s.b, i, depth)
	for k := 0; ; k++ {
		_, v, ok := ids.next()
		if !ok {
			break
		}
		if c := at(s.b, v); c != '-' && !isDigit(c) && t.err == nil {
			t.err = invalid(fmt.Sprintf("%s[%d][%d]", field, j, k), "must be a token id")
		}
		t.tokens++
		ids.after(jsonscan.ValidValue(s.b, v, ids.depth))
	}
	t.prompts++
	return ids.end()
}

// rawFields adds the JSON length of each of these fields that is present.
func (t *tally) rawFields(f *fields, names ...field) {
	for _, n := range names {
		if v := f.get(n); v != nil && !isNull(v) {
			t.bytes += int64(len(trim(v)))
		}
	}
}
