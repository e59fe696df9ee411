package app

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spendguard/spendguard/admin"
)

const statusUsage = `usage: spendguard status [--admin URL] [--token T] [--json] [--timeout D] [DIM=VALUE ...]

Prints the state of every budget scope from a running spendguard's admin
API, the scopes closest to their cap first. DIM=VALUE arguments keep the
scopes whose budget matches on DIM with that value (tenant=acme).
--token defaults to $SPENDGUARD_ADMIN_READ_TOKEN (status only reads, so
admin.read_token is enough), else $SPENDGUARD_ADMIN_TOKEN.
`

// statusCommand is `spendguard status`: GET /v1/budgets, printed as a
// table sorted by how close each scope is to its cap, or as JSON.
func statusCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, statusUsage) }
	base := fs.String("admin", "http://127.0.0.1:9090", "the admin HTTP address of spendguard")
	token := fs.String("token", statusToken(), "admin.read_token or admin.token (default $SPENDGUARD_ADMIN_READ_TOKEN, else $SPENDGUARD_ADMIN_TOKEN)")
	asJSON := fs.Bool("json", false, "print the API's JSON (sorted as the table)")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the answer")
	// Flags and DIM=VALUE arguments may come in any order.
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return errUsage
		}
		if fs.NArg() == 0 {
			break
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
	filter, err := admin.ParseFilter(rest)
	if err != nil {
		fmt.Fprintf(stderr, "%v\n\n%s", err, statusUsage)
		return errUsage
	}
	url := *base
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	resp, err := admin.Fetch(ctx, http.DefaultClient, url, *token, filter)
	if err != nil {
		return err
	}
	if *asJSON {
		admin.SortByCloseness(resp.Budgets)
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(resp)
	}
	return admin.WriteTable(stdout, resp, time.Now())
}

// statusToken is the default of status's --token: the read-only token
// when the environment has one (the least the command needs), else the
// admin token.
func statusToken() string {
	if t := os.Getenv("SPENDGUARD_ADMIN_READ_TOKEN"); t != "" {
		return t
	}
	return os.Getenv("SPENDGUARD_ADMIN_TOKEN")
}
