package main

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/internal/testenv"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
)

// hungServer accepts TCP connections on loopback and never answers.
func hungServer(t *testing.T) (addr string, accepted <-chan struct{}) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ch := make(chan struct{}, 100)
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		l.Close()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String(), ch
}

func hungDynamoEnv(e *env, addr string) []string {
	return e.vars("AWS_ENDPOINT_URL_DYNAMODB=http://"+addr, "AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=AKIDTEST",
		"AWS_SECRET_ACCESS_KEY=test-secret", "AWS_EC2_METADATA_DISABLED=true")
}

// waitExit waits for cmd (started, with done closed by its Wait) and fails
// the test if it does not exit: a hang, not a speed measurement.
func waitExit(t *testing.T, cmd *exec.Cmd, done <-chan error) int {
	t.Helper()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		require.NoError(t, err)
		return 0
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("edgepoll did not exit: an unbounded wait")
		return -1
	}
}

// A DynamoDB endpoint that accepts and never answers fails a one-shot run,
// bounded, with exit 1; SIGTERM ends the wait at once.
func TestHungDynamoDBIsBounded(t *testing.T) {
	t.Parallel()
	t.Run("fails the run", func(t *testing.T) {
		t.Parallel()
		addr, _ := hungServer(t)
		e := newEnv(t, 1)
		r := runBin(t, hungDynamoEnv(e, addr), "--mode", "stdout", "--state", "dynamodb:edgepoll")
		assert.Equal(t, 1, r.code, r.stderr)
		assert.Contains(t, r.stderr, "dynamodb table edgepoll")
		assert.Empty(t, r.stdout)
	})
	t.Run("SIGTERM", func(t *testing.T) {
		t.Parallel()
		addr, accepted := hungServer(t)
		e := newEnv(t, 1)
		cmd := exec.Command(edgepollBin(t), "--mode", "stdout", "--state", "dynamodb:edgepoll")
		cmd.Env = hungDynamoEnv(e, addr)
		require.NoError(t, cmd.Start())
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		<-accepted
		require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
		select {
		case err := <-done:
			t.Logf("after SIGTERM: %v", err)
		case <-time.After(15 * time.Second): // the open timeout is 30s
			_ = cmd.Process.Kill()
			t.Fatal("SIGTERM did not end the wait for DynamoDB")
		}
	})
}

// A poll in flight when SIGTERM arrives is cancelled at once: the run stops
// gracefully (exit 0, nothing delivered, cursor untouched) instead of
// waiting for the poll's timeout and failing.
func TestSIGTERMCancelsAPollInFlight(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 3)
	e.api.Fail(ilerttest.Fault{Delay: 10 * time.Minute})
	cmd := exec.Command(edgepollBin(t), "--mode", "stdout", "--state", e.state("json"))
	cmd.Env = e.vars()
	stderr := &testenv.SyncBuffer{}
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	require.Eventually(t, func() bool { return len(e.api.Requests()) == 1 }, 30*time.Second, 5*time.Millisecond)
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	code := waitExit(t, cmd, done)
	assert.Equal(t, 0, code, stderr.String())
	assert.Contains(t, stderr.String(), "stopped early on request")
}

// The json store's whole-file lock (PATH.lock) held by someone else for
// ever: the run fails, bounded, naming the lock, instead of hanging; once
// the lock is free the next run delivers the rest, in order.
func TestHeldJSONLockIsBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 3)
	state := e.state("json")
	lock, err := os.OpenFile(state[len("json:"):]+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	require.NoError(t, err)
	require.NoError(t, syscall.Flock(int(lock.Fd()), syscall.LOCK_EX))
	r := runBin(t, e.vars(), "--mode", "stdout", "--state", state)
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Contains(t, r.stderr, "waiting for the lock")
	first := r.stdout
	lock.Close()

	r = runBin(t, e.vars(), "--mode", "stdout", "--state", state)
	assert.Equal(t, 0, r.code, r.stderr)
	var firsts []string
	seen := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(first+r.stdout), "\n") {
		if !seen[l] {
			seen[l] = true
			firsts = append(firsts, l)
		}
	}
	want := ilerttest.AlertEvents(3)
	require.Len(t, firsts, 3, "every item, in order: %q", firsts)
	for i := range want {
		assert.JSONEq(t, string(want[i]), firsts[i])
	}
}
