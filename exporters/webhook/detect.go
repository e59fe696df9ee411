package webhook

import (
	"slices"
	"sync"
	"time"

	"github.com/spendguard/spendguard/exporters/sink"
	"github.com/spendguard/spendguard/internal/money"
)

// Alert is one budget event to send.
type Alert struct {
	Event string // SoftCapCrossed, HardCapReached or ThresholdCrossed
	State sink.BudgetState
	// Threshold is the fraction of the hard cap a ThresholdCrossed alert
	// is for (one of State.Thresholds); 0 for the other events.
	Threshold float64
	At        time.Time // when it was detected
}

// maxTracked bounds the scopes remembered for deduplication. Past it,
// scopes whose period has ended are forgotten first, then arbitrary ones
// (which may then alert once more). A variable for tests.
var maxTracked = 100_000

// rearmPercent: a rolling window's alert re-arms once its spend has
// fallen below this share of the cap (or threshold), so that spend
// hovering at it does not alert on every request.
const rearmPercent = 90

// mark is what was sent for one scope in its current period.
type mark struct {
	period     time.Time // PeriodStart the marks belong to (calendar periods)
	resetsAt   time.Time
	soft, hard bool
	crossed    []float64 // the thresholds alerted
}

// detector finds cap and threshold crossings in budget states, at most
// once per event (and threshold), budget scope and period.
type detector struct {
	soft, hard, threshold bool // events enabled
	now                   func() time.Time

	mu    sync.Mutex
	marks map[string]*mark
}

// Detect returns the alerts that states call for, remembering them so
// that the same scope does not alert again in the same period. It is
// cheap (a map lookup per state under a mutex; thresholds add a few
// integer multiplications and no allocation unless they alert) and safe
// for concurrent use. Rules:
//
//   - soft_cap_crossed when committed+reserved has reached soft_usd;
//     hard_cap_reached when it has reached hard_usd or the scope has just
//     refused a request (State.Blocked); threshold_crossed, once per
//     threshold, when it has reached that fraction of hard_usd
//     (State.Thresholds).
//   - A state that crossed several at once sends each, in the order of
//     the amounts they stand for: thresholds ascending, the soft cap in
//     its place among them (after a threshold of the same amount), and
//     hard_cap_reached last.
//   - Calendar and total periods alert once per period: a state with a
//     later PeriodStart starts afresh; a state of an earlier period,
//     arriving late, is ignored. A total budget alerts once per process.
//   - Rolling windows have no period: an alert re-arms when the scope's
//     spend is seen below 90% of that cap (or threshold amount) again.
//
// Detection is per process. With a shared store (Sender.ShareWith, the
// Redis store) the replicas claim each calendar or total period's alert
// there, so the fleet sends it once, and a restart does not send it
// again; without one each replica alerts once, and a restart may alert
// again for the current period. Rolling windows' alerts are per replica.
func (d *detector) Detect(states []sink.BudgetState) []Alert {
	var out []Alert
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range states {
		used := s.Used()
		soft, hard := d.soft && s.SoftCrossed(), d.hard && s.HardReached()
		reached := 0 // s.Thresholds[:reached] are reached (they ascend)
		if d.threshold && s.HasHard {
			for reached < len(s.Thresholds) && used >= s.ThresholdAmount(s.Thresholds[reached]) {
				reached++
			}
		}
		key := s.Budget + "\x00" + s.Key
		m := d.marks[key]
		if m == nil && !soft && !hard && reached == 0 {
			continue
		}
		if m != nil {
			switch {
			case s.Rolling:
				if used < pct(s.Soft, rearmPercent) {
					m.soft = false
				}
				if used < pct(s.Hard, rearmPercent) && !s.Blocked {
					m.hard = false
				}
				kept := m.crossed[:0]
				for _, f := range m.crossed {
					if used >= pct(s.ThresholdAmount(f), rearmPercent) {
						kept = append(kept, f)
					}
				}
				m.crossed = kept
			case s.PeriodStart.Before(m.period):
				continue // a late state from an earlier period
			case s.PeriodStart.After(m.period):
				*m = mark{crossed: m.crossed[:0]}
			}
		} else {
			m = d.track(key, now)
		}
		m.period, m.resetsAt = s.PeriodStart, s.ResetsAt
		for _, f := range s.Thresholds[:reached] {
			if soft && !m.soft && s.Soft < s.ThresholdAmount(f) {
				m.soft = true
				out = append(out, Alert{Event: SoftCapCrossed, State: s, At: now})
			}
			if !slices.Contains(m.crossed, f) {
				m.crossed = append(m.crossed, f)
				out = append(out, Alert{Event: ThresholdCrossed, State: s, Threshold: f, At: now})
			}
		}
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
