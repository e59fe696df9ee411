package memstore

import (
	"bufio"
	"bytes"
	"container/heap"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/internal/money"
)

// A snapshot file is one header line with the SHA-256 of the body, then the
// body: JSON with every counter's committed amount and period end, and
// every live reservation, the parked records and the learned output
// estimates' samples. Reserved amounts are rebuilt from the
// reservations when the file is read, so they always agree.
const snapshotMagic = "spendguard-memory-snapshot v1 sha256:"

type snapshotBody struct {
	WrittenAt    time.Time             `json:"written_at"`
	Counters     []snapshotCounter     `json:"counters"`
	Reservations []snapshotReservation `json:"reservations"`
	// Parked are the budget.Parker records (background responses waiting
	// for their result); absent when there are none.
	Parked []snapshotParked `json:"parked,omitempty"`
	// Samples are the estimate.Samples lists (learned output estimates)
	// by key; absent when there are none, and in files written before
	// they existed.
	Samples map[string][]int64 `json:"samples,omitempty"`
}

type snapshotParked struct {
	Key      string    `json:"key"`
	Record   []byte    `json:"record"` // base64 in the JSON
	Deadline time.Time `json:"deadline"`
}

type snapshotCounter struct {
	Key       string     `json:"key"`
	Committed money.Nano `json:"committed"`
	Expires   *time.Time `json:"expires,omitempty"` // nil: never (total)
}

type snapshotReservation struct {
	ID      string     `json:"id"`
	Keys    []string   `json:"keys"`
	Amount  money.Nano `json:"amount"`
	Expires time.Time  `json:"expires"`
}

// ErrCorruptSnapshot marks a snapshot file that cannot be trusted: cut
// short, edited, or not a snapshot at all.
var ErrCorruptSnapshot = errors.New("corrupt memory-store snapshot")

// WriteSnapshot writes the store's state to path so that a crash at any
// moment leaves either the previous file or the new one, never a mix: it
// writes a temporary file in the same directory, fsyncs it, renames it over
// path and fsyncs the directory. The store is locked only while its state
// is copied.
func (m *Store) WriteSnapshot(path string, now time.Time) error {
	body := m.export(now)
	data, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", path, err)
	}
	sum := sha256.Sum256(data)
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	w := bufio.NewWriter(tmp)
	fmt.Fprintf(w, "%s%s\n", snapshotMagic, hex.EncodeToString(sum[:]))
	w.Write(data)
	w.WriteByte('\n')
	err = errors.Join(w.Flush(), tmp.Sync(), tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// export copies the state, sorted so that equal states give equal files.
func (m *Store) export(now time.Time) snapshotBody {
	m.mu.Lock()
	m.sweep(now)
	b := snapshotBody{
		WrittenAt:    now.UTC(),
		Counters:     make([]snapshotCounter, 0, len(m.counters)),
		Reservations: make([]snapshotReservation, 0, len(m.live)),
	}
	for k, c := range m.counters {
		sc := snapshotCounter{Key: k, Committed: c.Committed}
		if !c.expires.IsZero() {
			e := c.expires.UTC()
			sc.Expires = &e
		}
		b.Counters = append(b.Counters, sc)
	}
	for _, r := range m.live {
		b.Reservations = append(b.Reservations, snapshotReservation{
			ID: r.id, Keys: append([]string(nil), r.keys...), Amount: r.amount, Expires: r.expires.UTC(),
		})
	}
	m.mu.Unlock()
	m.parking.mu.Lock()
	for k, r := range m.parking.records {
		b.Parked = append(b.Parked, snapshotParked{Key: k, Record: r.record, Deadline: r.deadline.UTC()})
	}
	m.parking.mu.Unlock()
	b.Samples = m.exportSamples()
	sort.Slice(b.Parked, func(i, j int) bool { return b.Parked[i].Key < b.Parked[j].Key })
	sort.Slice(b.Counters, func(i, j int) bool { return b.Counters[i].Key < b.Counters[j].Key })
	sort.Slice(b.Reservations, func(i, j int) bool { return b.Reservations[i].ID < b.Reservations[j].ID })
	return b
}

// Load returns a Store holding the state of the snapshot at path, or an
// empty one when no file exists there. Any other problem (unreadable, cut
// short, edited, negative amounts) is an error wrapping ErrCorruptSnapshot
// or the read error: spend is never silently dropped.
func Load(path string) (*Store, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return New(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", path, err)
	}
	m, err := parseSnapshot(data)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w: %v; move the file away to start with empty counters", path, ErrCorruptSnapshot, err)
	}
	return m, nil
}

func parseSnapshot(data []byte) (*Store, error) {
	header, body, ok := bytes.Cut(data, []byte("\n"))
	if !ok || !bytes.HasPrefix(header, []byte(snapshotMagic)) {
		return nil, errors.New("no snapshot header")
	}
	want, err := hex.DecodeString(string(header[len(snapshotMagic):]))
	body = bytes.TrimSuffix(body, []byte("\n"))
	if sum := sha256.Sum256(body); err != nil || !bytes.Equal(want, sum[:]) {
		return nil, errors.New("checksum mismatch (the file was cut short or changed)")
	}
	var b snapshotBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return nil, err
	}
	m := New()
	for _, c := range b.Counters {
		if c.Committed < 0 {
			return nil, fmt.Errorf("counter %q: negative amount", c.Key)
		}
		it := budget.Item{Key: c.Key}
		if c.Expires != nil {
			it.Expires = *c.Expires
		}
		m.counter(it).Committed = c.Committed
	}
	for _, r := range b.Reservations {
		if r.Amount < 0 || r.ID == "" || m.live[r.ID] != nil {
			return nil, fmt.Errorf("reservation %q: invalid or duplicate", r.ID)
		}
		res := &memReservation{id: r.ID, keys: r.Keys, amount: r.Amount, expires: r.Expires}
		for _, k := range r.Keys {
			c := m.counters[k]
			if c == nil {
				return nil, fmt.Errorf("reservation %q: unknown counter %q", r.ID, k)
			}
			c.Reserved = money.Add(c.Reserved, r.Amount)
			res.counters = append(res.counters, c)
		}
		m.live[r.ID] = res
		heap.Push(&m.queue, res)
	}
	for _, p := range b.Parked {
		if p.Key == "" || p.Record == nil || m.parking.records[p.Key].record != nil {
			return nil, fmt.Errorf("parked record %q: invalid or duplicate", p.Key)
		}
		if m.parking.records == nil {
			m.parking.records = map[string]parkedRecord{}
		}
		m.parking.records[p.Key] = parkedRecord{record: p.Record, deadline: p.Deadline}
	}
	if err := m.importSamples(b.Samples); err != nil {
		return nil, err
	}
	return m, nil
}
