package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The one-shot binary reads its key from Secrets Manager (wire-level fake).
func TestConnectorKeyFromSecretsManager(t *testing.T) {
	var calls atomic.Int32
	sm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct{ SecretId string }
		_ = json.NewDecoder(r.Body).Decode(&in)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if r.Header.Get("X-Amz-Target") != "secretsmanager.GetSecretValue" || in.SecretId != "edgepoll/key" {
			w.WriteHeader(400)
			_, _ = w.Write([]byte(`{"__type":"ResourceNotFoundException","message":"Secrets Manager can't find the specified secret."}`))
			return
		}
		calls.Add(1)
		_ = json.NewEncoder(w).Encode(map[string]any{"Name": in.SecretId, "SecretString": `{"ILERT_EDGE_CONNECTOR_KEY":"` + e2eKey + `"}`})
	}))
	defer sm.Close()
	e := newEnv(t, 4)
	tg := newTarget(t)
	aws := []string{"ILERT_API_HOST=" + e.apiSv.URL, "AWS_ENDPOINT_URL_SECRETS_MANAGER=" + sm.URL, "AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=AKIDTEST", "AWS_SECRET_ACCESS_KEY=x", "AWS_EC2_METADATA_DISABLED=true"}
	r := runBin(t, baseEnv(aws...), "--mode", "http", "--http-url", tg.srv.URL, "--state", e.state("json"),
		"--connector-key-secret", "edgepoll/key")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Len(t, tg.got(), 4)
	assert.Equal(t, int32(1), calls.Load())
	assert.NotContains(t, r.stderr, e2eKey)

	r = runBin(t, baseEnv(aws...), "--mode", "stdout", "--state", e.state("json"), "--connector-key-secret", "missing")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "ResourceNotFoundException")
}

// --secret-from reads secret options at start from Secrets Manager and SSM
// (wire-level fakes): any target's secret flag, and the heartbeat key. No
// value reaches the logs.
func TestSecretFromAWS(t *testing.T) {
	aws := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct{ SecretId, Name string }
		_ = json.NewDecoder(r.Body).Decode(&in)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		switch {
		case r.Header.Get("X-Amz-Target") == "secretsmanager.GetSecretValue" && in.SecretId == "edgepoll/hook":
			_ = json.NewEncoder(w).Encode(map[string]any{"SecretString": `{"password":"tok-From-SM"}`})
		case r.Header.Get("X-Amz-Target") == "AmazonSSM.GetParameter" && in.Name == "/edgepoll/heartbeat":
			_ = json.NewEncoder(w).Encode(map[string]any{"Parameter": map[string]any{"Value": "il1hbt-from-ssm\n"}})
		default:
			w.WriteHeader(400)
			_, _ = w.Write([]byte(`{"__type":"ResourceNotFoundException","message":"not found"}`))
		}
	}))
	defer aws.Close()
	e := newEnv(t, 2)
	tg := newTarget(t)
	env := e.vars("AWS_ENDPOINT_URL_SECRETS_MANAGER="+aws.URL, "AWS_ENDPOINT_URL_SSM="+aws.URL, "AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=AKIDTEST", "AWS_SECRET_ACCESS_KEY=x", "AWS_EC2_METADATA_DISABLED=true")
	args := []string{"--mode", "http", "--http-url", tg.srv.URL, "--state", e.state("json"), "--http-auth-header", "X-Token"}
	r := runBin(t, append(env, "EDGEPOLL_SECRET_FROM=http-auth-value=secretsmanager:edgepoll/hook,heartbeat=ssm:/edgepoll/heartbeat"), args...)
	require.Equal(t, 0, r.code, r.stderr)
	require.Len(t, tg.got(), 2)
	assert.Equal(t, "tok-From-SM", tg.hdrs[1].Get("X-Token"))
	assert.Equal(t, 1, e.api.Heartbeats("il1hbt-from-ssm"))
	assert.NotContains(t, r.stderr, "tok-From-SM")
	assert.NotContains(t, r.stderr, "il1hbt-from-ssm")

	r = runBin(t, env, append(args, "--secret-from", "http-auth-value=secretsmanager:missing")...)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "--secret-from http-auth-value")
	assert.Contains(t, r.stderr, "ResourceNotFoundException")

	for _, bad := range [][]string{
		{"--secret-from", "http-auth-value=vault:x"},
		{"--secret-from", "http-url=ssm:/x"}, // not a secret option
		{"--secret-from", "http-auth-value=ssm:/a", "--http-auth-value", "literal"},
	} {
		r = runBin(t, env, append(args, bad...)...)
		assert.Equal(t, 2, r.code, r.stderr)
		assert.Contains(t, r.stderr, "--secret-from")
		assert.NotContains(t, r.stderr, "literal")
	}
	r = runBin(t, env, "--mode", "kafka", "--kafka-brokers", "127.0.0.1:1", "--topic", "t", "--kafka-sasl-mechanism", "plain",
		"--kafka-username", "u", "--secret-from", "kafka-password=ssm:/edgepoll/nope", "--state", e.state("json"))
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Contains(t, r.stderr, "--secret-from kafka-password")
}

// A second SIGTERM exits at once, even with a delivery hanging.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	e := newEnv(t, 3)
	tg := newTarget(t)
	tg.setDelay(4 * time.Second)
	cmd := exec.Command(edgepollBin(t), "--mode", "http", "--http-url", tg.srv.URL, "--http-timeout", "2m", "--state", e.state("sqlite"))
	cmd.Env = e.vars()
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	require.Eventually(t, func() bool { return tg.inflight.Load() == 1 }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-done:
		t.Fatalf("the first signal must let the item in flight finish (exited: %v)", err)
	case <-time.After(500 * time.Millisecond):
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-done:
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee)
		assert.Equal(t, 1, ee.ExitCode())
	case <-time.After(3 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("a second signal must exit at once")
	}
}
