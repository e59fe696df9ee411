package usage

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// orderedMembers decodes a JSON object's members in document order, each
// value as written (encoding/json, independent of the scanner).
func orderedMembers(data []byte) (keys []string, values []json.RawMessage, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil, false
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, false
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, false
		}
		keys, values = append(keys, tok.(string)), append(values, raw)
	}
	return keys, values, true
}

// stripReference is what a client that asked for no continuous usage
// receives of body, a stream of compact JSON events ("data: …" then a
// blank line, as vLLM writes them): each event with a non-empty choices
// array is decoded and written again with its usage deleted (chat) or
// null (completions); with drop, the usage-only events are removed.
func stripReference(t *testing.T, body string, mode StripMode, drop bool) string {
	var b strings.Builder
	for _, ev := range strings.SplitAfter(body, "\n\n") {
		data, ok := strings.CutPrefix(ev, "data: ")
		data = strings.TrimSuffix(data, "\n\n")
		keys, values, isObject := orderedMembers([]byte(data))
		if !ok || !isObject {
			b.WriteString(ev)
			continue
		}
		var choices []json.RawMessage
		var usage json.RawMessage
		for i, k := range keys {
			switch k {
			case "choices":
				require.NoError(t, json.Unmarshal(values[i], &choices))
			case "usage":
				usage = values[i]
			}
		}
		if len(choices) == 0 {
			if drop && usage != nil && string(usage) != "null" {
				continue
			}
			b.WriteString(ev)
			continue
		}
		var members []string
		for i, k := range keys {
			v := string(values[i])
			if k == "usage" {
				if mode == StripDelete {
					continue
				}
				v = "null"
			}
			members = append(members, strconv.Quote(k)+":"+v)
		}
		b.WriteString("data: {" + strings.Join(members, ",") + "}\n\n")
	}
	return b.String()
}

// TestSSEStripContinuousFixtures: a continuous-usage stream with its
// per-chunk usage hidden is, whatever the splits, what the reference
// writes: chat chunks without a usage key, completions chunks with
// "usage":null; the usage found is the same as without hiding.
func TestSSEStripContinuousFixtures(t *testing.T) {
	seed := baseSeed(t)
	for _, c := range []struct {
		file string
		mode StripMode
	}{
		{"vllm-chat-stream-continuous.sse", StripDelete},
		{"vllm-chat-stream-continuous-n2.sse", StripDelete},
		{"vllm-chat-stream-continuous-n2-aborted.sse", StripDelete},
		{"vllm-completion-stream-continuous-n2.sse", StripNull},
		{"vllm-chat-stream-usage.sse", StripDelete}, // nothing to strip
		{"vllm-completion-stream-usage.sse", StripNull},
	} {
		body, err := os.ReadFile(filepath.Join("testdata", c.file))
		require.NoError(t, err)
		for _, drop := range []bool{false, true} {
			t.Run(strings.TrimSuffix(c.file, ".sse")+"/drop="+strconv.FormatBool(drop), func(t *testing.T) {
				want := stripReference(t, string(body), c.mode, drop)
				plain, _ := scanSSE(t, body, sseRun{drop: drop}, whole)
				run := sseRun{drop: drop, strip: c.mode}
				for i, next := range []func(int) int{whole, bytewise, randomSplits(seed), randomSplits(seed + 1)} {
					got, _ := scanSSE(t, body, run, next)
					require.Equal(t, want, got.Out, "split %d", i)
					got.Out = plain.Out
					require.Equal(t, plain, got, "hiding the usage changes what is found")
				}
				if c.mode == StripDelete && drop {
					assert.NotContains(t, want, `"usage"`)
				}
				if c.mode == StripNull {
					assert.NotContains(t, strings.ReplaceAll(want, `"choices":[],"usage":{`, ""), `"usage":{`)
				}
			})
		}
	}
}

// TestSSEStripShapes: the member goes with one separator wherever it is,
// every other byte kept; events that are not one data line holding a
// JSON object with choices are forwarded as they came.
func TestSSEStripShapes(t *testing.T) {
	const u = `{"prompt_tokens":3,"total_tokens":4,"completion_tokens":1}`
	tests := []struct {
		name     string
		mode     StripMode
		in, want string
	}{
		{"last", StripDelete, `data: {"id":"a","choices":[{"index":0}],"usage":` + u + "}\n\n", `data: {"id":"a","choices":[{"index":0}]}` + "\n\n"},
		{"first", StripDelete, `data: {"usage":` + u + `,"choices":[{"index":0}]}` + "\n\n", `data: {"choices":[{"index":0}]}` + "\n\n"},
		{"middle, spaced", StripDelete, "data:{ \"choices\" : [ {} ] , \"usage\" : " + u + " , \"x\" : 1 }\r\n\r\n", "data:{ \"choices\" : [ {} ] , \"x\" : 1 }\r\n\r\n"},
		{"duplicates and an escaped key", StripDelete, `data: {"usage":null,"us\u0061ge":` + u + `,"choices":[{}],"usage":1,"usage":2}` + "\n\n", `data: {"choices":[{}]}` + "\n\n"},
		{"comment and id kept", StripDelete, ": keep-alive\nid: 7\ndata: {\"choices\":[{}],\"usage\":" + u + "}\nretry: 5\n\n", ": keep-alive\nid: 7\ndata: {\"choices\":[{}]}\nretry: 5\n\n"},
		{"null", StripNull, `data: {"choices":[{"index":0}],"usage":` + u + "}\n\n", `data: {"choices":[{"index":0}],"usage":null}` + "\n\n"},
		{"null kept", StripNull, `data: {"choices":[{"index":0}],"usage":null}` + "\n\n", `data: {"choices":[{"index":0}],"usage":null}` + "\n\n"},
		{"null duplicates", StripNull, `data: {"usage":` + u + `,"choices":[{}],"usage" : 7}` + "\n\n", `data: {"usage":null,"choices":[{}],"usage" : null}` + "\n\n"},
		{"unterminated last event", StripDelete, `data: {"choices":[{}],"usage":` + u + "}\n", `data: {"choices":[{}]}` + "\n"},
		{"unterminated last line", StripNull, `data: {"choices":[{}],"usage":` + u + "}", `data: {"choices":[{}],"usage":null}`},
		// Forwarded as they came.
		{"usage-only event", StripDelete, `data: {"choices":[],"usage":` + u + "}\n\n", `data: {"choices":[],"usage":` + u + "}\n\n"},
		{"no choices", StripDelete, `data: {"usage":` + u + "}\n\n", `data: {"usage":` + u + "}\n\n"},
		{"two data lines", StripDelete, "data: {\"choices\":[{}],\ndata: \"usage\":" + u + "}\n\n", "data: {\"choices\":[{}],\ndata: \"usage\":" + u + "}\n\n"},
		{"not JSON", StripDelete, `data: {"choices":[{}],"usage":` + u + "\n\n", `data: {"choices":[{}],"usage":` + u + "\n\n"},
		{"a nested usage", StripDelete, `data: {"choices":[{"usage":1}],"x":{"usage":2}}` + "\n\n", `data: {"choices":[{"usage":1}],"x":{"usage":2}}` + "\n\n"},
		{"done", StripDelete, "data: [DONE]\n\n", "data: [DONE]\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, next := range []func(int) int{whole, bytewise} {
				got, _ := scanSSE(t, []byte(tt.in), sseRun{strip: tt.mode}, next)
				assert.Equal(t, tt.want, got.Out)
			}
		})
	}
}

// TestSSEStripLimit: an event larger than the limit is forwarded as it
// came, its usage still read; smaller ones around it are rewritten.
func TestSSEStripLimit(t *testing.T) {
	small := `data: {"choices":[{"index":0}],"usage":{"prompt_tokens":3,"total_tokens":4,"completion_tokens":1}}` + "\n\n"
	big := `data: {"choices":[{"index":0,"delta":{"content":"` + strings.Repeat("x", 200) + `"}}],"usage":{"prompt_tokens":3,"total_tokens":6,"completion_tokens":3}}` + "\n\n"
	body := small + big + small
	want := `data: {"choices":[{"index":0}]}` + "\n\n" + big + `data: {"choices":[{"index":0}]}` + "\n\n"
	for _, next := range []func(int) int{whole, bytewise, randomSplits(7)} {
		got, _ := scanSSE(t, []byte(body), sseRun{strip: StripDelete, limit: 150}, next)
		assert.Equal(t, want, got.Out)
		assert.True(t, got.Found)
		// A larger event's usage is read whole, as the request's: later
		// running counts do not replace it (see the package doc).
		assert.Equal(t, int64(3), got.Usage.Completion)
	}
}

// TestSSEStripOtherKinds: SetStripChunkUsage is ignored for streams that
// are not SSEChat.
func TestSSEStripOtherKinds(t *testing.T) {
	body, err := os.ReadFile(filepath.Join("testdata", "vllm-responses-stream.sse"))
	require.NoError(t, err)
	got, changed := scanSSE(t, body, sseRun{kind: SSEResponses, strip: StripDelete}, bytewise)
	assert.Equal(t, string(body), got.Out)
	assert.Zero(t, changed)
}

// checkStrip, for FuzzSSEScanner: with each chunk's usage hidden (the
// mode and the drop picked by seed), the output is the same for every
// split, what is found is what is found without hiding, and the output holds the same
// events as without hiding, each the same but for its data: an event of
// one data line holding a JSON object with a non-empty choices array and
// a usage to hide, at most limit bytes long, has the data that
// encoding/json decodes to the original without usage (StripDelete,
// taking bytes out only) or with usage null (StripNull); any other is
// unchanged.
func checkStrip(t *testing.T, body []byte, seed uint64, limit int) {
	mode := StripDelete + StripMode(seed%2)
	drop := seed%4 < 2
	run := sseRun{drop: drop, strip: mode, limit: limit}
	got, _ := scanSSE(t, body, run, whole)
	for _, next := range []func(int) int{bytewise, randomSplits(seed)} {
		again, _ := scanSSE(t, body, run, next)
		require.Equal(t, got, again, "seed %d", seed)
	}
	plain, _ := scanSSE(t, body, sseRun{drop: drop, limit: limit}, whole)
	out := got.Out
	got.Out = plain.Out
	require.Equal(t, plain, got, "hiding the usage changes what is found")

	if limit == 0 {
		limit = MaxSSEEventBytes
	}
	before, after := refEvents(plain.Out), refEvents(out)
	require.Equal(t, len(before), len(after), "the same events: %q\n%q", plain.Out, out)
	for i, ev := range before {
		want := ev.lines
		if data, ok := ev.strippable(mode); ok && ev.size <= limit {
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(data), &m))
			if mode == StripDelete {
				delete(m, "usage")
			} else {
				m["usage"] = nil
			}
			data, ok := after[i].onlyData()
			require.True(t, ok, "%q", after[i].lines)
			var n map[string]any
			require.NoError(t, json.Unmarshal([]byte(data), &n), "%q", data)
			require.Equal(t, m, n)
			if mode == StripDelete {
				orig, _ := ev.onlyData()
				require.True(t, isSubsequence(data, orig), "bytes taken out only")
			}
			want = make([]string, len(ev.lines))
			for j, l := range ev.lines {
				if j == ev.dataLine {
					l = after[i].lines[j]
				}
				want[j] = l
			}
		}
		require.Equal(t, want, after[i].lines)
	}
}

// refEvent is one event of a text/event-stream read by refEvents: its
// lines (without terminators), its size (from its first byte to the
// first byte of the blank line's terminator, or to the end of the
// stream) and its data lines.
type refEvent struct {
	lines     []string
	size      int
	dataLines int
	dataLine  int    // index in lines of the first data line
	data      string // its value
}

// refEvents splits body into events as the text/event-stream format
// says (lines end at "\r\n", "\r" or "\n"; a blank line ends an event),
// independently of the scanner.
func refEvents(body string) []refEvent {
	var evs []refEvent
	var cur *refEvent
	start := 0
	add := func(line string, at int) {
		if cur == nil {
			cur, start = &refEvent{dataLine: -1}, at
		}
		name, value, colon := strings.Cut(line, ":")
		if name == "data" && (colon || line == "data") {
			if cur.dataLines == 0 {
				cur.dataLine, cur.data = len(cur.lines), strings.TrimPrefix(value, " ")
			}
			cur.dataLines++
		}
		cur.lines = append(cur.lines, line)
	}
	for i := 0; ; {
		j := i
		for j < len(body) && body[j] != '\r' && body[j] != '\n' {
			j++
		}
		line := body[i:j]
		if j == len(body) {
			if line != "" {
				add(line, i)
			}
			if cur != nil {
				cur.size = len(body) - start
				evs = append(evs, *cur)
			}
			return evs
		}
		if line == "" {
			if cur != nil {
				cur.size = j + 1 - start
				evs = append(evs, *cur)
				cur = nil
			}
		} else {
			add(line, i)
		}
		i = j + 1
		if body[j] == '\r' && i < len(body) && body[i] == '\n' {
			i++
		}
	}
}

// onlyData returns the value of the event's one data line.
func (e refEvent) onlyData() (string, bool) { return e.data, e.dataLines == 1 }

// strippable returns the data of an event whose usage mode hides: one
// data line, a JSON object whose choices is a non-empty array and that
// has a usage member (one that is not null, for StripNull).
func (e refEvent) strippable(mode StripMode) (string, bool) {
	data, ok := e.onlyData()
	if !ok {
		return "", false
	}
	var top map[string]json.RawMessage
	if json.Unmarshal([]byte(data), &top) != nil || top == nil {
		return "", false
	}
	var choices []json.RawMessage
	if json.Unmarshal(top["choices"], &choices) != nil || len(choices) == 0 {
		return "", false
	}
	var keys []string
	dec := json.NewDecoder(strings.NewReader(data))
	dec.Token()
	for dec.More() {
		tok, _ := dec.Token()
		var raw json.RawMessage
		dec.Decode(&raw)
		if tok == "usage" && string(raw) != "null" {
			keys = append(keys, "usage")
		}
	}
	return data, len(keys) > 0
}

// FuzzSSEStrip is checkStrip alone over small streams, so that the fuzzer
// explores the shapes of one or two events quickly (FuzzSSEScanner runs
// it too, over whole recorded streams).
func FuzzSSEStrip(f *testing.F) {
	const u = `{"prompt_tokens":3,"total_tokens":4,"completion_tokens":1}`
	for i, seed := range []string{
		`data: {"id":"a","choices":[{"index":0}],"usage":` + u + "}\n\n",
		`data: {"usage":` + u + `,"choices":[{"index":0}]}` + "\r\n\r\n" + `data: {"choices":[],"usage":` + u + "}\r\n\r\n",
		"data:{ \"choices\" : [ {} ] , \"usage\" : " + u + " , \"us\\u0061ge\" : 1 }\n: c\nid: 1\n\n",
		`data: {"choices":[{}],"usage":null,"usage":` + u + "}",
		"data: {\"choices\":[{}],\ndata: \"usage\":" + u + "}\n\n",
	} {
		f.Add([]byte(seed), uint64(i), uint8(0))
		f.Add([]byte(seed), uint64(i+1), uint8(40))
	}
	f.Fuzz(func(t *testing.T, body []byte, seed uint64, small uint8) {
		checkStrip(t, body, seed, int(small))
	})
}
