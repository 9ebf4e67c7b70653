package poll

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Version is edgepoll's version, set at link time (-X .../poll.Version=...).
var Version = "dev"

// DefaultAPIURL is the ilert API used when none is configured.
const DefaultAPIURL = "https://api.ilert.com"

// BatchLimit is the number of items one poll asks for; a response with this
// many items is a full batch and is polled again at once.
const BatchLimit = 100

// ClientConfig configures the ilert edge-connections API client.
type ClientConfig struct {
	// BaseURL is the API's base URL with scheme, e.g. https://api.ilert.com.
	// Default DefaultAPIURL.
	BaseURL string
	// Key is the edge connector key, sent raw in the Authorization header.
	// It never appears in errors or logs.
	Key string
	// Timeout bounds one whole request (connect, send, read the body).
	// Default 30s: long enough for a slow 100-item response, short enough
	// that a hung API fails the cycle well before a one-minute schedule.
	Timeout time.Duration
	// ConnectTimeout bounds the TCP connect and TLS handshake. Default 10s.
	ConnectTimeout time.Duration
	// MaxResponseBytes caps the body of a poll response; larger is a failed
	// poll. Default 32 MiB (100 items of webhook payloads are far smaller).
	MaxResponseBytes int64
	// Transport is the HTTP transport (shared by several clients, or a
	// test's). Default: a dedicated NewTransport with the timeouts above.
	Transport http.RoundTripper
}

// Client talks to the ilert edge-connections API.
type Client struct {
	base    *url.URL
	key     string
	hc      *http.Client
	maxBody int64
	// limit is the page size polls ask for: BatchLimit, smaller after an
	// answer passed the response limit.
	limit atomic.Int32
}

// NewClient validates cfg and builds a client.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultAPIURL
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("API URL %q: must be an absolute http(s) URL", redactURL(cfg.BaseURL))
	}
	if cfg.Key == "" {
		return nil, errors.New("connector key is empty")
	}
	if ContainsControl(cfg.Key) {
		return nil, errors.New("connector key contains control characters")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = 32 << 20
	}
	rt := cfg.Transport
	if rt == nil {
		rt = NewTransport(cfg.ConnectTimeout, cfg.Timeout, 2)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	c := &Client{
		base:    u,
		key:     cfg.Key,
		hc:      &http.Client{Transport: rt, Timeout: cfg.Timeout, CheckRedirect: sameOriginRedirect},
		maxBody: cfg.MaxResponseBytes,
	}
	c.limit.Store(BatchLimit)
	return c, nil
}

// NewTransport is the HTTP transport of a client to the ilert API:
// connectTimeout bounds connecting (and the TLS handshake), timeout the
// wait for a response's headers; proxy settings from the environment;
// at most maxIdlePerHost idle connections kept. Several clients may share
// one (a --config run: one pool of connections to the API for all
// connections, sized by --max-parallel). Zero durations: the defaults.
func NewTransport(connectTimeout, timeout time.Duration, maxIdlePerHost int) *http.Transport {
	if connectTimeout <= 0 {
		connectTimeout = 10 * time.Second
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   connectTimeout,
		ResponseHeaderTimeout: timeout,
		MaxIdleConnsPerHost:   maxIdlePerHost,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
}

// Query selects what one poll asks for.
type Query struct {
	// AfterID is the cursor (non-HA): the id of the last item handled; 0 when
	// there is none.
	AfterID int64
	// ClusterID enables server-managed HA: the query then carries
	// cluster-id and instance-id (and last-processed-id when
	// LastProcessedID > 0) instead of after-id.
	ClusterID       string
	InstanceID      string
	LastProcessedID int64
	// Limit > 0 asks for at most Limit items (below the client's page
	// size); 0: the page size.
	Limit int
}

// Batch is one poll's answer.
type Batch struct {
	// Items in ascending id order, without duplicates.
	Items []Event
	// Role is "leader" or "standby" in HA mode, "" otherwise.
	Role string
	// Full reports that the server returned BatchLimit items (poll again).
	Full bool
}

// PollError is a failed poll with a bounded reason ("auth", "status_503",
// "redirect", "transport", "timeout", "decode", "bad_item", "too_large", "canceled").
// With "bad_item" (an *ItemError) the batch returned along with it holds
// the usable items before the bad one.
type PollError struct {
	Reason string
	Err    error
}

func (e *PollError) Error() string { return "poll failed: " + e.Err.Error() }
func (e *PollError) Unwrap() error { return e.Err }

func pollErr(reason string, format string, args ...any) error {
	return &PollError{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// Poll fetches the next batch of items. A bad_item PollError comes with a
// batch of the items before the unusable one.
//
// The answer is decoded as it arrives (only its items are kept). An answer
// that passes the response limit (MaxResponseBytes) is asked again with a
// smaller limit (half, or the number of items that fitted if fewer), down
// to 1, so that a page of large items still moves the queue; Batch.Full is
// relative to the limit that answered. The smaller limit is kept for the
// next polls and doubled again once an answer at it was less than half the
// response limit. Only an item that alone passes the response limit fails
// the poll ("too_large"), naming the id it follows.
func (c *Client) Poll(ctx context.Context, q Query) (Batch, error) {
	limit := int(c.limit.Load())
	if q.Limit > 0 && q.Limit < limit {
		limit = q.Limit
	}
	for {
		b, ans, err := c.pollOnce(ctx, q, limit)
		if !ans.overLimit {
			if err == nil && limit < BatchLimit && 2*ans.size <= c.maxBody {
				c.limit.CompareAndSwap(int32(limit), int32(min(2*limit, BatchLimit)))
			}
			return b, err
		}
		if limit == 1 {
			return Batch{}, pollErr("too_large", "%s alone is larger than the %d-byte response limit: it cannot be fetched",
				itemAfter(q), c.maxBody)
		}
		next := max(1, min(limit/2, ans.whole))
		c.limit.CompareAndSwap(int32(limit), int32(next))
		limit = next
	}
}

// itemAfter names the first item a query asks for.
func itemAfter(q Query) string {
	after := q.AfterID
	if q.ClusterID != "" {
		after = q.LastProcessedID
	}
	if after <= 0 {
		return "the first edge item waiting"
	}
	return fmt.Sprintf("the edge item after id %d", after)
}

// answer describes one poll's answer body: its size as read, whether it
// was a well-formed page up to the point where it passed the response limit
// (overLimit), and how many items were read whole before that.
type answer struct {
	size      int64
	overLimit bool
	whole     int
}

// pollOnce asks for one page of at most limit items.
func (c *Client) pollOnce(ctx context.Context, q Query, limit int) (Batch, answer, error) {
	req, err := c.pollRequest(ctx, q, limit)
	if err != nil {
		return Batch{}, answer{}, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return Batch{}, answer{}, transportErr(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		drain(resp.Body)
		return Batch{}, answer{}, &PollError{Reason: "auth", Err: ErrAuth}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		drain(resp.Body)
		return Batch{}, answer{}, pollErr("status_"+strconv.Itoa(resp.StatusCode), "ilert API answered %s", resp.Status)
	}
	body := &limitedBody{r: resp.Body, left: c.maxBody}
	b, whole, err := decodeBatch(body, limit)
	// Passing the limit while decoding: the page was well-formed so far (a
	// syntax error would have stopped the decoder before it read on), a
	// page of too many or too large items.
	ans := answer{overLimit: body.over, whole: whole}
	if err != nil && !body.over && body.err == nil {
		// A malformed answer larger than the limit is reported as such
		// (as when the limit was checked before decoding).
		_, _ = io.Copy(io.Discard, body)
	}
	ans.size = c.maxBody - body.left
	switch {
	case body.over:
		return Batch{}, ans, pollErr("too_large", "response larger than %d bytes", c.maxBody)
	case body.err != nil:
		return Batch{}, ans, transportErr(ctx, body.err)
	}
	var ie *ItemError
	if errors.As(err, &ie) {
		// The items before the unusable one are good: hand them over with
		// the error (the cycle delivers them, then fails).
		return b, ans, &PollError{Reason: "bad_item", Err: err}
	}
	if err != nil {
		return Batch{}, ans, &PollError{Reason: "decode", Err: err}
	}
	return b, ans, nil
}

func (c *Client) pollRequest(ctx context.Context, q Query, limit int) (*http.Request, error) {
	v := url.Values{}
	v.Set("limit", strconv.Itoa(limit))
	if q.ClusterID != "" {
		v.Set("cluster-id", q.ClusterID)
		v.Set("instance-id", q.InstanceID)
		if q.LastProcessedID > 0 {
			v.Set("last-processed-id", strconv.FormatInt(q.LastProcessedID, 10))
		}
	} else {
		v.Set("after-id", strconv.FormatInt(q.AfterID, 10))
	}
	u := *c.base
	u.Path += "/api/edge-connections/events"
	u.RawQuery = v.Encode()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, pollErr("request", "building request: %v", err)
	}
	req.Header.Set("Authorization", c.key)
	req.Header.Set("User-Agent", "edgepoll/"+Version)
	req.Header.Set("Accept", "application/json")
	return req, nil
}

// errOverLimit is limitedBody's read error past the response limit.
var errOverLimit = errors.New("response limit passed")

// limitedBody reads a response body up to left bytes: one byte more is
// errOverLimit (over). err is the first read error other than io.EOF.
type limitedBody struct {
	r    io.Reader
	left int64
	over bool
	err  error
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.over {
		return 0, errOverLimit
	}
	if l.left <= 0 {
		var one [1]byte
		n, err := io.ReadFull(l.r, one[:])
		if n > 0 {
			l.over = true
			return 0, errOverLimit
		}
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		return 0, l.note(err)
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, l.note(err)
}

func (l *limitedBody) note(err error) error {
	if err != nil && err != io.EOF && l.err == nil {
		l.err = err
	}
	return err
}

// Heartbeat pings the ilert heartbeat with key. Errors never contain the
// key (it is part of the URL path).
func (c *Client) Heartbeat(ctx context.Context, key string) error {
	u := *c.base
	u.Path += "/api/heartbeats/" + url.PathEscape(key)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return errors.New("heartbeat: invalid heartbeat key")
	}
	req.Header.Set("User-Agent", "edgepoll/"+Version)
	resp, err := c.hc.Do(req)
	if err != nil {
		// *url.Error carries the URL, which carries the key: drop it.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("heartbeat: %w", err)
	}
	defer resp.Body.Close()
	drain(resp.Body)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("heartbeat: ilert answered %s", resp.Status)
	}
	return nil
}

// ErrCrossOriginRedirect: the API (or the heartbeat) redirected to another
// scheme, host or port. The redirect is not followed: the connector key
// (Authorization) and the heartbeat key (in the path) must never reach
// another origin, and Go's client would keep the Authorization header
// whenever only the port or the scheme changes.
var ErrCrossOriginRedirect = errors.New("redirect to another scheme, host or port refused (the key is never sent elsewhere)")

// maxRedirects bounds same-origin redirects.
const maxRedirects = 5

// sameOriginRedirect is the clients' redirect policy: only redirects to the
// same scheme, host and port are followed, at most maxRedirects, and
// without a Referer (a heartbeat's would carry its key).
func sameOriginRedirect(req *http.Request, via []*http.Request) error {
	req.Header.Del("Referer")
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	if origin(req.URL) != origin(via[0].URL) {
		return fmt.Errorf("%w: to %s", ErrCrossOriginRedirect, origin(req.URL))
	}
	return nil
}

// origin is scheme://host:port of u, with the scheme's default port.
func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	return strings.ToLower(u.Scheme) + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

func transportErr(ctx context.Context, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL is ours and harmless, but keep messages short
	}
	switch {
	case errors.Is(err, ErrCrossOriginRedirect):
		return &PollError{Reason: "redirect", Err: err}
	case ctx.Err() != nil:
		return &PollError{Reason: "canceled", Err: ctx.Err()}
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return pollErr("timeout", "ilert API request timed out: %v", err)
	default:
		return pollErr("transport", "ilert API unreachable: %v", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func drain(r io.Reader) { _, _ = io.Copy(io.Discard, io.LimitReader(r, 64<<10)) }

func describeStart(b []byte) string {
	const n = 16
	s := b
	if len(s) > n {
		s = s[:n]
	}
	return strconv.QuoteToASCII(string(s)) + ifLong(len(b) > n)
}

func ifLong(long bool) string {
	if long {
		return "..."
	}
	return ""
}

// ContainsControl reports whether s contains a C0 control character or DEL:
// never valid in a key, a password or a header value.
func ContainsControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// redactURL drops userinfo and query from a URL for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable URL>"
	}
	u.User = nil
	u.RawQuery = ""
	u.Fragment = ""
	return u.String()
}
