package budget

import (
	"strconv"
	"time"
)

// Period is how a budget's spend is grouped over time.
type Period int

// The periods. The calendar ones (hour to month) start at the local
// boundary in the budget's time zone; PeriodRolling is a sliding window.
const (
	PeriodHour Period = iota + 1
	PeriodDay
	PeriodWeek // starts on Monday
	PeriodMonth
	PeriodTotal   // never resets
	PeriodRolling // the last Budget.Rolling(), in sub-buckets
)

var periodNames = map[string]Period{
	"hour": PeriodHour, "day": PeriodDay, "week": PeriodWeek,
	"month": PeriodMonth, "total": PeriodTotal,
}

// String is the name used in the configuration ("rolling" for rolling windows).
func (p Period) String() string {
	for name, q := range periodNames {
		if q == p {
			return name
		}
	}
	if p == PeriodRolling {
		return "rolling"
	}
	return "Period(" + strconv.Itoa(int(p)) + ")"
}

// rollingBuckets is how many sub-buckets a rolling window is cut into. The
// window counts the current bucket plus enough whole earlier buckets to
// cover the window, so it never forgets spend younger than the window but
// may remember spend up to one bucket older (it errs on the safe side).
const rollingBuckets = 10

// Window returns the period that contains now: its start and the instant
// it ends (resetsAt), both in the budget's time zone. For PeriodTotal both
// are zero. For a rolling window, start is the start of the oldest
// sub-bucket counted and resetsAt the instant by which all spend counted
// now has left the window (the current bucket stops counting), about one
// window length after now.
//
// Calendar periods use wall-clock arithmetic in the time zone, so a day is
// 23 or 25 hours long across a DST change, and a day, week or month whose
// midnight is skipped by a DST jump starts at the first instant that exists.
func (b *Budget) Window(now time.Time) (start, resetsAt time.Time) {
	t := now.In(b.loc)
	y, m, d := t.Date()
	switch b.period {
	case PeriodHour:
		start = t.Add(-time.Duration(t.Minute())*time.Minute -
			time.Duration(t.Second())*time.Second - time.Duration(t.Nanosecond()))
		return start, start.Add(time.Hour)
	case PeriodDay:
		return midnight(y, m, d, b.loc), midnight(y, m, d+1, b.loc)
	case PeriodWeek:
		back := (int(t.Weekday()) + 6) % 7 // days since Monday
		return midnight(y, m, d-back, b.loc), midnight(y, m, d-back+7, b.loc)
	case PeriodMonth:
		return midnight(y, m, 1, b.loc), midnight(y, m+1, 1, b.loc)
	case PeriodRolling:
		cur, back := b.bucketStart(now), b.rolling.bucketsBack()
		return cur.Add(-back * b.rolling.bucket), cur.Add((back + 1) * b.rolling.bucket)
	default:
		return time.Time{}, time.Time{}
	}
}

// midnight returns the first instant of the (normalised) date y-m-d in loc.
// time.Date resolves a midnight that a DST jump skips to a time on the
// previous day (America/Sao_Paulo 2018-11-04 gives 2018-11-03 23:00); the
// day then really starts where that zone ends.
func midnight(y int, m time.Month, d int, loc *time.Location) time.Time {
	y, m, d = time.Date(y, m, d, 12, 0, 0, 0, time.UTC).Date()
	t := time.Date(y, m, d, 0, 0, 0, 0, loc)
	for i := 0; i < 3; i++ {
		ty, tm, td := t.Date()
		if ty == y && tm == m && td == d {
			break
		}
		_, end := t.ZoneBounds()
		if end.IsZero() || !end.After(t) {
			break
		}
		t = end
	}
	return t
}

// PeriodWord is how messages name the current period: "this hour",
// "today", "this week", "this month", "in total" or "in the last 10m".
func (b *Budget) PeriodWord() string {
	switch b.period {
	case PeriodHour:
		return "this hour"
	case PeriodDay:
		return "today"
	case PeriodWeek:
		return "this week"
	case PeriodMonth:
		return "this month"
	case PeriodTotal:
		return "in total"
	default:
		return "in the last " + shortDuration(b.rolling.span)
	}
}

// shortDuration prints 10m rather than 10m0s and 2h rather than 2h0m0s.
func shortDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	default:
		return d.String()
	}
}

// rolling describes a rolling window cut into sub-buckets of whole seconds.
type rolling struct {
	span   time.Duration
	bucket time.Duration
}

func newRolling(span time.Duration) rolling {
	bucket := (span / rollingBuckets).Truncate(time.Second)
	if bucket < time.Second {
		bucket = time.Second
	}
	return rolling{span: span, bucket: bucket}
}

// bucketsBack is how many buckets before the current one the window counts.
func (r rolling) bucketsBack() time.Duration {
	return (r.span + r.bucket - 1) / r.bucket
}

// bucketStart is the start of the sub-bucket containing now; buckets are
// aligned to the Unix epoch so every replica cuts them the same way.
func (b *Budget) bucketStart(now time.Time) time.Time {
	sec := int64(b.rolling.bucket / time.Second)
	u := now.Unix()
	u -= ((u % sec) + sec) % sec
	return time.Unix(u, 0).In(b.loc)
}
