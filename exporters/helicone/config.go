package helicone

import (
	"fmt"

	"github.com/spendguard/spendguard/exporters/sink"
)

// DefaultEndpoint is Helicone's custom-model logging endpoint.
const DefaultEndpoint = "https://api.worker.helicone.ai/custom/v1/log"

// Config is the `exporters.helicone` section.
type Config struct {
	// Endpoint defaults to DefaultEndpoint (set it for self-hosted Helicone).
	Endpoint string `yaml:"endpoint"`
	// APIKey is sent as "Authorization: Bearer <api_key>". Required; never
	// logged.
	APIKey string `yaml:"api_key"`
	// UserDimension is the dimension sent as Helicone-User-Id (default user).
	UserDimension string `yaml:"user_dimension"`
	// Concurrency is how many logs are sent at once (default 4): Helicone
	// takes one request per call.
	Concurrency int `yaml:"concurrency"`
	// MaxRequestBytes caps the request JSON logged per request (default
	// 1 MiB); a larger body is replaced by a stub naming its model and
	// size. It bounds the exporter's memory to about queue_size times this.
	MaxRequestBytes int `yaml:"max_request_bytes"`
	// MaxQueueBytes caps the request and response bodies held in the
	// exporter's queue (default 256 MiB); past it reports are dropped
	// and counted like on a full queue.
	MaxQueueBytes int64 `yaml:"max_queue_bytes"`
}

// WithDefaults returns c with the defaults filled in.
func (c Config) WithDefaults() Config {
	if c.Endpoint == "" {
		c.Endpoint = DefaultEndpoint
	}
	if c.UserDimension == "" {
		c.UserDimension = "user"
	}
	if c.Concurrency == 0 {
		c.Concurrency = 4
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = 1 << 20
	}
	if c.MaxQueueBytes == 0 {
		c.MaxQueueBytes = 256 << 20
	}
	return c
}

// Validate returns every problem of c.
func (c Config) Validate() []sink.FieldError {
	var out []sink.FieldError
	if c.Endpoint != "" {
		if msg := sink.CheckURL(c.Endpoint); msg != "" {
			out = append(out, sink.FieldError{Field: "endpoint", Msg: msg})
		}
	}
	if c.APIKey == "" {
		out = append(out, sink.FieldError{Field: "api_key", Msg: "is required (is its environment variable set?)"})
	}
	if c.Concurrency < 0 || c.Concurrency > 64 {
		out = append(out, sink.FieldError{Field: "concurrency", Msg: fmt.Sprintf("must be between 1 and 64 (got %d)", c.Concurrency)})
	}
	if c.MaxRequestBytes < 0 || c.MaxRequestBytes > 10<<20 {
		out = append(out, sink.FieldError{Field: "max_request_bytes", Msg: "must be between 1 and 10485760 (Helicone refuses logs over 10 MB)"})
	}
	if c.MaxQueueBytes < 0 {
		out = append(out, sink.FieldError{Field: "max_queue_bytes", Msg: "must not be negative"})
	}
	return out
}
