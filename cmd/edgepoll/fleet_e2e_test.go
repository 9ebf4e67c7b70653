package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/internal/dynalitetest"
	"github.com/edgepoll/edgepoll/internal/runner"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
)

// fleetTarget is one HTTP receiver for many connections: each connection
// posts to /<name>; it records the item ids per path.
type fleetTarget struct {
	mu       sync.Mutex
	got      map[string][]int64
	status   func(path string) int
	inflight int
	maxIn    int
	// gate, if > 0: a request waits (up to gateWait) until this many are in
	// flight, so that the concurrency a run allows is observed exactly.
	gate int
	srv  *httptest.Server
}

const (
	gateWait   = 5 * time.Second
	gateSettle = 300 * time.Millisecond
)

func newFleetTarget(t *testing.T) *fleetTarget {
	ft := &fleetTarget{got: map[string][]int64{}}
	ft.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.ParseInt(r.Header.Get("X-ilert-Edge-Item-Id"), 10, 64)
		_, _ = io.Copy(io.Discard, r.Body)
		path := strings.TrimPrefix(r.URL.Path, "/")
		ft.mu.Lock()
		ft.inflight++
		ft.maxIn = max(ft.maxIn, ft.inflight)
		if ft.gate > 0 {
			// Hold the request until gate requests are in flight, then a
			// little longer: a run that allows more would show them here.
			deadline := time.Now().Add(gateWait)
			for ft.inflight < ft.gate && time.Now().Before(deadline) {
				ft.mu.Unlock()
				time.Sleep(5 * time.Millisecond)
				ft.mu.Lock()
			}
			ft.mu.Unlock()
			time.Sleep(gateSettle)
			ft.mu.Lock()
		}
		st := http.StatusOK
		if ft.status != nil {
			st = ft.status(path)
		}
		if st/100 == 2 {
			ft.got[path] = append(ft.got[path], id)
		}
		ft.inflight--
		ft.mu.Unlock()
		w.WriteHeader(st)
	}))
	t.Cleanup(ft.srv.Close)
	return ft
}

func (ft *fleetTarget) ids(path string) []int64 {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return append([]int64(nil), ft.got[path]...)
}

// fleetRig is the fake ilert API serving one key per connection, a target
// and a config file.
type fleetRig struct {
	api   *ilerttest.API
	apiSv *httptest.Server
	tg    *fleetTarget
	dir   string
	names []string
	items int
}

func fleetKey(name string) string { return "iec1-fleet-Secret-" + name }

func newFleetRig(t *testing.T, conns, items int) *fleetRig {
	r := &fleetRig{api: ilerttest.New(), tg: newFleetTarget(t), dir: t.TempDir(), items: items}
	for i := 0; i < conns; i++ {
		name := fmt.Sprintf("conn-%02d", i)
		r.names = append(r.names, name)
		r.api.Push(fleetKey(name), ilerttest.AlertEvents(items)...)
	}
	r.apiSv = r.api.Start()
	t.Cleanup(r.apiSv.Close)
	return r
}

// config writes a config file: top is the top-level YAML (without
// connections), each connection posts to /<name>.
func (r *fleetRig) config(t *testing.T, top string) string {
	var b strings.Builder
	b.WriteString(top)
	b.WriteString("connections:\n")
	for _, n := range r.names {
		fmt.Fprintf(&b, "  - name: %s\n    key-env: KEY_%s\n    http-url: %s/%s\n", n, strings.ReplaceAll(n, "-", "_"), r.tg.srv.URL, n)
	}
	p := filepath.Join(r.dir, "edgepoll.yaml")
	require.NoError(t, os.WriteFile(p, []byte(b.String()), 0o644))
	return p
}

func (r *fleetRig) vars(extra ...string) []string {
	v := []string{"ILERT_API_HOST=" + r.apiSv.URL}
	for _, n := range r.names {
		v = append(v, "KEY_"+strings.ReplaceAll(n, "-", "_")+"="+fleetKey(n))
	}
	return baseEnv(append(v, extra...)...)
}

func (r *fleetRig) checkEachOnce(t *testing.T) {
	t.Helper()
	for _, n := range r.names {
		want := make([]int64, r.items)
		for i := range want {
			want[i] = int64(i + 1)
		}
		assert.Equal(t, want, r.tg.ids(n), "connection %s: every item exactly once, in order", n)
	}
}

func noSecrets(t *testing.T, r *fleetRig, outs ...string) {
	t.Helper()
	for _, out := range outs {
		assert.NotContains(t, out, "iec1-fleet-Secret")
		for _, n := range r.names {
			assert.NotContains(t, out, fleetKey(n))
		}
	}
}

func TestFleetDeliversEveryConnection(t *testing.T) {
	for _, backend := range stateBackends {
		t.Run(backend, func(t *testing.T) {
			r := newFleetRig(t, 5, 130)
			cfg := r.config(t, "mode: http\nstate: "+backend+":"+filepath.Join(r.dir, "state")+"\n")
			res := runBin(t, r.vars(), "--config", cfg)
			require.Equal(t, 0, res.code, res.stderr)
			r.checkEachOnce(t)
			assert.Empty(t, res.stdout)
			for _, n := range r.names {
				assert.Contains(t, res.stderr, "connection="+n)
				assert.Contains(t, res.stderr, n+"=ok", "the summary names each connection")
			}
			noSecrets(t, r, res.stderr)

			// Cursors are per connection: a second run delivers only what is new.
			r.api.Push(fleetKey("conn-03"), ilerttest.AlertEvents(1)...)
			res = runBin(t, r.vars(), "--config", cfg)
			require.Equal(t, 0, res.code, res.stderr)
			for _, n := range r.names {
				if n == "conn-03" {
					assert.Len(t, r.tg.ids(n), r.items+1)
					assert.Equal(t, int64(r.items+1), r.tg.ids(n)[r.items])
					continue
				}
				assert.Len(t, r.tg.ids(n), r.items, n)
			}

			// EDGEPOLL_CONFIG works like --config.
			res = runBin(t, r.vars("EDGEPOLL_CONFIG="+cfg))
			require.Equal(t, 0, res.code, res.stderr)
			assert.Contains(t, res.stderr, "conn-04=ok")
		})
	}
}

func TestFleetOneFailingConnectionDoesNotStopTheOthers(t *testing.T) {
	r := newFleetRig(t, 4, 40)
	r.tg.status = unavailableFor("conn-01")
	cfg := r.config(t, "mode: http\nstate: sqlite:"+filepath.Join(r.dir, "state.db")+"\n")
	res := runBin(t, r.vars(), "--config", cfg, "--max-parallel", "1")
	require.Equal(t, 1, res.code, res.stderr)
	assert.Contains(t, res.stderr, "conn-01=failed")
	for _, n := range []string{"conn-00", "conn-02", "conn-03"} {
		assert.Len(t, r.tg.ids(n), 40, n)
		assert.Contains(t, res.stderr, n+"=ok")
	}
	assert.Empty(t, r.tg.ids("conn-01"))

	// The target comes back: the next run delivers the failed connection's
	// items and nothing twice.
	r.tg.mu.Lock()
	r.tg.status = nil
	r.tg.mu.Unlock()
	res = runBin(t, r.vars(), "--config", cfg)
	require.Equal(t, 0, res.code, res.stderr)
	r.checkEachOnce(t)
}

func TestFleetMaxParallelIsHonoured(t *testing.T) {
	for _, n := range []int{1, 3} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			r := newFleetRig(t, 6, 1)
			r.tg.gate = n
			cfg := r.config(t, "mode: http\nstate: sqlite:"+filepath.Join(r.dir, "state.db")+"\n")
			res := runBin(t, r.vars(), "--config", cfg, "--max-parallel", strconv.Itoa(n))
			require.Equal(t, 0, res.code, res.stderr)
			r.checkEachOnce(t)
			r.tg.mu.Lock()
			defer r.tg.mu.Unlock()
			assert.Equal(t, n, r.tg.maxIn, "connections delivering at the same time")
		})
	}
}

// Three processes with one config and one store: every item of twelve
// connections is delivered exactly once.
func TestFleetThreeProcessesShareTheConnections(t *testing.T) {
	r := newFleetRig(t, 12, 60)
	cfg := r.config(t, "mode: http\nstate: sqlite:"+filepath.Join(r.dir, "state.db")+"\nmax-parallel: 2\n")
	runConcurrently(t, 3, func() result { return runBin(t, r.vars(), "--config", cfg) })
	r.checkEachOnce(t)
}

// DynamoDB as the shared store: two processes split the connections.
func TestFleetShardsOverDynamoDB(t *testing.T) {
	ddb := dynalitetest.Start(t)
	ddb.CreateTable(t, "edgepoll-fleet")
	r := newFleetRig(t, 8, 30)
	cfg := r.config(t, "mode: http\nstate: dynamodb:edgepoll-fleet\n")
	results := runConcurrently(t, 2, func() result { return runBin(t, r.vars(ddb.Env()...), "--config", cfg) })
	r.checkEachOnce(t)
	held := 0
	for _, res := range results {
		held += strings.Count(res.stderr, "=lease-held")
	}
	t.Logf("connections found leased by the other process: %d", held)
}

func runConcurrently(t *testing.T, n int, run func() result) []result {
	t.Helper()
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() { defer wg.Done(); results[i] = run() }()
	}
	wg.Wait()
	for _, res := range results {
		require.Equal(t, 0, res.code, res.stderr)
	}
	return results
}

func TestFleetConfigErrorsExit2NamingConnectionAndKey(t *testing.T) {
	const secret = "s3cr3t-Value"
	dir := t.TempDir()
	cases := []struct {
		name string
		yaml string
		env  []string
		want string
	}{
		{"literal secret", "mode: http\nconnections:\n  - name: a\n    key-env: K1\n    http-url: http://x\n  - name: noc\n    key-env: K2\n    http-url: http://x\n    http-auth-header: X-T\n    http-auth-value: " + secret + "\n",
			nil, "connections[1] (noc): http-auth-value: "},
		{"literal key", "mode: stdout\nconnections:\n  - name: a\n    key: " + secret + "\n", nil, "connections[0] (a): key: "},
		{"literal heartbeat at top", "mode: stdout\nheartbeat: " + secret + "\nconnections:\n  - name: a\n    key-env: K1\n", nil, ": heartbeat: "},
		{"duplicate name", "mode: stdout\nconnections:\n  - name: a\n    key-env: K1\n  - name: a\n    key-env: K2\n", nil, "connections[1] (a): name: "},
		{"unknown key", "mode: stdout\nconnections:\n  - name: a\n    key-env: K1\n    htp-url: x\n", nil, "connections[0] (a): htp-url: unknown key"},
		{"ilagent spelling", "mode: stdout\nconnections:\n  - name: a\n    key-env: K1\n    edge_http_url: x\n", nil, "connections[0] (a): edge_http_url: "},
		{"unknown top key", "mood: stdout\nconnections:\n  - name: a\n    key-env: K1\n", nil, ": mood: unknown key"},
		{"missing key variable", "mode: stdout\nconnections:\n  - name: a\n    key-env: K1\n  - name: b\n    key-env: K_UNSET\n", nil, "connections[1] (b): key-env: the environment variable K_UNSET is not set"},
		{"missing key-env", "mode: stdout\nconnections:\n  - name: a\n", nil, "connections[0] (a): key-env: is required"},
		{"missing secret variable", "mode: http\nconnections:\n  - name: noc\n    key-env: K1\n    http-url: http://x\n    http-auth-header: X-T\n    http-auth-value-env: UNSET_TOKEN\n", nil, "connections[0] (noc): http-auth-value-env: the environment variable UNSET_TOKEN is not set"},
		{"missing target", "mode: http\nconnections:\n  - name: a\n    key-env: K1\n    http-url: http://x\n  - name: b\n    key-env: K2\n", nil, "connections[1] (b): http-url: is required"},
		{"bad value", "mode: mqtt\ntopic: t\nmqtt-host: h\nconnections:\n  - name: a\n    key-env: K1\n    mqtt-qos: 7\n", nil, "connections[0] (a): mqtt-qos: "},
		{"bad type", "mode: mqtt\ntopic: t\nmqtt-host: h\nconnections:\n  - name: a\n    key-env: K1\n    mqtt-port: many\n", nil, "connections[0] (a): mqtt-port: "},
		{"bad name", "mode: stdout\nconnections:\n  - name: Payments_EU\n    key-env: K1\n", nil, "connections[0]: name: "},
		{"no name", "mode: stdout\nconnections:\n  - key-env: K1\n", nil, "connections[0]: name: is required"},
		{"same key twice with HA", "mode: stdout\ncluster-id: c1\nconnections:\n  - name: a\n    key-env: K1\n  - name: b\n    key-env: K2\n  - name: c\n    key-env: K1\n",
			nil, "connections[2] (c): key-env: the same connector key as connections[0] (a): with cluster-id (HA)"},
		{"same key, HA on one of them", "mode: stdout\nconnections:\n  - name: a\n    key-env: K1\n    cluster-id: c1\n  - name: b\n    key-env: K1\n",
			nil, "connections[1] (b): key-env: the same connector key as connections[0] (a): with cluster-id (HA)"},
		{"key given twice", "mode: stdout\nconnections:\n  - name: a\n    key-env: K1\n    key-env: K2\n", nil, "key-env: given twice"},
		{"process setting in a connection", "mode: stdout\nconnections:\n  - name: a\n    key-env: K1\n    loop: true\n", nil, "connections[0] (a): loop: "},
		{"no connections", "mode: stdout\n", nil, ": connections: "},
		{"not yaml", "mode: [\n", nil, "--config: "},
		{"secret from the environment", "mode: stdout\nconnections:\n  - name: a\n    key-env: K1\n", []string{"ILERT_HEARTBEAT_KEY=" + secret}, "ILERT_HEARTBEAT_KEY: "},
		{"bad top-level value", "mode: stdout\nstate: redis:x\nconnections:\n  - name: a\n    key-env: K1\n", nil, ": state: "},
		{"one dead-letter file for two", "mode: stdout\ndead-letter: file:" + filepath.Join(dir, "dead.jsonl") + "\nconnections:\n  - name: a\n    key-env: K1\n  - name: b\n    key-env: K2\n",
			nil, "connections[1] (b): dead-letter: "},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, fmt.Sprintf("c%d.yaml", i))
			require.NoError(t, os.WriteFile(p, []byte(tc.yaml), 0o644))
			env := baseEnv(append([]string{"K1=iec1-one-" + secret, "K2=iec1-two-" + secret}, tc.env...)...)
			res := runBin(t, env, "--config", p)
			assert.Equal(t, 2, res.code, res.stderr)
			assert.Len(t, strings.Split(strings.TrimSpace(res.stderr), "\n"), 1, "one-line message: %q", res.stderr)
			assert.Contains(t, res.stderr, tc.want)
			assert.NotContains(t, res.stderr, secret, "no secret echoed")
			assert.Empty(t, res.stdout)
		})
	}
	res := runBin(t, baseEnv(), "--config", filepath.Join(dir, "missing.yaml"))
	assert.Equal(t, 2, res.code)
	assert.Contains(t, res.stderr, "--config: ")
	res = runBin(t, baseEnv("EDGEPOLL_CONFIG="+filepath.Join(dir, "missing.yaml")))
	assert.Equal(t, 2, res.code)
	assert.Contains(t, res.stderr, "EDGEPOLL_CONFIG: ")
}

// A script target sees no secret of edgepoll's, whatever the variable that
// holds it is called (key-env and X-env name arbitrary variables).
func TestFleetScriptGetsNoSecret(t *testing.T) {
	r := newFleetRig(t, 2, 1)
	out := filepath.Join(r.dir, "env.out")
	script := filepath.Join(r.dir, "dump.sh")
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\nenv >> "+out+"\n"), 0o755))
	cfg := filepath.Join(r.dir, "edgepoll.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`state: sqlite:%s
connections:
  - name: conn-00
    key-env: KEY_conn_00
    mode: script
    script: %s
  - name: conn-01
    key-env: KEY_conn_01
    mode: http
    http-url: %s/conn-01
    http-auth-header: X-Token
    http-auth-value-env: NOC_TOKEN
`, filepath.Join(r.dir, "state.db"), script, r.tg.srv.URL)), 0o644))
	res := runBin(t, r.vars("NOC_TOKEN=noc-Secret-Token", "UNRELATED=kept"), "--config", cfg)
	require.Equal(t, 0, res.code, res.stderr)
	env, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.Contains(t, string(env), "UNRELATED=kept")
	assert.Contains(t, string(env), "ILERT_EDGE_ITEM_ID=1")
	for _, secret := range []string{"noc-Secret-Token", fleetKey("conn-00"), fleetKey("conn-01")} {
		assert.NotContains(t, string(env), secret)
	}
	assert.Len(t, r.tg.ids("conn-01"), 1)
}

func TestFleetStateShowListsEveryConnection(t *testing.T) {
	r := newFleetRig(t, 3, 5)
	cfg := r.config(t, "mode: http\nstate: sqlite:"+filepath.Join(r.dir, "state.db")+"\n")
	res := runBin(t, r.vars(), "--config", cfg, "--connection", "conn-01")
	require.Equal(t, 0, res.code, res.stderr)
	assert.Len(t, r.tg.ids("conn-01"), 5)
	assert.Empty(t, r.tg.ids("conn-00"), "--connection runs that connection only")

	res = runBin(t, r.vars(), "state", "show", "--config", cfg, "--output", "json")
	require.Equal(t, 0, res.code, res.stderr)
	var shown []struct {
		Name       string `json:"name"`
		Connection string `json:"connection"`
		Cursor     *int64 `json:"cursor"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &shown), res.stdout)
	require.Len(t, shown, 3)
	for i, s := range shown {
		assert.Equal(t, r.names[i], s.Name)
		assert.NotEmpty(t, s.Connection)
		if s.Name == "conn-01" {
			require.NotNil(t, s.Cursor)
			assert.Equal(t, int64(5), *s.Cursor)
		} else {
			assert.Nil(t, s.Cursor)
		}
	}
	res = runBin(t, r.vars(), "state", "show", "--config", cfg)
	require.Equal(t, 0, res.code, res.stderr)
	for _, n := range r.names {
		assert.Contains(t, res.stdout, "name        "+n+"\n")
	}
	noSecrets(t, r, res.stdout, res.stderr)

	// A command on one connection needs --connection.
	res = runBin(t, r.vars(), "state", "reset", "--config", cfg)
	assert.Equal(t, 2, res.code, res.stderr)
	assert.Contains(t, res.stderr, "--connection")
	res = runBin(t, r.vars(), "state", "set-cursor", "2", "--config", cfg, "--connection", "conn-01")
	require.Equal(t, 0, res.code, res.stderr)
	res = runBin(t, r.vars(), "--config", cfg, "--connection", "conn-01")
	require.Equal(t, 0, res.code, res.stderr)
	assert.Equal(t, []int64{1, 2, 3, 4, 5, 3, 4, 5}, r.tg.ids("conn-01"), "replayed after set-cursor 2")
	res = runBin(t, r.vars(), "--config", cfg, "--connection", "nope")
	assert.Equal(t, 2, res.code)
	assert.Contains(t, res.stderr, "--connection: \"nope\" is not a connection")
}

// --loop --config: every connection on its own schedule; /ready names each
// connection; every metric carries the connection; log lines too; the
// heartbeat is per connection (heartbeat-env).
func TestFleetDaemon(t *testing.T) {
	// Mostly waits on timers: runs beside the other parallel tests.
	t.Parallel()
	r := newFleetRig(t, 3, 20)
	r.tg.status = unavailableFor("conn-02")
	cfg := r.config(t, "mode: http\nstate: sqlite:"+filepath.Join(r.dir, "state.db")+"\npoll-interval: 5s\nheartbeat-env: HB_KEY\n")
	d := startDaemonBin(t, r.vars("HB_KEY=il1hbt-Fleet-HB"), "--config", cfg, "--log-format", "json")

	for _, n := range []string{"conn-00", "conn-01"} {
		require.Eventually(t, func() bool { return len(r.tg.ids(n)) == 20 }, 20*time.Second, 20*time.Millisecond, n)
	}
	var ready struct {
		Polling     bool `json:"polling"`
		Connections []struct {
			Name    string `json:"name"`
			Ready   bool   `json:"ready"`
			Polling bool   `json:"polling"`
			Error   string `json:"error"`
		} `json:"connections"`
	}
	require.Eventually(t, func() bool {
		code, body := d.get(t, "/ready")
		if code != http.StatusServiceUnavailable || json.Unmarshal([]byte(body), &ready) != nil || len(ready.Connections) != 3 {
			return false
		}
		return ready.Connections[0].Ready && ready.Connections[1].Ready && !ready.Connections[2].Ready
	}, 20*time.Second, 50*time.Millisecond, "503 naming the one connection whose target fails")
	assert.Equal(t, "conn-02", ready.Connections[2].Name)
	assert.True(t, ready.Connections[2].Polling, "its poll works, its delivery does not")
	assert.Contains(t, ready.Connections[2].Error, "503")

	_, metrics := d.get(t, "/metrics")
	assert.Contains(t, metrics, `edgepoll_items_total{connection="conn-00",outcome="delivered",reason="",sink="http"} 20`)
	assert.Contains(t, metrics, `edgepoll_items_total{connection="conn-02",outcome="failed",reason="http_503",sink="http"}`)
	assert.Contains(t, metrics, `edgepoll_cursor{connection="conn-01"} 20`)
	assert.Contains(t, metrics, `edgepoll_ready{connection="conn-02"} 0`)
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, "edgepoll_") {
			assert.Contains(t, line, `connection="`, "every edgepoll metric carries its connection: %s", line)
		}
	}

	// The target comes back: within one poll interval everything is ready.
	r.tg.mu.Lock()
	r.tg.status = nil
	r.tg.mu.Unlock()
	require.Eventually(t, func() bool { c, _ := d.get(t, "/ready"); return c == http.StatusNoContent }, 20*time.Second, 50*time.Millisecond)
	r.checkEachOnce(t)
	require.Eventually(t, func() bool { return r.api.Heartbeats("il1hbt-Fleet-HB") >= 3 }, 10*time.Second, 50*time.Millisecond,
		"each connection pings its heartbeat after its first successful cycle")

	d.stopGracefully(t)
	logs := d.logs.String()
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), line)
		if strings.Contains(line, `"item"`) || strings.Contains(line, `"cursor"`) {
			assert.Contains(t, rec, "connection", "a line about a connection's work names it: %s", line)
		}
	}
	noSecrets(t, r, logs, metrics)
	assert.NotContains(t, logs, "il1hbt-Fleet-HB")
}

func TestFleetMetricsFile(t *testing.T) {
	r := newFleetRig(t, 2, 7)
	cfg := r.config(t, "mode: http\nstate: sqlite:"+filepath.Join(r.dir, "state.db")+"\n")
	prom := filepath.Join(r.dir, "edgepoll.prom")
	res := runBin(t, r.vars(), "--config", cfg, "--metrics-file", prom)
	require.Equal(t, 0, res.code, res.stderr)
	b, err := os.ReadFile(prom)
	require.NoError(t, err)
	for _, n := range r.names {
		assert.Contains(t, string(b), `edgepoll_items_total{connection="`+n+`",outcome="delivered",reason="",sink="http"} 7`)
	}
}

// Lambda with EDGEPOLL_CONFIG: one invocation drains every connection within
// its deadline; a failing connection fails the invocation, naming it, and
// the others deliver regardless.
func TestFleetLambdaDrainsEveryConnection(t *testing.T) {
	r := newFleetRig(t, 5, 150)
	ddb := dynalitetest.Start(t)
	ddb.CreateTable(t, "edgepoll-fleet")
	rt := newFakeRuntime(t)
	cfg := r.config(t, "mode: http\nstate: dynamodb:edgepoll-fleet\nmax-parallel: 2\n")
	r.tg.status = unavailableFor("conn-03")
	logs := startBootstrap(t, rt, r.vars(append([]string{"EDGEPOLL_CONFIG=" + cfg}, ddb.Env()...)...))

	res := rt.invoke(t, "fleet-1", 60*time.Second)
	require.False(t, res.ok, "one connection failed")
	assert.Contains(t, string(res.body), "1 of 5 connections failed: conn-03")
	for _, n := range r.names {
		if n != "conn-03" {
			assert.Len(t, r.tg.ids(n), 150, n)
		}
	}
	r.tg.mu.Lock()
	r.tg.status = nil
	r.tg.mu.Unlock()
	res = rt.invoke(t, "fleet-2", 60*time.Second)
	require.True(t, res.ok, string(res.body))
	var out runner.FleetLambdaResult
	require.NoError(t, json.Unmarshal(res.body, &out), string(res.body))
	require.Len(t, out.Connections, 5)
	assert.Zero(t, out.Failed)
	assert.Equal(t, "conn-03", out.Connections[3].Name)
	assert.Equal(t, 150, out.Connections[3].Delivered)
	assert.Equal(t, 0, out.Connections[0].Polled)
	r.checkEachOnce(t)
	assert.Contains(t, logs.String(), `"connection":"conn-03"`)
	noSecrets(t, r, logs.String(), string(res.body))
}

// Lambda with EDGEPOLL_CONFIG: a connection whose store cannot be had at
// the cold start (its table does not exist yet) fails the invocations until
// it can, and is set up again in each of them: once the table exists, the
// next invocation of the same container delivers its items (before, it
// failed for the life of the container). The other delivered all along.
func TestFleetLambdaRetriesAConnectionThatCannotStart(t *testing.T) {
	r := newFleetRig(t, 2, 5)
	ddb := dynalitetest.Start(t)
	ddb.CreateTable(t, "edgepoll-a")
	rt := newFakeRuntime(t)
	var cfg strings.Builder
	cfg.WriteString("mode: http\nconnections:\n")
	for i, n := range r.names {
		fmt.Fprintf(&cfg, "  - name: %s\n    key-env: KEY_%s\n    http-url: %s/%s\n    state: dynamodb:edgepoll-%c\n",
			n, strings.ReplaceAll(n, "-", "_"), r.tg.srv.URL, n, 'a'+i)
	}
	path := filepath.Join(r.dir, "edgepoll.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg.String()), 0o644))
	logs := startBootstrap(t, rt, r.vars(append([]string{"EDGEPOLL_CONFIG=" + path}, ddb.Env()...)...))

	for _, id := range []string{"cold-1", "cold-2"} {
		res := rt.invoke(t, id, 30*time.Second)
		require.False(t, res.ok, "conn-01's table does not exist")
		assert.Contains(t, string(res.body), "1 of 2 connections failed: conn-01", logs.String())
	}
	assert.Len(t, r.tg.ids("conn-00"), 5)
	assert.Empty(t, r.tg.ids("conn-01"))
	ddb.CreateTable(t, "edgepoll-b")
	res := rt.invoke(t, "warm-1", 30*time.Second)
	require.True(t, res.ok, string(res.body)+logs.String())
	r.checkEachOnce(t)
}

// Lambda with EDGEPOLL_CONFIG sets each connection up in its worker at its
// first cycle, not during the init phase (which Lambda bounds to 10 s): the
// bootstrap asks for its first invocation before any connector key is
// fetched from SSM; the invocation then fetches each once and delivers.
func TestFleetLambdaSetsConnectionsUpInTheInvocation(t *testing.T) {
	r := newFleetRig(t, 1, 4)
	ddb := dynalitetest.Start(t)
	ddb.CreateTable(t, "edgepoll-fleet")
	ssm := newFakeSSM(t, "/edgepoll/key", fleetKey("conn-00"))
	rt := newFakeRuntime(t)
	var cfg strings.Builder
	cfg.WriteString("mode: http\nstate: dynamodb:edgepoll-fleet\nconnector-key-parameter: /edgepoll/key\nconnections:\n")
	for _, n := range []string{"a", "b", "c"} { // three targets on the key (fan-out)
		fmt.Fprintf(&cfg, "  - name: %s\n    http-url: %s/%s\n", n, r.tg.srv.URL, n)
	}
	path := filepath.Join(r.dir, "edgepoll.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg.String()), 0o644))
	logs := startBootstrap(t, rt, baseEnv(append([]string{"ILERT_API_HOST=" + r.apiSv.URL, "EDGEPOLL_CONFIG=" + path,
		"AWS_ENDPOINT_URL_SSM=" + ssm.srv.URL}, ddb.Env()...)...))
	require.Eventually(t, func() bool { return rt.waits.Load() > 0 }, 30*time.Second, 10*time.Millisecond, logs.String())
	assert.Zero(t, ssm.calls.Load(), "no key fetched during the init phase")
	res := rt.invoke(t, "first", 30*time.Second)
	require.True(t, res.ok, string(res.body)+logs.String())
	assert.EqualValues(t, 3, ssm.calls.Load(), "each connection's key, once")
	for _, n := range []string{"a", "b", "c"} {
		assert.Equal(t, []int64{1, 2, 3, 4}, r.tg.ids(n), n)
	}
	res = rt.invoke(t, "second", 30*time.Second)
	require.True(t, res.ok, string(res.body))
	assert.EqualValues(t, 3, ssm.calls.Load(), "set up once per execution environment")
}

// --loop --config: a connection whose store cannot be opened at start (its
// directory does not exist yet) is an outage like any other: /ready names
// it meanwhile, its setup is retried with the daemon's backoff, and once the
// directory exists it delivers everything; the other connection delivered
// all along. SIGTERM stops the daemon, exit 0.
func TestFleetDaemonRetriesAConnectionThatCannotStart(t *testing.T) {
	// Mostly waits on timers: runs beside the other parallel tests.
	t.Parallel()
	for _, backend := range stateBackends {
		t.Run(backend, func(t *testing.T) {
			r := newFleetRig(t, 2, 20)
			later := filepath.Join(r.dir, "later")
			cfg := filepath.Join(r.dir, "edgepoll.yaml")
			require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`mode: http
poll-interval: 5s
connections:
  - name: conn-00
    key-env: KEY_conn_00
    state: %[1]s:%[2]s
    http-url: %[3]s/conn-00
  - name: conn-01
    key-env: KEY_conn_01
    state: %[1]s:%[4]s
    http-url: %[3]s/conn-01
`, backend, filepath.Join(r.dir, "state."+backend), r.tg.srv.URL, filepath.Join(later, "state."+backend))), 0o644))
			d := startDaemonBin(t, r.vars(), "--config", cfg)
			t.Cleanup(func() {
				if t.Failed() {
					t.Log(d.logs.String())
				}
			})

			require.Eventually(t, func() bool { return len(r.tg.ids("conn-00")) == r.items }, 30*time.Second, 20*time.Millisecond,
				"the connection that can start delivers")
			body := d.waitNotReady(t, func(b map[string]any) bool {
				cs, _ := b["connections"].([]any)
				if len(cs) != 2 {
					return false
				}
				c0, _ := cs[0].(map[string]any)
				c1, _ := cs[1].(map[string]any)
				return c0["ready"] == true && c1["name"] == "conn-01" && c1["ready"] == false
			})
			c1 := body["connections"].([]any)[1].(map[string]any)
			assert.NotEmpty(t, c1["error"], "/ready says why conn-01 is not ready")
			assert.Empty(t, r.tg.ids("conn-01"))

			// Its directory appears: the retried setup opens the store and
			// the connection delivers everything.
			require.NoError(t, os.MkdirAll(later, 0o755))
			require.Eventually(t, func() bool { c, _ := d.get(t, "/ready"); return c == http.StatusNoContent }, 60*time.Second, 50*time.Millisecond,
				"every connection ready once the store can be opened")
			require.Eventually(t, func() bool { return len(r.tg.ids("conn-01")) == r.items }, 30*time.Second, 20*time.Millisecond)
			r.checkEachOnce(t)
			assert.Contains(t, d.logs.String(), "connection setup failed; retrying")

			d.stopGracefully(t)
			noSecrets(t, r, d.logs.String())
		})
	}
}

// A graceful stop ends the retries of a connection that cannot start: the
// daemon exits 0 while it is still broken.
func TestFleetDaemonStopsWhileAConnectionCannotStart(t *testing.T) {
	r := newFleetRig(t, 2, 3)
	cfg := filepath.Join(r.dir, "edgepoll.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`mode: http
connections:
  - name: conn-00
    key-env: KEY_conn_00
    state: sqlite:%[1]s
    http-url: %[2]s/conn-00
  - name: conn-01
    key-env: KEY_conn_01
    state: sqlite:%[3]s
    http-url: %[2]s/conn-01
`, filepath.Join(r.dir, "state.db"), r.tg.srv.URL, filepath.Join(r.dir, "never", "state.db"))), 0o644))
	d := startDaemonBin(t, r.vars(), "--config", cfg)
	require.Eventually(t, func() bool { return strings.Contains(d.logs.String(), "connection setup failed; retrying") }, 30*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { return len(r.tg.ids("conn-00")) == r.items }, 30*time.Second, 20*time.Millisecond)
	d.stopGracefully(t) // also while a connection's setup is being retried
	assert.Empty(t, r.tg.ids("conn-01"))
}

// unavailableFor makes the fleet target answer 503 to one connection and
// 200 to the others.
func unavailableFor(conn string) func(path string) int {
	return func(path string) int {
		if path == conn {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
}
