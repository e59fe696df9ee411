package postgres

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/spendguard/spendguard/exporters/sink"
)

// BenchmarkRecord measures what Record adds to the end of a request: the
// row marshalled and written to the spool (one write(2); the group commit
// runs in the background). The baseline is marshalling alone. PostgreSQL
// is unreachable, so nothing ships meanwhile.
func BenchmarkRecord(b *testing.B) {
	ev := &sink.Event{Report: report("0f8fad5b-d9cb-469f-a165-70867728950e", 0, map[string]string{"tenant": "acme", "use_case": "rag"})}
	b.Run("marshal-only", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := proto.Marshal(ev.Report); err != nil {
				b.Fatal(err)
			}
		}
	})
	open := func(b *testing.B) *Ledger {
		l, err := OpenSpooled(Config{DSN: unreachable, Spool: SpoolConfig{Dir: b.TempDir(), MaxBytes: 8 << 30, OnFull: OnFullDrop}}, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = l.Close(b.Context()) })
		return l
	}
	b.Run("record", func(b *testing.B) {
		l := open(b)
		b.ReportAllocs()
		for b.Loop() {
			l.Record(ev)
		}
		if d := l.SpoolStats().Dropped; d["write_error"]+d["spool_full"] > 0 {
			b.Fatalf("dropped %v", d)
		}
	})
	b.Run("record-parallel", func(b *testing.B) {
		l := open(b)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				l.Record(ev)
			}
		})
	})
}
