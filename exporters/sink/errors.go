package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// permanentError marks an error a retry cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying (a 400 or 401 answer, an
// event that cannot be encoded): the fan-out drops the batch and counts it
// as failed. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked
// Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// StatusError is a non-2xx answer from a destination.
type StatusError struct {
	Status int
	Body   string // the start of the answer's body, for the log
}

func (e *StatusError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("HTTP %d", e.Status)
	}
	return fmt.Sprintf("HTTP %d: %s", e.Status, e.Body)
}

// Retryable reports whether a request answered with status may succeed
// when sent again: 408 (timeout), 429 (rate limited) and every 5xx are;
// any other 4xx means the request itself is wrong (bad payload, bad
// credentials, too large) and sending it again cannot help.
func Retryable(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500
}

// CheckStatus returns nil for a 2xx status, a *StatusError for a
// retryable one, and a Permanent *StatusError otherwise.
func CheckStatus(status int, body string) error {
	if status >= 200 && status <= 299 {
		return nil
	}
	err := &StatusError{Status: status, Body: body}
	if Retryable(status) {
		return err
	}
	return Permanent(err)
}

// maxErrorBody is how much of an error answer is kept for the log.
const maxErrorBody = 512

// PostJSON sends body to url with content-type application/json and the
// given headers, and classifies the outcome: nil on 2xx, a retryable
// error on a network failure or a retryable status, a Permanent one
// otherwise. The answer's body is read (up to a small limit) and
// discarded so that connections are reused.
func PostJSON(ctx context.Context, client *http.Client, url string, headers map[string]string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Permanent(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return CheckStatus(resp.StatusCode, strings.TrimSpace(string(head)))
}

// CheckURL returns what is wrong with a destination URL for a
// configuration error, or "". The URL itself is never quoted: webhook
// URLs are secrets.
func CheckURL(s string) string {
	if s == "" {
		return "is required (an http or https URL)"
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "is not an http or https URL"
	}
	return ""
}
