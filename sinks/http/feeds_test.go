package http

import (
	"context"
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/sinks/sinktest"
)

func TestSignedDeliveries(t *testing.T) {
	const secret = "whsec-Sign1ng-Secret"
	var hdr string
	var body []byte
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		body, _ = io.ReadAll(r.Body)
		hdr = r.Header.Get("X-ilert-Signature")
	}))
	defer srv.Close()
	s, err := New(Config{URL: srv.URL, SigningSecret: secret}, nil)
	require.NoError(t, err)
	before := time.Now().Unix()
	require.NoError(t, s.Deliver(context.Background(), ev(1, `{"eventType":"alert-created"}`)))
	ts, err := sinktest.VerifySignature(secret, hdr, body, time.Now())
	assert.NoError(t, err, "signature verifies: %s", hdr)
	assert.GreaterOrEqual(t, ts, before)
	assert.LessOrEqual(t, ts, time.Now().Unix())
	_, err = sinktest.VerifySignature("another-secret", hdr, body, time.Now())
	assert.Error(t, err)
	_, err = sinktest.VerifySignature(secret, hdr, append(body, ' '), time.Now())
	assert.Error(t, err, "a changed body does not verify")
	assert.NotContains(t, hdr, secret)

	// The vector of docs/feeding.md (computed there with openssl), so that
	// receivers in any language can check their code against it.
	assert.Equal(t, "t=1700000000,v1=19979cbf861833b6f522a3de0119f836ace56718357f7a2f67bc7b492aac188b",
		Signature([]byte("whsec-example"), 1700000000, []byte(`{"eventType":"alert-created"}`)))

	// Unsigned without a secret.
	s, err = New(Config{URL: srv.URL}, nil)
	require.NoError(t, err)
	require.NoError(t, s.Deliver(context.Background(), ev(2, `{}`)))
	assert.Empty(t, hdr)
}

func TestSigningSecretValidation(t *testing.T) {
	_, err := New(Config{URL: "http://127.0.0.1:1", SigningSecret: "bad\nsecret"}, nil)
	var ce *poll.ConfigError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "http-signing-secret", ce.Field)
	assert.NotContains(t, err.Error(), "bad")
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"120", 2 * time.Minute, true},
		{" 7 ", 7 * time.Second, true},
		{"0", 0, true},
		{"Wed, 02 Dec 2026 08:01:30 GMT", 90 * time.Second, true},
		{"Wednesday, 02-Dec-26 08:00:10 GMT", 10 * time.Second, true},
		{"Wed, 02 Dec 2026 07:59:00 GMT", -time.Minute, true},
		{"-5", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{"", 0, false},
	} {
		d, ok := ParseRetryAfter(tc.v, now)
		assert.Equal(t, tc.ok, ok, tc.v)
		assert.Equal(t, tc.want, d, tc.v)
	}
}

// A 429 or 503 with Retry-After carries it on its retryable error; other
// answers, and a date in the past, carry none.
func TestRetryAfterOnTheError(t *testing.T) {
	code, ra := nethttp.StatusTooManyRequests, "30"
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		w.Header().Set("Retry-After", ra)
		w.WriteHeader(code)
	}))
	defer srv.Close()
	s, err := New(Config{URL: srv.URL}, nil)
	require.NoError(t, err)
	err = s.Deliver(context.Background(), ev(1, `{}`))
	assert.False(t, poll.IsPermanent(err))
	assert.Equal(t, 30*time.Second, poll.RetryAfterOf(err))
	assert.Contains(t, err.Error(), "Retry-After: 30s")
	assert.Equal(t, "http_429", poll.ReasonOf(err))

	code, ra = nethttp.StatusServiceUnavailable, time.Now().Add(time.Hour).UTC().Format(nethttp.TimeFormat)
	err = s.Deliver(context.Background(), ev(1, `{}`))
	assert.InDelta(t, time.Hour.Seconds(), poll.RetryAfterOf(err).Seconds(), 5)

	code, ra = nethttp.StatusServiceUnavailable, time.Now().Add(-time.Hour).UTC().Format(nethttp.TimeFormat)
	assert.Zero(t, poll.RetryAfterOf(s.Deliver(context.Background(), ev(1, `{}`))), "a date in the past")

	code, ra = nethttp.StatusBadGateway, "30"
	assert.Zero(t, poll.RetryAfterOf(s.Deliver(context.Background(), ev(1, `{}`))), "only 429 and 503")
}
