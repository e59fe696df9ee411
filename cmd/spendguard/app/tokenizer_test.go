package app

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/spendguard/spendguard/config"
	"github.com/spendguard/spendguard/pricing/tokencount"
	"github.com/spendguard/spendguard/processor"
)

// TestTokenizerFollowsTheConfiguration: the client starts with a url,
// survives a reload with the same settings, is replaced (the old one
// closed) when they change, stops when the url goes, and is closed by the
// stack.
func TestTokenizerFollowsTheConfiguration(t *testing.T) {
	parse := func(tokenizer string) *config.Compiled {
		cfg, err := config.Parse([]byte("version: 1\npricing:\n  default: {input: 1, output: 1}\n" + tokenizer))
		require.NoError(t, err)
		return cfg
	}
	in := &Instance{Log: zap.NewNop()}
	cfg := parse("  tokenizer: {url: 'http://127.0.0.1:1'}\n")
	in.current.Store(cfg)
	in.Processor = processor.New(cfg.Snapshot, processor.Options{})
	in.startTokenizer()
	first := in.tok.cur
	require.NotNil(t, first)
	assert.Equal(t, "http://127.0.0.1:1/tokenize", first.Settings().Endpoint)

	in.install(parse("  tokenizer: {url: 'http://127.0.0.1:1'}\n"))
	assert.Same(t, first, in.tok.cur, "same settings: the same client")

	in.install(parse("  tokenizer: {url: 'http://127.0.0.1:1', timeout: 1s}\n"))
	second := in.tok.cur
	require.NotNil(t, second)
	assert.NotSame(t, first, second)
	closed := func(c *tokencount.Client) bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := c.Text(ctx, "m", []byte("x")).Wait(ctx)
		return err == tokencount.ErrClosed
	}
	assert.Eventually(t, func() bool { return closed(first) }, 5*time.Second, 10*time.Millisecond, "the replaced client is closed")

	in.install(parse(""))
	assert.Nil(t, in.tok.cur, "no url: counting is off")
	assert.Eventually(t, func() bool { return closed(second) }, 5*time.Second, 10*time.Millisecond)

	in.install(parse("  tokenizer: {url: 'http://127.0.0.1:1'}\n"))
	third := in.tok.cur
	require.NotNil(t, third)
	require.NoError(t, in.stack.unwind())
	assert.True(t, closed(third), "Shutdown closes it")
	in.install(parse("  tokenizer: {url: 'http://127.0.0.1:2'}\n"))
	assert.Nil(t, in.tok.cur, "nothing starts after Shutdown")
}
