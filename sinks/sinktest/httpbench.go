package sinktest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// HTTPTarget starts a loopback HTTP endpoint that reads every request body
// and answers 204; it is closed at the end of the test.
func HTTPTarget(tb testing.TB) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	tb.Cleanup(srv.Close)
	return srv
}

// PlainHTTPLoop is the baseline of the HTTP benchmarks: a plain net/http
// client posting each payload to url, one at a time, over a kept-alive
// connection. Each call of the returned function posts all payloads and
// returns how long that took.
func PlainHTTPLoop(tb testing.TB, url string, payloads []json.RawMessage) func() time.Duration {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	tb.Cleanup(client.CloseIdleConnections)
	return func() time.Duration {
		start := time.Now()
		for _, p := range payloads {
			req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(p))
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				tb.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return time.Since(start)
	}
}
