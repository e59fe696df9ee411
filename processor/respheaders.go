package processor

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/spendguard/spendguard/pricing"
	"github.com/spendguard/spendguard/processor/usage"
)

// responseUsage is what the response headers say about the usage of a
// body that is not scanned.
type responseUsage struct {
	// binary: the body is application/octet-stream (vLLM's embeddings
	// with encoding_format "bytes" or "bytes_only"): it is not scanned,
	// its usage is the metadata header's or none.
	binary bool
	usage  pricing.Usage
	found  bool
	err    error
}

// metadataHeader is the response header in which vLLM sends the JSON
// metadata of a binary embeddings body: json.dumps({"id", "created",
// "model", "data", "usage"}), so the usage is its top-level usage member.
const metadataHeader = "metadata"

// readMetadataHeader reads the usage of a binary body from the metadata
// header (the first one): the same rules as for a JSON body, read by a
// JSONScanner. Without the header ("bytes_only") no usage is reported
// and the request is charged the estimate, marked estimated.
func (st *stream) readMetadataHeader(hm *corev3.HeaderMap) {
	h := findHeader(hm, metadataHeader)
	if h == nil {
		return
	}
	s := jsonScanners.Get().(*usage.JSONScanner)
	s.Reset()
	s.Write(headerBytes(h))
	st.respUsage.usage, st.respUsage.found, st.respUsage.err = s.Result()
	if st.respUsage.found {
		st.reasoning = s.Details().Reasoning
	}
	jsonScanners.Put(s)
}
