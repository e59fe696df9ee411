package postgres

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"gopkg.in/yaml.v3"
)

// SpoolConfig is `exporters.postgres.spool`: the local disk spool every
// ledger row is written to before its request is answered, and shipped
// from to PostgreSQL (docs/ledger.md).
type SpoolConfig struct {
	// Dir is the spool's directory (default: spendguard-spool-<hash of
	// the ledger's host, port, database and user> in the OS temp
	// directory). Each process uses a numbered subdirectory of it, the
	// lowest no other running process holds.
	Dir string `yaml:"dir"`
	// MaxBytes is how much the spool may hold before OnFull applies
	// (default 1GiB).
	MaxBytes Size `yaml:"max_bytes"`
	// OnFull is what happens when the spool holds MaxBytes or the disk
	// refuses writes: "refuse" (default) answers new requests 503 until
	// it has room; "drop" serves them and drops their rows, counted.
	OnFull string `yaml:"on_full"`
	// FsyncInterval is the longest a written row waits for its group
	// commit (default 10ms); FsyncRows starts one at once (default 256).
	FsyncInterval time.Duration `yaml:"fsync_interval"`
	FsyncRows     int           `yaml:"fsync_rows"`
	// SegmentBytes is the size of the spool's files (default 16MiB).
	SegmentBytes Size `yaml:"segment_bytes"`
}

// The spool's policies when full.
const (
	OnFullRefuse = "refuse"
	OnFullDrop   = "drop"
)

// Defaults of SpoolConfig.
const (
	DefaultSpoolMaxBytes     = Size(1 << 30)
	DefaultSpoolSegmentBytes = Size(16 << 20)
	DefaultFsyncInterval     = 10 * time.Millisecond
	DefaultFsyncRows         = 256
)

func (c SpoolConfig) validate(bad func(field, format string, args ...any)) {
	if c.MaxBytes < 0 {
		bad("spool.max_bytes", "must not be negative")
	} else if c.MaxBytes != 0 && c.MaxBytes < 1<<20 {
		bad("spool.max_bytes", "must be at least 1MiB (got %s)", c.MaxBytes)
	}
	if c.SegmentBytes < 0 || (c.SegmentBytes != 0 && (c.SegmentBytes < 64<<10 || c.SegmentBytes > 1<<30)) {
		bad("spool.segment_bytes", "must be between 64KiB and 1GiB (got %s)", c.SegmentBytes)
	}
	switch c.OnFull {
	case "", OnFullRefuse, OnFullDrop:
	default:
		bad("spool.on_full", "must be refuse or drop (got %q)", c.OnFull)
	}
	if c.FsyncInterval < 0 || c.FsyncInterval > time.Second {
		bad("spool.fsync_interval", "must be between 0 and 1s (got %s)", c.FsyncInterval)
	}
	if c.FsyncRows < 0 {
		bad("spool.fsync_rows", "must not be negative (got %d)", c.FsyncRows)
	}
}

func (c SpoolConfig) withDefaults(dsn string) SpoolConfig {
	if c.Dir == "" {
		c.Dir = DefaultSpoolDir(dsn)
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultSpoolMaxBytes
	}
	if c.SegmentBytes == 0 {
		c.SegmentBytes = DefaultSpoolSegmentBytes
	}
	if c.OnFull == "" {
		c.OnFull = OnFullRefuse
	}
	if c.FsyncInterval == 0 {
		c.FsyncInterval = DefaultFsyncInterval
	}
	if c.FsyncRows == 0 {
		c.FsyncRows = DefaultFsyncRows
	}
	return c
}

// DefaultSpoolDir is the spool directory used when none is configured:
// one per ledger (host, port, database and user; never the password), so
// that spendguards writing to different ledgers on one machine never
// ship each other's rows.
func DefaultSpoolDir(dsn string) string {
	sum := sha256.Sum256([]byte(ledgerIdentity(dsn)))
	return filepath.Join(os.TempDir(), "spendguard-spool-"+hex.EncodeToString(sum[:6]))
}

// ledgerIdentity names the database a DSN writes to, without secrets.
func ledgerIdentity(dsn string) string {
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return dsn
	}
	return fmt.Sprintf("%s@%s", pc.ConnConfig.User, where(pc))
}

// Size is a number of bytes, written in the file as an integer or with a
// binary unit: 512KiB, 64MiB, 1GiB (KB, MB and GB are the same powers of
// 1024, as operators usually mean them for disk sizes).
type Size int64

// UnmarshalYAML reads an integer or a number with a unit.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*s = v
	return nil
}

// ParseSize parses "1073741824", "1GiB", "512MiB", "64KiB" (also KB, MB,
// GB, K, M, G, B; case does not matter).
func ParseSize(text string) (Size, error) {
	t := strings.TrimSpace(text)
	num := strings.TrimRightFunc(t, func(r rune) bool { return r < '0' || r > '9' })
	unit := strings.ToLower(strings.TrimSpace(t[len(num):]))
	mult := map[string]int64{"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
		"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
		"t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40}[unit]
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || num[0] == '+' || mult == 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size (bytes, or a number with KiB, MiB or GiB)", text)
	}
	return Size(n * mult), nil
}

// String writes s with the largest binary unit that divides it.
func (s Size) String() string {
	for _, u := range []struct {
		name string
		n    int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if s != 0 && int64(s)%u.n == 0 {
			return strconv.FormatInt(int64(s)/u.n, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10) + "B"
}
