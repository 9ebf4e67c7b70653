package script

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/sinks"
)

// setsidScript starts a grandchild in a session of its own (setsid), which
// writes its pid to pidFile, then runs rest.
func setsidScript(t *testing.T, pidFile, rest string) string {
	return writeScript(t, "setsid sh -c 'echo $$ > "+pidFile+".tmp; mv "+pidFile+".tmp "+pidFile+"; exec sleep 300' &\n"+
		"while [ ! -s "+pidFile+" ]; do sleep 0.01; done\n"+rest)
}

func readPid(t *testing.T, pidFile string) int {
	t.Helper()
	b, err := os.ReadFile(pidFile)
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	return pid
}

// gone: no process, not even a zombie (this process, the subreaper, reaped
// it).
func gone(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return os.IsNotExist(err)
}

// A grandchild that leaves the script's process group and session (setsid)
// does not outlive the run: after a script that exits 0, one that fails,
// one that times out and one whose context is cancelled, it is killed and
// reaped (not left a zombie).
func TestSetsidGrandchildDoesNotOutliveTheRun(t *testing.T) {
	for name, tc := range map[string]struct {
		rest    string
		timeout time.Duration
		cancel  bool
		reason  string
	}{
		"exit 0":   {rest: "exit 0\n"},
		"exit 3":   {rest: "exit 3\n", reason: "exit_status"},
		"timeout":  {rest: "sleep 1000\n", timeout: 2 * time.Second, reason: "timeout"},
		"canceled": {rest: "sleep 1000\n", cancel: true, reason: "canceled"},
	} {
		t.Run(name, func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "pid")
			s, err := New(Config{Path: setsidScript(t, pidFile, tc.rest), Timeout: tc.timeout}, nil)
			require.NoError(t, err)
			defer s.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel {
				go func() {
					for {
						if _, err := os.Stat(pidFile); err == nil {
							cancel()
							return
						}
						time.Sleep(10 * time.Millisecond)
					}
				}()
			}
			err = s.Deliver(ctx, poll.NewEvent(1, []byte(`{}`)))
			if tc.reason == "" {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
				assert.Equal(t, tc.reason, poll.ReasonOf(err), "%v", err)
			}
			pid := readPid(t, pidFile)
			// Gone as Deliver returns: no waiting.
			assert.True(t, gone(pid), "the setsid grandchild %d outlived the run (alive: %v)", pid, alive(pid))
		})
	}
}

// A lone orphan that exited before a sweep could kill it is reaped by a
// later sweep (no zombie accumulates under the subreaper).
func TestExitedOrphanIsReaped(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	// The grandchild leaves, the script exits, the grandchild exits soon
	// after on its own (a zombie of ours: its environment is gone).
	p := writeScript(t, "setsid sh -c 'echo $$ > "+pidFile+"; sleep 0.2' &\nwhile [ ! -s "+pidFile+" ]; do sleep 0.01; done\nexit 0\n")
	s, err := New(Config{Path: p}, nil)
	require.NoError(t, err)
	defer s.Close()
	// The first run may or may not find the grandchild alive; later runs
	// reap it once it has been a zombie for a second.
	var pid int
	require.Eventually(t, func() bool {
		require.NoError(t, os.RemoveAll(pidFile))
		require.NoError(t, s.Deliver(context.Background(), poll.NewEvent(1, []byte(`{}`))))
		if pid == 0 {
			pid = readPid(t, pidFile)
		}
		return gone(pid)
	}, 30*time.Second, 300*time.Millisecond, "orphan %d never reaped", pid)
}

// No AWS credential variable reaches a script, unless named with
// --script-env (PassEnv); the region and other settings do.
func TestAWSCredentialsWithheld(t *testing.T) {
	creds := map[string]string{
		"AWS_ACCESS_KEY_ID":                      "AKIAEXAMPLEKEYID",
		"AWS_SECRET_ACCESS_KEY":                  "secret-access-key-value",
		"AWS_SESSION_TOKEN":                      "session-token-value",
		"AWS_SECURITY_TOKEN":                     "security-token-value",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI":     "http://169.254.170.23/v1/credentials",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/abc",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN":      "container-token-value",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": "/var/run/token-file",
		"AWS_WEB_IDENTITY_TOKEN_FILE":            "/var/run/web-identity-token",
		"AWS_ROLE_ARN":                           "arn:aws:iam::123456789012:role/edgepoll",
		"AWS_ROLE_SESSION_NAME":                  "edgepoll-session",
	}
	for k, v := range creds {
		t.Setenv(k, v)
	}
	t.Setenv("AWS_REGION", "eu-central-1")
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000")
	out := filepath.Join(t.TempDir(), "env")
	p := writeScript(t, "env > "+out+"\n")

	run := func(pass ...string) string {
		s, err := New(Config{Path: p, PassEnv: pass}, nil)
		require.NoError(t, err)
		defer s.Close()
		require.NoError(t, s.Deliver(context.Background(), poll.NewEvent(1, []byte(`{}`))))
		b, err := os.ReadFile(out)
		require.NoError(t, err)
		return string(b)
	}
	env := run()
	for k, v := range creds {
		assert.NotContains(t, env, k+"=", k)
		assert.NotContains(t, env, v, k)
	}
	assert.Contains(t, env, "AWS_REGION=eu-central-1\n")
	assert.Contains(t, env, "AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:8000\n")

	env = run("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
	assert.Contains(t, env, "AWS_ACCESS_KEY_ID=AKIAEXAMPLEKEYID\n")
	assert.Contains(t, env, "AWS_SECRET_ACCESS_KEY=secret-access-key-value\n")
	assert.NotContains(t, env, "AWS_SESSION_TOKEN=")
}

func TestScriptEnvNamesOnlyCredentials(t *testing.T) {
	p := writeScript(t, "exit 0\n")
	err := (&Options{Path: p, Timeout: time.Second, PassEnv: []string{"AWS_REGION"}}).Validate(sinks.Shared{})
	var ce *poll.ConfigError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "script-env", ce.Field)
	assert.NoError(t, (&Options{Path: p, Timeout: time.Second, PassEnv: []string{"AWS_SESSION_TOKEN"}}).Validate(sinks.Shared{}))
}
