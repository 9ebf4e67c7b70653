// Package http is the HTTP sink: each event is sent as one request to the
// target URL, the payload as the JSON body, metadata in X-ilert-* headers.
package http

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	nethttp "net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/edgepoll/edgepoll/poll"
)

// Config configures the HTTP sink.
type Config struct {
	// URL is the target (http or https). Required.
	URL string
	// Method is POST (default) or PUT.
	Method string
	// AuthHeader and AuthValue, both or neither: a header sent with every
	// request. AuthValue is a secret: never logged, never in an error.
	// Credentials in the URL (https://user:pw@host/path) are sent as HTTP
	// Basic authentication, as any HTTP client does (an explicit
	// Authorization AuthHeader wins); they are never logged either.
	AuthHeader string
	AuthValue  string
	// RetryStatus lists 4xx statuses that are retryable instead of
	// permanent (--http-retry-status); 408, 429 and 5xx always are.
	RetryStatus []int
	// Timeout bounds one request, from connect to the response headers and a
	// bounded read of the body. Default 30s, the reference agent's: a target
	// slower than that is treated as failing (retryable). Shorter would make
	// a slow webhook that does accept the item get it again every cycle.
	Timeout time.Duration
	// SigningSecret, if set, signs every request: X-ilert-Signature:
	// t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>. A
	// secret: never logged, never in an error.
	SigningSecret string
	// UserAgent sent with every request. Default "edgepoll/<version>".
	UserAgent string
	// Transport overrides the HTTP transport (tests). Default: keep-alive
	// connection reuse to the one target, 5s connect and TLS handshake
	// bounds, proxy from the environment. Requests go to it directly (not
	// through an http.Client): redirects are never followed (a 3xx is an
	// answer, not a delivery) and the per-request Timeout is a context
	// deadline, so no per-request header copy or timer beyond that one.
	Transport nethttp.RoundTripper
}

// Sink delivers events over HTTP. It implements poll.Deliverer; one request
// at a time, in order, over a reused keep-alive connection.
type Sink struct {
	u       *url.URL // parsed once; shared read-only by every request
	host    string
	safe    string // URL for messages: no userinfo, no query
	method  string
	hdr     string // canonical form
	val     []string
	basic   []string // Authorization from the URL's credentials
	ua      []string
	timeout time.Duration
	retry   map[int]bool
	secret  []byte // the signing secret (nil: unsigned)
	now     func() time.Time
	rt      nethttp.RoundTripper
	log     *slog.Logger
}

// Header values shared by every request (never modified by the transport).
var jsonContentType = []string{"application/json"}

// New validates cfg (check, the same rules as Options.Validate) and builds
// the sink.
func New(cfg Config, log *slog.Logger) (*Sink, error) {
	if cfg.Method == "" {
		cfg.Method = nethttp.MethodPost
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	u, _ := url.Parse(cfg.URL)
	method := strings.ToUpper(strings.TrimSpace(cfg.Method))
	if cfg.UserAgent == "" {
		cfg.UserAgent = "edgepoll/" + poll.Version
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rt := cfg.Transport
	if rt == nil {
		// Every request goes to the one URL: decide on a proxy once.
		proxy, perr := nethttp.ProxyFromEnvironment(&nethttp.Request{URL: u})
		if perr != nil {
			// Not perr: it quotes the proxy URL, which may carry a password.
			return nil, errors.New("the proxy set in HTTPS_PROXY / HTTP_PROXY is not a valid URL")
		}
		rt = &nethttp.Transport{
			Proxy:               func(*nethttp.Request) (*url.URL, error) { return proxy, nil },
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout: 5 * time.Second,
			MaxIdleConns:        4,
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     90 * time.Second,
			ForceAttemptHTTP2:   true,
		}
	}
	safe := *u
	safe.User = nil
	safe.RawQuery = ""
	safe.Fragment = ""
	target := *u
	target.User = nil // the credentials travel as a header, not in the URL
	sk := &Sink{
		u: &target, host: strings.TrimSuffix(u.Host, ":"), safe: safe.String(), method: method, ua: []string{cfg.UserAgent},
		timeout: cfg.Timeout, rt: rt, log: log, now: time.Now,
	}
	if cfg.SigningSecret != "" {
		sk.secret = []byte(cfg.SigningSecret)
	}
	if u.User != nil {
		pw, _ := u.User.Password()
		sk.basic = []string{"Basic " + base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pw))}
	}
	if cfg.AuthHeader != "" {
		sk.hdr, sk.val = nethttp.CanonicalHeaderKey(cfg.AuthHeader), []string{cfg.AuthValue}
	}
	for _, c := range cfg.RetryStatus {
		if sk.retry == nil {
			sk.retry = map[int]bool{}
		}
		sk.retry[c] = true
	}
	return sk, nil
}

// Deliver sends one event. 2xx: delivered. 408, 429, 5xx, 1xx/3xx, timeouts
// and transport errors: retryable. Other 4xx: permanent (the item is
// skipped). Reasons: "http_<code>", "timeout", "transport", "canceled".
func (s *Sink) Deliver(ctx context.Context, ev poll.Event) error {
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	// What NewRequestWithContext builds, minus parsing the URL again.
	body := ev.Payload
	req := (&nethttp.Request{
		Method: s.method, URL: s.u, Host: s.host,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		ContentLength: int64(len(body)),
		Body:          nethttp.NoBody,
		GetBody:       func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil },
	}).WithContext(rctx)
	if len(body) > 0 {
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	// Canonical keys, set directly: what Header.Set would do, minus the work.
	h := make(nethttp.Header, 6)
	meta := [...]string{ev.EventType, ev.AlertID, ev.ItemID()}
	h["Content-Type"] = jsonContentType
	h["User-Agent"] = s.ua
	if meta[0] != "" {
		h["X-Ilert-Event-Type"] = meta[0:1:1]
	}
	if meta[1] != "" {
		h["X-Ilert-Alert-Id"] = meta[1:2:2]
	}
	h["X-Ilert-Edge-Item-Id"] = meta[2:3:3]
	if s.basic != nil {
		h["Authorization"] = s.basic
	}
	if s.hdr != "" {
		h[s.hdr] = s.val
	}
	if s.secret != nil {
		h["X-Ilert-Signature"] = []string{s.sign(body)}
	}
	req.Header = h
	resp, err := s.rt.RoundTrip(req)
	if err != nil {
		return s.transportErr(ctx, err)
	}
	// Drain a bounded part of the body so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	err = s.classify(resp.StatusCode)
	if code := resp.StatusCode; code == nethttp.StatusTooManyRequests || code == nethttp.StatusServiceUnavailable {
		withRetryAfter(err, resp.Header.Get("Retry-After"), s.now())
	}
	return err
}

// sign is the X-ilert-Signature value of body at the current time.
func (s *Sink) sign(body []byte) string {
	return Signature(s.secret, s.now().Unix(), body)
}

// Signature is "t=<ts>,v1=<hex HMAC-SHA256(secret, "<ts>.<body>")>", the
// X-ilert-Signature of body signed at ts (unix seconds).
func Signature(secret []byte, ts int64, body []byte) string {
	t := strconv.FormatInt(ts, 10)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(t))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "t=" + t + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// withRetryAfter records a Retry-After header (delay-seconds or an HTTP
// date) on a retryable delivery error; a value that is neither, or a date
// in the past, is ignored.
func withRetryAfter(err error, header string, now time.Time) {
	var de *poll.DeliveryError
	if header == "" || !errors.As(err, &de) || de.Permanent {
		return
	}
	d, ok := ParseRetryAfter(header, now)
	if !ok || d <= 0 {
		return
	}
	de.RetryAfter = d
	de.Err = fmt.Errorf("%w (Retry-After: %s)", de.Err, d)
}

// ParseRetryAfter reads a Retry-After value: delay-seconds ("120") or an
// HTTP date, as a duration from now.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(n) * time.Second, true
	}
	t, err := nethttp.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return t.Sub(now).Round(time.Second), true
}

func (s *Sink) classify(code int) error {
	if s.retry[code] {
		return &poll.DeliveryError{Reason: "http_" + strconv.Itoa(code), Status: code,
			Err: fmt.Errorf("target answered %d (retryable by --http-retry-status)", code)}
	}
	return Classify(code)
}

// Classify maps an HTTP status to nil (2xx) or a classed delivery error
// carrying the status.
func Classify(code int) error {
	de := &poll.DeliveryError{Reason: "http_" + strconv.Itoa(code), Status: code, Err: fmt.Errorf("target answered %d", code)}
	switch {
	case code >= 200 && code <= 299:
		return nil
	case code == nethttp.StatusRequestTimeout || code == nethttp.StatusTooManyRequests:
	case code >= 400 && code <= 499:
		de.Permanent = true
	default: // 5xx, and 1xx/3xx which are not a delivery
	}
	return de
}

func (s *Sink) transportErr(ctx context.Context, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // drop the URL (it may carry credentials)
	}
	switch {
	case ctx.Err() != nil:
		return poll.Retryable("canceled", ctx.Err())
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return poll.Retryable("timeout", fmt.Errorf("request to %s timed out", s.safe))
	default:
		return poll.Retryable("transport", fmt.Errorf("request to %s failed: %v", s.safe, err))
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Close releases idle connections.
func (s *Sink) Close() error {
	if c, ok := s.rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
	return nil
}
