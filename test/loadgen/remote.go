package loadgen

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// A processor measured in its own process has its CPU time, allocations
// and memory to itself: the load generator's own work does not pollute
// them. The child serves a Target and answers a line protocol on its
// stdin and stdout:
//
//	child  → "addr HOST:PORT"               once it serves
//	parent → "sample" or "sample gc"
//	child  → one JSON Sample (or {"error": "..."})
//
// and exits when its stdin closes.

// ServeControl announces t's address on w and answers sample requests from
// r until r ends; then it closes t.
func ServeControl(r io.Reader, w io.Writer, t Target) error {
	if _, err := fmt.Fprintf(w, "addr %s\n", t.Addr()); err != nil {
		t.Close()
		return err
	}
	enc := json.NewEncoder(w)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		cmd := strings.TrimSpace(sc.Text())
		if cmd != "sample" && cmd != "sample gc" {
			_ = enc.Encode(reply{Error: fmt.Sprintf("unknown command %q", cmd)})
			continue
		}
		s, err := t.Sample(cmd == "sample gc")
		rep := reply{Sample: s}
		if err != nil {
			rep.Error = err.Error()
		}
		if err := enc.Encode(rep); err != nil {
			break
		}
	}
	return errors.Join(sc.Err(), t.Close())
}

type reply struct {
	Sample
	Error string `json:"error,omitempty"`
}

// remote is a Target served through ServeControl by another process (or,
// in tests, another goroutine).
type remote struct {
	addr  string
	mu    sync.Mutex
	in    io.WriteCloser
	out   *bufio.Reader
	close func() error
}

// NewRemote reads the announced address from out and returns the Target
// that in/out control. closeFn runs after in is closed (to wait for the
// child).
func NewRemote(in io.WriteCloser, out io.Reader, closeFn func() error) (Target, error) {
	br := bufio.NewReader(out)
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("loadgen: the processor did not announce its address: %w", err)
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "addr ")
	if !ok {
		return nil, fmt.Errorf("loadgen: unexpected first line %q", line)
	}
	return &remote{addr: addr, in: in, out: br, close: closeFn}, nil
}

// Spawn runs exe with args as a child process that serves a Target
// through ServeControl (`loadgen -serve ...`); its stderr is ours.
func Spawn(exe string, args ...string) (Target, error) {
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	t, err := NewRemote(in, out, cmd.Wait)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, err
	}
	return t, nil
}

func (r *remote) Addr() string { return r.addr }

func (r *remote) Sample(gc bool) (Sample, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cmd := "sample\n"
	if gc {
		cmd = "sample gc\n"
	}
	if _, err := io.WriteString(r.in, cmd); err != nil {
		return Sample{}, err
	}
	line, err := r.out.ReadBytes('\n')
	if err != nil {
		return Sample{}, fmt.Errorf("loadgen: reading a sample: %w", err)
	}
	var rep reply
	if err := json.Unmarshal(line, &rep); err != nil {
		return Sample{}, fmt.Errorf("loadgen: reading a sample: %w", err)
	}
	if rep.Error != "" {
		return rep.Sample, errors.New(rep.Error)
	}
	return rep.Sample, nil
}

func (r *remote) Close() error {
	err := r.in.Close()
	if r.close != nil {
		err = errors.Join(err, r.close())
	}
	return err
}
