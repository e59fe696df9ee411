package postgres

import (
	"encoding/binary"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
)

// A spooled row is a version byte, the serving instance's id (uvarint
// length, bytes) and the CostReport in protobuf. The instance travels
// with each row because a spool directory outlives its process: the next
// process on it ships what the last one left, under the last one's name.
const envelopeV1 = 1

// maxInstance bounds an instance id in a spooled row.
const maxInstance = 256

// encodeRow is the spool record of a report served by instance.
func encodeRow(instance string, rep *spendguardv1.CostReport) ([]byte, error) {
	if len(instance) > maxInstance {
		return nil, fmt.Errorf("ledger: instance id longer than %d bytes", maxInstance)
	}
	// A row is a few hundred bytes: room for it up front, rather than a
	// proto.Size pass that walks the report once more.
	b := make([]byte, 0, 512+len(instance))
	b = append(b, envelopeV1)
	b = binary.AppendUvarint(b, uint64(len(instance)))
	b = append(b, instance...)
	return proto.MarshalOptions{}.MarshalAppend(b, rep)
}

var errEnvelope = errors.New("ledger: not a spooled row")

// decodeRow reads a spool record.
func decodeRow(b []byte) (string, *spendguardv1.CostReport, error) {
	if len(b) == 0 || b[0] != envelopeV1 {
		return "", nil, errEnvelope
	}
	n, k := binary.Uvarint(b[1:])
	if k <= 0 || n > maxInstance || uint64(len(b)-1-k) < n {
		return "", nil, errEnvelope
	}
	instance := string(b[1+k : 1+k+int(n)])
	rep := &spendguardv1.CostReport{}
	if err := proto.Unmarshal(b[1+k+int(n):], rep); err != nil {
		return "", nil, fmt.Errorf("ledger: spooled row: %w", err)
	}
	return instance, rep, nil
}
