// Package webhook sends budget alerts — soft_cap_crossed,
// hard_cap_reached and threshold_crossed (a budget's alerts.thresholds) —
// to an HTTP endpoint, as Slack incoming-webhook messages or as plain
// JSON, once per budget scope per period (see Sender.Detect for the exact
// rules).
//
// Crossings are detected from the post-settle budget states that travel
// with each report, synchronously when the report is offered (so none is
// missed when the send queue is full); the alerts are then sent from the
// fan-out's queue, one POST each, retried with backoff.
package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/spendguard/spendguard/exporters/sink"
	"github.com/spendguard/spendguard/internal/money"
)

// Sender detects and sends alerts.
type Sender struct {
	detector
	cfg    Config
	client *http.Client
	claims Claimer // nil: every alert this replica detects is sent
	owner  string
}

// New returns a Sender for cfg (validated by the caller).
func New(cfg Config) *Sender {
	cfg = cfg.WithDefaults()
	return &Sender{
		cfg:    cfg,
		client: &http.Client{Transport: http.DefaultTransport},
		detector: detector{
			soft: slices.Contains(cfg.Events, SoftCapCrossed), hard: slices.Contains(cfg.Events, HardCapReached),
			threshold: slices.Contains(cfg.Events, ThresholdCrossed),
			now:       time.Now, marks: map[string]*mark{},
		},
	}
}

// Send posts each alert; the fan-out calls it with one alert at a time.
func (s *Sender) Send(ctx context.Context, alerts []Alert) error {
	for _, a := range alerts {
		if !s.mine(ctx, a) {
			continue // another replica sends it
		}
		body, err := Body(a, s.cfg.Format)
		if err != nil {
			return sink.Permanent(err)
		}
		if err := sink.PostJSON(ctx, s.client, s.cfg.URL, s.cfg.Headers, body); err != nil {
			return err
		}
	}
	return nil
}

// Payload is the body of a json-format alert.
type Payload struct {
	Event string `json:"event"`
	// Threshold is the fraction of the hard cap a threshold_crossed
	// alert is for (0.8); absent for the other events.
	Threshold    *float64          `json:"threshold,omitempty"`
	Budget       string            `json:"budget"`
	Scope        map[string]string `json:"scope"`
	ScopeText    string            `json:"scope_text"`
	PeriodStart  string            `json:"period_start,omitempty"`
	ResetsAt     string            `json:"resets_at,omitempty"`
	SpentUSD     json.Number       `json:"spent_usd"`
	ReservedUSD  json.Number       `json:"reserved_usd"`
	SoftUSD      *json.Number      `json:"soft_usd,omitempty"`
	HardUSD      *json.Number      `json:"hard_usd,omitempty"`
	RemainingUSD *json.Number      `json:"remaining_usd,omitempty"`
	Blocked      bool              `json:"blocked"`
	At           string            `json:"at"`
	Message      string            `json:"message"`
}

// Body renders a in format json or slack ({"text": message}).
func Body(a Alert, format string) ([]byte, error) {
	if format == "slack" {
		icon := ":warning:"
		switch a.Event {
		case HardCapReached:
			icon = ":no_entry:"
		case ThresholdCrossed:
			icon = ":bell:"
		}
		return json.Marshal(map[string]string{"text": icon + " " + Message(a)})
	}
	s := a.State
	scope := s.Scope
	if scope == nil {
		scope = map[string]string{}
	}
	p := Payload{
		Event: a.Event, Budget: s.Budget, Scope: scope, ScopeText: s.ScopeText,
		PeriodStart: timeText(s.PeriodStart), ResetsAt: timeText(s.ResetsAt),
		SpentUSD: usd(s.Committed), ReservedUSD: usd(s.Reserved), Blocked: s.Blocked,
		At: a.At.UTC().Format(time.RFC3339Nano), Message: Message(a),
	}
	if a.Event == ThresholdCrossed {
		p.Threshold = ptr(a.Threshold)
	}
	if s.HasSoft {
		p.SoftUSD = ptr(usd(s.Soft))
	}
	if s.HasHard {
		p.HardUSD, p.RemainingUSD = ptr(usd(s.Hard)), ptr(usd(s.Remaining()))
	}
	return json.Marshal(p)
}

// Message is the alert's sentence, e.g.
//
//	spendguard: budget tenant-monthly passed its soft cap for tenant=acme: 800.12 of 800.00 USD this month (hard cap 1000.00); resets 2026-12-01T00:00:00+01:00
//	spendguard: tenant=acme has used 80% of budget tenant-monthly (800.12 of 1000.00 USD) this month; resets 2026-12-01T00:00:00+01:00
func Message(a Alert) string {
	s := a.State
	used := s.Used()
	var msg string
	switch {
	case a.Event == ThresholdCrossed:
		who := s.ScopeText
		if who == "all" || who == "" {
			who = "all traffic"
		}
		msg = fmt.Sprintf("spendguard: %s has used %s%% of budget %s (%s of %s USD) %s", who, percent(a.Threshold), s.Budget,
			used.Fixed(2), s.Hard.Fixed(2), s.PeriodWord)
	case a.Event == SoftCapCrossed:
		msg = fmt.Sprintf("spendguard: budget %s passed its soft cap for %s: %s of %s USD %s", s.Budget, s.ScopeText,
			used.Fixed(2), s.Soft.Fixed(2), s.PeriodWord)
		if s.HasHard {
			msg += fmt.Sprintf(" (hard cap %s)", s.Hard.Fixed(2))
		}
	case used >= s.Hard:
		msg = fmt.Sprintf("spendguard: budget %s reached its hard cap for %s: %s of %s USD %s; requests are refused with 402",
			s.Budget, s.ScopeText, used.Fixed(2), s.Hard.Fixed(2), s.PeriodWord)
	default:
		msg = fmt.Sprintf("spendguard: budget %s refused a request for %s: %s of %s USD %s, too little left for it",
			s.Budget, s.ScopeText, used.Fixed(2), s.Hard.Fixed(2), s.PeriodWord)
	}
	if !s.ResetsAt.IsZero() && !s.Rolling {
		msg += "; resets " + s.ResetsAt.Format(time.RFC3339)
	}
	return msg
}

// percent writes a fraction given to a millionth as a percentage without
// trailing zeros: 0.8 is "80", 0.995 "99.5".
func percent(fraction float64) string {
	ppm := math.Round(fraction * 1e6)
	return strconv.FormatFloat(ppm/1e4, 'f', -1, 64)
}

func usd(n money.Nano) json.Number { return json.Number(n.USD()) }

func ptr[T any](v T) *T { return &v }

func timeText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339)
}
