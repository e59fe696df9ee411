package tokencount

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
)

// Errors of a count that never reached the server.
var (
	// ErrQueueFull: every worker is busy and the queue is full; the
	// count was not attempted.
	ErrQueueFull = errors.New("tokenizer queue full")
	// ErrClosed: the client was closed before the count ran.
	ErrClosed = errors.New("tokenizer closed")
)

// StatusError is the error of a /tokenize call answered with a status
// other than 2xx.
type StatusError struct {
	Status int
	// Body is the start of the answer, for the log.
	Body string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("tokenize answered %d: %s", e.Status, e.Body)
}

// Doer sends one HTTP request; *http.Client is one.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// Stats are a Client's counters since it started.
type Stats struct {
	// Calls is how many /tokenize calls were made; Hits how many counts
	// the cache answered; Failed how many calls failed; Dropped how many
	// counts were refused because the queue was full.
	Calls, Hits, Failed, Dropped int64
}

// Client counts tokens with a vLLM server's /tokenize. It is safe for
// concurrent use. Close it when done: it runs Settings.Workers goroutines.
type Client struct {
	s     Settings
	http  Doer
	jobs  chan *job
	cache *cache
	done  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once

	calls, hits, failed, dropped atomic.Int64
}

// job is one queued call; its result goes to res (buffered, written once).
type job struct {
	ctx context.Context
	q   query
	k   key
	res chan result
}

type result struct {
	count int64
	err   error
}

// New starts a client for s (which must be Enabled) with s.Workers
// workers. doer sends its calls; nil means a dedicated *http.Client.
// Settings not made by Config.Compile get the defaults for zero values.
func New(s Settings, doer Doer) *Client {
	if s.Timeout <= 0 {
		s.Timeout = DefaultTimeout
	}
	s.Queue, s.Workers, s.CacheEntries = max(s.Queue, 1), max(s.Workers, 1), max(s.CacheEntries, 1)
	if doer == nil {
		doer = &http.Client{Transport: &http.Transport{
			MaxIdleConnsPerHost: s.Workers, MaxConnsPerHost: s.Workers, ForceAttemptHTTP2: true,
		}}
	}
	c := &Client{s: s, http: doer, jobs: make(chan *job, s.Queue), cache: newCache(s.CacheEntries), done: make(chan struct{})}
	c.wg.Add(s.Workers)
	for range s.Workers {
		go c.work()
	}
	return c
}

// Settings returns what the client was started with.
func (c *Client) Settings() Settings { return c.s }

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	return Stats{Calls: c.calls.Load(), Hits: c.hits.Load(), Failed: c.failed.Load(), Dropped: c.dropped.Load()}
}

// Close stops the workers after the calls in flight; counts still queued
// fail with ErrClosed. It returns once every worker has stopped, and may
// be called more than once.
func (c *Client) Close() {
	c.once.Do(func() { close(c.done) })
	c.wg.Wait()
}

// Count is a count under way: the sum of its parts once each is known.
type Count struct {
	known int64
	parts []chan result
	err   error // the count failed before any call
}

// Wait returns the count, or the first failure of its parts, or ctx's
// error when it ends first: it returns at the latest when ctx ends, so
// callers bound it with a deadline. It may be called once.
func (n *Count) Wait(ctx context.Context) (int64, error) {
	if n.err != nil {
		return 0, n.err
	}
	total := n.known
	for _, p := range n.parts {
		select {
		case r := <-p:
			if r.err != nil {
				return 0, r.err
			}
			total += r.count
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return total, nil
}

// failed is a Count that failed before any call.
func failedCount(err error) *Count { return &Count{err: err} }

// ChatPrompt counts the prompt of a chat completions request body (the
// client's messages, tools and template options) as model renders it.
// It never blocks: the calls are queued (or answered from the cache).
// ctx bounds the calls: cancel it when the count is no longer wanted.
func (c *Client) ChatPrompt(ctx context.Context, model string, body []byte) *Count {
	q, err := chatQuery(model, body)
	if err != nil {
		return failedCount(err)
	}
	return c.submit(ctx, 0, q)
}

// Prompts counts the prompts of a completions (field "prompt") or
// embeddings (field "input") request body: each string prompt by a call,
// token-id prompts by their length. It never blocks.
func (c *Client) Prompts(ctx context.Context, model, field string, body []byte) *Count {
	qs, known, err := promptQueries(model, field, body)
	if err != nil {
		return failedCount(err)
	}
	return c.submit(ctx, known, qs...)
}

// Text counts delivered text as model's tokenizer splits it, without
// special tokens or template. text is copied: the caller may reuse it as
// soon as Text returns. It never blocks.
func (c *Client) Text(ctx context.Context, model string, text []byte) *Count {
	if len(text) == 0 {
		return &Count{}
	}
	return c.submit(ctx, 0, textQuery(model, text))
}

// submit queues qs, answering each from the cache when it can.
func (c *Client) submit(ctx context.Context, known int64, qs ...query) *Count {
	n := &Count{known: known, parts: make([]chan result, 0, len(qs))}
	for _, q := range qs {
		res := make(chan result, 1)
		n.parts = append(n.parts, res)
		k := keyOf(q)
		if count, ok := c.cache.get(k); ok {
			c.hits.Add(1)
			res <- result{count: count}
			continue
		}
		select {
		case <-c.done:
			res <- result{err: ErrClosed}
			continue
		default:
		}
		select {
		case c.jobs <- &job{ctx: ctx, q: q, k: k, res: res}:
		default:
			c.dropped.Add(1)
			res <- result{err: ErrQueueFull}
		}
	}
	return n
}

// work runs calls until the client is closed; queued calls then fail.
func (c *Client) work() {
	defer c.wg.Done()
	for {
		select {
		case <-c.done:
			for {
				select {
				case j := <-c.jobs:
					j.res <- result{err: ErrClosed}
				default:
					return
				}
			}
		case j := <-c.jobs:
			j.res <- c.run(j)
		}
	}
}

// run makes one call, unless its caller gave up while it was queued.
func (c *Client) run(j *job) result {
	if err := j.ctx.Err(); err != nil {
		return result{err: err}
	}
	count, err := c.call(j.ctx, j.q)
	if err != nil {
		c.failed.Add(1)
		return result{err: err}
	}
	c.cache.put(j.k, count)
	return result{count: count}
}

// call POSTs q to /tokenize within the timeout and checks the count.
func (c *Client) call(ctx context.Context, q query) (int64, error) {
	c.calls.Add(1)
	ctx, cancel := context.WithTimeout(ctx, c.s.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.s.Endpoint, bytes.NewReader(q.body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("content-type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		head, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		return 0, &StatusError{Status: resp.StatusCode, Body: string(head)}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return 0, err
	}
	if len(b) > maxAnswerBytes {
		return 0, fmt.Errorf("tokenize answer over %d bytes", maxAnswerBytes)
	}
	count, err := parseAnswer(b)
	if err != nil {
		return 0, err
	}
	// Delivered text has no template and no special tokens: every token
	// covers at least one byte of it (a few spare for tokenizers that add
	// a marker anyway).
	if q.kind == Text && count > int64(len(q.body))+8 {
		return 0, fmt.Errorf("%w: %d tokens for a text of fewer bytes", ErrAbsurd, count)
	}
	return count, nil
}
