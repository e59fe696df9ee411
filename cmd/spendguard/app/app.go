// Package app is the spendguard program: command-line parsing, the serve,
// check-config and version commands. main only wires signals to Main, so
// tests start the real server in-process.
//
// Start (serve.go) opens the store, the engine, the exporters and both
// listeners in turn, pushing each one's closer on a cleanup stack
// (cleanup.go) as it opens; a failed step unwinds the stack, and
// Shutdown unwinds the same stack. CurrentConfig (reload.go) is the only
// way to the configuration in force; the sections a reload does not
// apply are read once, by Start.
package app

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
)

// DefaultConfig is the configuration `serve` uses without --config: the
// local demo's pricing and small budgets.
//
//go:embed default.yaml
var DefaultConfig []byte

// Version is set at build time with -ldflags "-X .../app.Version=v1.2.3".
var Version = "dev"

const usage = `spendguard puts spend budgets in front of vLLM as an Envoy external processor.

Usage:
  spendguard serve [--config FILE] [--grpc-addr ADDR] [--admin-addr ADDR]
                   [--log-level debug|info|warn|error] [--log-format json|console]
                   [--shutdown-timeout DURATION] [--reload-interval DURATION]
                   [--grpc-max-message-bytes N]
  spendguard check-config FILE
  spendguard status [--admin URL] [--token T] [--json] [DIM=VALUE ...]
  spendguard report [--dsn DSN] [--group-by DIM,...] [--period hour|day|week|month|total]
                    [--from WHEN] [--to WHEN] [--tz ZONE] [--csv] [--drift]
  spendguard version
`

// errUsage marks a command-line mistake (exit status 2).
var errUsage = errors.New("usage")

// Main runs spendguard with args (without the program name) and returns the
// process exit status: 0 success, 1 failure, 2 command-line mistake.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := run(ctx, args, stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
		return 2
	default:
		fmt.Fprintln(stderr, "spendguard:", err)
		return 1
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "serve":
		opts, err := parseServeFlags(args[1:], stderr)
		if err != nil {
			return err
		}
		return Serve(ctx, opts)
	case "check-config":
		return checkConfig(args[1:], stdout, stderr)
	case "status":
		return statusCommand(ctx, args[1:], stdout, stderr)
	case "report":
		return reportCommand(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "spendguard", versionString())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "unknown command %q\n\n%s", args[0], usage)
	return errUsage
}

func versionString() string {
	v := Version
	if info, ok := debug.ReadBuildInfo(); ok {
		v += " (" + info.GoVersion + ")"
	}
	return v
}
