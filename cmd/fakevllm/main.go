// Command fakevllm serves test/fakevllm, a stand-in for vLLM's
// OpenAI-compatible server (exact response shapes and usage, made-up text),
// for the docker-compose quick start and anywhere spendguard needs an
// upstream without a GPU or a model. Token counts come from the flags, or
// per request from the x-fake-* headers documented in test/fakevllm.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spendguard/spendguard/test/fakevllm"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", opts.addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakevllm:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "fakevllm listening on %s\n", ln.Addr())
	if err := serve(ctx, ln, opts.cfg); err != nil {
		fmt.Fprintln(os.Stderr, "fakevllm:", err)
		os.Exit(1)
	}
}

type options struct {
	addr string
	cfg  fakevllm.Config
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("fakevllm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", ":8000", "listen address")
	fs.IntVar(&o.cfg.PromptTokens, "prompt-tokens", 0, "prompt tokens to report (0: prompt bytes / 4)")
	fs.IntVar(&o.cfg.CompletionTokens, "completion-tokens", 0, "completion tokens per choice (0: the request's max_tokens, else 16)")
	fs.IntVar(&o.cfg.CachedTokens, "cached-tokens", 0, "cached prompt tokens to report")
	fs.DurationVar(&o.cfg.Latency, "latency", 0, "wait before the first byte of every answer")
	fs.StringVar(&o.cfg.ServedModelName, "served-model-name", "", "model name every answer reports (default: the requested one)")
	fs.BoolVar(&o.cfg.ForceIncludeUsage, "enable-force-include-usage", false, "usage on every stream and every chunk, as vLLM's flag")
	fs.DurationVar(&o.cfg.BackgroundDelay, "background-delay", 0, "how long a background response stays queued")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		err := fmt.Errorf("unexpected arguments: %q", fs.Args())
		fmt.Fprintln(stderr, err)
		return o, err
	}
	return o, nil
}

// serve answers on ln until ctx ends, then lets requests in flight finish
// for up to 5 seconds.
func serve(ctx context.Context, ln net.Listener, cfg fakevllm.Config) error {
	fake := fakevllm.New(cfg)
	// The fake records every request for tests; a long-running server must
	// not keep them.
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fake.ServeHTTP(w, r)
		fake.Reset()
	})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if serveErr := <-errc; !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return err
}
