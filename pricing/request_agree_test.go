package pricing

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// tricky are documents where an in-place reader could part from a
// decoder: duplicate and escaped keys, bytes that are not UTF-8, every
// number and literal shape, whitespace everywhere, and malformed JSON.
var tricky = []string{
	`{"model":"m","messages":[{"role":"user","content":"a","content":"bbb"}]}`,
	`{"model":"m","messages":[{"role":"user","con\u0074ent":"abc","content":[{"type":"text","text":"x"}]}]}`,
	`{"model":"m","model":"n","messages":[]}`,
	`{"mod\u0065l":"m","messages":[{"r\u00e9le":1,"ro\xffle":2,"ro\xfele":3}]}`,
	`{"model":"\ud800x","user":"\u00e9","messages":[{"content":[{"type":"te\u0078t","text":"\u00e9\xff"}]}]}`,
	"{ \"model\" : \"m\" ,\n\t\"messages\" : [ { \"role\" : \"user\" , \"content\" : [ ] } ] , \"n\" : 2 }\r\n",
	`{"model":"m","max_tokens":-0,"n":1e0,"messages":[{"x":[1,-2.5e-3,0.0,true,false,null,{"a":[]}]}]}`,
	`{"model":"m","max_tokens":123456789012345678901,"messages":null}`,
	`{"model":"m","prompt":["a",[1,2],3,[]],"best_of":2}`,
	`{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"t"},{"type":"input_image"}]}],"instructions":"i"}`,
	`{"model":"m","stream":true,"stream_options":{"include_usage":false,"include_usage":true}}`,
	`{"model":"m","stream_options":null,"messages":[{"content":null}]}`,
	`{"model":"m","messages":[{"content":[{"type":"text","text":5}]}]}`,
	`{"model":"m","messages":[1]}`, `{"model":5}`, `{"model":""}`, `{}`, `[]`, `null`, `"x"`, ``, ` `,
	`{"model":"m",}`, `{"model":"m"`, `{"model" "m"}`, `{"model":"m"}x`, `{"model":01}`, `{"model":1.}`,
	`{"model":1e}`, `{"model":-}`, `{"model":"\x01"}`, `{"model":"\q"}`, `{"model":"\u12"}`, `{"model":tru}`,
	`[1,]`, `[,1]`, `{"a":1,,"b":2}`, "\xef\xbb\xbf{}", `{"a":[[[[[]]]]]}`,
	strings.Repeat("[", 100) + strings.Repeat("]", 100),
}

// FuzzParseRequestAgrees checks the in-place parser against the decoding
// one it replaced (reference_test.go): the same Request, or the same error.
func FuzzParseRequestAgrees(f *testing.F) {
	for _, s := range tricky {
		for e := range Endpoint(6) {
			f.Add(uint8(e), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, ep uint8, body []byte) {
		e := Endpoint(ep % 6)
		got, gotErr := ParseRequest(e, body)
		want, wantErr := refParseRequest(e, body)
		if wantErr != nil {
			require.Error(t, gotErr, "%s %q", e, body)
			require.Equal(t, wantErr.Error(), gotErr.Error(), "%s %q", e, body)
			return
		}
		require.NoError(t, gotErr, "%s %q", e, body)
		require.Equal(t, want, got, "%s %q", e, body)
	})
}
