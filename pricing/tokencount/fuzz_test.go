package tokencount

import (
	"encoding/json"
	"errors"
	"math/big"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// FuzzParseAnswer: any bytes as a /tokenize answer either fail or give a
// count that is consistent with the answer.
func FuzzParseAnswer(f *testing.F) {
	for _, s := range []string{
		`{"count":3,"max_model_len":4096,"tokens":[1,2,3]}`,
		`{"count":0,"max_model_len":4096,"tokens":[]}`,
		`{"count":2,"max_model_len":8,"tokens":[1,2],"token_strs":["a","b"]}`,
		`{"count":5}`, `{"count":-1}`, `{"count":9,"max_model_len":8}`, `{"count":1e3}`,
		`{"count":1,"tokens":[1,2]}`, `[]`, `null`, `{"count":"3"}`, ``, `{"count":1}x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := parseAnswer(b)
		if err != nil {
			return
		}
		var a answer
		if json.Unmarshal(b, &a) != nil || a.Count == nil {
			t.Fatalf("accepted %q, which does not decode to a count", b)
		}
		if n < 0 || n != *a.Count || (a.Tokens != nil && int64(len(a.Tokens)) != n) || (a.MaxModelLen > 0 && n > a.MaxModelLen) {
			t.Fatalf("count %d accepted from %q", n, b)
		}
	})
}

// FuzzQueries: any request body either is refused as uncountable or gives
// /tokenize bodies that are JSON objects naming the model.
func FuzzQueries(f *testing.F) {
	for _, s := range []string{
		chatBody, `{"messages":[]}`, `{"messages":[{"role":"user","content":"x"}],"tools":null}`,
		`{"prompt":"a"}`, `{"prompt":["a",[1,2],3]}`, `{"input":["x","y"]}`, `{"prompt":[{"a":1}]}`, `[`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		check := func(q query) {
			var m map[string]any
			if err := json.Unmarshal(q.body, &m); err != nil || m["model"] != "m" {
				t.Fatalf("query %q from %q", q.body, body)
			}
		}
		if q, err := chatQuery("m", body); err == nil {
			check(q)
		}
		for _, field := range []string{"prompt", "input"} {
			qs, known, err := promptQueries("m", field, body)
			if err != nil {
				continue
			}
			if known < 0 {
				t.Fatalf("known %d", known)
			}
			for _, q := range qs {
				check(q)
			}
		}
	})
}

// FuzzConversions: any request body is either refused as uncountable or
// converted to a chat prompt /tokenize takes (a JSON list of messages,
// tools and template options that are JSON); never a panic.
func FuzzConversions(f *testing.F) {
	for _, s := range []string{
		`{"system":"s","messages":[{"role":"user","content":"x"}]}`,
		`{"messages":[{"role":"assistant","content":[{"type":"thinking","thinking":"t"},{"type":"tool_use","id":"a","name":"f","input":{"a":[1,2.5,"é"]}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"a","content":[{"type":"text","text":"r"}]}]}],"tools":[{"name":"f","input_schema":{}}]}`,
		`{"instructions":"i","input":[{"role":"user","content":[{"type":"input_text","text":"x"}]},{"type":"reasoning","summary":[{"text":"s"}]},{"type":"function_call","call_id":"c","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c","output":"o"},{"type":"message","role":"assistant","status":"incomplete","content":[{"type":"output_text","text":"p"}]}],"reasoning":{"effort":"high"}}`,
		`{"input":"x","chat_template_kwargs":{"a":null}}`, `[`, `{"messages":null}`, `{"input":[1]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, convert := range []func([]byte) (ChatInput, error){FromAnthropic, FromResponses} {
			in, err := convert(b)
			if err != nil {
				if !errors.Is(err, ErrUncountable) {
					t.Fatalf("error %v does not wrap ErrUncountable", err)
				}
				continue
			}
			var msgs []map[string]any
			if json.Unmarshal(in.Messages, &msgs) != nil {
				t.Fatalf("messages %s are not a JSON list of objects", in.Messages)
			}
			for _, raw := range []json.RawMessage{in.Tools, in.ChatTemplateKwargs} {
				if raw != nil && !json.Valid(raw) {
					t.Fatalf("invalid JSON %s", raw)
				}
			}
			if _, err := messagesQuery("m", in); err != nil && !errors.Is(err, ErrUncountable) {
				t.Fatalf("query: %v", err)
			}
		}
	})
}

// FuzzPyDumps: whatever the JSON, pyDumps either refuses it or writes the
// same value back (Infinity aside, which JSON cannot say).
func FuzzPyDumps(f *testing.F) {
	for _, s := range []string{`{"a":1,"b":[1.5,"é",null,true,false]}`, `{"x":"😀\u0000"}`, `[1e16,-0,0.0001]`, `{"a":{"b":{}}}`, `1e400`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := pyDumps(b)
		if err != nil {
			return
		}
		if !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q", b)
		}
		if strings.Contains(out, "Infinity") {
			return
		}
		got, err := decodeNumbers([]byte(out))
		if err != nil {
			t.Fatalf("pyDumps(%q) = %q, not JSON: %v", b, out, err)
		}
		w, _ := decodeNumbers(b)
		if !reflect.DeepEqual(w, got) {
			t.Fatalf("pyDumps(%q) = %q: a different value", b, out)
		}
	})
}

// decodeNumbers decodes JSON with each number as what Python reads it as:
// an integer (exact, as a string) or a float64.
func decodeNumbers(b []byte) (any, error) {
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return normalize(v), nil
}

func normalize(v any) any {
	switch v := v.(type) {
	case json.Number:
		if !strings.ContainsAny(string(v), ".eE") {
			i, _ := new(big.Int).SetString(string(v), 10)
			return i.String()
		}
		f, _ := strconv.ParseFloat(string(v), 64)
		return f
	case []any:
		for i := range v {
			v[i] = normalize(v[i])
		}
	case map[string]any:
		for k := range v {
			v[k] = normalize(v[k])
		}
	}
	return v
}
