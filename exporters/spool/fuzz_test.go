package spool

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzOpen opens a spool whose only segment and cursor are arbitrary
// bytes: Open never panics, what Read returns are whole frames, and the
// spool keeps working (a record appended afterwards is read last).
func FuzzOpen(f *testing.F) {
	good := append([]byte(magic), appendFrame(appendFrame(nil, []byte("a"), 1), []byte("bb"), 2)...)
	f.Add(good, []byte{})
	f.Add(good[:len(good)-1], []byte{})
	f.Add([]byte(magic[:3]), []byte{})
	f.Add([]byte("not a segment"), []byte{1, 2, 3})
	f.Add(good, []byte{1, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, seg, cursor []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(segName(dir, 1), seg, 0o600); err != nil {
			t.Fatal(err)
		}
		if len(cursor) > 0 {
			if err := os.WriteFile(filepath.Join(dir, cursorName), cursor, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		s, err := Open(Options{Dir: dir})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		defer s.Close()
		held := s.Stats().Rows
		if err := s.Append([]byte("last")); err != nil {
			t.Fatal(err)
		}
		var n int64
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			recs, err := s.Read(ctx, 100, 1<<20)
			cancel()
			if err != nil {
				t.Fatalf("read after %d records (%d held): %v", n, held, err)
			}
			n += int64(len(recs))
			if err := s.Ack(recs); err != nil {
				t.Fatal(err)
			}
			if string(recs[len(recs)-1].Data) == "last" {
				break
			}
		}
		if n != held+1 {
			t.Fatalf("read %d records, Open counted %d (+1 appended)", n, held)
		}
	})
}

// FuzzOperations drives a spool with appends, reads, acknowledgements,
// reopenings and torn writes, and checks every read against a model: the
// records appended and not acknowledged, in order; a reopening reads
// again from the oldest not acknowledged.
func FuzzOperations(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 5, 2, 0, 1, 9})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 3, 1, 2, 2, 0, 1, 255, 3, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		dir := t.TempDir()
		o := Options{Dir: dir, SegmentBytes: 64, SyncInterval: time.Millisecond, SyncRecords: 3}
		s, err := Open(o)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { s.Close() }()
		var pending []string // appended, not acknowledged
		read := 0            // of pending, how many Read returned since Open
		next := 0
		for i := 0; i < len(ops); i++ {
			switch ops[i] % 4 {
			case 0:
				r := fmt.Sprintf("r%d", next)
				next++
				if err := s.Append([]byte(r)); err != nil {
					t.Fatal(err)
				}
				pending = append(pending, r)
			case 1: // read up to k, acknowledge the first m of them
				if read == len(pending) || i+1 >= len(ops) {
					continue
				}
				i++
				k, m := int(ops[i]%7)+1, int(ops[i]/7%8)
				recs, err := s.Read(context.Background(), k, 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				for j, r := range recs {
					if read+j >= len(pending) || string(r.Data) != pending[read+j] {
						t.Fatalf("read %q at %d, want %v from %d", r.Data, j, pending, read)
					}
				}
				read += len(recs)
				if m > 0 && read == len(recs) { // only what was read since the last ack
					m = min(m, len(recs))
					if err := s.Ack(recs[:m]); err != nil {
						t.Fatal(err)
					}
					pending, read = pending[m:], read-m
					if m < len(recs) { // the rest is read again after a reopening only
						if err := s.Close(); err != nil {
							t.Fatal(err)
						}
						if s, err = Open(o); err != nil {
							t.Fatal(err)
						}
						read = 0
					}
				}
			case 2: // reopen
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				if s, err = Open(o); err != nil {
					t.Fatal(err)
				}
				read = 0
			case 3: // a crash in the middle of a write, then reopen
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				files, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
				fr := appendFrame(nil, []byte("torn"), 1)
				fh, err := os.OpenFile(files[len(files)-1], os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					t.Fatal(err)
				}
				fh.Write(fr[:int(ops[i]/4)%len(fr)])
				fh.Close()
				if s, err = Open(o); err != nil {
					t.Fatal(err)
				}
				read = 0
			}
			if got := s.Stats().Rows; got != int64(len(pending)) {
				t.Fatalf("after op %d: %d rows held, model %d", i, got, len(pending))
			}
		}
	})
}
