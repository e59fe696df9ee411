// Command spendguard-demo runs spendguard locally end to end, with no Envoy
// and no GPU: a stand-in vLLM (test/fakevllm), spendguard itself with its
// embedded default configuration, and test/envoysim — a Go proxy that speaks
// ext_proc to spendguard exactly as Envoy does — listening on :8080.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spendguard/spendguard/cmd/spendguard/app"
	"github.com/spendguard/spendguard/envoy"
	"github.com/spendguard/spendguard/test/envoysim"
	"github.com/spendguard/spendguard/test/fakevllm"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address of the demo proxy (the Envoy stand-in)")
	vllmAddr := flag.String("vllm-addr", "127.0.0.1:8000", "address of the fake vLLM")
	grpcAddr := flag.String("grpc-addr", "127.0.0.1:50051", "spendguard ext_proc address")
	adminAddr := flag.String("admin-addr", "127.0.0.1:9090", "spendguard admin address")
	configPath := flag.String("config", "", "spendguard configuration (default: the embedded one)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *listen, *vllmAddr, *grpcAddr, *adminAddr, *configPath); err != nil {
		fmt.Fprintln(os.Stderr, "spendguard-demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, listen, vllmAddr, grpcAddr, adminAddr, configPath string) error {
	vllm := fakevllm.New(fakevllm.Config{})
	vllmURL, err := vllm.Start(vllmAddr)
	if err != nil {
		return fmt.Errorf("fake vLLM: %w", err)
	}
	defer vllm.Close()

	sg, err := app.Start(app.ServeOptions{
		ConfigPath: configPath, GRPCAddr: grpcAddr, AdminAddr: adminAddr,
		LogLevel: "info", LogFormat: "console", ShutdownTimeout: 5 * time.Second,
	})
	if err != nil {
		return fmt.Errorf("spendguard: %w", err)
	}
	defer sg.Shutdown()

	// The stand-in behaves as envoy/envoy.yaml configures Envoy: its
	// buffer limit, 413 in OpenAI's shape, message timeout.
	cfg := envoysim.DefaultConfig(sg.GRPCAddr(), vllmURL)
	if err := cfg.ApplyBootstrapYAML(envoy.BootstrapYAML); err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	proxy, err := envoysim.New(cfg)
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	srv, err := proxy.Start(listen)
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	fmt.Printf(`
spendguard demo is up.
  proxy (Envoy stand-in)  %s
  spendguard ext_proc     %s   admin http://%s/healthz
  fake vLLM               %s

The embedded configuration gives every tenant a daily hard cap of 0.0005 USD.
The first request fits; the second one of the same tenant gets 402:

  curl -si %s/v1/chat/completions -H 'x-tenant-id: acme' \
    -d '{"model":"meta-llama/Llama-3.1-70B-Instruct","max_tokens":400,"messages":[{"role":"user","content":"Hello"}]}'

A request without max_tokens is reserved for 1024 output tokens
(pricing.default_max_output_tokens), more than this cap: its 402 says so.
A streamed one ("stream": true) reserves its model's typical answer once
spendguard has seen 20, grows while it streams and is ended at the cap.

Free paths pass untouched:  curl -s %s/v1/models
Press Ctrl-C to stop.
`, srv.URL(), sg.GRPCAddr(), sg.AdminAddr(), vllmURL, srv.URL(), srv.URL())
	<-ctx.Done()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}
