package tokencount

import (
	"bytes"
	"encoding/json"
)

// Small readers of request JSON for the conversions. Keys are matched
// exactly (Python's are case-sensitive; encoding/json's struct fields are
// not), the last of a duplicate winning, as in Python.

// object decodes raw when it is a JSON object.
func object(raw json.RawMessage) (map[string]json.RawMessage, bool) {
	if !isObject(raw) {
		return nil, false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return nil, false
	}
	return m, true
}

func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	return len(raw) > 0 && raw[0] == '{'
}

// str decodes raw when it is a JSON string.
func str(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	return s, json.Unmarshal(raw, &s) == nil
}

// optStr decodes a string that may be absent or null (then "").
func optStr(raw json.RawMessage) (string, bool) {
	if isNull(raw) {
		return "", true
	}
	return str(raw)
}

// isNull reports whether raw is absent or null.
func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || bytes.Equal(raw, []byte("null"))
}

// orJSONNull is raw, or null when absent.
func orJSONNull(raw json.RawMessage) json.RawMessage {
	if len(bytes.TrimSpace(raw)) == 0 {
		return json.RawMessage("null")
	}
	return raw
}

func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s) // strings always marshal
	return b
}
