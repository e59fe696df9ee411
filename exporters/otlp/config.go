package otlp

import (
	"fmt"

	"github.com/spendguard/spendguard/exporters/sink"
)

// Config is the `exporters.otlp` section.
type Config struct {
	// Endpoint is the full OTLP/HTTP traces URL, e.g.
	// https://cloud.langfuse.com/api/public/otel/v1/traces or
	// http://tempo:4318/v1/traces. Required; used as is (no path added).
	Endpoint string `yaml:"endpoint"`
	// Headers are sent with every export (Authorization,
	// x-langfuse-ingestion-version, ...). Values are secrets: never logged.
	Headers map[string]string `yaml:"headers"`
	// Compression is gzip (default) or none.
	Compression string `yaml:"compression"`
	// ServiceName is the resource's service.name (default spendguard).
	ServiceName string `yaml:"service_name"`
	// UserDimension is the dimension exported as user.id (default user);
	// SessionDimension the one exported as session.id (default none).
	UserDimension    string `yaml:"user_dimension"`
	SessionDimension string `yaml:"session_dimension"`
	// ProviderName is gen_ai.provider.name (default vllm).
	ProviderName string `yaml:"provider_name"`
}

// WithDefaults returns c with the defaults filled in.
func (c Config) WithDefaults() Config {
	if c.Compression == "" {
		c.Compression = "gzip"
	}
	if c.ServiceName == "" {
		c.ServiceName = "spendguard"
	}
	if c.UserDimension == "" {
		c.UserDimension = "user"
	}
	if c.ProviderName == "" {
		c.ProviderName = "vllm"
	}
	return c
}

// Validate returns every problem of c.
func (c Config) Validate() []sink.FieldError {
	var out []sink.FieldError
	if err := sink.CheckURL(c.Endpoint); err != "" {
		out = append(out, sink.FieldError{Field: "endpoint", Msg: err})
	}
	switch c.Compression {
	case "", "gzip", "none":
	default:
		out = append(out, sink.FieldError{Field: "compression", Msg: fmt.Sprintf("%q is neither gzip nor none", c.Compression)})
	}
	for k := range c.Headers {
		if k == "" {
			out = append(out, sink.FieldError{Field: "headers", Msg: "a header name is empty"})
		}
	}
	return out
}
