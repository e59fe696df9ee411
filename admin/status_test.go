package admin_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/admin"
)

func TestFetchAndTable(t *testing.T) {
	g := newRig(t, "s3cret")
	g.seed(t, map[string]string{"tenant": "globex", "user": "bob"}, "850.5")
	g.seed(t, map[string]string{"tenant": "acme", "user": "alice"}, "1.25")
	g.reserve(t, map[string]string{"tenant": "initech", "user": "carol"}, "0.0005")

	ctx := context.Background()
	_, err := admin.Fetch(ctx, http.DefaultClient, g.srv.URL, "", nil)
	require.ErrorContains(t, err, "this endpoint needs Authorization: Bearer <admin.token> (401 Unauthorized)")
	_, err = admin.Fetch(ctx, http.DefaultClient, g.srv.URL, "s3cret", map[string]string{"team": "x"})
	require.ErrorContains(t, err, `filter "team": not a dimension`)

	resp, err := admin.Fetch(ctx, http.DefaultClient, g.srv.URL+"/", "s3cret", nil)
	require.NoError(t, err)
	var out bytes.Buffer
	require.NoError(t, admin.WriteTable(&out, resp, g.clock()))
	assert.Equal(t, `BUDGET               SCOPE           PERIOD       SPENT   RESERVED  SOFT    HARD     USED      STATE  RESETS IN  BURN/H   EXHAUSTS IN
runaway-agent-guard  user=bob        rolling 10m  850.50  0.00      -       5.00     17010.0%  hard   11m        5103.00  exhausted
lifetime             all             total        851.75  0.000500  10.00   -        8517.5%   soft   never      -        -
tenant-monthly       tenant=globex   month        850.50  0.00      800.00  1000.00  85.0%     soft   15d12h     -        -
fleet-daily          all             day          851.75  0.000500  -       2000.00  42.6%     ok     13h40m     -        -
runaway-agent-guard  user=alice      rolling 10m  1.25    0.00      -       5.00     25.0%     ok     11m        7.50     -
acme-monthly         tenant=acme     month        1.25    0.00      -       5000.00  0.0%      ok     15d13h     -        -
runaway-agent-guard  user=carol      rolling 10m  0.00    0.000500  -       5.00     0.0%      ok     11m        0.00     -
tenant-monthly       tenant=initech  month        0.00    0.000500  800.00  1000.00  0.0%      ok     15d12h     -        -
`, out.String())

	out.Reset()
	resp, err = admin.Fetch(ctx, http.DefaultClient, g.srv.URL, "s3cret", map[string]string{"tenant": "nobody", "user": "x"})
	require.NoError(t, err)
	require.NoError(t, admin.WriteTable(&out, resp, g.clock()))
	assert.Contains(t, out.String(), "no budget scope matches")
}

func TestParseFilter(t *testing.T) {
	f, err := admin.ParseFilter([]string{"tenant=acme", "team=a=b", "tenant=acme"})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"tenant": "acme", "team": "a=b"}, f)
	_, err = admin.ParseFilter([]string{"tenant", "=x", "team=", "user=a", "user=b"})
	require.Error(t, err)
	for _, want := range []string{`"tenant" is not DIM=VALUE`, `"=x" is not DIM=VALUE`, `"team=" is not DIM=VALUE`, "user is given twice"} {
		assert.Contains(t, err.Error(), want)
	}
}
