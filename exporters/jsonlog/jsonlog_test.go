package jsonlog_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/exporters/jsonlog"
	"github.com/spendguard/spendguard/exporters/sink/sinktest"
)

func TestOneLinePerRequest(t *testing.T) {
	var buf bytes.Buffer
	e := jsonlog.NewWriter(&buf)
	require.NoError(t, e.Export(context.Background(), sinktest.Events(3)))

	var lines []map[string]any
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), sc.Text())
		lines = append(lines, m)
	}
	require.Len(t, lines, 3)
	assert.Equal(t, map[string]any{
		"time": "2026-11-25T10:00:01.5Z", "start_time": "2026-11-25T10:00:00Z",
		"request_id": "req-0000", "endpoint": "/v1/chat/completions", "decision": "allowed", "budget": "tenant-monthly",
		"scope":           map[string]any{"tenant": "acme", "team": "search", "user": "u-0", "use_case": "rag"},
		"requested_model": "meta-llama/Llama-3.1-70B-Instruct", "served_model": "meta-llama/Llama-3.1-70B-Instruct",
		"response_model": "meta-llama/Llama-3.1-70B-Instruct",
		"prompt_tokens":  1000.0, "cached_prompt_tokens": 200.0, "completion_tokens": 100.0, "reasoning_tokens": 10.0,
		"cost_usd": 0.00062, "cost_nano_usd": 620000.0, "input_cost_nano_usd": 540000.0, "output_cost_nano_usd": 80000.0,
		"estimated": false, "usage_source": "reported", "stream": false, "aborted": false, "upstream_status": 200.0,
		"duration_seconds": 1.5, "upstream_time_to_first_byte_seconds": 0.25, "processor_time_seconds": 0.00012,
	}, lines[0])
	assert.Equal(t, "req-0002", lines[2]["request_id"])
}

func TestAppendsToAFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spend.jsonl")
	for range 2 {
		e, err := jsonlog.New(jsonlog.Config{Path: path})
		require.NoError(t, err)
		require.NoError(t, e.Export(context.Background(), sinktest.Events(2)))
		require.NoError(t, e.Close(context.Background()))
	}
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, 4, bytes.Count(data, []byte("\n")))

	_, err = jsonlog.New(jsonlog.Config{Path: filepath.Join(t.TempDir(), "missing", "x.jsonl")})
	assert.Error(t, err)
	assert.NotEmpty(t, jsonlog.Config{}.Validate())
}
