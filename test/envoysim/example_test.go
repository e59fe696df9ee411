package envoysim_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/spendguard/spendguard/test/envoysim"
)

// An end-to-end test puts a Proxy in front of the upstream, pointed at the
// ext_proc server under test, and sends ordinary HTTP requests to it.
func Example() {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"usage":{"total_tokens":3}}`)
	}))
	defer upstream.Close()

	cfg := envoysim.DefaultConfig("127.0.0.1:50051", upstream.URL) // the processor's gRPC address
	cfg.ResponseChunker = func(b []byte) [][]byte { return [][]byte{b[:5], b[5:], nil} }
	proxy, err := envoysim.New(cfg)
	if err != nil {
		panic(err)
	}
	front := httptest.NewServer(proxy)
	defer func() {
		front.Close() // the HTTP server first, then the Proxy
		_ = proxy.Close()
	}()

	resp, err := http.Post(front.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m"}`))
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("X-Spendguard-Remaining-Usd"))
}
