package budget

import (
	"context"
	"errors"
	"io"
	"net"
	"time"
)

// Releasing what a failed Reserve may have reserved.
//
// A networked store's Reserve can fail after the store applied it: the
// call timed out, or the connection broke, while the script ran or its
// answer travelled back. The caller treats the request as not admitted,
// so nobody would settle that reservation and it would hold its amount
// until the reservation TTL (10 minutes by default): one stall of the
// store during a burst then refuses the following requests for nothing.
//
// So when Store.Reserve fails with an unknown outcome (outcomeUnknown),
// the engine releases the id in the background: Settle(id, 0, items)
// through the settle retrier, which sends it until the store answers.
// This needs a store that settles each id once (IdempotentSettler) and
// an engine with RetrySettles; the Redis store also refuses a Reserve of
// an id it has settled within its marker window, so a Reserve that
// reaches Redis only after its release holds nothing. A refusal
// (ErrInvalidArgument, ErrDuplicateReservation, an error the store
// reported) changed nothing and is not released.
//
// An Extend whose outcome is unknown needs no release of its own: the
// grant is held under the reservation's id, which the request settles
// anyway (and an Extend that reaches Redis after that Settle is refused
// by the same marker).
//
// The memory store never times out and never fails a Reserve after
// applying it (it is a map update under a mutex), so nothing is released
// for it; it is not an IdempotentSettler either.

// outcomeUnknown reports whether err, from a Store call, leaves it
// unknown whether the store applied the call: a timeout or a cancelled
// context (the call may have been sent), a broken connection. A failed
// dial sent nothing, and a refusal or an error the store itself reported
// changed nothing.
func outcomeUnknown(err error) bool {
	if err == nil || errors.Is(err, ErrInvalidArgument) || errors.Is(err, ErrDuplicateReservation) {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" { // even a dial that timed out
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// Release reasons, the reason given to SettleRetry.OnRelease.
const (
	// ReleaseTimeout: the call timed out (context.DeadlineExceeded).
	ReleaseTimeout = "timeout"
	// ReleaseCanceled: the caller's context was cancelled during the call.
	ReleaseCanceled = "canceled"
	// ReleaseConnection: the connection to the store broke during the call.
	ReleaseConnection = "connection"
)

// releaseReason is the Release reason of err, an unknown outcome.
func releaseReason(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return ReleaseTimeout
	case errors.Is(err, context.Canceled):
		return ReleaseCanceled
	default:
		return ReleaseConnection
	}
}

// releaseUnknown releases reservation id in the background when err,
// the failure of its Reserve at now on items, leaves unknown whether the
// store holds it. It reports whether a release was started.
func (e *Engine) releaseUnknown(id string, items []Item, now time.Time, err error) bool {
	r := e.retry
	if r == nil || len(items) == 0 || !outcomeUnknown(err) {
		return false
	}
	if !r.later(id, 0, items, now, err) {
		return false
	}
	r.released.Add(1)
	if r.cfg.OnRelease != nil {
		r.cfg.OnRelease(id, releaseReason(err), err)
	}
	return true
}

// Released is how many reservations the engine has released in the
// background because their Reserve failed with an unknown outcome (see
// SettleRetry.OnRelease); 0 without RetrySettles.
func (e *Engine) Released() int64 {
	if e.retry == nil {
		return 0
	}
	return e.retry.released.Load()
}
