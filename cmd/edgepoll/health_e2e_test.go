package main

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/internal/mosquittotest"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
)

// readyBody waits for /ready to answer 503 with a body matching ok.
func (d *daemonProc) waitNotReady(t *testing.T, ok func(body map[string]any) bool) map[string]any {
	t.Helper()
	var got map[string]any
	require.Eventually(t, func() bool {
		c, body := d.get(t, "/ready")
		if c != http.StatusServiceUnavailable {
			return false
		}
		got = nil
		return json.Unmarshal([]byte(body), &got) == nil && ok(got)
	}, 30*time.Second, 50*time.Millisecond, "logs:\n%s", d.logs.String())
	return got
}

// A target that refuses everything: the poll works, the cycle does not.
// /ready says so (polling true) and the heartbeat stays silent, so ilert
// alerts on the stuck agent; once the target is back, both recover.
func TestHeartbeatAndReadyFollowDelivery(t *testing.T) {
	// Mostly waits on timers: runs beside the other parallel tests.
	t.Parallel()
	const hb = "il1hbt-Health-HB"
	e := newEnv(t, 6)
	tg := newTarget(t)
	tg.setStatus(refuseAll(http.StatusNotFound))
	d := startDaemonBin(t, e.vars("ILERT_HEARTBEAT_KEY="+hb), "--mode", "http", "--http-url", tg.srv.URL,
		"--state", e.state("sqlite"), "--poll-interval", "5", "--skip-limit", "2")

	body := d.waitNotReady(t, func(b map[string]any) bool {
		return b["polling"] == true && strings.Contains(b["error"].(string), "2 consecutive items refused by the target (last: HTTP 404)")
	})
	assert.Equal(t, "edge_connector", body["component"])
	// Two failed cycles in a row, and still no ping.
	require.Eventually(t, func() bool { return strings.Count(d.logs.String(), "consecutive items refused") >= 2 },
		30*time.Second, 50*time.Millisecond)
	assert.Equal(t, 0, e.api.Heartbeats(hb), "no heartbeat while the target refuses everything")
	code, _ := d.get(t, "/health")
	assert.Equal(t, http.StatusNoContent, code, "alive while not ready")
	_, metrics := d.get(t, "/metrics")
	assert.Contains(t, metrics, "edgepoll_ready 0")
	assert.Contains(t, metrics, `edgepoll_build_info{version="`)
	// The dead letter is on by default (cli.md "Never losing an item silently"):
	// the two refused items skipped before the skip limit are kept.
	assert.Contains(t, metrics, "edgepoll_dead_letters_total 2")
	assert.Contains(t, d.logs.String(), "retrying after the poll interval", "a delivery failure is not backed off")
	assert.NotContains(t, d.logs.String(), "backing off")

	tg.setStatus(nil)
	require.Eventually(t, func() bool { c, _ := d.get(t, "/ready"); return c == http.StatusNoContent }, 30*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool { return e.api.Heartbeats(hb) >= 1 }, 40*time.Second, 50*time.Millisecond,
		"the heartbeat follows the first successful cycle")
	assert.Equal(t, []int64{3, 4, 5, 6}, tg.got())
	_, metrics = d.get(t, "/metrics")
	assert.Contains(t, metrics, "edgepoll_ready 1")
	assert.Contains(t, metrics, "edgepoll_last_delivery_timestamp_seconds 1.")
}

// SIGTERM with a slow item in flight: /health answers 503 (not "connection
// refused") and /metrics keeps answering until the item is done and the
// daemon exits 0.
func TestHealthDuringGracefulStop(t *testing.T) {
	e := newEnv(t, 3)
	tg := newTarget(t)
	d := startDaemonBin(t, e.vars(), "--mode", "http", "--http-url", tg.srv.URL, "--state", e.state("sqlite"), "--poll-interval", "5")
	require.Eventually(t, func() bool { return len(tg.got()) == 3 }, 30*time.Second, 20*time.Millisecond)

	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock)                                                // before the target closes (cleanups run last first)
	tg.setStatus(func(int64) int { <-release; return http.StatusOK }) // the next item hangs until released
	e.api.Push(e2eKey, []byte(`{"eventType":"alert-created","id":"x"}`))
	require.Eventually(t, func() bool { return tg.inflight.Load() == 1 }, 30*time.Second, 5*time.Millisecond)
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	require.Eventually(t, func() bool { c, _ := d.get(t, "/health"); return c == http.StatusServiceUnavailable }, 10*time.Second, 10*time.Millisecond,
		"/health is 503 from the signal on")
	for i := 0; i < 3; i++ { // the item is still in flight: the endpoints stay up
		code, _ := d.get(t, "/health")
		assert.Equal(t, http.StatusServiceUnavailable, code)
		code, body := d.get(t, "/metrics")
		assert.Equal(t, http.StatusOK, code)
		assert.Contains(t, body, "edgepoll_cursor 3")
		code, _ = d.get(t, "/ready")
		assert.Equal(t, http.StatusServiceUnavailable, code)
	}
	assert.Equal(t, int32(1), tg.inflight.Load(), "still draining")
	unblock()
	select {
	case err := <-d.done:
		require.NoError(t, err, d.logs.String())
		d.done <- err
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not stop")
	}
	assert.Equal(t, []int64{1, 2, 3, 4}, tg.got(), "the item in flight was finished")
}

// An MQTT broker that is down when the daemon starts is an outage like any
// other: the endpoints come up, /ready is 503, and delivery recovers once
// the broker is up, without a restart.
func TestBrokerDownAtDaemonStart(t *testing.T) {
	// Mostly waits on timers: runs beside the other parallel tests.
	t.Parallel()
	b := mosquittotest.Start(t, "allow_anonymous true")
	b.Kill()
	e := newEnv(t, 1)
	d := startDaemonBin(t, e.vars(), "--mode", "mqtt", "--mqtt-host", "127.0.0.1", "--mqtt-port", strconv.Itoa(b.Port),
		"--mqtt-qos", "1", "--topic", "edge/events", "--state", e.state("json"), "--poll-interval", "5", "--mqtt-connect-timeout", "1s")
	body := d.waitNotReady(t, func(b map[string]any) bool {
		return b["polling"] == true && strings.Contains(b["error"].(string), "connect")
	})
	assert.Equal(t, "edge_connector", body["component"])
	code, _ := d.get(t, "/health")
	assert.Equal(t, http.StatusNoContent, code)

	b.Restart()
	sub := mosquittotest.Subscribe(t, b.Port, "edge/events", 1)
	// Item 1 may be published before the subscriber is in: the items
	// pushed now must all arrive, and the cursor must pass item 1 too.
	e.api.Push(e2eKey, ilerttest.AlertEvents(19)...)
	require.Eventually(t, func() bool {
		ids := itemIDs(t, sub.Got())
		return len(ids) > 0 && ids[len(ids)-1] == 20
	}, 60*time.Second, 50*time.Millisecond)
	ids := itemIDs(t, sub.Got())
	if ids[0] == 1 {
		ids = ids[1:]
	}
	assert.Equal(t, []int64{2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}, ids)
	require.Eventually(t, func() bool { c, _ := d.get(t, "/ready"); return c == http.StatusNoContent }, 30*time.Second, 50*time.Millisecond)
	_, metrics := d.get(t, "/metrics")
	assert.Contains(t, metrics, "edgepoll_cursor 20")
}
