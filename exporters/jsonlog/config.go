package jsonlog

import "github.com/spendguard/spendguard/exporters/sink"

// Config is the `exporters.log` section.
type Config struct {
	// Path is stdout, stderr, or a file that lines are appended to
	// (created with mode 0640 if missing). Required.
	Path string `yaml:"path"`
}

// Validate returns every problem of c.
func (c Config) Validate() []sink.FieldError {
	if c.Path == "" {
		return []sink.FieldError{{Field: "path", Msg: "is required: stdout, stderr or a file path"}}
	}
	return nil
}
