package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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

type daemonProc struct {
	cmd  *exec.Cmd
	logs *testenv.SyncBuffer
	port int
	done chan error
}

func startDaemonBin(t *testing.T, env []string, args ...string) *daemonProc {
	d := &daemonProc{logs: &testenv.SyncBuffer{}, port: testenv.FreePort(t), done: make(chan error, 1)}
	d.cmd = exec.Command(edgepollBin(t), append([]string{"--loop", "-p", fmt.Sprint(d.port), "--listen-addr", "127.0.0.1"}, args...)...)
	d.cmd.Env = env
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	require.NoError(t, d.cmd.Start())
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		_ = d.cmd.Process.Kill()
		select {
		case err := <-d.done:
			t.Logf("daemon killed at cleanup: %v", err)
		case <-time.After(5 * time.Second):
		}
		assert.NotContains(t, d.logs.String(), "panic")
	})
	return d
}

// stopGracefully sends SIGTERM and waits (at most 30s) for exit 0; the exit
// stays readable from d.done.
func (d *daemonProc) stopGracefully(t *testing.T) {
	t.Helper()
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-d.done:
		require.NoError(t, err, d.logs.String())
		d.done <- err
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not stop after SIGTERM")
	}
}

func (d *daemonProc) get(t *testing.T, path string) (int, string) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", d.port, path))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestDaemonEndToEndRealTime(t *testing.T) {
	e := newEnv(t, 150)
	tg := newTarget(t)
	d := startDaemonBin(t, e.vars(), "--edge_mode", "http", "--edge_http_url", tg.srv.URL, "--state", e.state("sqlite"),
		"--edge_poll_interval", "5", "-b", "il1hbt-Secret-HB")

	require.Eventually(t, func() bool { c, _ := d.get(t, "/ready"); return c == 204 }, 15*time.Second, 50*time.Millisecond)
	code, _ := d.get(t, "/health")
	assert.Equal(t, 204, code)
	require.Eventually(t, func() bool { return len(tg.got()) == 150 }, 15*time.Second, 20*time.Millisecond)

	// New events are picked up after one poll interval.
	e.api.Push(e2eKey, ilerttest.AlertEvents(5)...)
	require.Eventually(t, func() bool { return len(tg.got()) == 155 }, 12*time.Second, 50*time.Millisecond)
	checkAtLeastOnceInOrder(t, tg.got(), 155, 0)

	_, body := d.get(t, "/metrics")
	assert.Contains(t, body, `edgepoll_items_total{outcome="delivered",reason="",sink="http"} 155`)
	assert.Contains(t, body, `edgepoll_cursor 155`)
	assert.Contains(t, body, `edgepoll_polls_total{result="ok"}`)
	assert.NotContains(t, body, e2eKey)
	assert.NotContains(t, body, "il1hbt-Secret-HB")

	// Graceful stop with an item in flight: it completes, the cursor is
	// persisted, exit 0.
	tg.setDelay(1500 * time.Millisecond)
	e.api.Push(e2eKey, ilerttest.AlertEvents(3)...)
	require.Eventually(t, func() bool { return tg.inflight.Load() == 1 }, 12*time.Second, 5*time.Millisecond, "item 156 in flight")
	before := len(tg.got())
	start := time.Now()
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	require.Eventually(t, func() bool { c, _ := d.get(t, "/health"); return c == 503 }, 2*time.Second, 10*time.Millisecond,
		"/health turns 503 once shutdown began (and keeps answering)")
	select {
	case err := <-d.done:
		require.NoError(t, err, d.logs.String())
		d.done <- err
	case <-time.After(20 * time.Second):
		t.Fatal("daemon did not stop after SIGTERM")
	}
	assert.Less(t, time.Since(start), 10*time.Second)
	assert.Len(t, tg.got(), before+1, "the item in flight was finished and nothing new started")
	assert.Contains(t, d.logs.String(), "cursor persisted")
	tg.setDelay(0)
	r := runBin(t, e.vars(), "--mode", "http", "--http-url", tg.srv.URL, "--state", e.state("sqlite"))
	require.Equal(t, 0, r.code, r.stderr)
	checkAtLeastOnceInOrder(t, tg.got(), 158, 0)
	assert.NotContains(t, d.logs.String(), e2eKey)
	assert.NotContains(t, d.logs.String(), "il1hbt-Secret-HB")
}

func TestDaemonReadyReportsAuthFailure(t *testing.T) {
	e := newEnv(t, 1)
	d := startDaemonBin(t, baseEnv("ILERT_API_HOST="+e.apiSv.URL, "ILERT_EDGE_CONNECTOR_KEY=iec1-wrong-key"),
		"--mode", "stdout", "--state", e.state("json"), "--log-format", "json")
	var body string
	require.Eventually(t, func() bool {
		var c int
		c, body = d.get(t, "/ready")
		return c == 503 && strings.Contains(body, "authentication")
	}, 10*time.Second, 50*time.Millisecond)
	var ready map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &ready))
	assert.Equal(t, map[string]any{"component": "edge_connector", "polling": false, "error": "authentication failed — check integration key"}, ready)
	code, _ := d.get(t, "/health")
	assert.Equal(t, 204, code, "alive while not ready")
	// JSON logs, one document per line on stderr.
	require.Eventually(t, func() bool { return strings.Contains(d.logs.String(), "backing off") }, 5*time.Second, 20*time.Millisecond)
	sc := bufio.NewScanner(strings.NewReader(d.logs.String()))
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), sc.Text())
	}
	assert.NotContains(t, d.logs.String(), "iec1-wrong-key")
}

// Two daemons (and a one-shot run) on one state store: the lease is taken
// per cycle, the loser waits, no item is delivered twice.
func TestTwoDaemonsShareOneStore(t *testing.T) {
	// Mostly waits on timers: runs beside the other parallel tests.
	t.Parallel()
	e := newEnv(t, 400)
	tg := newTarget(t)
	tg.setDelay(time.Millisecond)
	args := []string{"--mode", "http", "--http-url", tg.srv.URL, "--state", e.state("sqlite"), "--poll-interval", "5"}
	a := startDaemonBin(t, e.vars(), args...)
	b := startDaemonBin(t, e.vars(), args...)
	r := runBin(t, e.vars(), args[:len(args)-2]...)
	require.Equal(t, 0, r.code, r.stderr)
	require.Eventually(t, func() bool { return len(tg.got()) >= 400 }, 20*time.Second, 20*time.Millisecond)
	e.api.Push(e2eKey, ilerttest.AlertEvents(50)...)
	require.Eventually(t, func() bool { return len(tg.got()) >= 450 }, 15*time.Second, 20*time.Millisecond)
	time.Sleep(500 * time.Millisecond)
	checkAtLeastOnceInOrder(t, tg.got(), 450, 0)
	for _, d := range []*daemonProc{a, b} {
		c, _ := d.get(t, "/ready")
		assert.Equal(t, 204, c, "a daemon whose lease is held by the other still counts as ready")
	}
}
