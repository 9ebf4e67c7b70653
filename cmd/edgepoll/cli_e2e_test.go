package main

import (
	"encoding/json"
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
		`sqlite:edgepoll.db`, "--http-timeout=30s", "1883", "POST",
		"--edge_mode", "--edge_http_url", "--kafka_brokers", "--edge_topic", "--mqtt_qos", "--edge_script",
		"--edge_poll_interval", "--edge_cluster_id", "--mqtt_host]", "[ilagent: -q, --mqtt_port]",
		"-n, --mqtt-name=NAME", "--mqtt_name]", "--mqtt_client_cert]", "--mqtt_client_key]",
	} {
		assert.Contains(t, r.stdout, want)
	}
}

func TestVersion(t *testing.T) {
	r := runBin(t, baseEnv(), "--version")
	require.Equal(t, 0, r.code)
	assert.True(t, strings.HasPrefix(r.stdout, "edgepoll "), r.stdout)
}

// Odd inputs never panic (runBin fails on a stack trace) and exit with the
// code their input calls for: 2 for a bad command line, 1 for a store that
// cannot be opened, 0 only for --help.
func TestOddInputsNeverPanic(t *testing.T) {
	odd := []struct {
		args []string
		code int
	}{
		{[]string{"--mode"}, 2}, {[]string{"--mode="}, 2}, {[]string{"-p"}, 2},
		{[]string{"-vvvvvvvvvv", "--mode", "stdout", "--state", "json:/nonexistent/dir/x.json"}, 1},
		{[]string{"--poll-interval", "-5"}, 2}, {[]string{"--poll-interval", "1e400"}, 2}, {[]string{"--mqtt-port", "99999999999999999999"}, 2},
		{[]string{"--mode", "http", "--http-url", "http://\x01"}, 2}, {[]string{"--mode", "\xff\xfe"}, 2}, {[]string{"--", "--mode", "stdout"}, 2},
		{[]string{"--state", ":::"}, 2}, {[]string{"--mode", "stdout", "--api-url", "::"}, 2}, {[]string{"--help", "--mode", "x"}, 0},
	}
	for _, tc := range odd {
		r := runBin(t, baseEnv("ILERT_EDGE_CONNECTOR_KEY=k"), tc.args...)
		assert.Equal(t, tc.code, r.code, "%q: %s", tc.args, r.stderr)
	}
}

// No parse error echoes a value: kong quotes the offending argument, and a
// secret that starts with "-" (or any value) would land in the message.
func TestParseErrorsNeverEchoAValue(t *testing.T) {
	const secret = "-Secr3tValue"
	key := "ILERT_EDGE_CONNECTOR_KEY=iec1-k"
	http := []string{"--mode", "http", "--http-url", "http://127.0.0.1:1", "--http-auth-header", "X-Token"}
	cases := []struct {
		env  []string
		args []string
		want string
	}{
		{nil, append(http, "--http-auth-value", secret), "--http-auth-value"},
		{nil, append(http, "--edge_http_auth_value", secret), "--edge_http_auth_value"},
		{nil, []string{"--mode", "mqtt", "-m", "h", "--topic", "t", "--mqtt-username", "u", "--mqtt-password", secret}, "--mqtt-password"},
		{nil, []string{"--mode", "mqtt", "-m", "h", "--topic", "t", "--mqtt_username", "u", "--mqtt_password", secret}, "--mqtt_password"},
		{nil, []string{"--mode", "kafka", "--kafka-brokers", "h:9092", "--topic", "t", "--kafka-password", secret}, "--kafka-password"},
		{nil, []string{"--mode", "stdout", "-b", secret}, "-b"},
		{nil, []string{"--mode", "stdout", "--heartbeat", secret}, "--heartbeat"},
		{nil, []string{"--mode", "stdout", "-b"}, "-b"},
		{nil, []string{"--mode", "mqtt", "--mqtt-qos", secret[1:]}, "--mqtt-qos"},
		{nil, []string{"--mode", "stdout", "--poll-interval", secret[1:]}, "--poll-interval"},
		{[]string{"EDGEPOLL_MQTT_PORT=" + secret[1:]}, []string{"--mode", "mqtt"}, "EDGEPOLL_MQTT_PORT"},
		{nil, []string{"--mode", "stdout", "--loop", secret[1:]}, "unexpected argument"},
		{nil, []string{"--mode", "stdout", "--no-such-flag=" + secret[1:]}, "--no-such-flag"},
	}
	for _, tc := range cases {
		r := runBin(t, baseEnv(append(tc.env, key)...), tc.args...)
		assert.Equal(t, 2, r.code, "%q: %s", tc.args, r.stderr)
		assert.Contains(t, r.stderr, tc.want, "%q", tc.args)
		assert.NotContains(t, r.stderr, "Secr3t", "%q", tc.args)
		assert.NotContains(t, r.stderr, "iec1-k", "%q", tc.args)
	}
}

// A control character (C0 or DEL) in a secret can never be sent: exit 2
// naming the variable or flag, before anything is polled.
func TestControlCharactersInSecretsExit2(t *testing.T) {
	for _, c := range []string{"\x01", "\t", "\x1b", "\x7f", "\r"} {
		bad := "Secr3t" + c + "x"
		key := "ILERT_EDGE_CONNECTOR_KEY=iec1-k"
		http := []string{"--mode", "http", "--http-url", "http://127.0.0.1:1", "--http-auth-header", "X-Token"}
		cases := []struct {
			env  []string
			args []string
			want string
		}{
			{[]string{"ILERT_EDGE_CONNECTOR_KEY=" + bad}, []string{"--mode", "stdout"}, "ILERT_EDGE_CONNECTOR_KEY:"},
			{[]string{key}, append(http, "--http-auth-value", bad), "--http-auth-value"},
			{[]string{key, "ILERT_EDGE_HTTP_AUTH_VALUE=" + bad}, http, "ILERT_EDGE_HTTP_AUTH_VALUE"},
			{[]string{key, "EDGEPOLL_MQTT_PASSWORD=" + bad}, []string{"--mode", "mqtt", "-m", "h", "--topic", "t", "--mqtt-username", "u"}, "EDGEPOLL_MQTT_PASSWORD"},
			{[]string{key}, []string{"--mode", "kafka", "--kafka-brokers", "h:9092", "--topic", "t", "--kafka-sasl-mechanism", "plain",
				"--kafka-username", "u", "--kafka-password", bad}, "--kafka-password"},
			{[]string{key, "ILERT_HEARTBEAT_KEY=" + bad}, []string{"--mode", "stdout"}, "ILERT_HEARTBEAT_KEY"},
		}
		for _, tc := range cases {
			r := runBin(t, baseEnv(tc.env...), tc.args...)
			assert.Equal(t, 2, r.code, "%q %q: %s", tc.env, tc.args, r.stderr)
			assert.Contains(t, r.stderr, tc.want, "%q %q", tc.env, tc.args)
			assert.NotContains(t, r.stderr, "Secr3t")
		}
	}
}

// A connector key with a trailing newline (from a secret file) works.
func TestConnectorKeyIsTrimmed(t *testing.T) {
	e := newEnv(t, 3)
	r := runBin(t, append(e.vars(), "ILERT_EDGE_CONNECTOR_KEY="+e2eKey+"\n"), "--mode", "stdout", "--state", e.state("json"))
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, 3, strings.Count(r.stdout, "\n"), r.stdout)
}

// An ilagent command line (`ilagent daemon ...`) gets a hint to use --loop.
func TestDaemonCommandHintsAtLoop(t *testing.T) {
	r := runBin(t, baseEnv("ILERT_EDGE_CONNECTOR_KEY=iec1-k"), "daemon", "--edge_mode", "stdout")
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "edgepoll --loop", r.stderr)
}

// The reference agent's MQTT flags: --mqtt_client_cert/--mqtt_client_key
// are --mqtt-cert/--mqtt-key; -n NAME is mutually exclusive with
// --mqtt-client-id (its client id is NAME-edge: TestMQTTNameIsTheClientID).
func TestReferenceAgentMQTTFlags(t *testing.T) {
	key := "ILERT_EDGE_CONNECTOR_KEY=iec1-k"
	mq := []string{"--mode", "mqtt", "-m", "h", "--topic", "t"}
	r := runBin(t, baseEnv(key), append(mq, "--mqtt_client_cert", "/nonexistent/c.pem")...)
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "--mqtt_client_cert: --mqtt-cert and --mqtt-key go together")
	r = runBin(t, baseEnv(key), append(mq, "--mqtt_client_cert", "/nonexistent/c.pem", "--mqtt_client_key", "/nonexistent/k.pem")...)
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "/nonexistent/", "the files are checked")
	r = runBin(t, baseEnv(key), append(mq, "-n", "site1", "--mqtt-client-id", "x")...)
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "-n: and --mqtt-client-id are mutually exclusive")
}

// A one-shot run with --cluster-id but no --instance-id is a new HA
// instance every time: it says so.
func TestOneShotClusterWithoutInstanceWarns(t *testing.T) {
	e := newEnv(t, 1)
	r := runBin(t, e.vars(), "--mode", "stdout", "--state", e.state("json"), "--cluster-id", "c1")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "level=WARN msg=\"--cluster-id without --instance-id")
	r = runBin(t, e.vars(), "--mode", "stdout", "--state", e.state("json"), "--cluster-id", "c1", "--instance-id", "i1")
	require.Equal(t, 0, r.code, r.stderr)
	assert.NotContains(t, r.stderr, "WARN")
}

// Under --log-format json (or EDGEPOLL_LOG_FORMAT=json) a start-up error is
// a JSON line too, whether the command line did not parse, did not
// validate, or the run could not start.
func TestStartupErrorsAreJSONUnderJSONLogs(t *testing.T) {
	cases := []struct {
		env  []string
		args []string
		code int
		want string
	}{
		{[]string{"ILERT_EDGE_CONNECTOR_KEY=k"}, []string{"--log-format", "json", "--poll-interval", "soon"}, 2, "--poll-interval"},
		{[]string{"ILERT_EDGE_CONNECTOR_KEY=k"}, []string{"--log-format=json", "--mode", "smtp"}, 2, "--mode"},
		{[]string{"ILERT_EDGE_CONNECTOR_KEY=k", "EDGEPOLL_LOG_FORMAT=json"}, []string{"--no-such-flag"}, 2, "--no-such-flag"},
		{[]string{"EDGEPOLL_LOG_FORMAT=json"}, []string{"--mode", "stdout"}, 2, "ILERT_EDGE_CONNECTOR_KEY"},
		{[]string{"ILERT_EDGE_CONNECTOR_KEY=k"}, []string{"--log-format", "json", "--mode", "stdout", "--state", "json:/nonexistent/dir/s.json"}, 1, "/nonexistent/dir"},
	}
	for _, tc := range cases {
		r := runBin(t, baseEnv(tc.env...), tc.args...)
		assert.Equal(t, tc.code, r.code, "%q: %s", tc.args, r.stderr)
		line := strings.TrimSpace(r.stderr)
		var rec map[string]any
		if assert.NoError(t, json.Unmarshal([]byte(line), &rec), "%q: not one JSON line: %q", tc.args, r.stderr) {
			assert.Equal(t, "ERROR", rec["level"])
			assert.Contains(t, rec["err"], tc.want)
		}
	}
}
