package pricing

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/internal/jsonscan"
)

// refLayout finds what ParseBody records with a second reader, the
// member scanner the processor used before the body was parsed once:
// the layout and the top-level string fields by name.
func refLayout(t *testing.T, e Endpoint, body []byte) (Layout, jsonscan.Object) {
	t.Helper()
	top, valid, object := jsonscan.ValidMembers(body, nil)
	require.True(t, valid && object)
	off := jsonscan.SkipSpace(body, 0)
	span := func(o jsonscan.Object, base int, key string) Span {
		m, ok := o.Lookup(key)
		if !ok {
			return Span{}
		}
		return Span{base + m.Offset, base + m.Offset + len(m.Value)}
	}
	l := Layout{
		Model:          span(top, off, "model"),
		StreamOptions:  span(top, off, "stream_options"),
		SamplingParams: span(top, off, "sampling_params"),
		Members:        len(top),
		End:            bytes.LastIndexByte(body, '}'),
	}
	setLimit := func(m LimitMember, s Span) { l.setLimit(m, s.Start, s.End) }
	setLimit(LimitMaxTokens, span(top, off, "max_tokens"))
	setLimit(LimitMaxCompletionTokens, span(top, off, "max_completion_tokens"))
	setLimit(LimitMaxOutputTokens, span(top, off, "max_output_tokens"))
	if sp := l.SamplingParams; sp.Found() && e == Generate && body[sp.Start] == '{' {
		setLimit(LimitSamplingMaxTokens, span(jsonscan.Members(body[sp.Start:sp.End], nil), sp.Start, "max_tokens"))
	}
	if so := l.StreamOptions; so.Found() && streamsOptions(e) && body[so.Start] == '{' {
		opts := jsonscan.Members(body[so.Start:so.End], nil)
		l.StreamOptionsMembers = len(opts)
		l.IncludeUsage = span(opts, so.Start, "include_usage")
	}
	return l, top
}

// streamsOptions reports whether ParseBody reads stream_options for e.
func streamsOptions(e Endpoint) bool {
	switch e {
	case ChatCompletions, Completions, Responses, Generate:
		return true
	}
	return false
}

// checkBody parses body with ParseBody and checks it against ParseRequest
// and the reference layout.
func checkBody(t *testing.T, e Endpoint, body []byte) {
	t.Helper()
	var b Body
	err := ParseBody(&b, e, body)
	want, wantErr := ParseRequest(e, body)
	if wantErr != nil {
		require.Error(t, err, "%s %q", e, body)
		require.Equal(t, wantErr.Error(), err.Error(), "%s %q", e, body)
		return
	}
	require.NoError(t, err, "%s %q", e, body)
	require.Equal(t, *want, b.Request, "%s %q", e, body)
	l, top := refLayout(t, want.Endpoint, body)
	require.Equal(t, l, b.Layout, "%s %q", e, body)
	names := []string{"model", "user", "stream", "messages", "absent", ""}
	for _, m := range top {
		var name string
		if json.Unmarshal(append(append([]byte{'"'}, m.Key...), '"'), &name) == nil && isASCII(name) {
			names = append(names, name)
		}
	}
	for _, name := range names {
		s, _ := jsonscan.String(top.Get(name))
		require.Equal(t, s, b.Field(name), "%s %q: field %q", e, body, name)
	}
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// bodies reach every member ParseBody records: duplicates, escaped keys,
// stream_options of every shape, more members than a Body keeps inline.
var bodies = []string{
	`{"model":"m","stream":true}`,
	"{ \"messages\" : [ {\"model\":\"inner\"} ] ,\n  \"model\" :\t\"a\"  }\n",
	`{"model":"a","model":"\u0061","mod\u0065l":"b","x":"1","x":2,"y":"\u00e9"}`,
	`{"model":"m","stream_options":null}`,
	`{"model":"m","stream_options":{ }}`,
	`{"model":"m","stream_options":{"include_usage":false,"continuous_usage_stats":true,"include_usage":null}}`,
	`{"stream_options":{"include_usage":true},"stream_options":{"a":1},"model":"m"}`,
	`{"model":"m","max_tokens":5,"max_completion_tokens":null,"max_tokens" : 7 ,"max_output_tokens":9}`,
	`{"model":"m","token_ids":[1],"sampling_params":{"n":2,"max_tokens":3,"max_tokens":null}}`,
	`{"model":"m","token_ids":[1],"sampling_params":{ "max_tokens" : 12 },"max_tokens":4}`,
	`{"model":"m","a":"1","b":"2","c":"3","d":"4","e":"5","f":"6","g":"7","h":"8","i":"9","a":"10","tenant":"acme"}`,
}

func TestParseBodyAgrees(t *testing.T) {
	for _, s := range append(bodies, tricky...) {
		for e := range Invocations + 2 { // every kind, /invocations, and two that are not
			checkBody(t, e, []byte(s))
		}
	}
}

// FuzzParseBodyAgrees: ParseBody reads what ParseRequest reads, and finds
// the members where a second reader finds them.
func FuzzParseBodyAgrees(f *testing.F) {
	for _, s := range append(bodies, tricky...) {
		f.Add(uint8(ChatCompletions), []byte(s))
	}
	f.Fuzz(func(t *testing.T, ep uint8, body []byte) {
		checkBody(t, Endpoint(ep%uint8(Invocations+2)), body)
	})
}

func TestParseBodyKeepsNoOldMember(t *testing.T) {
	var b Body
	require.NoError(t, ParseBody(&b, ChatCompletions, []byte(`{"model":"m","stream_options":{"include_usage":true},`+
		strings.Repeat(`"k":"v",`, 2*inlineOther)+`"tenant":"acme"}`)))
	assert.Equal(t, "acme", b.Field("tenant"))
	require.NoError(t, ParseBody(&b, ChatCompletions, []byte(`{"model":"n"}`)))
	assert.Equal(t, "", b.Field("tenant"))
	assert.Equal(t, "", b.Field("k"))
	assert.False(t, b.Layout.StreamOptions.Found())
	assert.Equal(t, Layout{Model: Span{9, 12}, Members: 1, End: 12}, b.Layout)
}

// TestForgetKeepsTheRequest: after Forget no member of the body is
// reachable through the Body (it no longer keeps the body alive), while
// the parsed request and the layout stay.
func TestForgetKeepsTheRequest(t *testing.T) {
	var b Body
	body := []byte(`{"model":"m","user":"bob",` + strings.Repeat(`"k":"v",`, 2*inlineOther) + `"tenant":"acme"}`)
	require.NoError(t, ParseBody(&b, ChatCompletions, body))
	req, layout := b.Request, b.Layout
	require.Equal(t, "acme", b.Field("tenant"))
	b.Forget()
	assert.Equal(t, "", b.Field("tenant"))
	assert.Equal(t, "", b.Field("user"))
	assert.Equal(t, req, b.Request)
	assert.Equal(t, layout, b.Layout)
	for _, m := range b.more[:cap(b.more)] {
		assert.Nil(t, m.Value, "a member value still refers to the body")
	}
	assert.Equal(t, fields{}, b.fields)
}
