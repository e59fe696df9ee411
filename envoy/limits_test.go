package envoy_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/cmd/spendguard/app"
	"github.com/spendguard/spendguard/envoy"
	"github.com/spendguard/spendguard/envoy/envoytest"
)

// shippedBootstraps are every Envoy bootstrap shipped with spendguard, by
// path from the module root.
var shippedBootstraps = []string{
	"envoy/envoy.yaml",
	"envoy/envoy-jwt.yaml",
	"envoy/compose/envoy/envoy.yaml",
	"envoy/kubernetes/base/envoy.yaml",
}

// meteredListener is a listener whose connection manager runs ext_proc.
type meteredListener struct {
	listener *listenerv3.Listener
	hcm      *hcmv3.HttpConnectionManager
}

// meteredListeners parses a shipped bootstrap and returns its listeners
// that send requests to spendguard.
func meteredListeners(t *testing.T, path string) []meteredListener {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(envoytest.Root(t), path))
	require.NoError(t, err)
	b, err := envoy.ParseBootstrapYAML(data)
	require.NoError(t, err)
	return metered(t, b)
}

func metered(t *testing.T, b *bootstrapv3.Bootstrap) []meteredListener {
	t.Helper()
	var out []meteredListener
	for _, l := range b.GetStaticResources().GetListeners() {
		hcm := envoytest.HCM(t, l)
		for _, f := range hcm.GetHttpFilters() {
			if f.GetName() == envoytest.ExtProcFilter {
				out = append(out, meteredListener{l, hcm})
			}
		}
	}
	require.NotEmpty(t, out, "no listener runs ext_proc")
	return out
}

// TestGRPCLimitCoversEnvoyBuffer keeps spendguard's default gRPC receive
// limit (--grpc-max-message-bytes) at least the largest request body each
// shipped Envoy bootstrap buffers plus the ext_proc envelope: otherwise a
// body Envoy accepted ends in RESOURCE_EXHAUSTED and a 500 for the client.
func TestGRPCLimitCoversEnvoyBuffer(t *testing.T) {
	ref := meteredListeners(t, "envoy/envoy.yaml")
	assert.Equal(t, app.EnvoyBufferLimit, envoytest.RequestBufferLimit(ref[0].listener, ref[0].hcm),
		"app.EnvoyBufferLimit must be envoy/envoy.yaml's per_connection_buffer_limit_bytes")
	for _, path := range shippedBootstraps {
		t.Run(path, func(t *testing.T) {
			for _, m := range meteredListeners(t, path) {
				limit := envoytest.RequestBufferLimit(m.listener, m.hcm)
				assert.LessOrEqual(t, limit+app.GRPCHeadroom, app.DefaultGRPCMaxMessageBytes,
					"listener %q buffers request bodies up to %d bytes: raise app.EnvoyBufferLimit (spendguard's default --grpc-max-message-bytes) with it",
					m.listener.GetName(), limit)

				// A request_headers message carries the headers: at most
				// max_request_headers_kb (60 KiB by default), names and
				// values with their framing well under twice that.
				headersKB := 60
				if v := m.hcm.GetMaxRequestHeadersKb(); v != nil {
					headersKB = int(v.GetValue())
				}
				assert.LessOrEqual(t, 2*headersKB<<10, app.GRPCHeadroom,
					"listener %q accepts %d KiB of request headers: more than the gRPC headroom covers", m.listener.GetName(), headersKB)

				// Answers go back unbounded unless Envoy's gRPC client
				// sets a receive limit; one below spendguard's would
				// refuse a rewritten body.
				ep := envoytest.ExtProc(t, m.hcm)
				if v := ep.GetGrpcService().GetEnvoyGrpc().GetMaxReceiveMessageLength(); v != nil && v.GetValue() != 0 {
					assert.GreaterOrEqual(t, int(v.GetValue()), app.DefaultGRPCMaxMessageBytes,
						"envoy_grpc.max_receive_message_length is below what spendguard may answer")
				}
			}
		})
	}
}

// TestOverLimitBodyGetsEachAPIsError checks that every shipped bootstrap
// turns Envoy's own 413 for a body over the buffer limit into the JSON
// error shape of the request's API, naming that limit in the message:
// Anthropic's on /v1/messages (first mapper: status 413 and :path, which
// Envoy reads from the request headers), OpenAI's everywhere else (second
// mapper: status 413 only). No other status is rewritten, so spendguard's
// own replies keep their bodies. The envoysim and e2e tests run the same
// mappers on real requests.
func TestOverLimitBodyGetsEachAPIsError(t *testing.T) {
	for _, path := range shippedBootstraps {
		t.Run(path, func(t *testing.T) {
			for _, m := range meteredListeners(t, path) {
				lrc := m.hcm.GetLocalReplyConfig()
				require.NotNil(t, lrc, "listener %q has no local_reply_config", m.listener.GetName())
				assert.Nil(t, lrc.GetBodyFormat(), "a config-wide body_format would rewrite spendguard's own replies too")
				require.Len(t, lrc.GetMappers(), 2)
				limit := strconv.Itoa(envoytest.RequestBufferLimit(m.listener, m.hcm)) + " bytes"

				anth := lrc.GetMappers()[0]
				conds := anth.GetFilter().GetAndFilter().GetFilters()
				require.Len(t, conds, 2, "the Anthropic mapper is status AND path")
				assert413(t, conds[0])
				hm := conds[1].GetHeaderFilter().GetHeader()
				require.NotNil(t, hm, "the second condition must be a header_filter")
				assert.Equal(t, ":path", hm.GetName())
				assert.False(t, hm.GetInvertMatch())
				re := hm.GetStringMatch().GetSafeRegex().GetRegex()
				require.NotEmpty(t, re, ":path must be matched by string_match.safe_regex")
				full := regexp.MustCompile(`^(?:` + re + `)$`) // Envoy's safe_regex matches the whole value
				for _, p := range []string{"/v1/messages", "/v1/messages?beta=true", "/v1/messages/count_tokens"} {
					assert.True(t, full.MatchString(p), "%s must get Anthropic's shape", p)
				}
				for _, p := range []string{"/v1/chat/completions", "/v1/messagesx", "/v2/v1/messages", "/v1/responses?x=/v1/messages", ""} {
					assert.False(t, full.MatchString(p), "%q must keep OpenAI's shape", p)
				}
				assert.Nil(t, anth.GetStatusCode(), "the status stays 413")
				var a struct {
					Type  string
					Error struct{ Type, Message string }
				}
				jsonBody(t, anth, &a)
				assert.Equal(t, "error", a.Type)
				assert.Equal(t, "request_too_large", a.Error.Type, "Anthropic's documented type for a 413")
				assert.Contains(t, a.Error.Message, limit, "the message must name the listener's buffer limit")

				oai := lrc.GetMappers()[1]
				assert413(t, oai.GetFilter())
				assert.Nil(t, oai.GetStatusCode(), "the status stays 413")
				var o struct {
					Error struct{ Message, Type, Code string }
				}
				jsonBody(t, oai, &o)
				assert.Equal(t, "invalid_request_error", o.Error.Type)
				assert.Equal(t, "request_too_large", o.Error.Code)
				assert.Contains(t, o.Error.Message, limit, "the message must name the listener's buffer limit")
			}
		})
	}
}

// assert413 checks a filter is status_code_filter EQ 413.
func assert413(t *testing.T, f *accesslogv3.AccessLogFilter) {
	t.Helper()
	cmp := f.GetStatusCodeFilter().GetComparison()
	require.NotNil(t, cmp, "the mapper must filter on the status code")
	assert.Equal(t, accesslogv3.ComparisonFilter_EQ, cmp.GetOp())
	assert.EqualValues(t, 413, cmp.GetValue().GetDefaultValue())
}

// jsonBody decodes a mapper's json_format body into v.
func jsonBody(t *testing.T, mp *hcmv3.ResponseMapper, v any) {
	t.Helper()
	f := mp.GetBodyFormatOverride()
	require.NotNil(t, f.GetJsonFormat(), "the 413 body must be JSON")
	assert.Equal(t, "application/json", f.GetContentType())
	raw, err := json.Marshal(f.GetJsonFormat().AsMap())
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, v))
}

// TestLocalReplyConfigIsValidated shows that the offline validation reaches
// the local_reply_config inside the connection manager's Any: a status
// filter without the value Envoy requires is refused.
func TestLocalReplyConfigIsValidated(t *testing.T) {
	require.NoError(t, envoy.ValidateBootstrapYAML(envoy.BootstrapYAML))
	const value = "\n                    value: { default_value: 413, runtime_key: spendguard.local_reply.request_too_large }"
	require.Contains(t, string(envoy.BootstrapYAML), value)
	broken := strings.Replace(string(envoy.BootstrapYAML), value, "", 1)
	err := envoy.ValidateBootstrapYAML([]byte(broken))
	require.ErrorIs(t, err, envoy.ErrConstraint)
	assert.Contains(t, err.Error(), "LocalReplyConfig")
}
