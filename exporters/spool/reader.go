package spool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Record is one record as Read returns it.
type Record struct {
	Data []byte    // the payload, the caller's to keep
	At   time.Time // when it was appended
	end  pos       // where the next record starts
}

// reader is the consumer's side: where it reads next and the segment
// file it reads from.
type reader struct {
	mu   sync.Mutex
	pos  pos
	file *os.File
	seq  uint64
	buf  []byte
}

func (r *reader) close() {
	if r.file != nil {
		r.file.Close()
		r.file = nil
	}
}

// Read returns the records that follow those already read — at most
// maxRecs of them and, past the first, at most maxBytes of payload — waiting
// until there is at least one or ctx is done. Reading does not remove
// anything: Ack does. After Open, reading starts at the oldest record not
// acknowledged.
func (s *Spool) Read(ctx context.Context, maxRecs, maxBytes int) ([]Record, error) {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	for {
		recs, err := s.readAvailable(maxRecs, maxBytes)
		if err != nil || len(recs) > 0 {
			return recs, err
		}
		select {
		case <-s.wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.quit:
			return nil, ErrClosed
		}
	}
}

// readAvailable reads what is there without waiting. Called with r.mu
// held.
func (s *Spool) readAvailable(maxRecs, maxBytes int) ([]Record, error) {
	maxRecs = min(max(maxRecs, 1), 1<<16)
	var out []Record
	payload := 0
	for len(out) < maxRecs {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return out, ErrClosed
		}
		i := s.segIndex(s.r.pos.seq)
		if i < 0 && s.r.pos.seq < s.segs[0].seq {
			// Read to its end and acknowledged: Ack deleted it.
			s.r.pos = pos{s.segs[0].seq, int64(len(magic))}
			i = 0
		}
		if i < 0 {
			s.mu.Unlock()
			return out, fmt.Errorf("spool: segment %d vanished", s.r.pos.seq)
		}
		seg, last := s.segs[i], i == len(s.segs)-1
		if s.r.pos.off >= seg.size && !last {
			s.r.pos = pos{s.segs[i+1].seq, int64(len(magic))}
			s.mu.Unlock()
			continue
		}
		s.mu.Unlock()
		if s.r.pos.off >= seg.size {
			return out, nil
		}
		if s.r.seq != seg.seq || s.r.file == nil {
			s.r.close()
			f, err := os.Open(segName(s.o.Dir, seg.seq))
			if err != nil {
				return out, fmt.Errorf("spool: %w", err)
			}
			s.r.file, s.r.seq = f, seg.seq
		}
		if s.r.buf == nil {
			s.r.buf = make([]byte, headerSize+MaxRecord)
		}
		want := min(seg.size-s.r.pos.off, int64(len(s.r.buf)))
		n, err := s.r.file.ReadAt(s.r.buf[:want], s.r.pos.off)
		if err != nil && !errors.Is(err, io.EOF) {
			return out, fmt.Errorf("spool: reading %s: %w", s.r.file.Name(), err)
		}
		b := s.r.buf[:n]
		progressed := false
		for len(out) < maxRecs && len(b) > 0 {
			data, at, size, st := parseFrame(b)
			if st == frameShort && int64(n) < seg.size-s.r.pos.off {
				break // the rest comes with the next read
			}
			if st != frameOK {
				s.cutSegment(seg.seq, s.r.pos.off)
				progressed = true
				break
			}
			if len(out) > 0 && payload+len(data) > maxBytes {
				return out, nil
			}
			payload += len(data)
			s.r.pos.off += int64(size)
			out = append(out, Record{Data: append([]byte(nil), data...), At: time.Unix(0, at), end: s.r.pos})
			b = b[size:]
			progressed = true
		}
		if !progressed {
			return out, nil
		}
	}
	return out, nil
}

// segIndex is the index of segment seq in segs, or -1. Called with mu
// held.
func (s *Spool) segIndex(seq uint64) int {
	for i, g := range s.segs {
		if g.seq == seq {
			return i
		}
	}
	return -1
}

// cutSegment ends segment seq's readable part at off, where a damaged
// frame starts: what follows in it cannot be framed again. When it is
// the segment being appended to, appends move to a new one. The counts of
// what is held are taken again from the disk.
func (s *Spool) cutSegment(seq uint64, off int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.corrupt++
	i := s.segIndex(seq)
	if i < 0 {
		return
	}
	s.segs[i].size = off
	if i == len(s.segs)-1 {
		old := s.cur
		if err := s.startSegment(seq + 1); err == nil {
			s.retired = append(s.retired, old)
		}
	}
	s.recount()
}

// Ack acknowledges recs, the records Read returned last (or a prefix of
// them): the cursor moves past them, and segments left wholly behind are
// deleted. The file work (the cursor, deletions, the next record's time)
// is done outside the lock that Append takes, so appends never wait for
// the disk.
func (s *Spool) Ack(recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	var n int64
	for _, r := range recs {
		n += int64(headerSize + len(r.Data))
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.rows = max(s.rows-int64(len(recs)), 0)
	s.setBytes(max(s.bytes-n, 0))
	s.acked += uint64(len(recs))
	s.cursor = recs[len(recs)-1].end
	var gone []uint64
	for len(s.segs) > 1 && (s.segs[0].seq < s.cursor.seq ||
		(s.segs[0].seq == s.cursor.seq && s.cursor.off >= s.segs[0].size)) {
		gone = append(gone, s.segs[0].seq)
		s.segs = s.segs[1:]
	}
	if s.cursor.seq < s.segs[0].seq {
		s.cursor = pos{s.segs[0].seq, int64(len(magic))}
	}
	cursor, rows := s.cursor, s.rows
	next, nextSize := s.cursor, s.segs[0].size
	if len(s.segs) > 1 && next.off >= nextSize {
		next = pos{s.segs[1].seq, int64(len(magic))}
	}
	s.oldest = 0 // until read below
	if len(gone) > 0 {
		s.dirDirty = true
	}
	s.mu.Unlock()

	var err error
	for _, seq := range gone {
		if seq == s.r.seq {
			s.r.close()
		}
		if e := os.Remove(segName(s.o.Dir, seq)); e != nil && !errors.Is(e, os.ErrNotExist) {
			err = errors.Join(err, fmt.Errorf("spool: %w", e))
		}
	}
	if rows > 0 {
		if at := s.timeAt(next); at != 0 {
			s.mu.Lock()
			if s.cursor == cursor && s.rows > 0 { // Append keeps an oldest it set itself
				s.oldest = at
			}
			s.mu.Unlock()
		}
	}
	return errors.Join(err, writeCursor(s.o.Dir, cursor))
}

// timeAt is the append time of the frame at p, 0 when it cannot be read.
// Only the reader's side calls it (r.mu held); the segment is not
// deleted meanwhile, as only Ack deletes.
func (s *Spool) timeAt(p pos) int64 {
	f, err := os.Open(segName(s.o.Dir, p.seq))
	if err != nil {
		return 0
	}
	defer f.Close()
	var h [headerSize]byte
	if _, err := f.ReadAt(h[:], p.off); err != nil {
		return 0
	}
	return int64(binary.LittleEndian.Uint64(h[8:16]))
}

// The cursor file: the segment (8 bytes), the offset (8) and a CRC-32C of
// both (4). It is replaced by rename, without fsync: a cursor that is
// stale after a crash makes records be read again, which the consumer
// tolerates; one that is unreadable makes the spool start from its oldest
// segment.
const cursorName = "cursor"

func writeCursor(dir string, cursor pos) error {
	var b [20]byte
	binary.LittleEndian.PutUint64(b[0:8], cursor.seq)
	binary.LittleEndian.PutUint64(b[8:16], uint64(cursor.off))
	binary.LittleEndian.PutUint32(b[16:20], crc32.Checksum(b[:16], castagnoli))
	tmp := filepath.Join(dir, cursorName+".tmp")
	if err := os.WriteFile(tmp, b[:], 0o600); err != nil {
		return fmt.Errorf("spool: writing the cursor: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, cursorName)); err != nil {
		return fmt.Errorf("spool: writing the cursor: %w", err)
	}
	return nil
}

func readCursor(dir string) (pos, bool) {
	b, err := os.ReadFile(filepath.Join(dir, cursorName))
	if err != nil || len(b) != 20 || crc32.Checksum(b[:16], castagnoli) != binary.LittleEndian.Uint32(b[16:20]) {
		return pos{}, false
	}
	return pos{binary.LittleEndian.Uint64(b[0:8]), int64(binary.LittleEndian.Uint64(b[8:16]))}, true
}
