package envoysim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// localReplyRules is the connection manager's local_reply_config, checked
// by New: Envoy applies it to every reply it makes itself (its own 413 and
// 503, the ext_proc filter's error replies and ImmediateResponses) before
// the reply goes out. The first mapper whose filter matches may rewrite
// the status and the body; then the mapper's body_format_override, or else
// the config's body_format, formats the body and sets its content type.
//
// envoysim reproduces the part of the API spendguard's envoy.yaml can use
// and New refuses the rest: mapper filters are status_code_filter,
// and_filter, or_filter and header_filter (string matchers, evaluated
// against the request headers, as Envoy does: see compileFilter);
// headers_to_add is not supported; formats are text_format or json_format
// whose only command operators are %LOCAL_REPLY_BODY% and (text only)
// %RESPONSE_CODE%;
// json_format values are strings, numbers, lists and nested objects, as
// Envoy accepts. A JSON body is rendered with its keys sorted (Envoy's
// order may differ; JSON readers do not care) and ends with a newline, as
// Envoy's JSON formatter does.
type localReplyRules struct {
	mappers []replyMapper
	format  *replyFormat // config-wide body_format, nil when unset
}

type replyMapper struct {
	match  replyFilter
	status int     // 0: keep
	body   *string // nil: keep
	format *replyFormat
}

type replyFormat struct {
	text        string           // text_format
	json        *structpb.Struct // json_format, when set
	contentType string
}

// compileLocalReply checks a LocalReplyConfig against what envoysim
// reproduces; nil compiles to no rules.
func compileLocalReply(c *hcmv3.LocalReplyConfig) (*localReplyRules, error) {
	if c == nil {
		return nil, nil
	}
	var errs []error
	r := &localReplyRules{}
	for i, m := range c.GetMappers() {
		rm, err := compileMapper(m)
		if err != nil {
			errs = append(errs, fmt.Errorf("envoysim: local_reply_config.mappers[%d]: %w", i, err))
			continue
		}
		r.mappers = append(r.mappers, rm)
	}
	if c.GetBodyFormat() != nil {
		f, err := compileFormat(c.GetBodyFormat())
		if err != nil {
			errs = append(errs, fmt.Errorf("envoysim: local_reply_config.body_format: %w", err))
		}
		r.format = f
	}
	return r, errors.Join(errs...)
}

func compileMapper(m *hcmv3.ResponseMapper) (replyMapper, error) {
	var rm replyMapper
	if m.GetFilter() == nil {
		return rm, errors.New("filter is required")
	}
	match, err := compileFilter(m.GetFilter())
	if err != nil {
		return rm, fmt.Errorf("filter: %w", err)
	}
	rm.match = match
	if len(m.GetHeadersToAdd()) > 0 {
		return rm, errors.New("headers_to_add is not supported by envoysim")
	}
	if m.GetStatusCode() != nil {
		rm.status = int(m.GetStatusCode().GetValue())
	}
	if b := m.GetBody(); b != nil {
		var s string
		switch b.GetSpecifier().(type) {
		case *corev3.DataSource_InlineString:
			s = b.GetInlineString()
		case *corev3.DataSource_InlineBytes:
			s = string(b.GetInlineBytes())
		default:
			return rm, errors.New("body: only inline_string and inline_bytes are supported by envoysim")
		}
		rm.body = &s
	}
	if m.GetBodyFormatOverride() != nil {
		f, err := compileFormat(m.GetBodyFormatOverride())
		if err != nil {
			return rm, fmt.Errorf("body_format_override: %w", err)
		}
		rm.format = f
	}
	return rm, nil
}

func compileFormat(sf *corev3.SubstitutionFormatString) (*replyFormat, error) {
	if len(sf.GetFormatters()) > 0 || sf.GetOmitEmptyValues() || sf.GetJsonFormatOptions() != nil {
		return nil, errors.New("formatters, omit_empty_values and json_format_options are not supported by envoysim")
	}
	f := &replyFormat{contentType: sf.GetContentType()}
	switch v := sf.GetFormat().(type) {
	case *corev3.SubstitutionFormatString_TextFormat:
		f.text = v.TextFormat
		if f.contentType == "" {
			f.contentType = "text/plain"
		}
		return f, checkOperators(f.text, textOperators)
	case *corev3.SubstitutionFormatString_JsonFormat:
		f.json = v.JsonFormat
		if f.contentType == "" {
			f.contentType = "application/json"
		}
		return f, checkJSONFormat(structpb.NewStructValue(v.JsonFormat))
	default:
		return nil, errors.New("only text_format and json_format are supported by envoysim")
	}
}

// The command operators envoysim substitutes. In json_format only the
// body is: a lone %RESPONSE_CODE% there may keep its type in Envoy.
var (
	textOperators = []string{"%LOCAL_REPLY_BODY%", "%RESPONSE_CODE%"}
	jsonOperators = []string{"%LOCAL_REPLY_BODY%"}
)

// checkOperators refuses a format string with any other command operator.
func checkOperators(s string, allowed []string) error {
	for _, op := range allowed {
		s = strings.ReplaceAll(s, op, "")
	}
	if strings.Contains(s, "%") {
		return fmt.Errorf("command operators other than %s are not supported by envoysim", strings.Join(allowed, " and "))
	}
	return nil
}

func checkJSONFormat(v *structpb.Value) error {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return checkOperators(k.StringValue, jsonOperators)
	case *structpb.Value_NumberValue:
		return nil
	case *structpb.Value_StructValue:
		for _, f := range k.StructValue.GetFields() {
			if err := checkJSONFormat(f); err != nil {
				return err
			}
		}
		return nil
	case *structpb.Value_ListValue:
		for _, f := range k.ListValue.GetValues() {
			if err := checkJSONFormat(f); err != nil {
				return err
			}
		}
		return nil
	}
	return errors.New("json_format values must be strings, numbers, lists or objects (Envoy refuses others)")
}

// rewrite applies the rules to a local reply to a request whose headers
// are req (nil before any were decoded: Envoy then evaluates against an
// empty map). contentType is "" when the body was not formatted (the
// reply keeps its own content type).
func (r *localReplyRules) rewrite(req headerList, code int, body []byte) (int, []byte, string) {
	if r == nil {
		return code, body, ""
	}
	format := r.format
	for _, m := range r.mappers {
		if !m.match(code, req) {
			continue
		}
		if m.status != 0 {
			code = m.status
		}
		if m.body != nil {
			body = []byte(*m.body)
		}
		if m.format != nil {
			format = m.format
		}
		break
	}
	if format == nil {
		return code, body, ""
	}
	return code, format.render(code, string(body)), format.contentType
}

func (f *replyFormat) render(code int, body string) []byte {
	sub := strings.NewReplacer("%LOCAL_REPLY_BODY%", body, "%RESPONSE_CODE%", strconv.Itoa(code))
	if f.json == nil {
		return []byte(sub.Replace(f.text))
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(substituteJSON(f.json.AsMap(), sub)) // ends with "\n", as Envoy's
	return buf.Bytes()
}

func substituteJSON(v any, sub *strings.Replacer) any {
	switch x := v.(type) {
	case string:
		return sub.Replace(x)
	case map[string]any:
		for k, e := range x {
			x[k] = substituteJSON(e, sub)
		}
	case []any:
		for i, e := range x {
			x[i] = substituteJSON(e, sub)
		}
	}
	return v
}
