package envoysim

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"sync"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Proxy is a simulated Envoy: an http.Handler that runs each request through
// the ext_proc processor and forwards it to the upstream. It is safe for
// concurrent use.
type Proxy struct {
	cfg       settings
	conn      *grpc.ClientConn
	client    extprocv3.ExternalProcessorClient
	transport *http.Transport
	stats     counters

	closing   chan struct{}
	closeOnce sync.Once
	closers   sync.WaitGroup // streams waiting to be reset
}

// New validates cfg and prepares a Proxy. It creates the gRPC client for the
// processor without connecting (the first request connects), so the
// processor need not be up yet.
func New(cfg Config) (*Proxy, error) {
	s, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	// Envoy's gRPC client bounds the answers it receives only when
	// envoy_grpc.max_receive_message_length is set; gRPC-Go's client
	// default of 4 MiB would refuse an answer that rewrites a large body.
	conn, err := grpc.NewClient(s.ProcessorAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)))
	if err != nil {
		return nil, fmt.Errorf("envoysim: processor client: %w", err)
	}
	return &Proxy{
		cfg:    s,
		conn:   conn,
		client: extprocv3.NewExternalProcessorClient(conn),
		transport: &http.Transport{
			Proxy:               nil, // never an environment proxy
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			DisableCompression:  true, // bodies pass byte for byte
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     30 * time.Second,
		},
		closing: make(chan struct{}),
	}, nil
}

// NewDefault is New(DefaultConfig(processorAddr, upstream)).
func NewDefault(processorAddr, upstream string) (*Proxy, error) {
	return New(DefaultConfig(processorAddr, upstream))
}

// Stats returns a snapshot of the counters.
func (p *Proxy) Stats() Stats { return p.stats.snapshot() }

// Close resets every ext_proc stream (in-flight requests then fail as on a
// gRPC error), waits for the stream goroutines, and closes the processor
// connection and idle upstream connections. Close the HTTP server in front
// of the Proxy first; Close is idempotent.
func (p *Proxy) Close() error {
	var err error
	p.closeOnce.Do(func() {
		close(p.closing)
		p.closers.Wait()
		p.transport.CloseIdleConnections()
		err = p.conn.Close()
	})
	return err
}

// ServeHTTP runs one HTTP exchange as Envoy would. When the response must be
// cut off after its headers were sent (upstream reset, processor failure
// mid-stream), it aborts the connection with http.ErrAbortHandler so the
// client sees a truncated body.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.stats.requests.Add(1)
	x := newExchange(p, w, r)
	x.run()
	x.cleanup()
	if x.reset {
		p.stats.resets.Add(1)
		panic(http.ErrAbortHandler)
	}
}

// Server is a Proxy listening on a TCP address, for running envoysim as a
// local proxy (spendguard demo).
type Server struct {
	proxy    *Proxy
	srv      *http.Server
	listener net.Listener
	done     chan error
	waitOnce sync.Once
	serveErr error
}

// Start listens on addr (e.g. "127.0.0.1:0") and serves p there until Close.
func (p *Proxy) Start(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("envoysim: listen: %w", err)
	}
	s := &Server{
		proxy:    p,
		srv:      &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second},
		listener: ln,
		done:     make(chan error, 1),
	}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// Addr returns the bound address, e.g. "127.0.0.1:40123".
func (s *Server) Addr() string { return s.listener.Addr().String() }

// URL returns "http://" + Addr().
func (s *Server) URL() string { return "http://" + s.Addr() }

// Proxy returns the Proxy being served.
func (s *Server) Proxy() *Proxy { return s.proxy }

// Shutdown stops accepting connections, waits for in-flight requests until
// ctx ends, then closes the Proxy.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.stop(func() error { return s.srv.Shutdown(ctx) })
}

// Close stops the server at once (in-flight requests are cut) and closes the
// Proxy.
func (s *Server) Close() error { return s.stop(s.srv.Close) }

func (s *Server) stop(halt func() error) error {
	err := halt()
	s.waitOnce.Do(func() { s.serveErr = <-s.done })
	if !errors.Is(s.serveErr, http.ErrServerClosed) {
		err = errors.Join(err, s.serveErr)
	}
	return errors.Join(err, s.proxy.Close())
}
