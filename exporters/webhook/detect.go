package webhook

import (
	"sync"
	"time"

	"github.com/spendguard/spendguard/exporters/sink"
	"github.com/spendguard/spendguard/internal/money"
)

// Alert is one budget event to send.
type Alert struct {
	Event string // SoftCapCrossed or HardCapReached
	State sink.BudgetState
	At    time.Time // when it was detected
}

// maxTracked bounds the scopes remembered for deduplication. Past it,
// scopes whose period has ended are forgotten first, then arbitrary ones
// (which may then alert once more). A variable for tests.
var maxTracked = 100_000

// rearmPercent: a rolling window's alert re-arms once its spend has
// fallen below this share of the cap, so that spend hovering at the cap
// does not alert on every request.
const rearmPercent = 90

// mark is what was sent for one scope in its current period.
type mark struct {
	period     time.Time // PeriodStart the marks belong to (calendar periods)
	resetsAt   time.Time
	soft, hard bool
}

// detector finds cap crossings in budget states, at most once per event,
// budget scope and period.
type detector struct {
	soft, hard bool // events enabled
	now        func() time.Time

	mu    sync.Mutex
	marks map[string]*mark
}

// Detect returns the alerts that states call for, remembering them so
// that the same scope does not alert again in the same period. It is
// cheap (a map lookup per state under a mutex) and safe for concurrent
// use. Rules:
//
//   - soft_cap_crossed when committed+reserved has reached soft_usd;
//     hard_cap_reached when it has reached hard_usd or the scope has just
//     refused a request (State.Blocked). A state that crossed both sends
//     both, soft first.
//   - Calendar and total periods alert once per period: a state with a
//     later PeriodStart starts afresh; a state of an earlier period,
//     arriving late, is ignored. A total budget alerts once per process.
//   - Rolling windows have no period: an alert re-arms when the scope's
//     spend is seen below 90% of that cap again.
//
// Deduplication lives in this process: each replica alerts once, and a
// restart may alert again for the current period.
func (d *detector) Detect(states []sink.BudgetState) []Alert {
	var out []Alert
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range states {
		soft, hard := d.soft && s.SoftCrossed(), d.hard && s.HardReached()
		key := s.Budget + "\x00" + s.Key
		m := d.marks[key]
		if m == nil && !soft && !hard {
			continue
		}
		if m != nil {
			switch {
			case s.Rolling:
				if s.Used() < pct(s.Soft, rearmPercent) {
					m.soft = false
				}
				if s.Used() < pct(s.Hard, rearmPercent) && !s.Blocked {
					m.hard = false
				}
			case s.PeriodStart.Before(m.period):
				continue // a late state from an earlier period
			case s.PeriodStart.After(m.period):
				*m = mark{}
			}
		} else {
			m = d.track(key, now)
		}
		m.period, m.resetsAt = s.PeriodStart, s.ResetsAt
		if soft && !m.soft {
			m.soft = true
			out = append(out, Alert{Event: SoftCapCrossed, State: s, At: now})
		}
		if hard && !m.hard {
			m.hard = true
			out = append(out, Alert{Event: HardCapReached, State: s, At: now})
		}
	}
	return out
}

// track adds a mark for key, making room first if needed.
func (d *detector) track(key string, now time.Time) *mark {
	if len(d.marks) >= maxTracked {
		for k, m := range d.marks {
			if !m.resetsAt.IsZero() && !m.resetsAt.After(now) {
				delete(d.marks, k)
			}
		}
		for k := range d.marks {
			if len(d.marks) < maxTracked*9/10 {
				break
			}
			delete(d.marks, k)
		}
	}
	m := &mark{}
	d.marks[key] = m
	return m
}

func pct(n money.Nano, p int64) money.Nano { return money.Nano(int64(n) / 100 * p) }
