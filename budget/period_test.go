package budget

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// compileOne compiles a single budget with a $1 hard cap unless c sets caps.
func compileOne(t testing.TB, c Config) *Budget {
	t.Helper()
	if c.Name == "" {
		c.Name = "b"
	}
	if !c.HardUSD.Set && !c.SoftUSD.Set {
		c.HardUSD = USDOf(1_000_000_000)
	}
	p, err := Compile([]Config{c}, Limits{})
	require.NoError(t, err)
	return p.Budgets()[0]
}

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	require.NoError(t, err)
	return v
}

func TestWindow(t *testing.T) {
	tests := []struct {
		name, period, tz, now string
		start, end            string
		length                time.Duration // checked when non-zero
	}{
		{"berlin spring day is 23h", "day", "Europe/Berlin", "2026-03-29T12:00:00+02:00",
			"2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00", 23 * time.Hour},
		{"berlin autumn day is 25h", "day", "Europe/Berlin", "2026-10-25T23:59:59+01:00",
			"2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00", 25 * time.Hour},
		{"new york spring day is 23h", "day", "America/New_York", "2026-03-08T01:59:59-05:00",
			"2026-03-08T00:00:00-05:00", "2026-03-09T00:00:00-04:00", 23 * time.Hour},
		{"new york autumn day is 25h", "day", "America/New_York", "2026-11-01T01:30:00-05:00",
			"2026-11-01T00:00:00-04:00", "2026-11-02T00:00:00-05:00", 25 * time.Hour},
		{"day starts at local midnight", "day", "Europe/Berlin", "2026-06-30T23:30:00Z",
			"2026-07-01T00:00:00+02:00", "2026-07-02T00:00:00+02:00", 24 * time.Hour},
		{"day at exact midnight", "day", "UTC", "2026-07-01T00:00:00Z",
			"2026-07-01T00:00:00Z", "2026-07-02T00:00:00Z", 24 * time.Hour},
		{"skipped midnight starts at 01:00", "day", "America/Sao_Paulo", "2018-11-04T10:00:00-02:00",
			"2018-11-04T01:00:00-02:00", "2018-11-05T00:00:00-02:00", 23 * time.Hour},
		{"day before a skipped midnight", "day", "America/Sao_Paulo", "2018-11-03T23:30:00-03:00",
			"2018-11-03T00:00:00-03:00", "2018-11-04T01:00:00-02:00", 24 * time.Hour},
		{"first of two 01:xx hours", "hour", "America/New_York", "2026-11-01T01:30:00-04:00",
			"2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00", time.Hour},
		{"second of two 01:xx hours", "hour", "America/New_York", "2026-11-01T01:30:00-05:00",
			"2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00", time.Hour},
		{"hour after the spring jump", "hour", "America/New_York", "2026-03-08T03:10:00-04:00",
			"2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00", time.Hour},
		{"hour in a half-hour zone", "hour", "Asia/Kolkata", "2026-05-05T10:59:59.5+05:30",
			"2026-05-05T10:00:00+05:30", "2026-05-05T11:00:00+05:30", time.Hour},
		{"week starts monday", "week", "UTC", "2026-03-01T23:00:00Z",
			"2026-02-23T00:00:00Z", "2026-03-02T00:00:00Z", 7 * 24 * time.Hour},
		{"week on its monday", "week", "UTC", "2026-03-02T00:00:00Z",
			"2026-03-02T00:00:00Z", "2026-03-09T00:00:00Z", 7 * 24 * time.Hour},
		{"week across spring dst", "week", "Europe/Berlin", "2026-03-29T03:00:00+02:00",
			"2026-03-23T00:00:00+01:00", "2026-03-30T00:00:00+02:00", 7*24*time.Hour - time.Hour},
		{"week across new year", "week", "UTC", "2027-01-03T12:00:00Z",
			"2026-12-28T00:00:00Z", "2027-01-04T00:00:00Z", 7 * 24 * time.Hour},
		{"december to january", "month", "Europe/Berlin", "2026-12-31T23:59:59+01:00",
			"2026-12-01T00:00:00+01:00", "2027-01-01T00:00:00+01:00", 0},
		{"month in the local zone", "month", "Europe/Berlin", "2026-11-30T23:30:00Z",
			"2026-12-01T00:00:00+01:00", "2027-01-01T00:00:00+01:00", 0},
		{"leap february", "month", "UTC", "2028-02-29T12:00:00Z",
			"2028-02-01T00:00:00Z", "2028-03-01T00:00:00Z", 29 * 24 * time.Hour},
		{"common february", "month", "UTC", "2027-02-28T23:59:59Z",
			"2027-02-01T00:00:00Z", "2027-03-01T00:00:00Z", 28 * 24 * time.Hour},
		{"month across autumn dst", "month", "America/New_York", "2026-11-15T00:00:00-05:00",
			"2026-11-01T00:00:00-04:00", "2026-12-01T00:00:00-05:00", 30*24*time.Hour + time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := compileOne(t, Config{Period: tt.period, Timezone: tt.tz})
			start, end := b.Window(mustTime(t, tt.now))
			assert.Equal(t, tt.start, start.Format(time.RFC3339))
			assert.Equal(t, tt.end, end.Format(time.RFC3339))
			if tt.length != 0 {
				assert.Equal(t, tt.length, end.Sub(start))
			}
		})
	}
}

func TestWindowTotalAndRolling(t *testing.T) {
	total := compileOne(t, Config{Period: "total"})
	start, end := total.Window(time.Unix(1_800_000_000, 0))
	assert.True(t, start.IsZero())
	assert.True(t, end.IsZero())

	r := compileOne(t, Config{Rolling: DurationOf(10 * time.Minute)})
	start, end = r.Window(time.Unix(1_000_000_030, 0))
	assert.Equal(t, time.Unix(1_000_000_020-600, 0).UTC(), start, "ten whole buckets before the current one")
	assert.Equal(t, time.Unix(1_000_000_020+660, 0).UTC(), end, "the current bucket stops counting")
}

// TestWindowInvariants walks a year in zones with DST at midnight, half-
// and quarter-hour offsets, and checks that every calendar window contains
// now, is stable, and is followed directly by the next one.
func TestWindowInvariants(t *testing.T) {
	zones := []string{"UTC", "Europe/Berlin", "America/New_York", "America/Sao_Paulo",
		"America/Havana", "America/Santiago", "Asia/Beirut", "Asia/Kolkata",
		"Asia/Kathmandu", "America/St_Johns", "Pacific/Chatham", "Australia/Adelaide"}
	for _, zone := range zones {
		t.Run(zone, func(t *testing.T) {
			t.Parallel()
			for _, period := range []string{"hour", "day", "week", "month"} {
				b := compileOne(t, Config{Period: period, Timezone: zone})
				from := time.Date(2018, 1, 1, 0, 0, 0, 0, time.UTC)
				for now := from; now.Before(from.AddDate(1, 0, 0)); now = now.Add(97 * time.Minute) {
					start, end := b.Window(now)
					require.Truef(t, !start.After(now) && now.Before(end), "%s %v: [%v, %v)", period, now, start, end)
					next, _ := b.Window(end)
					require.Truef(t, next.Equal(end), "%s %v: next window starts %v, not %v", period, now, next, end)
					again, _ := b.Window(start)
					require.Truef(t, again.Equal(start), "%s %v: unstable start %v", period, now, start)
				}
			}
		})
	}
}

func TestPeriodWord(t *testing.T) {
	tests := []struct {
		c    Config
		want string
	}{
		{Config{Period: "hour"}, "this hour"},
		{Config{Period: "day"}, "today"},
		{Config{Period: "week"}, "this week"},
		{Config{Period: "month"}, "this month"},
		{Config{Period: "total"}, "in total"},
		{Config{Rolling: DurationOf(10 * time.Minute)}, "in the last 10m"},
		{Config{Rolling: DurationOf(2 * time.Hour)}, "in the last 2h"},
		{Config{Rolling: DurationOf(90 * time.Second)}, "in the last 1m30s"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			assert.Equal(t, tt.want, compileOne(t, tt.c).PeriodWord())
		})
	}
}
