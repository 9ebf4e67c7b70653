package http

import (
	"context"
	"io"
	"net"
	nethttp "net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/poll"
)

func ev(id int64, payload string) poll.Event { return poll.NewEvent(id, []byte(payload)) }

// Every status code a real server can answer with, classified per cli.md.
func TestEveryStatusCode(t *testing.T) {
	var code atomic.Int32
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(int(code.Load()))
	}))
	defer srv.Close()
	s, err := New(Config{URL: srv.URL, Timeout: 2 * time.Second}, nil)
	require.NoError(t, err)
	for c := 200; c <= 599; c++ {
		code.Store(int32(c))
		err := s.Deliver(context.Background(), ev(1, `{}`))
		want := "retryable"
		switch {
		case c >= 200 && c <= 299:
			want = "delivered"
		case c >= 400 && c <= 499 && c != 408 && c != 429:
			want = "permanent"
		}
		got := "delivered"
		if err != nil {
			got = "retryable"
			if poll.IsPermanent(err) {
				got = "permanent"
			}
			assert.Equal(t, "http_"+strconv.Itoa(c), poll.ReasonOf(err))
		}
		assert.Equal(t, want, got, "status %d", c)
	}
	// 1xx cannot be a final answer from a real server; the classifier treats
	// it as not delivered.
	for c := 100; c <= 199; c++ {
		assert.Error(t, Classify(c))
		assert.False(t, poll.IsPermanent(Classify(c)))
	}
}

func TestRequestShape(t *testing.T) {
	var got *nethttp.Request
	var body []byte
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		got = r
		body, _ = io.ReadAll(r.Body)
		w.WriteHeader(204)
	}))
	defer srv.Close()
	s, err := New(Config{URL: srv.URL + "/hook?x=1", Method: "put", AuthHeader: "X-Api-Key", AuthValue: "s3cret"}, nil)
	require.NoError(t, err)
	payload := `{"id":"100","eventType":"alert-created","big":123456789012345678901234567890,"u":"Grüße \ud83d\udea8 \"q\""}`
	require.NoError(t, s.Deliver(context.Background(), ev(42, payload)))
	assert.Equal(t, "PUT", got.Method)
	assert.Equal(t, "/hook", got.URL.Path)
	assert.Equal(t, payload, string(body), "bytes unchanged")
	assert.Equal(t, "application/json", got.Header.Get("Content-Type"))
	assert.Equal(t, "alert-created", got.Header.Get("X-ilert-Event-Type"))
	assert.Equal(t, "100", got.Header.Get("X-ilert-Alert-Id"))
	assert.Equal(t, "42", got.Header.Get("X-ilert-Edge-Item-Id"))
	assert.Equal(t, "s3cret", got.Header.Get("X-Api-Key"))
	assert.True(t, strings.HasPrefix(got.Header.Get("User-Agent"), "edgepoll/"))

	require.NoError(t, s.Deliver(context.Background(), ev(43, `{"eventType":{"odd":1}}`)))
	_, present := got.Header["X-Ilert-Event-Type"]
	assert.False(t, present, "empty metadata is omitted")
}

func TestConnectionReuse(t *testing.T) {
	var mu sync.Mutex
	conns := 0
	srv := httptest.NewUnstartedServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write([]byte(strings.Repeat("x", 10000)))
	}))
	srv.Config.ConnState = func(_ net.Conn, st nethttp.ConnState) {
		if st == nethttp.StateNew {
			mu.Lock()
			conns++
			mu.Unlock()
		}
	}
	srv.Start()
	defer srv.Close()
	s, err := New(Config{URL: srv.URL}, nil)
	require.NoError(t, err)
	for i := 0; i < 50; i++ {
		require.NoError(t, s.Deliver(context.Background(), ev(int64(i+1), `{}`)))
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 1, conns, "one keep-alive connection for 50 requests")
}

// The timeout also bounds reading the response: a target that answers and
// then stalls its body does not hold the queue.
func TestTimeoutBoundsAStalledBody(t *testing.T) {
	block := make(chan struct{})
	stall := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		w.WriteHeader(nethttp.StatusServiceUnavailable)
		_, _ = w.Write([]byte("partial"))
		w.(nethttp.Flusher).Flush()
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer stall.Close()
	defer close(block)
	s, err := New(Config{URL: stall.URL, Timeout: 200 * time.Millisecond}, nil)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- s.Deliver(context.Background(), ev(1, `{}`)) }()
	select {
	case err := <-done:
		assert.Equal(t, "http_503", poll.ReasonOf(err), "the status decides, the stalled body is abandoned")
	case <-time.After(10 * time.Second):
		t.Fatal("Deliver hung on a stalled response body")
	}
}

func TestTimeoutAndTransportErrors(t *testing.T) {
	block := make(chan struct{})
	slow := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(block)
	s, err := New(Config{URL: slow.URL, Timeout: 200 * time.Millisecond, AuthHeader: "Authorization", AuthValue: "Bearer tok"}, nil)
	require.NoError(t, err)
	err = s.Deliver(context.Background(), ev(1, `{}`))
	require.Error(t, err)
	assert.False(t, poll.IsPermanent(err))
	assert.Equal(t, "timeout", poll.ReasonOf(err))

	closed := httptest.NewServer(nethttp.NotFoundHandler())
	u := closed.URL
	closed.Close()
	s, err = New(Config{URL: strings.Replace(u, "http://", "http://user:pw@", 1) + "/p?token=qs-secret", AuthHeader: "Authorization", AuthValue: "Bearer tok"}, nil)
	require.NoError(t, err)
	err = s.Deliver(context.Background(), ev(1, `{}`))
	require.Error(t, err)
	assert.Equal(t, "transport", poll.ReasonOf(err))
	for _, secret := range []string{"pw", "qs-secret", "Bearer tok"} {
		assert.NotContains(t, err.Error(), secret)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []Config{
		{URL: "ftp://x"}, {URL: "/relative"}, {URL: "http://x", Method: "GET"},
		{URL: "http://x", AuthHeader: "A"}, {URL: "http://x", AuthValue: "v"},
	} {
		_, err := New(c, nil)
		assert.Error(t, err, "%+v", c)
		if err != nil {
			assert.NotContains(t, err.Error(), "v\"")
		}
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	hits := 0
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		hits++
		nethttp.Redirect(w, r, "/elsewhere", nethttp.StatusFound)
	}))
	defer srv.Close()
	s, _ := New(Config{URL: srv.URL}, nil)
	err := s.Deliver(context.Background(), ev(1, `{}`))
	assert.Equal(t, "http_302", poll.ReasonOf(err))
	assert.Equal(t, 1, hits)
}

// Credentials in the URL are sent as HTTP Basic authentication and appear
// in no error message.
func TestURLCredentialsAreBasicAuth(t *testing.T) {
	var user, pass atomic.Value
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != "edge user" || p != "p@ss:w0rd" {
			w.WriteHeader(401)
			return
		}
		user.Store(u)
		pass.Store(p)
		w.WriteHeader(204)
	}))
	defer srv.Close()
	withCreds := strings.Replace(srv.URL, "http://", "http://edge%20user:p%40ss%3Aw0rd@", 1) + "/hook"
	s, err := New(Config{URL: withCreds}, nil)
	require.NoError(t, err)
	require.NoError(t, s.Deliver(context.Background(), ev(1, `{}`)))
	assert.Equal(t, "edge user", user.Load())

	// A failing target: the error names the URL without its credentials.
	srv.Close()
	err = s.Deliver(context.Background(), ev(2, `{}`))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "p@ss")
	assert.NotContains(t, err.Error(), "p%40ss")
	assert.NotContains(t, err.Error(), "edge")
}

// --http-retry-status turns chosen 4xx answers into retryable failures; the
// error carries the status either way.
func TestRetryStatus(t *testing.T) {
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		w.WriteHeader(code)
	}))
	defer srv.Close()
	s, err := New(Config{URL: srv.URL + "/404", RetryStatus: []int{401, 404}}, nil)
	require.NoError(t, err)
	err = s.Deliver(context.Background(), ev(1, `{}`))
	require.Error(t, err)
	assert.False(t, poll.IsPermanent(err), "404 is retryable by --http-retry-status")
	assert.Equal(t, 404, poll.StatusOf(err))
	s, err = New(Config{URL: srv.URL + "/403", RetryStatus: []int{401, 404}}, nil)
	require.NoError(t, err)
	err = s.Deliver(context.Background(), ev(1, `{}`))
	assert.True(t, poll.IsPermanent(err), "403 is not in the list")
	assert.Equal(t, 403, poll.StatusOf(err))
	_, err = New(Config{URL: srv.URL, RetryStatus: []int{500}}, nil)
	assert.Error(t, err)
}
