package spool

import (
	"errors"
	"fmt"
	"os"
	"slices"
)

// recover reads the directory at Open: segments left wholly behind the
// cursor are deleted, a frame torn by a crash at the end of the last
// segment is cut off, and the records from the cursor on are counted. It
// returns the sequence number for the new segment.
func (s *Spool) recover() (uint64, error) {
	entries, err := os.ReadDir(s.o.Dir)
	if err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	var seqs []uint64
	for _, e := range entries {
		if n, ok := segSeq(e.Name()); ok && e.Type().IsRegular() {
			seqs = append(seqs, n)
		}
	}
	slices.Sort(seqs)
	cur, ok := readCursor(s.o.Dir)
	next := uint64(1)
	if ok {
		next = cur.seq + 1
	}
	if len(seqs) == 0 {
		return next, nil
	}
	next = max(next, seqs[len(seqs)-1]+1)
	if !ok || cur.seq < seqs[0] || cur.off < int64(len(magic)) {
		cur = pos{seqs[0], int64(len(magic))}
	}
	for i, seq := range seqs {
		if seq < cur.seq {
			if err := os.Remove(segName(s.o.Dir, seq)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return 0, fmt.Errorf("spool: %w", err)
			}
			continue
		}
		size, err := s.checkSegment(seq, i == len(seqs)-1)
		if err != nil {
			return 0, err
		}
		if size < 0 {
			continue
		}
		s.segs = append(s.segs, segment{seq: seq, size: size})
	}
	if len(s.segs) == 0 || s.segs[0].seq != cur.seq {
		cur = pos{next, int64(len(magic))}
		if len(s.segs) > 0 {
			cur = pos{s.segs[0].seq, int64(len(magic))}
		}
	}
	s.cursor = cur
	s.recount()
	if s.rows == 0 {
		// Nothing to read: the files go, and the spool starts afresh in
		// the segment Open creates (so reopening an empty spool does not
		// leave a file behind each time).
		for _, g := range s.segs {
			if err := os.Remove(segName(s.o.Dir, g.seq)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return 0, fmt.Errorf("spool: %w", err)
			}
		}
		s.segs, s.cursor = nil, pos{}
	}
	return next, nil
}

// checkSegment finds segment seq's readable size: up to its first frame
// that is short or damaged. A short frame at the end of the last segment
// is a write a crash cut: the file is truncated there. A damage elsewhere
// is counted in corrupt. It returns -1 for a file that is not a segment
// (renamed aside with a .bad suffix) or an empty one (removed).
func (s *Spool) checkSegment(seq uint64, last bool) (int64, error) {
	name := segName(s.o.Dir, seq)
	b, err := os.ReadFile(name)
	if err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	if len(b) < len(magic) && string(b) == magic[:len(b)] {
		// Created, and the process died before its magic was written.
		return -1, os.Remove(name)
	}
	if len(b) < len(magic) || string(b[:len(magic)]) != magic {
		s.corrupt++
		return -1, os.Rename(name, name+".bad")
	}
	off := len(magic)
	for off < len(b) {
		_, _, n, st := parseFrame(b[off:])
		if st != frameOK {
			if st == frameShort && last {
				if err := os.Truncate(name, int64(off)); err != nil {
					return 0, fmt.Errorf("spool: cutting a torn record off %s: %w", name, err)
				}
			} else {
				s.corrupt++
			}
			break
		}
		off += n
	}
	return int64(off), nil
}

// recount counts the records from the cursor to the end of every
// segment's readable part, and the oldest one's time. Called with mu held
// (or before the spool is shared).
func (s *Spool) recount() {
	s.rows, s.oldest = 0, 0
	var bytes int64
	defer func() { s.setBytes(bytes) }()
	for _, g := range s.segs {
		start := int64(len(magic))
		if g.seq < s.cursor.seq {
			continue
		}
		if g.seq == s.cursor.seq {
			start = s.cursor.off
		}
		if start >= g.size {
			continue
		}
		b, err := readRange(segName(s.o.Dir, g.seq), start, g.size)
		if err != nil {
			continue
		}
		for len(b) > 0 {
			_, at, n, st := parseFrame(b)
			if st != frameOK {
				break
			}
			if s.rows == 0 {
				s.oldest = at
			}
			s.rows++
			bytes += int64(n)
			b = b[n:]
		}
	}
}

func readRange(name string, from, to int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, to-from)
	n, err := f.ReadAt(b, from)
	if n == len(b) {
		err = nil
	}
	return b[:n], err
}
