package awsjson

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var testCreds = credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "token")

// verifySig re-signs the received request with the same credentials and
// time and compares the Authorization header: the body hash, the target
// and content type headers are covered by a valid signature.
func verifySig(t *testing.T, r *http.Request, body []byte, service string) {
	t.Helper()
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	require.NoError(t, err)
	sum := sha256.Sum256(body)
	clone, _ := http.NewRequest(r.Method, "http://"+r.Host+r.URL.Path, bytes.NewReader(body))
	for _, h := range []string{"Content-Type", "X-Amz-Target"} {
		clone.Header.Set(h, r.Header.Get(h))
	}
	creds, _ := testCreds.Retrieve(context.Background())
	require.NoError(t, v4.NewSigner().SignHTTP(context.Background(), creds, clone, hex.EncodeToString(sum[:]), service, "eu-west-1", at))
	assert.Equal(t, clone.Header.Get("Authorization"), r.Header.Get("Authorization"))
	assert.Equal(t, "token", r.Header.Get("X-Amz-Security-Token"))
}

func TestDoSignsAndDecodes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		verifySig(t, r, body, "ssm")
		assert.Equal(t, "AmazonSSM.GetParameter", r.Header.Get("X-Amz-Target"))
		assert.Equal(t, "application/x-amz-json-1.1", r.Header.Get("Content-Type"))
		assert.JSONEq(t, `{"Name":"/p","WithDecryption":true}`, string(body))
		_, _ = w.Write([]byte(`{"Parameter":{"Value":"v"}}`))
	}))
	defer srv.Close()
	c := &Client{Service: SSM, Endpoint: srv.URL, Region: "eu-west-1", Credentials: testCreds}
	var out struct{ Parameter struct{ Value string } }
	require.NoError(t, c.Do(context.Background(), "GetParameter", map[string]any{"Name": "/p", "WithDecryption": true}, &out))
	assert.Equal(t, "v", out.Parameter.Value)
}

func TestErrorsAndRetries(t *testing.T) {
	var calls atomic.Int32
	answers := []struct {
		status int
		body   string
	}{
		{500, `{"__type":"com.amazonaws.ssm#InternalServerError","message":"boom"}`},
		{400, `{"__type":"com.amazonaws.ssm#ThrottlingException","message":"slow down"}`},
		{200, `{}`},
		{400, `{"__type":"com.amazonaws.ssm#ParameterNotFound","Message":"no such parameter"}`},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := answers[int(calls.Add(1)-1)%len(answers)]
		w.WriteHeader(a.status)
		_, _ = w.Write([]byte(a.body))
	}))
	defer srv.Close()
	c := &Client{Service: SSM, Endpoint: srv.URL, Region: "eu-west-1", Credentials: testCreds,
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 5
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })
		})}
	// A 5xx and a throttling error are retried.
	require.NoError(t, c.Do(context.Background(), "GetParameter", map[string]any{}, nil))
	assert.Equal(t, int32(3), calls.Load())
	// A missing parameter is not.
	err := c.Do(context.Background(), "GetParameter", map[string]any{}, nil)
	var ae *APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "ParameterNotFound", ae.Code)
	assert.Equal(t, "ParameterNotFound: no such parameter", err.Error())
	assert.Equal(t, int32(4), calls.Load())

	// Without a retryer: one attempt.
	c.Retryer = nil
	err = c.Do(context.Background(), "GetParameter", map[string]any{}, nil)
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "InternalServerError", ae.Code)
	assert.Equal(t, int32(5), calls.Load())
}

func TestCredentialsErrorIsReported(t *testing.T) {
	c := &Client{Service: SSM, Endpoint: "http://127.0.0.1:1", Region: "eu-west-1",
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{}, errors.New("no credentials here")
		})}
	err := c.Do(context.Background(), "GetParameter", map[string]any{}, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no credentials here")
}

func TestEndpoint(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ENDPOINT_URL_SSM", "")
	t.Setenv("AWS_USE_FIPS_ENDPOINT", "")
	t.Setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "")
	e, err := endpoint(SSM, "eu-central-1", "")
	require.NoError(t, err)
	assert.Equal(t, "https://ssm.eu-central-1.amazonaws.com", e)
	e, _ = endpoint(SecretsManager, "cn-north-1", "")
	assert.Equal(t, "https://secretsmanager.cn-north-1.amazonaws.com.cn", e)
	t.Setenv("AWS_USE_FIPS_ENDPOINT", "true")
	e, _ = endpoint(SSM, "us-east-1", "")
	assert.Equal(t, "https://ssm-fips.us-east-1.amazonaws.com", e)
	_, err = endpoint(SSM, "", "")
	assert.ErrorContains(t, err, "AWS_REGION")

	t.Setenv("AWS_ENDPOINT_URL", "http://all:1/")
	e, _ = endpoint(SSM, "us-east-1", "")
	assert.Equal(t, "http://all:1", e)
	t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://sm:2")
	e, _ = endpoint(SecretsManager, "us-east-1", "")
	assert.Equal(t, "http://sm:2", e)
	t.Setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
	e, _ = endpoint(SecretsManager, "us-east-1", "")
	assert.True(t, strings.HasPrefix(e, "https://secretsmanager"), e)
}

// Retries draw on the retryer's quota: once it is spent, a failing call is
// no longer retried (the SDK's token bucket, which a bare retry loop
// bypassed).
func TestRetriesSpendTheQuota(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(500)
		_, _ = w.Write([]byte(`{"__type":"InternalServerError"}`))
	}))
	defer srv.Close()
	c := &Client{Service: SSM, Endpoint: srv.URL, Region: "eu-west-1", Credentials: testCreds,
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 3
			o.RetryCost = 5
			o.RateLimiter = ratelimit.NewTokenRateLimit(10) // two retries' worth
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })
		})}
	require.Error(t, c.Do(context.Background(), "GetParameter", map[string]any{}, nil))
	assert.Equal(t, int32(3), calls.Load(), "two retries within the quota")
	require.Error(t, c.Do(context.Background(), "GetParameter", map[string]any{}, nil))
	assert.Equal(t, int32(4), calls.Load(), "quota spent: no retry")
}

func TestKeyFromSecretString(t *testing.T) {
	for in, want := range map[string]string{
		"iec1-raw":     "iec1-raw",
		"  iec1-raw\n": "iec1-raw",
		`{"ILERT_EDGE_CONNECTOR_KEY":"iec1-json"}`: "iec1-json",
		`{"key":"iec1-k","other":1}`:               "iec1-k",
	} {
		got, err := ValueFromSecretString(in, "ILERT_EDGE_CONNECTOR_KEY", "key")
		require.NoError(t, err, in)
		assert.Equal(t, want, got)
	}
	for _, in := range []string{"", `{"nokey":"x"}`, `{"key":5}`, `{broken`} {
		_, err := ValueFromSecretString(in, "ILERT_EDGE_CONNECTOR_KEY", "key")
		assert.Error(t, err, in)
	}
}
