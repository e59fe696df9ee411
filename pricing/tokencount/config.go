package tokencount

import (
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/spendguard/spendguard/internal/strictyaml"
)

// Defaults and bounds of the `pricing.tokenizer:` section.
const (
	DefaultTimeout      = 2 * time.Second
	DefaultQueue        = 256
	DefaultWorkers      = 4
	DefaultCacheEntries = 4096

	// MaxTimeout bounds timeout: a stream's settlement waits for its
	// count at most this long after the stream ended.
	MaxTimeout      = 30 * time.Second
	MaxQueue        = 65536
	MaxWorkers      = 256
	MaxCacheEntries = 1 << 20
)

// section is the path of the section in the file, for messages.
const section = "pricing.tokenizer"

// Config is the `pricing.tokenizer:` section as written. Zero numbers
// mean the defaults; the tokenizer is off while URL is empty.
type Config struct {
	// URL is the base URL of the vLLM server (http or https), such as
	// "http://vllm:8000"; counts are POSTed to URL + "/tokenize".
	URL string `yaml:"url"`
	// Timeout bounds one /tokenize call, and how long a stream's
	// settlement waits for its counts (DefaultTimeout).
	Timeout time.Duration `yaml:"timeout"`
	// Queue is how many calls may wait for a worker (DefaultQueue).
	Queue int `yaml:"queue"`
	// Workers is how many calls run at once (DefaultWorkers).
	Workers int `yaml:"workers"`
	// CacheEntries bounds the answers kept (DefaultCacheEntries).
	CacheEntries int `yaml:"cache_entries"`

	line       int             // of the section, 0 when not read from YAML
	keys       strictyaml.Keys // unknown keys and each key's line
	timeoutErr error           // a timeout that is not a duration
}

// file is Config's schema as decoded: the timeout is read from its text,
// so that a malformed one is reported with the section's other problems.
type file struct {
	URL          string    `yaml:"url"`
	Timeout      yaml.Node `yaml:"timeout"`
	Queue        int       `yaml:"queue"`
	Workers      int       `yaml:"workers"`
	CacheEntries int       `yaml:"cache_entries"`
}

// UnmarshalYAML decodes the section and remembers the line of each key;
// unknown keys and bad values are reported by Validate.
func (c *Config) UnmarshalYAML(n *yaml.Node) error {
	var f file
	if err := n.Decode(&f); err != nil {
		return err
	}
	*c = Config{URL: f.URL, Queue: f.Queue, Workers: f.Workers, CacheEntries: f.CacheEntries, line: n.Line}
	c.keys = strictyaml.Check(n, reflect.TypeFor[file](), section)
	if t := f.Timeout; t.Kind != 0 && t.Tag != "!!null" {
		d, err := time.ParseDuration(t.Value)
		if t.Kind != yaml.ScalarNode || err != nil {
			c.timeoutErr = fmt.Errorf("%q is not a duration such as \"2s\" or \"500ms\"", t.Value)
		}
		c.Timeout = d
	}
	return nil
}

// Settings is a validated tokenizer configuration with its defaults
// filled in. The zero Settings is the tokenizer switched off.
type Settings struct {
	// Endpoint is the full /tokenize URL; "" when the tokenizer is off.
	Endpoint     string
	Timeout      time.Duration
	Queue        int
	Workers      int
	CacheEntries int
}

// Enabled reports whether a tokenizer is configured.
func (s Settings) Enabled() bool { return s.Endpoint != "" }

// Compile validates the section and returns its Settings. Every problem
// is reported at once (errors.Join of *strictyaml.Error, each with the
// line of its key): an unknown key, a URL that is not an absolute http(s)
// URL without query or fragment, a timeout that is not a positive duration
// up to MaxTimeout, and a negative or too large queue, workers or
// cache_entries. Without a URL the Settings are the zero (off) value.
func (c Config) Compile() (Settings, error) {
	var errs []error
	fail := func(key, format string, args ...any) {
		line := c.keys.Line(section + "." + key)
		if line == 0 {
			line = c.line
		}
		errs = append(errs, &strictyaml.Error{Line: line, Where: section + "." + key, Msg: fmt.Sprintf(format, args...)})
	}
	for _, u := range c.keys.Unknown {
		errs = append(errs, &strictyaml.Error{Line: u.Line, Where: u.Path, Msg: "unknown key" + u.Hint()})
	}
	s := Settings{Timeout: c.Timeout, Queue: c.Queue, Workers: c.Workers, CacheEntries: c.CacheEntries}
	if c.URL != "" {
		endpoint, err := tokenizeURL(c.URL)
		if err != nil {
			fail("url", "%v", err)
		}
		s.Endpoint = endpoint
	}
	switch {
	case c.timeoutErr != nil:
		fail("timeout", "%v", c.timeoutErr)
	case c.Timeout < 0 || c.Timeout > MaxTimeout:
		fail("timeout", "%v is outside 0 to %v", c.Timeout, MaxTimeout)
	case c.Timeout == 0:
		s.Timeout = DefaultTimeout
	}
	count := func(key string, v *int, def, max int) {
		switch {
		case *v < 0 || *v > max:
			fail(key, "%d is outside 0 to %d", *v, max)
		case *v == 0:
			*v = def
		}
	}
	count("queue", &s.Queue, DefaultQueue, MaxQueue)
	count("workers", &s.Workers, DefaultWorkers, MaxWorkers)
	count("cache_entries", &s.CacheEntries, DefaultCacheEntries, MaxCacheEntries)
	if err := errors.Join(errs...); err != nil {
		return Settings{}, err
	}
	return s, nil
}

// tokenizeURL is base's /tokenize URL. base is the server's address, not
// its OpenAI prefix: vLLM serves /tokenize at the root.
func tokenizeURL(base string) (string, error) {
	u, err := url.Parse(base)
	switch {
	case err != nil:
		return "", fmt.Errorf("%q is not a URL", base)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("%q: want an http:// or https:// URL of the vLLM server, such as http://vllm:8000", base)
	case u.Host == "":
		return "", fmt.Errorf("%q has no host", base)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return "", fmt.Errorf("%q: want the server's base URL, without user, query or fragment", base)
	}
	return strings.TrimSuffix(u.String(), "/") + "/tokenize", nil
}
