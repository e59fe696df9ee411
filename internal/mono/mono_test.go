package mono

import (
	"testing"
	"time"
)

// TestNowMeasuresDurations checks that a difference of two readings is a
// duration: never negative, and at least a sleep in between.
func TestNowMeasuresDurations(t *testing.T) {
	a := Now()
	time.Sleep(2 * time.Millisecond)
	b := Now()
	if d := b - a; d < 2*time.Millisecond {
		t.Fatalf("2ms sleep measured as %v", d)
	}
	if a < 0 {
		t.Fatalf("Now() = %v before the process started", a)
	}
}

func BenchmarkNow(b *testing.B) {
	for b.Loop() {
		Now()
	}
}

func BenchmarkTimeNow(b *testing.B) {
	for b.Loop() {
		time.Now()
	}
}
