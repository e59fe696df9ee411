package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"-addr", "127.0.0.1:9", "-prompt-tokens", "7", "-completion-tokens", "5",
		"-cached-tokens", "2", "-latency", "10ms", "-served-model-name", "m",
		"-enable-force-include-usage", "-background-delay", "2s"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:9", o.addr)
	assert.Equal(t, 7, o.cfg.PromptTokens)
	assert.Equal(t, 5, o.cfg.CompletionTokens)
	assert.Equal(t, 2, o.cfg.CachedTokens)
	assert.Equal(t, 10*time.Millisecond, o.cfg.Latency)
	assert.Equal(t, "m", o.cfg.ServedModelName)
	assert.True(t, o.cfg.ForceIncludeUsage)
	assert.Equal(t, 2*time.Second, o.cfg.BackgroundDelay)

	o, err = parseFlags(nil, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, ":8000", o.addr)

	for _, args := range [][]string{{"-nope"}, {"extra"}, {"-prompt-tokens", "x"}} {
		_, err := parseFlags(args, io.Discard)
		assert.Error(t, err, "%q", args)
	}
}

func TestServeAnswersAndStops(t *testing.T) {
	o, err := parseFlags([]string{"-prompt-tokens", "11", "-completion-tokens", "3"}, io.Discard)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, o.cfg) }()
	base := "http://" + ln.Addr().String()

	resp, err := http.Get(base + "/health")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	resp, err = http.Post(base+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
	require.NoError(t, err)
	var body struct {
		Usage struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	resp.Body.Close()
	assert.Equal(t, 11, body.Usage.PromptTokens)
	assert.Equal(t, 3, body.Usage.CompletionTokens)

	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after its context ended")
	}
}
