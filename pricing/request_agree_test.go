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
		for e := range Responses + 1 { // the kinds the reference parser knows, and 0
			f.Add(uint8(e), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, ep uint8, body []byte) {
		e := Endpoint(ep % uint8(Responses+1))
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

// TestParseRequestAgreesEveryPosition cuts bodies that reach every walker
// of ParseRequest's single pass at every byte, and puts a byte that ends
// or breaks a value at every position, and checks each against the
// reference parser: the fuzzer would rarely hit each of these.
func TestParseRequestAgreesEveryPosition(t *testing.T) {
	long := strings.Repeat("abc ", 80) // past the stretch read 32 bytes at a time
	bodies := []string{
		`{"model":"m","messages":[{"role":"user","content":"hi \"x\"\n` + long + `é"},` +
			`{"content":[{"type":"text","text":"t\u00e9"},"s",{"type":"image_url","image_url":{"url":"u"}}],"name":"n"}],"n":2}`,
		`{"model":"m","prompt":["a` + long + `",[1,-2],3,[]],"input":["x",[4]],"best_of":2}`,
		`{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"t"}]},{"type":"function_call_output","output":"o"}],"instructions":"i"}`,
		`{"model":"m","input":"just text","messages":null,"tools":[{"a":[true,false,null]}]}`,
	}
	bytesToTry := []byte{'"', '\\', ',', ':', '[', ']', '{', '}', ' ', 0x01, 0xff, 'x', '1'}
	for _, body := range bodies {
		b := []byte(body)
		for e := ChatCompletions; e <= Responses; e++ {
			check := func(b []byte) {
				got, gotErr := ParseRequest(e, b)
				want, wantErr := refParseRequest(e, b)
				if wantErr != nil {
					require.Error(t, gotErr, "%s %q", e, b)
					require.Equal(t, wantErr.Error(), gotErr.Error(), "%s %q", e, b)
					return
				}
				require.NoError(t, gotErr, "%s %q", e, b)
				require.Equal(t, want, got, "%s %q", e, b)
			}
			check(b)
			for i := range b {
				check(b[:i])
				saved := b[i]
				for _, c := range bytesToTry {
					b[i] = c
					check(b)
				}
				b[i] = saved
			}
		}
	}
}
