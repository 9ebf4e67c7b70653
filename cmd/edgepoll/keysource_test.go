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

func TestKeyFromSecretString(t *testing.T) {
	for in, want := range map[string]string{
		"iec1-raw":     "iec1-raw",
		"  iec1-raw\n": "iec1-raw",
		`{"ILERT_EDGE_CONNECTOR_KEY":"iec1-json"}`: "iec1-json",
		`{"key":"iec1-k","other":1}`:               "iec1-k",
	} {
		got, err := keyFromSecretString(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got)
	}
	for _, in := range []string{"", `{"nokey":"x"}`, `{"key":5}`, `{broken`} {
		_, err := keyFromSecretString(in)
		assert.Error(t, err, in)
	}
}

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
	case <-done:
		t.Fatal("the first signal must let the item in flight finish")
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
