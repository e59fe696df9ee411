package processor_test

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/spendguard/spendguard/processor"
	"github.com/spendguard/spendguard/test/loadgen/workload"
)

// decodeBoth decodes b with protobuf and with the Codec.
func decodeBoth(b []byte) (want, got *extprocv3.ProcessingRequest, wantErr, gotErr error) {
	want, got = &extprocv3.ProcessingRequest{}, &extprocv3.ProcessingRequest{}
	wantErr = proto.Unmarshal(b, want)
	gotErr = processor.Codec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, got)
	return want, got, wantErr, gotErr
}

// decodeCases are messages in every shape the decoder takes or leaves to
// protobuf.
func decodeCases(t testing.TB) map[string][]byte {
	t.Helper()
	cases := map[string][]byte{}
	add := func(name string, m proto.Message) {
		b, err := proto.Marshal(m)
		require.NoError(t, err)
		cases[name] = b
	}
	for _, kind := range []workload.Kind{workload.JSON, workload.SSE} {
		for i, m := range workload.Messages(kind) {
			add(kind.String()+"/"+string(rune('a'+i%26)), m)
		}
	}
	meta, err := structpb.NewStruct(map[string]any{"sub": "user-7", "groups": []any{"a", "b"}})
	require.NoError(t, err)
	hv := func(kv ...string) *corev3.HeaderMap {
		m := &corev3.HeaderMap{}
		for i := 0; i+1 < len(kv); i += 2 {
			m.Headers = append(m.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
		}
		return m
	}
	add("everything around the headers", &extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
			Headers: hv(":path", "/v1/chat/completions", "x-tenant-id", "acme"), EndOfStream: true,
		}},
		MetadataContext:   &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"envoy.filters.http.jwt_authn": meta}},
		Attributes:        map[string]*structpb.Struct{"envoy.filters.http.ext_proc": meta},
		ObservabilityMode: true,
		ProtocolConfig:    &extprocv3.ProtocolConfiguration{RequestBodyMode: extprocfilterv3.ProcessingMode_BUFFERED},
	})
	add("value instead of raw value", &extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{
			Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
				{Key: ":status", Value: "200"}, {Key: "both", Value: "v", RawValue: []byte("r")}, {Key: "empty"}, {},
			}},
		}},
	})
	add("empty map", &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{}},
	}})
	add("no map", &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{EndOfStream: true},
	}})
	add("header attributes", &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: hv("a", "b"), Attributes: map[string]*structpb.Struct{"k": meta}},
	}})
	add("trailers", &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestTrailers{
		RequestTrailers: &extprocv3.HttpTrailers{Trailers: hv("grpc-status", "0")},
	}})
	add("nothing", &extprocv3.ProcessingRequest{})

	headers, err := proto.Marshal(&extprocv3.HttpHeaders{Headers: hv("x-a", "1")})
	require.NoError(t, err)
	body, err := proto.Marshal(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
		RequestBody: &extprocv3.HttpBody{Body: []byte("{}")},
	}})
	require.NoError(t, err)
	field := func(num protowire.Number, v []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
	}
	cases["headers twice"] = append(field(2, headers), field(2, headers)...)
	cases["body after the headers"] = append(field(2, headers), body...)
	cases["observability after the headers"] = protowire.AppendVarint(protowire.AppendTag(field(2, headers), 10, protowire.VarintType), 1)
	cases["unknown field in the headers"] = field(2, append(append([]byte(nil), headers...), protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 5)...))
	cases["unknown field at the top"] = append(field(2, headers), protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 5)...)
	cases["invalid UTF-8 key"] = field(2, field(1, field(1, field(1, []byte{'x', 0xff}))))
	cases["truncated"] = field(2, headers)[:len(headers)]
	cases["key twice"] = field(2, field(1, field(1, append(field(1, []byte("a")), field(1, []byte("b"))...))))
	return cases
}

func TestCodecDecodesAsProtobuf(t *testing.T) {
	for name, b := range decodeCases(t) {
		t.Run(name, func(t *testing.T) {
			want, got, wantErr, gotErr := decodeBoth(b)
			if wantErr != nil {
				assert.Error(t, gotErr)
				return
			}
			require.NoError(t, gotErr)
			assert.True(t, proto.Equal(want, got), "protobuf: %v\ncodec:    %v", want, got)
		})
	}
}

// The decoder is taken for the headers Envoy sends: a handful of objects
// where protobuf makes three per header.
func TestCodecDecodesHeadersInFewObjects(t *testing.T) {
	msgs := workload.Messages(workload.JSON)
	for _, m := range []*extprocv3.ProcessingRequest{msgs[0], msgs[2]} {
		n := len(m.GetRequestHeaders().GetHeaders().GetHeaders()) + len(m.GetResponseHeaders().GetHeaders().GetHeaders())
		require.Greater(t, n, 5)
		b, err := proto.Marshal(m)
		require.NoError(t, err)
		data := mem.BufferSlice{mem.SliceBuffer(b)}
		codec := testing.AllocsPerRun(20, func() {
			require.NoError(t, processor.Codec().Unmarshal(data, &extprocv3.ProcessingRequest{}))
		})
		plain := testing.AllocsPerRun(20, func() {
			require.NoError(t, proto.Unmarshal(b, &extprocv3.ProcessingRequest{}))
		})
		assert.LessOrEqual(t, codec, 12.0, "%d headers", n)
		assert.Greater(t, plain, float64(2*n), "%d headers", n)
	}
}

func FuzzCodecDecode(f *testing.F) {
	for _, b := range decodeCases(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want, got, wantErr, gotErr := decodeBoth(b)
		if (wantErr == nil) != (gotErr == nil) {
			t.Fatalf("protobuf: %v, codec: %v", wantErr, gotErr)
		}
		if wantErr == nil && !proto.Equal(want, got) {
			t.Fatalf("protobuf: %v\ncodec:    %v", want, got)
		}
	})
}

func BenchmarkCodecUnmarshal(b *testing.B) {
	msgs := workload.Messages(workload.JSON)
	msgs = append(msgs[:3], workload.Messages(workload.SSE)[3]) // and a token chunk
	for i, name := range []string{"request-headers", "request-body", "response-headers", "token-chunk"} {
		enc, err := proto.Marshal(msgs[i])
		require.NoError(b, err)
		data := mem.BufferSlice{mem.SliceBuffer(enc)}
		b.Run(name+"/proto", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := proto.Unmarshal(enc, &extprocv3.ProcessingRequest{}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/spendguard", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := processor.Codec().Unmarshal(data, &extprocv3.ProcessingRequest{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
