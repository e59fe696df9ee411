package tokencount

import (
	"encoding/json"
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
