package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/internal/ilagenttest"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
)

// runBinIn runs the binary with dir as its working directory.
func runBinIn(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, edgepollBin(t), args...)
	cmd.Dir, cmd.Env = dir, env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	require.NotContains(t, r.stderr, "goroutine ", "no panic")
	return r
}

// freshWarning is the WARN of a cycle that finds no cursor (16.4).
const freshWarning = `level=WARN msg="no cursor for this connection in the state store: starting from the oldest queued event`

// A cycle that finds no cursor says so once, at WARN, naming the state as
// given; once a cursor is stored it says nothing (16.4, cli.md "Safe by
// default"): one-shot, --loop and --config.
func TestFirstRunWarnsNoCursor(t *testing.T) {
	t.Run("one-shot", func(t *testing.T) {
		e := newEnv(t, 3)
		tg := newTarget(t)
		state := e.state("sqlite")
		args := []string{"--mode", "http", "--http-url", tg.srv.URL, "--state", state}
		r := runBin(t, e.vars(), args...)
		require.Equal(t, 0, r.code, r.stderr)
		assert.Equal(t, 1, strings.Count(r.stderr, freshWarning), r.stderr)
		assert.Contains(t, r.stderr, "state="+state)
		r = runBin(t, e.vars(), args...)
		require.Equal(t, 0, r.code, r.stderr)
		assert.NotContains(t, r.stderr, freshWarning, "a stored cursor: no warning")
	})
	t.Run("loop", func(t *testing.T) {
		e := newEnv(t, 0) // nothing queued: no cursor is ever stored
		tg := newTarget(t)
		state := e.state("json")
		d := startDaemonBin(t, e.vars(), "--mode", "http", "--http-url", tg.srv.URL, "--state", state, "--poll-interval", "5s")
		require.Eventually(t, func() bool { return len(e.api.Requests()) >= 2 }, 20*time.Second, 50*time.Millisecond)
		d.stopGracefully(t)
		logs := d.logs.String()
		assert.Equal(t, 1, strings.Count(logs, freshWarning), "once, not every cycle:\n%s", logs)
		assert.Contains(t, logs, "state="+state)
	})
	t.Run("config", func(t *testing.T) {
		rig := newFleetRig(t, 2, 2)
		cfg := rig.config(t, "mode: http\nstate: sqlite:"+rig.dir+"/fleet.db\n")
		r := runBin(t, rig.vars(), "--config", cfg)
		require.Equal(t, 0, r.code, r.stderr)
		for _, n := range rig.names {
			assert.Regexp(t, `level=WARN msg="no cursor for this connection[^"]*" connection=`+n+` state=sqlite:`, r.stderr)
		}
		r = runBin(t, rig.vars(), "--config", cfg)
		require.Equal(t, 0, r.code, r.stderr)
		assert.NotContains(t, r.stderr, freshWarning)
	})
}

// Switching from ilagent without -f (16.2): ilagent's own default file,
// ./ilagent.db3 in the working directory, is read while edgepoll has no
// cursor (WARN naming it); a damaged one fails the run before any poll
// (exit 1 naming it); --ilagent-db none turns the look-up off.
func TestIlagentDefaultFileWithoutF(t *testing.T) {
	args := func(e *env, tg *target) []string {
		return []string{"--edge_mode", "http", "--edge_http_url", tg.srv.URL, "--state", e.state("sqlite")}
	}
	t.Run("read", func(t *testing.T) {
		e, tg := newEnv(t, 6), newTarget(t)
		ilagenttest.Write(t, filepath.Join(e.dir, "ilagent.db3"), map[string]string{e2eKey: "3"})
		r := runBinIn(t, e.dir, e.vars(), args(e, tg)...)
		require.Equal(t, 0, r.code, r.stderr)
		assert.Equal(t, []int64{4, 5, 6}, tg.got(), "from ilagent's cursor, not the whole queue")
		assert.Regexp(t, `level=WARN msg="[^"]*reference agent's cursor[^"]*" file=./ilagent.db3 cursor=3`, r.stderr)
		assert.NotContains(t, r.stderr, freshWarning, "the cursor came from ilagent's file")
		e.api.Push(e2eKey, []byte(`{"id":"7","eventType":"alert-created"}`))
		r = runBinIn(t, e.dir, e.vars(), args(e, tg)...)
		require.Equal(t, 0, r.code, r.stderr)
		assert.Equal(t, []int64{4, 5, 6, 7}, tg.got())
		assert.NotContains(t, r.stderr, "ilagent.db3", "edgepoll's own cursor wins from then on")
	})
	t.Run("none", func(t *testing.T) {
		e, tg := newEnv(t, 2), newTarget(t)
		ilagenttest.Write(t, filepath.Join(e.dir, "ilagent.db3"), map[string]string{e2eKey: "1"})
		r := runBinIn(t, e.dir, e.vars(), append(args(e, tg), "--ilagent-db", "none")...)
		require.Equal(t, 0, r.code, r.stderr)
		assert.Equal(t, []int64{1, 2}, tg.got())
		assert.NotContains(t, r.stderr, "ilagent.db3")
	})
	for name, content := range map[string][]byte{"damaged": []byte("not a database, not at all, no"), "empty": {}} {
		t.Run(name, func(t *testing.T) {
			e, tg := newEnv(t, 2), newTarget(t)
			require.NoError(t, os.WriteFile(filepath.Join(e.dir, "ilagent.db3"), content, 0o600))
			r := runBinIn(t, e.dir, e.vars(), args(e, tg)...)
			assert.Equal(t, 1, r.code, r.stderr)
			assert.Contains(t, r.stderr, "ilagent file ./ilagent.db3")
			assert.Contains(t, r.stderr, "--ilagent-db none")
			assert.Empty(t, e.api.Requests(), "nothing is polled")
			assert.Empty(t, tg.got())
		})
	}
}

// Configuration mistakes are exit 2 before anything is polled, naming the
// flag(s) as written (16.6): a setting given twice under two names, a flag
// of another target than --mode, a URL port that can never be reached, a
// dead letter or metrics file that cannot be written (probed without
// leaving a file behind).
func TestConfigMistakesAreExit2BeforePolling(t *testing.T) {
	e := newEnv(t, 3)
	base := []string{"--state", e.state("json")}
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"flag and alias", []string{"--mode", "http", "--http-url", "http://127.0.0.1:9/h", "--edge_mode", "stdout"},
			[]string{"--mode and --edge_mode", "given twice"}},
		{"alias and flag", []string{"--edge_mode", "stdout", "--edge_http_url", "http://127.0.0.1:9/h", "--http-url=http://127.0.0.1:9/x"},
			[]string{"--edge_http_url and --http-url", "given twice"}},
		{"short and long", []string{"--mode", "mqtt", "--topic", "t", "-m", "h1", "--mqtt-host", "h2"},
			[]string{"-m and --mqtt-host"}},
		{"kafka flag with http", []string{"--mode", "http", "--http-url", "http://127.0.0.1:9/h", "--kafka-brokers", "k:9092"},
			[]string{"--kafka-brokers: is a setting of --mode kafka, but --mode is http"}},
		{"ilagent spellings", []string{"--edge_mode", "stdout", "--kafka_brokers", "k:9092"},
			[]string{"--kafka_brokers: is a setting of --mode kafka, but --edge_mode is stdout"}},
		{"shared topic with http", []string{"--mode", "http", "--http-url", "http://127.0.0.1:9/h", "--edge_topic", "t"},
			[]string{"--edge_topic: is a setting of --mode kafka/mqtt, but --mode is http"}},
		{"port 0", []string{"--mode", "http", "--http-url", "http://127.0.0.1:0/h"}, []string{"--http-url: port 0 is outside 1..65535"}},
		{"port 65536", []string{"--mode", "http", "--http-url", "https://example.com:65536/h"}, []string{"--http-url: port 65536 is outside 1..65535"}},
		{"api port", []string{"--mode", "stdout", "--api-url", "http://127.0.0.1:70000"}, []string{"--api-url: port 70000"}},
		{"dead letter in /proc", []string{"--mode", "stdout", "--dead-letter", "file:/proc/edgepoll-dead.jsonl"},
			[]string{"--dead-letter: cannot be written", "/proc"}},
		{"dead letter a directory", []string{"--mode", "stdout", "--dead-letter", "file:" + e.dir}, []string{"--dead-letter: cannot be written", "is a directory"}},
		{"metrics file in /proc", []string{"--mode", "stdout", "--metrics-file", "/proc/edgepoll.prom"}, []string{"--metrics-file: cannot be written", "/proc"}},
		{"metrics file a directory", []string{"--mode", "stdout", "--metrics-file", e.dir}, []string{"--metrics-file: cannot be written", "is a directory"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(e.api.Requests())
			r := runBin(t, e.vars(), append(c.args, base...)...)
			assert.Equal(t, 2, r.code, r.stderr)
			for _, w := range c.want {
				assert.Contains(t, r.stderr, w)
			}
			assert.Len(t, e.api.Requests(), before, "nothing polled")
		})
	}
	entries, err := os.ReadDir(e.dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "no probe file, no state created")

	// What is fine stays fine: one name twice, -v with --verbose, a writable
	// dead letter and metrics file in a new directory entry (not created by
	// the check).
	dl, prom := filepath.Join(e.dir, "dead.jsonl"), filepath.Join(e.dir, "edgepoll.prom")
	r := runBin(t, e.vars(), append([]string{"--mode", "http", "--mode", "stdout", "-v", "--verbose",
		"--dead-letter", "file:" + dl, "--metrics-file", prom}, base...)...)
	require.Equal(t, 0, r.code, r.stderr)
	assert.NoFileExists(t, dl, "nothing skipped: no dead letter written")
	assert.FileExists(t, prom)
}

// --config: a connection's own key of another target than its mode is exit
// 2 naming the connection and the key; its dead letter is probed too.
func TestConfigFileMistakesAreExit2(t *testing.T) {
	for name, c := range map[string]struct{ extra, want string }{
		"other target": {"    kafka-brokers: k:9092\n", "connections[0] (conn-00): kafka-brokers: is a setting of --mode kafka, but"},
		"dead letter":  {"    dead-letter: file:/proc/dead.jsonl\n", "dead-letter: cannot be written"},
		"port":         {"", "http-url: port 65536 is outside 1..65535"},
	} {
		t.Run(name, func(t *testing.T) {
			rig := newFleetRig(t, 1, 1)
			url := rig.tg.srv.URL + "/conn-00"
			if name == "port" {
				url = "http://127.0.0.1:65536/conn-00"
			}
			cfg := "mode: http\nstate: json:" + rig.dir + "/fleet.json\nconnections:\n  - name: conn-00\n    key-env: KEY_conn_00\n    http-url: " + url + "\n" + c.extra
			p := filepath.Join(t.TempDir(), "edgepoll.yaml")
			require.NoError(t, os.WriteFile(p, []byte(cfg), 0o600))
			r := runBin(t, rig.vars(), "--config", p)
			assert.Equal(t, 2, r.code, r.stderr)
			assert.Contains(t, r.stderr, c.want)
			assert.Empty(t, rig.api.Requests(), "nothing polled")
		})
	}
}

// /ready follows the cycle in progress (16.7): after a good poll, while a
// slow target is being delivered to, it says so (polling true, delivering),
// not "no poll yet"; once the cycle succeeded it is 204.
func TestReadyDuringSlowDelivery(t *testing.T) {
	e := newEnv(t, 2)
	tg := newTarget(t)
	tg.setDelay(3 * time.Second)
	d := startDaemonBin(t, e.vars(), "--mode", "http", "--http-url", tg.srv.URL, "--state", e.state("sqlite"))
	require.Eventually(t, func() bool { return tg.inflight.Load() > 0 }, 20*time.Second, 10*time.Millisecond)
	body := d.waitNotReady(t, func(map[string]any) bool { return true })
	assert.Equal(t, true, body["polling"], "the poll worked")
	assert.NotEqual(t, "no poll yet", body["error"])
	assert.Contains(t, body["error"], "delivering")
	require.Eventually(t, func() bool { c, _ := d.get(t, "/ready"); return c == http.StatusNoContent }, 30*time.Second, 50*time.Millisecond)
	assert.Equal(t, []int64{1, 2}, tg.got())
	d.stopGracefully(t)
}

// HA progress per instance (16.3), one-shot runs of the real binary on one
// state file: a new instance's first poll carries no last-processed-id
// (not the non-HA cursor, not another instance's progress); the next run
// of an instance acknowledges its last batch, so it is not delivered again.
func TestHAProgressPerInstance(t *testing.T) {
	e := newEnv(t, 3)
	tg := newTarget(t)
	args := []string{"--mode", "http", "--http-url", tg.srv.URL, "--state", e.state("sqlite")}
	firstQuery := func(run func()) map[string]string {
		n := len(e.api.Requests())
		run()
		reqs := e.api.Requests()
		require.Greater(t, len(reqs), n)
		return reqs[n].Query
	}
	oneShot := func(extra ...string) func() {
		return func() {
			r := runBin(t, e.vars(), append(args, extra...)...)
			require.Equal(t, 0, r.code, r.stderr)
		}
	}
	oneShot()() // non-HA: cursor 3
	e.api.Push(e2eKey, ilerttest.AlertEvents(2)...)
	node1 := []string{"--cluster-id", "prod", "--instance-id", "node-1"}
	q := firstQuery(oneShot(node1...))
	assert.NotContains(t, q, "last-processed-id", "a new instance: not the non-HA cursor")
	assert.NotContains(t, q, "after-id")
	delivered := len(tg.got())

	q = firstQuery(oneShot(node1...))
	assert.Equal(t, "5", q["last-processed-id"], "the last batch of node-1's previous run is acknowledged")
	assert.Len(t, tg.got(), delivered, "and not delivered again")

	q = firstQuery(oneShot("--cluster-id", "prod", "--instance-id", "node-2"))
	assert.NotContains(t, q, "last-processed-id", "never another instance's progress")
	assert.Equal(t, "node-1", e.api.Leader(e2eKey, "prod"))
}

// --config connections read ./ilagent.db3 too, each for its own key; a
// damaged one fails every connection that has no cursor yet, naming it.
func TestIlagentDefaultFileForConfigConnections(t *testing.T) {
	rig := newFleetRig(t, 2, 3)
	cfg := rig.config(t, "mode: http\nstate: sqlite:"+rig.dir+"/fleet.db\n")
	db := filepath.Join(rig.dir, "ilagent.db3")
	require.NoError(t, os.WriteFile(db, []byte("damaged damaged damaged damaged"), 0o600))
	r := runBinIn(t, rig.dir, rig.vars(), "--config", cfg)
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Contains(t, r.stderr, "ilagent file ./ilagent.db3")
	assert.Empty(t, rig.api.Requests(), "nothing polled")

	require.NoError(t, os.Remove(db))
	ilagenttest.Write(t, db, map[string]string{fleetKey("conn-00"): "2"})
	r = runBinIn(t, rig.dir, rig.vars(), "--config", cfg)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, []int64{3}, rig.tg.ids("conn-00"), "from ilagent's cursor")
	assert.Equal(t, []int64{1, 2, 3}, rig.tg.ids("conn-01"), "no row for its key: nothing to import")
	assert.Regexp(t, `level=WARN msg="[^"]*reference agent's cursor[^"]*" connection=conn-00 file=./ilagent.db3 cursor=2`, r.stderr)
}

// A one-shot HA run without --instance-id (a new, random instance every
// run) acknowledges its last batch with a final poll (limit=1,
// last-processed-id), so the next such run delivers nothing the first
// delivered (16.3).
func TestHAOneShotRandomInstanceAcknowledges(t *testing.T) {
	e := newEnv(t, 5)
	e.api.SetLeaderTTL(0) // each run's new instance takes over at once
	tg := newTarget(t)
	args := []string{"--mode", "http", "--http-url", tg.srv.URL, "--state", e.state("sqlite"), "--cluster-id", "prod"}
	r := runBin(t, e.vars(), args...)
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, []int64{1, 2, 3, 4, 5}, tg.got())
	reqs := e.api.Requests()
	final := reqs[len(reqs)-1].Query
	assert.Equal(t, "5", final["last-processed-id"], "the final poll acknowledges the run's last item")
	assert.Equal(t, "1", final["limit"])

	e.api.Push(e2eKey, ilerttest.AlertEvents(2)...)
	n := len(e.api.Requests())
	r = runBin(t, e.vars(), args...)
	require.Equal(t, 0, r.code, r.stderr)
	assert.NotEqual(t, final["instance-id"], e.api.Requests()[n].Query["instance-id"], "a new instance")
	assert.Equal(t, []int64{1, 2, 3, 4, 5, 6, 7}, tg.got(), "the next run delivers only what is new")
}

// A --loop HA daemon without --instance-id stopped by SIGTERM acknowledges
// its last batch (a poll with limit=1 and last-processed-id) before it
// exits, so the daemon that replaces it, a new random instance, is not
// handed that batch again.
func TestHADaemonStopAcknowledges(t *testing.T) {
	e := newEnv(t, 3)
	e.api.SetLeaderTTL(0) // each new instance takes over at once
	tg := newTarget(t)
	args := []string{"--mode", "http", "--http-url", tg.srv.URL, "--state", e.state("sqlite"), "--cluster-id", "prod"}
	d := startDaemonBin(t, e.vars(), args...)
	require.Eventually(t, func() bool { return len(tg.got()) == 3 }, 30*time.Second, 20*time.Millisecond, d.logs.String())
	d.stopGracefully(t)
	reqs := e.api.Requests()
	final := reqs[len(reqs)-1].Query
	assert.Equal(t, "3", final["last-processed-id"], "the stop acknowledges the last item")
	assert.Equal(t, "1", final["limit"])

	e.api.Push(e2eKey, ilerttest.AlertEvents(1)...)
	d = startDaemonBin(t, e.vars(), args...)
	require.Eventually(t, func() bool { return len(tg.got()) >= 4 }, 30*time.Second, 20*time.Millisecond, d.logs.String())
	d.stopGracefully(t)
	assert.Equal(t, []int64{1, 2, 3, 4}, tg.got(), "the next daemon, a new instance, delivers only what is new")
}

// state show with --cluster-id and --instance-id shows the instance's own
// progress (the last-processed-id its next poll sends), text and JSON;
// another instance has none yet.
func TestStateShowHAInstanceProgress(t *testing.T) {
	e := newEnv(t, 3)
	e.api.SetLeaderTTL(0)
	tg := newTarget(t)
	st := e.state("sqlite")
	node1 := []string{"--cluster-id", "prod", "--instance-id", "node-1"}
	r := runBin(t, e.vars(), append([]string{"--mode", "http", "--http-url", tg.srv.URL, "--state", st}, node1...)...)
	require.Equal(t, 0, r.code, r.stderr)
	r = runBin(t, e.vars(), append([]string{"state", "show", "--state", st}, node1...)...)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Regexp(t, `\ninstance    node-1 in cluster prod: last-processed-id 3 \(written [^)]+\)\n`, r.stdout)
	r = runBin(t, e.vars(), append([]string{"state", "show", "--state", st, "-o", "json"}, node1...)...)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, `"ha":{"cluster_id":"prod","instance_id":"node-1","last_processed_id":3,`)
	r = runBin(t, e.vars(), "state", "show", "--state", st, "--cluster-id", "prod", "--instance-id", "node-2")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "instance    node-2 in cluster prod: no progress yet")
}
