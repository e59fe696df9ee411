// Command spendguard is the Envoy external processor that enforces LLM spend
// budgets. All of the program lives in package app so tests can run it.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spendguard/spendguard/cmd/spendguard/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := app.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
