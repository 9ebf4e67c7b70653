package http

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/sinks"
)

// Registration makes --mode http known to edgepoll.
var Registration = sinks.Registration{Mode: "http", Lambda: true, New: func() sinks.Target { return &Options{} }}

// Options are the http target's flags (and --config keys).
type Options struct {
	URL           string        `name:"http-url" aliases:"edge_http_url" help:"http: target URL (required for http)." group:"HTTP"`
	Method        string        `name:"http-method" aliases:"edge_http_method" default:"POST" help:"http: POST or PUT." group:"HTTP"`
	AuthHeader    string        `name:"http-auth-header" aliases:"edge_http_auth_header" help:"http: name of an auth header sent with every request (needs a value)." group:"HTTP"`
	AuthValue     string        `name:"http-auth-value" aliases:"edge_http_auth_value" env:"ILERT_EDGE_HTTP_AUTH_VALUE,EDGEPOLL_HTTP_AUTH_VALUE" help:"http: the auth header's value (secret; prefer the environment)." group:"HTTP" secret:""`
	Timeout       time.Duration `name:"http-timeout" default:"30s" help:"http: timeout of one delivery request (the reference agent's 30s)." group:"HTTP"`
	SigningSecret string        `name:"http-signing-secret" env:"EDGEPOLL_HTTP_SIGNING_SECRET" help:"http: sign every delivery with this secret: X-ilert-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, \"<t>.<body>\")> (secret; prefer the environment; see docs/feeding.md)." group:"HTTP" secret:""`
	RetryStatus   string        `name:"http-retry-status" help:"http: comma-separated 4xx statuses that are retryable instead of skipped, e.g. 401,403,404 (408, 429 and 5xx always are)." placeholder:"LIST" group:"HTTP"`
}

// Validate implements sinks.Target.
func (o *Options) Validate(sinks.Shared) error {
	_, err := o.config()
	return err
}

func (o *Options) config() (Config, error) {
	retry, err := retryStatuses(o.RetryStatus)
	if err != nil {
		return Config{}, sinks.Problem("http-retry-status", err.Error())
	}
	o.Method = strings.ToUpper(strings.TrimSpace(o.Method))
	cfg := Config{URL: o.URL, Method: o.Method, AuthHeader: o.AuthHeader, AuthValue: o.AuthValue,
		Timeout: o.Timeout, RetryStatus: retry, SigningSecret: o.SigningSecret}
	return cfg, cfg.check()
}

// check is the one set of rules for a Config, from flags or from code;
// problems name the flag.
func (c Config) check() error {
	if c.URL == "" {
		return sinks.Problem("http-url", "is required with --mode http")
	}
	hu, err := url.Parse(c.URL)
	if err != nil || (hu.Scheme != "http" && hu.Scheme != "https") || hu.Host == "" {
		return sinks.Problem("http-url", "must be an absolute http(s) URL")
	}
	if p := hu.Port(); p != "" { // a port that can never be reached
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return sinks.Problem("http-url", "port "+p+" is outside 1..65535")
		}
	}
	if m := strings.ToUpper(strings.TrimSpace(c.Method)); m != "POST" && m != "PUT" {
		return sinks.Problem("http-method", "must be POST or PUT")
	}
	if c.AuthHeader != "" && c.AuthValue == "" {
		return sinks.Problem("http-auth-header", "is set but has no value (set --http-auth-value or ILERT_EDGE_HTTP_AUTH_VALUE)")
	}
	if c.AuthHeader == "" && c.AuthValue != "" {
		return sinks.Problem("http-auth-value", "is set but --http-auth-header is not")
	}
	if c.AuthHeader != "" && !validHeaderName(c.AuthHeader) {
		return sinks.Problem("http-auth-header", "is not a valid HTTP header name")
	}
	if poll.ContainsControl(c.AuthValue) {
		return sinks.Problem("http-auth-value", "contains control characters")
	}
	if poll.ContainsControl(c.SigningSecret) {
		return sinks.Problem("http-signing-secret", "contains control characters")
	}
	if c.Timeout <= 0 {
		return sinks.Problem("http-timeout", "must be positive")
	}
	for _, code := range c.RetryStatus {
		if code < 400 || code > 499 {
			return sinks.Problem("http-retry-status", fmt.Sprintf("%d is not a 4xx status (408, 429 and 5xx are always retryable)", code))
		}
	}
	return nil
}

// Open implements sinks.Target.
func (o *Options) Open(_ context.Context, _ sinks.Shared, env sinks.Env) (poll.Sink, error) {
	cfg, err := o.config()
	if err != nil {
		return nil, err
	}
	s, err := New(cfg, env.Log)
	if err != nil {
		return nil, err
	}
	return poll.OneByOne(s), nil
}

func retryStatuses(s string) ([]int, error) {
	var out []int
	for _, p := range sinks.SplitList(s) {
		code, err := strconv.Atoi(p)
		if err != nil || code < 400 || code > 499 {
			return nil, fmt.Errorf("%q is not a 4xx status (408, 429 and 5xx are always retryable)", p)
		}
		out = append(out, code)
	}
	return out, nil
}

func validHeaderName(h string) bool {
	for _, r := range h {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?={}`, r) {
			return false
		}
	}
	return h != ""
}
