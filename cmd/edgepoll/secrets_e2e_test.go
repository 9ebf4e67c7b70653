package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/poll/ilerttest"
)

// Every secret edgepoll is given must stay out of everything it prints, in
// every log format and verbosity, on success and on failure.
func TestNoSecretInAnyOutput(t *testing.T) {
	const (
		authValue = "Bearer AUTH-s3cr3t-value"
		hbKey     = "il1hbt-HB-s3cr3t"
		mqttPass  = "MQTT-s3cr3t-pass"
		kafkaPass = "KAFKA-s3cr3t-pass"
	)
	secrets := []string{e2eKey, authValue, "AUTH-s3cr3t-value", hbKey, mqttPass, kafkaPass}
	var outputs []string
	scan := func(name string, r result) {
		outputs = append(outputs, r.stdout, r.stderr)
		for _, s := range secrets {
			assert.NotContains(t, r.stdout+r.stderr, s, "%s: a secret leaked", name)
		}
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "dump-env.sh")
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\nenv\nenv >&2\ncat\nexit 1\n"), 0o755))

	for _, format := range []string{"text", "json"} {
		e := newEnv(t, 5)
		tg := newTarget(t)
		secretEnv := e.vars("ILERT_EDGE_HTTP_AUTH_VALUE="+authValue, "ILERT_HEARTBEAT_KEY="+hbKey,
			"EDGEPOLL_MQTT_PASSWORD="+mqttPass, "EDGEPOLL_KAFKA_PASSWORD="+kafkaPass)
		common := []string{"-v", "-v", "--log-format", format, "--state", e.state("sqlite")}
		httpArgs := append([]string{"--mode", "http", "--http-url", tg.srv.URL, "--http-auth-header", "Authorization"}, common...)

		scan("http ok", runBin(t, secretEnv, httpArgs...))
		require.Len(t, tg.got(), 5)

		e.api.Push(e2eKey, ilerttest.AlertEvents(3)...)
		tg.setStatus(func(int64) int { return http.StatusInternalServerError })
		scan("target 500", runBin(t, secretEnv, httpArgs...))

		e.api.FailHeartbeats(true)
		tg.setStatus(nil)
		r := runBin(t, secretEnv, httpArgs...)
		require.Equal(t, 0, r.code, r.stderr)
		assert.Contains(t, r.stderr, "heartbeat", "the failed ping is logged")
		scan("heartbeat failing", r)

		e.api.Fail(ilerttest.Fault{Status: 401})
		scan("api 401", runBin(t, secretEnv, httpArgs...))

		e.api.Push(e2eKey, ilerttest.AlertEvents(1)...)
		scan("script dumping its env", runBin(t, secretEnv, append([]string{"--mode", "script", "--script", script}, common...)...))

		scan("mqtt bad broker", runBin(t, secretEnv, append([]string{"--mode", "mqtt", "-m", "127.0.0.1", "-q", "1",
			"--topic", "t", "--mqtt-username", "u", "--mqtt-connect-timeout", "1s"}, common...)...))
		scan("kafka bad broker", runBin(t, secretEnv, append([]string{"--mode", "kafka", "--kafka-brokers", "127.0.0.1:1",
			"--topic", "t", "--kafka-sasl-mechanism", "plain", "--kafka-username", "u", "--kafka-delivery-timeout", "2s"}, common...)...))
		scan("usage error", runBin(t, secretEnv, "--mode", "http", "--http-url", tg.srv.URL))

		// The daemon, briefly, with the same secrets.
		d := startDaemonBin(t, secretEnv, append([]string{"--mode", "http", "--http-url", tg.srv.URL, "--http-auth-header", "Authorization"}, common...)...)
		require.Eventually(t, func() bool { c, _ := d.get(t, "/ready"); return c == 204 }, 10*time.Second, 50*time.Millisecond)
		_, metricsBody := d.get(t, "/metrics")
		outputs = append(outputs, metricsBody)
		_ = d.cmd.Process.Signal(os.Interrupt)
		err := <-d.done
		d.done <- err
		scan("daemon", result{stderr: d.logs.String() + metricsBody})
	}
	all := strings.Join(outputs, "\n")
	assert.Contains(t, all, "item=", "the scan saw item logs")
	assert.Greater(t, len(all), 2000, "the scan saw real output")
}
