package app_test

import (
	"context"
	"flag"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var screenshotCopy = flag.String("dashboard.screenshot", "", "also write the dashboard test's screenshot to this file")

// renderedRow is what a person reads in one row of the dashboard.
type renderedRow struct {
	Budget  string `json:"budget"`
	Scope   string `json:"scope"`
	State   string `json:"state"`
	Spent   string `json:"spent"`
	Caps    string `json:"caps"`
	Reset   string `json:"reset"`
	Burn    string `json:"burn"`
	Exhaust string `json:"exhaust"`
}

const readRows = `Array.from(document.querySelectorAll("#budgets tbody tr")).map((tr) => ({
  budget: tr.dataset.budget, scope: tr.dataset.scope,
  state: tr.querySelector(".state").textContent,
  spent: tr.querySelector(".spent").textContent,
  caps: tr.querySelector(".caps").textContent,
  reset: tr.querySelector(".reset").textContent,
  burn: tr.querySelector(".burn").textContent,
  exhaust: tr.querySelector(".exhaust").textContent,
}))`

// browser starts Debian's headless Chromium for one test. It fails the
// test (never skips) when chromium is not installed.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	require.NoError(t, err, "chromium is missing: apt-get install -y chromium (.ci/run installs it)")
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1366, 900), // a laptop
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}

// TestDashboardInHeadlessChromium loads the dashboard of a running
// spendguard with seeded spend, gives it the admin token, and reads the
// rendered values back from the page: rows, order, filters, sorting and
// a refresh that picks up new spend. The screenshot is in the test's
// temporary directory (and at -dashboard.screenshot=FILE).
func TestDashboardInHeadlessChromium(t *testing.T) {
	s := newSpendStack(t, memoryStore)
	s.seed()
	ctx := browser(t)
	page := "http://" + s.sg.AdminAddr() + "/"

	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(page),
		chromedp.WaitVisible("#login-form"),
	))
	assert.True(t, eval[bool](t, ctx, `!document.getElementById("login").hidden`), "the page asks for the token after a 401")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys("#token", "s3cret"),
		chromedp.Click(`#login-form button[type="submit"]`),
		chromedp.WaitVisible(`tr[data-budget="fleet-monthly"]`),
	))

	rows := eval[[]renderedRow](t, ctx, readRows)
	require.Len(t, rows, 7)
	assert.Equal(t, renderedRow{
		Budget: "tenant-daily", Scope: "tenant=initech", State: "hard", Spent: "$0.1200 spent",
		Caps: " · soft $0.0500 · hard $0.1000", Reset: rows[0].Reset, Burn: rows[0].Burn, Exhaust: "exhausted",
	}, rows[0], "the scope closest to its cap comes first")
	// A day that began within the hour has an exact rate from its own
	// spend; later in the day the replica has not sampled long enough.
	switch sinceMidnight := time.Since(time.Now().UTC().Truncate(24 * time.Hour)); {
	case sinceMidnight < time.Hour-10*time.Second:
		assert.Regexp(t, `^\$[\d.,]+/hover \d+`, rows[0].Burn, "the day's rate from its own spend")
	case sinceMidnight > time.Hour+10*time.Second:
		assert.Equal(t, "collecting…", rows[0].Burn, "no samples yet for a day older than the burn window")
	}
	assert.Regexp(t, `^in \d+[hms]( \d+[ms])?$`, rows[0].Reset)
	assert.Equal(t, []string{"tenant=initech", "tenant=acme", "team=none,tenant=initech", "tenant=globex"},
		[]string{rows[0].Scope, rows[1].Scope, rows[2].Scope, rows[3].Scope})
	assert.Equal(t, "soft", rows[1].State)
	assert.Equal(t, "$0.0800 spent", rows[1].Spent)
	assert.Regexp(t, `^\$[\d.,]+/hover \d+`, rows[2].Burn, "a rolling window has a burn rate at once")
	last := rows[6]
	assert.Equal(t, []string{"fleet-monthly", "all", "ok", "$0.2100 spent", " · hard $100.00"},
		[]string{last.Budget, last.Scope, last.State, last.Spent, last.Caps})

	summary, err := chromedp.Run(ctx, chromedp.Text("#summary"))
	require.NoError(t, err)
	assert.Equal(t, "7 scopes · 1 at the hard cap · 1 past the soft cap", summary)
	assert.Equal(t, "s3cret", eval[string](t, ctx, `sessionStorage.getItem("spendguard.admin-token")`), "kept in sessionStorage for this tab")

	shot := screenshot(t, ctx)

	// Filter by dimension: team=search keeps acme's team scope only, and
	// the URL says so.
	chooseTeam := func(v string) {
		t.Helper()
		require.NoError(t, chromedp.Do(ctx, chromedp.SetValue(`select[data-dim="team"]`, v)))
		eval[bool](t, ctx, `document.querySelector('select[data-dim="team"]').dispatchEvent(new Event("change"))`)
	}
	chooseTeam("search")
	rows = eval[[]renderedRow](t, ctx, readRows)
	require.Len(t, rows, 1)
	assert.Equal(t, "team=search,tenant=acme", rows[0].Scope)
	url, err := chromedp.Run(ctx, chromedp.Location())
	require.NoError(t, err)
	assert.True(t, strings.HasSuffix(url, "/?team=search"), url)

	// Sort by budget name (ascending on the first click), all teams again.
	chooseTeam("")
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(`th[data-sort="budget"]`)))
	var order []string
	for _, r := range eval[[]renderedRow](t, ctx, readRows) {
		order = append(order, r.Budget)
	}
	assert.Equal(t, []string{"fleet-monthly", "team-rolling", "team-rolling", "team-rolling", "tenant-daily", "tenant-daily", "tenant-daily"}, order)

	// The page refreshes by itself: a new tenant's spend shows up.
	eval[string](t, ctx, `(() => {
	  const r = document.getElementById("refresh");
	  r.append(new Option("every second", "1"));
	  r.value = "1";
	  r.dispatchEvent(new Event("change"));
	  return r.value;
	})()`)
	require.Equal(t, http.StatusOK, s.spend("umbrella", "", 3, 2))
	require.NoError(t, chromedp.Do(ctx, chromedp.WaitVisible(`tr[data-budget="tenant-daily"][data-scope="tenant=umbrella"]`)))
	umbrella := eval[string](t, ctx, `document.querySelector('tr[data-budget="tenant-daily"][data-scope="tenant=umbrella"] .spent').textContent`)
	assert.Equal(t, "$0.005000 spent", umbrella)

	// The token stays for the tab: a reload needs no login.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Reload(),
		chromedp.WaitVisible(`tr[data-budget="fleet-monthly"]`),
	))
	assert.True(t, eval[bool](t, ctx, `document.getElementById("login").hidden`))
	t.Logf("screenshot: %s", shot)
}

// eval runs a JavaScript expression in the page and decodes its value.
func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	require.NoError(t, err, js)
	return v
}

// screenshot writes a PNG of the whole page to the test's temporary
// directory (and to -dashboard.screenshot) and returns its path.
func screenshot(t *testing.T, ctx context.Context) string {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.True(t, len(png) > 8 && string(png[1:4]) == "PNG", "a PNG image")
	path := filepath.Join(t.TempDir(), "dashboard.png")
	require.NoError(t, os.WriteFile(path, png, 0o644))
	if *screenshotCopy != "" {
		require.NoError(t, os.WriteFile(*screenshotCopy, png, 0o644))
	}
	return path
}
