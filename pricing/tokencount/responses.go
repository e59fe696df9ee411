package tokencount

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// FromResponses converts a Responses API request body to the chat prompt
// vLLM renders for it (vLLM's construct_input_messages and the request's
// build_chat_params): the instructions as a system message; a string
// input as one user message; input items as chat messages (a message
// item's text, input_text parts as text parts; an assistant message's
// first output_text; function_call items as tool_calls and reasoning
// items as "reasoning" of the assistant message before them, when it has
// none yet; function_call_output items as tool messages); a final
// assistant or reasoning item still in_progress or incomplete continues
// the final message instead of adding the generation prompt; the
// reasoning effort becomes the reasoning_effort and enable_thinking
// template variables. It fails with ErrUncountable where the rendering
// cannot be known from the body alone: state vLLM keeps
// (previous_response_id, conversation), tools (their rendering depends on
// the OpenAI library vLLM runs with), images, files and audio, truncation,
// and items or shapes vLLM refuses. Models vLLM serves with the Harmony
// format (gpt-oss) render Responses their own way, which no request
// shows: their counts follow the chat template, as for chat completions.
func FromResponses(body []byte) (ChatInput, error) {
	if !utf8.Valid(body) {
		return ChatInput{}, fmt.Errorf("%w: body is not UTF-8", ErrUncountable)
	}
	top, ok := object(body)
	if !ok {
		return ChatInput{}, fmt.Errorf("%w: body is not an object", ErrUncountable)
	}
	for _, k := range []string{"previous_response_id", "conversation", "prompt", "previous_input_messages"} {
		if !isNull(top[k]) {
			return ChatInput{}, fmt.Errorf("%w: %s (state vLLM resolves)", ErrUncountable, k)
		}
	}
	if !isNull(top["tools"]) && !emptyList(top["tools"]) {
		return ChatInput{}, fmt.Errorf("%w: tools", ErrUncountable)
	}
	if t, _ := str(top["truncation"]); t == "auto" {
		return ChatInput{}, fmt.Errorf("%w: truncation auto", ErrUncountable)
	}
	var msgs []chatMsg
	if ins, ok := optStr(top["instructions"]); !ok {
		return ChatInput{}, fmt.Errorf("%w: instructions is not a string", ErrUncountable)
	} else if ins != "" {
		msgs = append(msgs, chatMsg{Role: "system", Content: jsonString(ins)})
	}
	continueFinal := false
	if s, ok := str(top["input"]); ok {
		msgs = append(msgs, chatMsg{Role: "user", Content: jsonString(s)})
	} else {
		var items []json.RawMessage
		if json.Unmarshal(top["input"], &items) != nil {
			return ChatInput{}, fmt.Errorf("%w: input is neither text nor a list", ErrUncountable)
		}
		for _, raw := range items {
			item, ok := object(raw)
			if !ok {
				return ChatInput{}, fmt.Errorf("%w: an input item is not an object", ErrUncountable)
			}
			var err error
			if msgs, err = responsesItem(msgs, item); err != nil {
				return ChatInput{}, err
			}
		}
		if len(items) > 0 {
			last, _ := object(items[len(items)-1])
			typ, _ := optStr(last["type"])
			status, _ := str(last["status"])
			continueFinal = (typ == "" || typ == "message" || typ == "reasoning") && (status == "in_progress" || status == "incomplete")
		}
	}
	kwargs, err := responsesKwargs(top)
	if err != nil {
		return ChatInput{}, err
	}
	m, err := json.Marshal(msgs)
	if err != nil {
		return ChatInput{}, fmt.Errorf("%w: %v", ErrUncountable, err)
	}
	addGen := !continueFinal
	return ChatInput{Messages: m, AddGenerationPrompt: &addGen, ContinueFinalMessage: &continueFinal, ChatTemplateKwargs: kwargs}, nil
}

// responsesItem appends the chat message of one input item, or merges it
// into the assistant message before it.
func responsesItem(msgs []chatMsg, item map[string]json.RawMessage) ([]chatMsg, error) {
	var prev *chatMsg
	if n := len(msgs); n > 0 && msgs[n-1].Role == "assistant" {
		prev = &msgs[n-1]
	}
	typ, _ := optStr(item["type"])
	switch typ {
	case "function_call":
		callID, ok1 := str(item["call_id"])
		name, ok2 := str(item["name"])
		args, ok3 := str(item["arguments"])
		if ns, _ := optStr(item["namespace"]); !ok1 || !ok2 || !ok3 || ns != "" {
			return nil, fmt.Errorf("%w: a function_call item vLLM refuses or renames", ErrUncountable)
		}
		tc := toolCall{ID: callID, Type: "function", Function: toolFunction{Name: name, Arguments: args}}
		if prev != nil {
			prev.ToolCalls = append(prev.ToolCalls, tc)
			return msgs, nil
		}
		return append(msgs, chatMsg{Role: "assistant", ToolCalls: []toolCall{tc}}), nil
	case "function_call_output":
		callID, ok1 := str(item["call_id"])
		out, ok2 := str(item["output"])
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("%w: a function_call_output whose output is not text", ErrUncountable)
		}
		return append(msgs, chatMsg{Role: "tool", ToolCallID: &callID, Content: jsonString(out)}), nil
	case "reasoning":
		r, err := reasoningText(item)
		if err != nil {
			return nil, err
		}
		if prev != nil && prev.Reasoning == nil {
			prev.Reasoning = &r
			return msgs, nil
		}
		return append(msgs, chatMsg{Role: "assistant", Reasoning: &r}), nil
	case "", "message":
		return responsesMessage(msgs, prev, item)
	}
	return nil, fmt.Errorf("%w: an input item of type %q", ErrUncountable, typ)
}

// responsesMessage converts a message item.
func responsesMessage(msgs []chatMsg, prev *chatMsg, item map[string]json.RawMessage) ([]chatMsg, error) {
	role, _ := str(item["role"])
	content := item["content"]
	if role == "assistant" {
		text, ok := str(content)
		if !ok {
			var parts []map[string]json.RawMessage
			if json.Unmarshal(content, &parts) != nil || len(parts) == 0 {
				return nil, fmt.Errorf("%w: an assistant message without text", ErrUncountable)
			}
			for _, p := range parts {
				if t, _ := str(p["type"]); t != "output_text" {
					return nil, fmt.Errorf("%w: an assistant content part of type %q", ErrUncountable, t)
				}
				if _, ok := str(p["text"]); !ok {
					return nil, fmt.Errorf("%w: an output_text without text", ErrUncountable)
				}
			}
			text, _ = str(parts[0]["text"]) // vLLM keeps the first part only
		}
		if prev != nil && prev.Content == nil {
			prev.Content = jsonString(text)
			return msgs, nil
		}
		return append(msgs, chatMsg{Role: "assistant", Content: jsonString(text)}), nil
	}
	if role != "user" && role != "system" && role != "developer" {
		return nil, fmt.Errorf("%w: a message of role %q", ErrUncountable, role)
	}
	if s, ok := str(content); ok {
		return append(msgs, chatMsg{Role: role, Content: jsonString(s)}), nil
	}
	var parts []map[string]json.RawMessage
	if json.Unmarshal(content, &parts) != nil {
		return nil, fmt.Errorf("%w: a message's content is neither text nor parts", ErrUncountable)
	}
	out := make([]textPart, 0, len(parts))
	for _, p := range parts {
		t, _ := str(p["type"])
		text, ok := str(p["text"])
		if t != "input_text" && t != "text" || !ok {
			return nil, fmt.Errorf("%w: a content part of type %q", ErrUncountable, t)
		}
		out = append(out, textPart{Type: "text", Text: text}) // vLLM reads input_text as text
	}
	b, _ := json.Marshal(out) // text parts always marshal
	return append(msgs, chatMsg{Role: role, Content: b}), nil
}

// reasoningText is a reasoning item's text as vLLM reads it: its first
// content text, else its first summary text, else "".
func reasoningText(item map[string]json.RawMessage) (string, error) {
	if !isNull(item["encrypted_content"]) {
		return "", fmt.Errorf("%w: encrypted reasoning (vLLM refuses it)", ErrUncountable)
	}
	for _, k := range []string{"content", "summary"} {
		if isNull(item[k]) {
			continue
		}
		var parts []map[string]json.RawMessage
		if json.Unmarshal(item[k], &parts) != nil {
			return "", fmt.Errorf("%w: reasoning %s is not a list", ErrUncountable, k)
		}
		if len(parts) > 0 {
			t, ok := str(parts[0]["text"])
			if !ok {
				return "", fmt.Errorf("%w: reasoning %s without text", ErrUncountable, k)
			}
			return t, nil
		}
	}
	return "", nil
}

// responsesKwargs are the template variables: the client's
// chat_template_kwargs, and with a reasoning effort, reasoning_effort and
// (unless the client set it) enable_thinking.
func responsesKwargs(top map[string]json.RawMessage) (json.RawMessage, error) {
	user := orNil(top["chat_template_kwargs"])
	var effort string
	if !isNull(top["reasoning"]) {
		r, ok := object(top["reasoning"])
		if !ok {
			return nil, fmt.Errorf("%w: reasoning is not an object", ErrUncountable)
		}
		if effort, ok = optStr(r["effort"]); !ok {
			return nil, fmt.Errorf("%w: reasoning.effort is not a string", ErrUncountable)
		}
	}
	if effort == "" {
		return user, nil
	}
	kw := map[string]json.RawMessage{}
	if user != nil {
		var ok bool
		if kw, ok = object(user); !ok {
			return nil, fmt.Errorf("%w: chat_template_kwargs is not an object", ErrUncountable)
		}
	}
	if _, set := kw["enable_thinking"]; !set {
		kw["enable_thinking"] = json.RawMessage(fmt.Sprint(effort != "none"))
	}
	kw["reasoning_effort"] = jsonString(effort)
	b, err := json.Marshal(kw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUncountable, err)
	}
	return b, nil
}

func emptyList(raw json.RawMessage) bool {
	var l []json.RawMessage
	return json.Unmarshal(raw, &l) == nil && len(l) == 0
}
