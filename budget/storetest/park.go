package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
)

// RunParker checks a store's budget.Parker; newStore returns an empty
// store for each subtest (its parked records must not be visible to the
// stores of other subtests: a shared backend needs a prefix per store).
func RunParker(t *testing.T, newStore func(t *testing.T) budget.Parker) {
	tests := []struct {
		name string
		fn   func(t *testing.T, p budget.Parker)
	}{
		{"TakeReturnsTheRecordOnce", testTakeOnce},
		{"ParkTwiceIsRefused", testParkTwice},
		{"InvalidArguments", testParkInvalid},
		{"RecordsAreBinarySafe", testParkBinary},
		{"PopExpiredInDeadlineOrder", testPopExpired},
		{"PopExpiredStopsAtMax", testPopMax},
		{"TakeAfterDeadlineBeforePop", testTakeLate},
		{"RacersGetEachRecordOnce", testParkRace},
		{"CanceledContext", testParkCanceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newStore(t)) })
	}
}

var bg = context.Background()

func take(t *testing.T, p budget.Parker, key string) ([]byte, bool) {
	t.Helper()
	rec, found, err := p.Take(bg, key)
	require.NoError(t, err)
	return rec, found
}

func testTakeOnce(t *testing.T, p budget.Parker) {
	require.NoError(t, p.Park(bg, "resp_1", []byte(`{"id":"r1"}`), T0.Add(time.Hour)))
	_, found := take(t, p, "resp_2")
	assert.False(t, found, "a key never parked")
	rec, found := take(t, p, "resp_1")
	require.True(t, found)
	assert.Equal(t, `{"id":"r1"}`, string(rec))
	_, found = take(t, p, "resp_1")
	assert.False(t, found, "a record is taken once")
	got, err := p.PopExpired(bg, T0.Add(2*time.Hour), 10)
	require.NoError(t, err)
	assert.Empty(t, got, "a taken record is not popped")
	require.NoError(t, p.Park(bg, "resp_1", []byte("again"), T0.Add(time.Hour)), "a taken key may be parked again")
}

func testParkTwice(t *testing.T, p budget.Parker) {
	require.NoError(t, p.Park(bg, "k", []byte("first"), T0.Add(time.Hour)))
	err := p.Park(bg, "k", []byte("second"), T0.Add(2*time.Hour))
	require.ErrorIs(t, err, budget.ErrParked)
	rec, found := take(t, p, "k")
	require.True(t, found)
	assert.Equal(t, "first", string(rec))
}

func testParkInvalid(t *testing.T, p budget.Parker) {
	assert.ErrorIs(t, p.Park(bg, "", []byte("x"), T0), budget.ErrInvalidArgument)
	assert.ErrorIs(t, p.Park(bg, "k", nil, T0), budget.ErrInvalidArgument)
	_, found := take(t, p, "k")
	assert.False(t, found, "a refused Park stores nothing")
	got, err := p.PopExpired(bg, T0.Add(time.Hour), 0)
	require.NoError(t, err)
	assert.Empty(t, got)
}

func testParkBinary(t *testing.T, p budget.Parker) {
	rec := []byte{0, 0xff, '\n', 'a', 0, '"', '\\', 0xc3}
	key := "resp_ünïcode key with spaces*?[]"
	require.NoError(t, p.Park(bg, key, rec, T0))
	got, found := take(t, p, key)
	require.True(t, found)
	assert.Equal(t, rec, got)
	require.NoError(t, p.Park(bg, key, []byte{}, T0), "an empty record is a record")
	got, found = take(t, p, key)
	require.True(t, found)
	assert.Empty(t, got)
}

func testPopExpired(t *testing.T, p budget.Parker) {
	// Parked out of deadline order.
	require.NoError(t, p.Park(bg, "c", []byte("C"), T0.Add(3*time.Minute)))
	require.NoError(t, p.Park(bg, "a", []byte("A"), T0.Add(1*time.Minute)))
	require.NoError(t, p.Park(bg, "b", []byte("B"), T0.Add(2*time.Minute)))

	got, err := p.PopExpired(bg, T0.Add(30*time.Second), 10)
	require.NoError(t, err)
	assert.Empty(t, got, "nothing is due before its deadline")

	got, err = p.PopExpired(bg, T0.Add(2*time.Minute), 10)
	require.NoError(t, err)
	require.Len(t, got, 2, "a deadline equal to now is due")
	for i, want := range []budget.Parked{
		{Key: "a", Record: []byte("A"), Deadline: T0.Add(time.Minute)},
		{Key: "b", Record: []byte("B"), Deadline: T0.Add(2 * time.Minute)},
	} {
		assert.Equal(t, want.Key, got[i].Key)
		assert.Equal(t, want.Record, got[i].Record)
		assert.True(t, want.Deadline.Equal(got[i].Deadline), "deadline %v, want %v", got[i].Deadline, want.Deadline)
	}

	_, found := take(t, p, "a")
	assert.False(t, found, "a popped record cannot be taken")
	got, err = p.PopExpired(bg, T0.Add(2*time.Minute), 10)
	require.NoError(t, err)
	assert.Empty(t, got, "a record is popped once")
	rec, found := take(t, p, "c")
	require.True(t, found)
	assert.Equal(t, "C", string(rec))
}

func testPopMax(t *testing.T, p budget.Parker) {
	for i := range 5 {
		require.NoError(t, p.Park(bg, fmt.Sprint("k", i), []byte{byte(i)}, T0.Add(time.Duration(i)*time.Second)))
	}
	got, err := p.PopExpired(bg, T0.Add(time.Hour), 2)
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, "k0", got[0].Key)
	assert.Equal(t, "k1", got[1].Key)
	got, err = p.PopExpired(bg, T0.Add(time.Hour), 10)
	require.NoError(t, err)
	require.Len(t, got, 3)
	assert.Equal(t, []byte{4}, got[2].Record)
}

func testTakeLate(t *testing.T, p budget.Parker) {
	require.NoError(t, p.Park(bg, "late", []byte("L"), T0))
	rec, found := take(t, p, "late")
	require.True(t, found, "past its deadline but not popped: still there")
	assert.Equal(t, "L", string(rec))
	got, err := p.PopExpired(bg, T0.Add(time.Hour), 10)
	require.NoError(t, err)
	assert.Empty(t, got)
}

// testParkRace has goroutines race Take and PopExpired for the same
// records: each record comes back exactly once.
func testParkRace(t *testing.T, p budget.Parker) {
	const records, racers = 40, 8
	for i := range records {
		require.NoError(t, p.Park(bg, fmt.Sprint("r", i), []byte(fmt.Sprint(i)), T0))
	}
	var mu sync.Mutex
	got := map[string]int{}
	var wg sync.WaitGroup
	for g := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range records {
				key := fmt.Sprint("r", (i+g*5)%records)
				if g%2 == 0 {
					rec, found, err := p.Take(bg, key)
					assert.NoError(t, err)
					if found {
						mu.Lock()
						got[string(rec)]++
						mu.Unlock()
					}
					continue
				}
				popped, err := p.PopExpired(bg, T0.Add(time.Hour), 3)
				assert.NoError(t, err)
				mu.Lock()
				for _, r := range popped {
					got[string(r.Record)]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	rest, err := p.PopExpired(bg, T0.Add(time.Hour), records)
	require.NoError(t, err)
	for _, r := range rest {
		got[string(r.Record)]++
	}
	require.Len(t, got, records)
	for rec, n := range got {
		assert.Equal(t, 1, n, "record %s returned %d times", rec, n)
	}
}

func testParkCanceled(t *testing.T, p budget.Parker) {
	ctx, cancel := context.WithCancel(bg)
	cancel()
	assert.Error(t, p.Park(ctx, "k", []byte("x"), T0))
	_, _, err := p.Take(ctx, "k")
	assert.Error(t, err)
	_, err = p.PopExpired(ctx, T0, 1)
	assert.Error(t, err)
	_, found := take(t, p, "k")
	assert.False(t, found)
}
