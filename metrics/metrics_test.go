package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/poll"
)

func TestObserverRecordsBoundedLabels(t *testing.T) {
	m := New("http", true)
	m.Polled("ok", 3, 20*time.Millisecond)
	m.Polled("status_503", 0, time.Second)
	m.Item(poll.OutcomeDelivered, "", time.Millisecond)
	m.Item(poll.OutcomeSkipped, "http_400", time.Millisecond)
	m.Item(poll.OutcomeFailed, "http_503", time.Millisecond)
	m.Cursor(42)
	m.Role("standby")
	m.Role("leader")
	m.DeadLettered()
	success := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	m.Cycle(poll.CycleReport{Err: &poll.CycleError{Kind: "poll", Err: errors.New("x")}, Failures: 2, Wait: 10 * time.Second,
		Summary: poll.Summary{Stats: poll.Stats{Failures: 2, LastSuccess: success}}})
	m.Heartbeat(nil)

	assert.Equal(t, 1.0, testutil.ToFloat64(m.polls.WithLabelValues("ok")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.polls.WithLabelValues("status_503")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.items.WithLabelValues("http", "skipped", "http_400")))
	assert.Equal(t, 42.0, testutil.ToFloat64(m.cursor))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.role.WithLabelValues("leader")))
	assert.Equal(t, 0.0, testutil.ToFloat64(m.role.WithLabelValues("standby")))
	assert.Equal(t, 10.0, testutil.ToFloat64(m.backoff))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.cycles.WithLabelValues("poll")))
	assert.Equal(t, float64(success.Unix()), testutil.ToFloat64(m.lastSuccess), "the stored last success")
	assert.Greater(t, testutil.ToFloat64(m.lastDelivery), 1e9)
	assert.Equal(t, 1.0, testutil.ToFloat64(m.deadLetters))
	assert.Equal(t, 2.0, testutil.ToFloat64(m.failures))

	srv := httptest.NewServer(NewHealth().Handler(m))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"edgepoll_polls_total", "edgepoll_items_total", "edgepoll_poll_duration_seconds_bucket",
		"edgepoll_delivery_duration_seconds_bucket", "edgepoll_cursor 42", "edgepoll_ha_role", "go_goroutines", "edgepoll_heartbeats_total",
		`edgepoll_build_info{version="` + poll.Version + `"} 1`, "edgepoll_dead_letters_total 1", "edgepoll_last_delivery_timestamp_seconds"} {
		assert.Contains(t, string(body), want)
	}
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, "edgepoll_") || strings.HasPrefix(l, "# HELP edgepoll") || strings.HasPrefix(l, "# TYPE edgepoll") || l == "" ||
			strings.HasPrefix(l, "go_") || strings.HasPrefix(l, "process_") || strings.HasPrefix(l, "# HELP go") || strings.HasPrefix(l, "# TYPE go") ||
			strings.HasPrefix(l, "# HELP process") || strings.HasPrefix(l, "# TYPE process") {
			continue
		}
		t.Errorf("metric without the edgepoll_ prefix: %s", l)
	}
}

func TestHealthAndReady(t *testing.T) {
	h := NewHealth()
	srv := httptest.NewServer(h.Handler(nil))
	defer srv.Close()
	get := func(p string) (int, map[string]any) {
		resp, err := http.Get(srv.URL + p)
		require.NoError(t, err)
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	code, _ := get("/health")
	assert.Equal(t, 204, code)
	code, body := get("/ready")
	assert.Equal(t, 503, code)
	assert.Equal(t, map[string]any{"component": "edge_connector", "polling": false, "error": "no poll yet"}, body)
	h.SetReady(false, false, "authentication failed — check integration key")
	_, body = get("/ready")
	assert.Equal(t, "authentication failed — check integration key", body["error"])
	h.SetReady(false, true, "delivery of item 4 failed: http_503")
	code, body = get("/ready")
	assert.Equal(t, 503, code, "the poll works, delivery does not: not ready")
	assert.Equal(t, map[string]any{"component": "edge_connector", "polling": true, "error": "delivery of item 4 failed: http_503"}, body)
	h.SetReady(true, true, "")
	code, _ = get("/ready")
	assert.Equal(t, 204, code)
	h.Stopping()
	code, _ = get("/health")
	assert.Equal(t, 503, code)
	code, _ = get("/ready")
	assert.Equal(t, 503, code)
	code, _ = get("/metrics")
	assert.Equal(t, 404, code, "no metrics handler without metrics")
}

func TestServeAndShutdown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done, err := Serve(ctx, "127.0.0.1", 0, NewHealth().Handler(nil), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("server did not stop")
	}
}

func TestTextfile(t *testing.T) {
	m := New("stdout", false)
	m.Cursor(7)
	p := filepath.Join(t.TempDir(), "edgepoll.prom")
	require.NoError(t, m.WriteTextfile(p))
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	assert.Contains(t, string(b), "edgepoll_cursor 7")
	assert.NotContains(t, string(b), "go_goroutines")
}

// A good poll of the cycle in progress shows on /ready's reason (16.7):
// polling true, delivering, the last failure kept; once per cycle; a ready
// daemon stays ready.
func TestReadyFollowsCycleInProgress(t *testing.T) {
	h := NewHealth()
	obs := h.Observe(New("http", true))
	obs.Polled("ok", 3, time.Millisecond)
	assert.True(t, h.polling)
	assert.Equal(t, "delivering: the poll worked, the cycle in progress is delivering to the target", h.reason)
	h.SetReady(false, false, "poll failed: http_502")
	obs.Polled("http_502", 0, time.Millisecond)
	assert.False(t, h.polling, "a failed poll changes nothing")
	obs.Polled("ok", 1, time.Millisecond)
	obs.Polled("ok", 1, time.Millisecond)
	assert.True(t, h.polling)
	assert.Equal(t, "delivering: the poll worked, the cycle in progress is delivering to the target (the last cycle failed: poll failed: http_502)", h.reason)
	h.SetReady(true, true, "")
	obs.Polled("ok", 1, time.Millisecond)
	assert.True(t, h.Ready())
}
