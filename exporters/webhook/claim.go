package webhook

import (
	"context"
	"strconv"
	"time"
)

// Claimer decides which replica sends an alert that several replicas
// detect (each detects from the states it sees): Claim reports whether
// owner may act on name until ttl has passed — true for the first owner
// to ask, and for that owner again (a retry); false for the others. The
// Redis store implements it (redisstore.Store.Claim).
type Claimer interface {
	Claim(ctx context.Context, name, owner string, ttl time.Duration) (bool, error)
}

// ShareWith makes the sender send only the alerts it claims in c under
// owner (this process's name), so that a fleet of replicas sends each
// calendar or total period's alert once. Rolling windows' alerts, which
// re-arm as spend falls, stay per replica. Without it (a single replica,
// the memory store) each replica sends its own.
func (s *Sender) ShareWith(c Claimer, owner string) {
	s.claims, s.owner = c, owner
}

// claimTTLTotal bounds the claim of a total budget's alert, which has no
// period end.
const claimTTLTotal = 400 * 24 * time.Hour

// mine reports whether this replica sends a. A claim that cannot be made
// (the store does not answer) sends it: twice is better than never.
func (s *Sender) mine(ctx context.Context, a Alert) bool {
	if s.claims == nil || a.State.Rolling {
		return true
	}
	name := "alert:" + a.State.Key + "@" + strconv.FormatInt(a.State.PeriodStart.Unix(), 10) + ":" + a.Event
	if a.Event == ThresholdCrossed {
		name += ":" + strconv.FormatFloat(a.Threshold, 'f', -1, 64)
	}
	ttl := claimTTLTotal
	if !a.State.ResetsAt.IsZero() {
		ttl = max(time.Until(a.State.ResetsAt)+time.Hour, time.Minute)
	}
	ok, err := s.claims.Claim(ctx, name, s.owner, ttl)
	return ok || err != nil
}
