package budget

import (
	"context"
	"errors"
	"time"
)

// Parker is an optional Store capability: small records parked under a
// key until one caller takes them, or until their deadline has passed and
// one caller pops them. spendguard parks what it needs to settle a
// background response (the reservation, its items and the price) under
// the response's id, in the store every replica shares, so that whichever
// replica sees the result settles it, exactly once. The package storetest
// checks an implementation (RunParker); the memory and Redis stores are
// Parkers.
//
// Every method is one atomic step, safe for concurrent use by many
// goroutines and many replicas sharing the store: of all the Takes and
// PopExpireds that race for one record, exactly one returns it.
//
// A Parker must not keep the record slice it is given after Park returns,
// and the slices it returns belong to the caller.
type Parker interface {
	// Park stores record under key until deadline. key must not be empty
	// and record must not be nil (ErrInvalidArgument); a key already
	// parked is refused with ErrParked and keeps its record.
	Park(ctx context.Context, key string, record []byte, deadline time.Time) error

	// Take removes the record parked under key and returns it; found is
	// false when there is none (never parked, taken, or popped). A record
	// past its deadline that no PopExpired has removed yet is still
	// returned: settling it exactly is better than settling it late.
	Take(ctx context.Context, key string) (record []byte, found bool, err error)

	// PopExpired removes and returns up to max records whose deadline is
	// at or before now, earliest deadline first (max <= 0 returns none).
	PopExpired(ctx context.Context, now time.Time, max int) ([]Parked, error)
}

// Parked is one record PopExpired removed.
type Parked struct {
	Key      string
	Record   []byte
	Deadline time.Time
}

// ErrParked is returned by Parker.Park for a key that is already parked.
var ErrParked = errors.New("budget: a record is already parked under this key")
