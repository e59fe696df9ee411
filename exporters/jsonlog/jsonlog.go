// Package jsonlog writes one JSON line per request (sink.Record: the
// CostReport with snake_case keys, RFC 3339 times, durations in seconds
// and money both in exact nano-USD and in USD) to stdout, stderr or a
// file. A batch is written with a single write call, so lines from
// concurrent writers are never interleaved within a batch.
package jsonlog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/spendguard/spendguard/exporters/sink"
)

// Exporter writes JSON lines.
type Exporter struct {
	mu  sync.Mutex
	w   io.Writer
	f   *os.File // nil for stdout, stderr or a caller's writer
	buf bytes.Buffer
}

var _ sink.Exporter = (*Exporter)(nil)

// New opens cfg.Path: "stdout", "stderr", or a file to append to.
func New(cfg Config) (*Exporter, error) {
	switch cfg.Path {
	case "stdout":
		return NewWriter(os.Stdout), nil
	case "stderr":
		return NewWriter(os.Stderr), nil
	case "":
		return nil, fmt.Errorf("jsonlog: no path")
	}
	f, err := os.OpenFile(cfg.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("jsonlog: %w", err)
	}
	return &Exporter{w: f, f: f}, nil
}

// NewWriter returns an Exporter writing to w.
func NewWriter(w io.Writer) *Exporter { return &Exporter{w: w} }

// Export writes one line per event. A write error is retried by the
// fan-out; the write itself cannot be interrupted by ctx.
func (e *Exporter) Export(_ context.Context, batch []*sink.Event) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.buf.Reset()
	enc := json.NewEncoder(&e.buf)
	enc.SetEscapeHTML(false)
	for _, ev := range batch {
		if err := enc.Encode(sink.NewRecord(ev.Report)); err != nil {
			return sink.Permanent(err)
		}
	}
	_, err := e.w.Write(e.buf.Bytes())
	return err
}

// Close closes the file, if the Exporter opened one.
func (e *Exporter) Close(context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.f == nil {
		return nil
	}
	err := e.f.Close()
	e.f = nil
	return err
}
