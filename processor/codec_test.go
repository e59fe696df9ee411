package processor

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/spendguard/spendguard/internal/money"
)

// marshalled is what the codec sends for v, in one slice.
func marshalled(t *testing.T, c encoding.CodecV2, v any) []byte {
	t.Helper()
	data, err := c.Marshal(v)
	require.NoError(t, err)
	defer data.Free()
	return data.Materialize()
}

func TestCodecSendsTheBytesProtobufWould(t *testing.T) {
	c := Codec()
	assert.Equal(t, grpcproto.Name, c.Name())
	det := proto.MarshalOptions{Deterministic: true}
	for _, r := range []*extprocv3.ProcessingResponse{
		answerFreePath, answerRequestHeaders, answerRequestBody, answerResponseHeaders, answerResponseBody,
		answerRequestTrailers, answerResponseTrailers, answerClearChunk,
		// Not shared: through the protobuf codec.
		unavailable("store down").immediate(),
		{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}},
	} {
		want, err := det.Marshal(r)
		require.NoError(t, err)
		for range 2 { // a shared answer's bytes are sent again unchanged
			assert.Equal(t, want, marshalled(t, c, r), "%v", r)
		}
	}

	// Received messages decode as with the protobuf codec.
	in := &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
		RequestBody: &extprocv3.HttpBody{Body: []byte(`{"model":"m"}`), EndOfStream: true},
	}}
	b, err := proto.Marshal(in)
	require.NoError(t, err)
	data, err := encoding.GetCodecV2(grpcproto.Name).Marshal(in)
	require.NoError(t, err)
	assert.Equal(t, b, data.Materialize())
	var out extprocv3.ProcessingRequest
	require.NoError(t, c.Unmarshal(data, &out))
	assert.True(t, proto.Equal(in, &out))
}

func TestCodecEncodesHeadersAnswersAsProtobufDoes(t *testing.T) {
	long := strings.Repeat("budget-name-", 20) // lengths past one varint byte
	cases := map[string]func(a *headersAnswer){
		"none": func(*headersAnswer) {},
		"remaining and budget": func(a *headersAnswer) {
			a.set(hdrRemaining, func(b []byte) []byte { return money.Nano(12_345_678).AppendFixed(b, 6) })
			a.setString(hdrBudget, "tenant-monthly")
		},
		"downgraded": func(a *headersAnswer) {
			a.set(hdrRemaining, func(b []byte) []byte { return money.Nano(0).AppendFixed(b, 6) })
			a.setString(hdrBudget, "team")
			a.setString(hdrDowngradedFrom, "meta-llama/Llama-3.1-70B-Instruct")
		},
		"values past the block": func(a *headersAnswer) {
			a.setString(hdrBudget, long)
			a.setString(hdrScope, long)
			a.setString(hdrDowngradedFrom, long)
			a.setString("x-extra", long) // a fourth: outside the block's arrays
		},
		"empty value and other actions": func(a *headersAnswer) {
			a.setString(hdrBudget, "")
			a.mut.SetHeaders = append(a.mut.SetHeaders, &corev3.HeaderValueOption{
				Header:       &corev3.HeaderValue{Key: "x-a", Value: "plain value"},
				AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
			}, &corev3.HeaderValueOption{
				Header:       &corev3.HeaderValue{Key: "x-b", RawValue: []byte("v")},
				AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS,
			})
		},
	}
	c := Codec()
	plain := encoding.GetCodecV2(grpcproto.Name)
	for name, fill := range cases {
		t.Run(name, func(t *testing.T) {
			a := newHeadersAnswer()
			defer putHeadersAnswer(a)
			fill(a)
			_, direct := a.encode()
			assert.True(t, direct, "encoded without the protobuf marshaller")
			want, err := proto.MarshalOptions{Deterministic: true}.Marshal(&a.resp)
			require.NoError(t, err)
			assert.Equal(t, want, marshalled(t, c, a))
			assert.Equal(t, want, marshalled(t, plain, a), "the block is a proto.Message for any codec")

			var back extprocv3.ProcessingResponse
			require.NoError(t, proto.Unmarshal(marshalled(t, c, a), &back))
			assert.True(t, proto.Equal(&a.resp, &back))
		})
	}
}

func TestCodecFallsBackForWhatItDoesNotEncode(t *testing.T) {
	for name, fill := range map[string]func(a *headersAnswer){
		"deprecated append": func(a *headersAnswer) {
			a.setString(hdrBudget, "b")
			a.mut.SetHeaders[0].Append = wrapperspb.Bool(true)
		},
		"removed header": func(a *headersAnswer) { a.mut.RemoveHeaders = []string{"x-gone"} },
		"clear route cache": func(a *headersAnswer) {
			a.setString(hdrBudget, "b")
			a.common.ClearRouteCache = true
		},
		"keep empty value": func(a *headersAnswer) {
			a.setString(hdrBudget, "")
			a.mut.SetHeaders[0].KeepEmptyValue = true
		},
	} {
		t.Run(name, func(t *testing.T) {
			a := newHeadersAnswer()
			defer putHeadersAnswer(a)
			fill(a)
			_, direct := a.encode()
			assert.False(t, direct)
			want, err := proto.MarshalOptions{Deterministic: true}.Marshal(&a.resp)
			require.NoError(t, err)
			assert.Equal(t, want, marshalled(t, Codec(), a))
		})
	}
}

// BenchmarkCodecMarshal is the encoding of a lifecycle's answers by gRPC's
// protobuf codec (the baseline) and by Codec: a shared answer, and the
// answer to the response headers with spendguard's two headers.
func BenchmarkCodecMarshal(b *testing.B) {
	headers := newHeadersAnswer()
	headers.set(hdrRemaining, func(b []byte) []byte { return money.Nano(123_456_789_000).AppendFixed(b, 6) })
	headers.setString(hdrBudget, "tenant-monthly")
	for _, c := range []struct {
		name  string
		codec encoding.CodecV2
	}{{"proto", encoding.GetCodecV2(grpcproto.Name)}, {"spendguard", Codec()}} {
		for _, m := range []struct {
			name string
			msg  any
		}{{"shared", answerResponseBody}, {"headers", headers}} {
			b.Run(m.name+"/"+c.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					data, err := c.codec.Marshal(m.msg)
					if err != nil {
						b.Fatal(err)
					}
					data.Free()
				}
			})
		}
	}
}
