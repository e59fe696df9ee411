package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"path/filepath"
	"strconv"
	"strings"
)

// magic opens every segment file; a file without it is not a segment.
const magic = "SGSPOOL1"

// headerSize is a frame's header: length (4), CRC-32C (4), append time in
// Unix nanoseconds (8).
const headerSize = 16

// MaxRecord is the largest payload Append takes. A ledger row is a few
// hundred bytes; a length past this in a header can only be damage.
const MaxRecord = 1 << 20

// ErrTooLarge is returned by Append for a payload over MaxRecord.
var ErrTooLarge = errors.New("spool: record larger than spool.MaxRecord")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendFrame appends the frame of payload, appended at unixNano, to dst.
func appendFrame(dst []byte, payload []byte, unixNano int64) []byte {
	var h [headerSize]byte
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint64(h[8:16], uint64(unixNano))
	crc := crc32.Update(crc32.Checksum(h[8:16], castagnoli), castagnoli, payload)
	binary.LittleEndian.PutUint32(h[4:8], crc)
	dst = append(dst, h[:]...)
	return append(dst, payload...)
}

// frameStatus is what parseFrame found at the start of a buffer.
type frameStatus int

const (
	frameOK      frameStatus = iota
	frameShort               // the buffer ends inside the frame: read more, or a torn tail
	frameCorrupt             // the header or checksum is wrong
)

// parseFrame reads the frame at the start of b: its payload (aliasing b),
// its append time and its whole length.
func parseFrame(b []byte) (payload []byte, unixNano int64, n int, st frameStatus) {
	if len(b) < headerSize {
		return nil, 0, 0, frameShort
	}
	size := binary.LittleEndian.Uint32(b[0:4])
	if size > MaxRecord {
		return nil, 0, 0, frameCorrupt
	}
	n = headerSize + int(size)
	if len(b) < n {
		return nil, 0, 0, frameShort
	}
	want := binary.LittleEndian.Uint32(b[4:8])
	payload = b[headerSize:n]
	if crc32.Update(crc32.Checksum(b[8:16], castagnoli), castagnoli, payload) != want {
		return nil, 0, 0, frameCorrupt
	}
	return payload, int64(binary.LittleEndian.Uint64(b[8:16])), n, frameOK
}

// segName is the file name of segment seq.
func segName(dir string, seq uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d.seg", seq))
}

// segSeq parses a segment's file name; false for any other file.
func segSeq(name string) (uint64, bool) {
	s, ok := strings.CutSuffix(name, ".seg")
	if !ok || len(s) != 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}
