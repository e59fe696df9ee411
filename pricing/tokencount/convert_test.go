package tokencount

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Expected values written from vLLM's own conversion code (anthropic
// serving, responses utils and protocol) and, for pyDumps, printed by
// CPython's json.dumps.

func TestPyDumps(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"path": "/tmp/f"}`, `{"path": "/tmp/f"}`},
		{`{"a":1,"b":[1.5,"é",null,true,false],"c":{}}`, `{"a": 1, "b": [1.5, "\u00e9", null, true, false], "c": {}}`},
		{`{"x":"日本😀\u0007\u007f\n\t\"\\\/"}`, `{"x": "\u65e5\u672c\ud83d\ude00\u0007\u007f\n\t\"\\/"}`},
		{`{"n":[-0,0.0,-0.0,1e16,1.5e16,1e15,0.0001,0.00001,123456789012345678901234567890,1E2,2.5e-7,1e400,-1e400,100.0,3.14159]}`,
			`{"n": [0, 0.0, -0.0, 1e+16, 1.5e+16, 1000000000000000.0, 0.0001, 1e-05, 123456789012345678901234567890, 100.0, 2.5e-07, Infinity, -Infinity, 100.0, 3.14159]}`},
		{`{}`, `{}`},
		{` { "k" : [ [ ] , { } ] } `, `{"k": [[], {}]}`},
	}
	for _, tt := range tests {
		got, err := pyDumps([]byte(tt.in))
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.want, got, tt.in)
	}
	for _, bad := range []string{`{"a":1,"a":2}`, `{"a":1} x`, `{"a":`, ``} {
		_, err := pyDumps([]byte(bad))
		assert.ErrorIs(t, err, ErrUncountable, bad)
	}
}

func TestFromAnthropic(t *testing.T) {
	tests := []struct {
		name, body, messages, tools string
	}{
		{name: "system string and text",
			body:     `{"model":"m","max_tokens":9,"system":"Be brief.","messages":[{"role":"user","content":"Hi"}]}`,
			messages: `[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]`},
		{name: "system blocks joined, billing header left out, empty text skipped",
			body: `{"model":"m","max_tokens":9,"system":[{"type":"text","text":"x-anthropic-billing-header: cc_version=1;"},{"type":"text","text":"You are Claude Code."},{"type":"text","text":" Be concise.","cache_control":{"type":"ephemeral"}}],
				"messages":[{"role":"user","content":[{"type":"text","text":""},{"type":"text","text":"A"},{"type":"text","text":"B"}]}]}`,
			messages: `[{"role":"system","content":"You are Claude Code. Be concise."},{"role":"user","content":[{"type":"text","text":"A"},{"type":"text","text":"B"}]}]`},
		{name: "thinking, tool use and tool results",
			body: `{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"What is 2+2?"},
				{"role":"assistant","content":[{"type":"thinking","thinking":"First. ","signature":"s"},{"type":"redacted_thinking","data":"x"},{"type":"thinking","thinking":"Second.","signature":"s"},{"type":"tool_use","id":"call_1","name":"calc","input":{"expr":"2+2","n":1.0}}]},
				{"role":"user","content":[{"type":"tool_result","tool_use_id":"call_1","content":[{"type":"text","text":"4"},{"type":"text","text":"four"}]},{"type":"text","text":"Thanks"}]},
				{"role":"user","content":[{"type":"tool_result","tool_use_id":"call_2"}]}],
				"tools":[{"name":"calc","description":"Calculator","input_schema":{"type":"object"}},{"name":"t2","input_schema":{},"defer_loading":true}],"tool_choice":{"type":"auto"}}`,
			messages: `[{"role":"user","content":"What is 2+2?"},
				{"role":"assistant","reasoning":"First. Second.","tool_calls":[{"id":"call_1","type":"function","function":{"name":"calc","arguments":"{\"expr\": \"2+2\", \"n\": 1.0}"}}]},
				{"role":"tool","tool_call_id":"call_1","content":"4\nfour"},{"role":"user","content":"Thanks"},
				{"role":"tool","tool_call_id":"call_2","content":""}]`,
			tools: `[{"type":"function","function":{"name":"calc","description":"Calculator","parameters":{"type":"object"}}},{"type":"function","function":{"name":"t2","description":null,"parameters":{},"defer_loading":true}}]`},
		{name: "assistant tool result and empty assistant",
			body:     `{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"q"},{"role":"assistant","content":[{"type":"tool_result","tool_use_id":"x","content":"done"},{"type":"text","text":"ok"}]},{"role":"assistant","content":[{"type":"text","text":""}]}]}`,
			messages: `[{"role":"user","content":"q"},{"role":"assistant","content":[{"type":"text","text":"Tool result: done"},{"type":"text","text":"ok"}]},{"role":"assistant"}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := FromAnthropic([]byte(tt.body))
			require.NoError(t, err)
			assert.JSONEq(t, tt.messages, string(in.Messages))
			if tt.tools == "" {
				assert.Nil(t, in.Tools)
			} else {
				assert.JSONEq(t, tt.tools, string(in.Tools))
			}
			assert.Nil(t, in.AddGenerationPrompt, "vLLM's defaults")
		})
	}
}

func TestFromAnthropicUncountable(t *testing.T) {
	for name, body := range map[string]string{
		"image":             `{"messages":[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"u"}}]}]}`,
		"inline system":     `{"messages":[{"role":"user","content":"a"},{"role":"system","content":"s"}]}`,
		"tool_use id":       `{"messages":[{"role":"assistant","content":[{"type":"tool_use","name":"f","input":{}}]}]}`,
		"tool result image": `{"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"a","content":[{"type":"image","source":{}}]}]}]}`,
		"tool_choice none":  `{"messages":[{"role":"user","content":"a"}],"tools":[{"name":"f","input_schema":{}}],"tool_choice":{"type":"none"}}`,
		"server tool":       `{"messages":[{"role":"user","content":"a"}],"tools":[{"type":"web_search_20250305","name":"web_search"}]}`,
		"effort":            `{"messages":[{"role":"user","content":"a"}],"output_config":{"effort":"high"}}`,
		"document":          `{"messages":[{"role":"user","content":[{"type":"document","source":{}}]}]}`,
		"no messages":       `{"messages":[]}`,
		"empty content":     `{"messages":[{"role":"user","content":[]}]}`,
		"not utf-8":         "{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}",
	} {
		_, err := FromAnthropic([]byte(body))
		assert.ErrorIs(t, err, ErrUncountable, name)
	}
}

func TestFromResponses(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name, body, messages, kwargs string
		continueFinal                bool
	}{
		{name: "instructions and a string input",
			body:     `{"model":"m","instructions":"Be brief.","input":"Hi"}`,
			messages: `[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]`},
		{name: "items merged as vLLM merges them",
			body: `{"model":"m","input":[{"type":"message","role":"developer","content":[{"type":"input_text","text":"Rules"}]},
				{"role":"user","content":"What is 2+2?"},
				{"type":"reasoning","summary":[],"content":[{"type":"reasoning_text","text":"add"}]},
				{"type":"function_call","call_id":"c1","name":"calc","arguments":"{\"e\":\"2+2\"}"},
				{"type":"function_call","call_id":"c2","name":"calc","arguments":"{}"},
				{"type":"function_call_output","call_id":"c1","output":"4"},
				{"type":"message","role":"assistant","content":[{"type":"output_text","text":"It is 4.","annotations":[]},{"type":"output_text","text":"dropped"}]},
				{"type":"reasoning","summary":[{"type":"summary_text","text":"more"}]}],
				"reasoning":{"effort":"low"},"chat_template_kwargs":{"custom":1}}`,
			messages: `[{"role":"developer","content":[{"type":"text","text":"Rules"}]},{"role":"user","content":"What is 2+2?"},
				{"role":"assistant","reasoning":"add","tool_calls":[{"id":"c1","type":"function","function":{"name":"calc","arguments":"{\"e\":\"2+2\"}"}},{"id":"c2","type":"function","function":{"name":"calc","arguments":"{}"}}]},
				{"role":"tool","tool_call_id":"c1","content":"4"},{"role":"assistant","content":"It is 4.","reasoning":"more"}]`,
			kwargs: `{"custom":1,"reasoning_effort":"low","enable_thinking":true}`},
		{name: "a partial assistant message is continued",
			body:          `{"model":"m","input":[{"role":"user","content":"Tell"},{"type":"message","role":"assistant","status":"incomplete","content":[{"type":"output_text","text":"Once"}]}],"reasoning":{"effort":"none"},"chat_template_kwargs":{"enable_thinking":true}}`,
			messages:      `[{"role":"user","content":"Tell"},{"role":"assistant","content":"Once"}]`,
			kwargs:        `{"enable_thinking":true,"reasoning_effort":"none"}`,
			continueFinal: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := FromResponses([]byte(tt.body))
			require.NoError(t, err)
			assert.JSONEq(t, tt.messages, string(in.Messages))
			if tt.kwargs == "" {
				assert.Nil(t, in.ChatTemplateKwargs)
			} else {
				assert.JSONEq(t, tt.kwargs, string(in.ChatTemplateKwargs))
			}
			assert.Nil(t, in.Tools)
			if tt.continueFinal {
				assert.Equal(t, &no, in.AddGenerationPrompt)
				assert.Equal(t, &yes, in.ContinueFinalMessage)
			} else {
				assert.Equal(t, &yes, in.AddGenerationPrompt)
				assert.Equal(t, &no, in.ContinueFinalMessage)
			}
		})
	}
}

func TestFromResponsesUncountable(t *testing.T) {
	for name, body := range map[string]string{
		"previous_response_id": `{"input":"a","previous_response_id":"resp_1"}`,
		"conversation":         `{"input":"a","conversation":"conv_1"}`,
		"tools":                `{"input":"a","tools":[{"type":"function","name":"f","parameters":{}}]}`,
		"image":                `{"input":[{"role":"user","content":[{"type":"input_image","image_url":"u"}]}]}`,
		"encrypted reasoning":  `{"input":[{"type":"reasoning","summary":[],"encrypted_content":"x"}]}`,
		"item reference":       `{"input":[{"type":"item_reference","id":"x"}]}`,
		"refusal":              `{"input":[{"type":"message","role":"assistant","content":[{"type":"refusal","refusal":"no"}]}]}`,
		"non-text output":      `{"input":[{"type":"function_call_output","call_id":"c","output":[{"type":"input_image"}]}]}`,
		"namespaced call":      `{"input":[{"type":"function_call","call_id":"c","name":"f","arguments":"{}","namespace":"ns"}]}`,
		"truncation":           `{"input":"a","truncation":"auto"}`,
		"no input":             `{"model":"m"}`,
	} {
		_, err := FromResponses([]byte(body))
		assert.ErrorIs(t, err, ErrUncountable, name)
	}
	in, err := FromResponses([]byte(`{"input":"a","tools":[],"truncation":"disabled"}`))
	require.NoError(t, err, "no tools and no truncation are countable")
	assert.JSONEq(t, `[{"role":"user","content":"a"}]`, string(in.Messages))
}

// TestChatMessagesSendsTheConversion: the /tokenize body carries the
// converted messages, tools and template options, and the count is the
// server's.
func TestChatMessagesSendsTheConversion(t *testing.T) {
	v := &vllm{t: t}
	srv := httptest.NewServer(v)
	defer srv.Close()
	c := New(Settings{Endpoint: srv.URL + "/tokenize", Timeout: 5 * time.Second, Queue: 4, Workers: 1, CacheEntries: 8}, nil)
	defer c.Close()

	in, err := FromResponses([]byte(`{"model":"alias","input":[{"role":"user","content":"one two"},{"role":"assistant","status":"in_progress","content":"three"}]}`))
	require.NoError(t, err)
	n, err := c.ChatMessages(context.Background(), "served", in).Wait(context.Background())
	require.NoError(t, err)
	assert.Equal(t, int64((2+2)+(1+2)), n, "two messages (words + 2 each), no generation prompt")
	v.mu.Lock()
	defer v.mu.Unlock()
	require.Len(t, v.bodies, 1)
	got := v.bodies[0]
	assert.Equal(t, "served", got["model"])
	assert.Equal(t, false, got["add_generation_prompt"])
	assert.Equal(t, true, got["continue_final_message"])
	assert.NotContains(t, got, "tools")

	_, err = c.ChatMessages(context.Background(), "served", ChatInput{Messages: json.RawMessage(`{}`)}).Wait(context.Background())
	assert.True(t, errors.Is(err, ErrUncountable))
}
