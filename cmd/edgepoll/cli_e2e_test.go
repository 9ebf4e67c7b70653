package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestUsageErrorsExit2NamingTheFlag(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "script.sh")
	require.NoError(t, os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644))
	key := "ILERT_EDGE_CONNECTOR_KEY=iec1-k"
	cases := []struct {
		name string
		env  []string
		args []string
		want string // the flag or variable the message must name
	}{
		{"no mode", []string{key}, nil, "--mode"},
		{"unknown mode", []string{key}, []string{"--mode", "smtp"}, "--mode"},
		{"unknown mode alias", []string{key}, []string{"--edge_mode", "smtp"}, "--edge_mode"},
		{"unknown mode env", []string{key, "EDGEPOLL_MODE=smtp"}, nil, "EDGEPOLL_MODE"},
		{"http without url", []string{key}, []string{"--mode", "http"}, "--http-url"},
		{"http bad url", []string{key}, []string{"--mode", "http", "--edge_http_url", "localhost:80"}, "--edge_http_url"},
		{"http bad method", []string{key}, []string{"--mode", "http", "--http-url", "http://x", "--http-method", "GET"}, "--http-method"},
		{"auth header without value", []string{key}, []string{"--mode", "http", "--http-url", "http://x", "--edge_http_auth_header", "Authorization"}, "--edge_http_auth_header"},
		{"auth value without header", []string{key, "ILERT_EDGE_HTTP_AUTH_VALUE=s3cr3t"}, []string{"--mode", "http", "--http-url", "http://x"}, "ILERT_EDGE_HTTP_AUTH_VALUE"},
		{"kafka without brokers", []string{key}, []string{"--mode", "kafka", "--topic", "t"}, "--kafka-brokers"},
		{"kafka bad broker", []string{key}, []string{"--mode", "kafka", "--kafka_brokers", "nohost", "--topic", "t"}, "--kafka_brokers"},
		{"kafka without topic", []string{key}, []string{"--mode", "kafka", "--kafka-brokers", "h:9092"}, "--topic"},
		{"mqtt without host", []string{key}, []string{"--mode", "mqtt", "--topic", "t"}, "--mqtt-host"},
		{"mqtt qos 3", []string{key}, []string{"--mode", "mqtt", "-m", "h", "--topic", "t", "--mqtt-qos", "3"}, "--mqtt-qos"},
		{"mqtt qos alias", []string{key}, []string{"--mode", "mqtt", "-m", "h", "--edge_topic", "t", "--mqtt_qos", "-1"}, "--mqtt_qos"},
		{"mqtt port", []string{key}, []string{"--mode", "mqtt", "-m", "h", "--topic", "t", "-q", "70000"}, "-q"},
		{"mqtt wildcard topic", []string{key}, []string{"--mode", "mqtt", "-m", "h", "--topic", "a/#"}, "--topic"},
		{"mqtt missing ca", []string{key}, []string{"--mode", "mqtt", "-m", "h", "--topic", "t", "--mqtt_ca", "/nonexistent/ca.pem"}, "--mqtt_ca"},
		{"script missing", []string{key}, []string{"--mode", "script"}, "--script"},
		{"script not found", []string{key}, []string{"--mode", "script", "--edge_script", "/nonexistent"}, "--edge_script"},
		{"script not executable", []string{key}, []string{"--mode", "script", "--script", notExec}, "--script"},
		{"interval 4", []string{key}, []string{"--mode", "stdout", "--poll-interval", "4"}, "--poll-interval"},
		{"interval 121", []string{key}, []string{"--mode", "stdout", "--edge_poll_interval", "121"}, "--edge_poll_interval"},
		{"interval 121s", []string{key}, []string{"--mode", "stdout", "--poll-interval", "121s"}, "--poll-interval"},
		{"interval env", []string{key, "EDGEPOLL_POLL_INTERVAL=2s"}, []string{"--mode", "stdout"}, "EDGEPOLL_POLL_INTERVAL"},
		{"interval garbage", []string{key}, []string{"--mode", "stdout", "--poll-interval", "soon"}, "--poll-interval"},
		{"standby interval", []string{key}, []string{"--mode", "stdout", "--edge_standby_interval", "500"}, "--edge_standby_interval"},
		{"state scheme", []string{key}, []string{"--mode", "stdout", "--state", "redis:x"}, "--state"},
		{"state env", []string{key, "EDGEPOLL_STATE=file.db"}, []string{"--mode", "stdout"}, "EDGEPOLL_STATE"},
		{"state empty path", []string{key}, []string{"--mode", "stdout", "--state", "sqlite:"}, "--state"},
		{"dynamodb table", []string{key}, []string{"--mode", "stdout", "--state", "dynamodb:a"}, "--state"},
		{"port without loop", []string{key}, []string{"--mode", "stdout", "-p", "8977"}, "-p"},
		{"log format", []string{key}, []string{"--mode", "stdout", "--log-format", "xml"}, "--log-format"},
		{"unknown flag", []string{key}, []string{"--mode", "stdout", "--event_topic", "x"}, "--event_topic"},
		{"bad int", []string{key}, []string{"--mode", "mqtt", "--mqtt-port", "abc"}, "--mqtt-port"},
		{"missing key", nil, []string{"--mode", "stdout"}, "ILERT_EDGE_CONNECTOR_KEY"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			args := append([]string{}, tc.args...)
			r := runBin(t, baseEnv(append(tc.env, "EDGEPOLL_STATE_DIR_UNUSED="+dir)...), args...)
			assert.Equal(t, 2, r.code, "stderr: %s", r.stderr)
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			assert.Len(t, lines, 1, "one-line message: %q", r.stderr)
			assert.Contains(t, r.stderr, tc.want)
			assert.Empty(t, r.stdout)
			assert.NotContains(t, r.stderr, "s3cr3t")
			assert.NotContains(t, r.stderr, "iec1-k")
		})
	}
}

func TestHelpListsEveryFlagWithEnv(t *testing.T) {
	r := runBin(t, baseEnv(), "--help")
	require.Equal(t, 0, r.code, r.stderr)
	for _, want := range []string{
		"--api-url", "ILERT_API_HOST", "--mode", "EDGEPOLL_MODE", "--http-url", "EDGEPOLL_HTTP_URL",
		"--http-method", "--http-auth-header", "--http-auth-value", "ILERT_EDGE_HTTP_AUTH_VALUE",
		"--kafka-brokers", "--topic", "--mqtt-host", "--mqtt-port", "--mqtt-qos", "--mqtt-username",
		"--mqtt-password", "EDGEPOLL_MQTT_PASSWORD", "--mqtt-tls", "--mqtt-ca", "--script",
		"--script-timeout", "EDGEPOLL_SCRIPT_TIMEOUT", "--state", "EDGEPOLL_STATE", "--loop",
		"--poll-interval", "--standby-interval", "--cluster-id", "--instance-id", "--port",
		"--heartbeat", "ILERT_HEARTBEAT_KEY", "--verbose", "ILERT_EDGE_CONNECTOR_KEY",
		`sqlite:edgepoll.db`, "30s", "1883", "POST",
		"--edge_mode", "--edge_http_url", "--kafka_brokers", "--edge_topic", "--mqtt_qos", "--edge_script",
		"--edge_poll_interval", "--edge_cluster_id", "--mqtt_host]", "[ilagent: -q, --mqtt_port]",
	} {
		assert.Contains(t, r.stdout, want)
	}
}

func TestVersion(t *testing.T) {
	r := runBin(t, baseEnv(), "--version")
	require.Equal(t, 0, r.code)
	assert.True(t, strings.HasPrefix(r.stdout, "edgepoll "), r.stdout)
}

// Odd inputs never panic (runBin fails on a stack trace) and never exit 0
// with a bad configuration.
func TestOddInputsNeverPanic(t *testing.T) {
	odd := [][]string{
		{"--mode"}, {"--mode="}, {"-p"}, {"-vvvvvvvvvv", "--mode", "stdout", "--state", "json:/nonexistent/dir/x.json"},
		{"--poll-interval", "-5"}, {"--poll-interval", "1e400"}, {"--mqtt-port", "99999999999999999999"},
		{"--mode", "http", "--http-url", "http://\x01"}, {"--mode", "\xff\xfe"}, {"--", "--mode", "stdout"},
		{"--state", ":::"}, {"--mode", "stdout", "--api-url", "::"}, {"--help", "--mode", "x"},
	}
	for _, args := range odd {
		r := runBin(t, baseEnv("ILERT_EDGE_CONNECTOR_KEY=k"), args...)
		assert.Contains(t, []int{0, 1, 2}, r.code, "%q: %s", args, r.stderr)
	}
}
