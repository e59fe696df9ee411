package spool

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Spool.
type Options struct {
	// Dir is the spool's directory, created (mode 0700) when missing.
	// Required.
	Dir string
	// SegmentBytes is the size past which appends go to a new segment
	// file (default 16 MiB). A segment is deleted once every record in
	// it is acknowledged, so the disk holds what is unacknowledged plus at
	// most one segment.
	SegmentBytes int64
	// SyncInterval is how long an appended record waits at most for its
	// group commit (fsync) (default 10ms).
	SyncInterval time.Duration
	// SyncRecords is how many appends waiting for a group commit start
	// it at once (default 256).
	SyncRecords int
	// Now is the clock of the records' append times (default time.Now).
	Now func() time.Time
	// OnSyncError, optional, hears of a failed fsync. The records stay
	// written to the file (the process may die without losing them); the
	// next group commit tries again.
	OnSyncError func(error)
}

// Defaults of Options.
const (
	DefaultSegmentBytes = 16 << 20
	DefaultSyncInterval = 10 * time.Millisecond
	DefaultSyncRecords  = 256
)

func (o Options) withDefaults() Options {
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = DefaultSyncInterval
	}
	if o.SyncRecords <= 0 {
		o.SyncRecords = DefaultSyncRecords
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.OnSyncError == nil {
		o.OnSyncError = func(error) {}
	}
	return o
}

var (
	// ErrClosed is returned by calls on a closed spool.
	ErrClosed = errors.New("spool: closed")
	// ErrLocked is returned by Open when another process has the
	// directory open.
	ErrLocked = errors.New("spool: directory in use")
)

// Spool is an open spool directory (see the package comment). Append may
// be called from any number of goroutines; Read and Ack from one consumer.
type Spool struct {
	o    Options
	lock *os.File

	mu       sync.Mutex
	closed   bool
	segs     []segment // on disk, oldest first; the last is appended to
	cur      *os.File  // the last segment's write handle
	unsynced int       // appends since the last group commit
	dirDirty bool      // a segment was created or deleted since
	retired  []*os.File
	cursor   pos          // where the oldest unacknowledged record starts
	rows     int64        // records not acknowledged
	bytes    int64        // their frames' bytes (set with setBytes)
	bytesNow atomic.Int64 // bytes, read without the lock (Bytes)
	oldest   int64        // append time of the oldest of them (Unix ns; 0: none)
	appended uint64
	acked    uint64
	corrupt  uint64

	wake     chan struct{} // a record was appended (the reader waits on it)
	dirty    chan struct{} // the first append after a group commit
	full     chan struct{} // SyncRecords appends are waiting
	quit     chan struct{}
	syncDone chan struct{}

	r reader
}

// segment is one segment file: its sequence number and how many of its
// bytes are readable (the whole file, but for one cut short by damage).
type segment struct {
	seq  uint64
	size int64
}

// pos is a place in the spool: a segment and an offset in it.
type pos struct {
	seq uint64
	off int64
}

// Open opens (creating when needed) the spool in o.Dir: it takes the
// directory's lock, cuts off a frame torn by a crash, counts the records
// not yet acknowledged and starts a new segment to append to.
func Open(o Options) (*Spool, error) {
	if o.Dir == "" {
		return nil, errors.New("spool: no directory")
	}
	o = o.withDefaults()
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	lock, err := lockDir(o.Dir)
	if err != nil {
		return nil, err
	}
	s := &Spool{o: o, lock: lock,
		wake: make(chan struct{}, 1), dirty: make(chan struct{}, 1), full: make(chan struct{}, 1),
		quit: make(chan struct{}), syncDone: make(chan struct{})}
	next, err := s.recover()
	if err == nil {
		err = s.startSegment(next)
	}
	if err == nil {
		err = syncDir(o.Dir)
	}
	if err != nil {
		lock.Close()
		return nil, err
	}
	s.r.pos = s.cursor
	go s.syncLoop()
	return s, nil
}

// startSegment creates segment seq and makes it the one appended to.
// Called with mu held (or before the spool is shared).
func (s *Spool) startSegment(seq uint64) error {
	f, err := os.OpenFile(segName(s.o.Dir, seq), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if _, err := f.WriteAt([]byte(magic), 0); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("spool: %w", err)
	}
	s.segs = append(s.segs, segment{seq: seq, size: int64(len(magic))})
	s.cur = f
	s.dirDirty = true
	if s.cursor.seq == 0 {
		s.cursor = pos{seq, int64(len(magic))}
	}
	return nil
}

// Append writes payload as the spool's next record. It returns once the
// record is in the file (one write(2)); the group commit makes it
// durable within SyncInterval. On an error nothing was appended.
func (s *Spool) Append(payload []byte) error {
	if len(payload) > MaxRecord {
		return ErrTooLarge
	}
	now := s.o.Now().UnixNano()
	buf := frames.Get().(*[]byte)
	frame := appendFrame((*buf)[:0], payload, now)
	err := s.write(frame, now)
	if cap(frame) <= 64<<10 { // the write copied it into the kernel
		*buf = frame
		frames.Put(buf)
	}
	return err
}

// write appends one frame at the end of the current segment.
func (s *Spool) write(frame []byte, now int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	last := &s.segs[len(s.segs)-1]
	if last.size+int64(len(frame)) > s.o.SegmentBytes && last.size > int64(len(magic)) {
		if err := s.rotate(); err != nil {
			return err
		}
		last = &s.segs[len(s.segs)-1]
	}
	// At the tracked end, not O_APPEND: what a failed write left behind
	// is overwritten by the next one, and cut off at the next Open.
	if _, err := s.cur.WriteAt(frame, last.size); err != nil {
		return fmt.Errorf("spool: writing %s: %w", s.cur.Name(), err)
	}
	last.size += int64(len(frame))
	if s.rows == 0 {
		s.oldest = now
	}
	s.rows++
	s.setBytes(s.bytes + int64(len(frame)))
	s.appended++
	s.unsynced++
	if s.unsynced == 1 {
		nudge(s.dirty)
	}
	if s.unsynced >= s.o.SyncRecords {
		nudge(s.full)
	}
	nudge(s.wake)
	return nil
}

// frames holds the buffers Append builds a frame in, so that a request's
// row costs no allocation beyond its payload.
var frames = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// rotate makes the current segment durable and starts the next one.
// Called with mu held.
func (s *Spool) rotate() error {
	if err := s.cur.Sync(); err != nil {
		return fmt.Errorf("spool: syncing %s: %w", s.cur.Name(), err)
	}
	old := s.cur
	if err := s.startSegment(s.segs[len(s.segs)-1].seq + 1); err != nil {
		return err
	}
	s.retired = append(s.retired, old) // closed by the syncer, which may be syncing it
	return nil
}

func nudge(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// syncLoop is the group commit: from the first append after a commit,
// it waits SyncInterval (or until SyncRecords appends wait) and fsyncs
// the segment once for all of them.
func (s *Spool) syncLoop() {
	defer close(s.syncDone)
	for {
		select {
		case <-s.dirty:
		case <-s.quit:
			return
		}
		t := time.NewTimer(s.o.SyncInterval)
		select {
		case <-t.C:
		case <-s.full:
		case <-s.quit:
			t.Stop()
			return
		}
		t.Stop()
		if err := s.syncNow(); err != nil {
			s.o.OnSyncError(err)
		}
	}
}

// syncNow fsyncs what was appended, and the directory when segments came
// or went.
func (s *Spool) syncNow() error {
	s.mu.Lock()
	f, n, dd, retired := s.cur, s.unsynced, s.dirDirty, s.retired
	s.unsynced, s.dirDirty, s.retired = 0, false, nil
	select { // this commit covers them
	case <-s.full:
	default:
	}
	s.mu.Unlock()
	var err error
	if n > 0 {
		if e := f.Sync(); e != nil {
			err = fmt.Errorf("spool: syncing %s: %w", f.Name(), e)
			s.mu.Lock()
			s.unsynced += n // try again at the next commit
			s.mu.Unlock()
			nudge(s.dirty)
		}
	}
	if dd {
		err = errors.Join(err, syncDir(s.o.Dir))
	}
	for _, r := range retired {
		r.Close()
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("spool: syncing directory %s: %w", dir, err)
	}
	return nil
}

// setBytes sets bytes and its lock-free copy. Called with mu held.
func (s *Spool) setBytes(n int64) {
	s.bytes = n
	s.bytesNow.Store(n)
}

// Bytes is Stats().Bytes without taking the spool's lock: cheap enough
// for every request.
func (s *Spool) Bytes() int64 { return s.bytesNow.Load() }

// Dir is the spool's directory.
func (s *Spool) Dir() string { return s.o.Dir }

// Stats is what a spool holds and has done since it was opened.
type Stats struct {
	Rows     int64     // records not acknowledged
	Bytes    int64     // their bytes on disk, frame headers included
	Oldest   time.Time // append time of the oldest of them; zero when none
	Appended uint64    // records appended since Open
	Acked    uint64    // records acknowledged since Open
	Corrupt  uint64    // damaged frames found (each ends its segment's readable part)
	Segments int       // segment files
}

// Stats returns the spool's counters.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Rows: s.rows, Bytes: s.bytes, Appended: s.appended, Acked: s.acked, Corrupt: s.corrupt, Segments: len(s.segs)}
	if s.rows > 0 && s.oldest != 0 {
		st.Oldest = time.Unix(0, s.oldest)
	}
	return st
}

// Close makes what was appended durable, writes the cursor and releases
// the directory. Records not acknowledged stay for the next Open. Calls
// after the first return nil; a Read waiting returns ErrClosed.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.quit)
	<-s.syncDone
	s.r.mu.Lock() // no Read or Ack in progress from here on
	defer s.r.mu.Unlock()
	s.r.close()
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if e := s.cur.Sync(); e != nil {
		err = fmt.Errorf("spool: syncing %s: %w", s.cur.Name(), e)
	}
	err = errors.Join(err, s.cur.Close(), writeCursor(s.o.Dir, s.cursor), syncDir(s.o.Dir))
	for _, r := range s.retired {
		r.Close()
	}
	s.retired = nil
	return errors.Join(err, s.lock.Close())
}
