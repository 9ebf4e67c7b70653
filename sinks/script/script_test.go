package script

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/internal/testenv"
	"github.com/edgepoll/edgepoll/poll"
)

func TestMain(m *testing.M) {
	GuardMain()
	os.Exit(m.Run())
}

func writeScript(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "handler.sh")
	require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755))
	return p
}

func TestStdinAndEnvExact(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	t.Setenv("ILERT_EDGE_CONNECTOR_KEY", "iec1-secret")
	t.Setenv("ILERT_HEARTBEAT_KEY", "hb-secret")
	t.Setenv("EDGEPOLL_MQTT_PASSWORD", "mqtt-secret")
	t.Setenv("EDGEPOLL_KAFKA_PASSWORD", "kafka-secret")
	t.Setenv("EDGEPOLL_HTTP_AUTH_VALUE", "auth-secret")
	t.Setenv("UNRELATED_VAR", "kept")
	t.Setenv("NOC_TOKEN", "noc-secret") // a --config file's http-auth-value-env
	p := writeScript(t, `cat > `+out+`.stdin; env > `+out+`.env`)
	s, err := New(Config{Path: p, Secrets: []string{"iec1-secret", "hb-secret", "mqtt-secret", "kafka-secret", "auth-secret", "noc-secret"}}, nil)
	require.NoError(t, err)
	payload := `{"id":"100","eventType":"alert-created","timestamp":"2026-05-04T10:00:00.000Z","big":123456789012345678901234567890,"u":"Grüße\n"}`
	require.NoError(t, s.Deliver(context.Background(), poll.NewEvent(42, []byte(payload))))
	stdin, _ := os.ReadFile(out + ".stdin")
	assert.Equal(t, payload, string(stdin))
	env, _ := os.ReadFile(out + ".env")
	for _, want := range []string{"ILERT_EVENT_TYPE=alert-created", "ILERT_ALERT_ID=100", "ILERT_EDGE_ITEM_ID=42", "ILERT_TIMESTAMP=2026-05-04T10:00:00.000Z", "UNRELATED_VAR=kept"} {
		assert.Contains(t, string(env), want+"\n")
	}
	for _, secret := range []string{"iec1-secret", "hb-secret", "mqtt-secret", "kafka-secret", "auth-secret", "noc-secret"} {
		assert.NotContains(t, string(env), secret)
	}
}

func TestFailuresAreRetryable(t *testing.T) {
	cases := map[string]string{
		"exit 3":        "exit_status",
		"kill -TERM $$": "signal",
	}
	for body, reason := range cases {
		s, err := New(Config{Path: writeScript(t, body)}, nil)
		require.NoError(t, err)
		err = s.Deliver(context.Background(), poll.NewEvent(1, []byte(`{}`)))
		require.Error(t, err, body)
		assert.False(t, poll.IsPermanent(err))
		assert.Equal(t, reason, poll.ReasonOf(err), body)
	}
}

// alive: a zombie counts as dead (testenv.Alive), so these tests do not
// depend on PID 1 reaping the killed grandchild.
func alive(pid int) bool { return testenv.Alive(pid) }

func TestTimeoutKillsWholeGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	p := writeScript(t, "sleep 1000 &\necho $! > "+pidFile+".tmp\nmv "+pidFile+".tmp "+pidFile+"\nwait\n")
	// On a loaded machine the script may not even have started its child
	// before the timeout: then try again with a longer one (the test is about
	// what the timeout kills, not about how fast the script starts).
	for timeout := 500 * time.Millisecond; ; timeout *= 2 {
		require.Less(t, timeout, 2*time.Minute, "the script never got to start its child")
		s, err := New(Config{Path: p, Timeout: timeout}, nil)
		require.NoError(t, err)
		err = s.Deliver(context.Background(), poll.NewEvent(1, []byte(`{}`)))
		require.NoError(t, s.Close())
		require.Error(t, err)
		assert.Equal(t, "timeout", poll.ReasonOf(err))
		b, err := os.ReadFile(pidFile)
		if err != nil {
			continue
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		require.Eventually(t, func() bool { return !alive(pid) }, 30*time.Second, 20*time.Millisecond, "grandchild %d killed", pid)
		return
	}
}

func TestLeftoverGrandchildDoesNotHang(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	// exits 0 at once, but a background child keeps stdout open
	p := writeScript(t, "sleep 1000 &\necho $! > "+pidFile+"\nexit 0\n")
	s, err := New(Config{Path: p, Timeout: 20 * time.Second}, nil)
	require.NoError(t, err)
	// A hang would end in the 20s timeout: an error, not exit 0.
	require.NoError(t, s.Deliver(context.Background(), poll.NewEvent(1, []byte(`{}`))))
	b, err := os.ReadFile(pidFile)
	require.NoError(t, err)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	require.Eventually(t, func() bool { return !alive(pid) }, 30*time.Second, 20*time.Millisecond)
}

func TestUnreadStdinBigPayloadBoundedByTimeout(t *testing.T) {
	p := writeScript(t, "sleep 1000\n")
	s, err := New(Config{Path: p, Timeout: 300 * time.Millisecond}, nil)
	require.NoError(t, err)
	big := append([]byte(`{"x":"`), append(bytes.Repeat([]byte("a"), 1<<20), []byte(`"}`)...)...)
	err = s.Deliver(context.Background(), poll.NewEvent(1, big)) // the kill ends the blocked stdin write
	assert.Equal(t, "timeout", poll.ReasonOf(err))
}

func TestScriptNotReadingStdinStillSucceeds(t *testing.T) {
	s, err := New(Config{Path: writeScript(t, "exit 0\n")}, nil)
	require.NoError(t, err)
	big := append([]byte(`{"x":"`), append(bytes.Repeat([]byte("a"), 1<<20), []byte(`"}`)...)...)
	assert.NoError(t, s.Deliver(context.Background(), poll.NewEvent(1, big)))
}

func TestOutputCappedAndLoggedNotPrinted(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := New(Config{Path: writeScript(t, "head -c 100000 /dev/zero | tr '\\0' 'x'\necho err >&2\n"), MaxOutput: 64}, log)
	require.NoError(t, err)
	require.NoError(t, s.Deliver(context.Background(), poll.NewEvent(7, []byte(`{}`))))
	assert.Contains(t, logs.String(), "item=7")
	assert.Contains(t, logs.String(), "truncated=true")
	assert.Less(t, logs.Len(), 1000)
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	noexec := filepath.Join(dir, "noexec.sh")
	require.NoError(t, os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644))
	for _, p := range []string{"", filepath.Join(dir, "missing"), dir, noexec} {
		_, err := New(Config{Path: p}, nil)
		assert.Error(t, err, p)
	}
}

func TestContextCancelKillsScript(t *testing.T) {
	s, err := New(Config{Path: writeScript(t, "sleep 1000\n")}, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = s.Deliver(ctx, poll.NewEvent(1, []byte(`{}`)))
	require.Error(t, err)
	assert.False(t, poll.IsPermanent(err))
}

// A failed script's stderr tail (bounded, control characters quoted) is in
// its error, which the cycle logs at WARN.
func TestFailedScriptErrorCarriesStderrTail(t *testing.T) {
	s, err := New(Config{Path: writeScript(t, "echo first >&2\nhead -c 3000 /dev/zero | tr '\\0' y >&2\nprintf 'boom: disk \\033[1mfull\\n' >&2\nexit 3\n")}, nil)
	require.NoError(t, err)
	err = s.Deliver(context.Background(), poll.NewEvent(1, []byte(`{}`)))
	require.Error(t, err)
	assert.Equal(t, "exit_status", poll.ReasonOf(err))
	assert.Contains(t, err.Error(), `script exited with status 3; stderr (last 512 bytes): "yyy`)
	assert.Contains(t, err.Error(), `boom: disk \x1b[1mfull"`)
	assert.NotContains(t, err.Error(), "first")
	assert.Less(t, len(err.Error()), 700)

	s, err = New(Config{Path: writeScript(t, "echo 'no such host' >&2\nkill -TERM $$\n")}, nil)
	require.NoError(t, err)
	err = s.Deliver(context.Background(), poll.NewEvent(1, []byte(`{}`)))
	assert.Contains(t, err.Error(), `killed by signal terminated; stderr: "no such host"`)
}
