package tokencount

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// billingHeader starts Claude Code's per-request attribution block, which
// vLLM leaves out of the system prompt.
const billingHeader = "x-anthropic-billing-header"

// chatMsg is one chat message as vLLM's conversions build it (key order
// theirs; a nil member is absent).
type chatMsg struct {
	Role       string          `json:"role"`
	ToolCallID *string         `json:"tool_call_id,omitempty"`
	Reasoning  *string         `json:"reasoning,omitempty"`
	ToolCalls  []toolCall      `json:"tool_calls,omitempty"`
	Content    json.RawMessage `json:"content,omitempty"`
}

type toolCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function toolFunction `json:"function"`
}

type toolFunction struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

type textPart struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// FromAnthropic converts an Anthropic Messages request body to the chat
// prompt vLLM renders for it (vLLM's AnthropicServingMessages conversion):
// the system prompt (a string, or its text blocks joined without
// separator, Claude Code's billing header block left out) as one system
// message; each message's text blocks as its content (one block as a
// string), its thinking blocks joined as "reasoning", its tool_use blocks
// as tool_calls (arguments as Python's json.dumps writes the input); a
// user's tool_result blocks as tool messages before it (text items joined
// by "\n"); the tools as chat function tools. It fails with ErrUncountable
// where the rendering cannot be known from the body alone: images and
// documents, system messages inside messages (placed by a renderer probe
// in vLLM), tool_choice none (a server flag decides whether the tools are
// rendered), an output effort, a tool_use without id, and shapes vLLM
// refuses.
func FromAnthropic(body []byte) (ChatInput, error) {
	if !utf8.Valid(body) {
		return ChatInput{}, fmt.Errorf("%w: body is not UTF-8", ErrUncountable)
	}
	top, ok := object(body)
	if !ok {
		return ChatInput{}, fmt.Errorf("%w: body is not an object", ErrUncountable)
	}
	var msgs []chatMsg
	if sys, err := anthropicSystem(top["system"]); err != nil {
		return ChatInput{}, err
	} else if sys != "" {
		msgs = append(msgs, chatMsg{Role: "system", Content: jsonString(sys)})
	}
	var list []json.RawMessage
	if json.Unmarshal(top["messages"], &list) != nil || len(list) == 0 {
		return ChatInput{}, fmt.Errorf("%w: messages is not a non-empty list", ErrUncountable)
	}
	for _, raw := range list {
		var err error
		if msgs, err = anthropicMessage(msgs, raw); err != nil {
			return ChatInput{}, err
		}
	}
	if !isNull(top["output_config"]) {
		if oc, ok := object(top["output_config"]); !ok || !isNull(oc["effort"]) {
			return ChatInput{}, fmt.Errorf("%w: output_config.effort", ErrUncountable)
		}
	}
	tools, err := anthropicTools(top["tools"], top["tool_choice"])
	if err != nil {
		return ChatInput{}, err
	}
	m, err := json.Marshal(msgs)
	if err != nil {
		return ChatInput{}, fmt.Errorf("%w: %v", ErrUncountable, err)
	}
	return ChatInput{Messages: m, Tools: tools, ChatTemplateKwargs: orNil(top["chat_template_kwargs"])}, nil
}

// anthropicSystem is the system prompt's text.
func anthropicSystem(raw json.RawMessage) (string, error) {
	if isNull(raw) {
		return "", nil
	}
	if s, ok := str(raw); ok {
		return s, nil
	}
	var blocks []json.RawMessage
	if json.Unmarshal(raw, &blocks) != nil {
		return "", fmt.Errorf("%w: system is neither text nor blocks", ErrUncountable)
	}
	var b strings.Builder
	for _, raw := range blocks {
		blk, ok := object(raw)
		if !ok {
			return "", fmt.Errorf("%w: a system block is not an object", ErrUncountable)
		}
		typ, _ := str(blk["type"])
		if typ != "text" {
			return "", fmt.Errorf("%w: a system block of type %q", ErrUncountable, typ)
		}
		text, ok := optStr(blk["text"])
		if !ok {
			return "", fmt.Errorf("%w: a system block's text is not a string", ErrUncountable)
		}
		if !strings.HasPrefix(text, billingHeader) {
			b.WriteString(text)
		}
	}
	return b.String(), nil
}

// anthropicMessage appends the chat messages of one Anthropic message.
func anthropicMessage(msgs []chatMsg, raw json.RawMessage) ([]chatMsg, error) {
	m, ok := object(raw)
	if !ok {
		return nil, fmt.Errorf("%w: a message is not an object", ErrUncountable)
	}
	role, _ := str(m["role"])
	if role != "user" && role != "assistant" {
		return nil, fmt.Errorf("%w: a message of role %q", ErrUncountable, role)
	}
	if s, ok := str(m["content"]); ok {
		return append(msgs, chatMsg{Role: role, Content: jsonString(s)}), nil
	}
	var blocks []json.RawMessage
	if json.Unmarshal(m["content"], &blocks) != nil || len(blocks) == 0 {
		return nil, fmt.Errorf("%w: a message's content is neither text nor blocks", ErrUncountable)
	}
	out := chatMsg{Role: role}
	var parts []textPart
	var reasoning []string
	for _, raw := range blocks {
		blk, ok := object(raw)
		if !ok {
			return nil, fmt.Errorf("%w: a content block is not an object", ErrUncountable)
		}
		typ, _ := str(blk["type"])
		switch typ {
		case "text":
			text, ok := optStr(blk["text"])
			if !ok {
				return nil, fmt.Errorf("%w: a text block's text is not a string", ErrUncountable)
			}
			if text != "" {
				parts = append(parts, textPart{Type: "text", Text: text})
			}
		case "thinking":
			if !isNull(blk["thinking"]) {
				t, ok := str(blk["thinking"])
				if !ok {
					return nil, fmt.Errorf("%w: a thinking block's thinking is not a string", ErrUncountable)
				}
				reasoning = append(reasoning, t)
			}
		case "redacted_thinking":
		case "tool_use":
			tc, err := anthropicToolUse(blk)
			if err != nil {
				return nil, err
			}
			out.ToolCalls = append(out.ToolCalls, tc)
		case "tool_result":
			var err error
			if msgs, parts, err = anthropicToolResult(msgs, parts, role, blk); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("%w: a content block of type %q", ErrUncountable, typ)
		}
	}
	if len(reasoning) > 0 {
		r := strings.Join(reasoning, "")
		out.Reasoning = &r
	}
	switch {
	case len(parts) == 1:
		out.Content = jsonString(parts[0].Text)
	case len(parts) > 1:
		out.Content, _ = json.Marshal(parts) // text parts always marshal
	}
	if role == "user" && out.Content == nil {
		return msgs, nil // vLLM drops a user message left without content
	}
	return append(msgs, out), nil
}

// anthropicToolUse is a tool_use block's tool call.
func anthropicToolUse(blk map[string]json.RawMessage) (toolCall, error) {
	id, _ := optStr(blk["id"])
	if id == "" {
		return toolCall{}, fmt.Errorf("%w: a tool_use block without id (vLLM makes one of the clock)", ErrUncountable)
	}
	name, ok := optStr(blk["name"])
	if !ok {
		return toolCall{}, fmt.Errorf("%w: a tool_use block's name is not a string", ErrUncountable)
	}
	args := "{}"
	if in := bytes.TrimSpace(blk["input"]); !isNull(in) {
		if len(in) == 0 || in[0] != '{' {
			return toolCall{}, fmt.Errorf("%w: a tool_use block's input is not an object", ErrUncountable)
		}
		var err error
		if args, err = pyDumps(in); err != nil {
			return toolCall{}, err
		}
	}
	return toolCall{ID: id, Type: "function", Function: toolFunction{Name: name, Arguments: args}}, nil
}

// anthropicToolResult converts a tool_result block: of a user, a tool
// message appended to msgs; of an assistant, a text part.
func anthropicToolResult(msgs []chatMsg, parts []textPart, role string, blk map[string]json.RawMessage) ([]chatMsg, []textPart, error) {
	content := blk["content"]
	if role != "user" {
		text := ""
		if s, ok := str(content); ok {
			text = s
		} else if !isNull(content) && !bytes.Equal(bytes.TrimSpace(content), []byte("[]")) {
			return nil, nil, fmt.Errorf("%w: an assistant's tool_result with blocks (rendered as a Python repr)", ErrUncountable)
		}
		return msgs, append(parts, textPart{Type: "text", Text: "Tool result: " + text}), nil
	}
	text := ""
	if s, ok := str(content); ok {
		text = s
	} else if !isNull(content) {
		var items []json.RawMessage
		if json.Unmarshal(content, &items) != nil {
			return nil, nil, fmt.Errorf("%w: a tool_result's content is neither text nor a list", ErrUncountable)
		}
		var texts []string
		for _, raw := range items {
			item, ok := object(raw)
			if !ok {
				continue // vLLM skips what is not a dict
			}
			switch typ, _ := str(item["type"]); typ {
			case "text":
				t, ok := optStr(item["text"])
				if !ok {
					return nil, nil, fmt.Errorf("%w: a tool_result text item's text is not a string", ErrUncountable)
				}
				texts = append(texts, t)
			case "image", "tool_reference":
				return nil, nil, fmt.Errorf("%w: a tool_result item of type %q", ErrUncountable, typ)
			}
		}
		text = strings.Join(texts, "\n")
	}
	id, _ := optStr(blk["tool_use_id"])
	return append(msgs, chatMsg{Role: "tool", ToolCallID: &id, Content: jsonString(text)}), parts, nil
}

// anthropicTools converts the tools to chat function tools.
func anthropicTools(raw, choice json.RawMessage) (json.RawMessage, error) {
	if isNull(raw) {
		return nil, nil
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil {
		return nil, fmt.Errorf("%w: tools is not a list", ErrUncountable)
	}
	if c, ok := object(choice); ok {
		if typ, _ := str(c["type"]); typ == "none" {
			return nil, fmt.Errorf("%w: tool_choice none (a server flag decides whether tools are rendered)", ErrUncountable)
		}
	}
	type function struct {
		Name         string          `json:"name"`
		Description  json.RawMessage `json:"description"`
		Parameters   json.RawMessage `json:"parameters"`
		DeferLoading json.RawMessage `json:"defer_loading,omitempty"`
	}
	type tool struct {
		Type     string   `json:"type"`
		Function function `json:"function"`
	}
	out := make([]tool, 0, len(list))
	for _, raw := range list {
		t, ok := object(raw)
		if !ok {
			return nil, fmt.Errorf("%w: a tool is not an object", ErrUncountable)
		}
		if typ, ok := optStr(t["type"]); !ok || typ != "" && typ != "custom" {
			return nil, fmt.Errorf("%w: a server tool", ErrUncountable)
		}
		name, ok := str(t["name"])
		if !ok || !isObject(t["input_schema"]) {
			return nil, fmt.Errorf("%w: a tool without name or input_schema", ErrUncountable)
		}
		f := function{Name: name, Description: orJSONNull(t["description"]), Parameters: t["input_schema"], DeferLoading: orNil(t["defer_loading"])}
		out = append(out, tool{Type: "function", Function: f})
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUncountable, err)
	}
	return b, nil
}
