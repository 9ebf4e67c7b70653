// Package awsjson calls SSM and Secrets Manager (--connector-key-parameter,
// --connector-key-secret): one SigV4-signed JSON POST per operation, on the
// SDK's configuration (internal/awscfg: config.LoadDefaultConfig's
// credentials chain, retry settings, HTTP client with timeouts, CA bundle,
// endpoint_url), signer and retryer (with its retry quota). It holds no
// credentials logic of its own.
//
// It stands in for the SDK's generated ssm and secretsmanager clients,
// whose packages build schema and endpoint tables at program start in every
// run, whether it uses AWS or not (ssm alone 0.9 ms and 1.5 MB allocated;
// BENCHMARKS.md), for the two read operations edgepoll needs. DynamoDB uses
// the generated client (state/dynamo).
package awsjson

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/edgepoll/edgepoll/internal/awscfg"
)

// Service describes one JSON-protocol service.
type Service struct {
	SigningName string // "ssm": the SigV4 service name and host prefix
	EnvName     string // "SSM": AWS_ENDPOINT_URL_<EnvName> overrides the endpoint
	Target      string // "AmazonSSM": the X-Amz-Target prefix
}

// The services edgepoll calls.
var (
	SSM            = Service{SigningName: "ssm", EnvName: "SSM", Target: "AmazonSSM"}
	SecretsManager = Service{SigningName: "secretsmanager", EnvName: "SECRETS_MANAGER", Target: "secretsmanager"}
)

// Client calls one service in one region.
type Client struct {
	Service     Service
	Endpoint    string // scheme://host[:port]
	Region      string
	Credentials aws.CredentialsProvider
	// HTTP sends the requests. nil: a client with awscfg.HTTPTimeout.
	HTTP aws.HTTPClient
	// Retryer decides whether and when a failed call is retried (throttling,
	// 5xx, connection errors), within its retry quota. nil: one attempt.
	Retryer aws.Retryer

	signerOnce sync.Once
	signer     *v4.Signer
}

var defaultHTTP = &http.Client{Timeout: awscfg.HTTPTimeout}

// New builds a client on the shared AWS configuration (awscfg.Load): its
// region, credentials and HTTP client; the endpoint from
// AWS_ENDPOINT_URL_<SERVICE>, else AWS_ENDPOINT_URL or the profile's
// endpoint_url, else the service's regional endpoint; the SDK's standard
// retryer (adaptive with AWS_RETRY_MODE=adaptive) with AWS_MAX_ATTEMPTS /
// max_attempts attempts, else maxAttempts.
func New(ctx context.Context, svc Service, maxAttempts int) (*Client, error) {
	cfg, err := awscfg.Load(ctx)
	if err != nil {
		return nil, err
	}
	c := &Client{Service: svc, Region: cfg.Region, Credentials: cfg.Credentials, HTTP: cfg.HTTPClient, Retryer: retryer(cfg, maxAttempts)}
	c.Endpoint, err = endpoint(svc, cfg.Region, aws.ToString(cfg.BaseEndpoint))
	if err != nil {
		return nil, err
	}
	return c, nil
}

// retryer is the configuration's retryer, or the SDK's standard (or
// adaptive) one with the configured attempts.
func retryer(cfg aws.Config, maxAttempts int) aws.Retryer {
	if cfg.Retryer != nil {
		return cfg.Retryer()
	}
	if cfg.RetryMaxAttempts > 0 {
		maxAttempts = cfg.RetryMaxAttempts
	}
	std := func(o *retry.StandardOptions) { o.MaxAttempts = max(maxAttempts, 1) }
	if cfg.RetryMode == aws.RetryModeAdaptive {
		return retry.NewAdaptiveMode(func(o *retry.AdaptiveModeOptions) {
			o.StandardOptions = append(o.StandardOptions, std)
		})
	}
	return retry.NewStandard(std)
}

// endpoint resolves the service's endpoint URL: AWS_ENDPOINT_URL_<SERVICE>,
// else base (AWS_ENDPOINT_URL or the profile's endpoint_url, as resolved by
// the SDK's configuration), else the regional endpoint.
func endpoint(svc Service, region, base string) (string, error) {
	if !strings.EqualFold(os.Getenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"), "true") {
		for _, e := range []string{os.Getenv("AWS_ENDPOINT_URL_" + svc.EnvName), base, os.Getenv("AWS_ENDPOINT_URL")} {
			if e = strings.TrimRight(e, "/"); e != "" {
				return e, nil
			}
		}
	}
	if region == "" {
		return "", fmt.Errorf("%s: no AWS region configured (set AWS_REGION)", svc.SigningName)
	}
	host := svc.SigningName
	if strings.EqualFold(os.Getenv("AWS_USE_FIPS_ENDPOINT"), "true") {
		host += "-fips"
	}
	suffix := "amazonaws.com"
	if strings.HasPrefix(region, "cn-") {
		suffix = "amazonaws.com.cn"
	}
	return "https://" + host + "." + region + "." + suffix, nil
}

// APIError is an error answered by the service.
type APIError struct {
	Code    string // "ParameterNotFound"
	Message string
	Status  int
}

func (e *APIError) Error() string {
	if e.Message == "" {
		return e.Code
	}
	return e.Code + ": " + e.Message
}

// ErrorCode and HTTPStatusCode let the SDK's retryer classify the error
// (throttling codes, 5xx).
func (e *APIError) ErrorCode() string   { return e.Code }
func (e *APIError) HTTPStatusCode() int { return e.Status }

// Do calls operation op with the JSON of in and decodes the answer into out
// (which may be nil). Retries take a token from the retryer's quota (a
// run of failures drains it and stops retrying) and give it back on
// success, as the SDK's own retry middleware does.
func (c *Client) Do(ctx context.Context, op string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	releaseRetry := func(error) error { return nil }
	for attempt := 1; ; attempt++ {
		release := c.attemptToken(ctx)
		err = c.once(ctx, op, body, hash, out)
		_ = release(err)
		_ = releaseRetry(err)
		if err == nil || c.Retryer == nil || attempt >= c.Retryer.MaxAttempts() ||
			ctx.Err() != nil || !c.Retryer.IsErrorRetryable(err) {
			return err
		}
		rel, terr := c.retryToken(ctx, err)
		if terr != nil {
			return err
		}
		releaseRetry = rel
		d, derr := c.Retryer.RetryDelay(attempt, err)
		if derr != nil {
			return err
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
	}
}

// attemptToken takes the retryer's token for one attempt.
func (c *Client) attemptToken(ctx context.Context) func(error) error {
	if c.Retryer == nil {
		return func(error) error { return nil }
	}
	if r2, ok := c.Retryer.(aws.RetryerV2); ok {
		if release, err := r2.GetAttemptToken(ctx); err == nil {
			return release
		}
		return func(error) error { return nil }
	}
	return c.Retryer.GetInitialToken()
}

// retryToken takes a retry token from the quota; an error means the quota
// is exhausted (no retry).
func (c *Client) retryToken(ctx context.Context, opErr error) (func(error) error, error) {
	return c.Retryer.GetRetryToken(ctx, opErr)
}

func (c *Client) once(ctx context.Context, op string, body []byte, hash string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Endpoint+"/", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1") // both services speak JSON 1.1
	req.Header.Set("X-Amz-Target", c.Service.Target+"."+op)
	creds, err := c.Credentials.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("AWS credentials: %v", err)
	}
	c.signerOnce.Do(func() { c.signer = v4.NewSigner() })
	if err := c.signer.SignHTTP(ctx, creds, req, hash, c.Service.SigningName, c.Region, time.Now()); err != nil {
		return err
	}
	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return apiError(resp, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %v", c.Service.SigningName, op, err)
	}
	return nil
}

// apiError reads a JSON-protocol error: the code from X-Amzn-ErrorType or
// __type ("com.amazonaws.ssm#ParameterNotFound"),
// the message from message or Message.
func apiError(resp *http.Response, data []byte) error {
	var e struct {
		Type     string `json:"__type"`
		Message  string `json:"message"`
		Message2 string `json:"Message"`
	}
	_ = json.Unmarshal(data, &e)
	code := resp.Header.Get("X-Amzn-ErrorType")
	if code == "" {
		code = e.Type
	}
	if i := strings.LastIndexByte(code, '#'); i >= 0 {
		code = code[i+1:]
	}
	if i := strings.IndexByte(code, ':'); i >= 0 {
		code = code[:i]
	}
	if code == "" {
		code = "HTTP" + strconv.Itoa(resp.StatusCode)
	}
	msg := e.Message
	if msg == "" {
		msg = e.Message2
	}
	if len(msg) > 300 {
		msg = msg[:300]
	}
	return &APIError{Code: code, Message: msg, Status: resp.StatusCode}
}
